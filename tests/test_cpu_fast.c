/*
 * test_cpu_fast.c — the CPU fast path (backends/cpu/fast_*.c) against the oracle, kernel by
 * kernel, plus its thread pool and its selection function.
 *
 * Every case builds a small graph, gives it host storage (tests/test_util), fills the inputs from
 * a fixed seed and then walks the nodes in order: the oracle computes the node, its result is
 * kept, the node's storage is refilled with NaN bytes, the fast kernel chosen by
 * sisa_cpu_fast_select computes it again, and the two are compared as the conformance suite
 * does (NaN/Inf positions must agree, then ||fast - ref|| / ||ref||). The fast result stays in
 * place, so the next node is compared on identical inputs. Each case runs under every
 * instruction-set path this CPU has (plain C, AVX2, AVX-512) and with 1 and 3 threads.
 *
 * Thresholds, by destination dtype (the reasons):
 *   f32  1e-5  fp32 arithmetic everywhere: GEMM/attention sums of up to ~1000 terms give
 *              ~1e-7..1e-6 (pairwise/blocked sums, fp32 exp to ~1 ulp); 1e-5 leaves margin
 *              and is what SISA.md §3 states for f32.
 *   f16  2e-3  one rounding to f16 (2^-11 relative) of a value that may differ in its last
 *              f32 bit from the oracle's; SISA.md §3.
 *   bf16 1e-2  the same with bf16's 2^-8; SISA.md §3.
 *   i32  exact (ARGMAX).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/fast_internal.h"
#include "test_util.h"

static const uint64_t SEED = 20261123;

static sisa_cpu_pool *g_pool;   /* the pool of the current configuration */
static char g_config[64];       /* "avx512/3t" */
static double g_worst[SISA_OP_COUNT];

/* ================================ harness ================================ */

typedef struct ctx {
    sisa_graph *g;
    tu_host *h;
    tu_rng rng;
} ctx;

static ctx ctx_new(void) {
    return (ctx){.g = sisa_graph_new(), .h = tu_host_new(), .rng = tu_rng_new(SEED)};
}

static void ctx_free(ctx *c) {
    sisa_graph_free(c->g);
    tu_host_free(c->h);
}

static bool ctx_bind(ctx *c) {
    if (!TU_CHECK(sisa_graph_status(c->g) == SISA_OK, "[%s] graph build: %s", g_config, sisa_last_error()))
        return false;
    return TU_CHECK(tu_host_bind_graph(c->h, c->g), "[%s] binding host storage", g_config);
}

static sisa_tensor *input(ctx *c, const char *name, sisa_dtype dt, int64_t d0, int64_t d1, int64_t d2,
                          int64_t d3) {
    return sisa_graph_input(c->g, name, dt, d0, d1, d2, d3);
}

static double threshold(sisa_dtype dt) {
    switch (dt) {
    case SISA_F32: return 1e-5;
    case SISA_F16: return 2e-3;
    case SISA_BF16: return 1e-2;
    default: return 0.0;
    }
}

