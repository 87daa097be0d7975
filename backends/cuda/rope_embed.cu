/*
 * rope_embed.cu — ROPE (ops.h) with INTERLEAVED pairs (2m, 2m+1), the SISA content path's rotary
 * embedding. (EMBED, a pure gather, lives with the elementwise ops.)
 *
 * The angle (p0 + t)·base^(-2m/D) reaches thousands of radians at long contexts, where an fp32
 * angle alone loses ~1e-4 absolute; it is formed and reduced in fp64 (cheap: this op is memory
 * bound), then sin/cos in fp64 too, as the oracle does.
 */
#include "cuda_mega.h"
#include "rope.cuh"

/* Block (r, c) takes pairs [c·128, c·128 + 128) of row r = (b, t) (H·D/2 pairs a row), so a
 * decode step's one row spreads over H·D/256 blocks instead of one block walking every pair. The
 * frequency base^(-2m/D) is computed in fp64 per pair (the same expression for every m, so the
 * same value); the angle (p0 + t)·freq is formed and reduced modulo 2π in fp64, and only the
 * reduced angle (|r| <= π) goes through the fp32 sincos: fp32 sincos of the raw angle (up to
 * ~4096 rad) would be off by ~1e-4, over the f32 tolerance. */
__global__ void k_rope(sc_node n, int64_t rows) {
    sc_pdl_wait();
    rope_body(n, rows, blockIdx.x, gridDim.x, blockIdx.y, threadIdx.x);
}

/* The launch's grid: bx blocks over rows (capped) x *chunks of ROPE_THREADS pairs; 0: nothing to
 * do; -1: too many chunks. */
static int64_t rope_grid(const sc_node *n, int64_t *rows, int64_t *chunks) {
    const int64_t half = n->src[0].ne[3] / 2, pairs = n->src[0].ne[2] * half;
    *rows = n->src[0].ne[0] * n->src[0].ne[1];
    *chunks = (pairs + ROPE_THREADS - 1) / ROPE_THREADS;
    if (*rows == 0 || half == 0) return 0;
    if (*chunks > 65535) return -1;
    const int64_t cap = 65535 * 32 / *chunks > 0 ? 65535 * 32 / *chunks : 1; /* blocks in x */
    return *rows < cap ? *rows : cap;
}

extern "C" cudaError_t sc_launch_rope(const sc_node *n, cudaStream_t s) {
    int64_t rows, chunks;
    const int64_t bx = rope_grid(n, &rows, &chunks);
    if (bx == 0) return cudaSuccess;
    if (bx < 0) return cudaErrorInvalidConfiguration;
    return sc_launch(k_rope, dim3((unsigned)bx, (unsigned)chunks), dim3(ROPE_THREADS), 0, s, *n, rows);
}

/* The persistent kernel's task: the same grid; its threads past ROPE_THREADS idle (mega.cu). */
extern "C" int sc_mega_rope(const sc_node *n, sc_mega_task *t) {
    int64_t chunks;
    const int64_t bx = rope_grid(n, &t->rows, &chunks);
    if (bx < 0 || bx * chunks > 0x7fffffff) return 0;
    t->kind = SC_MT_ROPE;
    t->gx = (int32_t)bx;
    t->nvb = (int32_t)(bx * chunks);
    t->u.n = *n;
    return 1;
}
