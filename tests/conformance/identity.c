/*
 * identity.c — level 1: the augmented score identity of SISA.md, on the device.
 *
 * The device runs the published construction as a graph of the engine's own ops:
 *     g  = SSM_DECAY(alpha logits, b_alpha)
 *     ch = SSM_CHANNELS(Bs, Cs, theta, g, lambda_raw, AUGMENTED)      (s*Cbar | s*Bbar)
 *     Qhat = AUGMENT(q, s*Cbar), Khat = AUGMENT(k, s*Bbar)
 *     S  = SCALE(MATMUL(Qhat, Khat), 1/sqrt(d_h))                    (MATMUL is a.b^T)
 * and the host builds the score from the DEFINITION, in fp64, from the same raw inputs:
 *     S[i,j] = q_i.k_j / sqrt(d_h) + lambda * exp(g_i - g_j) * (Rot(Phi_i) C_i).(Rot(Phi_j) B_j)
 * (clamp inactive), or with exp(u_i - u_j), u = clamp(g - c, -11, 11), where the clamp is active
 * (max|g - c| > 11). The case's own premise is checked first: an "inactive" case whose g spans
 * too much, or an "active" one whose clamp changes nothing, is a harness error, not a pass.
 *
 * The same graph also computes Y_A = SDPA(Qhat, Khat, V) (form A) and Y_B = SDPA with FACTORED
 * channels and gq = gk = g (form B): they must agree when the clamp is inactive and differ when
 * it is active (SISA.md 2: that difference is information the engine must report, never hide).
 *
 * Case keys: B H T ds dh=64 decay (the per-step bias of the decay: -5 = trained init, clamp
 * inactive; >= 0 = steep decay, clamp active) check=scores|forms|both.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conform_internal.h"

static double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

typedef struct idgraph {
    conform_built b;
    sisa_tensor *a, *ba, *Bs, *Cs, *th, *lr, *q, *k, *v;
    sisa_tensor *scores, *ya, *yb;
    int64_t B, H, T, ds, dh;
} idgraph;

static sisa_status build(const conform_case *c, idgraph *ig) {
    static const char *const keys[] = {"B", "H", "T", "ds", "dh", "decay", "check", NULL};
    SISA_TRY(conform_case_check_keys(c, keys));
    if (c->dtype != SISA_F32)
        return sisa_err(SISA_INVALID_ARG, "case '%s': level 1 runs in f32 (s*exp(11) overflows f16)", c->str);
    ig->B = conform_case_int(c, "B", 1);
    ig->H = conform_case_int(c, "H", 4);
    ig->T = conform_case_int(c, "T", 17);
    ig->ds = conform_case_int(c, "ds", 16);
    ig->dh = conform_case_int(c, "dh", 64);
    if (ig->B < 1 || ig->H < 1 || ig->T < 1 || ig->ds < 2 || ig->ds % 2 || ig->dh < 2 ||
        ig->B * ig->H * ig->T * ig->T > (1 << 26))
        return sisa_err(SISA_INVALID_ARG, "case '%s': bad B/H/T/ds/dh", c->str);
    const double decay = conform_case_num(c, "decay", -5.0);
    const int64_t B = ig->B, H = ig->H, T = ig->T, ds = ig->ds, dh = ig->dh;
    conform_built *b = &ig->b;
    memset(b, 0, sizeof *b);
    b->g = sisa_graph_new();
    if (!b->g) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
    sisa_graph *g = b->g;
    const conform_gen n01 = {GEN_NORMAL, 0, 1};
    ig->a = conform_input(b, "alpha_logits", SISA_F32, (int64_t[4]){1, B, T, H}, n01);
    ig->ba = conform_input(b, "b_alpha", SISA_F32, (int64_t[4]){1, 1, 1, H}, (conform_gen){GEN_NORMAL, decay, 0.3});
    ig->Bs = conform_input(b, "Bs", SISA_F32, (int64_t[4]){1, B, T, H * ds}, n01);
    ig->Cs = conform_input(b, "Cs", SISA_F32, (int64_t[4]){1, B, T, H * ds}, n01);
    ig->th = conform_input(b, "theta", SISA_F32, (int64_t[4]){1, B, T, H * ds / 2}, (conform_gen){GEN_NORMAL, 0, 0.3});
    ig->lr = conform_input(b, "lambda_raw", SISA_F32, (int64_t[4]){1, 1, 1, H}, (conform_gen){GEN_NORMAL, 0, 0.5});
    ig->q = conform_input(b, "q", SISA_F32, (int64_t[4]){B, H, T, dh}, n01);
    ig->k = conform_input(b, "k", SISA_F32, (int64_t[4]){B, H, T, dh}, n01);
    ig->v = conform_input(b, "v", SISA_F32, (int64_t[4]){B, H, T, dh}, n01);

    sisa_tensor *gd = sisa_ssm_decay(g, ig->a, ig->ba, NULL);
    sisa_tensor *chA = sisa_ssm_channels(g, ig->Bs, ig->Cs, ig->th, gd, ig->lr, NULL, SISA_SSM_AUGMENTED,
                                         (int32_t)dh, 11.0f);
    sisa_tensor *qa = sisa_augment(g, ig->q, sisa_slice_row(g, chA, 0, ds), dh + ds);
    sisa_tensor *ka = sisa_augment(g, ig->k, sisa_slice_row(g, chA, ds, ds), dh + ds);
    ig->scores = sisa_scale(g, sisa_matmul(g, qa, ka), (float)(1.0 / sqrt((double)dh)));
    sisa_sdpa_params pa = {.scale = (float)(1.0 / sqrt((double)dh)), .causal = 1};
    ig->ya = sisa_sdpa(g, qa, ka, ig->v, &pa);
    sisa_tensor *chB = sisa_ssm_channels(g, ig->Bs, ig->Cs, ig->th, gd, ig->lr, NULL, SISA_SSM_FACTORED,
                                         (int32_t)dh, 11.0f);
    sisa_tensor *qb = sisa_augment(g, ig->q, sisa_slice_row(g, chB, 0, ds), dh + ds);
    sisa_tensor *kb = sisa_augment(g, ig->k, sisa_slice_row(g, chB, ds, ds), dh + ds);
    sisa_sdpa_params pb = pa;
    pb.gq = gd;
    pb.gk = gd;
    pb.d_content = (int32_t)dh;
    ig->yb = sisa_sdpa(g, qb, kb, ig->v, &pb);
    sisa_tensor_set_name(ig->scores, "scores");
    sisa_tensor_set_name(ig->ya, "Y_formA");
    sisa_tensor_set_name(ig->yb, "Y_formB");
    SISA_TRY(sisa_graph_status(g));
    b->out = ig->scores;
    return SISA_OK;
}

static double val(const conform_exec *x, const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return sisa_load_elem(x->leaf[t->index].host + sisa_tensor_offset_of(t, i0, i1, i2, i3), t->dtype);
}

static void rot(double a, double *x0, double *x1) {
    double c = cos(a), s = sin(a), r0 = *x0 * c - *x1 * s, r1 = *x0 * s + *x1 * c;
    *x0 = r0;
    *x1 = r1;
}

/* The definition in fp64 from the raw inputs: def (unclamped) and clamped scores, (B,H,T,T),
 * and max |g - c| over all rows. */
