/*
 * decode_attn.cuh — the body of the split decode-attention kernel (decode_attn.cu, which says
 * how and why it works), shared by its kernel and the persistent decode kernel (mega.cu): blocks
 * of DS_THREADS threads; a block is (bhq, s) of S per (b, h, query); shared memory as structs;
 * NC = false where the caches may have been written by the same launch (the persistent kernel).
 */
#pragma once
#include "cuda_decode_kernels.h"
#include "sc_common.cuh"

/* Keys [0, visible) are visible to query i. */
__device__ __forceinline__ int64_t da_visible(const sc_node &n, int64_t i, int64_t Tk) {
    if (!n.ip[0]) return Tk;
    const int64_t v = (int64_t)n.ip[1] + i + 1;
    return v < Tk ? (v > 0 ? v : 0) : Tk;
}

#define DS_WARPS 8
#define DS_THREADS (DS_WARPS * 32)
#define DS_MAX_SPLIT 32 /* the cross-block combine reads one partial per lane */
#define DS_FULL 0xffffffffu
/* The variant the persistent decode kernel (mega.cu) is compiled for: d_qk <= 16·NK4, d_v <= 64·NVR. */
#define DS_MEGA_NK4 8
#define DS_MEGA_NVR 1

/* What a lane loads for one group of 8 keys: its key's K slots (NK4 float4 = channels
 * 4·(part + 4k) .. +3), its 4 keys' V slots (NVR float4 each), its key's gk. */
template <int NK4, int NVR> struct ds_group {
    float4 k[NK4];
    float4 v[4][NVR];
    float gk;
};

struct ds_ctx { /* per (b, h, query), the same in every lane */
    int64_t b, h, vis;
    float gq, scale;
    int dc;
    bool formb, fastk, fastv;
};

__device__ __forceinline__ bool ds_fast(const sc_tensor &t) {
    return t.dt == SC_F32 && t.nb[3] == 1 && t.ne[3] % 4 == 0 && t.nb[2] % 4 == 0 && t.nb[1] % 4 == 0 &&
           t.nb[0] % 4 == 0 && ((uintptr_t)t.p % 16) == 0;
}

/* Channels c0 .. c0+3 of the row at element offset base of t, per element (any dtype and channel
 * stride); channels >= lim, or all of them when !ok, are not read (zeros). */
__device__ __forceinline__ float4 ds_ld4(const sc_tensor &t, int64_t base, int64_t c0, int64_t lim, bool ok) {
    float e4[4];
#pragma unroll
    for (int e = 0; e < 4; e++) e4[e] = ok && c0 + e < lim ? sc_ld(t, base + (c0 + e) * t.nb[3]) : 0.0f;
    return make_float4(e4[0], e4[1], e4[2], e4[3]);
}

/* Loads of group grp (keys 8·grp .. +7); keys >= vis are not read (zeros). NC: the caches are not
 * written while the kernel runs (sc_ldro). */
template <int NK4, int NVR, bool NC>
__device__ __forceinline__ void ds_load(const sc_node &n, const ds_ctx &x, int64_t grp, int lane,
                                        ds_group<NK4, NVR> &r) {
    const sc_tensor &K = n.src[1], &V = n.src[2];
    const int64_t D = K.ne[3], Dv = V.ne[3];
    const int part = lane & 3;
    const int64_t j = grp * 8 + (lane >> 2);
    const bool ok = j < x.vis;
    const int64_t kb = sc_off(K, x.b, x.h, ok ? j : 0, 0);
    if (x.fastk) {
        const float4 *kr = (const float4 *)((const float *)K.p + kb);
#pragma unroll
        for (int s = 0; s < NK4; s++) {
            const int g = part + 4 * s;
            r.k[s] = ok && 4 * g < D ? sc_ldro<NC>(kr + g) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    } else {
#pragma unroll
        for (int s = 0; s < NK4; s++) r.k[s] = ds_ld4(K, kb, 4 * (part + 4 * s), D, ok);
    }
    r.gk = ok && x.formb ? sc_ld(n.src[4], sc_off(n.src[4], 0, x.b, x.h, j)) : 0.0f;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const int64_t jv = grp * 8 + 2 * kk + (lane >> 4);
        const bool okv = jv < x.vis;
        const int64_t vb = sc_off(V, x.b, x.h, okv ? jv : 0, 0);
#pragma unroll
        for (int rr = 0; rr < NVR; rr++) {
            const int slot = (lane & 15) + 16 * rr;
            if (x.fastv) {
                r.v[kk][rr] = okv && 4 * slot < Dv ? sc_ldro<NC>((const float4 *)((const float *)V.p + vb) + slot)
                                                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            } else {
                r.v[kk][rr] = ds_ld4(V, vb, 4 * slot, Dv, okv);
            }
        }
    }
}

