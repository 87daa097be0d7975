/*
 * norm.cu — RMS_NORM (ops.h): one block per row; the mean square is reduced in fp32 across the
 * block, then every element is scaled by 1/sqrt(ms + eps) and the weight. Rows are read twice
 * (the second read hits L1/L2 for the row widths of SISA models, d <= 4096).
 */
#include "cuda_mega.h"
#include "norm.cuh"

__global__ void k_rms_norm(sc_node n, int64_t rows) {
    __shared__ float red[32];
    sc_pdl_wait();
    rms_norm_rows(n, rows, blockIdx.x, gridDim.x, red);
}

static int64_t rms_rows(const sc_node *n) { return n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2]; }
static unsigned rms_blocks(int64_t rows) { return (unsigned)(rows < 1 << 20 ? rows : 1 << 20); }

extern "C" cudaError_t sc_launch_rms_norm(const sc_node *n, cudaStream_t s) {
    const int64_t rows = rms_rows(n);
    if (rows == 0) return cudaSuccess;
    const int threads = n->src[0].ne[3] >= 1024 ? 256 : 128;
    cudaError_t e = sc_launch(k_rms_norm, dim3(rms_blocks(rows)), dim3(threads), 0, s, *n, rows);
    return e;
}

/* The persistent kernel's task: the same rows and blocks, SC_MEGA_THREADS threads (the mean
 * square is summed in another order than with 128 threads: not bit-identical there). */
extern "C" int sc_mega_rms_norm(const sc_node *n, sc_mega_task *t) {
    t->kind = SC_MT_RMS_NORM;
    t->rows = rms_rows(n);
    t->nvb = t->rows ? (int32_t)rms_blocks(t->rows) : 0;
    t->smem = 32 * sizeof(float);
    t->u.n = *n;
    return 1;
}
