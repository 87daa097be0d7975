/*
 * test_vulkan_prepass.c — the bf16 attention pre-pass (SISA_VK_SDPA_PREPASS=1,
 * backends/vulkan/vk_sdpa_prepass.c) may change speed, never bits.
 *
 * Each case is one graph of bf16 Q/K/V attention with an f32 output, run on the coopmat kernel
 * with the switch off (bf16 converted in the kernel's loop, today's path) and on, and the outputs
 * must be the same bits; the device's pre-pass counter must say whether the pre-pass took the node
 * (or nodes) as expected, and the output must agree with the fp64 oracle (cpu-ref) within the bf16
 * tolerance (so two equally wrong runs do not pass). Data:
 *   blk  K's channel 0 and all of V with magnitudes that change every 16 rows (up to 2^20, beyond
 *        f16's 65504), Q's channel 0 tiny: range exponents that vary from key block to key block,
 *        and V's running exponent growing along the key loop;
 *   big  Q up to ~1.6e5 and V up to ~1e5 (beyond f16), K far below 1;
 *   edge Q ~ 2^13, K ~ 2^-13 but key 120 with a channel at 2^30, which no query of a causal
 *        Tq = 100 sees: the last query tile ends inside the key block holding key 120, its visible
 *        keys take exponent 0, the whole block 16 (its keys would become zeros in f16 and the scores
 *        change): why the pre-pass must decline such shapes (with the check removed from
 *        vk_sdpa_prepass.c this case fails).
 * Cases: causal prefill T=200 (every workgroup whose causal range reaches the end sees the last,
 * partial key block), non-causal, Q/V beyond f16 range, form B (d_content 64, decay gates), causal
 * Tq=72 against Tk=136 at p0=64 (tiles end at different whole blocks, the last at a partial one),
 * heads-interleaved permuted views, transposed views (channels strided), two SDPA nodes of different sizes in one
 * graph (the stream's scratch grows mid-recording and is reused), and two the pre-pass must
 * decline (causal shapes where a query tile ends inside a key block: Tq=100 against Tk=150, p0=10)
 * and still give the same bits. Then again on a device with SISA_VK_MAX_RANGE=131072 (the pre-pass
 * and the kernel in chunks of (b, h) units), and one case at 65536 where one unit's copies do not
 * fit a binding (declined: today's path).
 *
 * Needs the coopmat attention kernel: a device with cooperative matrices, or SISA_VK_COOPMAT=emulate
 * (meson sets it; lavapipe then runs the kernel with emulated matrix units). Exit 77 without a Vulkan
 * device or without that kernel. With SISA_VK_VALIDATION=1 any validation-layer error fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "sched.h"
#include "smoke_common.h"

int sisa_vk_validation_errors(void); /* backends/vulkan/vk_instance.c */
int sisa_vk_validation_enabled(void);
const char *sisa_vk_kernel_name(const sisa_device *sd, const sisa_tensor *n);
uint64_t sisa_vk_sdpa_prepass_stats(const sisa_device *sd);

static int failures, checks;

static void check(bool ok, const char *label, const char *what) {
    checks++;
    if (!ok) failures++;
    printf("%-4s %-44s %s\n", ok ? "ok" : "FAIL", label, what);
    fflush(stdout);
}

enum { BLK, BIG, EDGE };

typedef struct pcase {
    const char *name;
    int64_t B, H, Tq, Tk;
    int causal, p0, form_b, data;
    int perm;      /* Q/K/V as permuted views: 1 of (B, T, H, D) inputs, 2 of (B, H, D, T) (strided channels) */
    bool two;      /* a second, smaller SDPA node first in the same graph */
    int expect;    /* nodes the pre-pass must take */
} pcase;

