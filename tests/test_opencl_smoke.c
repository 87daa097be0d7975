/*
 * test_opencl_smoke.c — the OpenCL backend against the oracle on a handful of small graphs.
 *
 * Each case builds the same graph twice, runs one copy on "cpu-ref" (sisa_cpu_ref_compute, fp64)
 * and one on "opencl" through the scheduler in strict mode (no fallback), with identical seeded
 * inputs, and compares every output by the normalised error ||cl - ref|| / ||ref|| (exact match
 * for ARGMAX). It covers MATMUL (flat, batched with broadcast, bf16 weight, transposed and
 * sliced views), SDPA form A (prefill, decode with p0, non-causal Tq != Tk) and form B,
 * SSM_DECAY -> SSM_CHANNELS in both modes, RMS_NORM and the smaller ops. The conformance suite
 * (tests/conformance) is the full check; this is the backend's own quick one.
 *
 * Exit 77 (meson: skipped) with the reason when the machine has no OpenCL device.
 * Runs whichever device SISA_CL_DEVICE selects (default: device 0).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "sched.h"

#define MAX_OUT 4

typedef struct outs {
    sisa_tensor *t[MAX_OUT];
    double tol[MAX_OUT]; /* 0 = exact */
    int64_t nel[MAX_OUT];
    int n;
} outs;

typedef void (*build_fn)(sisa_graph *g, outs *o);

static void out(outs *o, sisa_tensor *t, double tol) {
    if (!t || o->n == MAX_OUT) return;
    sisa_tensor_set_output(t);
    o->t[o->n] = t;
    o->tol[o->n++] = tol;
}

/* ---- deterministic inputs: value k of leaf #i depends on (i, k) and the leaf's name ---- */

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double uniform(uint64_t i, uint64_t k) { /* [-1, 1) */
    return (double)(mix(i * 0x100000001b3ull + k) >> 11) / 4503599627370496.0 - 1.0;
}

/* Scale by name prefix: alpha logits spread around 0, theta small, ids in [0, 50). */
static sisa_status fill_input(sisa_tensor *t, int idx) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    for (int64_t k = 0; k < n; k++) {
        double u = uniform((uint64_t)idx + 1, (uint64_t)k), v = u;
        if (t->dtype == SISA_I32) v = (double)(mix((uint64_t)k * 31 + (uint64_t)idx) % 50);
        else if (strncmp(t->name, "alpha", 5) == 0) v = 3.0 * u;
        else if (strncmp(t->name, "theta", 5) == 0) v = 0.3 * u;
        else if (strncmp(t->name, "big", 3) == 0) v = 8.0 * u;
        sisa_store_elem(buf + (size_t)k * es, t->dtype, v);
    }
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

/* Build, place (strict), fill, run; outputs read back as doubles into res[i] (malloc'ed). */
static sisa_status run_on(const char *backend, build_fn build, double *res[MAX_OUT], outs *o) {
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
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) st = fill_input(g->leafs[i], i);
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

static int failures, checks;

static void run_case(const char *name, build_fn build) {
    double *ref[MAX_OUT] = {0}, *cl[MAX_OUT] = {0};
    outs o_ref, o_cl;
    checks++;
    if (run_on("cpu-ref", build, ref, &o_ref) != SISA_OK) {
        printf("FAIL %-30s oracle: %s\n", name, sisa_last_error());
        failures++;
    } else if (run_on("opencl", build, cl, &o_cl) != SISA_OK) {
        printf("FAIL %-30s opencl: %s\n", name, sisa_last_error());
        failures++;
    } else {
        bool ok = true;
        char msg[256] = "";
        size_t used = 0;
        for (int i = 0; i < o_ref.n; i++) {
            double e = norm_err(cl[i], ref[i], o_ref.nel[i]);
            bool pass = o_ref.tol[i] > 0 ? e <= o_ref.tol[i] : e == 0.0;
            ok = ok && pass;
            used += (size_t)snprintf(msg + used, sizeof msg - used, " out%d err %.2e (tol %.0e)%s",
                                     i, e, o_ref.tol[i], pass ? "" : " <-- FAIL");
            if (used >= sizeof msg) break;
        }
        printf("%s %-30s%s\n", ok ? "ok  " : "FAIL", name, msg);
        if (!ok) failures++;
    }
    for (int i = 0; i < MAX_OUT; i++) {
        free(ref[i]);
        free(cl[i]);
    }
}

