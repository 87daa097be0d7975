/*
 * embed_rope.cl — EMBED (get rows) and ROPE (interleaved pairs), ops.h.
 *
 * ROPE's angle (p0 + t)·base^(-2m/D) reaches thousands of radians at long contexts; in fp32 its
 * rounding alone (~t·6e-8) would exceed the f32 tolerance, so angle, cos and sin are computed in
 * fp64 where the device has it (acc_t), as the oracle does.
 */

/* dst (1,B,T,D) row (b,t) = table row ids[b,t], zeros for an id outside [0,V). */
__kernel void k_embed(DARG(T_D, d), const long T, const long D, const long V,
                      __global const int *ids, const long ids_off, const long4 ids_st,
                      TARG(T_S0, tab)) {
    const long i = get_global_id(0);
    const long r = get_global_id(1); /* b * T + t */
    if (i >= D) return;
    const long b = r / T, t = r % T;
    const int id = ids[AT(ids, 0, 0, b, t)];
    const float v = (id >= 0 && id < V) ? LD(T_S0, tab, AT(tab, 0, 0, id, i)) : 0.0f;
    STORE(T_D, d, d_off + r * D + i, v);
}

/* x (B,T,H,D): dimension 0 = pair m, dimension 1 = flattened (b, t, h). */
__kernel void k_rope(DARG(T_D, d), const long4 sh, TARG(T_S0, x), const float base, const int p0) {
    const long m = get_global_id(0);
    const long r = get_global_id(1);
    const long D = sh.s3;
    if (m >= D / 2) return;
    const long h = r % sh.s2, t = (r / sh.s2) % sh.s1, b = r / (sh.s2 * sh.s1);
    const acc_t freq = exp(-((acc_t)(2 * m) / (acc_t)D) * log((acc_t)base));
    const acc_t angle = (acc_t)(p0 + t) * freq;
    const acc_t c = cos(angle), s = sin(angle);
    const acc_t x0 = LD(T_S0, x, AT(x, b, t, h, 2 * m));
    const acc_t x1 = LD(T_S0, x, AT(x, b, t, h, 2 * m + 1));
    STORE(T_D, d, d_off + r * D + 2 * m, (float)(x0 * c - x1 * s));
    STORE(T_D, d, d_off + r * D + 2 * m + 1, (float)(x0 * s + x1 * c));
}
