/*
 * norm.cu — RMS_NORM (ops.h): one block per row; the mean square is reduced in fp32 across the
 * block, then every element is scaled by 1/sqrt(ms + eps) and the weight. Rows are read twice
 * (the second read hits L1/L2 for the row widths of SISA models, d <= 4096).
 */
#include "sc_common.cuh"

__device__ float block_sum(float v, float *red) {
    v = sc_warp_sum(v);
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    if (l == 0) red[w] = v;
    __syncthreads();
    v = l < nw ? red[l] : 0.0f;
    v = sc_warp_sum(v);
    __syncthreads();
    return v;
}

__global__ void k_rms_norm(sc_node n, int64_t rows) {
    __shared__ float red[32];
    sc_pdl_wait();
    const sc_tensor &x = n.src[0], &w = n.src[1], &d = n.dst;
    const int64_t D = x.ne[3];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t i2 = r % x.ne[2], i1 = (r / x.ne[2]) % x.ne[1], i0 = r / (x.ne[2] * x.ne[1]);
        const int64_t base = sc_off(x, i0, i1, i2, 0);
        float ss = 0.0f;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float v = sc_ld(x, base + j * x.nb[3]);
            ss += v * v;
        }
        ss = block_sum(ss, red);
        const float inv = rsqrtf(ss / (float)D + n.fp[0]);
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
            sc_st(d, r * D + j, sc_ld(x, base + j * x.nb[3]) * inv * sc_ld(w, j * w.nb[3]));
    }
}

extern "C" cudaError_t sc_launch_rms_norm(const sc_node *n, cudaStream_t s) {
    const int64_t rows = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2];
    if (rows == 0) return cudaSuccess;
    const int threads = n->src[0].ne[3] >= 1024 ? 256 : 128;
    cudaError_t e = sc_launch(k_rms_norm, dim3((unsigned)(rows < 1 << 20 ? rows : 1 << 20)), dim3(threads), 0, s, *n, rows);
    return e;
}
