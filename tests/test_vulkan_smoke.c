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
 * Exit 77 (meson: skipped) with the reason when there is no Vulkan device. The shared cases and
 * the compare-with-the-oracle runner are in smoke_common.c.
 */
#include <dirent.h>
#include <math.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "sched.h"
#include "smoke_common.h"

int sisa_vk_validation_errors(void); /* backends/vulkan/vk_instance.c */
int sisa_vk_validation_enabled(void);

/* Inputs as smoke_value's, but alpha logits spread lower and ids in [0, n) with a few invalid. */
static double vk_value(const sisa_tensor *t, int idx, int64_t k) {
    if (t->dtype == SISA_I32) {
        int64_t V = strncmp(t->name, "bigids", 6) == 0 ? 50277 : 50;
        return (double)(int64_t)(smoke_mix((uint64_t)k * 31 + (uint64_t)idx) % (uint64_t)(V + 2)) - 1; /* -1, V: invalid */
    }
    double u = smoke_uniform((uint64_t)idx + 1, (uint64_t)k);
    if (strncmp(t->name, "alpha", 5) == 0) return 3.0 * u - 2.0;
    if (strncmp(t->name, "blk", 3) == 0) { /* (B,H,T,D) with magnitudes that change every 16 rows */
        int64_t D = t->shape[3], row = k / D, d = k % D;
        int s = (int)(smoke_mix((uint64_t)(row / 16) * 7 + (uint64_t)idx) % 11); /* 0..10 */
        if (t->name[3] == 'q') return d == 0 ? 0x1p-13 * (1.0 + 0.5 * u) : u;
        if (t->name[3] == 'k') return d == 0 ? ldexp(u, 10 + s) : u; /* channel 0 up to 2^20 */
        return ldexp(u, 2 * s); /* v: up to 2^20 */
    }
    return smoke_value(t, idx, k);
}

/* ---- cases ---- */

static const double H16_TOL = 2e-3;

static void c_matmul(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 2, 33, 64), *w = IN(g, "w", SISA_F32, 1, 1, 48, 64);
    smoke_out(o, sisa_matmul(g, x, w), SMOKE_F32_TOL);
    sisa_tensor *a = IN(g, "a", SISA_F32, 2, 3, 17, 24), *b = IN(g, "b", SISA_F32, 2, 1, 19, 24);
    smoke_out(o, sisa_matmul(g, a, b), SMOKE_F32_TOL);
}

