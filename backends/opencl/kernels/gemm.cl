/*
 * gemm.cl — MATMUL (ops.h: dst[z, m, n] = sum_k a[z, m, k] · b[z', n, k]) on 16-bit operands
 * (both bf16, or both f16 with MMA_F16=1) with the warp mma of mma.cl: products exact, sums in
 * f32, the result rounded once to dst's dtype (T_D). Prepended: common.cl, mma.cl.
 *
 * One work-group (256 work-items = 8 warps) computes a 128×128 tile of dst; warp w owns rows
 * 64·(w/4) .. +64 and columns 32·(w%4) .. +32 (4×4 mma tiles, 64 f32 accumulators per lane).
 * K advances 32 at a time through two local-memory buffers (the next tile is loaded from global
 * memory into registers while the current one is multiplied). Local rows are 32 bf16 + 8 of
 * padding = 20 words, so a warp's fragment reads (8 rows × 4 words) hit 32 distinct banks.
 *
 * VEC=1 (host-checked: k contiguous, K, row strides and offsets multiples of 8): 16-byte loads.
 * VEC=0: element loads through any strides. Rows past M/N and k past K read as zero.
 * Batches: group z = z0·A1 + z1, with per-operand strides (0 where an operand broadcasts);
 * dst is contiguous (z, M, N).
 */
#define MMA_WG 256
#define BM 128
#define BN 128
#define BKT 32
#define LW (BKT / 2 + 4) /* words per local row */
#ifndef VEC
#define VEC 0
#endif

#if VEC
/* 8 consecutive 16-bit values (16-byte aligned) as a uint4, or zeros */
inline uint4 ld8(__global const ushort *p, long i, bool ok) {
    return ok ? *(__global const uint4 *)(p + i) : (uint4)(0u);
}
#else
inline uint ld2(__global const ushort *p, long i, long sk, long k, long K, bool ok) {
    const uint lo = ok && k < K ? p[i] : 0u;
    const uint hi = ok && k + 1 < K ? p[i + sk] : 0u;
    return lo | (hi << 16);
}
inline uint4 ld8(__global const ushort *p, long i, long sk, long k, long K, bool ok) {
    return (uint4)(ld2(p, i, sk, k, K, ok), ld2(p, i + 2 * sk, sk, k + 2, K, ok),
                   ld2(p, i + 4 * sk, sk, k + 4, K, ok), ld2(p, i + 6 * sk, sk, k + 6, K, ok));
}
#endif

__kernel __attribute__((reqd_work_group_size(MMA_WG, 1, 1)))
void k_gemm(DARG(T_D, d), const long M, const long N, const long K, const long A1,
            __global const ushort *a, const long a_off, const long4 a_st,
            __global const ushort *b, const long b_off, const long4 b_st) {
    __local uint As[2][BM * LW];
    __local uint Bs[2][BN * LW];
    MMA_SCRATCH_DECL
    const int tid = get_local_id(0), lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const long m0 = (long)get_group_id(0) * BM, n0 = (long)get_group_id(1) * BN;
    const long z = get_group_id(2), z0 = z / A1, z1 = z - z0 * A1;
    const long abase = a_off + z0 * a_st.s0 + z1 * a_st.s1;
    const long bbase = b_off + z0 * b_st.s0 + z1 * b_st.s1;

    /* this work-item's two 8-element chunks of each tile: rows r and r + 64, k chunk c */
    const int lr = tid >> 2, lc = (tid & 3) * 8;
    const long am0 = m0 + lr, am1 = m0 + lr + 64, bn0 = n0 + lr, bn1 = n0 + lr + 64;
    const bool aok0 = am0 < M, aok1 = am1 < M, bok0 = bn0 < N, bok1 = bn1 < N;
    const long ar0 = abase + (aok0 ? am0 : 0) * a_st.s2, ar1 = abase + (aok1 ? am1 : 0) * a_st.s2;
    const long br0 = bbase + (bok0 ? bn0 : 0) * b_st.s2, br1 = bbase + (bok1 ? bn1 : 0) * b_st.s2;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    uint4 ra0, ra1, rb0, rb1;
#if VEC
#define LOAD_TILE(k0)                                                                            \
    do {                                                                                         \
        const long kk = (k0) + lc;                                                               \
        const bool kin = kk < K;                                                                 \
        ra0 = ld8(a, ar0 + kk, aok0 && kin);                                                     \
        ra1 = ld8(a, ar1 + kk, aok1 && kin);                                                     \
        rb0 = ld8(b, br0 + kk, bok0 && kin);                                                     \
        rb1 = ld8(b, br1 + kk, bok1 && kin);                                                     \
    } while (0)
#else
#define LOAD_TILE(k0)                                                                            \
    do {                                                                                         \
        const long kk = (k0) + lc;                                                               \
        ra0 = ld8(a, ar0 + kk * a_st.s3, a_st.s3, kk, K, aok0);                                  \
        ra1 = ld8(a, ar1 + kk * a_st.s3, a_st.s3, kk, K, aok1);                                  \
        rb0 = ld8(b, br0 + kk * b_st.s3, b_st.s3, kk, K, bok0);                                  \
        rb1 = ld8(b, br1 + kk * b_st.s3, b_st.s3, kk, K, bok1);                                  \
    } while (0)
#endif
#define STORE_TILE(buf)                                                                          \
    do {                                                                                         \
        vstore4(ra0, 0, &As[buf][lr * LW + lc / 2]);                                             \
        vstore4(ra1, 0, &As[buf][(lr + 64) * LW + lc / 2]);                                      \
        vstore4(rb0, 0, &Bs[buf][lr * LW + lc / 2]);                                             \
        vstore4(rb1, 0, &Bs[buf][(lr + 64) * LW + lc / 2]);                                      \
    } while (0)

    const long ntiles = (K + BKT - 1) / BKT;
    LOAD_TILE(0);
    STORE_TILE(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (long kt = 0; kt < ntiles; kt++) {
        const int cur = (int)(kt & 1);
        if (kt + 1 < ntiles) LOAD_TILE((kt + 1) * BKT);
        __local const uint *Ab = As[cur], *Bb = Bs[cur];
#pragma unroll
        for (int ks = 0; ks < 2; ks++) {
            uint af[4][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = (wm + i * 16 + g) * LW + ks * 8 + t;
                af[i][0] = Ab[r];
                af[i][1] = Ab[r + 8 * LW];
                af[i][2] = Ab[r + 4];
                af[i][3] = Ab[r + 8 * LW + 4];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int r = (wn + j * 8 + g) * LW + ks * 8 + t;
                bf[j][0] = Bb[r];
                bf[j][1] = Bb[r + 4];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    MMA(acc[i][j], af[i][0], af[i][1], af[i][2], af[i][3], bf[j][0], bf[j][1],
                        MMA_SCR(warp));
        }
        if (kt + 1 < ntiles) STORE_TILE(cur ^ 1);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const long dbase = d_off + z * M * N;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const long r = m0 + wm + i * 16 + g, c = n0 + wn + j * 8 + 2 * t;
            if (r < M) {
                if (c < N) STORE(T_D, d, dbase + r * N + c, acc[i][j][0]);
                if (c + 1 < N) STORE(T_D, d, dbase + r * N + c + 1, acc[i][j][1]);
            }
            if (r + 8 < M) {
                if (c < N) STORE(T_D, d, dbase + (r + 8) * N + c, acc[i][j][2]);
                if (c + 1 < N) STORE(T_D, d, dbase + (r + 8) * N + c + 1, acc[i][j][3]);
            }
        }
}