/* NaN and Inf positions must agree; the rest: normalised error. */
static double compare(const double *a, const double *ref, int64_t n, int64_t *bad_at) {
    double num = 0, den = 0;
    for (int64_t k = 0; k < n; k++) {
        if (isnan(ref[k]) || isnan(a[k]) || isinf(ref[k]) || isinf(a[k])) {
            bool same = (isnan(ref[k]) && isnan(a[k])) || a[k] == ref[k];
            if (!same) {
                *bad_at = k;
                return INFINITY;
            }
            continue;
        }
        num += (a[k] - ref[k]) * (a[k] - ref[k]);
        den += ref[k] * ref[k];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Oracle then fast kernel on every node of c->g, in order. */
static void run_compare(ctx *c, const char *what) {
    for (int i = 0; i < c->g->n_nodes; i++) {
        sisa_tensor *n = c->g->nodes[i];
        if (n->op == SISA_OP_VIEW) continue;
        int64_t ne = sisa_tensor_nelements(n);
        double *ref = malloc((size_t)ne * sizeof(double)), *got = malloc((size_t)ne * sizeof(double));
        if (!TU_CHECK(ref && got, "out of memory")) {
            free(ref);
            free(got);
            return;
        }
        if (!TU_CHECK(sisa_cpu_ref_compute(n) == SISA_OK, "[%s] %s: oracle on node %d (%s): %s",
                      g_config, what, i, sisa_op_name(n->op), sisa_last_error()))
            goto next;
        tu_read_values(n, ref);
        memset(sisa_cpu_data(n), 0xFF, sisa_tensor_span_bytes(n));
        char reason[SISA_REASON_LEN] = "";
        sisa_cpu_fast_kernel k = sisa_cpu_fast_select(n, reason);
        if (!TU_CHECK(k != NULL, "[%s] %s: node %d %s not selected: %s", g_config, what, i,
                      sisa_op_name(n->op), reason))
            goto next;
        if (!TU_CHECK(k(g_pool, n) == SISA_OK, "[%s] %s: fast %s failed: %s", g_config, what,
                      sisa_op_name(n->op), sisa_last_error()))
            goto next;
        tu_read_values(n, got);
        int64_t bad = -1;
        double err = compare(got, ref, ne, &bad);
        double thr = threshold(n->dtype);
        char d[160];
        if (bad >= 0)
            TU_CHECK(false, "[%s] %s: %s %s: element %lld is %g, oracle %g (NaN/Inf must agree)",
                     g_config, what, sisa_op_name(n->op), sisa_tensor_describe(n, d, sizeof d),
                     (long long)bad, got[bad], ref[bad]);
        else
            TU_CHECK(err <= thr, "[%s] %s: %s %s: normalised error %.3g > %.1g", g_config, what,
                     sisa_op_name(n->op), sisa_tensor_describe(n, d, sizeof d), err, thr);
        if (n->dtype == SISA_F32 && err > g_worst[n->op] && isfinite(err)) g_worst[n->op] = err;
    next:
        free(ref);
        free(got);
    }
    TU_CHECK(tu_host_guards_ok(c->h), "[%s] %s: guard bytes intact", g_config, what);
}

/* Build + fill + compare one case. */
typedef void (*case_fn)(ctx *c, int variant);

static void run_case(const char *name, case_fn build, int variant) {
    ctx c = ctx_new();
    build(&c, variant);
    if (sisa_graph_status(c.g) == SISA_OK && c.h && c.g->n_nodes > 0 && c.g->nodes[0]->buffer) {
        char what[96];
        snprintf(what, sizeof what, "%s #%d", name, variant);
        run_compare(&c, what);
    } else {
        TU_CHECK(false, "[%s] %s #%d: setup failed: %s", g_config, name, variant, sisa_last_error());
    }
    ctx_free(&c);
}

static void fill_leaves_uniform(ctx *c, double lo, double hi) {
    for (int i = 0; i < c->g->n_leafs; i++)
        if (c->g->leafs[i]->dtype != SISA_I32) tu_fill_uniform(c->g->leafs[i], &c->rng, lo, hi);
}

static sisa_dtype dt_of(int k) { return k == 0 ? SISA_F32 : k == 1 ? SISA_BF16 : SISA_F16; }

/* ================================ cases ================================ */

static void case_cpy(ctx *c, int v) {
    sisa_dtype sdt = dt_of(v % 3);
    sisa_tensor *x = input(c, "x", sdt, 1, 2, 17, 33);
    sisa_cpy(c->g, x, SISA_BF16);
    sisa_cpy(c->g, x, SISA_F16);
    sisa_cpy(c->g, x, SISA_F32);
    sisa_tensor *xt = sisa_permute(c->g, x, 0, 1, 3, 2); /* strided rows */
    sisa_cpy(c->g, xt, SISA_F32);
    sisa_cpy(c->g, xt, sdt == SISA_F16 ? SISA_BF16 : SISA_F16);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -70000, 70000); /* f16 overflow to Inf on the way */
    tu_set(x, 0, 0, 0, 0, NAN);
}

static void case_embed(ctx *c, int v) {
    sisa_tensor *tab = input(c, "table", dt_of(v), 1, 1, 50, 24);
    sisa_tensor *ids = input(c, "ids", SISA_I32, 1, 1, 2, 7);
    sisa_embed(c->g, tab, ids);
    sisa_embed(c->g, tab, sisa_permute(c->g, ids, 0, 1, 3, 2)); /* strided ids (1,1,7,2) */
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -1, 1);
    const double id[14] = {0, 49, 3, 3, -1, 50, 7, 12, 13, 1, 2, 48, 25, 1000};
    tu_fill_values(ids, id);
}

static void case_rms(ctx *c, int v) {
    int64_t D = v < 3 ? 768 : 17;
    sisa_tensor *x = input(c, "x", SISA_F32, 1, 2, 17, D);
    sisa_tensor *w = input(c, "w", dt_of(v % 3), 1, 1, 1, D);
    sisa_rms_norm(c->g, x, w, 1e-6f);
    sisa_tensor *xs = input(c, "xs", SISA_F32, 1, 17, 2, D);
    sisa_rms_norm(c->g, sisa_permute(c->g, xs, 0, 2, 1, 3), w, 1e-6f); /* strided rows */
    c->g->act_dtype = SISA_F16;
    sisa_rms_norm(c->g, x, w, 1e-5f);
    c->g->act_dtype = SISA_BF16;
    sisa_rms_norm(c->g, x, w, 1e-5f);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -2, 2);
}