static void c_matmul_16(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 1, 1, 20, 32), *w = IN(g, "w", SISA_BF16, 1, 1, 40, 32);
    smoke_out(o, sisa_matmul(g, x, w), SMOKE_F32_TOL);
    g->act_dtype = SISA_BF16;
    smoke_out(o, sisa_matmul(g, x, w), SMOKE_BF16_TOL);
    g->act_dtype = SISA_F32;
    /* f16 x f16: the cooperative-matrix kernel where the device has one; odd edges on purpose */
    sisa_tensor *h = IN(g, "h", SISA_F16, 1, 2, 150, 136), *wh = IN(g, "wh", SISA_F16, 1, 1, 139, 136);
    smoke_out(o, sisa_matmul(g, h, wh), 1e-5);
    g->act_dtype = SISA_F16;
    smoke_out(o, sisa_matmul(g, h, wh), H16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_matmul_views(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *xa = IN(g, "xa", SISA_F32, 1, 1, 21, 40), *wt = IN(g, "wt", SISA_F32, 1, 1, 24, 30);
    sisa_tensor *a = sisa_slice_row(g, xa, 5, 24);   /* row stride 40 */
    sisa_tensor *b = sisa_permute(g, wt, 0, 1, 3, 2); /* (30, 24) = wt^T */
    smoke_out(o, sisa_matmul(g, a, b), SMOKE_F32_TOL);
    sisa_tensor *h = IN(g, "h", SISA_F16, 1, 1, 9, 24);
    smoke_out(o, sisa_matmul(g, h, b), SMOKE_F32_TOL);
    sisa_tensor *ht = IN(g, "ht", SISA_F16, 1, 1, 24, 40);
    smoke_out(o, sisa_matmul(g, sisa_permute(g, ht, 0, 1, 3, 2), sisa_slice_row(g, h, 0, 24)), 1e-5);
}

static void c_sdpa_a(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "big_q", SISA_F32, 2, 3, 77, 80), *k = IN(g, "big_k", SISA_F32, 2, 3, 77, 80);
    sisa_tensor *v = IN(g, "v", SISA_F32, 2, 3, 77, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_SDPA_TOL);
    g->act_dtype = SISA_F16;
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), H16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_sdpa_odd(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *q = IN(g, "q", SISA_F32, 1, 2, 5, 18), *k = IN(g, "k", SISA_F32, 1, 2, 41, 18);
    sisa_tensor *v = IN(g, "v", SISA_F16, 1, 2, 41, 33);
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SMOKE_SDPA_TOL);
    g->act_dtype = SISA_BF16;
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    g->act_dtype = SISA_F32;
    /* heads-interleaved input view (B,T,H,D) -> (B,H,T,D), as the model builds it; bf16 with
     * Tq >= 16 runs on the coopmat kernel where it is on (P rounded to f16: H16_TOL) */
    sisa_tensor *x = IN(g, "x", SISA_BF16, 1, 37, 2, 24);
    sisa_tensor *xv = sisa_permute(g, x, 0, 2, 1, 3);
    smoke_out(o, smoke_sdpa(g, xv, xv, xv, 1, 0, NULL, NULL, 0), H16_TOL);
}

/* f16 Q/K/V: the cooperative-matrix flash attention where the device has it (Tq >= 16) */
static void c_sdpa_f16(sisa_graph *g, smoke_outs *o) {
    const int64_t B = 1, H = 2, T = 100;
    sisa_tensor *q = IN(g, "big_q", SISA_F16, B, H, T, 80), *k = IN(g, "big_k", SISA_F16, B, H, T, 80);
    sisa_tensor *v = IN(g, "v", SISA_F16, B, H, T, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), H16_TOL);
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, gd, gd, 64), H16_TOL);
    sisa_tensor *q20 = sisa_view(g, q, (int64_t[4]){B, H, 20, 80}, q->stride, 80 * 80 * 2);
    g->act_dtype = SISA_F16;
    smoke_out(o, smoke_sdpa(g, q20, k, v, 1, 70, NULL, NULL, 0), H16_TOL);
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), H16_TOL);
    g->act_dtype = SISA_F32;
}

/* bf16 Q/K/V: the coopmat kernel converts them to f16 with power-of-two range scaling; the second
 * and third outputs put Q (up to ~1.6e5) and V (up to ~1e5) beyond f16's range, K far below 1 */
