/*
 * sdpa.cl — flash attention for SDPA (ops.h), both SISA forms, d_qk != d_v, causal with p0.
 *
 *   form A:           s[i,j] = scale · Q_i·K_j
 *   form B (FORM_B):  s[i,j] = scale · (Q_i[:DC]·K_j[:DC] + exp(gq_i - gk_j) · Q_i[DC:]·K_j[DC:])
 *   causal: key j is visible to query i iff j <= p0 + i.     dst (B,Tq,H,DV)
 *
 * One work-group = BQ consecutive queries of one (b, h); one work-item = one query row, held in
 * registers (DQK, DV and DC are build-time constants so the channel loops unroll). Keys and
 * values stream through local memory in tiles of BK; each row keeps an online softmax per key
 * (running max m, sum l, unnormalised output acc; acc is rescaled only when m grows, which after
 * the first keys is rare): no Tq×Tk matrix exists, and no per-tile score array either — the key
 * loop is not unrolled, which keeps NVIDIA's compile of a variant near a second (a fully
 * unrolled tile took 14-17 s per variant there).
 * Tiles past the last key visible to the group are never loaded, so a decode step may leave
 * the cache beyond p0 + Tq uninitialised, as in the oracle. A row whose keys are all masked
 * gives zeros; a NaN score makes the row NaN.
 */
#ifndef BQ
#define BQ 64
#endif
#ifndef BK
#define BK 32
#endif
#ifndef FORM_B
#define FORM_B 0
#endif
#ifndef DC
#define DC DQK
#endif

#define VEC_QK ((DC % 4 == 0) && (DQK % 4 == 0))
#define VEC_V (DV % 4 == 0)