/* Scores of group grp, then the online-softmax update of this warp's (m, l, acc). m is the same
 * in every lane; l collects each key once (lane part 0); acc = this lane's V slots over its keys
 * of one parity. Masked keys: score -inf, p = 0, nothing loaded for them. */
template <int NK4, int NVR>
__device__ __forceinline__ void ds_step(const ds_ctx &x, const float4 (&q)[NK4], const ds_group<NK4, NVR> &r,
                                        int64_t grp, int lane, float &m, float &l, float4 (&acc)[NVR]) {
    const int part = lane & 3;
    float c1 = 0.0f, c2 = 0.0f; /* channels < d_content, >= d_content */
#pragma unroll
    for (int s = 0; s < NK4; s++) {
        const int c0 = 4 * (part + 4 * s);
        const float kk[4] = {r.k[s].x, r.k[s].y, r.k[s].z, r.k[s].w};
        const float qq[4] = {q[s].x, q[s].y, q[s].z, q[s].w};
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float d = kk[e] * qq[e];
            if (c0 + e < x.dc) c1 += d; else c2 += d;
        }
    }
    /* the 4 lanes of a key: bitwise the same sums (addition commutes) */
    c1 += __shfl_xor_sync(DS_FULL, c1, 1);
    c2 += __shfl_xor_sync(DS_FULL, c2, 1);
    c1 += __shfl_xor_sync(DS_FULL, c1, 2);
    c2 += __shfl_xor_sync(DS_FULL, c2, 2);
    const bool ok = grp * 8 + (lane >> 2) < x.vis;
    float sc = c1;
    if (x.formb) sc += expf(x.gq - r.gk) * c2;
    sc = ok ? sc * x.scale : -INFINITY;
    float mg = sc;
    mg = fmaxf(mg, __shfl_xor_sync(DS_FULL, mg, 4));
    mg = fmaxf(mg, __shfl_xor_sync(DS_FULL, mg, 8));
    mg = fmaxf(mg, __shfl_xor_sync(DS_FULL, mg, 16));
    const float mn = fmaxf(m, mg);
    const float mu = mn == -INFINITY ? 0.0f : mn; /* all -inf so far: p = alpha = 0, not NaN */
    const float alpha = expf(m - mu), p = expf(sc - mu);
    m = mn;
    l = l * alpha + (part == 0 ? p : 0.0f);
#pragma unroll
    for (int rr = 0; rr < NVR; rr++) {
        acc[rr].x *= alpha;
        acc[rr].y *= alpha;
        acc[rr].z *= alpha;
        acc[rr].w *= alpha;
    }
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const float pk = __shfl_sync(DS_FULL, p, 4 * (2 * kk + (lane >> 4)));
#pragma unroll
        for (int rr = 0; rr < NVR; rr++) {
            acc[rr].x += pk * r.v[kk][rr].x;
            acc[rr].y += pk * r.v[kk][rr].y;
            acc[rr].z += pk * r.v[kk][rr].z;
            acc[rr].w += pk * r.v[kk][rr].w;
        }
    }
}

/* Combine the S partials of one (b, h, query) and write dst: rd(s, e) reads element e of partial
 * s ([0] max, [1] sum, [2 + c] o). Lane s holds partial s's weight; the max and the sum by a fixed
 * shuffle tree, each lane one output channel summing over s in order: deterministic. */
