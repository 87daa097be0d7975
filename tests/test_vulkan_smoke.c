/*
 * test_vulkan_smoke.c — the Vulkan backend against the oracle on a handful of small graphs.
 *
 * Each case builds the same graph twice, runs one copy on "cpu-ref" (fp64) and one on "vulkan"
 * through the scheduler in strict mode (no fallback), with identical seeded inputs, and compares
 * every output by ||vk - ref|| / ||ref|| (exact for ARGMAX). Covered: MATMUL (f32, bf16, f16 —
 * the cooperative-matrix kernel where the device has one —, batched with broadcast, views),
 * SDPA form A (d_qk 80 != d_v 64, causal, decode with p0, non-causal odd widths) and form B on
 * SISA's own pieces, SSM_DECAY -> SSM_CHANNELS in both modes with carry-ins, and the small ops.
 *
 * The case list runs twice: as is, and with SISA_VK_MAX_RANGE as small as each case allows (4 KiB
 * for most), so that nearly every operand exceeds the pretend maxStorageBufferRange and every
 * split path runs. A last case embeds and
 * projects through a 50277 x 768 f32 table (154 MB > lavapipe's 128 MiB binding limit): the
 * 152M model's tied embedding, split for real. Then a corrupt pipeline-cache file must be
 * ignored, and with SISA_VK_VALIDATION=1 any validation-layer error fails the test (the layer
 * itself never changes the exit status).
 *
 * Exit 77 (meson: skipped) with the reason when there is no Vulkan device.
 */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "sched.h"

int sisa_vk_validation_errors(void); /* backends/vulkan/vk_instance.c */
int sisa_vk_validation_enabled(void);

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

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double uniform(uint64_t i, uint64_t k) { /* [-1, 1) */
    return (double)(mix(i * 0x100000001b3ull + k) >> 11) / 4503599627370496.0 - 1.0;
}

/* Inputs by name prefix: alpha logits spread, theta small, ids in [0, n) with a few invalid. */
static sisa_status fill_input(sisa_tensor *t, int idx) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    for (int64_t k = 0; k < n; k++) {
        double u = uniform((uint64_t)idx + 1, (uint64_t)k), v = u;
        if (t->dtype == SISA_I32) {
            int64_t V = strncmp(t->name, "bigids", 6) == 0 ? 50277 : 50;
            v = (double)(int64_t)(mix((uint64_t)k * 31 + (uint64_t)idx) % (uint64_t)(V + 2)) - 1; /* -1, V: invalid */
        } else if (strncmp(t->name, "alpha", 5) == 0) v = 3.0 * u - 2.0;
        else if (strncmp(t->name, "theta", 5) == 0) v = 0.3 * u;
        else if (strncmp(t->name, "big", 3) == 0) v = 8.0 * u;
        sisa_store_elem(buf + (size_t)k * es, t->dtype, v);
    }
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

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
        st = res[i] ? sisa_tensor_read_f64(o->t[i], res[i]) : sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    }
    for (int i = 0; i < o->n; i++) o->t[i] = NULL;
    sisa_sched_free(s);
    sisa_device_free(dev);
    sisa_graph_free(g);
    return st;
}

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
    double *ref[MAX_OUT] = {0}, *vk[MAX_OUT] = {0};
    outs o_ref, o_vk;
    checks++;
    if (run_on("cpu-ref", build, ref, &o_ref) != SISA_OK) {
        printf("FAIL %-34s oracle: %s\n", name, sisa_last_error());
        failures++;
    } else if (run_on("vulkan", build, vk, &o_vk) != SISA_OK) {
        printf("FAIL %-34s vulkan: %s\n", name, sisa_last_error());
        failures++;
    } else {
        bool ok = true;
        char msg[320] = "";
        size_t used = 0;
        for (int i = 0; i < o_ref.n && used < sizeof msg; i++) {
            double e = norm_err(vk[i], ref[i], o_ref.nel[i]);
            bool pass = o_ref.tol[i] > 0 ? e <= o_ref.tol[i] : e == 0.0;
            ok = ok && pass;
            used += (size_t)snprintf(msg + used, sizeof msg - used, " out%d %.2e (tol %.0e)%s", i, e,
                                     o_ref.tol[i], pass ? "" : " <-- FAIL");
        }
        printf("%s %-34s%s\n", ok ? "ok  " : "FAIL", name, msg);
        fflush(stdout);
        if (!ok) failures++;
    }
    for (int i = 0; i < MAX_OUT; i++) {
        free(ref[i]);
        free(vk[i]);
    }
}