__kernel __attribute__((reqd_work_group_size(BQ, 1, 1)))
void k_sdpa(DARG(T_D, d), const long H, const long Tq, const long Tk, const float scale,
            const int causal, const long p0, TARG(T_S0, qt), TARG(T_S1, kt), TARG(T_S2, vt),
            FARG(gq), FARG(gk)) {
    /* float4 storage: 16-byte aligned rows, so the row reads below are 128-bit loads */
    __local float4 Ks4[BK * DQK / 4 + 1];
    __local float4 Vs4[BK * DV / 4 + 1];
    __local float *Ks = (__local float *)Ks4;
    __local float *Vs = (__local float *)Vs4;
#if FORM_B
    __local float Gk[BK];
#endif
    const int lid = get_local_id(0);
    const long i = (long)get_group_id(0) * BQ + lid;
    const long bh = get_group_id(1);
    const long b = bh / H, h = bh % H;
    const bool active = i < Tq;
    /* (b, h) bases, so the tile loops do two multiply-adds per element */
    const long qb = AT(qt, b, h, 0, 0), kb = AT(kt, b, h, 0, 0), vb = AT(vt, b, h, 0, 0);

#if VEC_QK
    float4 q[DQK / 4];
#pragma unroll
    for (int c = 0; c < DQK / 4; c++) {
        const long e = qb + i * qt_st.s2;
        q[c] = active ? (float4)(LD(T_S0, qt, e + (4 * c) * qt_st.s3),
                                 LD(T_S0, qt, e + (4 * c + 1) * qt_st.s3),
                                 LD(T_S0, qt, e + (4 * c + 2) * qt_st.s3),
                                 LD(T_S0, qt, e + (4 * c + 3) * qt_st.s3)) * scale
                      : (float4)(0.0f);
    }
#else
    float q[DQK];
#pragma unroll
    for (int c = 0; c < DQK; c++)
        q[c] = active ? LD(T_S0, qt, qb + i * qt_st.s2 + c * qt_st.s3) * scale : 0.0f;
#endif
#if VEC_V
    float4 acc[DV / 4];
#pragma unroll
    for (int c = 0; c < DV / 4; c++) acc[c] = (float4)(0.0f);
#else
    float acc[DV];
#pragma unroll
    for (int c = 0; c < DV; c++) acc[c] = 0.0f;
#endif
#if FORM_B
    const float gqi = active ? gq[AT(gq, 0, b, h, i)] : 0.0f;
#endif
    float m = -INFINITY, l = 0.0f;
    bool nan_seen = false; /* a NaN score makes the row NaN, as in the oracle */

    /* keys this group needs, and keys this row may see */
    const long last_q = min(Tq, (long)(get_group_id(0) + 1) * BQ) - 1;
    const long kend = causal ? min(Tk, p0 + last_q + 1) : Tk;
    const long my_end = !active ? 0 : causal ? min(Tk, p0 + i + 1) : Tk;

    for (long k0 = 0; k0 < kend; k0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int e = lid; e < BK * DQK; e += BQ) {
            const int jj = e / DQK, c = e - jj * DQK;
            const long j = k0 + jj;
            Ks[e] = j < kend ? LD(T_S1, kt, kb + j * kt_st.s2 + c * kt_st.s3) : 0.0f;
        }
        for (int e = lid; e < BK * DV; e += BQ) {
            const int jj = e / DV, c = e - jj * DV;
            const long j = k0 + jj;
            Vs[e] = j < kend ? LD(T_S2, vt, vb + j * vt_st.s2 + c * vt_st.s3) : 0.0f;
        }
#if FORM_B
        for (int e = lid; e < BK; e += BQ) {
            const long j = k0 + e;
            Gk[e] = j < kend ? gk[AT(gk, 0, b, h, j)] : 0.0f;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);
        const int n = (int)min((long)BK, my_end - k0); /* visible keys of this tile (<= 0: none) */
        for (int jj = 0; jj < n; jj++) {
#if VEC_QK
            __local const float4 *kr4 = Ks4 + jj * (DQK / 4);
            float4 d4 = (float4)(0.0f);
#pragma unroll
            for (int c = 0; c < DC / 4; c++) d4 = fma(q[c], kr4[c], d4);
            float sc = (d4.x + d4.y) + (d4.z + d4.w);
#if FORM_B
            float4 e4 = (float4)(0.0f);
#pragma unroll
            for (int c = DC / 4; c < DQK / 4; c++) e4 = fma(q[c], kr4[c], e4);
            sc += exp(gqi - Gk[jj]) * ((e4.x + e4.y) + (e4.z + e4.w));
#endif
#else
            __local const float *kr = Ks + jj * DQK;
            float sc = 0.0f;
#pragma unroll
            for (int c = 0; c < DC; c++) sc = fma(q[c], kr[c], sc);
#if FORM_B
            float dec = 0.0f;
#pragma unroll
            for (int c = DC; c < DQK; c++) dec = fma(q[c], kr[c], dec);
            sc += exp(gqi - Gk[jj]) * dec;
#endif
#endif
            nan_seen |= isnan(sc);
            if (sc == -INFINITY) continue; /* contributes exp(-inf) = 0 */
            if (sc > m) { /* new running max: rescale what is accumulated so far */
                const float corr = exp(m - sc);
                l *= corr;
#if VEC_V
#pragma unroll
                for (int c = 0; c < DV / 4; c++) acc[c] *= corr;
#else
#pragma unroll
                for (int c = 0; c < DV; c++) acc[c] *= corr;
#endif
                m = sc;
            }
            const float p = exp(sc - m);
            l += p;
#if VEC_V
            __local const float4 *vr4 = Vs4 + jj * (DV / 4);
#pragma unroll
            for (int c = 0; c < DV / 4; c++) acc[c] = fma((float4)(p), vr4[c], acc[c]);
#else
            __local const float *vr = Vs + jj * DV;
#pragma unroll
            for (int c = 0; c < DV; c++) acc[c] = fma(p, vr[c], acc[c]);
#endif
        }
    }
    if (!active) return;
    const float inv = nan_seen ? NAN : l == 0.0f ? 0.0f : 1.0f / l;
    const long o = d_off + ((b * Tq + i) * H + h) * DV;
#if VEC_V
#pragma unroll
    for (int c = 0; c < DV / 4; c++) {
        const float4 r = acc[c] * inv;
        STORE(T_D, d, o + 4 * c, r.x);
        STORE(T_D, d, o + 4 * c + 1, r.y);
        STORE(T_D, d, o + 4 * c + 2, r.z);
        STORE(T_D, d, o + 4 * c + 3, r.w);
    }
#else
#pragma unroll
    for (int c = 0; c < DV; c++) STORE(T_D, d, o + c, acc[c] * inv);
#endif
}
