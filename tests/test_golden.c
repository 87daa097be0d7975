/*
 * test_golden.c — the PyTorch tie-out: every golden case of tests/golden (tools/reference, fp64)
 * on every backend present, node by node.
 *
 * For each case directory (one holding golden.safetensors) and each backend (cpu-ref, cpu, vulkan,
 * opencl, cuda; an absent one is skipped with its reason, and no GPU backend at all is not a
 * failure): load the model (F32 weights, strict placement), build the full-sequence form-A graph
 * with keep_all, run it on the golden tokens and compare, in graph order, with the fp64 tensors:
 *
 *   layers.i.xn, q, k (after RoPE; the engine's q/k are permuted views, read with strides),
 *   g, s·Cbar and s·Bbar (the engine's sCbar/sBbar against golden Cbar/Bbar times
 *   s_h = d_h^(1/4)·sqrt(softplus(lambda_raw_h)), computed in fp64 from model.safetensors),
 *   Qhat, Khat (the first d_h + d_s channels; the engine's zero padding up to a multiple of 16
 *   must be exactly 0), Y, out; then logits and the clamp report against clamp_max_abs_u.
 *   Phi has no node: it lives inside SSM_CHANNELS and is covered through Cbar/Bbar.
 *
 * Form B: the KV-cache decode path (runtime/kvcache.h, sisa.h sessions): a decode session
 * (half the tokens prefilled in one graph, the rest one step at a time) is compared with
 * golden_formB.safetensors where the case has it (sisa_clamp: the clamp is active, so A and B
 * differ), else with the form-A logits (clamp inactive: the forms agree to ~1e-16 in fp64).
 *
 * Measure: normalised error ||engine - golden|| / ||golden|| in fp64; NaN/Inf never passes.
 * Every tolerance comes from tests/conformance/thresholds.c (rows GOLDEN_*, AUGMENT for the
 * padding); the first node over its tolerance is named with its error, tolerance and row.
 * Output: a table case x backend x quantity (worst layer) and a summary.
 *
 * Usage: test_golden GOLDEN_DIR [backend ...]   (default: every backend)
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/conform.h"
#include "kvcache.h" /* the decode path exists: form B is compared (sisa.h sessions) */
#include "model.h"
#include "safetensors.h"


static int failures = 0;

/* ---- one (case, backend) run ---- */

enum { Q_XN, Q_Q, Q_K, Q_G, Q_SC, Q_SB, Q_QH, Q_KH, Q_PAD, Q_Y, Q_OUT, Q_LOGITS, Q_CLAMP, Q_FORMB, NQ };
static const char *qname[NQ] = {"xn", "q", "k", "g", "sCbar", "sBbar", "Qhat", "Khat", "pad",
                                "Y", "out", "logits", "clamp", "formB"};

typedef struct run_result {
    double err[NQ]; /* worst over layers; -1: not applicable; NAN: not computed (error) */
    char first_bad[512];
    char worst_node[64];
    double worst_node_err;
} run_result;

static void note_bad(run_result *r, const char *fmt, const char *node, double err, double tol,
                     const conform_threshold *row) {
    if (r->first_bad[0]) return;
    snprintf(r->first_bad, sizeof r->first_bad, fmt, node, err, tol, row ? row->key : "?",
             row ? sisa_dtype_name(row->dtype) : "?");
}

