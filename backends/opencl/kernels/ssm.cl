/*
 * ssm.cl — SISA's channel ops (ops.h, SISA.md §1): SSM_DECAY (g, the cumulative log-decay) and
 * SSM_CHANNELS (s·Cbar | s·Bbar, scaled by exp(±u) and rotated by the prefix-summed Phi).
 *
 * Both are prefix sums over time, computed as a two-pass chunked scan by one work-group of WG
 * work-items per sequence set: each work-item sums its chunk of consecutive time steps, the
 * chunk sums are scanned in local memory, and each work-item walks its chunk again from its
 * prefix, writing the outputs. Sums are kept in acc_t (fp64 where the device has it, else
 * fp32), so g and Phi carry no more rounding than the oracle's at T in the thousands (only the
 * order of the fp64 additions differs). A sequential walk per (b, h) took 1-2.5 ms per layer
 * on the H100 at B = 8, T = 2048 (96 and 768 work-items in all).
 */
#ifndef WG
#define WG 64
#endif

/* In-place exclusive scan of v[0..n) (n <= WG) by the work-group: v[i] = sum_{k<i} v[k]. The
 * sums are few (one per chunk), so work-item 0 walks them. */
inline void scan_excl(__local acc_t *v, int n) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
        acc_t run = 0;
        for (int i = 0; i < n; i++) {
            const acc_t x = v[i];
            v[i] = run;
            run += x;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* g[b,h,t] = g0[b,h] + sum_{k<=t} -softplus(a[b,k,h] + bias[h]); dst F32 (1,B,H,T).
 * One work-group per (b, h); work-item i owns steps [i·L, (i+1)·L), L = ceil(T / WG). */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void k_ssm_decay(__global float *d, const long d_off, const long B, const long T, const long H,
                 TARG(T_S0, a), TARG(T_S1, bias), FARG(g0)) {
    __local acc_t part[WG];
    const int i = get_local_id(0);
    const long gid = get_group_id(0), b = gid / H, h = gid % H;
    const long L = (T + WG - 1) / WG, t0 = min(T, i * L), t1 = min(T, t0 + L);
    const acc_t ba = LD(T_S1, bias, AT(bias, 0, 0, 0, h));
    acc_t sum = 0;
    for (long t = t0; t < t1; t++) sum -= sisa_softplus((acc_t)LD(T_S0, a, AT(a, 0, b, t, h)) + ba);
    part[i] = sum;
    scan_excl(part, WG);
#if HAS_G0
    acc_t g = g0[AT(g0, 0, 0, b, h)] + part[i];
#else
    acc_t g = part[i];
#endif
    __global float *out = d + d_off + gid * T;
    for (long t = t0; t < t1; t++) {
        g -= sisa_softplus((acc_t)LD(T_S0, a, AT(a, 0, b, t, h)) + ba);
        out[t] = (float)g;
    }
}

/* clamp to [-L, L] keeping NaN NaN */
inline acc_t clamp_nan(acc_t x, acc_t L) { return x < -L ? -L : (x > L ? L : x); }

/*
 * dst (B,H,T,2ds): [0,ds) = s·Rot(Phi)(e^{+u} Cs), [ds,2ds) = s·Rot(Phi)(e^{-u} Bs). MODE_A:
 * u = clamp(g - c, -L, L), c = (max g + min g)/2 over this call's T; else (form B) u = 0.
 * One work-group per (b, h); NP = ds/2 pairs (build option), MP = min(NP, 32) of them per pass,
 * each pair's time axis split into NCH = WG / MP chunks: work-item = (pair mi, chunk ch).
 */
#ifndef NP
#define NP 1 /* (k_ssm_decay's builds) */
#endif
#define MP (NP < 32 ? NP : 32)
#define NCH (WG / MP < 1 ? 1 : WG / MP)

__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))
void k_ssm_channels(DARG(T_D, d), const long B, const long T, const long H,
                    const long ds, TARG(T_S0, bs), TARG(T_S1, cs), TARG(T_S2, th),
                    FARG(g), FARG(lam), TARG(T_S5, phi0), const int dh, const float L) {
    __local acc_t part[WG];
    const int tid = get_local_id(0);
    const long gid = get_group_id(0), b = gid / H, h = gid % H;
    const acc_t lambda = sisa_softplus((acc_t)lam[AT(lam, 0, 0, 0, h)]);
    const acc_t s = pow((acc_t)dh, (acc_t)0.25) * sqrt(lambda);
#if MODE_A
    /* c = (max g + min g) / 2 over T: a work-group reduction (part holds max, then min) */
    acc_t gmax = -INFINITY, gmin = INFINITY;
    for (long t = tid; t < T; t += WG) {
        const acc_t v = g[AT(g, 0, b, h, t)];
        gmax = v > gmax ? v : gmax; /* NaN g is skipped here, as in the oracle's comparisons */
        gmin = v < gmin ? v : gmin;
    }
    part[tid] = gmax;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (tid == 0) {
        for (int k = 1; k < WG; k++) gmax = part[k] > gmax ? part[k] : gmax;
        part[0] = gmax;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    gmax = part[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    part[tid] = gmin;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (tid == 0) {
        for (int k = 1; k < WG; k++) gmin = part[k] < gmin ? part[k] : gmin;
        part[0] = gmin;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    gmin = part[0];
    const acc_t c = (gmax + gmin) / 2;
#endif
    const int mi = tid % MP, ch = tid / MP;
    const long Lc = (T + NCH - 1) / NCH, t0 = min(T, ch * Lc), t1 = ch < NCH ? min(T, t0 + Lc) : t0;
    __global CAT(STORAGE_, T_D) *out = d;
    for (long mb = 0; mb < NP; mb += MP) {
        const long m = mb + mi;
        const bool on = m < NP && ch < NCH;
        acc_t sum = 0;
        for (long t = t0; on && t < t1; t++) sum += (acc_t)LD(T_S2, th, AT(th, 0, b, t, h * NP + m));
        barrier(CLK_LOCAL_MEM_FENCE);
        part[ch * MP + mi] = on ? sum : 0; /* chunk-major: part[ch][mi] */
        barrier(CLK_LOCAL_MEM_FENCE);
        if (ch == 0) { /* one work-item per pair scans its NCH chunk sums */
            acc_t run = 0;
            for (int k = 0; k < NCH; k++) {
                const acc_t x = part[k * MP + mi];
                part[k * MP + mi] = run;
                run += x;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (on) {
#if HAS_PHI0
        acc_t phi = LD(T_S5, phi0, AT(phi0, 0, 0, b, h * NP + m)) + part[ch * MP + mi];
#else
        acc_t phi = part[ch * MP + mi];
#endif
        const long e = h * ds + 2 * m; /* even channel of pair m in Bs/Cs */
        for (long t = t0; t < t1; t++) {
            phi += (acc_t)LD(T_S2, th, AT(th, 0, b, t, h * NP + m));
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
    }
}