template <class Rd>
__device__ __forceinline__ void ds_combine(const sc_node &n, int S, int64_t ob, Rd rd) {
    const int64_t Dv = n.src[2].ne[3];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float ms = lane < S ? rd(lane, 0) : -INFINITY;
    const float ls = lane < S ? rd(lane, 1) : 0.0f;
    const float M = sc_warp_max(ms);
    const float w = expf(ms - (M == -INFINITY ? 0.0f : M));
    const float L = sc_warp_sum(ls * w);
    for (int64_t c0 = (int64_t)warp * 32; c0 < Dv; c0 += DS_THREADS) {
        const int64_t c = c0 + lane;
        float acc = 0.0f;
        for (int s0 = 0; s0 < S; s0 += 8) {
            float v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) v[u] = s0 + u < S && c < Dv ? rd(s0 + u, 2 + c) : 0.0f;
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const float wu = __shfl_sync(DS_FULL, w, (s0 + u) & 31);
                if (s0 + u < S) acc += wu * v[u];
            }
        }
        if (c < Dv) sc_st(n.dst, ob + c, L == 0.0f ? 0.0f : acc / L);
    }
}

/* The shared memory of ds_block: each warp's max, sum and V slots. */
template <int NVR> struct ds_smem {
    float m[DS_WARPS], l[DS_WARPS];
    __align__(16) float4 o[DS_WARPS][16 * NVR];
};
/* ... and of the split kernel's block: plus the last-block flag. */
template <int NVR> struct ds_split_smem {
    ds_smem<NVR> blk;
    bool last;
};

/* One block's share (block s of S) of (b, h, query) bhq: the warps stream their groups, meet in
 * shared memory; emit(c, o) receives output channel c's unnormalised sum for every c < Dv (each
 * once, spread over the block's threads); returns the block's max M and sum L in every thread.
 * *ob = the (b, i, h) row of dst. */
template <int NK4, int NVR, int UNR, bool NC, class Emit>
__device__ __forceinline__ void ds_block(const sc_node &n, int64_t bhq, int S, int s, float &M, float &L,
                                         int64_t *ob, ds_smem<NVR> &sm, Emit emit) {
    const sc_tensor &Q = n.src[0], &K = n.src[1], &V = n.src[2];
    const int64_t H = Q.ne[1], Tq = Q.ne[2], D = Q.ne[3], Tk = K.ne[2], Dv = V.ne[3];
    const int64_t i = bhq % Tq, bh = bhq / Tq;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = lane & 3;
    ds_ctx x;
    x.h = bh % H;
    x.b = bh / H;
    x.vis = da_visible(n, i, Tk);
    x.formb = n.src[3].p != NULL;
    x.dc = x.formb ? n.ip[2] : (int)D;
    x.gq = x.formb ? sc_ld(n.src[3], sc_off(n.src[3], 0, x.b, x.h, i)) : 0.0f;
    x.scale = n.fp[0];
    x.fastk = ds_fast(K);
    x.fastv = ds_fast(V);
    *ob = ((x.b * Tq + i) * H + x.h) * Dv; /* dst (B,Tq,H,Dv) contiguous */
    float4 q[NK4]; /* this lane's Q slots (the ones its K slots meet) */
    {
        const int64_t qb = sc_off(Q, x.b, x.h, i, 0);
#pragma unroll
        for (int k = 0; k < NK4; k++) q[k] = ds_ld4(Q, qb, 4 * (part + 4 * k), D, true);
    }
    const int64_t G = (x.vis + 7) / 8, g0 = G * s / S, g1 = G * (s + 1) / S;
    float m = -INFINITY, l = 0.0f;
    float4 acc[NVR];
#pragma unroll
    for (int rr = 0; rr < NVR; rr++) acc[rr] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int64_t g = g0 + warp; g < g1; g += (int64_t)UNR * DS_WARPS) {
        ds_group<NK4, NVR> ra;
        ds_load<NK4, NVR, NC>(n, x, g, lane, ra);
        if (UNR > 1 && g + DS_WARPS < g1) { /* warp-uniform */
            ds_group<NK4, NVR> rb;
            ds_load<NK4, NVR, NC>(n, x, g + DS_WARPS, lane, rb);
            ds_step(x, q, ra, g, lane, m, l, acc);
            ds_step(x, q, rb, g + DS_WARPS, lane, m, l, acc);
        } else {
            ds_step(x, q, ra, g, lane, m, l, acc);
        }
    }
    /* the two key parities of a V slot meet; then the warps meet in shared memory */
