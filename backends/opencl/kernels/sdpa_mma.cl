/*
 * sdpa_mma.cl — flash attention (SDPA form A, ops.h) on the warp mma of mma.cl, for 16-bit Q, K,
 * V and destination (all bf16, or all f16 with MMA_F16=1). Prepended: common.cl, mma.cl.
 *
 *   s[i,j] = scale · Q_i·K_j (products of 16-bit values exact, sums f32, scale applied in f32);
 *   causal: key j visible to query i iff j <= p0 + i;   dst (B,Tq,H,DV)
 *
 * One work-group = NWARP warps (8) = BQ = 16·NWARP consecutive queries of one (b, h); warp w owns rows
 * 16w..16w+15 and keeps its Q fragments, its scores S (16×BKV), the running max m, sum l and the
 * output O (16×DV) in registers. Keys and values stream through local memory in tiles of
 * BKV = 64: K as rows (the mma's col-major B of Q·Kᵀ), V transposed (the B of P·V). Per tile:
 * S = Q·Kᵀ (DQK/16 × BKV/8 mma), the online softmax on S (row max and sum across the 4 lanes
 * of a row through warp butterflies), then O += P·V with P rounded to the 16-bit type — the
 * one rounding beyond the destination's, which the bf16/f16 thresholds admit (thresholds.c:
 * "P in P.V"); the host selects this kernel only for a 16-bit destination.
 * A warp skips tiles wholly masked for its rows (PTX only: the emulation keeps every call
 * uniform). Keys past the last one visible to the group are never read (decode caches may hold
 * anything there). A row whose keys are all masked gives zeros; a NaN score makes it NaN.
 *
 * VEC2=1 (host-checked): channel pairs are read as one 32-bit word (unit channel stride, even
 * strides, offsets and widths); else element by element through any strides.
 */
#ifndef NWARP
#define NWARP 8
#endif
#define MMA_WG (32 * NWARP)
#define BQ (16 * NWARP)
#define BKV 64
#define QW (DQK / 2 + 4) /* words per local row of Q and K (bank-conflict-free fragment reads) */
#define VW (BKV / 2 + 4) /* words per local row of Vᵀ */
/* exp of the softmax: the hardware's approximation where the destination is 16-bit anyway (the
 * PTX path; ~2 ulp f32), the full-precision one in the emulation */
#if MMA_PTX
#define EXP(x) native_exp(x)
#else
#define EXP(x) exp(x)
#endif
#ifndef VEC2
#define VEC2 0
#endif

/* channels c, c+1 of row base (pointer p, element strides sc) as one word, low = c */
#if VEC2
#define LD_PAIR(p, base, c, sc) (*(__global const uint *)((p) + (base) + (c)))
#else
#define LD_PAIR(p, base, c, sc) ((uint)(p)[(base) + (long)(c) * (sc)] | ((uint)(p)[(base) + (long)((c) + 1) * (sc)] << 16))
#endif

