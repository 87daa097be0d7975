/*
 * ref_ssm.c — the oracle's SISA-specific ops (ops.h, SISA.md §1-2):
 *   SSM_DECAY     g = cumulative log-decay, an inclusive prefix sum of -softplus over time;
 *   SSM_CHANNELS  s·Cbar and s·Bbar: Cs/Bs scaled by exp(±u), rotated by the prefix-summed
 *                 angles Phi, times s_h = d_h^(1/4)·sqrt(lambda_h);
 *   AUGMENT       [a | b | zeros], which builds Qhat = [q | s·Cbar] and Khat = [k | s·Bbar].
 *
 * The two modes of SSM_CHANNELS are the two exact forms of SISA.md §2. AUGMENTED (form A, the
 * published definition) folds the decay into the channels as exp(+u_i)·exp(-u_j) = exp(g_i - g_j),
 * after subtracting the per-(batch, head) centre c and clamping to ±L so the factors fit bf16;
 * where the clamp is active form A is not exp(g_i - g_j) any more, and that is the definition.
 * FACTORED (form B) leaves u = 0 and lets SDPA apply exp(g_i - g_j) itself.
 */
#include "ref.h"

/* SSM_DECAY: g[b,h,t] = g0[b,h] + sum_{k<=t} -softplus(a[b,k,h] + b_alpha[h]); dst (1,B,H,T). */
sisa_status sisa_ref_ssm_decay(const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *bias = node->src[1], *g0 = node->src[2];
    const int64_t B = a->shape[1], T = a->shape[2], H = a->shape[3];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            double g = g0 ? ref_get(g0, 0, 0, b, h) : 0.0;
            const double b_alpha = ref_get(bias, 0, 0, 0, h);
            for (int64_t t = 0; t < T; t++) {
                g += -ref_softplus(ref_get(a, 0, b, t, h) + b_alpha); /* log alpha_t <= 0 */
                ref_set(node, 0, b, h, t, g);
            }
        }
    return SISA_OK;
}

/* clamp(x, -L, +L) that keeps a NaN a NaN (fmin/fmax would replace it by a bound). */
static double clamp_keep_nan(double x, double L) { return x < -L ? -L : x > L ? L : x; }

/* Form A's centre c = (max_t g + min_t g) / 2 over this call's T positions of row (b, h). */
static double decay_centre(const sisa_tensor *g, int64_t b, int64_t h, int64_t T) {
    double gmax = -INFINITY, gmin = INFINITY;
    for (int64_t t = 0; t < T; t++) {
        double v = ref_get(g, 0, b, h, t);
        if (v > gmax) gmax = v;
        if (v < gmin) gmin = v;
    }
    return (gmax + gmin) / 2.0;
}

/*
 * SSM_CHANNELS, for every (b, h, t):
 *   Phi[m] = Phi0[b,h,m] + sum_{k<=t} theta[b,k,h*ds/2+m]
 *   u      = clamp(g[b,h,t] - c[b,h], -L, +L)  (AUGMENTED)   or   0  (FACTORED)
 *   dst[b,h,t, 0:ds ] = s_h · Rot(Phi) (exp(+u) Cs[b,t,h*ds : (h+1)*ds])
 *   dst[b,h,t, ds:2ds] = s_h · Rot(Phi) (exp(-u) Bs[b,t,h*ds : (h+1)*ds])
 * with Rot(Phi) rotating pair m = channels (2m, 2m+1) by Phi[m] (the ROPE rotation).
 */
sisa_status sisa_ref_ssm_channels(const sisa_tensor *node) {
    const sisa_tensor *Bs = node->src[0], *Cs = node->src[1], *theta = node->src[2],
                      *g = node->src[3], *lambda_raw = node->src[4], *phi0 = node->src[5];
    const int64_t H = lambda_raw->shape[3], B = Bs->shape[1], T = Bs->shape[2];
    const int64_t ds = Bs->shape[3] / H, half = ds / 2;
    const bool augmented = node->iparams[0] == SISA_SSM_AUGMENTED;
    const double d_h = node->iparams[1], L = node->fparams[0];

    double *phi = sisa_ref_scratch(node, half); /* running Phi[m] of the current (b, h) */
    if (!phi) return SISA_OUT_OF_MEMORY;

    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const double lambda = ref_softplus(ref_get(lambda_raw, 0, 0, 0, h));
            const double s = pow(d_h, 0.25) * sqrt(lambda);
            const double c = augmented ? decay_centre(g, b, h, T) : 0.0;
            for (int64_t m = 0; m < half; m++)
                phi[m] = phi0 ? ref_get(phi0, 0, 0, b, h * half + m) : 0.0;

            for (int64_t t = 0; t < T; t++) {
                const double u = augmented ? clamp_keep_nan(ref_get(g, 0, b, h, t) - c, L) : 0.0;
                const double up = exp(u), down = exp(-u);
                for (int64_t m = 0; m < half; m++) {
                    phi[m] += ref_get(theta, 0, b, t, h * half + m); /* inclusive: k <= t */
                    const int64_t e = h * ds + 2 * m, o = e + 1; /* even, odd channel of pair m */
                    double c0 = up * ref_get(Cs, 0, b, t, e), c1 = up * ref_get(Cs, 0, b, t, o);
                    double b0 = down * ref_get(Bs, 0, b, t, e), b1 = down * ref_get(Bs, 0, b, t, o);
                    ref_rotate(phi[m], &c0, &c1);
                    ref_rotate(phi[m], &b0, &b1);
                    ref_set(node, b, h, t, 2 * m, s * c0);
                    ref_set(node, b, h, t, 2 * m + 1, s * c1);
                    ref_set(node, b, h, t, ds + 2 * m, s * b0);
                    ref_set(node, b, h, t, ds + 2 * m + 1, s * b1);
                }
            }
        }
    free(phi);
    return SISA_OK;
}

/* AUGMENT: dst[b,h,t,:] = [a[b,h,t,:] | b[b,h,t,:] | 0 ... 0], width iparams[0]. */
sisa_status sisa_ref_augment(const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    const int64_t Da = a->shape[3], Db = b->shape[3], W = node->shape[3];
    for (int64_t i0 = 0; i0 < node->shape[0]; i0++)
        for (int64_t i1 = 0; i1 < node->shape[1]; i1++)
            for (int64_t i2 = 0; i2 < node->shape[2]; i2++)
                for (int64_t w = 0; w < W; w++) {
                    double v = w < Da        ? ref_get(a, i0, i1, i2, w)
                               : w < Da + Db ? ref_get(b, i0, i1, i2, w - Da)
                                             : 0.0;
                    ref_set(node, i0, i1, i2, w, v);
                }
    return SISA_OK;
}