/* ||a - b|| / ||b||; NaN when a holds a NaN/Inf. */
static double norm_err(const double *a, const double *b, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return NAN;
        double d = a[i] - b[i];
        e += d * d;
        r += b[i] * b[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

/* Same shape up to leading 1s? */
static bool same_shape(const sisa_tensor *t, const sisa_st_tensor *g) {
    int64_t a[8], b[8];
    int na = 0, nb = 0, i = 0;
    while (i < SISA_MAX_DIMS - 1 && t->shape[i] == 1) i++;
    for (; i < SISA_MAX_DIMS; i++) a[na++] = t->shape[i];
    i = 0;
    while (i < g->n_dims - 1 && g->shape[i] == 1) i++;
    for (; i < g->n_dims; i++) b[nb++] = g->shape[i];
    if (na != nb) return false;
    for (i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static const conform_threshold *row_for(const char *key, sisa_dtype dt, run_result *r,
                                        const char *node) {
    const conform_threshold *row = conform_threshold_find(key, dt);
    if (!row && !r->first_bad[0])
        snprintf(r->first_bad, sizeof r->first_bad,
                 "%s: no threshold row (%s, %s) in tests/conformance/thresholds.c", node, key,
                 sisa_dtype_name(dt));
    return row;
}

/* Compare node `node` with golden tensor `gname` (times per-head factor scale[h] when given:
 * the last-but-two dim of a (B,H,T,w) tensor is the head). Records err in r->err[q]. */
static bool check_node(const sisa_model_graph *mg, const sisa_st_file *gf, const char *node,
                       const char *gname, const double *scale, int64_t H, int q, run_result *r) {
    sisa_tensor *t = sisa_model_graph_find(mg, node);
    const sisa_st_tensor *g = sisa_st_find(gf, gname);
    if (!t || !g || g->dtype != SISA_F64) {
        if (!r->first_bad[0])
            snprintf(r->first_bad, sizeof r->first_bad, "%s: %s", node,
                     !t ? "no such node in the engine's graph" : "golden tensor missing or not F64");
        r->err[q] = NAN;
        return false;
    }
    if (!same_shape(t, g)) {
        if (!r->first_bad[0])
            snprintf(r->first_bad, sizeof r->first_bad,
                     "%s: shape (%lld,%lld,%lld,%lld) does not match golden %s", node,
                     (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                     (long long)t->shape[3], gname);
        r->err[q] = NAN;
        return false;
    }
    size_t n = (size_t)sisa_tensor_nelements(t);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (!a || !b || sisa_tensor_read_f64(t, a) != SISA_OK) {
        if (!r->first_bad[0])
            snprintf(r->first_bad, sizeof r->first_bad, "%s: read: %s", node, sisa_last_error());
        free(a);
        free(b);
        r->err[q] = NAN;
        return false;
    }
    memcpy(b, g->data, n * sizeof *b);
    if (scale) { /* (B,H,T,w): element i belongs to head (i / (T*w)) % H */
        int64_t w = g->shape[g->n_dims - 1], T = g->shape[g->n_dims - 2];
        for (size_t i = 0; i < n; i++) b[i] *= scale[(i / (size_t)(T * w)) % (size_t)H];
    }
    double e = norm_err(a, b, n);
    free(a);
    free(b);
    const char *key = q == Q_LOGITS ? "GOLDEN_LOGITS" : "GOLDEN_INTERMEDIATE";
    const conform_threshold *row = row_for(key, t->dtype, r, node);
    if (!(r->err[q] >= e)) r->err[q] = e; /* NaN sticks (comparison with NaN is false) */
    if (isnan(r->err[q])) r->err[q] = NAN;
    if (isfinite(e) && e > r->worst_node_err) {
        r->worst_node_err = e;
        snprintf(r->worst_node, sizeof r->worst_node, "%s", node);
    }
    bool ok = row && isfinite(e) && e <= row->tol;
    if (!ok && row)
        note_bad(r, "%s: normalised error %.3e > tolerance %.0e (thresholds.c row %s/%s)", node,
                 isfinite(e) ? e : INFINITY, row->tol, row);
    return ok;
}

/* The padding channels of Qhat_pad/Khat_pad [width, W) must be exactly 0. */
static bool check_pad(const sisa_model_graph *mg, const char *node, int64_t width, run_result *r) {
    sisa_tensor *t = sisa_model_graph_find(mg, node);
    if (!t) {
        if (!r->first_bad[0])
            snprintf(r->first_bad, sizeof r->first_bad, "%s: no such node in the engine's graph", node);
        r->err[Q_PAD] = NAN;
        return false;
    }
    const conform_threshold *row = row_for("AUGMENT", t->dtype, r, node);
    int64_t W = t->shape[3];
    size_t n = (size_t)sisa_tensor_nelements(t), bad = 0;
    double *a = malloc(n * sizeof *a), worst = 0;
    if (!a || sisa_tensor_read_f64(t, a) != SISA_OK) {
        free(a);
        r->err[Q_PAD] = NAN;
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if ((int64_t)(i % (size_t)W) >= width && a[i] != 0) {
            bad++;
            if (!(fabs(a[i]) <= worst)) worst = fabs(a[i]);
        }
    free(a);
    if (r->err[Q_PAD] < 0) r->err[Q_PAD] = 0;
    if (bad) r->err[Q_PAD] = fmax(r->err[Q_PAD], worst);
    if (bad && !r->first_bad[0])
        snprintf(r->first_bad, sizeof r->first_bad,
                 "%s: %zu padding channel value(s) in [%lld, %lld) are not 0 (max |x| %.3e; "
                 "thresholds.c row %s/%s: exact)",
                 node, bad, (long long)width, (long long)W, worst, row ? row->key : "?",
                 row ? sisa_dtype_name(row->dtype) : "?");
    return !bad && row;
}

/* fp64 s_h for layer l from model.safetensors. */
static bool s_factors(const char *dir, int l, int64_t H, int64_t dh, double *s) {
    char p[600], name[64];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    snprintf(name, sizeof name, "layers.%d.lambda_raw", l);
    sisa_st_file *f = NULL;
    if (sisa_st_open(p, &f) != SISA_OK) return false;
    const sisa_st_tensor *t = sisa_st_find(f, name);
    bool ok = t && t->dtype == SISA_F32 && sisa_st_nelements(t) == H;
    if (ok) {
        const float *lr = t->data;
        for (int64_t h = 0; h < H; h++) {
            double x = lr[h];
            double sp = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
            s[h] = pow((double)dh, 0.25) * sqrt(sp);
        }
    }
    sisa_st_close(f);
    return ok;
}

/* Form B through a decode session: the first half of the tokens in one prefill graph, the rest one
 * step at a time. ref: the golden logits this must reproduce. */
static void check_form_b(sisa_model *m, const int32_t *tok, int B, int T, const double *ref,
                         const char *ref_name, run_result *r) {
    const int64_t V = m->cfg.vocab_size;
    const int n0 = T / 2 > 0 ? T / 2 : 1;
    float *lg = malloc((size_t)B * T * V * sizeof *lg), *tmp = malloc((size_t)B * T * V * sizeof *tmp);
    int32_t *chunk = malloc((size_t)B * T * sizeof *chunk);
    sisa_session *s = NULL;
    sisa_status st = sisa_session_new_batch(m, B, T, &s);
    for (int b = 0; st == SISA_OK && b < B; b++) memcpy(chunk + (size_t)b * n0, tok + (size_t)b * T, n0 * sizeof *chunk);
    if (st == SISA_OK) st = sisa_session_prefill(s, chunk, n0, tmp);
    for (int b = 0; st == SISA_OK && b < B; b++)
        for (int t = 0; t < n0; t++)
            memcpy(lg + ((size_t)b * T + t) * V, tmp + ((size_t)b * n0 + t) * V, V * sizeof *lg);
    for (int t = n0; st == SISA_OK && t < T; t++) {
        for (int b = 0; b < B; b++) chunk[b] = tok[(size_t)b * T + t];
        st = sisa_session_step(s, chunk, tmp);
        for (int b = 0; st == SISA_OK && b < B; b++)
            memcpy(lg + ((size_t)b * T + t) * V, tmp + (size_t)b * V, V * sizeof *lg);
    }
    if (st != SISA_OK) {
        if (!r->first_bad[0])
            snprintf(r->first_bad, sizeof r->first_bad, "form B decode: %s", sisa_last_error());
        r->err[Q_FORMB] = NAN;
    } else {
        size_t n = (size_t)B * T * V;
        double *a = malloc(n * sizeof *a);
        for (size_t i = 0; i < n; i++) a[i] = lg[i];
        double e = norm_err(a, ref, n);
        free(a);
        r->err[Q_FORMB] = e;
        const conform_threshold *row = row_for("GOLDEN_FORM_B", SISA_F32, r, "formB");
        if (!(row && isfinite(e) && e <= row->tol) && row)
            note_bad(r, "%s: normalised error %.3e > tolerance %.0e (thresholds.c row %s/%s)",
                     ref_name, isfinite(e) ? e : INFINITY, row->tol, row);
    }
    sisa_session_free(s);
    free(lg);
    free(tmp);
    free(chunk);
}

static void run_case(const char *root, const char *name, const char *backend, run_result *r) {
    for (int q = 0; q < NQ; q++) r->err[q] = -1;
    r->first_bad[0] = 0;
    r->worst_node[0] = 0;
    r->worst_node_err = 0;
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(p, sizeof p, "%s/golden.safetensors", dir);
    sisa_st_file *gf = NULL, *bf = NULL;
    sisa_model *m = NULL;
    sisa_model_graph *mg = NULL;
    if (sisa_st_open(p, &gf) != SISA_OK) {
        snprintf(r->first_bad, sizeof r->first_bad, "golden: %s", sisa_last_error());
        goto done;
    }
    const sisa_st_tensor *tk = sisa_st_find(gf, "tokens");
    if (!tk || tk->dtype != SISA_I32 || tk->n_dims != 2) {
        snprintf(r->first_bad, sizeof r->first_bad, "golden: tokens missing or not I32 (Bt, T)");
        goto done;
    }
    const int B = (int)tk->shape[0], T = (int)tk->shape[1];
    sisa_load_options o = {.backend = backend, .max_batch = B, .max_tokens = T};
    if (sisa_model_load(dir, &o, &m) != SISA_OK) {
        snprintf(r->first_bad, sizeof r->first_bad, "load: %s", sisa_last_error());
        goto done;
    }
    const sisa_config *c = &m->cfg;
    if (sisa_model_build_graph(m, B, T, true, &mg) != SISA_OK ||
        sisa_model_graph_run(m, mg, tk->data) != SISA_OK) {
        snprintf(r->first_bad, sizeof r->first_bad, "graph: %s", sisa_last_error());
        goto done;
    }
    const int64_t H = c->n_heads, dh = c->head_dim, ds = c->d_ssm;
    double *s = calloc((size_t)H, sizeof *s);
    for (int l = 0; l < c->n_layers; l++) {
        char nn[64], gn[64];
#define CHK(what, gwhat, sc, q)                                                                    \
    do {                                                                                           \
        snprintf(nn, sizeof nn, "layers.%d.%s", l, what);                                          \
        snprintf(gn, sizeof gn, "layers.%d.%s", l, gwhat);                                         \
        check_node(mg, gf, nn, gn, sc, H, q, r);                                                   \
    } while (0)
        CHK("xn", "xn", NULL, Q_XN);
        CHK("q", "q", NULL, Q_Q);
        CHK("k", "k", NULL, Q_K);
        if (ds > 0) {
            if (!s_factors(dir, l, H, dh, s)) {
                if (!r->first_bad[0])
                    snprintf(r->first_bad, sizeof r->first_bad, "layers.%d.lambda_raw: unreadable", l);
                r->err[Q_SC] = r->err[Q_SB] = NAN;
            } else {
                CHK("g", "g", NULL, Q_G);
                CHK("sCbar", "Cbar", s, Q_SC);
                CHK("sBbar", "Bbar", s, Q_SB);
            }
            CHK("Qhat", "Qhat", NULL, Q_QH);
            CHK("Khat", "Khat", NULL, Q_KH);
            snprintf(nn, sizeof nn, "layers.%d.Qhat_pad", l);
            check_pad(mg, nn, dh + ds, r);
            snprintf(nn, sizeof nn, "layers.%d.Khat_pad", l);
            check_pad(mg, nn, dh + ds, r);
        }
        CHK("Y", "Y", NULL, Q_Y);
        CHK("out", "out", NULL, Q_OUT);
#undef CHK
    }
    free(s);
    check_node(mg, gf, "logits", "logits", NULL, H, Q_LOGITS, r);
    /* clamp report vs clamp_max_abs_u (absolute error) */
    const sisa_st_tensor *cl = sisa_st_find(gf, "clamp_max_abs_u");
    if (ds > 0) {
        sisa_clamp_report rep;
        const conform_threshold *row = row_for("GOLDEN_CLAMP_U", SISA_F32, r, "clamp");
        if (!cl || cl->dtype != SISA_F64 || sisa_st_nelements(cl) != c->n_layers) {
            if (!r->first_bad[0]) snprintf(r->first_bad, sizeof r->first_bad, "golden clamp_max_abs_u missing");
            r->err[Q_CLAMP] = NAN;
        } else if (sisa_model_graph_clamp_report(m, mg, &rep) != SISA_OK) {
            if (!r->first_bad[0])
                snprintf(r->first_bad, sizeof r->first_bad, "clamp report: %s", sisa_last_error());
            r->err[Q_CLAMP] = NAN;
        } else {
            const double *gu = cl->data;
            double worst = 0;
            bool active = false;
            for (int l = 0; l < c->n_layers; l++) {
                double d = fabs((double)rep.max_abs_u[l] - gu[l]);
                if (!(d <= worst)) worst = d;
                if (gu[l] > c->ssm_clamp) active = true;
            }
            r->err[Q_CLAMP] = worst;
            if (row && !(worst <= row->tol))
                note_bad(r, "%s: max absolute error %.3e > tolerance %.0e (thresholds.c row %s/%s)",
                         "clamp report", worst, row->tol, row);
            if (active != (rep.any_active != 0) && !r->first_bad[0])
                snprintf(r->first_bad, sizeof r->first_bad,
                         "clamp report: any_active = %d but the golden clamp is %sactive",
                         rep.any_active, active ? "" : "in");
        }
    }
    /* form B */
    snprintf(p, sizeof p, "%s/golden_formB.safetensors", dir);
    FILE *fb = fopen(p, "rb");
    bool has_b = fb != NULL;
    if (fb) fclose(fb);
    {
        const double *ref = NULL;
        const char *ref_name = NULL;
        if (has_b) {
            if (sisa_st_open(p, &bf) == SISA_OK) {
                const sisa_st_tensor *bt = sisa_st_find(bf, "tokens"), *bl = sisa_st_find(bf, "logits");
                if (bt && bl && bl->dtype == SISA_F64 && sisa_st_nelements(bt) == (int64_t)B * T &&
                    !memcmp(bt->data, tk->data, (size_t)B * T * 4)) {
                    ref = bl->data;
                    ref_name = "golden_formB.safetensors logits";
                }
            }
            if (!ref && !r->first_bad[0])
                snprintf(r->first_bad, sizeof r->first_bad,
                         "golden_formB.safetensors unreadable or its tokens differ from golden's");
        } else {
            bool active = false;
            if (cl && cl->dtype == SISA_F64)
                for (int64_t l = 0; l < sisa_st_nelements(cl); l++)
                    if (((const double *)cl->data)[l] > c->ssm_clamp) active = true;
            const sisa_st_tensor *gl = sisa_st_find(gf, "logits");
            if (!active && gl && gl->dtype == SISA_F64) {
                ref = gl->data;
                ref_name = "form B vs golden form-A logits (clamp inactive)";
            }
        }
        if (ref) check_form_b(m, tk->data, B, T, ref, ref_name, r);
    }
done:
    sisa_model_graph_free(mg);
    sisa_model_free(m);
    if (bf) sisa_st_close(bf);
    if (gf) sisa_st_close(gf);
}

static bool backend_available(const char *name, const char **reason) {
    sisa_backend_info info;
    for (int i = 0; i < sisa_backend_count(); i++)
        if (sisa_backend_get_info(i, &info) == SISA_OK && !strcmp(info.name, name)) {
            *reason = info.available ? NULL : info.reason;
            return info.available;
        }
    *reason = "not compiled into this build";
    return false;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR [backend ...]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *root = argv[1];
    /* the cases: every subdirectory with a golden.safetensors, sorted */
    char *cases[64];
    int n_cases = 0;
    DIR *d = opendir(root);
    if (!d) {
        printf("FAIL cannot open golden directory %s\n", root);
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n_cases < 64) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s/golden.safetensors", root, e->d_name);
        FILE *f = fopen(p, "rb");
        if (f) {
            fclose(f);
            cases[n_cases++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(cases, (size_t)n_cases, sizeof cases[0], cmp_str);
    if (!n_cases) {
        printf("FAIL no golden case (a directory holding golden.safetensors) under %s\n", root);
        return 1;
    }
    const char *all[] = {"cpu-ref", "cpu", "vulkan", "opencl", "cuda"};
    const char **backends = argc > 2 ? (const char **)argv + 2 : all;
    int n_backends = argc > 2 ? argc - 2 : 5;

    printf("golden tie-out: %d case(s) under %s; normalised error ||engine - fp64|| / ||fp64|| "
           "(clamp: max absolute error; pad: max |x| in the zero padding)\n", n_cases, root);
    printf("Phi: not compared directly: it is internal to SSM_CHANNELS (no node); it enters "
           "s·Cbar and s·Bbar, which are compared\n");
    printf("form B: decode session (half prefilled in one graph, then one step per token) vs "
           "golden_formB.safetensors where present, else vs the form-A logits (clamp inactive)\n");
    int ran = 0, gpu_ran = 0;
    for (int bi = 0; bi < n_backends; bi++) {
        const char *why;
        if (!backend_available(backends[bi], &why)) {
            printf("skip backend '%s': %s\n", backends[bi], why ? why : "unavailable");
            continue;
        }
        sisa_device_info di;
        printf("backend '%s': device 0 = %s\n", backends[bi],
               sisa_device_get_info(backends[bi], 0, &di) == SISA_OK ? di.name : "?");
        ran++;
        if (strcmp(backends[bi], "cpu") && strcmp(backends[bi], "cpu-ref")) gpu_ran++;
        printf("\n%-16s %-8s", "case", "backend");
        for (int q = 0; q < NQ; q++) printf(" %8s", qname[q]);
        printf("\n");
        for (int ci = 0; ci < n_cases; ci++) {
            run_result r;
            run_case(root, cases[ci], backends[bi], &r);
            printf("%-16s %-8s", cases[ci], backends[bi]);
            for (int q = 0; q < NQ; q++) {
                if (r.err[q] < 0) printf(" %8s", "-");
                else if (isnan(r.err[q])) printf(" %8s", "ERR");
                else printf(" %8.1e", r.err[q]);
            }
            printf("  %s\n", r.first_bad[0] ? "FAIL" : "ok");
            if (r.worst_node[0])
                printf("    worst intermediate/logits node: %s %.2e\n", r.worst_node, r.worst_node_err);
            if (r.first_bad[0]) {
                printf("    first bad: %s\n", r.first_bad);
                failures++;
            }
        }
    }
    for (int i = 0; i < n_cases; i++) free(cases[i]);
    if (!gpu_ran) printf("\nno GPU-API backend present: only the CPU backends were checked (not a failure)\n");
    printf("\n%d backend(s) x %d case(s), %d failure(s)\n", ran, n_cases, failures);
    if (!ran) return 77;
    return failures ? 1 : 0;
}