static const pcase cases[] = {
    {"causal T=200 per-block ranges", 1, 2, 200, 200, 1, 0, 0, BLK, 0, false, 1},
    {"non-causal T=200 per-block ranges", 1, 2, 200, 200, 0, 0, 0, BLK, 0, false, 1},
    {"causal T=150 Q, V beyond f16", 1, 2, 150, 150, 1, 0, 0, BIG, 0, false, 1},
    {"form B dc 64 T=150 per-block ranges", 1, 2, 150, 150, 1, 0, 1, BLK, 0, false, 1},
    {"causal Tq=72 Tk=136 p0=64 per-block", 1, 2, 72, 136, 1, 64, 0, BLK, 0, false, 1},
    {"causal T=100 heads-interleaved views", 2, 3, 100, 100, 1, 0, 0, BLK, 1, false, 1},
    {"causal T=100 transposed views (strided)", 1, 2, 100, 100, 1, 0, 0, BLK, 2, false, 1},
    {"two nodes T=40 then T=200 (scratch)", 1, 2, 200, 200, 1, 0, 0, BLK, 0, true, 2},
    {"declined: causal Tq=100 Tk=150 p0=0", 1, 2, 100, 150, 1, 0, 0, BLK, 0, false, 0},
    {"declined: causal Tq=90 Tk=100 p0=10", 1, 2, 90, 100, 1, 10, 0, BLK, 0, false, 0},
    {"declined: Tq=100 Tk=150, edge data", 1, 2, 100, 150, 1, 0, 0, EDGE, 0, false, 0},
};

/* value of element k (row-major) of input role r (0 q, 1 k, 2 v, 3 gates) with T rows of D channels */
static double value(int data, int r, int64_t k, int64_t T, int64_t D) {
    uint64_t x = (uint64_t)k * 0x9e3779b97f4a7c15ull + (uint64_t)r * 0xbf58476d1ce4e5b9ull + 12345;
    x ^= x >> 29, x *= 0x94d049bb133111ebull, x ^= x >> 32;
    double u = (double)(x >> 11) / 4503599627370496.0 - 1.0; /* [-1, 1) */
    if (r == 3) return -0.02 * (double)(k % 1000) + 0.01 * u; /* cumulative log decay along T */
    int64_t row = k / D, d = k % D;
    if (data == BIG) return r == 0 ? 1.6e5 * u : (r == 1 ? 4e-4 * u : 1e5 * u);
    if (data == EDGE) {
        int64_t t = row % T;
        if (r == 0) return 0x1p13 * u;
        if (r == 1) return t == 120 && d == 0 ? 0x1p30 : 0x1p-13 * u;
        return u;
    }
    uint64_t y = (uint64_t)(row / 16) * 7 + (uint64_t)r;
    y = (y ^ (y >> 31)) * 0xbf58476d1ce4e5b9ull;
    int s = (int)((y >> 33) % 11); /* 0..10 */
    if (r == 0) return d == 0 ? 0x1p-13 * (1.0 + 0.5 * u) : u;
    if (r == 1) return d == 0 ? ldexp(u, 10 + s) : u; /* channel 0 up to 2^20 */
    return ldexp(u, 2 * s);                          /* up to 2^20 */
}

static sisa_status fill(sisa_tensor *t, int data, int r) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    for (int64_t k = 0; k < n; k++) sisa_store_elem(buf + (size_t)k * es, t->dtype, value(data, r, k, t->shape[2], t->shape[3]));
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

typedef struct prog {
    sisa_graph *g;
    sisa_sched *s;
    sisa_tensor *in[4], *out[2];
    int n_in, n_out;
} prog;

static sisa_tensor *qkv(prog *p, const pcase *c, const char *name, int64_t T, int64_t D) {
    sisa_tensor *t;
    if (c->perm == 1) t = sisa_permute(p->g, sisa_graph_input(p->g, name, SISA_BF16, c->B, T, c->H, D), 0, 2, 1, 3);
    else if (c->perm == 2) t = sisa_permute(p->g, sisa_graph_input(p->g, name, SISA_BF16, c->B, c->H, D, T), 0, 1, 3, 2);
    else t = sisa_graph_input(p->g, name, SISA_BF16, c->B, c->H, T, D);
    p->in[p->n_in++] = t;
    return t;
}

