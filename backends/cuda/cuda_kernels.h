/*
 * cuda_kernels.h — the boundary between the CUDA backend's C side (devices, buffers, streams,
 * dispatch, cuBLASLt, cuDNN) and its .cu kernels.
 *
 * The kernels never see engine structs: the dispatcher flattens a node into an sc_node (device
 * pointers, dtypes, shapes and ELEMENT strides, the op's scalar parameters) and calls one launcher
 * per op family. Launchers are asynchronous on the given stream and return the cudaError_t of the
 * launch (cudaGetLastError), so the dispatcher can name the node that failed.
 */
#ifndef SISA_CUDA_KERNELS_H
#define SISA_CUDA_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same numbering as sisa_dtype (tensor.h); checked by a static assert in cuda_backend.c. */
enum { SC_F32 = 0, SC_F16 = 1, SC_BF16 = 2, SC_I32 = 3 };

/* Same numbering as enum sisa_op (ops.h); checked by static asserts in cuda_backend.c. */
enum {
    SC_OP_CPY = 2, SC_OP_EMBED = 3, SC_OP_RMS_NORM = 4, SC_OP_ROPE = 5, SC_OP_ADD = 6,
    SC_OP_SCALE = 7, SC_OP_MATMUL = 8, SC_OP_SOFTMAX = 9, SC_OP_ARGMAX = 10, SC_OP_SWIGLU = 11,
    SC_OP_SSM_DECAY = 12, SC_OP_SSM_CHANNELS = 13, SC_OP_AUGMENT = 14, SC_OP_SDPA = 15
};

typedef struct sc_tensor {
    void *p;         /* device address of element (0,0,0,0); NULL = source absent */
    int dt;          /* SC_* */
    int pad_;
    int64_t ne[4];   /* shape, outermost first */
    int64_t nb[4];   /* strides in ELEMENTS */
} sc_tensor;

typedef struct sc_node {
    int op; /* enum sisa_op */
    int pad_;
    sc_tensor dst;
    sc_tensor src[6];
    float fp[8];
    int32_t ip[8];
} sc_node;

/* cuda_backend.c: launch the own kernels as programmatic dependents (sm_90+, SISA_CUDA_PDL=0 off;
 * sc_common.cuh's sc_launch and sc_pdl_wait). 0 = plain stream order. */
int sc_pdl_on(void);

/* profile.cu: one thread spinning for `cycles` clock cycles (profiling only) */
cudaError_t sc_launch_spin(long long cycles, cudaStream_t s);

/* elementwise.cu: CPY, ADD, SCALE, SWIGLU, AUGMENT, EMBED */
cudaError_t sc_launch_elementwise(const sc_node *n, cudaStream_t s);
/* norm.cu: RMS_NORM */
cudaError_t sc_launch_rms_norm(const sc_node *n, cudaStream_t s);
/* rope_embed.cu: ROPE */
cudaError_t sc_launch_rope(const sc_node *n, cudaStream_t s);
/* softmax_argmax.cu */
cudaError_t sc_launch_softmax(const sc_node *n, cudaStream_t s);
cudaError_t sc_launch_argmax(const sc_node *n, cudaStream_t s);
/* ssm.cu */
cudaError_t sc_launch_ssm_decay(const sc_node *n, cudaStream_t s);
cudaError_t sc_launch_ssm_channels(const sc_node *n, cudaStream_t s);
/* ssm_augment.cu: SSM_CHANNELS fused with the two AUGMENT nodes that read its halves (cuda_fuse.c
 * finds the pattern). ssm = the SSM_CHANNELS node (its dst sCB is always written);
 * out_c = [a_c | s·Cbar | 0], out_b = [a_b | s·Bbar | 0], each skipped when its p is NULL (that
 * AUGMENT then runs unfused); chunk is set by the launcher.
 * sc_ssm_augment_takes: 0 when d_s is outside what the kernel's shared memory holds. */
typedef struct sc_ssm_augment {
    sc_node ssm;
    sc_tensor a_c, a_b, out_c, out_b;
    int chunk;
    int pad_;
} sc_ssm_augment;
int sc_ssm_augment_takes(const sc_ssm_augment *f);
cudaError_t sc_launch_ssm_augment(sc_ssm_augment *f, cudaStream_t s);
/* matmul_fallback.cu: any dtypes and strides, fp32 accumulation (layouts cuBLASLt cannot take) */
cudaError_t sc_launch_matmul_fallback(const sc_node *n, cudaStream_t s);

/* sdpa.cu: own flash attention. Two kernels:
 *   "wmma"   — Q, K, V all bf16 or all f16: tensor cores (16x16x16, fp32 accumulate)
 *   "scalar" — any float dtypes (f32 and mixed): fp32 FMA, warp per query
 * sc_sdpa_smem returns the dynamic shared memory a kernel needs for this node (0 = the kernel
 * cannot take the node), so selection can check it against the device's limit. */
enum { SC_SDPA_SCALAR = 0, SC_SDPA_WMMA = 1 };
size_t sc_sdpa_smem(const sc_node *n, int kind);
cudaError_t sc_launch_sdpa(const sc_node *n, int kind, cudaStream_t s);
/* sdpa_fa.cu: the fast own flash attention (mma.sync m16n8k16, cp.async double buffering, P and O
 * in registers). sc_sdpa_fa_smem: 0 = cannot take the node (dtype, strides, alignment, shape). */
size_t sc_sdpa_fa_smem(const sc_node *n);
cudaError_t sc_launch_sdpa_fa(const sc_node *n, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
