/*
 * ssm_augment.cuh — the body of the fused SSM_CHANNELS + AUGMENT kernel (ssm_augment.cu, which
 * says what it computes), shared by that kernel and the persistent decode kernel (mega.cu).
 * Blocks of exactly SA_THREADS threads; bidx = the (virtual) block index; shared memory as a
 * struct (sa_smem).
 */
#pragma once
#include "sc_common.cuh"

#define SA_THREADS 256
#define SA_PAIRS 1024 /* CH · (d_s/2) per block */

__device__ __forceinline__ float sa_clamp(float x, float L) { return x < -L ? -L : x > L ? L : x; }

/* Row r (time t) of one output: [a | ch | 0], a = q or k (B,H,T,Da), ch from shared memory. */
template <bool VEC>
__device__ void write_rows(const sc_tensor &a, const sc_tensor &o, const float *ch, int ds, int64_t b,
                           int64_t h, int64_t t0, int rows) {
    const int64_t W = o.ne[3], Da = a.ne[3];
    const int64_t H = o.ne[1], T = o.ne[2];
    if (VEC) {
        const int nv = (int)(W / 8);
        for (int idx = threadIdx.x; idx < rows * nv; idx += blockDim.x) {
            const int r = idx / nv, v = idx % nv;
            const int64_t t = t0 + r, c = (int64_t)v * 8;
            uint4 val;
            if (c < Da) {
                val = *(const uint4 *)((const uint16_t *)a.p + sc_off(a, b, h, t, c));
            } else if (c < Da + ds) {
                const float *src = ch + r * ds + (c - Da);
                uint16_t e[8];
                for (int j = 0; j < 8; j++)
                    e[j] = o.dt == SC_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(src[j]))
                                           : __half_as_ushort(__float2half_rn(src[j]));
                val = make_uint4(e[0] | (uint32_t)e[1] << 16, e[2] | (uint32_t)e[3] << 16,
                                 e[4] | (uint32_t)e[5] << 16, e[6] | (uint32_t)e[7] << 16);
            } else {
                val = make_uint4(0, 0, 0, 0);
            }
            *(uint4 *)((uint16_t *)o.p + ((b * H + h) * T + t) * W + c) = val;
        }
    } else {
        for (int idx = threadIdx.x; idx < rows * (int)W; idx += blockDim.x) {
            const int r = idx / (int)W;
            const int64_t c = idx % (int)W, t = t0 + r;
            const float v = c < Da ? sc_ld(a, sc_off(a, b, h, t, c)) : c < Da + ds ? ch[r * ds + (c - Da)] : 0.0f;
            sc_st(o, ((b * H + h) * T + t) * W + c, v);
        }
    }
}

struct sa_smem {
    double phi[SA_PAIRS];    /* [row][pair] */
    float chC[2 * SA_PAIRS]; /* [row][ds]: s·Cbar */
    float chB[2 * SA_PAIRS]; /* [row][ds]: s·Bbar */
    double red[SA_THREADS];
    float centre;
};