static void case_rope(ctx *c, int v) {
    const int64_t Ts[3] = {1, 17, 113};
    int64_t T = Ts[v % 3], D = v >= 3 ? 6 : 64;
    int32_t p0 = v >= 3 ? 1000 : 0;
    sisa_tensor *x = input(c, "x", SISA_F32, 2, T, 3, D);
    sisa_rope(c->g, x, 10000.0f, p0);
    sisa_tensor *xh = input(c, "xh", SISA_BF16, 2, 3, T, D); /* (B,H,T,D) viewed as (B,T,H,D) */
    sisa_rope(c->g, sisa_permute(c->g, xh, 0, 2, 1, 3), 500000.0f, p0 + 7);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -3, 3);
}

static void case_add(ctx *c, int v) {
    const int64_t bs[4][4] = {{2, 3, 17, 33}, {1, 1, 1, 33}, {2, 1, 17, 1}, {1, 1, 1, 1}};
    sisa_tensor *a = input(c, "a", SISA_F32, 2, 3, 17, 33);
    sisa_tensor *b = input(c, "b", v % 2 ? SISA_BF16 : SISA_F32, bs[v][0], bs[v][1], bs[v][2], bs[v][3]);
    sisa_add(c->g, a, b);
    sisa_add(c->g, sisa_permute(c->g, a, 0, 1, 2, 3), b);
    sisa_tensor *at = input(c, "at", SISA_F32, 2, 3, 33, 17);
    if (v == 0) sisa_add(c->g, sisa_permute(c->g, at, 0, 1, 3, 2), b); /* strided a */
    sisa_scale(c->g, a, -0.37f);
    sisa_scale(c->g, sisa_permute(c->g, at, 0, 1, 3, 2), 3.0f);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -5, 5);
}

static void case_softmax(ctx *c, int v) {
    const int64_t Ds[3] = {1, 17, 1000};
    int64_t D = Ds[v % 3];
    sisa_tensor *x = input(c, "x", v >= 3 ? SISA_F16 : SISA_F32, 1, 3, 5, D);
    sisa_softmax(c->g, x);
    sisa_argmax(c->g, x);
    sisa_tensor *xt = input(c, "xt", SISA_F32, 1, 3, D, 5);
    sisa_softmax(c->g, sisa_permute(c->g, xt, 0, 1, 3, 2));
    sisa_argmax(c->g, sisa_permute(c->g, xt, 0, 1, 3, 2));
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -30, 30);
    for (int64_t j = 0; j < D; j++) tu_set(x, 0, 0, 1, j, -INFINITY); /* all masked: zeros */
    if (D > 3) {
        tu_set(x, 0, 1, 0, 2, NAN);         /* NaN row: NaN out; argmax = the NaN */
        tu_set(x, 0, 1, 1, 1, 80.0);        /* argmax ties: first wins */
        tu_set(x, 0, 1, 1, 3, 80.0);
        tu_set(x, 0, 2, 2, 0, -INFINITY);
    }
}

static void case_argmax_long(ctx *c, int v) {
    sisa_tensor *x = input(c, "logits", v ? SISA_BF16 : SISA_F32, 1, 1, 3, 50277);
    sisa_argmax(c->g, x);
    sisa_softmax(c->g, x);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -10, 10);
    tu_set(x, 0, 0, 0, 50276, 11.0);
    tu_set(x, 0, 0, 1, 77, 11.0);
    tu_set(x, 0, 0, 1, 40000, 11.0);
}

static void case_swiglu(ctx *c, int v) {
    int64_t F = v ? 40 : 2908;
    sisa_tensor *gu = input(c, "gate_up", v == 1 ? SISA_BF16 : SISA_F32, 1, 2, 17, 2 * F);
    sisa_tensor *gate = sisa_slice_row(c->g, gu, 0, F), *up = sisa_slice_row(c->g, gu, F, F);
    sisa_swiglu(c->g, gate, up);
    sisa_tensor *g2 = input(c, "g2", SISA_F32, 1, 2, 17, F), *u2 = input(c, "u2", SISA_F32, 1, 2, 17, F);
    sisa_swiglu(c->g, g2, u2);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -12, 12);
    tu_set(g2, 0, 0, 0, 0, -120.0); /* e^120 overflows: silu -> -0 */
    tu_set(g2, 0, 0, 0, 1, 120.0);
}

