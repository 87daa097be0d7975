/*
 * gemv.cu — MATMUL (ops.h: dst = a·bᵀ) for a few rows of a against one weight matrix b: the
 * projections of a decode step (M = 1 per sequence). Such a product is a matrix-vector product
 * bound by reading b once; a GEMM library tiles it for large M and wastes most of the tile (the
 * tiled fallback, which mixed f32-activation x bf16-weight nodes took, read b at a few % of the
 * memory bandwidth).
 *
 * Layout: the (<= 4) rows of a are staged in shared memory as f32 (any dtype and strides); one
 * warp per output column j streams row j of b with 16-byte loads (8 bf16/f16 or 4 f32 per load,
 * when b's rows are 16-byte aligned and K is a multiple of the vector), multiplies against the
 * staged rows with fp32 FMAs and reduces across the warp. Warps stride over columns so the grid
 * is one wave of resident blocks. fp32 accumulation, one rounding on the store.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_decode_kernels.h"
#include "sc_common.cuh"

#define GEMV_WARPS 8
#define GEMV_MAX_ROWS 4
#define GEMV_SMEM_MAX (48 * 1024)

__device__ __forceinline__ void unpack8(uint4 v, int dt, float out[8]) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (dt == SC_BF16) {
            out[2 * i] = __uint_as_float(w[i] << 16);
            out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        } else { /* f16 */
            __half2 h = *reinterpret_cast<const __half2 *>(&w[i]);
            float2 f = __half22float2(h);
            out[2 * i] = f.x;
            out[2 * i + 1] = f.y;
        }
    }
}

/* The 8 unpacked weights w against 8 staged f32 values at x (32-byte aligned). */
__device__ __forceinline__ float dot8(const float w[8], const float *x) {
    const float4 x0 = *(const float4 *)x, x1 = *(const float4 *)(x + 4);
    return w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w + w[4] * x1.x + w[5] * x1.y + w[6] * x1.z +
           w[7] * x1.w;
}

__device__ __forceinline__ float round_to(int dt, float v) {
    if (dt == SC_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    if (dt == SC_F16) return __half2float(__float2half_rn(v));
    return v;
}

/* Block-wide sum (blockDim.x = GEMV_WARPS * 32); red holds GEMV_WARPS floats. */
__device__ __forceinline__ float gemv_block_sum(float v, float *red) {
    v = sc_warp_sum(v);
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) red[w] = v;
    __syncthreads();
    float t = 0.0f;
#pragma unroll
    for (int k = 0; k < GEMV_WARPS; k++) t += red[k];
    return t;
}

/* The rows of a (or what the fused prologue makes of them) into xs as f32, rounded as the
 * unfused node would have stored them. */
template <int R, int PRO>
__device__ __forceinline__ void gemv_stage(const sc_node &n, const sc_gemv_fused *f, float *xs, float *red) {
    const sc_tensor &a = n.src[0];
    const int64_t A1 = a.ne[1], M = a.ne[2], K = a.ne[3];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int64_t c0 = r / (A1 * M), c1 = (r / M) % A1, c2 = r % M;
        if (PRO == SC_GEMV_PRO_NONE) {
            const int64_t base = sc_off(a, c0, c1, c2, 0);
            if (a.dt == SC_F32 && a.nb[3] == 1) { /* typed, unrolled: the loads are in flight together */
                const float *ar = (const float *)a.p + base;
#pragma unroll 4
                for (int64_t k = threadIdx.x; k < K; k += blockDim.x) xs[r * K + k] = __ldg(ar + k);
            } else {
                for (int64_t k = threadIdx.x; k < K; k += blockDim.x) xs[r * K + k] = sc_ld(a, base + k * a.nb[3]);
            }
        } else if (PRO == SC_GEMV_PRO_RMS_NORM) { /* RMS_NORM(x = px, w = pw): norm.cu's math */
            const sc_tensor &x = f->px, &w = f->pw;
            const int64_t base = sc_off(x, c0, c1, c2, 0);
            float ss = 0.0f;
            for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
                const float v = sc_ld(x, base + k * x.nb[3]);
                xs[r * K + k] = v;
                ss += v * v;
            }
            ss = gemv_block_sum(ss, red);
            const float inv = rsqrtf(ss / (float)K + f->eps);
            for (int64_t k = threadIdx.x; k < K; k += blockDim.x)
                xs[r * K + k] = round_to(f->pro_dt, xs[r * K + k] * inv * sc_ld(w, k * w.nb[3]));
        } else { /* SWIGLU(gate = px, up = pw): elementwise.cu's math */
            const sc_tensor &gt = f->px, &up = f->pw;
            const int64_t gb = sc_off(gt, c0, c1, c2, 0), ub = sc_off(up, c0, c1, c2, 0);
            for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
                const float g = sc_ld(gt, gb + k * gt.nb[3]), u = sc_ld(up, ub + k * up.nb[3]);
                xs[r * K + k] = round_to(f->pro_dt, g / (1.0f + expf(-g)) * u);
            }
        }
    }
    __syncthreads();
}

