/*
 * smoke_common.c — the shared builders and the compare-with-the-oracle runner of the per-backend
 * smoke tests (test_cuda_smoke.c, test_opencl_smoke.c, test_vulkan_smoke.c); see smoke_common.h.
 */
#include "smoke_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "sched.h"

void smoke_out(smoke_outs *o, sisa_tensor *t, double tol) {
    if (!t || o->n == SMOKE_MAX_OUT) return;
    sisa_tensor_set_output(t);
    o->t[o->n] = t;
    o->tol[o->n++] = tol;
}

/* ---- deterministic inputs: value k of leaf #i depends on (i, k) and the leaf's name ---- */

uint64_t smoke_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double smoke_uniform(uint64_t i, uint64_t k) { /* [-1, 1) */
    return (double)(smoke_mix(i * 0x100000001b3ull + k) >> 11) / 4503599627370496.0 - 1.0;
}

/* Scale by name prefix: alpha logits spread around 0, theta small, ids in [0, 50). */
double smoke_value(const sisa_tensor *t, int idx, int64_t k) {
    double u = smoke_uniform((uint64_t)idx + 1, (uint64_t)k);
    if (t->dtype == SISA_I32) return (double)(smoke_mix((uint64_t)k * 31 + (uint64_t)idx) % 50);
    if (strncmp(t->name, "alpha", 5) == 0) return 3.0 * u;
    if (strncmp(t->name, "theta", 5) == 0) return 0.3 * u;
    if (strncmp(t->name, "big", 3) == 0) return 8.0 * u;
    return u;
}

/* Writes value(t, idx, k) into every element k of leaf #idx. */
static sisa_status fill_input(sisa_tensor *t, int idx, smoke_value_fn value) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    for (int64_t k = 0; k < n; k++) sisa_store_elem(buf + (size_t)k * es, t->dtype, value(t, idx, k));
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

/* Build, place (strict), fill, run; outputs read back as doubles into res[i] (malloc'ed). */
static sisa_status run_on(const char *backend, smoke_value_fn value, smoke_build_fn build,
                          double *res[SMOKE_MAX_OUT], smoke_outs *o) {
    sisa_device *dev = NULL;
    sisa_sched *s = NULL;
    sisa_graph *g = sisa_graph_new();
    memset(o, 0, sizeof *o);
    sisa_status st = g ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    if (st == SISA_OK) {
        build(g, o);
        st = sisa_graph_status(g);
    }
    if (st == SISA_OK) st = sisa_device_open(backend, 0, &dev);
    if (st == SISA_OK) st = sisa_sched_new(dev, false, &s);
    if (st == SISA_OK) st = sisa_sched_prepare(s, g);
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) st = fill_input(g->leafs[i], i, value);
    if (st == SISA_OK) st = sisa_sched_compute(s, g);
    for (int i = 0; st == SISA_OK && i < o->n; i++) {
        o->nel[i] = sisa_tensor_nelements(o->t[i]);
        res[i] = malloc((size_t)o->nel[i] * sizeof(double));
        st = res[i] ? sisa_tensor_read_f64(o->t[i], res[i])
                    : sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    }
    for (int i = 0; i < o->n; i++) o->t[i] = NULL; /* freed with the graph below */
    sisa_sched_free(s);
    sisa_device_free(dev);
    sisa_graph_free(g);
    return st;
}

/* ||a - ref|| / ||ref||; NaN on one side only, or any non-finite value in a, is INFINITY. */
static double norm_err(const double *a, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(ref[i])) {
            if (isnan(a[i]) && isnan(ref[i])) continue;
            if (a[i] == ref[i]) continue;
            return INFINITY;
        }
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

