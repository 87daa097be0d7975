/*
 * ssm.cu — SISA's SSM ops (ops.h, SISA.md §1-2):
 *   SSM_DECAY     g[b,h,t] = g0 + inclusive prefix sum over t of -softplus(a + b_alpha)
 *   SSM_CHANNELS  s·Cbar | s·Bbar: prefix-summed rotation angles Phi, form A's centre and clamp
 *                 (or form B's u = 0), exp(±u) scaling, pair rotation, times s_h.
 *
 * Both are prefix sums over time, done as block-wide scans (cub::BlockScan) over chunks of 256
 * time steps with a running carry, so a 4096-token sequence takes 16 parallel steps, not 4096
 * serial ones. SSM_DECAY: one block per (b, h). SSM_CHANNELS: one block per (b, h, pair m) — each
 * pair's angle is an independent scan — and the whole step for pair m (rotate the C pair and the
 * B pair, write four outputs) happens in the thread that owns time t. The centre c of form A is a
 * min/max over this call's T positions of g, reduced at the start of every block (g is small).
 * All in fp32 (SISA.md §3); the clamp keeps a NaN a NaN.
 */
#include "cuda_mega.h"
#include "ssm.cuh"

__global__ void k_ssm_decay(sc_node n) {
    sc_pdl_wait();
    __shared__ ssm_decay_smem sm;
    ssm_decay_body(n, blockIdx.x, sm);
}

__global__ void k_ssm_channels(sc_node n) {
    sc_pdl_wait();
    __shared__ ssm_channels_smem sm;
    ssm_channels_body(n, blockIdx.x, sm);
}

/* Blocks of the launches (0: nothing to do): one per (b, h); one per (b, h, pair). */
static int64_t decay_blocks(const sc_node *n) {
    return n->src[0].ne[2] == 0 ? 0 : n->src[0].ne[1] * n->src[0].ne[3];
}

static int64_t channels_blocks(const sc_node *n) {
    const int64_t H = n->src[4].ne[3], B = n->src[0].ne[1];
    const int64_t half = n->src[0].ne[3] / H / 2;
    return n->src[0].ne[2] == 0 ? 0 : B * H * half;
}

extern "C" cudaError_t sc_launch_ssm_decay(const sc_node *n, cudaStream_t s) {
    const int64_t blocks = decay_blocks(n);
    if (blocks == 0) return cudaSuccess;
    cudaError_t e = sc_launch(k_ssm_decay, dim3((unsigned)blocks), dim3(SSM_THREADS), 0, s, *n);
    return e;
}

extern "C" cudaError_t sc_launch_ssm_channels(const sc_node *n, cudaStream_t s) {
    const int64_t blocks = channels_blocks(n);
    if (blocks == 0) return cudaSuccess;
    cudaError_t e = sc_launch(k_ssm_channels, dim3((unsigned)blocks), dim3(SSM_THREADS), 0, s, *n);
    return e;
}

/* The persistent kernel's tasks: the same blocks (its block size is SSM_THREADS: mega.cu). */
static int ssm_task(const sc_node *n, int kind, int64_t blocks, size_t smem, sc_mega_task *t) {
    t->kind = kind;
    t->nvb = (int32_t)blocks;
    t->smem = (int32_t)smem;
    t->u.n = *n;
    return blocks <= 0x7fffffff;
}

extern "C" int sc_mega_ssm_decay(const sc_node *n, sc_mega_task *t) {
    return ssm_task(n, SC_MT_SSM_DECAY, decay_blocks(n), sizeof(ssm_decay_smem), t);
}

extern "C" int sc_mega_ssm_channels(const sc_node *n, sc_mega_task *t) {
    return ssm_task(n, SC_MT_SSM_CHANNELS, channels_blocks(n), sizeof(ssm_channels_smem), t);
}
