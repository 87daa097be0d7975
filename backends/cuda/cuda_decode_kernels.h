/*
 * cuda_decode_kernels.h — the CUDA kernels for few-row work (decode steps), next to the general
 * ones of cuda_kernels.h: a GEMV-style MATMUL (gemv.cu) and a split-key SDPA for few queries
 * (decode_attn.cu). Both follow cuda_kernels.h's conventions: the node arrives as an sc_node, and
 * every kernel takes that sc_node by value as its FIRST argument, with later arguments that depend
 * only on shapes and fixed addresses (cuda_graph.c patches a recorded kernel by replacing that
 * first argument when the node's params or addresses change).
 */
#ifndef SISA_CUDA_DECODE_KERNELS_H
#define SISA_CUDA_DECODE_KERNELS_H

#include "cuda_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gemv.cu: MATMUL with few rows. a (A0,A1,M,K) any float dtype and strides, A0·A1·M <= 4;
 * b one matrix (1,1,N,K) of f32/f16/bf16 with unit channel stride; dst contiguous f32/f16/bf16.
 * One warp per output column, the rows of a staged in shared memory as f32, b streamed once with
 * 16-byte loads where aligned; fp32 accumulation. Memory bound on b: the decode projections.
 * sc_gemv_takes: 1 when the node fits (shapes, dtypes, shared memory). */
int sc_gemv_takes(const sc_node *n);
/* b_const: b is not written by anything that can still run when this kernel starts (the caller
 * checks: a recorded graph in which no node writes b's memory); then a block may read its rows of
 * b before it waits for the previous kernel (gemv.cu). */
cudaError_t sc_launch_gemv(const sc_node *n, int n_sm, int b_const, cudaStream_t s);

/* The same GEMV with its neighbours folded in (cuda_fuse_gemv.c finds them): a prologue that
 * makes the rows of a from the node before — RMS_NORM(px, weight pw, eps) or SWIGLU(gate px,
 * up pw), rounded to pro_dt as that node would have stored them — and/or an epilogue that writes
 * out = res + (the product rounded to mm.dst's dtype), the ADD after it. mm.dst is not written
 * when epi is set. */
enum { SC_GEMV_PRO_NONE = 0, SC_GEMV_PRO_RMS_NORM = 1, SC_GEMV_PRO_SWIGLU = 2 };
enum { SC_GEMV_EPI_NONE = 0, SC_GEMV_EPI_ADD = 1 };
typedef struct sc_gemv_fused {
    sc_node mm;
    int pro, pro_dt, epi, pad_;
    float eps;
    int pad2_;
    sc_tensor px, pw, res, out;
} sc_gemv_fused;
cudaError_t sc_launch_gemv_fused(const sc_gemv_fused *f, int n_sm, int b_const, cudaStream_t s);

/* decode_attn.cu: SDPA (ops.h, both forms, causal with p0) for Tq <= 8 queries, any float dtypes
 * and strides (flash-decoding). sc_decode_attn_workspace: the bytes of workspace the node needs
 * (either kernel below), 0 when it does not fit. */
size_t sc_decode_attn_workspace(const sc_node *n);
/* The split kernel (the default): a few fat blocks per (b, h, query), as many as cover the n_sm
 * SMs, each streaming its share of the visible keys with every warp on its own keys; the last
 * block of each (b, h, query) combines the blocks' partials. count: n_count zeroed counters (left
 * zero after each launch); NULL or B·H·Tq > n_count: one block per (b, h, query), no combine.
 * split > 0 asks for that many blocks per (b, h, query) instead (still at most 32 and one per 32
 * keys; benchmarks); 0 = from n_sm. cluster (sm_90 devices only, the caller checks): the 8 blocks
 * of a (b, h, query) as a thread-block cluster that combines in distributed shared memory instead
 * (no workspace or counters; split and count ignored). */
cudaError_t sc_launch_decode_attn_split(const sc_node *n, void *workspace, unsigned *count,
                                        int64_t n_count, int n_sm, int split, int cluster,
                                        cudaStream_t s);
/* The chunk kernels (SISA_CUDA_DECODE_ATTN=old): one block per (b, h, query, 32-key chunk) writes
 * a partial (max, sum, o) to the workspace, then a combine. count: NULL = two kernels; else
 * n_count zeroed counters (left zero after each launch) and, when B·H·Tq <= n_count, ONE kernel
 * whose last block per (b, h, query) combines. */
cudaError_t sc_launch_decode_attn(const sc_node *n, void *workspace, unsigned *count, int64_t n_count,
                                  cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