__kernel __attribute__((reqd_work_group_size(MMA_WG, 1, 1)))
void k_sdpa_mma(DARG(T_D, d), const long H, const long Tq, const long Tk, const float scale,
                const int causal, const long p0, __global const ushort *qt, const long qt_off,
                const long4 qt_st, __global const ushort *kt, const long kt_off, const long4 kt_st,
                __global const ushort *vt, const long vt_off, const long4 vt_st) {
    /* Q is staged through the K tile's memory before the key loop */
    __local uint QKs[(BQ > BKV ? BQ : BKV) * QW];
    __local uint *Qs = QKs, *Ks = QKs;
    __local uint Vtw[DV * VW];
    __local ushort *Vt = (__local ushort *)Vtw;
    MMA_SCRATCH_DECL
    const int tid = get_local_id(0), lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const long q0 = (long)get_group_id(0) * BQ;
    const long bh = get_group_id(1), b = bh / H, h = bh % H;
    const long qb = qt_off + b * qt_st.s0 + h * qt_st.s1;
    const long kb = kt_off + b * kt_st.s0 + h * kt_st.s1;
    const long vb = vt_off + b * vt_st.s0 + h * vt_st.s1;

    /* Q tile -> local (rows past Tq are zeros) -> this warp's fragments */
    for (int e = tid; e < BQ * (DQK / 2); e += MMA_WG) {
        const int r = e / (DQK / 2), c = e - r * (DQK / 2);
        const long i = q0 + r;
        Qs[r * QW + c] = i < Tq ? LD_PAIR(qt, qb + i * qt_st.s2, 2 * c, qt_st.s3) : 0u;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    uint qf[DQK / 16][4];
#pragma unroll
    for (int kk = 0; kk < DQK / 16; kk++) {
        const int r = (warp * 16 + g) * QW + kk * 8 + t;
        qf[kk][0] = Qs[r];
        qf[kk][1] = Qs[r + 8 * QW];
        qf[kk][2] = Qs[r + 4];
        qf[kk][3] = Qs[r + 8 * QW + 4];
    }

    float o[DV / 8][4];
#pragma unroll
    for (int n = 0; n < DV / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f, nan0 = 0.0f, nan1 = 0.0f;
    const long i0 = q0 + warp * 16 + g, i1 = i0 + 8; /* this lane's two query rows */

    const long last_q = min(Tq, q0 + BQ) - 1;
    const long kend = causal ? min(Tk, p0 + last_q + 1) : Tk;
    const long warp_last = min(Tq - 1, q0 + warp * 16 + 15);
    const long warp_kend = warp_last < q0 + warp * 16 ? 0 : causal ? min(Tk, p0 + warp_last + 1) : Tk;

    for (long k0 = 0; k0 < kend; k0 += BKV) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int e = tid; e < BKV * (DQK / 2); e += MMA_WG) {
            const int r = e / (DQK / 2), c = e - r * (DQK / 2);
            const long j = k0 + r;
            Ks[r * QW + c] = j < kend ? LD_PAIR(kt, kb + j * kt_st.s2, 2 * c, kt_st.s3) : 0u;
        }
        for (int e = tid; e < BKV * (DV / 2); e += MMA_WG) {
            const int r = e / (DV / 2), c = e - r * (DV / 2);
            const long j = k0 + r;
            const uint w = j < kend ? LD_PAIR(vt, vb + j * vt_st.s2, 2 * c, vt_st.s3) : 0u;
            Vt[(2 * c) * (2 * VW) + r] = (ushort)(w & 0xffffu);
            Vt[(2 * c + 1) * (2 * VW) + r] = (ushort)(w >> 16);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#if MMA_PTX
        if (k0 >= warp_kend) continue; /* every key of this tile is masked for this warp */
#endif
        /* S = Q·Kᵀ */
        float s[BKV / 8][4];
#pragma unroll
        for (int n = 0; n < BKV / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < DQK / 16; kk++)
#pragma unroll
            for (int n = 0; n < BKV / 8; n++) {
                const int r = (n * 8 + g) * QW + kk * 8 + t;
                MMA(s[n], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], Ks[r], Ks[r + 4],
                    MMA_SCR(warp));
            }
        /* scale, mask (only tiles with a masked key for some row of the warp), row max */
        float mx0 = -INFINITY, mx1 = -INFINITY;
        const bool full = k0 + BKV <= Tk && (!causal || k0 + BKV - 1 <= p0 + q0 + warp * 16);
#pragma unroll
        for (int n = 0; n < BKV / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = (int)(k0 - p0) + n * 8 + 2 * t + (e & 1); /* vs p0 + i: int */
                const int i = (int)((e < 2 ? i0 : i1));
                const bool vis = full || (k0 + n * 8 + 2 * t + (e & 1) < Tk && (!causal || j <= i));
                float v = vis ? s[n][e] * scale : -INFINITY;
                if (isnan(v)) {
                    if (e < 2) nan0 = 1.0f;
                    else nan1 = 1.0f;
                    v = -INFINITY;
                }
                s[n][e] = v;
                if (e < 2) mx0 = fmax(mx0, v);
                else mx1 = fmax(mx1, v);
            }
        mx0 = fmax(mx0, WARP_XOR(mx0, 1, MMA_SCR(warp)));
        mx0 = fmax(mx0, WARP_XOR(mx0, 2, MMA_SCR(warp)));
        mx1 = fmax(mx1, WARP_XOR(mx1, 1, MMA_SCR(warp)));
        mx1 = fmax(mx1, WARP_XOR(mx1, 2, MMA_SCR(warp)));
        const float mn0 = fmax(m0, mx0), mn1 = fmax(m1, mx1);
        /* rows with nothing visible yet keep m = -inf: no rescale, p = 0 */
        const float c0 = mn0 == -INFINITY ? 1.0f : EXP(m0 - mn0);
        const float c1 = mn1 == -INFINITY ? 1.0f : EXP(m1 - mn1);
        m0 = mn0, m1 = mn1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int n = 0; n < BKV / 8; n++) {
            s[n][0] = s[n][0] == -INFINITY ? 0.0f : EXP(s[n][0] - m0);
            s[n][1] = s[n][1] == -INFINITY ? 0.0f : EXP(s[n][1] - m0);
            s[n][2] = s[n][2] == -INFINITY ? 0.0f : EXP(s[n][2] - m1);
            s[n][3] = s[n][3] == -INFINITY ? 0.0f : EXP(s[n][3] - m1);
            sum0 += s[n][0] + s[n][1];
            sum1 += s[n][2] + s[n][3];
        }
        sum0 += WARP_XOR(sum0, 1, MMA_SCR(warp));
        sum0 += WARP_XOR(sum0, 2, MMA_SCR(warp));
        sum1 += WARP_XOR(sum1, 1, MMA_SCR(warp));
        sum1 += WARP_XOR(sum1, 2, MMA_SCR(warp));
        l0 = l0 * c0 + sum0;
        l1 = l1 * c1 + sum1;
#pragma unroll
        for (int n = 0; n < DV / 8; n++) {
            o[n][0] *= c0, o[n][1] *= c0;
            o[n][2] *= c1, o[n][3] *= c1;
        }
        /* O += P·V: S's accumulator layout is the A-fragment layout of P */
#pragma unroll
        for (int kk = 0; kk < BKV / 16; kk++) {
            const uint a0 = mma_pack(s[2 * kk][0], s[2 * kk][1]);
            const uint a1 = mma_pack(s[2 * kk][2], s[2 * kk][3]);
            const uint a2 = mma_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            const uint a3 = mma_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int n = 0; n < DV / 8; n++) {
                __local const uint *vr = Vtw + (n * 8 + g) * VW + kk * 8 + t;
                MMA(o[n], a0, a1, a2, a3, vr[0], vr[4], MMA_SCR(warp));
            }
        }
    }

    /* a NaN seen by any lane of a row makes the row NaN */
    nan0 = fmax(nan0, WARP_XOR(nan0, 1, MMA_SCR(warp)));
    nan0 = fmax(nan0, WARP_XOR(nan0, 2, MMA_SCR(warp)));
    nan1 = fmax(nan1, WARP_XOR(nan1, 1, MMA_SCR(warp)));
    nan1 = fmax(nan1, WARP_XOR(nan1, 2, MMA_SCR(warp)));
    const float inv0 = nan0 != 0.0f ? NAN : l0 == 0.0f ? 0.0f : 1.0f / l0;
    const float inv1 = nan1 != 0.0f ? NAN : l1 == 0.0f ? 0.0f : 1.0f / l1;
#pragma unroll
    for (int n = 0; n < DV / 8; n++) {
        const int c = n * 8 + 2 * t;
        if (i0 < Tq) {
            const long base = d_off + ((b * Tq + i0) * H + h) * DV + c;
            STORE(T_D, d, base, o[n][0] * inv0);
            STORE(T_D, d, base + 1, o[n][1] * inv0);
        }
        if (i1 < Tq) {
            const long base = d_off + ((b * Tq + i1) * H + h) * DV + c;
            STORE(T_D, d, base, o[n][2] * inv1);
            STORE(T_D, d, base + 1, o[n][3] * inv1);
        }
    }
}