static sisa_status host_scores(const idgraph *ig, const conform_exec *x, double *def, double *clamped,
                               double *max_u) {
    const int64_t B = ig->B, H = ig->H, T = ig->T, ds = ig->ds, half = ds / 2, dh = ig->dh;
    double *gv = malloc((size_t)T * sizeof *gv), *u = malloc((size_t)T * sizeof *u);
    double *rc = malloc((size_t)(T * ds) * sizeof *rc), *rb = malloc((size_t)(T * ds) * sizeof *rb);
    double *phi = malloc((size_t)half * sizeof *phi);
    if (!gv || !u || !rc || !rb || !phi) {
        free(gv), free(u), free(rc), free(rb), free(phi);
        return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
    }
    *max_u = 0.0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            double acc = 0.0, gmax = -INFINITY, gmin = INFINITY;
            for (int64_t t = 0; t < T; t++) {
                acc -= softplus(val(x, ig->a, 0, b, t, h) + val(x, ig->ba, 0, 0, 0, h));
                gv[t] = acc;
                gmax = fmax(gmax, acc);
                gmin = fmin(gmin, acc);
            }
            const double c = (gmax + gmin) / 2.0;
            for (int64_t t = 0; t < T; t++) {
                double d = gv[t] - c;
                *max_u = fmax(*max_u, fabs(d));
                u[t] = d < -11 ? -11 : d > 11 ? 11 : d;
            }
            for (int64_t m = 0; m < half; m++) phi[m] = 0.0;
            for (int64_t t = 0; t < T; t++)
                for (int64_t m = 0; m < half; m++) {
                    phi[m] += val(x, ig->th, 0, b, t, h * half + m);
                    const int64_t e = h * ds + 2 * m;
                    double c0 = val(x, ig->Cs, 0, b, t, e), c1 = val(x, ig->Cs, 0, b, t, e + 1);
                    double b0 = val(x, ig->Bs, 0, b, t, e), b1 = val(x, ig->Bs, 0, b, t, e + 1);
                    rot(phi[m], &c0, &c1);
                    rot(phi[m], &b0, &b1);
                    rc[t * ds + 2 * m] = c0, rc[t * ds + 2 * m + 1] = c1;
                    rb[t * ds + 2 * m] = b0, rb[t * ds + 2 * m + 1] = b1;
                }
            const double lambda = softplus(val(x, ig->lr, 0, 0, 0, h));
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = 0; j < T; j++) {
                    double content = 0.0, ssm = 0.0;
                    for (int64_t d = 0; d < dh; d++) content += val(x, ig->q, b, h, i, d) * val(x, ig->k, b, h, j, d);
                    for (int64_t d = 0; d < ds; d++) ssm += rc[i * ds + d] * rb[j * ds + d];
                    const size_t o = (size_t)(((b * H + h) * T + i) * T + j);
                    content /= sqrt((double)dh);
                    def[o] = content + lambda * exp(gv[i] - gv[j]) * ssm;
                    clamped[o] = content + lambda * exp(u[i] - u[j]) * ssm;
                }
        }
    free(gv), free(u), free(rc), free(rb), free(phi);
    return SISA_OK;
}