static void case_augment(ctx *c, int v) {
    sisa_tensor *a = input(c, "q", SISA_F32, 2, 3, 17, 64);
    sisa_tensor *b = input(c, "sc", v ? SISA_BF16 : SISA_F32, 2, 3, 17, 16);
    sisa_augment(c->g, a, b, 80);
    sisa_augment(c->g, a, b, 96);
    sisa_tensor *at = input(c, "qt", SISA_F32, 2, 17, 3, 64); /* (B,T,H,D) viewed (B,H,T,D) */
    sisa_augment(c->g, sisa_permute(c->g, at, 0, 2, 1, 3), b, 83);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -1, 1);
}

static void case_matmul(ctx *c, int v) {
    static const int64_t shapes[][3] = {{1, 17, 33},  {3, 33, 300}, {7, 100, 17},  {8, 1, 16},
                                        {13, 45, 513}, {113, 70, 64}, {37, 129, 1}, {12, 32, 256},
                                        {64, 300, 770}, {200, 12, 64}, {130, 40, 33}};
    int s = v % 11;
    sisa_dtype bdt = dt_of(v / 11);
    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    sisa_tensor *a = input(c, "a", SISA_F32, 1, 1, M, K);
    sisa_tensor *w = input(c, "w", bdt, 1, 1, N, K);
    sisa_matmul(c->g, a, w);
    /* strided a: (K, M) viewed transposed; strided b: (K, N) viewed transposed */
    sisa_tensor *at = input(c, "at", SISA_F32, 1, 1, K, M);
    sisa_tensor *wt = input(c, "wt", bdt, 1, 1, K, N);
    sisa_matmul(c->g, sisa_permute(c->g, at, 0, 1, 3, 2), sisa_permute(c->g, wt, 0, 1, 3, 2));
    /* a in bf16 */
    sisa_tensor *ab = input(c, "ab", SISA_BF16, 1, 1, M, K);
    sisa_matmul(c->g, ab, w);
    c->g->act_dtype = v % 2 ? SISA_BF16 : SISA_F16; /* results rounded once from f32 */
    sisa_matmul(c->g, a, w);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -1, 1);
}

static void case_matmul_batched(ctx *c, int v) {
    /* (2,3,M,K) x (B0,B1,N,K) with every broadcast pattern, and a permuted batch layout */
    const int64_t b0 = v & 1 ? 2 : 1, b1 = v & 2 ? 3 : 1;
    sisa_tensor *a = input(c, "a", SISA_F32, 2, 3, 29, 40);
    sisa_tensor *b = input(c, "b", v >= 4 ? SISA_BF16 : SISA_F32, b0, b1, 19, 40);
    sisa_matmul(c->g, a, b);
    sisa_tensor *ap = input(c, "ap", SISA_F32, 3, 2, 29, 40);
    sisa_matmul(c->g, sisa_permute(c->g, ap, 1, 0, 2, 3), b);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -1, 1);
}

static void case_ssm(ctx *c, int v) {
    /* v: bit0 d_s (2 or 16), bit1 mode, bit2 carry-ins, bit3 clamp active; T by v/16 */
    const int64_t Ts[3] = {1, 17, 113};
    int64_t B = 2, H = 3, T = Ts[(v / 16) % 3], ds = v & 1 ? 16 : 2;
    int mode = v & 2 ? SISA_SSM_FACTORED : SISA_SSM_AUGMENTED;
    bool carry = v & 4, clamp = v & 8;
    sisa_tensor *al = input(c, "alpha", SISA_F32, 1, B, T, H);
    sisa_tensor *bias = input(c, "b_alpha", SISA_F32, 1, 1, 1, H);
    sisa_tensor *g0 = carry ? input(c, "g0", SISA_F32, 1, 1, B, H) : NULL;
    sisa_tensor *g = sisa_ssm_decay(c->g, al, bias, g0);
    sisa_tensor *Bs = input(c, "Bs", SISA_F32, 1, B, T, H * ds);
    sisa_tensor *Cs = input(c, "Cs", SISA_BF16, 1, B, T, H * ds);
    sisa_tensor *th = input(c, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = input(c, "lambda_raw", SISA_F32, 1, 1, 1, H);
    sisa_tensor *phi0 = carry ? input(c, "phi0", SISA_F32, 1, 1, B, H * ds / 2) : NULL;
    sisa_ssm_channels(c->g, Bs, Cs, th, g, lr, phi0, mode, 64, 11.0f);
    /* strided Bs: (1,B,H*ds,T) viewed transposed */
    sisa_tensor *Bt = input(c, "Bs_t", SISA_F32, 1, B, H * ds, T);
    sisa_ssm_channels(c->g, sisa_permute(c->g, Bt, 0, 1, 3, 2), Cs, th, g, lr, phi0, mode, 64, 11.0f);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -1, 1);
    tu_fill_uniform(al, &c->rng, clamp ? 2.0 : -6.0, clamp ? 6.0 : 0.0); /* clamp: |g - c| > 11 */
    tu_fill_uniform(bias, &c->rng, -5.0, -2.0);
    tu_fill_uniform(th, &c->rng, -0.5, 0.5);
    if (carry) {
        tu_fill_uniform(g0, &c->rng, -30.0, 0.0);
        tu_fill_uniform(phi0, &c->rng, -400.0, 400.0); /* large angles: reduction matters */
    }
}