static sisa_status prog_build(prog *p, const pcase *c, sisa_device *dev) {
    memset(p, 0, sizeof *p);
    sisa_graph *g = p->g = sisa_graph_new();
    if (!g) return sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    sisa_tensor *q = qkv(p, c, "q", c->Tq, 80), *k = qkv(p, c, "k", c->Tk, 80), *v = qkv(p, c, "v", c->Tk, 64);
    sisa_sdpa_params sp = {.scale = 0.125f, .causal = c->causal, .p0 = c->p0};
    if (c->form_b) {
        sisa_tensor *gd = sisa_graph_input(g, "g", SISA_F32, 1, c->B, c->H, c->Tk);
        p->in[p->n_in++] = gd;
        sp.gq = sp.gk = gd, sp.d_content = 64;
    }
    if (c->two) { /* the first 40 queries and keys, as its own node */
        sisa_tensor *q40 = sisa_view(g, q, (int64_t[4]){c->B, c->H, 40, 80}, q->stride, 0);
        sisa_tensor *k40 = sisa_view(g, k, (int64_t[4]){c->B, c->H, 40, 80}, k->stride, 0);
        sisa_tensor *v40 = sisa_view(g, v, (int64_t[4]){c->B, c->H, 40, 64}, v->stride, 0);
        p->out[p->n_out++] = sisa_tensor_set_output(sisa_sdpa(g, q40, k40, v40, &sp));
    }
    p->out[p->n_out++] = sisa_tensor_set_output(sisa_sdpa(g, q, k, v, &sp));
    SISA_TRY(sisa_graph_status(g));
    SISA_TRY(sisa_sched_new(dev, false, &p->s));
    SISA_TRY(sisa_sched_prepare(p->s, g));
    for (int i = 0; i < p->n_in; i++) {
        sisa_tensor *t = p->in[i]->view_src ? p->in[i]->view_src : p->in[i]; /* the input behind a permuted view */
        SISA_TRY(fill(t, c->data, i));
    }
    return SISA_OK;
}

static void prog_free(prog *p) {
    sisa_sched_free(p->s);
    sisa_graph_free(p->g);
    memset(p, 0, sizeof *p);
}

static int64_t out_len(const prog *p) {
    int64_t n = 0;
    for (int i = 0; i < p->n_out; i++) n += sisa_tensor_nelements(p->out[i]);
    return n;
}

/* Compute p (pre-pass on or off) and read every output as f32 bits into res. */
static sisa_status prog_run(prog *p, bool pre, float *res) {
    if (pre) setenv("SISA_VK_SDPA_PREPASS", "1", 1);
    else unsetenv("SISA_VK_SDPA_PREPASS");
    sisa_status st = sisa_sched_compute(p->s, p->g);
    for (int i = 0; st == SISA_OK && i < p->n_out; i++) {
        int64_t n = sisa_tensor_nelements(p->out[i]);
        st = sisa_tensor_read(p->out[i], res, (size_t)n * sizeof(float));
        res += n;
    }
    unsetenv("SISA_VK_SDPA_PREPASS");
    return st;
}

