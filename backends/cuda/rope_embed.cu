/*
 * rope_embed.cu — ROPE (ops.h) with INTERLEAVED pairs (2m, 2m+1), the SISA content path's rotary
 * embedding. (EMBED, a pure gather, lives with the elementwise ops.)
 *
 * The angle (p0 + t)·base^(-2m/D) reaches thousands of radians at long contexts, where an fp32
 * angle alone loses ~1e-4 absolute; it is formed and reduced in fp64 (cheap: this op is memory
 * bound), then sin/cos in fp64 too, as the oracle does.
 */
#include "sc_common.cuh"

/* Block (r, c) takes pairs [c·128, c·128 + 128) of row r = (b, t) (H·D/2 pairs a row), so a
 * decode step's one row spreads over H·D/256 blocks instead of one block walking every pair. The
 * frequency base^(-2m/D) is computed in fp64 per pair (the same expression for every m, so the
 * same value); the angle (p0 + t)·freq is formed and reduced modulo 2π in fp64, and only the
 * reduced angle (|r| <= π) goes through the fp32 sincos: fp32 sincos of the raw angle (up to
 * ~4096 rad) would be off by ~1e-4, over the f32 tolerance. */
#define ROPE_THREADS 128

__global__ void k_rope(sc_node n, int64_t rows) {
    sc_pdl_wait();
    const sc_tensor &x = n.src[0], &d = n.dst;
    const int64_t H = x.ne[2], D = x.ne[3], half = D / 2;
    const double log_base = log((double)n.fp[0]);
    const double two_pi = 6.283185307179586476925286766559;
    const int64_t i = (int64_t)blockIdx.y * ROPE_THREADS + threadIdx.x;
    if (i >= H * half) return;
    const int64_t h = i / half, m = i % half;
    const double freq = exp(-((double)(2 * m) / (double)D) * log_base);
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t t = r % x.ne[1], b = r / x.ne[1];
        const double pos = (double)(n.ip[0] + t);
        const double a = pos * freq;
        const float red = (float)(a - rint(a / two_pi) * two_pi);
        float sn, cs;
        sincosf(red, &sn, &cs);
        const int64_t o = sc_off(x, b, t, h, 2 * m);
        const float x0 = sc_ld(x, o), x1 = sc_ld(x, o + x.nb[3]);
        const int64_t od = (r * H + h) * D + 2 * m;
        sc_st(d, od, x0 * cs - x1 * sn);
        sc_st(d, od + 1, x0 * sn + x1 * cs);
    }
}

extern "C" cudaError_t sc_launch_rope(const sc_node *n, cudaStream_t s) {
    const int64_t rows = n->src[0].ne[0] * n->src[0].ne[1], half = n->src[0].ne[3] / 2;
    const int64_t pairs = n->src[0].ne[2] * half, chunks = (pairs + ROPE_THREADS - 1) / ROPE_THREADS;
    if (rows == 0 || half == 0) return cudaSuccess;
    if (chunks > 65535) return cudaErrorInvalidConfiguration;
    const int64_t cap = 65535 * 32 / chunks > 0 ? 65535 * 32 / chunks : 1; /* blocks in x */
    const unsigned bx = (unsigned)(rows < cap ? rows : cap);
    return sc_launch(k_rope, dim3(bx, (unsigned)chunks), dim3(ROPE_THREADS), 0, s, *n, rows);
}
