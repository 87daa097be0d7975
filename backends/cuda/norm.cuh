/*
 * norm.cuh — the body of RMS_NORM (norm.cu), shared by its kernel and the persistent decode
 * kernel (mega.cu): rows r0, r0 + rstep, ... one per (virtual) block, any block size (<= 1024).
 */
#pragma once
#include "sc_common.cuh"

/* Block-wide sum; red: 32 floats of shared memory. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    v = sc_warp_sum(v);
    const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    if (l == 0) red[w] = v;
    __syncthreads();
    v = l < nw ? red[l] : 0.0f;
    v = sc_warp_sum(v);
    __syncthreads();
    return v;
}

__device__ __forceinline__ void rms_norm_rows(const sc_node &n, int64_t rows, int64_t r0, int64_t rstep,
                                              float *red) {
    const sc_tensor &x = n.src[0], &w = n.src[1], &d = n.dst;
    const int64_t D = x.ne[3];
    for (int64_t r = r0; r < rows; r += rstep) {
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