/* ||x - ref|| / ||ref|| over all outputs (ref from cpu-ref, fp64 read back) */
static double rel_err(const float *x, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return INFINITY;
        num += (x[i] - ref[i]) * (x[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static sisa_status oracle(const pcase *c, double *ref) {
    sisa_device *dev = NULL;
    prog p = {0};
    sisa_status st = sisa_device_open("cpu-ref", 0, &dev);
    if (st == SISA_OK) st = prog_build(&p, c, dev);
    if (st == SISA_OK) st = sisa_sched_compute(p.s, p.g);
    for (int i = 0; st == SISA_OK && i < p.n_out; i++) {
        st = sisa_tensor_read_f64(p.out[i], ref);
        ref += sisa_tensor_nelements(p.out[i]);
    }
    prog_free(&p);
    sisa_device_free(dev);
    return st;
}

static int run_case(sisa_device *dev, const pcase *c, const char *pass) {
    const int expect = c->expect;
    char label[96], msg[200];
    snprintf(label, sizeof label, "%s%s", pass, c->name);
    prog p = {0};
    float *off = NULL, *on = NULL;
    double *ref = NULL;
    sisa_status st = prog_build(&p, c, dev);
    if (st == SISA_OK && strncmp(sisa_vk_kernel_name(dev, p.out[p.n_out - 1]), "sdpa_coopmat", 12) != 0) {
        printf("SKIP: bf16 SDPA runs on '%s', not the coopmat kernel (no cooperative matrices; "
               "SISA_VK_COOPMAT=emulate runs it emulated)\n", sisa_vk_kernel_name(dev, p.out[p.n_out - 1]));
        prog_free(&p);
        return 77;
    }
    const int64_t n = st == SISA_OK ? out_len(&p) : 0;
    off = malloc((size_t)n * sizeof *off), on = malloc((size_t)n * sizeof *on), ref = malloc((size_t)n * sizeof *ref);
    if (st == SISA_OK && (!off || !on || !ref)) st = sisa_err(SISA_OUT_OF_MEMORY, "test: out of memory");
    uint64_t c0 = 0, c1 = 0, c2 = 0;
    if (st == SISA_OK) c0 = sisa_vk_sdpa_prepass_stats(dev), st = prog_run(&p, false, off);
    if (st == SISA_OK) c1 = sisa_vk_sdpa_prepass_stats(dev), st = prog_run(&p, true, on);
    if (st == SISA_OK) c2 = sisa_vk_sdpa_prepass_stats(dev), st = oracle(c, ref);
    if (st != SISA_OK) {
        check(false, label, sisa_last_error());
    } else {
        int64_t diff = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&off[i], &on[i], sizeof(float)) != 0) diff++, first = first < 0 ? i : first;
        if (diff)
            snprintf(msg, sizeof msg, "%lld of %lld values differ (first [%lld]: %.9g vs %.9g)", (long long)diff,
                     (long long)n, (long long)first, (double)off[first], (double)on[first]);
        else
            snprintf(msg, sizeof msg, "pre-pass on == off: %lld values, same bits", (long long)n);
        check(diff == 0, label, msg);
        snprintf(msg, sizeof msg, "pre-pass took %llu node(s) (expected %d), off took %llu",
                 (unsigned long long)(c2 - c1), expect, (unsigned long long)(c1 - c0));
        check(c2 - c1 == (uint64_t)expect && c1 == c0, label, msg);
        double e = rel_err(on, ref, n);
        snprintf(msg, sizeof msg, "vs fp64 oracle %.2e (tol 1.5e-02)", e);
        check(e <= 1.5e-2, label, msg);
    }
    free(off), free(on), free(ref);
    prog_free(&p);
    return 0;
}

/* One device opened with the environment as it is (SISA_VK_MAX_RANGE: pass). */
static int pass_cases(const char *pass, const pcase *list, size_t n) {
    sisa_device *dev = NULL;
    if (sisa_device_open("vulkan", 0, &dev) != SISA_OK) {
        check(false, pass, sisa_last_error());
        return 0;
    }
    int rc = 0;
    const char *only = getenv("SISA_VK_PREPASS_ONLY"); /* a subset: cases whose names contain it */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!only || strstr(list[i].name, only)) rc = run_case(dev, &list[i], pass);
    sisa_device_free(dev);
    return rc;
}

int main(void) {
    int rc = smoke_probe("vulkan", "Vulkan"); /* 77: not compiled in, or no device */
    if (rc) return rc;
    unsetenv("SISA_VK_MAX_RANGE");
    rc = pass_cases("", cases, sizeof cases / sizeof cases[0]);
    if (rc == 77) return 77;
    /* chunks: one or two (b, h) units of copies per binding */
    setenv("SISA_VK_MAX_RANGE", "131072", 1);
    const pcase chunked[] = {cases[0], cases[5], cases[6], cases[7]}; /* T=200, both views, two nodes */
    pass_cases("[range 131072] ", chunked, 4);
    /* one unit's copies (~90 KB) exceed the binding: declined, today's path (H = 1 keeps the
     * kernel's own operands within 64 KiB) */
    setenv("SISA_VK_MAX_RANGE", "65536", 1);
    const pcase big_unit[] = {{"unit larger than a binding: declined", 2, 1, 200, 200, 1, 0, 0, BLK, 0, false, 0}};
    pass_cases("[range 65536] ", big_unit, 1);
    unsetenv("SISA_VK_MAX_RANGE");

    int verrs = sisa_vk_validation_errors();
    printf("validation layer: %s, %d error(s)\n", sisa_vk_validation_enabled() ? "on" : "off", verrs);
    printf("%d/%d pre-pass checks passed\n", checks - failures, checks);
    if (verrs > 0) {
        printf("FAIL: %d validation-layer error(s)\n", verrs);
        return 1;
    }
    return failures ? 1 : 0;
}
