/*
 * rope.cuh — the body of ROPE (rope_embed.cu), shared by its kernel and the persistent decode
 * kernel (mega.cu). Virtual block (bx, by) of a (gx, chunks) grid takes pairs [by·ROPE_THREADS,
 * +ROPE_THREADS) of rows bx, bx + gx, ...; thread tid < ROPE_THREADS owns one pair (the caller
 * keeps threads >= ROPE_THREADS out).
 */
#pragma once
#include "sc_common.cuh"

#define ROPE_THREADS 128

__device__ __forceinline__ void rope_body(const sc_node &n, int64_t rows, int64_t bx, int64_t gx, int64_t by,
                                          int64_t tid) {
    const sc_tensor &x = n.src[0], &d = n.dst;
    const int64_t H = x.ne[2], D = x.ne[3], half = D / 2;
    const double log_base = log((double)n.fp[0]);
    const double two_pi = 6.283185307179586476925286766559;
    const int64_t i = by * ROPE_THREADS + tid;
    if (i >= H * half) return;
    const int64_t h = i / half, m = i % half;
    const double freq = exp(-((double)(2 * m) / (double)D) * log_base);
    for (int64_t r = bx; r < rows; r += gx) {
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
