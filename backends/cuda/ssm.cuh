/*
 * ssm.cuh — the bodies of SSM_DECAY and SSM_CHANNELS (ssm.cu), shared by their kernels and the
 * persistent decode kernel (mega.cu). Blocks of exactly SSM_THREADS threads (cub's block scan);
 * bidx = the (virtual) block index; the shared memory each body needs arrives as a struct.
 */
#pragma once
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "sc_common.cuh"

#define SSM_THREADS 256

struct MaxOp { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct MinOp { __device__ float operator()(float a, float b) const { return fminf(a, b); } };

typedef cub::BlockScan<float, SSM_THREADS> ssm_scan;
typedef cub::BlockReduce<float, SSM_THREADS> ssm_reduce;
struct ssm_decay_smem {
    ssm_scan::TempStorage tmp;
};
struct ssm_channels_smem {
    ssm_scan::TempStorage tmp;
    ssm_reduce::TempStorage rtmp;
    float centre;
};

/* SSM_DECAY, one block per (b, h). */
__device__ __forceinline__ void ssm_decay_body(const sc_node &n, int64_t bidx, ssm_decay_smem &sm) {
    const sc_tensor &a = n.src[0], &bias = n.src[1], &g0 = n.src[2], &d = n.dst;
    const int64_t B = a.ne[1], T = a.ne[2], H = a.ne[3];
    const int64_t b = bidx / H, h = bidx % H;
    float carry = g0.p ? sc_ld(g0, sc_off(g0, 0, 0, b, h)) : 0.0f;
    const float ba = sc_ld(bias, sc_off(bias, 0, 0, 0, h));
    (void)B;
    for (int64_t t0 = 0; t0 < T; t0 += SSM_THREADS) {
        const int64_t t = t0 + threadIdx.x;
        float x = t < T ? -sc_softplus(sc_ld(a, sc_off(a, 0, b, t, h)) + ba) : 0.0f;
        float incl, total;
        ssm_scan(sm.tmp).InclusiveSum(x, incl, total);
        __syncthreads();
        if (t < T) ((float *)d.p)[(b * H + h) * T + t] = carry + incl;
        carry += total;
    }
}

__device__ __forceinline__ float clamp_keep_nan(float x, float L) { return x < -L ? -L : x > L ? L : x; }

/* SSM_CHANNELS, one block per (b, h, pair m). */
__device__ __forceinline__ void ssm_channels_body(const sc_node &n, int64_t bidx, ssm_channels_smem &sm) {
    const sc_tensor &Bs = n.src[0], &Cs = n.src[1], &th = n.src[2], &g = n.src[3],
                    &lr = n.src[4], &phi0 = n.src[5], &d = n.dst;
    const int64_t H = lr.ne[3], B = Bs.ne[1], T = Bs.ne[2];
    const int64_t ds = Bs.ne[3] / H, half = ds / 2;
    const int64_t m = bidx % half, bh = bidx / half, h = bh % H, b = bh / H;
    const bool augmented = n.ip[0] == 0;
    const float L = n.fp[0];
    (void)B;

    float c = 0.0f;
    if (augmented) {
        float mx = -INFINITY, mn = INFINITY;
        for (int64_t t = threadIdx.x; t < T; t += SSM_THREADS) {
            float v = sc_ld(g, sc_off(g, 0, b, h, t));
            mx = fmaxf(mx, v);
            mn = fminf(mn, v);
        }
        mx = ssm_reduce(sm.rtmp).Reduce(mx, MaxOp());
        __syncthreads();
        mn = ssm_reduce(sm.rtmp).Reduce(mn, MinOp());
        if (threadIdx.x == 0) sm.centre = (mx + mn) * 0.5f;
        __syncthreads();
        c = sm.centre;
    }
    const float lambda = sc_softplus(sc_ld(lr, sc_off(lr, 0, 0, 0, h)));
    const float s = powf((float)n.ip[1], 0.25f) * sqrtf(lambda);
    float carry = phi0.p ? sc_ld(phi0, sc_off(phi0, 0, 0, b, h * half + m)) : 0.0f;
    const int64_t ce = h * ds + 2 * m; /* even channel of pair m in Bs/Cs */
    for (int64_t t0 = 0; t0 < T; t0 += SSM_THREADS) {
        const int64_t t = t0 + threadIdx.x;
        float x = t < T ? sc_ld(th, sc_off(th, 0, b, t, h * half + m)) : 0.0f;
        float incl, total;
        ssm_scan(sm.tmp).InclusiveSum(x, incl, total);
        __syncthreads();
        if (t < T) {
            const float phi = carry + incl;
            const float u = augmented ? clamp_keep_nan(sc_ld(g, sc_off(g, 0, b, h, t)) - c, L) : 0.0f;
            const float up = expf(u), dn = expf(-u);
            float sn, cs;
            sincosf(phi, &sn, &cs);
            const int64_t oc = sc_off(Cs, 0, b, t, ce), ob = sc_off(Bs, 0, b, t, ce);
            const float c0 = up * sc_ld(Cs, oc), c1 = up * sc_ld(Cs, oc + Cs.nb[3]);
            const float b0 = dn * sc_ld(Bs, ob), b1 = dn * sc_ld(Bs, ob + Bs.nb[3]);
            const int64_t od = ((b * H + h) * T + t) * (2 * ds);
            sc_st(d, od + 2 * m, s * (c0 * cs - c1 * sn));
            sc_st(d, od + 2 * m + 1, s * (c0 * sn + c1 * cs));
            sc_st(d, od + ds + 2 * m, s * (b0 * cs - b1 * sn));
            sc_st(d, od + ds + 2 * m + 1, s * (b0 * sn + b1 * cs));
        }
        carry += total;
    }
}