template <int R, int PRO, int EPI>
__device__ __forceinline__ void gemv_body(const sc_node &n, const sc_gemv_fused *f, int vec) {
    extern __shared__ __align__(16) float xs[]; /* R x K */
    __shared__ float red[GEMV_WARPS];
    const sc_tensor &a = n.src[0], &b = n.src[1], &d = n.dst;
    const int64_t A1 = a.ne[1], M = a.ne[2], K = a.ne[3], N = b.ne[2];
    gemv_stage<R, PRO>(n, f, xs, red);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int64_t j = (int64_t)blockIdx.x * GEMV_WARPS + warp; j < N; j += (int64_t)gridDim.x * GEMV_WARPS) {
        float acc[R];
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = 0.0f;
        if (vec == 8) { /* bf16 / f16 rows, 16-byte aligned, K % 8 == 0 */
            const uint4 *row = (const uint4 *)((const uint16_t *)b.p + j * b.nb[2]);
            const int64_t nv = K / 8;
#pragma unroll 4
            for (int64_t v = lane; v < nv; v += 32) {
                float w[8];
                unpack8(__ldg(row + v), b.dt, w);
#pragma unroll
                for (int r = 0; r < R; r++) acc[r] += dot8(w, &xs[r * K + v * 8]);
            }
        } else if (vec == 4) { /* f32 rows, 16-byte aligned, K % 4 == 0 */
            const float4 *row = (const float4 *)((const float *)b.p + j * b.nb[2]);
            const int64_t nv = K / 4;
#pragma unroll 4
            for (int64_t v = lane; v < nv; v += 32) {
                const float4 w = __ldg(row + v);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const float4 x = *(const float4 *)&xs[r * K + v * 4];
                    acc[r] += w.x * x.x + w.y * x.y + w.z * x.z + w.w * x.w;
                }
            }
        } else {
            for (int64_t k = lane; k < K; k += 32) {
                const float w = sc_ld(b, j * b.nb[2] + k);
#pragma unroll
                for (int r = 0; r < R; r++) acc[r] += w * xs[r * K + k];
            }
        }
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float v = sc_warp_sum(acc[r]);
            if (lane != 0) continue;
            if (EPI == SC_GEMV_EPI_ADD) { /* out = res + (the MATMUL's value as it would be stored) */
                const int64_t c0 = r / (A1 * M), c1 = (r / M) % A1, c2 = r % M;
                const float o = round_to(d.dt, v);
                sc_st(f->out, r * N + j, sc_ld(f->res, sc_off(f->res, c0, c1, c2, j)) + o);
            } else {
                sc_st(d, r * N + j, v);
            }
        }
    }
}

template <int R>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv(sc_node n, int vec) {
    sc_pdl_wait();
    gemv_body<R, SC_GEMV_PRO_NONE, SC_GEMV_EPI_NONE>(n, NULL, vec);
}

template <int R, int PRO, int EPI>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv_fused(const __grid_constant__ sc_gemv_fused f, int vec) {
    sc_pdl_wait();
    gemv_body<R, PRO, EPI>(f.mm, &f, vec);
}