void smoke_run_case(smoke_runner *r, const char *name, smoke_build_fn build) {
    double *ref[SMOKE_MAX_OUT] = {0}, *be[SMOKE_MAX_OUT] = {0};
    smoke_outs o_ref, o_be;
    smoke_value_fn value = r->value ? r->value : smoke_value;
    r->checks++;
    if (run_on("cpu-ref", value, build, ref, &o_ref) != SISA_OK) {
        printf("FAIL %-*s oracle: %s\n", r->name_width, name, sisa_last_error());
        r->failures++;
    } else if (run_on(r->backend, value, build, be, &o_be) != SISA_OK) {
        printf("FAIL %-*s %s: %s\n", r->name_width, name, r->backend, sisa_last_error());
        r->failures++;
    } else {
        bool ok = true;
        char msg[320] = "";
        size_t used = 0;
        for (int i = 0; i < o_ref.n && used < sizeof msg; i++) {
            double e = norm_err(be[i], ref[i], o_ref.nel[i]);
            bool pass = o_ref.tol[i] > 0 ? e <= o_ref.tol[i] : e == 0.0;
            ok = ok && pass;
            used += (size_t)snprintf(msg + used, sizeof msg - used, " out%d%s %.2e (tol %.0e)%s", i,
                                     r->err_word, e, o_ref.tol[i], pass ? "" : " <-- FAIL");
        }
        printf("%s %-*s%s\n", ok ? "ok  " : "FAIL", r->name_width, name, msg);
        fflush(stdout);
        if (!ok) r->failures++;
    }
    for (int i = 0; i < SMOKE_MAX_OUT; i++) {
        free(ref[i]);
        free(be[i]);
    }
}

void smoke_run_cases(smoke_runner *r, const smoke_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) smoke_run_case(r, cases[i].name, cases[i].fn);
}

int smoke_probe(const char *backend, const char *label) {
    const sisa_backend_def *b = sisa_backend_find(backend);
    if (!b) {
        printf("SKIP: the %s backend is not compiled into this build\n", label);
        return 77;
    }
    const char *why = NULL;
    if (sisa_backend_probe(b, &why) <= 0) {
        printf("SKIP: no %s device: %s\n", label, why ? why : "?");
        return 77;
    }
    return 0;
}

/* ---- the shared cases ---- */

/* y = x·Wᵀ: one flat GEMM over batch·rows. */
void smoke_matmul_flat(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 2, 33, 64), *w = IN(g, "w", SISA_F32, 1, 1, 48, 64);
    smoke_out(o, sisa_matmul(g, x, w), SMOKE_F32_TOL);
}

/* batched a·bᵀ with b broadcast over dim 1 (strided batched, b stride 0) */
void smoke_matmul_batched(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *a = IN(g, "a", SISA_F32, 2, 3, 17, 24), *b = IN(g, "b", SISA_F32, 2, 1, 19, 24);
    smoke_out(o, sisa_matmul(g, a, b), SMOKE_F32_TOL);
}

/* bf16 weight (copied to f32 for CLBlast on OpenCL), bf16 destination (rounded once) */
void smoke_matmul_bf16(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 1, 20, 32), *w = IN(g, "w", SISA_BF16, 1, 1, 40, 32);
    smoke_out(o, sisa_matmul(g, x, w), SMOKE_F32_TOL);
    g->act_dtype = SISA_BF16;
    smoke_out(o, sisa_matmul(g, x, w), 1e-2);
    g->act_dtype = SISA_F32;
}

/* a = row slice (ld > K), b = transposed view (column-major for CLBlast on OpenCL), f16 a (copy path) */
void smoke_matmul_views(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *xa = IN(g, "xa", SISA_F32, 1, 1, 21, 40), *wt = IN(g, "wt", SISA_F32, 1, 1, 24, 30);
    sisa_tensor *a = sisa_slice_row(g, xa, 5, 24);   /* (21, 24), row stride 40 */
    sisa_tensor *b = sisa_permute(g, wt, 0, 1, 3, 2); /* (30, 24) = wtᵀ */
    smoke_out(o, sisa_matmul(g, a, b), SMOKE_F32_TOL);
    sisa_tensor *h = IN(g, "h", SISA_F16, 1, 1, 9, 24);
    smoke_out(o, sisa_matmul(g, h, b), SMOKE_F32_TOL);
}

void smoke_rms_norm(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "big_x", SISA_F32, 1, 2, 7, 96), *w = IN(g, "w", SISA_F32, 1, 1, 1, 96);
    smoke_out(o, sisa_rms_norm(g, x, w, 1e-6f), SMOKE_F32_TOL);
    sisa_tensor *xb = IN(g, "xb", SISA_BF16, 1, 1, 3, 768), *wb = IN(g, "wb", SISA_F32, 1, 1, 1, 768);
    smoke_out(o, sisa_rms_norm(g, xb, wb, 1e-6f), SMOKE_F32_TOL);
}

sisa_tensor *smoke_sdpa(sisa_graph *g, sisa_tensor *q, sisa_tensor *k, sisa_tensor *v, int causal,
                        int p0, sisa_tensor *gq, sisa_tensor *gk, int dc) {
    sisa_sdpa_params p = {.scale = 0.125f, .causal = causal, .p0 = p0, .gq = gq, .gk = gk,
                          .d_content = dc};
    return sisa_sdpa(g, q, k, v, &p);
}

