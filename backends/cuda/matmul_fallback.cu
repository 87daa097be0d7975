/*
 * matmul_fallback.cu — MATMUL (ops.h: dst = a·bᵀ, b broadcast over the batch dims) for what
 * cuBLASLt cannot express: mixed source dtypes, a non-unit innermost stride, batch strides that do
 * not flatten. Plain shared-memory tiling (16x16 outputs per block, K in steps of 16), fp32
 * accumulation, any strides. Correctness path, not a fast one: the dispatcher prefers cuBLASLt.
 */
#include "sc_common.cuh"

#define TILE 16

__global__ void k_matmul(sc_node n) {
    __shared__ float As[TILE][TILE + 1], Bs[TILE][TILE + 1];
    const sc_tensor &a = n.src[0], &b = n.src[1], &d = n.dst;
    const int64_t M = a.ne[2], K = a.ne[3], N = b.ne[2];
    const int64_t pq = blockIdx.z, p = pq / a.ne[1], q = pq % a.ne[1];
    const int64_t bp = b.ne[0] == 1 ? 0 : p, bq = b.ne[1] == 1 ? 0 : q;
    const int64_t i = blockIdx.y * TILE + threadIdx.y, j = blockIdx.x * TILE + threadIdx.x;
    const int64_t bj = blockIdx.x * TILE + threadIdx.y; /* row of b this thread loads */
    float acc = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += TILE) {
        const int64_t k = k0 + threadIdx.x;
        As[threadIdx.y][threadIdx.x] = (i < M && k < K) ? sc_ld(a, sc_off(a, p, q, i, k)) : 0.0f;
        Bs[threadIdx.y][threadIdx.x] = (bj < N && k < K) ? sc_ld(b, sc_off(b, bp, bq, bj, k)) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE; kk++) acc += As[threadIdx.y][kk] * Bs[threadIdx.x][kk];
        __syncthreads();
    }
    if (i < M && j < N) sc_st(d, ((p * a.ne[1] + q) * M + i) * N + j, acc);
}

extern "C" cudaError_t sc_launch_matmul_fallback(const sc_node *n, cudaStream_t s) {
    const int64_t M = n->src[0].ne[2], N = n->src[1].ne[2], batch = n->src[0].ne[0] * n->src[0].ne[1];
    if (M == 0 || N == 0 || batch == 0) return cudaSuccess;
    if (batch > 65535 || (M + TILE - 1) / TILE > 65535) return cudaErrorInvalidConfiguration;
    dim3 grid((unsigned)((N + TILE - 1) / TILE), (unsigned)((M + TILE - 1) / TILE), (unsigned)batch);
    k_matmul<<<grid, dim3(TILE, TILE), 0, s>>>(*n);
    return cudaGetLastError();
}
