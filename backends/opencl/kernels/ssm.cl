/*
 * ssm.cl — SISA's channel ops (ops.h, SISA.md §1): SSM_DECAY (g, the cumulative log-decay) and
 * SSM_CHANNELS (s·Cbar | s·Bbar, scaled by exp(±u) and rotated by the prefix-summed Phi).
 *
 * Both are prefix sums over time: one work-item walks one sequence in order, keeping the running
 * sum in acc_t (fp64 where the device has it, else fp32), so g and Phi carry no more rounding
 * than the oracle's at T in the thousands. Parallelism is over (b, h) and (b, h, pair m); the
 * time loop is sequential (cheap next to the GEMMs; a parallel scan is an option for later).
 */

/* g[b,h,t] = g0[b,h] + sum_{k<=t} -softplus(a[b,k,h] + bias[h]); dst F32 (1,B,H,T). */
__kernel void k_ssm_decay(__global float *d, const long d_off, const long B, const long T,
                          const long H, TARG(T_S0, a), TARG(T_S1, bias), FARG(g0)) {
    const long gid = get_global_id(0);
    if (gid >= B * H) return;
    const long b = gid / H, h = gid % H;
#if HAS_G0
    acc_t g = g0[AT(g0, 0, 0, b, h)];
#else
    acc_t g = 0;
#endif
    const acc_t ba = LD(T_S1, bias, AT(bias, 0, 0, 0, h));
    __global float *out = d + d_off + gid * T;
    for (long t = 0; t < T; t++) {
        g -= sisa_softplus((acc_t)LD(T_S0, a, AT(a, 0, b, t, h)) + ba);
        out[t] = (float)g;
    }
}

/* clamp to [-L, L] keeping NaN NaN */
inline acc_t clamp_nan(acc_t x, acc_t L) { return x < -L ? -L : (x > L ? L : x); }

/*
 * One work-item per (b, h, pair m). dst (B,H,T,2ds): [0,ds) = s·Rot(Phi)(e^{+u} Cs),
 * [ds,2ds) = s·Rot(Phi)(e^{-u} Bs). MODE_A: u = clamp(g - c, -L, L), c = (max g + min g)/2
 * over this call's T; else (form B) u = 0.
 */
__kernel void k_ssm_channels(DARG(T_D, d), const long B, const long T, const long H,
                             const long ds, TARG(T_S0, bs), TARG(T_S1, cs), TARG(T_S2, th),
                             FARG(g), FARG(lam), TARG(T_S5, phi0), const int dh, const float L) {
    const long np = ds / 2;
    const long gid = get_global_id(0);
    if (gid >= B * H * np) return;
    const long m = gid % np, h = (gid / np) % H, b = gid / (np * H);
    const acc_t lambda = sisa_softplus((acc_t)lam[AT(lam, 0, 0, 0, h)]);
    const acc_t s = pow((acc_t)dh, (acc_t)0.25) * sqrt(lambda);
#if MODE_A
    acc_t gmax = -INFINITY, gmin = INFINITY;
    for (long t = 0; t < T; t++) {
        const acc_t v = g[AT(g, 0, b, h, t)];
        if (v > gmax) gmax = v;
        if (v < gmin) gmin = v;
    }
    const acc_t c = (gmax + gmin) / 2;
#endif
#if HAS_PHI0
    acc_t phi = LD(T_S5, phi0, AT(phi0, 0, 0, b, h * np + m));
#else
    acc_t phi = 0;
#endif
    const long e = h * ds + 2 * m; /* even channel of pair m in Bs/Cs */
    __global CAT(STORAGE_, T_D) *out = d;
    for (long t = 0; t < T; t++) {
        phi += (acc_t)LD(T_S2, th, AT(th, 0, b, t, h * np + m));
#if MODE_A
        const acc_t u = clamp_nan((acc_t)g[AT(g, 0, b, h, t)] - c, (acc_t)L);
        const acc_t up = exp(u), down = exp(-u);
#else
        const acc_t up = 1, down = 1;
#endif
        const acc_t cr = cos(phi), sr = sin(phi);
        const acc_t c0 = up * LD(T_S1, cs, AT(cs, 0, b, t, e));
        const acc_t c1 = up * LD(T_S1, cs, AT(cs, 0, b, t, e + 1));
        const acc_t b0 = down * LD(T_S0, bs, AT(bs, 0, b, t, e));
        const acc_t b1 = down * LD(T_S0, bs, AT(bs, 0, b, t, e + 1));
        const long o = d_off + ((b * H + h) * T + t) * 2 * ds;
        STORE(T_D, out, o + 2 * m, (float)(s * (c0 * cr - c1 * sr)));
        STORE(T_D, out, o + 2 * m + 1, (float)(s * (c0 * sr + c1 * cr)));
        STORE(T_D, out, o + ds + 2 * m, (float)(s * (b0 * cr - b1 * sr)));
        STORE(T_D, out, o + ds + 2 * m + 1, (float)(s * (b0 * sr + b1 * cr)));
    }
}