/*
 * The streaming GEMV (the default for 16-bit weights; SISA_CUDA_GEMV=old keeps the kernel above).
 * What held the kernel above at 0.16-0.48 TB/s in a decode step (docs/CUDA.md): every block
 * staged its rows first and only then issued its weight loads, so each launch paid a DRAM round
 * trip after its predecessor finished; one warp per column gave the K = 2944 projection (N = 768)
 * 96 blocks on 132 SMs; and 8 resident blocks per SM left no room for the next kernel to start.
 * Here:
 *   - block x owns a contiguous range of columns, so its slice of b is one contiguous span; the
 *     block asks L2 for that span BEFORE griddepcontrol.wait (b is a constant operand in a decode
 *     step; a prefetch is only a hint, so this stays correct if b were written by the kernel
 *     before: L2 is where every SM's loads meet), i.e. while the previous kernel still runs;
 *   - opt-in (SISA_CUDA_GEMV_PRELOAD=1, GS_PRELOAD): where the caller vouches that b is constant
 *     (sc_gemv_b_const), the block copies its slice into shared memory before the wait instead;
 *   - opt-in (SISA_CUDA_GEMV_EARLY=1, GS_EARLY): it lets its dependent launch before it waits, so
 *     the next kernel's blocks are resident one kernel earlier.
 *     Measured on the H100 (docs/CUDA.md, 2026-12-07): neither option changed a decode step beyond
 *     the run-to-run spread; the step is bound by the chain of ~134 dependent launches, not by
 *     when the weights arrive. The prefetch gave ~2%;
 *   - a task is one column x one K segment of at most GS_S 16-byte loads per lane; a warp loads
 *     two tasks (2 x GS_S loads per lane in flight) before using them; K is split into segments
 *     when the columns alone are too few to occupy every SM, the segments' warp sums meet in
 *     shared memory in a fixed order (deterministic).
 * Same math as above: fp32 FMAs against the staged f32 rows, one rounding at the store.
 */
#define GS_S 4 /* 16-byte loads per lane per task: a segment is at most 32 * GS_S vectors */
#define GS_SLICE_MAX (36 * 1024) /* bytes of b a block preloads into shared memory, at most */
enum { GS_PREFETCH = 1, GS_EARLY = 2, GS_PRELOAD = 4 };

/* Load task t's vectors (column j0 + t / nseg, segment t % nseg of seglen vectors), from the
 * block's preloaded slice ws (rows j0.. of nv vectors each) when it has one, else from b. */
__device__ __forceinline__ void gs_load(const sc_tensor &b, const uint4 *ws, int64_t j0, int64_t t, int nseg,
                                        int seglen, int64_t nv, int lane, uint4 w[GS_S]) {
    const int64_t col = j0 + t / nseg, v0 = (t % nseg) * (int64_t)seglen;
    const int64_t vend = v0 + seglen < nv ? v0 + seglen : nv;
    if (ws) {
        const uint4 *row = ws + (col - j0) * nv;
#pragma unroll
        for (int s = 0; s < GS_S; s++) {
            const int64_t v = v0 + s * 32 + lane;
            w[s] = v < vend ? row[v] : make_uint4(0u, 0u, 0u, 0u);
        }
        return;
    }
    const uint4 *row = (const uint4 *)((const uint16_t *)b.p + col * b.nb[2]);
#pragma unroll
    for (int s = 0; s < GS_S; s++) {
        const int64_t v = v0 + s * 32 + lane;
        w[s] = v < vend ? __ldg(row + v) : make_uint4(0u, 0u, 0u, 0u);
    }
}

/* acc[r] += the task's vectors . staged row r (vectors past the segment are not loaded, not used). */
template <int R>
__device__ __forceinline__ void gs_dot(const sc_tensor &b, const float *xs, int64_t K, int64_t t, int nseg,
                                       int seglen, int64_t nv, int lane, const uint4 w[GS_S], float acc[R]) {
    const int64_t v0 = (t % nseg) * (int64_t)seglen;
    const int64_t vend = v0 + seglen < nv ? v0 + seglen : nv;
#pragma unroll
    for (int s = 0; s < GS_S; s++) {
        const int64_t v = v0 + s * 32 + lane;
        if (v >= vend) continue; /* skipped, not multiplied by zero: 0 * Inf would be NaN */
        float e[8];
        unpack8(w[s], b.dt, e);
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] += dot8(e, &xs[r * K + v * 8]);
    }
}