/* q/k/v are given in the model's natural layout (B,T,H,D) and viewed as (B,H,T,D). */
typedef struct sdpa_case {
    int64_t B, H, Tq, Tk, Dqk, Dv;
    int causal, p0, form_b, dc;
    int nan_tail; /* K/V at positions past p0 + Tq - 1 hold NaN (decode cache garbage) */
    int nan_last; /* V of the last query's own key is NaN: only that query sees it */
} sdpa_case;

static const sdpa_case sdpa_cases[] = {
    {2, 3, 17, 17, 80, 64, 1, 0, 0, 0, 0, 0},     /* SISA form A, d_s = 16 */
    {1, 2, 113, 113, 96, 64, 1, 0, 0, 0, 0, 0},   /* padded to 96 */
    {2, 2, 1, 1, 80, 64, 1, 0, 0, 0, 0, 0},       /* T = 1 */
    {1, 3, 1, 40, 80, 64, 1, 39, 0, 0, 0, 0},     /* decode step */
    {1, 2, 5, 40, 24, 40, 1, 35, 0, 0, 0, 0},     /* chunked prefill, d_qk < d_v */
    {2, 2, 17, 33, 40, 24, 0, 0, 0, 0, 0, 0},     /* not causal, d_qk > d_v, Tk != Tq */
    {1, 3, 113, 113, 72, 64, 1, 0, 1, 64, 0, 0},  /* form B, d_s = 8 */
    {2, 2, 17, 17, 66, 64, 1, 0, 1, 64, 0, 0},    /* form B, d_s = 2 */
    {1, 2, 1, 50, 80, 64, 1, 49, 1, 64, 0, 0},    /* form B decode */
    {1, 2, 9, 30, 80, 64, 1, 3, 1, 0, 0, 0},      /* form B, every dim decayed */
    {1, 2, 20, 20, 33, 17, 1, 0, 1, 20, 0, 0},    /* form B (causal by definition), Tq = Tk */
    {1, 2, 1, 64, 80, 64, 1, 20, 0, 0, 1, 0},     /* NaN cache past the position */
    {1, 2, 17, 70, 80, 64, 1, 0, 1, 64, 1, 0},    /* same, form B prefill */
    {1, 2, 5, 5, 16, 16, 1, 0, 0, 0, 0, 1},       /* NaN V seen only by the last query */
    {1, 1, 130, 130, 64, 64, 1, 0, 0, 0, 0, 0},   /* several key blocks */
};