template <bool VEC>
__device__ __forceinline__ void ssm_augment_body(const sc_ssm_augment &f, int64_t bidx, sa_smem &sm) {
    const sc_node &n = f.ssm;
    const sc_tensor &Bs = n.src[0], &Cs = n.src[1], &th = n.src[2], &g = n.src[3], &lr = n.src[4],
                    &phi0 = n.src[5], &d = n.dst;
    const int64_t H = lr.ne[3], T = Bs.ne[2];
    const int ds = (int)(Bs.ne[3] / H), half = ds / 2;
    const int CH = f.chunk;
    const int64_t nchunk = (T + CH - 1) / CH;
    const int64_t bh = bidx / nchunk, b = bh / H, h = bh % H;
    const int64_t t0 = (bidx % nchunk) * CH;
    const int rows = (int)min((int64_t)CH, T - t0);
    const bool augmented = n.ip[0] == 0;

    double *phi = sm.phi, *red = sm.red;
    float *chC = sm.chC, *chB = sm.chB;
    float &centre = sm.centre;

    /* 1. form A's centre over the whole sequence */
    if (augmented) {
        float mx = -INFINITY, mn = INFINITY;
        for (int64_t t = threadIdx.x; t < T; t += blockDim.x) {
            const float v = sc_ld(g, sc_off(g, 0, b, h, t));
            mx = fmaxf(mx, v);
            mn = fminf(mn, v);
        }
        mx = sc_warp_max(mx);
        mn = -sc_warp_max(-mn);
        float *rf = (float *)red;
        if ((threadIdx.x & 31) == 0) {
            rf[threadIdx.x / 32] = mx;
            rf[32 + threadIdx.x / 32] = mn;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < SA_THREADS / 32; w++) {
                mx = fmaxf(mx, rf[w]);
                mn = fminf(mn, rf[32 + w]);
            }
            centre = (mx + mn) * 0.5f;
        }
        __syncthreads();
    }

    /* 2. carry: Phi0 + theta summed over the steps before this chunk (fp64) */
    const int per = SA_THREADS / half; /* rows summed side by side (half <= 256, checked at launch) */
    {
        double acc = 0.0;
        const int m = threadIdx.x % half, r0 = threadIdx.x / half;
        if (r0 < per)
            for (int64_t t = r0; t < t0; t += per) acc += (double)sc_ld(th, sc_off(th, 0, b, t, h * half + m));
        red[threadIdx.x] = acc;
    }
    __syncthreads();
    double carry_m = 0.0; /* valid in threads < half */
    if (threadIdx.x < half) {
        const int m = threadIdx.x;
        for (int r = 0; r < per; r++) carry_m += red[r * half + m];
        if (phi0.p) carry_m += (double)sc_ld(phi0, sc_off(phi0, 0, 0, b, h * half + m));
    }
    /* 3. this chunk's theta, scanned over its rows */
    const int np = rows * half;
    for (int i = threadIdx.x; i < np; i += blockDim.x) {
        const int r = i / half, m = i % half;
        phi[i] = (double)sc_ld(th, sc_off(th, 0, b, t0 + r, h * half + m));
    }
    __syncthreads();
    if (threadIdx.x < half) red[threadIdx.x] = carry_m; /* red[m] = the carry of pair m from here on */
    __syncthreads();
    for (int off = 1; off < rows; off *= 2) {
        double v[SA_PAIRS / SA_THREADS];
#pragma unroll
        for (int k = 0; k < SA_PAIRS / SA_THREADS; k++) {
            const int i = threadIdx.x + k * SA_THREADS, r = i / half;
            v[k] = i < np && r >= off ? phi[i - off * half] : 0.0;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < SA_PAIRS / SA_THREADS; k++) {
            const int i = threadIdx.x + k * SA_THREADS;
            if (i < np) phi[i] += v[k];
        }
        __syncthreads();
    }

    /* 4. the SSM channels of each (row, pair) into shared memory */
    const float lambda = sc_softplus(sc_ld(lr, sc_off(lr, 0, 0, 0, h)));
    const float s = powf((float)n.ip[1], 0.25f) * sqrtf(lambda);
    const float L = n.fp[0];
    const double two_pi = 6.283185307179586476925286766559;
    for (int i = threadIdx.x; i < np; i += blockDim.x) {
        const int r = i / half, m = i % half;
        const int64_t t = t0 + r;
        double a = phi[i] + red[m];
        a -= two_pi * rint(a / two_pi);
        float sn, cs;
        sincosf((float)a, &sn, &cs);
        const float u = augmented ? sa_clamp(sc_ld(g, sc_off(g, 0, b, h, t)) - centre, L) : 0.0f;
        const float up = expf(u), dn = expf(-u);
        const int64_t ce = h * ds + 2 * m;
        const int64_t oc = sc_off(Cs, 0, b, t, ce), ob = sc_off(Bs, 0, b, t, ce);
        const float c0 = up * sc_ld(Cs, oc), c1 = up * sc_ld(Cs, oc + Cs.nb[3]);
        const float b0 = dn * sc_ld(Bs, ob), b1 = dn * sc_ld(Bs, ob + Bs.nb[3]);
        chC[r * ds + 2 * m] = s * (c0 * cs - c1 * sn);
        chC[r * ds + 2 * m + 1] = s * (c0 * sn + c1 * cs);
        chB[r * ds + 2 * m] = s * (b0 * cs - b1 * sn);
        chB[r * ds + 2 * m + 1] = s * (b0 * sn + b1 * cs);
    }
    __syncthreads();

    /* 5. whole rows out (an output whose AUGMENT runs unfused has out.p NULL) */
    if (f.out_c.p) write_rows<VEC>(f.a_c, f.out_c, chC, ds, b, h, t0, rows);
    if (f.out_b.p) write_rows<VEC>(f.a_b, f.out_b, chB, ds, b, h, t0, rows);
    /* sCB (B,H,T,2ds), contiguous: always, as SSM_CHANNELS defines it (a caller or harness may read
     * any node, and an unfused AUGMENT reads it) */
    for (int i = threadIdx.x; i < rows * 2 * ds; i += blockDim.x) {
        const int r = i / (2 * ds), c = i % (2 * ds);
        sc_st(d, ((b * H + h) * T + t0 + r) * (2 * ds) + c, c < ds ? chC[r * ds + c] : chB[r * ds + c - ds]);
    }
}

