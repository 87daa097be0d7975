/*
 * sdpa.cl — flash attention for SDPA (ops.h), both SISA forms, d_qk != d_v, causal with p0.
 *
 *   form A:           s[i,j] = scale · Q_i·K_j
 *   form B (FORM_B):  s[i,j] = scale · (Q_i[:DC]·K_j[:DC] + exp(gq_i - gk_j) · Q_i[DC:]·K_j[DC:])
 *   causal: key j is visible to query i iff j <= p0 + i.     dst (B,Tq,H,DV)
 *
 * One work-group = BQ consecutive queries of one (b, h); one work-item = one query row, held in
 * registers (DQK, DV and DC are build-time constants so the arrays unroll). Keys and values
 * stream through local memory in tiles of BK, and each row keeps an online softmax (running max
 * m, running sum l, unnormalised output acc) rescaled once per tile: no Tq×Tk matrix exists.
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
    __local float Ks[BK * DQK];
    __local float Vs[BK * DV];
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

    float q[DQK];
    float acc[DV];
#pragma unroll
    for (int c = 0; c < DQK; c++)
        q[c] = active ? LD(T_S0, qt, qb + i * qt_st.s2 + c * qt_st.s3) * scale : 0.0f;
#pragma unroll
    for (int c = 0; c < DV; c++) acc[c] = 0.0f;
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
        if (k0 >= my_end) continue;

        float s[BK];
        float tmax = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float dot = 0.0f;
#if VEC_QK
#pragma unroll
            for (int c = 0; c < DC; c += 4) {
                const float4 kv = vload4(0, Ks + jj * DQK + c);
                dot += q[c] * kv.x + q[c + 1] * kv.y + q[c + 2] * kv.z + q[c + 3] * kv.w;
            }
#else
#pragma unroll
            for (int c = 0; c < DC; c++) dot += q[c] * Ks[jj * DQK + c];
#endif
#if FORM_B
            float dec = 0.0f;
#if VEC_QK
#pragma unroll
            for (int c = DC; c < DQK; c += 4) {
                const float4 kv = vload4(0, Ks + jj * DQK + c);
                dec += q[c] * kv.x + q[c + 1] * kv.y + q[c + 2] * kv.z + q[c + 3] * kv.w;
            }
#else
#pragma unroll
            for (int c = DC; c < DQK; c++) dec += q[c] * Ks[jj * DQK + c];
#endif
            dot += exp(gqi - Gk[jj]) * dec;
#endif
            const bool visible = k0 + jj < my_end;
            nan_seen |= visible && isnan(dot);
            s[jj] = visible ? dot : -INFINITY;
            tmax = fmax(tmax, s[jj]);
        }
        const float mnew = fmax(m, tmax);
        if (mnew == -INFINITY) continue; /* no visible key yet */
        const float corr = exp(m - mnew);
        l *= corr;
#pragma unroll
        for (int c = 0; c < DV; c++) acc[c] *= corr;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            const float p = exp(s[jj] - mnew);
            l += p;
#if VEC_V
#pragma unroll
            for (int c = 0; c < DV; c += 4) {
                const float4 vv = vload4(0, Vs + jj * DV + c);
                acc[c] += p * vv.x;
                acc[c + 1] += p * vv.y;
                acc[c + 2] += p * vv.z;
                acc[c + 3] += p * vv.w;
            }
#else
#pragma unroll
            for (int c = 0; c < DV; c++) acc[c] += p * Vs[jj * DV + c];
#endif
        }
        m = mnew;
    }
    if (!active) return;
    const float inv = nan_seen ? NAN : l == 0.0f ? 0.0f : 1.0f / l;
    const long o = d_off + ((b * Tq + i) * H + h) * DV;
#pragma unroll
    for (int c = 0; c < DV; c++) STORE(T_D, d, o + c, acc[c] * inv);
}
