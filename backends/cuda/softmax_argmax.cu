/*
 * softmax_argmax.cu — the row reductions SOFTMAX and ARGMAX (ops.h), one block per row.
 *
 * Non-finite values follow the definitions: the max skips NaN (comparisons), so a NaN reaches the
 * sum and makes the whole row NaN; a row of -inf only gives zeros. ARGMAX treats NaN as larger
 * than everything and takes the first index on ties, which makes the (value, index) reduction
 * order-independent.
 */
#include "sc_common.cuh"

__device__ __forceinline__ float max_skip_nan(float a, float b) { return b > a ? b : a; }

__global__ void k_softmax(sc_node n, int64_t rows) {
    __shared__ float red[32];
    const sc_tensor &x = n.src[0], &d = n.dst;
    const int64_t N = x.ne[3];
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t i2 = r % x.ne[2], i1 = (r / x.ne[2]) % x.ne[1], i0 = r / (x.ne[2] * x.ne[1]);
        const int64_t base = sc_off(x, i0, i1, i2, 0);
        float m = -INFINITY;
        int nan = 0;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
            float v = sc_ld(x, base + j * x.nb[3]);
            nan |= isnan(v);
            m = max_skip_nan(m, v);
        }
        for (int o = 16; o > 0; o >>= 1) m = max_skip_nan(m, __shfl_xor_sync(0xffffffffu, m, o));
        nan = __syncthreads_or(nan);
        if (l == 0) red[w] = m;
        __syncthreads();
        m = -INFINITY;
        for (int k = 0; k < nw; k++) m = max_skip_nan(m, red[k]);
        __syncthreads();
        if (m == -INFINITY && !nan) {
            for (int64_t j = threadIdx.x; j < N; j += blockDim.x) sc_st(d, r * N + j, 0.0f);
            continue;
        }
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) s += expf(sc_ld(x, base + j * x.nb[3]) - m);
        s = sc_warp_sum(s);
        if (l == 0) red[w] = s;
        __syncthreads();
        s = 0.0f;
        for (int k = 0; k < nw; k++) s += red[k];
        __syncthreads();
        const float inv = 1.0f / s;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
            sc_st(d, r * N + j, expf(sc_ld(x, base + j * x.nb[3]) - m) * inv);
    }
}

/* (v, i) beats (w, k)? NaN is largest; ties go to the smaller index. */
__device__ __forceinline__ bool beats(float v, int64_t i, float w, int64_t k) {
    const bool nv = isnan(v), nw = isnan(w);
    if (nv || nw) return nv && (!nw || i < k);
    return v > w || (v == w && i < k);
}

__global__ void k_argmax(sc_node n, int64_t rows) {
    __shared__ float rv[32];
    __shared__ int64_t ri[32];
    const sc_tensor &x = n.src[0];
    const int64_t N = x.ne[3];
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t i2 = r % x.ne[2], i1 = (r / x.ne[2]) % x.ne[1], i0 = r / (x.ne[2] * x.ne[1]);
        const int64_t base = sc_off(x, i0, i1, i2, 0);
        float bv = -INFINITY;
        int64_t bi = INT64_MAX;
        for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
            float v = sc_ld(x, base + j * x.nb[3]);
            if (beats(v, j, bv, bi)) { bv = v; bi = j; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (beats(ov, oi, bv, bi)) { bv = ov; bi = oi; }
        }
        if (l == 0) { rv[w] = bv; ri[w] = bi; }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int k = 1; k < nw; k++)
                if (beats(rv[k], ri[k], bv, bi)) { bv = rv[k]; bi = ri[k]; }
            ((int32_t *)n.dst.p)[r] = (int32_t)(bi == INT64_MAX ? 0 : bi);
        }
        __syncthreads();
    }
}

static unsigned row_blocks(int64_t rows) { return (unsigned)(rows < 1 << 20 ? rows : 1 << 20); }

extern "C" cudaError_t sc_launch_softmax(const sc_node *n, cudaStream_t s) {
    const int64_t rows = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    if (rows == 0) return cudaSuccess;
    k_softmax<<<row_blocks(rows), 256, 0, s>>>(*n, rows);
    return cudaGetLastError();
}

extern "C" cudaError_t sc_launch_argmax(const sc_node *n, cudaStream_t s) {
    const int64_t rows = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    if (rows == 0) return cudaSuccess;
    k_argmax<<<row_blocks(rows), 256, 0, s>>>(*n, rows);
    return cudaGetLastError();
}