/* ---- cases ---- */

#define IN(g, name, dt, a, b, c, d) sisa_graph_input(g, name, dt, a, b, c, d)
static const double F32_TOL = 2e-6, SDPA_TOL = 1e-5;

/* y = x·Wᵀ: one flat GEMM over batch·rows. */
static void c_matmul_flat(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 2, 33, 64), *w = IN(g, "w", SISA_F32, 1, 1, 48, 64);
    out(o, sisa_matmul(g, x, w), F32_TOL);
}

/* batched a·bᵀ with b broadcast over dim 1 (strided batched, b stride 0) */
static void c_matmul_batched(sisa_graph *g, outs *o) {
    sisa_tensor *a = IN(g, "a", SISA_F32, 2, 3, 17, 24), *b = IN(g, "b", SISA_F32, 2, 1, 19, 24);
    out(o, sisa_matmul(g, a, b), F32_TOL);
}

/* bf16 weight (copied to f32 for CLBlast), bf16 destination (rounded once) */
static void c_matmul_bf16(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 1, 20, 32), *w = IN(g, "w", SISA_BF16, 1, 1, 40, 32);
    out(o, sisa_matmul(g, x, w), F32_TOL);
    g->act_dtype = SISA_BF16;
    out(o, sisa_matmul(g, x, w), 1e-2);
    g->act_dtype = SISA_F32;
}

/* a = row slice (ld > K), b = transposed view (column-major for CLBlast), f16 a (copy path) */
static void c_matmul_views(sisa_graph *g, outs *o) {
    sisa_tensor *xa = IN(g, "xa", SISA_F32, 1, 1, 21, 40), *wt = IN(g, "wt", SISA_F32, 1, 1, 24, 30);
    sisa_tensor *a = sisa_slice_row(g, xa, 5, 24);   /* (21, 24), row stride 40 */
    sisa_tensor *b = sisa_permute(g, wt, 0, 1, 3, 2); /* (30, 24) = wtᵀ */
    out(o, sisa_matmul(g, a, b), F32_TOL);
    sisa_tensor *h = IN(g, "h", SISA_F16, 1, 1, 9, 24);
    out(o, sisa_matmul(g, h, b), F32_TOL);
}

static void c_rms_norm(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "big_x", SISA_F32, 1, 2, 7, 96), *w = IN(g, "w", SISA_F32, 1, 1, 1, 96);
    out(o, sisa_rms_norm(g, x, w, 1e-6f), F32_TOL);
    sisa_tensor *xb = IN(g, "xb", SISA_BF16, 1, 1, 3, 768), *wb = IN(g, "wb", SISA_F32, 1, 1, 1, 768);
    out(o, sisa_rms_norm(g, xb, wb, 1e-6f), F32_TOL);
}

static sisa_tensor *sdpa(sisa_graph *g, sisa_tensor *q, sisa_tensor *k, sisa_tensor *v, int causal,
                         int p0, sisa_tensor *gq, sisa_tensor *gk, int dc) {
    sisa_sdpa_params p = {.scale = 0.125f, .causal = causal, .p0 = p0, .gq = gq, .gk = gk,
                          .d_content = dc};
    return sisa_sdpa(g, q, k, v, &p);
}

/* form A, SISA-shaped: d_qk = 80 (64 + d_s 16), d_v = 64, causal prefill */
static void c_sdpa_a(sisa_graph *g, outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 2, 3, 77, 80), *k = IN(g, "big_k", SISA_F32, 2, 3, 77, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 2, 3, 77, 64);
    out(o, sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SDPA_TOL);
}