/* Store the finished value v of row r, column j (with the ADD epilogue when fused). */
template <int EPI>
__device__ __forceinline__ void gs_store(const sc_node &n, const sc_gemv_fused *f, int r, int64_t j, float v) {
    const sc_tensor &a = n.src[0], &d = n.dst;
    const int64_t A1 = a.ne[1], M = a.ne[2], N = n.src[1].ne[2];
    if (EPI == SC_GEMV_EPI_ADD) {
        const int64_t c0 = r / (A1 * M), c1 = (r / M) % A1, c2 = r % M;
        sc_st(f->out, r * N + j, sc_ld(f->res, sc_off(f->res, c0, c1, c2, j)) + round_to(d.dt, v));
    } else {
        sc_st(d, r * N + j, v);
    }
}

template <int R, int EPI>
__device__ __forceinline__ void gs_finish(const sc_node &n, const sc_gemv_fused *f, float *part, int64_t j0,
                                          int64_t t, int nseg, int lane, float acc[R]) {
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float v = sc_warp_sum(acc[r]);
        if (lane != 0) continue;
        if (nseg == 1) gs_store<EPI>(n, f, r, j0 + t, v);
        else part[t * R + r] = v;
    }
}

template <int R, int PRO, int EPI>
__device__ __forceinline__ void gs_body(const sc_node &n, const sc_gemv_fused *f, int flags, int nseg, int seglen) {
    extern __shared__ __align__(16) float xs[]; /* R x K staged rows, then the segment sums */
    __shared__ float red[GEMV_WARPS];
    const sc_tensor &a = n.src[0], &b = n.src[1];
    const int64_t K = a.ne[3], N = b.ne[2], nv = K / 8;
    const int64_t j0 = (int64_t)blockIdx.x * N / gridDim.x, j1 = (int64_t)(blockIdx.x + 1) * N / gridDim.x;
    float *part = xs + R * K;
    uint4 *ws = NULL;
    if (flags & GS_PRELOAD) { /* b is constant in this graph (gs_plan_for): its slice into shared
                               * memory now, while the previous kernel still runs */
        ws = (uint4 *)(part + ((j1 - j0 + 1) * nseg * R + 3) / 4 * 4);
        const int64_t total = (j1 - j0) * nv;
        for (int64_t c = threadIdx.x; c < total; c += blockDim.x) {
            const int64_t jl = c / nv, v = c % nv;
            sc_cp_async16(ws + c, (const uint4 *)((const uint16_t *)b.p + (j0 + jl) * b.nb[2]) + v);
        }
        sc_cp_async_commit();
    } else if ((flags & GS_PREFETCH) && j1 > j0) {
        const uintptr_t lo = ((uintptr_t)((const uint16_t *)b.p + j0 * b.nb[2])) & ~(uintptr_t)127;
        const uintptr_t hi = (uintptr_t)((const uint16_t *)b.p + (j1 - 1) * b.nb[2] + K);
        for (uintptr_t p = lo + (uintptr_t)threadIdx.x * 128; p < hi; p += (uintptr_t)blockDim.x * 128)
            sc_prefetch_l2((const void *)p);
    }
    if (flags & GS_EARLY) sc_pdl_trigger();
    sc_pdl_wait_only();
    if (!(flags & GS_EARLY)) sc_pdl_trigger();
    gemv_stage<R, PRO>(n, f, xs, red);
    if (ws) { /* the slice has landed (each thread its own copies), then everyone's */
        sc_cp_async_wait_all();
        __syncthreads();
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t nt = (j1 - j0) * nseg;
    for (int64_t t = warp; t < nt; t += 2 * GEMV_WARPS) {
        const int64_t t2 = t + GEMV_WARPS;
        uint4 wa[GS_S], wb[GS_S];
        gs_load(b, ws, j0, t, nseg, seglen, nv, lane, wa);
        if (t2 < nt) gs_load(b, ws, j0, t2, nseg, seglen, nv, lane, wb);
        float acc[R];
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = 0.0f;
        gs_dot<R>(b, xs, K, t, nseg, seglen, nv, lane, wa, acc);
        gs_finish<R, EPI>(n, f, part, j0, t, nseg, lane, acc);
        if (t2 < nt) {
#pragma unroll
            for (int r = 0; r < R; r++) acc[r] = 0.0f;
            gs_dot<R>(b, xs, K, t2, nseg, seglen, nv, lane, wb, acc);
            gs_finish<R, EPI>(n, f, part, j0, t2, nseg, lane, acc);
        }
    }
    if (nseg == 1) return;
    __syncthreads();
    for (int64_t c = threadIdx.x; c < (j1 - j0) * R; c += blockDim.x) {
        const int64_t jl = c / R;
        const int r = (int)(c % R);
        float v = 0.0f;
        for (int s = 0; s < nseg; s++) v += part[(jl * nseg + s) * R + r];
        gs_store<EPI>(n, f, r, j0 + jl, v);
    }
}

template <int R>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv_stream(sc_node n, int flags, int nseg, int seglen) {
    gs_body<R, SC_GEMV_PRO_NONE, SC_GEMV_EPI_NONE>(n, NULL, flags, nseg, seglen);
}

template <int R, int PRO, int EPI>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    k_gemv_stream_fused(const __grid_constant__ sc_gemv_fused f, int flags, int nseg, int seglen) {
    gs_body<R, PRO, EPI>(f.mm, &f, flags, nseg, seglen);
}

static int64_t gemv_rows(const sc_node *n) { return n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2]; }