static void case_sdpa(ctx *c, int v) {
    const sdpa_case *s = &sdpa_cases[v];
    sisa_tensor *q = input(c, "q", SISA_F32, s->B, s->Tq, s->H, s->Dqk);
    sisa_tensor *k = input(c, "k", v % 2 ? SISA_BF16 : SISA_F32, s->B, s->Tk, s->H, s->Dqk);
    sisa_tensor *vv = input(c, "v", v % 3 == 1 ? SISA_F16 : SISA_F32, s->B, s->Tk, s->H, s->Dv);
    sisa_sdpa_params p = {.scale = 0.125f, .causal = s->causal, .p0 = s->p0, .d_content = s->dc};
    sisa_tensor *gq = NULL, *gk = NULL;
    if (s->form_b) {
        gq = p.gq = input(c, "gq", SISA_F32, 1, s->B, s->H, s->Tq);
        gk = p.gk = input(c, "gk", SISA_F32, 1, s->B, s->H, s->Tk);
    }
    sisa_sdpa(c->g, sisa_permute(c->g, q, 0, 2, 1, 3), sisa_permute(c->g, k, 0, 2, 1, 3),
              sisa_permute(c->g, vv, 0, 2, 1, 3), &p);
    c->g->act_dtype = v % 2 ? SISA_F16 : SISA_BF16;
    sisa_sdpa(c->g, sisa_permute(c->g, q, 0, 2, 1, 3), sisa_permute(c->g, k, 0, 2, 1, 3),
              sisa_permute(c->g, vv, 0, 2, 1, 3), &p);
    if (!ctx_bind(c)) return;
    fill_leaves_uniform(c, -1.5, 1.5);
    if (s->form_b) { /* g non-increasing along positions, as SSM_DECAY makes it */
        for (int64_t b = 0; b < s->B; b++)
            for (int64_t h = 0; h < s->H; h++) {
                double rate = 0.02 + 0.05 * (double)h;
                for (int64_t j = 0; j < s->Tk; j++) tu_set(gk, 0, b, h, j, -rate * (double)j - 3.0);
                for (int64_t i = 0; i < s->Tq; i++)
                    tu_set(gq, 0, b, h, i, -rate * (double)(s->p0 + i) - 3.0);
            }
    }
    if (s->nan_tail)
        for (int64_t b = 0; b < s->B; b++)
            for (int64_t j = s->p0 + s->Tq; j < s->Tk; j++)
                for (int64_t h = 0; h < s->H; h++) {
                    for (int64_t d = 0; d < s->Dqk; d++) tu_set(k, b, j, h, d, NAN);
                    for (int64_t d = 0; d < s->Dv; d++) tu_set(vv, b, j, h, d, NAN);
                    if (gk) tu_set(gk, 0, b, h, j, NAN);
                }
    if (s->nan_last)
        for (int64_t h = 0; h < s->H; h++) tu_set(vv, 0, s->Tk - 1, h, 3, NAN);
}

/* ================================ selection ================================ */

static void test_select(void) {
    ctx c = ctx_new();
    sisa_tensor *a = input(&c, "a", SISA_F32, 1, 1, 4, 8);
    sisa_tensor *w = input(&c, "w", SISA_BF16, 1, 1, 5, 8);
    sisa_tensor *mm = sisa_matmul(c.g, a, w);
    sisa_tensor *view = sisa_reshape(c.g, mm, 1, 1, 5, 4);
    c.g->act_dtype = SISA_BF16;
    sisa_tensor *mm16 = sisa_matmul(c.g, a, w);
    sisa_tensor *sc16 = sisa_scale(c.g, a, 2.0f);
    c.g->act_dtype = SISA_F64;
    sisa_tensor *sc64 = sisa_scale(c.g, a, 2.0f);
    if (!TU_CHECK(sisa_graph_status(c.g) == SISA_OK, "select graph: %s", sisa_last_error())) goto out;
    char reason[SISA_REASON_LEN];
    reason[0] = 0;
    TU_CHECK(sisa_cpu_fast_select(mm, reason) == sisa_fast_matmul, "MATMUL f32 <- bf16 weight selected");
    TU_CHECK(sisa_cpu_fast_select(view, reason) != NULL, "a VIEW is a no-op kernel");
    TU_CHECK(sisa_cpu_fast_select(sc16, reason) == sisa_fast_scale, "SCALE into bf16 selected");
    TU_CHECK(sisa_cpu_fast_select(mm16, reason) == sisa_fast_matmul, "MATMUL into bf16 selected");
    reason[0] = 0;
    TU_CHECK(sisa_cpu_fast_select(sc64, reason) == NULL && strstr(reason, "f64"),
             "f64 result declined with a reason (%s)", reason);
    sisa_tensor strided = *sc16;
    strided.dtype = SISA_F32;
    strided.stride[2] = 4;
    strided.stride[3] = 4 * 4;
    reason[0] = 0;
    TU_CHECK(sisa_cpu_fast_select(&strided, reason) == NULL && strstr(reason, "contiguous"),
             "a strided destination declined with a reason (%s)", reason);
    reason[0] = 0;
    TU_CHECK(sisa_cpu_fast_select(NULL, reason) == NULL && reason[0], "NULL node declined");
    /* every op of ops.h has a kernel for f32 */
    for (int op = SISA_OP_CPY; op < SISA_OP_COUNT; op++) {
        sisa_tensor t = *mm;
        t.op = op;
        t.src[1] = op == SISA_OP_EMBED ? NULL : t.src[1];
        if (op == SISA_OP_ARGMAX) t.dtype = SISA_I32;
        reason[0] = 0;
        TU_CHECK(sisa_cpu_fast_select(&t, reason) != NULL, "op %s has a fast kernel (%s)",
                 sisa_op_name(op), reason);
    }
out:
    ctx_free(&c);
}

