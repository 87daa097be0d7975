/*
 * sc_common.cuh — device-side helpers every kernel file shares: dtype-generic element loads and
 * stores (one code path for f32/f16/bf16 and any strides; the branch on dtype is uniform across a
 * warp), 4-D index arithmetic, warp reductions.
 */
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "cuda_kernels.h"

__device__ __forceinline__ float sc_ld(const sc_tensor &t, int64_t off) {
    switch (t.dt) {
    case SC_F16: return __half2float(((const __half *)t.p)[off]);
    case SC_BF16: return __bfloat162float(((const __nv_bfloat16 *)t.p)[off]);
    case SC_I32: return (float)((const int32_t *)t.p)[off];
    default: return ((const float *)t.p)[off];
    }
}

__device__ __forceinline__ void sc_st(const sc_tensor &t, int64_t off, float v) {
    switch (t.dt) {
    case SC_F16: ((__half *)t.p)[off] = __float2half_rn(v); break;
    case SC_BF16: ((__nv_bfloat16 *)t.p)[off] = __float2bfloat16_rn(v); break;
    case SC_I32: ((int32_t *)t.p)[off] = (int32_t)v; break;
    default: ((float *)t.p)[off] = v; break;
    }
}

__device__ __forceinline__ int64_t sc_off(const sc_tensor &t, int64_t i0, int64_t i1, int64_t i2,
                                          int64_t i3) {
    return i0 * t.nb[0] + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

/* Split a flat index of shape ne (row-major) into 4 coordinates. */
__device__ __forceinline__ void sc_unflatten(const int64_t ne[4], int64_t i, int64_t c[4]) {
    c[3] = i % ne[3]; i /= ne[3];
    c[2] = i % ne[2]; i /= ne[2];
    c[1] = i % ne[1]; i /= ne[1];
    c[0] = i;
}

__device__ __forceinline__ float sc_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float sc_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* softplus(x) = max(x,0) + log1p(exp(-|x|)), NaN kept. */
__device__ __forceinline__ float sc_softplus(float x) {
    return isnan(x) ? x : fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline unsigned sc_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 0x7fffffff ? 0x7fffffff : b);
}
