/*
 * norm.cl — row reductions: RMS_NORM, SOFTMAX, ARGMAX (ops.h). One work-group of WG (a power of
 * two, set by the host) work-items per row; each work-item strides through the row, then a tree
 * reduction in local memory. Statistics in fp32.
 *
 * Non-finite values follow the oracle (ref_norm.c): a NaN in a softmax row makes the whole row
 * NaN (the max reduction propagates it), a row of only -inf gives zeros, and ARGMAX answers the
 * first NaN of a row, else the first index of the largest value.
 */
#ifndef WG
#define WG 64
#endif

#define ROW_INDEX(sh)                                 \
    const long r = get_group_id(0);                   \
    const int lid = get_local_id(0);                  \
    const long i2 = r % sh.s2;                        \
    const long i1 = (r / sh.s2) % sh.s1;              \
    const long i0 = r / (sh.s2 * sh.s1);              \
    const long D = sh.s3;

/* Sum reduction of red[0..WG) into red[0]. */
inline void sum_reduce(__local float *red, int lid) {
    for (int s = WG / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) red[lid] += red[lid + s];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* max that lets a NaN win (so a NaN row stays NaN) */
inline float max_nan(float a, float b) { return isnan(a) ? a : isnan(b) ? b : (b > a ? b : a); }

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void k_rms_norm(DARG(T_D, d), const long4 sh, TARG(T_S0, x), TARG(T_S1, w), const float eps) {
    __local float red[WG];
    ROW_INDEX(sh)
    float ss = 0.0f;
    for (long j = lid; j < D; j += WG) {
        const float v = LD(T_S0, x, AT(x, i0, i1, i2, j));
        ss += v * v;
    }
    red[lid] = ss;
    sum_reduce(red, lid);
    const float inv = 1.0f / sqrt(red[0] / (float)D + eps);
    for (long j = lid; j < D; j += WG) {
        const float v = LD(T_S0, x, AT(x, i0, i1, i2, j));
        STORE(T_D, d, d_off + r * D + j, v * inv * LD(T_S1, w, AT(w, 0, 0, 0, j)));
    }
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void k_softmax(DARG(T_D, d), const long4 sh, TARG(T_S0, x)) {
    __local float red[WG];
    ROW_INDEX(sh)
    float m = -INFINITY;
    for (long j = lid; j < D; j += WG) m = max_nan(m, LD(T_S0, x, AT(x, i0, i1, i2, j)));
    red[lid] = m;
    for (int s = WG / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s) red[lid] = max_nan(red[lid], red[lid + s]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    m = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    /* a row of only -inf has nothing to attend to: zeros, not 0/0. (No early return: every
     * work-item must reach the barriers below.) */
    const bool empty = m == -INFINITY;
    float sum = 0.0f;
    for (long j = lid; j < D && !empty; j += WG) sum += exp(LD(T_S0, x, AT(x, i0, i1, i2, j)) - m);
    red[lid] = sum;
    sum_reduce(red, lid);
    const float inv = 1.0f / red[0];
    for (long j = lid; j < D; j += WG)
        STORE(T_D, d, d_off + r * D + j,
              empty ? 0.0f : exp(LD(T_S0, x, AT(x, i0, i1, i2, j)) - m) * inv);
}

/* (value, index) a beats (value, index) b? NaN beats numbers; ties go to the smaller index;
 * index -1 means "nothing yet" and loses to everything. */
inline bool am_better(float av, long ai, float bv, long bi) {
    if (bi < 0) return ai >= 0;
    if (ai < 0) return false;
    const bool an = isnan(av), bn = isnan(bv);
    if (an != bn) return an;
    if (!an && av != bv) return av > bv;
    return ai < bi;
}

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void k_argmax(__global int *d, const long d_off, const long4 sh, TARG(T_S0, x)) {
    __local float rv[WG];
    __local long ri[WG];
    ROW_INDEX(sh)
    float bv = 0.0f;
    long bi = -1;
    for (long j = lid; j < D; j += WG) {
        const float v = LD(T_S0, x, AT(x, i0, i1, i2, j));
        if (am_better(v, j, bv, bi)) {
            bv = v;
            bi = j;
        }
    }
    rv[lid] = bv;
    ri[lid] = bi;
    for (int s = WG / 2; s > 0; s >>= 1) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < s && am_better(rv[lid + s], ri[lid + s], rv[lid], ri[lid])) {
            rv[lid] = rv[lid + s];
            ri[lid] = ri[lid + s];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) d[d_off + r] = (int)(ri[0] < 0 ? 0 : ri[0]);
}