static void c_sdpa_bf16(sisa_graph *g, smoke_outs *o) {
    const int64_t B = 1, H = 2, T = 150;
    sisa_tensor *a = IN(g, "alpha", SISA_F32, 1, B, T, H), *ba = IN(g, "alpha_b", SISA_F32, 1, 1, 1, H);
    sisa_tensor *gd = sisa_ssm_decay(g, a, ba, NULL);
    g->act_dtype = SISA_BF16;
    sisa_tensor *q = IN(g, "big_q", SISA_BF16, B, H, T, 80), *k = IN(g, "big_k", SISA_BF16, B, H, T, 80);
    sisa_tensor *v = IN(g, "v", SISA_BF16, B, H, T, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    sisa_tensor *qh = sisa_scale(g, q, 2e4f), *kl = sisa_scale(g, k, 5e-5f), *vh = sisa_scale(g, v, 1e5f);
    smoke_out(o, smoke_sdpa(g, qh, kl, vh, 1, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    smoke_out(o, smoke_sdpa(g, kl, qh, vh, 1, 0, gd, gd, 64), SMOKE_BF16_TOL);
    g->act_dtype = SISA_F32;
    /* bf16 x bf16 MATMUL (coopmat: exact conversion to f16 in range), odd edges */
    sisa_tensor *hb = IN(g, "hb", SISA_BF16, 1, 2, 150, 136), *wb = IN(g, "wb", SISA_BF16, 1, 1, 139, 136);
    smoke_out(o, sisa_matmul(g, hb, wb), 1e-5);
}

/* bf16 K and V whose largest |x| changes from key block to key block (16-row groups of random
 * magnitude, K's channel 0 up to 2^20 against Q's 2^-13 so the scores stay moderate, V up to
 * 2^20): the coopmat kernel's per-block range exponents (reduced one block ahead of the block that
 * uses them) must belong to the right block, or values saturate / scores scale wrongly */
static void c_sdpa_bf16_blocks(sisa_graph *g, smoke_outs *o) {
    const int64_t B = 1, H = 2, T = 200;
    g->act_dtype = SISA_BF16;
    sisa_tensor *q = IN(g, "blkq", SISA_BF16, B, H, T, 80), *k = IN(g, "blkk", SISA_BF16, B, H, T, 80);
    sisa_tensor *v = IN(g, "blkv", SISA_BF16, B, H, T, 64);
    smoke_out(o, smoke_sdpa(g, q, k, v, 1, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    smoke_out(o, smoke_sdpa(g, q, k, v, 0, 0, NULL, NULL, 0), SMOKE_BF16_TOL);
    g->act_dtype = SISA_F32;
}

static void c_small_ops2(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *x = IN(g, "x", SISA_F32, 2, 9, 3, 64); /* (B,T,H,D) */
    smoke_out(o, sisa_rope(g, x, 10000.0f, 1000), SMOKE_F32_TOL);
    sisa_tensor *tab = IN(g, "tab", SISA_BF16, 1, 1, 50, 24), *ids = IN(g, "ids", SISA_I32, 1, 1, 2, 7);
    smoke_out(o, sisa_embed(g, tab, ids), SMOKE_F32_TOL);
    smoke_out(o, sisa_cpy(g, sisa_permute(g, x, 0, 2, 1, 3), SISA_F16), 1e-3);
    sisa_tensor *w = IN(g, "w", SISA_F32, 1, 1, 1, 96), *xb = IN(g, "xb", SISA_BF16, 1, 3, 5, 96);
    smoke_out(o, sisa_rms_norm(g, xb, w, 1e-6f), SMOKE_F32_TOL);
}

/* SSM_DECAY -> SSM_CHANNELS over T = 300 (the shared builder's shape otherwise) */
static void c_ssm_a(sisa_graph *g, smoke_outs *o) { smoke_ssm(g, o, SISA_SSM_AUGMENTED, 300); }
static void c_ssm_b(sisa_graph *g, smoke_outs *o) { smoke_ssm(g, o, SISA_SSM_FACTORED, 300); }

/* the 152M model's tied embedding: 50277 x 768 f32 = 154 MB, more than one binding on lavapipe */
static void c_big_embedding(sisa_graph *g, smoke_outs *o) {
    sisa_tensor *tab = IN(g, "tab", SISA_F32, 1, 1, 50277, 768), *ids = IN(g, "bigids", SISA_I32, 1, 1, 2, 9);
    sisa_tensor *h = sisa_embed(g, tab, ids);
    smoke_out(o, h, SMOKE_F32_TOL);
    sisa_tensor *h4 = IN(g, "h", SISA_F32, 1, 1, 3, 768);
    sisa_tensor *logits = sisa_matmul(g, h4, tab);
    smoke_out(o, logits, SMOKE_F32_TOL);
    smoke_out(o, sisa_argmax(g, logits), 0);
}

/* split: the pretend maxStorageBufferRange of pass 2, as small as one work unit allows */
static const struct {
    const char *name;
    smoke_build_fn fn;
    const char *split;
} cases[] = {
    {"MATMUL f32 flat + batched bcast", c_matmul, "4096"},
    {"MATMUL bf16/f16 (coopmat)", c_matmul_16, "4096"},
    {"MATMUL views (slice, T, f16)", c_matmul_views, "4096"},
    {"SDPA A causal 80/64 (+f16 out)", c_sdpa_a, "65536"},
    {"SDPA A decode p0", smoke_sdpa_decode, "32768"},
    {"SDPA A non-causal odd, views", c_sdpa_odd, "8192"},
    {"SDPA f16 A/B/decode (coopmat)", c_sdpa_f16, "65536"},
    {"SDPA bf16 A/B >f16 range; MATMUL bf16", c_sdpa_bf16, "65536"},
    {"SDPA bf16 per-block ranges", c_sdpa_bf16_blocks, "65536"},
    {"SSM_DECAY+CHANNELS A", c_ssm_a, "65536"},
    {"SSM_DECAY+CHANNELS B", c_ssm_b, "65536"},
    {"SSM carry-in g0, Phi0", smoke_ssm_carry, "4096"},
    {"SISA attention A and B", smoke_sisa_attention, "65536"},
    {"ADD SCALE SWIGLU SOFTMAX ARGMAX", smoke_small_ops, "4096"},
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

    smoke_runner r = {.backend = "vulkan", .value = vk_value, .name_width = 34,
                      .err_word = ""};
    size_t n_cases = sizeof cases / sizeof cases[0];
    /* SISA_VK_SMOKE_ONLY=<substring of case names>: a subset (the emulated coopmat kernels take
     * minutes to compile on lavapipe) */
    const char *only = getenv("SISA_VK_SMOKE_ONLY");
    printf("-- pass 1: device limits\n");
    for (size_t i = 0; i < n_cases; i++)
        if (!only || strstr(cases[i].name, only)) smoke_run_case(&r, cases[i].name, cases[i].fn);
    printf("-- pass 2: SISA_VK_MAX_RANGE=4096..65536 (operands split into sub-range bindings)\n");
    for (size_t i = 0; i < n_cases; i++) {
        if (only && !strstr(cases[i].name, only)) continue;
        setenv("SISA_VK_MAX_RANGE", cases[i].split, 1);
        smoke_run_case(&r, cases[i].name, cases[i].fn);
    }
    unsetenv("SISA_VK_MAX_RANGE");
    if (!getenv("SISA_VK_SMOKE_NO_BIG")) {
        printf("-- the 152M model's 50277 x 768 f32 embedding (154 MB) as EMBED table and MATMUL b\n");
        smoke_run_case(&r, "EMBED + logits MATMUL + ARGMAX", c_big_embedding);
    }

    char dir[600];
    snprintf(dir, sizeof dir, "%s/sisa", cache);
    int corrupted = corrupt_files(dir);
    printf("-- pipeline cache: %d file(s) corrupted in %s; the next run must ignore them\n", corrupted, dir);
    smoke_run_case(&r, "MATMUL after a corrupt cache", c_matmul);

    nftw(cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* ours, Mesa's and the layer's caches */

    int verrs = sisa_vk_validation_errors();
    const char *val = getenv("SISA_VK_VALIDATION");
    bool wanted = val && val[0] && strcmp(val, "0") != 0;
    printf("validation layer: %s, %d error(s)\n",
           sisa_vk_validation_enabled() ? "on" : wanted ? "requested but NOT available" : "off", verrs);
    printf("%d/%d vulkan smoke cases passed\n", r.checks - r.failures, r.checks);
    if (verrs > 0) {
        printf("FAIL: %d validation-layer error(s)\n", verrs);
        return 1;
    }
    return r.failures ? 1 : 0;
}