/* ||a - b|| / ||b|| over the causal entries j <= i of (rows, T, T) score matrices: the ones
 * attention uses. Above the diagonal the unclamped definition grows as exp(g_i - g_j) > 1 and
 * overflows for long, steeply decaying sequences. */
static double norm_diff_causal(const double *a, const double *b, int64_t rows, int64_t T, bool *nan,
                               double *max_abs) {
    double num = 0.0, den = 0.0;
    *nan = false;
    *max_abs = 0.0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j <= i; j++) {
                const size_t o = (size_t)((r * T + i) * T + j);
                if (!isfinite(a[o]) || !isfinite(b[o])) *nan = true;
                const double d = a[o] - b[o];
                num += d * d;
                den += b[o] * b[o];
                *max_abs = fmax(*max_abs, fabs(d));
            }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double norm_diff(const double *a, const double *b, int64_t n, bool *nan, double *max_abs) {
    double num = 0.0, den = 0.0;
    *nan = false;
    *max_abs = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) *nan = true;
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
        *max_abs = fmax(*max_abs, fabs(a[i] - b[i]));
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static conform_result *add_row(conform_report *rep, const conform_dev *cd, const conform_case *c,
                               uint64_t seed, const char *check) {
    conform_result *r = conform_report_add(rep);
    if (!r) return NULL;
    conform_result_init(r, cd, c, seed);
    if (!conform_case_has(c, "check")) {
        size_t len = strlen(r->case_str);
        snprintf(r->case_str + len, sizeof r->case_str - len, " check=%s", check);
    }
    r->required = true;
    return r;
}

