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

template <int R>
__global__ void __launch_bounds__(GEMV_WARPS * 32) k_gemv(sc_node n, int vec) {
    extern __shared__ float xs[]; /* R x K */
    const sc_tensor &a = n.src[0], &b = n.src[1], &d = n.dst;
    const int64_t A1 = a.ne[1], M = a.ne[2], K = a.ne[3], N = b.ne[2];
    for (int64_t i = threadIdx.x; i < (int64_t)R * K; i += blockDim.x) {
        const int64_t r = i / K, k = i % K;
        const int64_t c0 = r / (A1 * M), c1 = (r / M) % A1, c2 = r % M;
        xs[i] = sc_ld(a, sc_off(a, c0, c1, c2, k));
    }
    __syncthreads();
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
            if (lane == 0) sc_st(d, r * N + j, v);
        }
    }
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

extern "C" cudaError_t sc_launch_gemv(const sc_node *n, int n_sm, cudaStream_t s) {
    const int64_t R = gemv_rows(n), K = n->src[0].ne[3], N = n->src[1].ne[2];
    const sc_tensor &b = n->src[1];
    const size_t es = b.dt == SC_F32 ? 4 : 2;
    int vec = 0;
    const bool aligned = ((uintptr_t)b.p % 16) == 0 && ((size_t)b.nb[2] * es) % 16 == 0;
    if (aligned && es == 2 && K % 8 == 0) vec = 8;
    else if (aligned && es == 4 && K % 4 == 0) vec = 4;
    const int64_t want = (N + GEMV_WARPS - 1) / GEMV_WARPS, cap = (int64_t)(n_sm > 0 ? n_sm : 132) * 8;
    const unsigned grid = (unsigned)(want < cap ? want : cap);
    const size_t smem = (size_t)R * (size_t)K * sizeof(float);
    const dim3 block(GEMV_WARPS * 32);
    switch (R) {
    case 1: k_gemv<1><<<grid, block, smem, s>>>(*n, vec); break;
    case 2: k_gemv<2><<<grid, block, smem, s>>>(*n, vec); break;
    case 3: k_gemv<3><<<grid, block, smem, s>>>(*n, vec); break;
    case 4: k_gemv<4><<<grid, block, smem, s>>>(*n, vec); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
