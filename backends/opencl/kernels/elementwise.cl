/*
 * elementwise.cl — CPY, ADD, SCALE, SWIGLU, AUGMENT (ops.h): one destination element per
 * work-item. 2-D launch: dimension 0 runs along the row (i3), dimension 1 over the flattened
 * outer indices (i0, i1, i2), so only one division pair per work-item and coalesced rows.
 * sh = the destination's shape; sources carry their own strides (ADD's b has stride 0 along
 * its broadcast dimensions, set by the host).
 */
#define DST_INDEX(sh)                                                                \
    const long i3 = get_global_id(0);                                                \
    const long r = get_global_id(1);                                                 \
    if (i3 >= sh.s3) return;                                                         \
    const long i2 = r % sh.s2;                                                       \
    const long i1 = (r / sh.s2) % sh.s1;                                             \
    const long i0 = r / (sh.s2 * sh.s1);                                             \
    const long o = r * sh.s3 + i3;

__kernel void k_cpy(DARG(T_D, d), const long4 sh, TARG(T_S0, a)) {
    DST_INDEX(sh)
    STORE(T_D, d, d_off + o, LD(T_S0, a, AT(a, i0, i1, i2, i3)));
}

__kernel void k_add(DARG(T_D, d), const long4 sh, TARG(T_S0, a), TARG(T_S1, b)) {
    DST_INDEX(sh)
    STORE(T_D, d, d_off + o, LD(T_S0, a, AT(a, i0, i1, i2, i3)) + LD(T_S1, b, AT(b, i0, i1, i2, i3)));
}

__kernel void k_scale(DARG(T_D, d), const long4 sh, TARG(T_S0, a), const float s) {
    DST_INDEX(sh)
    STORE(T_D, d, d_off + o, LD(T_S0, a, AT(a, i0, i1, i2, i3)) * s);
}

__kernel void k_swiglu(DARG(T_D, d), const long4 sh, TARG(T_S0, g), TARG(T_S1, u)) {
    DST_INDEX(sh)
    const float x = LD(T_S0, g, AT(g, i0, i1, i2, i3));
    const float silu = x / (1.0f + exp(-x));
    STORE(T_D, d, d_off + o, silu * LD(T_S1, u, AT(u, i0, i1, i2, i3)));
}

/* [a | b | 0...]: a has da channels, b has db, the destination sh.s3 >= da + db. */
__kernel void k_augment(DARG(T_D, d), const long4 sh, TARG(T_S0, a), const long da,
                        TARG(T_S1, b), const long db) {
    DST_INDEX(sh)
    float v = 0.0f;
    if (i3 < da) v = LD(T_S0, a, AT(a, i0, i1, i2, i3));
    else if (i3 < da + db) v = LD(T_S1, b, AT(b, i0, i1, i2, i3 - da));
    STORE(T_D, d, d_off + o, v);
}