extern "C" int sc_gemv_takes(const sc_node *n) {
    const sc_tensor &a = n->src[0], &b = n->src[1], &d = n->dst;
    const int64_t R = gemv_rows(n), K = a.ne[3];
    if (R < 1 || R > GEMV_MAX_ROWS || K < 1 || b.ne[2] < 1) return 0;
    if (b.ne[0] != 1 || b.ne[1] != 1 || (K > 1 && b.nb[3] != 1)) return 0;
    if (a.dt == SC_I32 || b.dt == SC_I32 || d.dt == SC_I32) return 0;
    if ((size_t)R * (size_t)K * sizeof(float) > GEMV_SMEM_MAX) return 0;
    return 1;
}

static int gemv_vec(const sc_node *n) {
    const int64_t K = n->src[0].ne[3];
    const sc_tensor &b = n->src[1];
    const size_t es = b.dt == SC_F32 ? 4 : 2;
    const bool aligned = ((uintptr_t)b.p % 16) == 0 && ((size_t)b.nb[2] * es) % 16 == 0;
    if (aligned && es == 2 && K % 8 == 0) return 8;
    if (aligned && es == 4 && K % 4 == 0) return 4;
    return 0;
}

/* How the streaming kernel runs one node (gs_plan): grid, K segments, prefetch/early flags. */
typedef struct gs_plan {
    unsigned grid;
    int nseg, seglen, flags;
    size_t smem;
} gs_plan;

static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && e[0] ? atoi(e) : dflt;
}

/* false: the node takes the kernel above (f32 weights, unaligned rows, SISA_CUDA_GEMV=old, or
 * the segment sums would not fit in shared memory). */