/* form A, SISA-shaped: d_qk = 80 (64 + d_s 16), d_v = 64, causal prefill */
void smoke_sdpa_a(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 2, 3, 77, 80), *k = IN(g, "big_k", SISA_F32, 2, 3, 77, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 2, 3, 77, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_SDPA_TOL);
}

/* decode: one query at absolute position p0 = 49 over 50 cached keys; and Tq=3 at p0=47 */
void smoke_sdpa_decode(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 1, 2, 1, 80), *k = IN(g, "big_k", SISA_F32, 1, 2, 50, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 1, 2, 50, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 49, NULL, NULL, 0), SMOKE_SDPA_TOL);
    sisa_tensor *q3 = IN(g, "big_q3", SISA_F32, 1, 2, 3, 80);
    smoke_out(o, smoke_sdpa(g, q3, k, v, 1, 47, NULL, NULL, 0), SMOKE_SDPA_TOL);
}

/* non-causal, Tq != Tk, d_qk < d_v, odd widths (no float4 path), f16 V, bf16 out */
void smoke_sdpa_odd(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "q", SISA_F32, 1, 2, 5, 18), *k = IN(g, "k", SISA_F32, 1, 2, 41, 18);
    sisa_tensor *v = IN(g, "v", SISA_F16, 1, 2, 41, 33);
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SMOKE_SDPA_TOL);
    g->act_dtype = SISA_BF16;
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), 1e-2);
    g->act_dtype = SISA_F32;
}