/* ---- cases ---- */

#define IN(g, name, dt, a, b, c, d) sisa_graph_input(g, name, dt, a, b, c, d)
static const double F32_TOL = 2e-6, SDPA_TOL = 1e-5, H16_TOL = 2e-3, BF16_TOL = 1.5e-2;

static sisa_tensor *sdpa(sisa_graph *g, sisa_tensor *q, sisa_tensor *k, sisa_tensor *v, int causal, int p0,
                         sisa_tensor *gq, sisa_tensor *gk, int dc) {
    sisa_sdpa_params p = {.scale = 0.125f, .causal = causal, .p0 = p0, .gq = gq, .gk = gk, .d_content = dc};
    return sisa_sdpa(g, q, k, v, &p);
}

static void c_matmul(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 2, 33, 64), *w = IN(g, "w", SISA_F32, 1, 1, 48, 64);
    out(o, sisa_matmul(g, x, w), F32_TOL);
    sisa_tensor *a = IN(g, "a", SISA_F32, 2, 3, 17, 24), *b = IN(g, "b", SISA_F32, 2, 1, 19, 24);
    out(o, sisa_matmul(g, a, b), F32_TOL);
}

static void c_matmul_16(sisa_graph *g, outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 1, 20, 32), *w = IN(g, "w", SISA_BF16, 1, 1, 40, 32);
    out(o, sisa_matmul(g, x, w), F32_TOL);
    g->act_dtype = SISA_BF16;
    out(o, sisa_matmul(g, x, w), BF16_TOL);
    g->act_dtype = SISA_F32;
    /* f16 x f16: the cooperative-matrix kernel where the device has one; odd edges on purpose */
    sisa_tensor *h = IN(g, "h", SISA_F16, 1, 2, 150, 136), *wh = IN(g, "wh", SISA_F16, 1, 1, 139, 136);
    out(o, sisa_matmul(g, h, wh), 1e-5);
    g->act_dtype = SISA_F16;
    out(o, sisa_matmul(g, h, wh), H16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_matmul_views(sisa_graph *g, outs *o) {
    sisa_tensor *xa = IN(g, "xa", SISA_F32, 1, 1, 21, 40), *wt = IN(g, "wt", SISA_F32, 1, 1, 24, 30);
    sisa_tensor *a = sisa_slice_row(g, xa, 5, 24);   /* row stride 40 */
    sisa_tensor *b = sisa_permute(g, wt, 0, 1, 3, 2); /* (30, 24) = wt^T */
    out(o, sisa_matmul(g, a, b), F32_TOL);
    sisa_tensor *h = IN(g, "h", SISA_F16, 1, 1, 9, 24);
    out(o, sisa_matmul(g, h, b), F32_TOL);
    sisa_tensor *ht = IN(g, "ht", SISA_F16, 1, 1, 24, 40);
    out(o, sisa_matmul(g, sisa_permute(g, ht, 0, 1, 3, 2), sisa_slice_row(g, h, 0, 24)), 1e-5);
}

static void c_sdpa_a(sisa_graph *g, outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 2, 3, 77, 80), *k = IN(g, "big_k", SISA_F32, 2, 3, 77, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 2, 3, 77, 64);
    out(o, sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SDPA_TOL);
    g->act_dtype = SISA_F16;
    out(o, sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), H16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_sdpa_decode(sisa_graph *g, outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 1, 2, 1, 80), *k = IN(g, "big_k", SISA_F32, 1, 2, 50, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 1, 2, 50, 64);
    out(o, sdpa(g, q, k, v, 1, 49, NULL, NULL, 0), SDPA_TOL);
    sisa_tensor *q3 = IN(g, "big_q3", SISA_F32, 1, 2, 3, 80);
    out(o, sdpa(g, q3, k, v, 1, 47, NULL, NULL, 0), SDPA_TOL);
}