static bool gs_plan_for(const sc_node *n, int n_sm, int b_const, gs_plan *p) {
    const char *e = getenv("SISA_CUDA_GEMV");
    if ((e && strcmp(e, "old") == 0) || gemv_vec(n) != 8) return false;
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3], N = n->src[1].ne[2], nv = K / 8;
    const int64_t sm = n_sm > 0 ? n_sm : 132, maxseg = (nv + 31) / 32;
    int64_t nseg = (nv + 32 * GS_S - 1) / (32 * GS_S);
    const int64_t want = sm * GEMV_WARPS * 2; /* tasks: one per warp of two 8-warp blocks per SM */
    if (N * nseg < want) {
        const int64_t more = (want + N - 1) / N;
        nseg = more < maxseg ? more : maxseg;
    }
    const int64_t seglen = ((nv + nseg - 1) / nseg + 31) / 32 * 32; /* <= 32 * GS_S */
    nseg = (nv + seglen - 1) / seglen;
    const int64_t bps = env_int("SISA_CUDA_GEMV_BPS", 2);
    const int64_t tasks = N * nseg, blocks = (tasks + GEMV_WARPS - 1) / GEMV_WARPS;
    const int64_t cap = sm * (bps > 0 ? bps : 1);
    p->grid = (unsigned)(blocks < cap ? blocks : cap);
    p->flags = 0;
    /* b constant during this graph (the caller's word: recorded, and no node writes it): each
     * block copies its rows into shared memory before it waits for the previous kernel. More
     * blocks when a slice would not fit, as long as ~3 per SM stay resident together. */
    if (b_const && env_int("SISA_CUDA_GEMV_PRELOAD", 0)) { /* opt-in: no gain measured (docs/CUDA.md) */
        const int64_t row_bytes = nv * 16, fit = GS_SLICE_MAX / row_bytes; /* rows per block */
        if (fit >= 1) {
            int64_t g = p->grid;
            if ((N + g - 1) / g > fit) g = (N + fit - 1) / fit;
            if (g <= sm * 3) {
                p->grid = (unsigned)g;
                p->flags |= GS_PRELOAD;
            }
        }
    }
    const int64_t rows = (N + p->grid - 1) / p->grid + 1; /* a block's columns, at most */
    const int64_t parts = (nseg > 1 || (p->flags & GS_PRELOAD)) ? (rows * nseg * R + 3) / 4 * 4 : 0;
    const int64_t slice = p->flags & GS_PRELOAD ? rows * nv * 16 : 0;
    p->smem = (size_t)(R * K + parts) * sizeof(float) + (size_t)slice;
    if (p->smem > GEMV_SMEM_MAX) {
        if (!(p->flags & GS_PRELOAD)) return false;
        p->flags &= ~GS_PRELOAD; /* the plain streaming kernel then */
        const int64_t rows2 = (N + p->grid - 1) / p->grid + 1;
        p->smem = (size_t)(R * K + (nseg > 1 ? rows2 * nseg * R : 0)) * sizeof(float);
        if (p->smem > GEMV_SMEM_MAX) return false;
    }
    p->nseg = (int)nseg;
    p->seglen = (int)seglen;
    /* L2 (50 MB on the H100) holds a decode layer's projections; the 77 MB logits matrix would
     * evict its own prefetched lines before they are read */
    if (!(p->flags & GS_PRELOAD) && env_int("SISA_CUDA_GEMV_PREFETCH", 1) &&
        (size_t)N * (size_t)K * 2 <= ((size_t)24 << 20))
        p->flags |= GS_PREFETCH;
    if (env_int("SISA_CUDA_GEMV_EARLY", 0)) p->flags |= GS_EARLY;
    return true;
}

template <int PRO, int EPI>
static cudaError_t launch_stream_fused(const sc_gemv_fused *f, int64_t R, const gs_plan *p, cudaStream_t s) {
    const dim3 grid(p->grid), block(GEMV_WARPS * 32);
    switch (R) {
    case 1: return sc_launch(k_gemv_stream_fused<1, PRO, EPI>, grid, block, p->smem, s, *f, p->flags, p->nseg, p->seglen);
    case 2: return sc_launch(k_gemv_stream_fused<2, PRO, EPI>, grid, block, p->smem, s, *f, p->flags, p->nseg, p->seglen);
    case 3: return sc_launch(k_gemv_stream_fused<3, PRO, EPI>, grid, block, p->smem, s, *f, p->flags, p->nseg, p->seglen);
    case 4: return sc_launch(k_gemv_stream_fused<4, PRO, EPI>, grid, block, p->smem, s, *f, p->flags, p->nseg, p->seglen);
    default: return cudaErrorInvalidValue;
    }
}