/* decode: one query at absolute position p0 = 49 over 50 cached keys; and Tq=3 at p0=47 */
static void c_sdpa_decode(sisa_graph *g, outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 1, 2, 1, 80), *k = IN(g, "big_k", SISA_F32, 1, 2, 50, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 1, 2, 50, 64);
    out(o, sdpa(g, q, k, v, 1, 49, NULL, NULL, 0), SDPA_TOL);
    sisa_tensor *q3 = IN(g, "big_q3", SISA_F32, 1, 2, 3, 80);
    out(o, sdpa(g, q3, k, v, 1, 47, NULL, NULL, 0), SDPA_TOL);
}

/* non-causal, Tq != Tk, d_qk < d_v, odd widths (no float4 path), f16 V, bf16 out */
static void c_sdpa_odd(sisa_graph *g, outs *o) {
    sisa_tensor *q = IN(g, "q", SISA_F32, 1, 2, 5, 18), *k = IN(g, "k", SISA_F32, 1, 2, 41, 18);
    sisa_tensor *v = IN(g, "v", SISA_F16, 1, 2, 41, 33);
    out(o, sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SDPA_TOL);
    g->act_dtype = SISA_BF16;
    out(o, sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), 1e-2);
    g->act_dtype = SISA_F32;
}

/* SSM_DECAY -> SSM_CHANNELS in both modes; the channels' Phi and g run over T = 200 */
static void ssm_graph(sisa_graph *g, outs *o, int mode) {
    const int64_t B = 2, T = 200, H = 3, ds = 16;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *bs = IN(g, "bs", SISA_F32, 1, B, T, H * ds), *cs = IN(g, "cs", SISA_BF16, 1, B, T, H * ds);
    sisa_tensor *th = IN(g, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = IN(g, "lambda", SISA_F32, 1, 1, 1, H);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    out(o, gd, F32_TOL);
    out(o, sisa_ssm_channels(g, bs, cs, th, gd, lr, NULL, mode, 64, 11.0f), F32_TOL);
}
static void c_ssm_a(sisa_graph *g, outs *o) { ssm_graph(g, o, SISA_SSM_AUGMENTED); }
static void c_ssm_b(sisa_graph *g, outs *o) { ssm_graph(g, o, SISA_SSM_FACTORED); }

/* decode carry-ins: g0 and Phi0 */
static void c_ssm_carry(sisa_graph *g, outs *o) {
    const int64_t B = 2, T = 1, H = 2, ds = 4;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *g0 = IN(g, "g0", SISA_F32, 1, 1, B, H);
    sisa_tensor *bs = IN(g, "bs", SISA_F32, 1, B, T, H * ds), *cs = IN(g, "cs", SISA_F32, 1, B, T, H * ds);
    sisa_tensor *th = IN(g, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = IN(g, "lambda", SISA_F32, 1, 1, 1, H);
    sisa_tensor *phi0 = IN(g, "phi0", SISA_F32, 1, 1, B, H * ds / 2);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, g0);
    out(o, gd, F32_TOL);
    out(o, sisa_ssm_channels(g, bs, cs, th, gd, lr, phi0, SISA_SSM_FACTORED, 64, 11.0f), F32_TOL);
}

/*
 * Form B on SISA's pieces: Q = [q | C], K = [k | B] from FACTORED channels, decay exp(g_i - g_j)
 * inside SDPA; plus form A of the same inputs from AUGMENTED channels. Where the clamp is
 * inactive the two agree; each is compared with its own oracle here.
 */
static void c_sdpa_b(sisa_graph *g, outs *o) {
    const int64_t B = 1, T = 70, H = 2, ds = 16, dh = 64;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *bs = IN(g, "bs", SISA_F32, 1, B, T, H * ds), *cs = IN(g, "cs", SISA_F32, 1, B, T, H * ds);
    sisa_tensor *th = IN(g, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = IN(g, "lambda", SISA_F32, 1, 1, 1, H);
    sisa_tensor *q = IN(g, "q", SISA_F32, B, H, T, dh), *k = IN(g, "k", SISA_F32, B, H, T, dh);
    sisa_tensor *v = IN(g, "v", SISA_F32, B, H, T, dh);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    for (int mode = 0; mode < 2; mode++) {
        sisa_tensor *ch = sisa_ssm_channels(g, bs, cs, th, gd, lr, NULL, mode, (int32_t)dh, 11.0f);
        sisa_tensor *c = sisa_slice_row(g, ch, 0, ds), *bb = sisa_slice_row(g, ch, ds, ds);
        sisa_tensor *qh = sisa_augment(g, q, c, dh + ds), *kh = sisa_augment(g, k, bb, dh + ds);
        sisa_tensor *y = mode == SISA_SSM_FACTORED ? sdpa(g, qh, kh, v, 1, 0, gd, gd, (int)dh)
                                                   : sdpa(g, qh, kh, v, 1, 0, NULL, NULL, 0);
        out(o, y, SDPA_TOL);
    }
}

static void c_small_ops(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "big_x", SISA_F32, 2, 3, 5, 40), *bias = IN(g, "bias", SISA_BF16, 1, 3, 1, 40);
    out(o, sisa_add(g, sisa_scale(g, x, 0.5f), bias), F32_TOL);
    sisa_tensor *up = IN(g, "up", SISA_F16, 2, 3, 5, 40);
    out(o, sisa_swiglu(g, x, up), F32_TOL);
    out(o, sisa_softmax(g, sisa_permute(g, x, 0, 1, 3, 2)), F32_TOL);
    out(o, sisa_argmax(g, x), 0);
}

static void c_small_ops2(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 2, 9, 3, 64); /* (B,T,H,D) */
    out(o, sisa_rope(g, x, 10000.0f, 1000), F32_TOL);
    sisa_tensor *tab = IN(g, "tab", SISA_BF16, 1, 1, 50, 24), *ids = IN(g, "ids", SISA_I32, 1, 1, 2, 7);
    out(o, sisa_embed(g, tab, ids), F32_TOL);
    out(o, sisa_cpy(g, sisa_permute(g, x, 0, 2, 1, 3), SISA_F16), 1e-3);
}