/* ================================ pool ================================ */

#define MAXN 5000
static atomic_int g_visits[MAXN];
static atomic_int g_bad_tid;

typedef struct pool_arg {
    sisa_cpu_pool *p;
    int nested;
} pool_arg;

static void count_task(int64_t i, int tid, void *arg) {
    pool_arg *pa = arg;
    if (tid < 0 || tid >= sisa_cpu_pool_size(pa->p)) atomic_fetch_add(&g_bad_tid, 1);
    atomic_fetch_add(&g_visits[i], 1);
    if (pa->nested) { /* a run from inside a task runs inline and completes */
        pool_arg inner = {pa->p, 0};
        sisa_fast_pool_run(pa->p, 3, count_task, &inner);
    }
}

static void plain_task(int64_t i, void *arg) {
    (void)arg;
    atomic_fetch_add(&g_visits[i], 1);
}

static bool visits_are(int64_t n, int want) {
    bool ok = true;
    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&g_visits[i]) == want;
    return ok;
}

static void reset_visits(void) {
    for (int i = 0; i < MAXN; i++) atomic_store(&g_visits[i], 0);
}

typedef struct hammer_arg {
    sisa_cpu_pool *p;
    int runs;
} hammer_arg;

static void *hammer(void *varg) {
    hammer_arg *h = varg;
    pool_arg pa = {h->p, 0};
    for (int r = 0; r < h->runs; r++) sisa_fast_pool_run(h->p, 100, count_task, &pa);
    return NULL;
}

static void test_pool(void) {
    const int sizes[] = {1, 2, 3, 8};
    for (int si = 0; si < 4; si++) {
        sisa_cpu_pool *p = NULL;
        if (!TU_CHECK(sisa_cpu_pool_new(sizes[si], &p) == SISA_OK, "pool of %d", sizes[si])) continue;
        TU_CHECK(sisa_cpu_pool_size(p) == sizes[si], "pool size %d", sizes[si]);
        const int64_t ns[] = {0, 1, 2, 7, 1000, MAXN};
        for (int k = 0; k < 6; k++) {
            reset_visits();
            atomic_store(&g_bad_tid, 0);
            pool_arg pa = {p, 0};
            sisa_fast_pool_run(p, ns[k], count_task, &pa);
            TU_CHECK(visits_are(ns[k], 1) && atomic_load(&g_bad_tid) == 0,
                     "pool(%d): %lld tasks each run once, thread ids in range", sizes[si],
                     (long long)ns[k]);
        }
        /* back-to-back runs (spinning workers), then runs after sleeps (sleeping workers) */
        reset_visits();
        pool_arg pa = {p, 0};
        for (int r = 0; r < 2000; r++) sisa_fast_pool_run(p, 50, count_task, &pa);
        for (int r = 0; r < 5; r++) {
            usleep(3000);
            sisa_fast_pool_run(p, 50, count_task, &pa);
        }
        TU_CHECK(visits_are(50, 2005), "pool(%d): 2005 runs of 50 tasks", sizes[si]);
        /* nested: each of 40 tasks runs 3 inner tasks inline */
        reset_visits();
        pa.nested = 1;
        sisa_fast_pool_run(p, 40, count_task, &pa);
        bool ok = true;
        for (int i = 0; i < 40; i++) ok &= atomic_load(&g_visits[i]) == 1 + (i < 3 ? 40 : 0);
        TU_CHECK(ok, "pool(%d): nested runs execute inline", sizes[si]);
        /* the public form */
        reset_visits();
        sisa_cpu_pool_run(p, 777, plain_task, NULL);
        TU_CHECK(visits_are(777, 1), "pool(%d): sisa_cpu_pool_run", sizes[si]);
        /* two callers at once: runs are serialised, none is lost */
        reset_visits();
        pthread_t th[2];
        hammer_arg ha = {p, 300};
        for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, hammer, &ha);
        for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
        TU_CHECK(visits_are(100, 600), "pool(%d): two concurrent callers", sizes[si]);
        sisa_cpu_pool_free(p);
    }
    /* NULL pool: inline */
    reset_visits();
    pool_arg pa = {NULL, 0};
    sisa_fast_pool_run(NULL, 10, count_task, &pa);
    TU_CHECK(visits_are(10, 1), "NULL pool runs inline");
    sisa_cpu_pool *p = NULL;
    TU_CHECK(sisa_cpu_pool_new(0, &p) == SISA_OK && sisa_cpu_pool_size(p) >= 1, "pool of all cores");
    sisa_cpu_pool_free(p);
}

/* ================================ vector helpers ================================ */