template <int PRO, int EPI>
static cudaError_t launch_fused(const sc_gemv_fused *f, int64_t R, unsigned grid, size_t smem, int vec,
                                cudaStream_t s) {
    const dim3 block(GEMV_WARPS * 32);
    switch (R) {
    case 1: return sc_launch(k_gemv_fused<1, PRO, EPI>, dim3(grid), block, smem, s, *f, vec);
    case 2: return sc_launch(k_gemv_fused<2, PRO, EPI>, dim3(grid), block, smem, s, *f, vec);
    case 3: return sc_launch(k_gemv_fused<3, PRO, EPI>, dim3(grid), block, smem, s, *f, vec);
    case 4: return sc_launch(k_gemv_fused<4, PRO, EPI>, dim3(grid), block, smem, s, *f, vec);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" cudaError_t sc_launch_gemv_fused(const sc_gemv_fused *f, int n_sm, int b_const, cudaStream_t s) {
    const sc_node *n = &f->mm;
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3], N = n->src[1].ne[2];
    const int64_t want = (N + GEMV_WARPS - 1) / GEMV_WARPS, cap = (int64_t)(n_sm > 0 ? n_sm : 132) * 8;
    const unsigned grid = (unsigned)(want < cap ? want : cap);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const int vec = gemv_vec(n);
    const int pro = f->pro, epi = f->epi;
    gs_plan p;
    const bool stream = gs_plan_for(n, n_sm, b_const, &p);
#define SC_GEMV_CASE(P, E)                                                                       \
    if (pro == P && epi == E)                                                                    \
        return stream ? launch_stream_fused<P, E>(f, R, &p, s) : launch_fused<P, E>(f, R, grid, smem, vec, s)
    SC_GEMV_CASE(SC_GEMV_PRO_NONE, SC_GEMV_EPI_NONE);
    SC_GEMV_CASE(SC_GEMV_PRO_NONE, SC_GEMV_EPI_ADD);
    SC_GEMV_CASE(SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_NONE);
    SC_GEMV_CASE(SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_ADD);
    SC_GEMV_CASE(SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_NONE);
    SC_GEMV_CASE(SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_ADD);
#undef SC_GEMV_CASE
    return cudaErrorInvalidValue;
}

extern "C" cudaError_t sc_launch_gemv(const sc_node *n, int n_sm, int b_const, cudaStream_t s) {
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3], N = n->src[1].ne[2];
    const int vec = gemv_vec(n);
    const int64_t want = (N + GEMV_WARPS - 1) / GEMV_WARPS, cap = (int64_t)(n_sm > 0 ? n_sm : 132) * 8;
    const unsigned grid = (unsigned)(want < cap ? want : cap);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const dim3 block(GEMV_WARPS * 32);
    gs_plan p;
    if (gs_plan_for(n, n_sm, b_const, &p)) {
        const dim3 g(p.grid);
        switch (R) {
        case 1: return sc_launch(k_gemv_stream<1>, g, block, p.smem, s, *n, p.flags, p.nseg, p.seglen);
        case 2: return sc_launch(k_gemv_stream<2>, g, block, p.smem, s, *n, p.flags, p.nseg, p.seglen);
        case 3: return sc_launch(k_gemv_stream<3>, g, block, p.smem, s, *n, p.flags, p.nseg, p.seglen);
        case 4: return sc_launch(k_gemv_stream<4>, g, block, p.smem, s, *n, p.flags, p.nseg, p.seglen);
        default: return cudaErrorInvalidValue;
        }
    }
    switch (R) {
    case 1: return sc_launch(k_gemv<1>, dim3(grid), block, smem, s, *n, vec);
    case 2: return sc_launch(k_gemv<2>, dim3(grid), block, smem, s, *n, vec);
    case 3: return sc_launch(k_gemv<3>, dim3(grid), block, smem, s, *n, vec);
    case 4: return sc_launch(k_gemv<4>, dim3(grid), block, smem, s, *n, vec);
    default: return cudaErrorInvalidValue;
    }
}