static void c_sdpa_odd(sisa_graph *g, outs *o) {
    sisa_tensor *q = IN(g, "q", SISA_F32, 1, 2, 5, 18), *k = IN(g, "k", SISA_F32, 1, 2, 41, 18);
    sisa_tensor *v = IN(g, "v", SISA_F16, 1, 2, 41, 33);
    out(o, sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SDPA_TOL);
    g->act_dtype = SISA_BF16;
    out(o, sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), BF16_TOL);
    g->act_dtype = SISA_F32;
    /* heads-interleaved input view (B,T,H,D) -> (B,H,T,D), as the model builds it */
    sisa_tensor *x = IN(g, "x", SISA_BF16, 1, 37, 2, 24);
    sisa_tensor *xv = sisa_permute(g, x, 0, 2, 1, 3);
    out(o, sdpa(g, xv, xv, xv, 1, 0, NULL, NULL, 0), SDPA_TOL);
}

/* f16 Q/K/V: the cooperative-matrix flash attention where the device has it (Tq >= 16) */
static void c_sdpa_f16(sisa_graph *g, outs *o) {
    const int64_t B = 1, H = 2, T = 100;
    sisa_tensor *q = IN(g, "big_q", SISA_F16, B, H, T, 80), *k = IN(g, "big_k", SISA_F16, B, H, T, 80);
    sisa_tensor *v = IN(g, "v", SISA_F16, B, H, T, 64);
    out(o, sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), H16_TOL);
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    out(o, sdpa(g, q, k, v, 1, 0, gd, gd, 64), H16_TOL);
    sisa_tensor *q20 = sisa_view(g, q, (int64_t[4]){B, H, 20, 80}, q->stride, 80 * 80 * 2);
    g->act_dtype = SISA_F16;
    out(o, sdpa(g, q20, k, v, 1, 70, NULL, NULL, 0), H16_TOL);
    out(o, sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), H16_TOL);
    g->act_dtype = SISA_F32;
}

static void ssm_graph(sisa_graph *g, outs *o, int mode) {
    const int64_t B = 2, T = 300, H = 3, ds = 16;
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

/* SISA attention: form A from AUGMENTED channels, form B (decay in SDPA) from FACTORED ones */
static void c_sisa_attention(sisa_graph *g, outs *o) {
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
    sisa_tensor *w = IN(g, "w", SISA_F32, 1, 1, 1, 96), *xb = IN(g, "xb", SISA_BF16, 1, 3, 5, 96);
    out(o, sisa_rms_norm(g, xb, w, 1e-6f), F32_TOL);
}

/* the 152M model's tied embedding: 50277 x 768 f32 = 154 MB, more than one binding on lavapipe */
static void c_big_embedding(sisa_graph *g, outs *o) {
    sisa_tensor *tab = IN(g, "tab", SISA_F32, 1, 1, 50277, 768), *ids = IN(g, "bigids", SISA_I32, 1, 1, 2, 9);
    sisa_tensor *h = sisa_embed(g, tab, ids);
    out(o, h, F32_TOL);
    sisa_tensor *h4 = IN(g, "h", SISA_F32, 1, 1, 3, 768);
    sisa_tensor *logits = sisa_matmul(g, h4, tab);
    out(o, logits, F32_TOL);
    out(o, sisa_argmax(g, logits), 0);
}

/* split: the pretend maxStorageBufferRange of pass 2, as small as one work unit allows */
static const struct {
    const char *name;
    build_fn fn;
    const char *split;
} cases[] = {
    {"MATMUL f32 flat + batched bcast", c_matmul, "4096"},
    {"MATMUL bf16/f16 (coopmat)", c_matmul_16, "4096"},
    {"MATMUL views (slice, T, f16)", c_matmul_views, "4096"},
    {"SDPA A causal 80/64 (+f16 out)", c_sdpa_a, "65536"},
    {"SDPA A decode p0", c_sdpa_decode, "32768"},
    {"SDPA A non-causal odd, views", c_sdpa_odd, "8192"},
    {"SDPA f16 A/B/decode (coopmat)", c_sdpa_f16, "65536"},
    {"SSM_DECAY+CHANNELS A", c_ssm_a, "65536"},
    {"SSM_DECAY+CHANNELS B", c_ssm_b, "65536"},
    {"SSM carry-in g0, Phi0", c_ssm_carry, "4096"},
    {"SISA attention A and B", c_sisa_attention, "65536"},
    {"ADD SCALE SWIGLU SOFTMAX ARGMAX", c_small_ops, "4096"},
    {"ROPE EMBED CPY RMS_NORM", c_small_ops2, "4096"},
};

/* Overwrite every file under dir with garbage (a corrupt pipeline cache must be ignored).
 * Returns how many files it touched. */
static int corrupt_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r+b");
        if (!f) continue;
        fseek(f, 20, SEEK_SET);
        fputs("garbage garbage garbage", f);
        fclose(f);
        n++;
    }
    closedir(d);
    return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 ? 0 : 0;
}

