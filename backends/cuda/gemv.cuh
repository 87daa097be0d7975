/*
 * gemv.cuh — the bodies of the few-row MATMUL kernels (gemv.cu, which says why they are built
 * this way): the one-warp-per-column kernel (gemv_body) and the streaming kernel (gs_main), each
 * with the optional RMS_NORM/SWIGLU prologue and ADD epilogue, shared by gemv.cu's kernels and
 * the persistent decode kernel (mega.cu). Blocks of GEMV_WARPS warps; a "block" is a virtual
 * block (vb of nvb); shared memory arrives as pointers; NC = false where a may have been written
 * by the same launch (the persistent kernel; the weights b never are: sc_gemv_b_const).
 */
#pragma once
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
 * unfused node would have stored them. NC: a is not written while the kernel runs (sc_ldro). */
template <int R, int PRO, bool NC>
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
                for (int64_t k = threadIdx.x; k < K; k += blockDim.x) xs[r * K + k] = sc_ldro<NC>(ar + k);
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

/* The kernel of one warp per column: (virtual) block vb of nvb takes the columns vb·GEMV_WARPS +
 * warp, striding by nvb·GEMV_WARPS; xs: R x K floats of shared memory, red: GEMV_WARPS floats. */
template <int R, int PRO, int EPI, bool NC = true>
__device__ __forceinline__ void gemv_body(const sc_node &n, const sc_gemv_fused *f, int vec, int64_t vb,
                                          int64_t nvb, float *xs, float *red) {
    const sc_tensor &a = n.src[0], &b = n.src[1], &d = n.dst;
    const int64_t A1 = a.ne[1], M = a.ne[2], K = a.ne[3], N = b.ne[2];
    gemv_stage<R, PRO, NC>(n, f, xs, red);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int64_t j = vb * GEMV_WARPS + warp; j < N; j += nvb * GEMV_WARPS) {
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

#define GS_S 4 /* 16-byte loads per lane per task: a segment is at most 32 * GS_S vectors */

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

/* Columns [j0, j1) of N that (virtual) block vb of nvb owns: one contiguous span of b's rows. */
__device__ __forceinline__ void gs_cols(int64_t N, int64_t vb, int64_t nvb, int64_t &j0, int64_t &j1) {
    j0 = vb * N / nvb;
    j1 = (vb + 1) * N / nvb;
}

/* Ask L2 for rows [j0, j1) of b (K 16-bit elements each, row stride ld elements): 128-byte lines
 * spread over threads tid of nthr. */
__device__ __forceinline__ void gs_prefetch_rows(const void *b, int64_t ld, int64_t j0, int64_t j1, int64_t K,
                                                 unsigned tid, unsigned nthr) {
    const uintptr_t lo = ((uintptr_t)((const uint16_t *)b + j0 * ld)) & ~(uintptr_t)127;
    const uintptr_t hi = (uintptr_t)((const uint16_t *)b + (j1 - 1) * ld + K);
    for (uintptr_t p = lo + (uintptr_t)tid * 128; p < hi; p += (uintptr_t)nthr * 128)
        sc_prefetch_l2((const void *)p);
}

/* The streaming GEMV of one (virtual) block, columns [j0, j1) (gs_cols), from the staging of its
 * rows on: xs = R x K staged rows then the segment sums (shared memory), red: GEMV_WARPS floats;
 * ws: the block's slice of b already copied (cp.async, not yet waited for) into shared memory, or
 * NULL (b read from global memory). */
template <int R, int PRO, int EPI, bool NC = true>
__device__ __forceinline__ void gs_main(const sc_node &n, const sc_gemv_fused *f, int nseg, int seglen, int64_t j0,
                                        int64_t j1, float *xs, float *red, const uint4 *ws) {
    const sc_tensor &a = n.src[0], &b = n.src[1];
    const int64_t K = a.ne[3], nv = K / 8;
    float *part = xs + R * K;
    gemv_stage<R, PRO, NC>(n, f, xs, red);
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