int main(void) {
    const sisa_backend_def *b = sisa_backend_find("opencl");
    if (!b) {
        printf("SKIP: the OpenCL backend is not compiled into this build\n");
        return 77;
    }
    const char *why = NULL;
    if (sisa_backend_probe(b, &why) <= 0) {
        printf("SKIP: no OpenCL device: %s\n", why ? why : "?");
        return 77;
    }
    sisa_device_info info;
    if (sisa_device_get_info("opencl", 0, &info) != SISA_OK) {
        printf("SKIP: opening OpenCL device 0 failed: %s\n", sisa_last_error());
        return 77;
    }
    printf("opencl device 0: %s (%s), driver %s, f16 %d, f64 %d, max alloc %llu MiB\n", info.name,
           info.vendor, info.driver, info.has_f16, info.has_f64,
           (unsigned long long)(info.max_buffer_bytes >> 20));

    run_case("MATMUL x·Wᵀ flat", c_matmul_flat);
    run_case("MATMUL batched, b broadcast", c_matmul_batched);
    run_case("MATMUL bf16 weight / dst", c_matmul_bf16);
    run_case("MATMUL views (slice, T, f16)", c_matmul_views);
    run_case("RMS_NORM f32, bf16", c_rms_norm);
    run_case("SDPA A causal 80/64", c_sdpa_a);
    run_case("SDPA A decode p0", c_sdpa_decode);
    run_case("SDPA A non-causal odd", c_sdpa_odd);
    run_case("SSM_DECAY+CHANNELS A", c_ssm_a);
    run_case("SSM_DECAY+CHANNELS B", c_ssm_b);
    run_case("SSM carry-in g0, Phi0", c_ssm_carry);
    run_case("SISA attention A and B", c_sdpa_b);
    run_case("ADD SCALE SWIGLU SOFTMAX ARGMAX", c_small_ops);
    run_case("ROPE EMBED CPY", c_small_ops2);
    printf("%d/%d opencl smoke cases passed\n", checks - failures, checks);
    return failures ? 1 : 0;
}