int main(int argc, char **argv) {
    const sisa_backend_def *b = sisa_backend_find("vulkan");
    if (!b) {
        printf("SKIP: the Vulkan backend is not compiled into this build\n");
        return 77;
    }
    /* a private pipeline cache, so the corruption check below touches nothing of the user's */
    char cache[512];
    snprintf(cache, sizeof cache, "%s/vk-smoke-cache-%ld", argc > 1 ? argv[1] : "/tmp", (long)getpid());
    setenv("XDG_CACHE_HOME", cache, 1);
    const char *why = NULL;
    if (sisa_backend_probe(b, &why) <= 0) {
        printf("SKIP: no Vulkan device: %s\n", why ? why : "?");
        return 77;
    }
    sisa_device_info info;
    if (sisa_device_get_info("vulkan", 0, &info) != SISA_OK) {
        printf("FAIL: opening Vulkan device 0: %s\n", sisa_last_error());
        return 1;
    }
    printf("vulkan device 0: %s (%s), %s; f16 %d bf16 %d coopmat %d subgroup %d; max buffer %llu, "
           "storage range %llu\n",
           info.name, info.vendor, info.driver, info.has_f16, info.has_bf16, info.has_coopmat,
           info.subgroup_size, (unsigned long long)info.max_buffer_bytes,
           (unsigned long long)info.max_storage_range);

    size_t n_cases = sizeof cases / sizeof cases[0];
    printf("-- pass 1: device limits\n");
    for (size_t i = 0; i < n_cases; i++) run_case(cases[i].name, cases[i].fn);
    printf("-- pass 2: SISA_VK_MAX_RANGE=4096..65536 (operands split into sub-range bindings)\n");
    for (size_t i = 0; i < n_cases; i++) {
        setenv("SISA_VK_MAX_RANGE", cases[i].split, 1);
        run_case(cases[i].name, cases[i].fn);
    }
    unsetenv("SISA_VK_MAX_RANGE");
    if (!getenv("SISA_VK_SMOKE_NO_BIG")) {
        printf("-- the 152M model's 50277 x 768 f32 embedding (154 MB) as EMBED table and MATMUL b\n");
        run_case("EMBED + logits MATMUL + ARGMAX", c_big_embedding);
    }

    char dir[600];
    snprintf(dir, sizeof dir, "%s/sisa", cache);
    int corrupted = corrupt_files(dir);
    printf("-- pipeline cache: %d file(s) corrupted in %s; the next run must ignore them\n", corrupted, dir);
    run_case("MATMUL after a corrupt cache", c_matmul);

    nftw(cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* ours, Mesa's and the layer's caches */

    int verrs = sisa_vk_validation_errors();
    const char *val = getenv("SISA_VK_VALIDATION");
    bool wanted = val && val[0] && strcmp(val, "0") != 0;
    printf("validation layer: %s, %d error(s)\n",
           sisa_vk_validation_enabled() ? "on" : wanted ? "requested but NOT available" : "off", verrs);
    printf("%d/%d vulkan smoke cases passed\n", checks - failures, checks);
    if (verrs > 0) {
        printf("FAIL: %d validation-layer error(s)\n", verrs);
        return 1;
    }
    return failures ? 1 : 0;
}