/* SSM_DECAY -> SSM_CHANNELS in both modes; the channels' Phi and g run over T = 200 */
void smoke_ssm(sisa_graph *g, smoke_outs *o, int mode, int64_t T) {
    const int64_t B = 2, H = 3, ds = 16;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *bs = IN(g, "bs", SISA_F32, 1, B, T, H * ds), *cs = IN(g, "cs", SISA_BF16, 1, B, T, H * ds);
    sisa_tensor *th = IN(g, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = IN(g, "lambda", SISA_F32, 1, 1, 1, H);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    smoke_out(o, gd, SMOKE_F32_TOL);
    smoke_out(o, sisa_ssm_channels(g, bs, cs, th, gd, lr, NULL, mode, 64, 11.0f), SMOKE_F32_TOL);
}
void smoke_ssm_a(sisa_graph *g, smoke_outs *o) { smoke_ssm(g, o, SISA_SSM_AUGMENTED, 200); }
void smoke_ssm_b(sisa_graph *g, smoke_outs *o) { smoke_ssm(g, o, SISA_SSM_FACTORED, 200); }

/* decode carry-ins: g0 and Phi0 */
void smoke_ssm_carry(sisa_graph *g, smoke_outs *o) {
    const int64_t B = 2, T = 1, H = 2, ds = 4;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *g0 = IN(g, "g0", SISA_F32, 1, 1, B, H);
    sisa_tensor *bs = IN(g, "bs", SISA_F32, 1, B, T, H * ds), *cs = IN(g, "cs", SISA_F32, 1, B, T, H * ds);
    sisa_tensor *th = IN(g, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = IN(g, "lambda", SISA_F32, 1, 1, 1, H);
    sisa_tensor *phi0 = IN(g, "phi0", SISA_F32, 1, 1, B, H * ds / 2);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, g0);
    smoke_out(o, gd, SMOKE_F32_TOL);
    smoke_out(o, sisa_ssm_channels(g, bs, cs, th, gd, lr, phi0, SISA_SSM_FACTORED, 64, 11.0f), SMOKE_F32_TOL);
}

/*
 * Form B on SISA's pieces: Q = [q | C], K = [k | B] from FACTORED channels, decay exp(g_i - g_j)
 * inside SDPA; plus form A of the same inputs from AUGMENTED channels. Where the clamp is
 * inactive the two agree; each is compared with its own oracle here. H 2, d_s 16, d_h 64; dt is
 * the dtype of B, C, q, k, v and (when not F32) of the activations after the decay; modes is a
 * bit mask of the SSM modes to build (1 << SISA_SSM_AUGMENTED, 1 << SISA_SSM_FACTORED).
 */
void smoke_sisa_attention_on(sisa_graph *g, smoke_outs *o, int64_t B, int64_t T, sisa_dtype dt,
                             int modes, double tol) {
    const int64_t H = 2, ds = 16, dh = 64;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *bs = IN(g, "bs", dt, 1, B, T, H * ds), *cs = IN(g, "cs", dt, 1, B, T, H * ds);
    sisa_tensor *th = IN(g, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = IN(g, "lambda", SISA_F32, 1, 1, 1, H);
    sisa_tensor *q = IN(g, "q", dt, B, H, T, dh), *k = IN(g, "k", dt, B, H, T, dh);
    sisa_tensor *v = IN(g, "v", dt, B, H, T, dh);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    if (dt != SISA_F32) g->act_dtype = dt;
    for (int mode = 0; mode < 2; mode++) {
        if (!(modes & (1 << mode))) continue;
        sisa_tensor *ch = sisa_ssm_channels(g, bs, cs, th, gd, lr, NULL, mode, (int32_t)dh, 11.0f);
        sisa_tensor *c = sisa_slice_row(g, ch, 0, ds), *bb = sisa_slice_row(g, ch, ds, ds);
        sisa_tensor *qh = sisa_augment(g, q, c, dh + ds), *kh = sisa_augment(g, k, bb, dh + ds);
        sisa_tensor *y = mode == SISA_SSM_FACTORED ? smoke_sdpa(g, qh, kh, v, 1, 0, gd, gd, (int)dh)
                                                   : smoke_sdpa(g, qh, kh, v, 1, 0, NULL, NULL, 0);
        smoke_out(o, y, tol);
    }
    if (dt != SISA_F32) g->act_dtype = SISA_F32;
}

/* both forms in f32, B 1, T 70 */
void smoke_sisa_attention(sisa_graph *g, smoke_outs *o) {
    smoke_sisa_attention_on(g, o, 1, 70, SISA_F32, SMOKE_BOTH_MODES, SMOKE_SDPA_TOL);
}

void smoke_small_ops(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "big_x", SISA_F32, 2, 3, 5, 40), *bias = IN(g, "bias", SISA_BF16, 1, 3, 1, 40);
    smoke_out(o, sisa_add(g, sisa_scale(g, x, 0.5f), bias), SMOKE_F32_TOL);
    sisa_tensor *up = IN(g, "up", SISA_F16, 2, 3, 5, 40);
    smoke_out(o, sisa_swiglu(g, x, up), SMOKE_F32_TOL);
    smoke_out(o, sisa_softmax(g, sisa_permute(g, x, 0, 1, 3, 2)), SMOKE_F32_TOL);
    smoke_out(o, sisa_argmax(g, x), 0);
}

void smoke_small_ops2(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 2, 9, 3, 64); /* (B,T,H,D) */
    smoke_out(o, sisa_rope(g, x, 10000.0f, 1000), SMOKE_F32_TOL);
    sisa_tensor *tab = IN(g, "tab", SISA_BF16, 1, 1, 50, 24), *ids = IN(g, "ids", SISA_I32, 1, 1, 2, 7);
    smoke_out(o, sisa_embed(g, tab, ids), SMOKE_F32_TOL);
    smoke_out(o, sisa_cpy(g, sisa_permute(g, x, 0, 2, 1, 3), SISA_F16), 1e-3);
}

const smoke_case smoke_matmul_cases[4] = {
    {"MATMUL x·Wᵀ flat", smoke_matmul_flat},
    {"MATMUL batched, b broadcast", smoke_matmul_batched},
    {"MATMUL bf16 weight / dst", smoke_matmul_bf16},
    {"MATMUL views (slice, T, f16)", smoke_matmul_views},
};
const smoke_case smoke_sdpa_cases[3] = {
    {"SDPA A causal 80/64", smoke_sdpa_a},
    {"SDPA A decode p0", smoke_sdpa_decode},
    {"SDPA A non-causal odd", smoke_sdpa_odd},
};
const smoke_case smoke_ssm_cases[3] = {
    {"SSM_DECAY+CHANNELS A", smoke_ssm_a},
    {"SSM_DECAY+CHANNELS B", smoke_ssm_b},
    {"SSM carry-in g0, Phi0", smoke_ssm_carry},
};
const smoke_case smoke_small_cases[2] = {
    {"ADD SCALE SWIGLU SOFTMAX ARGMAX", smoke_small_ops},
    {"ROPE EMBED CPY", smoke_small_ops2},
};