#pragma unroll
    for (int rr = 0; rr < NVR; rr++) {
        acc[rr].x += __shfl_xor_sync(DS_FULL, acc[rr].x, 16);
        acc[rr].y += __shfl_xor_sync(DS_FULL, acc[rr].y, 16);
        acc[rr].z += __shfl_xor_sync(DS_FULL, acc[rr].z, 16);
        acc[rr].w += __shfl_xor_sync(DS_FULL, acc[rr].w, 16);
    }
    l = sc_warp_sum(l);
    float *s_m = sm.m, *s_l = sm.l;
    float4 (*s_o)[16 * NVR] = sm.o;
    if (lane < 16) {
#pragma unroll
        for (int rr = 0; rr < NVR; rr++) s_o[warp][lane + 16 * rr] = acc[rr];
    }
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
    __syncthreads();
    M = -INFINITY;
#pragma unroll
    for (int w = 0; w < DS_WARPS; w++) M = fmaxf(M, s_m[w]);
    const float mu = M == -INFINITY ? 0.0f : M;
    float wt[DS_WARPS];
    L = 0.0f;
#pragma unroll
    for (int w = 0; w < DS_WARPS; w++) {
        wt[w] = expf(s_m[w] - mu);
        L += s_l[w] * wt[w];
    }
    const float *so = (const float *)s_o;
    for (int64_t c = threadIdx.x; c < Dv; c += DS_THREADS) {
        float o = 0.0f;
#pragma unroll
        for (int w = 0; w < DS_WARPS; w++) o += so[(size_t)w * 64 * NVR + c] * wt[w];
        emit(c, o);
    }
}

/* The split kernel's block (bhq, s) of S per (b, h, query). S = 1: the block writes dst. Else it
 * writes its partial to the workspace and the last block of bhq to count itself done (every other
 * partial then written: each was made visible by __threadfence before its count) combines them
 * from L2 (__ldcg) and sets the counter back to 0 for the next launch. */
template <int NK4, int NVR, int UNR, bool NC = true>
__device__ __forceinline__ void ds_split_body(const sc_node &n, float *ws, unsigned *count, int64_t bhq, int S, int s,
                                              ds_split_smem<NVR> &sm) {
    const int64_t Dv = n.src[2].ne[3];
    float M, L;
    int64_t ob;
    float *part_out = S > 1 ? ws + ((size_t)bhq * (size_t)S + (size_t)s) * (size_t)(Dv + 2) : NULL;
    ds_block<NK4, NVR, UNR, NC>(n, bhq, S, s, M, L, &ob, sm.blk, [&](int64_t c, float o) {
        if (S == 1) sc_st(n.dst, ob + c, L == 0.0f ? 0.0f : o / L);
        else part_out[2 + c] = o;
    });
    if (S == 1) return;
    if (threadIdx.x == 0) {
        part_out[0] = M;
        part_out[1] = L;
    }
    __threadfence(); /* each thread's partial writes, before the count below */
    __syncthreads();
    if (threadIdx.x == 0) sm.last = atomicAdd(&count[bhq], 1u) == (unsigned)S - 1u;
    __syncthreads();
    if (!sm.last) return;
    __threadfence();
    const float *in = ws + (size_t)bhq * (size_t)S * (size_t)(Dv + 2);
    ds_combine(n, S, ob, [&](int r, int64_t e) { return __ldcg(in + (size_t)r * (size_t)(Dv + 2) + e); });
    if (threadIdx.x == 0) count[bhq] = 0u; /* zero for the next launch */
}

