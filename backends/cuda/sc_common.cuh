/*
 * sc_common.cuh — device-side helpers every kernel file shares: dtype-generic element loads and
 * stores (one code path for f32/f16/bf16 and any strides; the branch on dtype is uniform across a
 * warp), 4-D index arithmetic, warp reductions.
 */
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include <utility>

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

/* A load of data that no kernel writes while this one runs, through the read-only path (__ldg),
 * when NC; a plain (coherent) load otherwise: inside the persistent decode kernel (mega.cu) an
 * earlier task of the same launch may have written it, and ld.global.nc is only defined for data
 * read-only for the kernel's whole lifetime. */
template <bool NC, class T> __device__ __forceinline__ T sc_ldro(const T *p) { return NC ? __ldg(p) : *p; }

/* softplus(x) = max(x,0) + log1p(exp(-|x|)), NaN kept. */
__device__ __forceinline__ float sc_softplus(float x) {
    return isnan(x) ? x : fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline unsigned sc_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 0x7fffffff ? 0x7fffffff : b);
}

/* Programmatic dependent launch (sm_90+, on unless SISA_CUDA_PDL=0: cuda_backend.c's sc_pdl_on): a kernel
 * launched with sc_launch may start while the kernel before it on the stream finishes, so the
 * launch and the block ramp-up of one kernel overlap the tail of the previous one (also inside
 * a CUDA graph: capture turns it into a programmatic edge). Correctness rests on one rule: every
 * kernel launched through sc_launch calls sc_pdl_wait() before it touches global memory.
 * griddepcontrol.wait returns once the previous grid has completed and its writes are visible
 * (immediately when the kernel was not launched as a dependent); launch_dependents then lets the
 * next kernel be launched — it fires only when every block of this grid has executed it or
 * exited, i.e. after all of this grid's blocks were scheduled, so a waiting dependent never holds
 * resources this grid still needs. Since each grid waits for the complete previous one before it
 * triggers, completion is transitive: kernel n + 2 passing its wait implies n has completed. */
__device__ __forceinline__ void sc_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#ifdef SC_PDL_TRIGGER_FIRST /* experiment (a separate build): every kernel triggers before it waits */
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    asm volatile("griddepcontrol.wait;" ::: "memory");
#else
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
#endif
}

/* The two halves of sc_pdl_wait, for a kernel that lets its dependent launch BEFORE it waits
 * (gemv.cu: the next kernel's blocks then become resident, and can prefetch their constant
 * operands, while this one still waits for its predecessor). Completion stays transitive: the
 * dependent's wait returns only once this grid has completed, and this grid completes only after
 * its own wait returned. The trigger still fires only once every block of this grid has executed
 * it (all of them are resident), so a waiting dependent never holds resources this grid needs. */
__device__ __forceinline__ void sc_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void sc_pdl_wait_only() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* 16 bytes global -> shared without registers (sm_80+), completed by sc_cp_async_wait_all. Both
 * addresses 16-byte aligned. */
__device__ __forceinline__ void sc_cp_async16(void *smem, const void *gmem) {
    const unsigned sa = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gmem) : "memory");
}
__device__ __forceinline__ void sc_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void sc_cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

/* Ask L2 to fetch the 128-byte line holding p: a hint with no result that the kernel waits for. */
__device__ __forceinline__ void sc_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

/* The status of a launch: its own error, else the last error (cleared either way). */
static inline cudaError_t sc_launched(cudaError_t e) {
    const cudaError_t last = cudaGetLastError();
    return e != cudaSuccess ? e : last;
}

/* Launch kernel k (whose body starts with sc_pdl_wait) on stream s, as a programmatic dependent
 * when sc_pdl_on(). Returns the launch's status (sc_launched). */
template <typename... KArgs, typename... Args>
static inline cudaError_t sc_launch(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                    Args &&...args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    if (sc_pdl_on()) {
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = at;
        cfg.numAttrs = 1;
    }
    return sc_launched(cudaLaunchKernelEx(&cfg, k, std::forward<Args>(args)...));
}
