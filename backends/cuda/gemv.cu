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

#include "cuda_mega.h"
#include "gemv.cuh"

template <int R>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv(sc_node n, int vec) {
    extern __shared__ __align__(16) float xs[]; /* R x K */
    __shared__ float red[GEMV_WARPS];
    sc_pdl_wait();
    gemv_body<R, SC_GEMV_PRO_NONE, SC_GEMV_EPI_NONE>(n, NULL, vec, blockIdx.x, gridDim.x, xs, red);
}

template <int R, int PRO, int EPI>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv_fused(const __grid_constant__ sc_gemv_fused f, int vec) {
    extern __shared__ __align__(16) float xs[]; /* R x K */
    __shared__ float red[GEMV_WARPS];
    sc_pdl_wait();
    gemv_body<R, PRO, EPI>(f.mm, &f, vec, blockIdx.x, gridDim.x, xs, red);
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
#define GS_SLICE_MAX (36 * 1024) /* bytes of b a block preloads into shared memory, at most */
enum { GS_PREFETCH = 1, GS_EARLY = 2, GS_PRELOAD = 4 };

/* One block of the streaming kernel: its slice of b asked for (GS_PREFETCH) or copied into shared
 * memory (GS_PRELOAD) before it waits for the previous kernel, then gemv.cuh's gs_main. */
template <int R, int PRO, int EPI>
__device__ __forceinline__ void gs_body(const sc_node &n, const sc_gemv_fused *f, int flags, int nseg, int seglen) {
    extern __shared__ __align__(16) float xs[]; /* R x K staged rows, then the segment sums */
    __shared__ float red[GEMV_WARPS];
    const sc_tensor &a = n.src[0], &b = n.src[1];
    const int64_t K = a.ne[3], N = b.ne[2], nv = K / 8;
    int64_t j0, j1;
    gs_cols(N, blockIdx.x, gridDim.x, j0, j1);
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
        gs_prefetch_rows(b.p, b.nb[2], j0, j1, K, threadIdx.x, blockDim.x);
    }
    if (flags & GS_EARLY) sc_pdl_trigger();
    sc_pdl_wait_only();
    if (!(flags & GS_EARLY)) sc_pdl_trigger();
    gs_main<R, PRO, EPI>(n, f, nseg, seglen, j0, j1, xs, red, ws);
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
 * the segment sums would not fit in shared memory). grid_cap: at most that many blocks (the
 * persistent kernel's grid) instead of SISA_CUDA_GEMV_BPS per SM; the K segments, and with them
 * every value, depend only on the SM count. */
static bool gs_plan_for(const sc_node *n, int n_sm, int b_const, int64_t grid_cap, gs_plan *p) {
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
    const int64_t cap = grid_cap > 0 ? grid_cap : sm * (bps > 0 ? bps : 1);
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

/* Blocks of the one-warp-per-column kernel: a warp per column, at most cap blocks (default 8 per SM). */
static unsigned gemv_grid(const sc_node *n, int n_sm, int64_t cap) {
    const int64_t want = (n->src[1].ne[2] + GEMV_WARPS - 1) / GEMV_WARPS;
    if (cap <= 0) cap = (int64_t)(n_sm > 0 ? n_sm : 132) * 8;
    return (unsigned)(want < cap ? want : cap);
}

extern "C" cudaError_t sc_launch_gemv_fused(const sc_gemv_fused *f, int n_sm, int b_const, cudaStream_t s) {
    const sc_node *n = &f->mm;
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3];
    const unsigned grid = gemv_grid(n, n_sm, 0);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const int vec = gemv_vec(n);
    const int pro = f->pro, epi = f->epi;
    gs_plan p;
    const bool stream = gs_plan_for(n, n_sm, b_const, 0, &p);
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
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3];
    const int vec = gemv_vec(n);
    const unsigned grid = gemv_grid(n, n_sm, 0);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const dim3 block(GEMV_WARPS * 32);
    gs_plan p;
    if (gs_plan_for(n, n_sm, b_const, 0, &p)) {
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

/* The persistent kernel's task for a GEMV (plain: f->pro = f->epi = 0): the kernel and K segments
 * its launcher would choose (gs_plan_for without the preload, which needs the previous kernel's
 * wait), re-gridded to at most `grid` blocks. The block sum's floats come first in its shared
 * memory, then the staged rows (16-byte aligned). */
extern "C" int sc_mega_gemv(const sc_gemv_fused *f, int n_sm, int grid, sc_mega_task *t) {
    const sc_node *n = &f->mm;
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3];
    if (R != SC_MEGA_GEMV_ROWS || f->pro < 0 || f->pro > SC_GEMV_PRO_SWIGLU || f->epi < 0 || f->epi > SC_GEMV_EPI_ADD)
        return 0;
    t->u.g = *f;
    t->sub = f->pro * 2 + f->epi;
    gs_plan p;
    if (gs_plan_for(n, n_sm, 0, grid, &p)) {
        t->kind = SC_MT_GEMV_STREAM;
        t->nvb = (int32_t)p.grid;
        t->i[0] = p.nseg;
        t->i[1] = p.seglen;
        t->smem = (int32_t)(p.smem + SC_MEGA_RED_BYTES);
        t->pf_ok = (p.flags & GS_PREFETCH) != 0;
    } else {
        t->kind = SC_MT_GEMV;
        t->nvb = (int32_t)gemv_grid(n, n_sm, grid);
        t->i[0] = gemv_vec(n);
        t->smem = (int32_t)((size_t)R * (size_t)K * sizeof(float) + SC_MEGA_RED_BYTES);
    }
    static_assert(SC_MEGA_RED_BYTES >= GEMV_WARPS * sizeof(float) && SC_MEGA_RED_BYTES % 16 == 0,
                  "the block sum's floats before the staged rows");
    return t->smem <= SC_MEGA_SMEM;
}