sisa_status conform_run_identity(conform_dev *cd, const conform_options *o, const conform_case *c,
                                 uint64_t seed, conform_report *rep) {
    const char *which = conform_case_str(c, "check", "both");
    const bool do_scores = strcmp(which, "forms") != 0, do_forms = strcmp(which, "scores") != 0;
    conform_result *rs = do_scores ? add_row(rep, cd, c, seed, "scores") : NULL;
    conform_result *rf = do_forms ? add_row(rep, cd, c, seed, "forms") : NULL;
    if ((do_scores && !rs) || (do_forms && !rf)) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
    const conform_threshold *t_id = conform_threshold_find("IDENTITY", SISA_F32);
    idgraph ig;
    memset(&ig, 0, sizeof ig);
    conform_exec x;
    memset(&x, 0, sizeof x);
    double *dev = NULL, *def = NULL, *clamped = NULL, *ya = NULL, *yb = NULL;
    int64_t n = 0; /* elements of the (B,H,T,T) score matrix */
    conform_result *rows[2] = {rs, rf};
#define ALL(verdict, check, ...)                                                                   \
    do {                                                                                           \
        for (int i_ = 0; i_ < 2; i_++)                                                             \
            if (rows[i_]) conform_set(rows[i_], verdict, check, __VA_ARGS__);                      \
    } while (0)

    if (build(c, &ig) != SISA_OK) {
        ALL(CONFORM_ERROR, "case", "%s", sisa_last_error());
        goto done;
    }
    if (conform_exec_place(&x, cd, ig.b.g) != SISA_OK) {
        ALL(CONFORM_ERROR, "alloc", "%s", sisa_last_error());
        goto done;
    }
    for (int i = 0; i < ig.b.g->n_nodes; i++) {
        const sisa_tensor *nd = ig.b.g->nodes[i];
        char reason[SISA_REASON_LEN] = "";
        if (nd->op == SISA_OP_VIEW || cd->dev->iface->supports_op(cd->dev, nd, reason)) continue;
        ALL(CONFORM_UNSUPPORTED, "supports_op", "unsupported: node '%s' (op %s): %s", nd->name,
            sisa_op_name(nd->op), reason);
        goto done;
    }
    if (o->mode != CONFORM_MODE_TEST) goto done;
    /* the inputs depend on the case without its check= key, so that the row strings (which
     * carry check=scores / check=forms) reproduce exactly the inputs of the combined run */
    conform_case base = *c;
    base.n_kv = 0;
    for (int i = 0; i < c->n_kv; i++)
        if (strcmp(c->key[i], "check") != 0) {
            memcpy(base.key[base.n_kv], c->key[i], CONFORM_KEY_LEN);
            memcpy(base.val[base.n_kv], c->val[i], CONFORM_VAL_LEN);
            base.n_kv++;
        }
    char seed_str[CONFORM_CASE_LEN];
    size_t len = (size_t)snprintf(seed_str, sizeof seed_str, "IDENTITY %s", sisa_dtype_name(c->dtype));
    for (int i = 0; i < base.n_kv && len < sizeof seed_str; i++)
        len += (size_t)snprintf(seed_str + len, sizeof seed_str - len, " %s=%s", base.key[i], base.val[i]);
    if (conform_exec_fill(&x, &ig.b, conform_case_seed(seed, seed_str)) != SISA_OK) {
        ALL(CONFORM_ERROR, "upload", "%s", sisa_last_error());
        goto done;
    }
    double t0 = conform_now_ms();
    if (conform_exec_run(&x) != SISA_OK) {
        ALL(CONFORM_ERROR, "run", "%s", sisa_last_error());
        goto done;
    }
    for (int i = 0; i < 2; i++)
        if (rows[i]) rows[i]->ms = conform_now_ms() - t0;
    char msg[400];
    int bad = conform_exec_check(&x, msg, sizeof msg);
    if (bad) {
        ALL(CONFORM_FAIL, bad == 1 ? "guard" : "input", "%s", msg);
        goto done;
    }
    n = sisa_tensor_nelements(ig.scores);
    def = calloc((size_t)n, sizeof *def);
    clamped = calloc((size_t)n, sizeof *clamped);
    double max_u = 0.0;
    if (!def || !clamped || conform_read(ig.scores, &dev) != SISA_OK || conform_read(ig.ya, &ya) != SISA_OK ||
        conform_read(ig.yb, &yb) != SISA_OK || host_scores(&ig, &x, def, clamped, &max_u) != SISA_OK) {
        ALL(CONFORM_ERROR, "read", "%s", sisa_last_error());
        goto done;
    }
    const bool active = max_u > 11.0;
    const int64_t n_mat = ig.B * ig.H;
    bool nan;
    double mx;
    /* the case's premise: a clamp-active case must be one where the clamp changes the scores */
    const double clamp_effect = norm_diff_causal(clamped, def, n_mat, ig.T, &nan, &mx);
    if (active && !(clamp_effect > 1e-2)) {
        ALL(CONFORM_ERROR, "case", "max|g - c| = %.2f > 11 but the clamp moves the scores by only %.2g: "
            "the case does not exercise the clamp", max_u, clamp_effect);
        goto done;
    }
    if (rs) {
        rs->threshold = t_id->tol;
        rs->threshold_reason = t_id->reason;
        rs->norm_err = norm_diff_causal(dev, active ? clamped : def, n_mat, ig.T, &nan, &rs->max_err);
        if (nan)
            conform_set(rs, CONFORM_FAIL, "nan", "non-finite scores (max|g - c| = %.2f)", max_u);
        else if (!(rs->norm_err <= t_id->tol))
            conform_set(rs, CONFORM_FAIL, "error",
                        "device scores differ from the %s definition built on the host: normalised "
                        "error %.3g > %.3g (max|g - c| = %.2f)",
                        active ? "clamped" : "unclamped", rs->norm_err, t_id->tol, max_u);
        else
            snprintf(rs->detail, sizeof rs->detail, "clamp %s (max|g - c| = %.2f)%s",
                     active ? "active: compared with the clamped definition" : "inactive", max_u,
                     active ? "" : "");
    }
    if (rf) {
        const conform_threshold *th = conform_threshold_find(active ? "FORMS_DIFFER" : "FORMS_AGREE", SISA_F32);
        const int64_t ny = sisa_tensor_nelements(ig.ya);
        rf->threshold = th->tol;
        rf->threshold_is_min = active;
        rf->threshold_reason = th->reason;
        rf->norm_err = norm_diff(ya, yb, ny, &nan, &rf->max_err);
        if (nan)
            conform_set(rf, CONFORM_FAIL, "nan", "non-finite SDPA output in form A or B");
        else if (!active && !(rf->norm_err <= th->tol))
            conform_set(rf, CONFORM_FAIL, "error",
                        "clamp inactive (max|g - c| = %.2f) but form A and form B differ: %.3g > %.3g",
                        max_u, rf->norm_err, th->tol);
        else if (active && !(rf->norm_err > th->tol))
            conform_set(rf, CONFORM_FAIL, "clamp",
                        "clamp active (max|g - c| = %.2f) but form A and form B agree (%.3g <= %.3g): "
                        "form A is not applying the clamp", max_u, rf->norm_err, th->tol);
        else
            snprintf(rf->detail, sizeof rf->detail, "clamp %s (max|g - c| = %.2f): forms %s",
                     active ? "active" : "inactive", max_u, active ? "differ, as they must" : "agree");
    }
done:
#undef ALL
    free(dev), free(def), free(clamped), free(ya), free(yb);
    conform_exec_free(&x);
    conform_built_free(&ig.b);
    return SISA_OK;
}
