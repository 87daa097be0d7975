/*
 * rope_embed.cu — ROPE (ops.h) with INTERLEAVED pairs (2m, 2m+1), the SISA content path's rotary
 * embedding. (EMBED, a pure gather, lives with the elementwise ops.)
 *
 * The angle (p0 + t)·base^(-2m/D) reaches thousands of radians at long contexts, where an fp32
 * angle alone loses ~1e-4 absolute; it is formed and reduced in fp64 (cheap: this op is memory
 * bound), then sin/cos in fp64 too, as the oracle does.
 */
#include "sc_common.cuh"

__global__ void k_rope(sc_node n, int64_t pairs) {
    const sc_tensor &x = n.src[0], &d = n.dst;
    const int64_t D = x.ne[3], half = D / 2;
    const double log_base = log((double)n.fp[0]);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < pairs;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i % half;
        int64_t r = i / half;
        const int64_t h = r % x.ne[2]; r /= x.ne[2];
        const int64_t t = r % x.ne[1];
        const int64_t b = r / x.ne[1];
        const double freq = exp(-((double)(2 * m) / (double)D) * log_base);
        const double angle = (double)(n.ip[0] + t) * freq;
        double sn, cs;
        sincos(angle, &sn, &cs);
        const int64_t o = sc_off(x, b, t, h, 2 * m);
        const float x0 = sc_ld(x, o), x1 = sc_ld(x, o + x.nb[3]);
        const int64_t od = ((b * x.ne[1] + t) * x.ne[2] + h) * D + 2 * m;
        sc_st(d, od, (float)(x0 * cs - x1 * sn));
        sc_st(d, od + 1, (float)(x0 * sn + x1 * cs));
    }
}

extern "C" cudaError_t sc_launch_rope(const sc_node *n, cudaStream_t s) {
    const int64_t pairs = n->src[0].ne[0] * n->src[0].ne[1] * n->src[0].ne[2] * (n->src[0].ne[3] / 2);
    if (pairs == 0) return cudaSuccess;
    unsigned blocks = sc_blocks(pairs, 256);
    if (blocks > 1u << 20) blocks = 1u << 20;
    k_rope<<<blocks, 256, 0, s>>>(*n, pairs);
    return cudaGetLastError();
}
