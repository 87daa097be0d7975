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
                for (int r = 0; r < R; r++) {
                    const float4 x0 = *(const float4 *)&xs[r * K + v * 8];
                    const float4 x1 = *(const float4 *)&xs[r * K + v * 8 + 4];
                    acc[r] += w[0] * x0.x + w[1] * x0.y + w[2] * x0.z + w[3] * x0.w +
                              w[4] * x1.x + w[5] * x1.y + w[6] * x1.z + w[7] * x1.w;
                }
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

extern "C" cudaError_t sc_launch_gemv_fused(const sc_gemv_fused *f, int n_sm, cudaStream_t s) {
    const sc_node *n = &f->mm;
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3], N = n->src[1].ne[2];
    const int64_t want = (N + GEMV_WARPS - 1) / GEMV_WARPS, cap = (int64_t)(n_sm > 0 ? n_sm : 132) * 8;
    const unsigned grid = (unsigned)(want < cap ? want : cap);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const int vec = gemv_vec(n);
    const int pro = f->pro, epi = f->epi;
#define SC_GEMV_CASE(P, E) if (pro == P && epi == E) return launch_fused<P, E>(f, R, grid, smem, vec, s)
    SC_GEMV_CASE(SC_GEMV_PRO_NONE, SC_GEMV_EPI_NONE);
    SC_GEMV_CASE(SC_GEMV_PRO_NONE, SC_GEMV_EPI_ADD);
    SC_GEMV_CASE(SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_NONE);
    SC_GEMV_CASE(SC_GEMV_PRO_RMS_NORM, SC_GEMV_EPI_ADD);
    SC_GEMV_CASE(SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_NONE);
    SC_GEMV_CASE(SC_GEMV_PRO_SWIGLU, SC_GEMV_EPI_ADD);
#undef SC_GEMV_CASE
    return cudaErrorInvalidValue;
}

extern "C" cudaError_t sc_launch_gemv(const sc_node *n, int n_sm, cudaStream_t s) {
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3], N = n->src[1].ne[2];
    const int vec = gemv_vec(n);
    const int64_t want = (N + GEMV_WARPS - 1) / GEMV_WARPS, cap = (int64_t)(n_sm > 0 ? n_sm : 132) * 8;
    const unsigned grid = (unsigned)(want < cap ? want : cap);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const dim3 block(GEMV_WARPS * 32);
    switch (R) {
    case 1: return sc_launch(k_gemv<1>, dim3(grid), block, smem, s, *n, vec);
    case 2: return sc_launch(k_gemv<2>, dim3(grid), block, smem, s, *n, vec);
    case 3: return sc_launch(k_gemv<3>, dim3(grid), block, smem, s, *n, vec);
    case 4: return sc_launch(k_gemv<4>, dim3(grid), block, smem, s, *n, vec);
    default: return cudaErrorInvalidValue;
    }
}