static void test_vec(void) {
    /* exp over the whole range, specials included */
    float x[2003], y[2003];
    for (int i = 0; i < 2000; i++) x[i] = -110.0f + 0.1f * (float)i;
    x[2000] = -INFINITY;
    x[2001] = INFINITY;
    x[2002] = NAN;
    sisa_fast_exp(y, x, 2003);
    double worst = 0;
    for (int i = 0; i < 2000; i++) {
        double r = exp((double)x[i]);
        if (r < 1e-37) {
            worst = fmax(worst, fabs(y[i] - r) / 1e-37 * 1e-7);
            continue;
        }
        if (r > 3.4e38) {
            TU_CHECK(isinf(y[i]) || fabs(y[i] - r) / r < 1e-6, "[%s] exp(%g) overflow", g_config, x[i]);
            continue;
        }
        worst = fmax(worst, fabs(y[i] - r) / r);
    }
    TU_CHECK(worst < 4e-7, "[%s] exp relative error %.3g", g_config, worst);
    TU_CHECK(y[2000] == 0.0f && isinf(y[2001]) && y[2001] > 0 && isnan(y[2002]),
             "[%s] exp(-inf) = 0, exp(inf) = inf, exp(NaN) = NaN", g_config);
    /* sums stay accurate on long rows */
    static float big[1 << 20];
    for (int i = 0; i < (1 << 20); i++) big[i] = 0.1f + (float)(i % 7) * 1e-3f;
    double ref = 0, ref2 = 0;
    for (int i = 0; i < (1 << 20); i++) {
        ref += big[i];
        ref2 += (double)big[i] * big[i];
    }
    TU_CHECK(fabs(sisa_fast_sum(big, 1 << 20) - ref) / ref < 1e-6, "long sum: %.9g vs %.9g",
             sisa_fast_sum(big, 1 << 20), ref);
    TU_CHECK(fabs(sisa_fast_sumsq(big, 1 << 20) - ref2) / ref2 < 1e-6, "long sum of squares");
}

/* ================================ main ================================ */

static void run_all_cases(void) {
    for (int v = 0; v < 3; v++) run_case("cpy", case_cpy, v);
    for (int v = 0; v < 3; v++) run_case("embed", case_embed, v);
    for (int v = 0; v < 6; v++) run_case("rms_norm", case_rms, v);
    for (int v = 0; v < 6; v++) run_case("rope", case_rope, v);
    for (int v = 0; v < 4; v++) run_case("add/scale", case_add, v);
    for (int v = 0; v < 6; v++) run_case("softmax/argmax", case_softmax, v);
    for (int v = 0; v < 2; v++) run_case("argmax 50277", case_argmax_long, v);
    for (int v = 0; v < 3; v++) run_case("swiglu", case_swiglu, v);
    for (int v = 0; v < 2; v++) run_case("augment", case_augment, v);
    for (int v = 0; v < 33; v++) run_case("matmul", case_matmul, v);
    for (int v = 0; v < 8; v++) run_case("matmul batched", case_matmul_batched, v);
    for (int v = 0; v < 48; v++) run_case("ssm", case_ssm, v);
    for (int v = 0; v < (int)(sizeof sdpa_cases / sizeof sdpa_cases[0]); v++) run_case("sdpa", case_sdpa, v);
}

int main(void) {
    test_pool();
    test_select();
    sisa_fast_isa best = sisa_fast_get_isa();
    const int threads[2] = {1, 3};
    for (int isa = SISA_FAST_ISA_C; isa <= (int)best; isa++) {
        sisa_fast_set_isa((sisa_fast_isa)isa);
        for (int t = 0; t < 2; t++) {
            if (!TU_CHECK(sisa_cpu_pool_new(threads[t], &g_pool) == SISA_OK, "pool")) continue;
            snprintf(g_config, sizeof g_config, "%s/%dt", sisa_fast_isa_name((sisa_fast_isa)isa), threads[t]);
            int before = tu_failures;
            if (t == 0) test_vec();
            run_all_cases();
            tu_note("%s: %s", g_config, tu_failures == before ? "all kernels match the oracle" : "FAILURES");
            sisa_cpu_pool_free(g_pool);
            g_pool = NULL;
        }
    }
    sisa_fast_set_isa(best);
    tu_note("instruction sets covered: c..%s (the best this CPU has)", sisa_fast_isa_name(best));
    for (int op = 0; op < SISA_OP_COUNT; op++)
        if (g_worst[op] > 0) tu_note("worst f32 normalised error %-13s %.2e", sisa_op_name(op), g_worst[op]);
    return tu_report("cpu_fast");
}
