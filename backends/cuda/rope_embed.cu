/*
 * rope_embed.cu — ROPE (ops.h) with INTERLEAVED pairs (2m, 2m+1), the SISA content path's rotary
 * embedding. (EMBED, a pure gather, lives with the elementwise ops.)
 *
 * The angle (p0 + t)·base^(-2m/D) reaches thousands of radians at long contexts, where an fp32
 * angle alone loses ~1e-4 absolute; it is formed and reduced in fp64 (cheap: this op is memory
 * bound), then sin/cos in fp64 too, as the oracle does.
 */
#include "sc_common.cuh"

/* One block per (b, t) row of H·D/2 pairs. The frequencies base^(-2m/D) are computed once per
 * block in fp64 into shared memory; the angle (p0 + t)·freq is formed and reduced modulo 2π in
 * fp64, and only the reduced angle (|r| <= π) goes through the fp32 sincos: fp32 sincos of the
 * raw angle (up to ~4096 rad) would be off by ~1e-4, over the f32 tolerance. */
__global__ void k_rope(sc_node n, int64_t rows) {
    sc_pdl_wait();
    const sc_tensor &x = n.src[0], &d = n.dst;
    const int64_t H = x.ne[2], D = x.ne[3], half = D / 2;
    extern __shared__ double freq[];
    const double log_base = log((double)n.fp[0]);
    for (int64_t m = threadIdx.x; m < half; m += blockDim.x)
        freq[m] = exp(-((double)(2 * m) / (double)D) * log_base);
    __syncthreads();
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t t = r % x.ne[1], b = r / x.ne[1];
        const double pos = (double)(n.ip[0] + t);
        for (int64_t i = threadIdx.x; i < H * half; i += blockDim.x) {
            const int64_t h = i / half, m = i % half;
            const double a = pos * freq[m];
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
}

extern "C" cudaError_t sc_launch_rope(const sc_node *n, cudaStream_t s) {
    const int64_t rows = n->src[0].ne[0] * n->src[0].ne[1], half = n->src[0].ne[3] / 2;
    if (rows == 0 || half == 0) return cudaSuccess;
    const unsigned blocks = rows < (int64_t)65535 * 32 ? (unsigned)rows : 65535u * 32u;
    cudaError_t e = sc_launch(k_rope, dim3(blocks), dim3(128), (size_t)half * sizeof(double), s, *n, rows);
    return e;
}
