/*
 * test_ref_ops.c — tests of the oracle itself (backends/cpu/ref_*.c).
 *
 * The oracle is what every backend is measured against, so it is checked here against things
 * that do not come from its own code: hand-computed values, closed forms, algebraic properties
 * (softmax rows sum to 1, RoPE depends only on relative position), other ops composed (SDPA ==
 * softmax(scale·Q·Kᵀ)·V from MATMUL/SCALE/SOFTMAX), and, for SISA itself, the augmented score
 * identity computed directly from SISA.md in fp64 by this file:
 *
 *   Qhat_i·Khat_j / sqrt(d_h)
 *     == q_i·k_j / sqrt(d_h) + lambda·exp(g_i - g_j)·(Rot(Phi_i)Cs_i)·(Rot(Phi_j)Bs_j)
 *     == q_i·k_j / sqrt(d_h) + lambda·prod_{k=j+1..i} alpha_k · Cs_i·Rot(Phi_j - Phi_i)·Bs_j
 *
 * (clamp inactive), form A on the AUGMENTED channels == form B on the FACTORED channels, and,
 * where the clamp is active, form A == the clamped definition != form B.
 * Measured errors are printed as "note:" lines.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "test_util.h"

static const uint64_t SEED = 20261123;

/* ---- a graph with host storage ---- */

typedef struct ctx {
    sisa_graph *g;
    tu_host *h;
} ctx;

static ctx ctx_new(void) { return (ctx){.g = sisa_graph_new(), .h = tu_host_new()}; }

static void ctx_free(ctx *c) {
    sisa_graph_free(c->g);
    tu_host_free(c->h);
}

/* After building: check the build and give every tensor storage. */
static bool ctx_bind(ctx *c) {
    if (!TU_CHECK(sisa_graph_status(c->g) == SISA_OK, "graph build: %s", sisa_last_error()))
        return false;
    return TU_CHECK(tu_host_bind_graph(c->h, c->g), "binding host storage");
}

/* After filling the inputs: run every node on the oracle. */
static bool ctx_run(ctx *c) {
    bool ok = TU_CHECK(tu_run_ref(c->g) == SISA_OK, "oracle run: %s", sisa_last_error());
    TU_CHECK(tu_host_guards_ok(c->h), "guard bytes intact");
    return ok;
}

static sisa_tensor *input(ctx *c, const char *name, sisa_dtype dt, int64_t d0, int64_t d1,
                          int64_t d2, int64_t d3) {
    return sisa_graph_input(c->g, name, dt, d0, d1, d2, d3);
}

static double softplus_naive(double x) { return log(1.0 + exp(x)); } /* fine for |x| < 30 */

/* ================================ generic ops ================================ */

static void test_cpy(void) {
    ctx c = ctx_new();
    sisa_tensor *x = input(&c, "x", SISA_F32, 1, 1, 2, 3);
    sisa_tensor *xb = sisa_cpy(c.g, x, SISA_BF16);
    sisa_tensor *xh = sisa_cpy(c.g, x, SISA_F16);
    sisa_tensor *xt = sisa_cpy(c.g, sisa_permute(c.g, x, 0, 1, 3, 2), SISA_F32); /* (1,1,3,2) */
    if (!ctx_bind(&c)) goto out;
    /* 1+2^-8 is a bf16 tie (-> 1, even); 1+3·2^-9 rounds up in bf16 and is exact in f16;
     * 70000 overflows f16; 3e-5 is an f16 subnormal (503·2^-24). */
    tu_fill_values(x, (double[]){1.00390625, 1.005859375, 70000.0, 3e-5, -2.5, 1e-8});
    if (!ctx_run(&c)) goto out;
    TU_CHECK(tu_get(xb, 0, 0, 0, 0) == 1.0, "bf16 tie to even");
    TU_CHECK(tu_get(xb, 0, 0, 0, 1) == 1.0078125, "bf16 round up");
    TU_CHECK(tu_get(xh, 0, 0, 0, 1) == 1.005859375, "f16 exact");
    TU_CHECK(isinf(tu_get(xh, 0, 0, 0, 2)), "f16 overflow to inf");
    TU_CHECK(tu_get(xh, 0, 0, 1, 0) == 503.0 * 0x1p-24, "f16 subnormal: %.9g",
             tu_get(xh, 0, 0, 1, 0));
    TU_CHECK(tu_get(xh, 0, 0, 1, 2) == 0.0, "f16 underflow to 0");
    bool transposed = true;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) transposed &= tu_get(xt, 0, 0, j, i) == tu_get(x, 0, 0, i, j);
    TU_CHECK(transposed, "CPY of a transposed view");
out:
    ctx_free(&c);
}

static void test_embed(void) {
    ctx c = ctx_new();
    sisa_tensor *table = input(&c, "table", SISA_F32, 1, 1, 4, 3);
    sisa_tensor *ids = input(&c, "ids", SISA_I32, 1, 1, 2, 2);
    sisa_tensor *y = sisa_embed(c.g, table, ids);
    if (!ctx_bind(&c)) goto out;
    for (int v = 0; v < 4; v++)
        for (int i = 0; i < 3; i++) tu_set(table, 0, 0, v, i, 10 * v + i);
    tu_fill_values(ids, (double[]){3, 0, -1, 4}); /* the last two are out of range: zeros */
    if (!ctx_run(&c)) goto out;
    bool ok = true;
    const int want_row[4] = {3, 0, -1, -1};
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 3; i++)
            ok &= tu_get(y, 0, r / 2, r % 2, i) == (want_row[r] < 0 ? 0.0 : 10 * want_row[r] + i);
    TU_CHECK(ok, "EMBED rows (and zeros for out-of-range ids)");
out:
    ctx_free(&c);
}

static void test_rms_norm(void) {
    ctx c = ctx_new();
    sisa_tensor *x = input(&c, "x", SISA_F32, 1, 1, 2, 2);
    sisa_tensor *w = input(&c, "w", SISA_F32, 1, 1, 1, 2);
    sisa_tensor *y = sisa_rms_norm(c.g, x, w, 1e-6f);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(x, (double[]){3, 4, 0, 0});
    tu_fill_values(w, (double[]){1, 2});
    if (!ctx_run(&c)) goto out;
    double r = 1.0 / sqrt(12.5 + (double)1e-6f);
    TU_CHECK_NEAR(tu_get(y, 0, 0, 0, 0), 3 * r, 1e-7, "rms_norm [3,4]·[1,2] [0]");
    TU_CHECK_NEAR(tu_get(y, 0, 0, 0, 1), 8 * r, 1e-7, "rms_norm [3,4]·[1,2] [1]");
    TU_CHECK(tu_get(y, 0, 0, 1, 0) == 0.0 && tu_get(y, 0, 0, 1, 1) == 0.0, "rms_norm of zeros");
out:
    ctx_free(&c);
}

static void test_rope(void) {
    ctx c = ctx_new();
    /* known vector: D = 4, pair 0 has frequency 1, pair 1 has 10000^(-1/2) = 0.01 */
    sisa_tensor *x = input(&c, "x", SISA_F32, 1, 2, 1, 4);
    sisa_tensor *y = sisa_rope(c.g, x, 10000.0f, 1); /* positions 1, 2 */
    /* relative position: RoPE(q, a)·RoPE(k, b) depends on a - b only */
    const int64_t D = 64;
    sisa_tensor *q = input(&c, "q", SISA_F32, 1, 1, 1, D),
                *k = input(&c, "k", SISA_F32, 1, 1, 1, D);
    sisa_tensor *q3 = sisa_rope(c.g, q, 10000.0f, 3), *k7 = sisa_rope(c.g, k, 10000.0f, 7);
    sisa_tensor *q103 = sisa_rope(c.g, q, 10000.0f, 103), *k107 = sisa_rope(c.g, k, 10000.0f, 107);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(x, (double[]){1, 0, 0, 1, 1, 0, 0, 1});
    tu_rng r = tu_rng_new(SEED);
    tu_fill_normal(q, &r, 0, 1);
    tu_fill_normal(k, &r, 0, 1);
    if (!ctx_run(&c)) goto out;
    for (int t = 0; t < 2; t++) {
        double p = 1 + t;
        const double want[4] = {cos(p), sin(p), -sin(0.01 * p), cos(0.01 * p)};
        for (int i = 0; i < 4; i++)
            TU_CHECK_NEAR(tu_get(y, 0, t, 0, i), want[i], 1e-7, "rope known vector");
    }
    double d1 = 0, d2 = 0, nq = 0, nq3 = 0;
    for (int64_t i = 0; i < D; i++) {
        d1 += tu_get(q3, 0, 0, 0, i) * tu_get(k7, 0, 0, 0, i);
        d2 += tu_get(q103, 0, 0, 0, i) * tu_get(k107, 0, 0, 0, i);
        nq += tu_get(q, 0, 0, 0, i) * tu_get(q, 0, 0, 0, i);
        nq3 += tu_get(q3, 0, 0, 0, i) * tu_get(q3, 0, 0, 0, i);
    }
    TU_CHECK_NEAR(d1, d2, 1e-5 * D, "rope: dot depends only on relative position");
    TU_CHECK_NEAR(nq3, nq, 1e-5 * nq, "rope preserves the norm");
    tu_note("rope relative-position dot difference %.3g (f32 outputs)", fabs(d1 - d2));
out:
    ctx_free(&c);
}

static void test_add_scale_swiglu(void) {
    ctx c = ctx_new();
    sisa_tensor *a = input(&c, "a", SISA_F32, 1, 1, 2, 3),
                *b = input(&c, "b", SISA_F32, 1, 1, 1, 3);
    sisa_tensor *sum = sisa_add(c.g, a, b);
    sisa_tensor *half = sisa_scale(c.g, a, 0.5f);
    sisa_tensor *gate = input(&c, "gate", SISA_F32, 1, 1, 1, 3),
                *up = input(&c, "up", SISA_F32, 1, 1, 1, 3);
    sisa_tensor *sw = sisa_swiglu(c.g, gate, up);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(a, (double[]){1, 2, 3, 4, 5, 6});
    tu_fill_values(b, (double[]){10, 20, 30});
    tu_fill_values(gate, (double[]){0, 1, -1});
    tu_fill_values(up, (double[]){1, 2, 3});
    if (!ctx_run(&c)) goto out;
    const double want_sum[6] = {11, 22, 33, 14, 25, 36};
    bool ok = true;
    for (int i = 0; i < 6; i++) {
        ok &= tu_get(sum, 0, 0, i / 3, i % 3) == want_sum[i];
        ok &= tu_get(half, 0, 0, i / 3, i % 3) == (i + 1) * 0.5;
    }
    TU_CHECK(ok, "ADD with broadcast, SCALE");
    TU_CHECK(tu_get(sw, 0, 0, 0, 0) == 0.0, "silu(0) = 0");
    TU_CHECK_NEAR(tu_get(sw, 0, 0, 0, 1), 2.0 / (1.0 + exp(-1.0)), 1e-7, "silu(1)·2");
    TU_CHECK_NEAR(tu_get(sw, 0, 0, 0, 2), 3.0 * -1.0 / (1.0 + exp(1.0)), 1e-7, "silu(-1)·3");
out:
    ctx_free(&c);
}

static void test_matmul(void) {
    ctx c = ctx_new();
    sisa_tensor *a = input(&c, "a", SISA_F32, 2, 1, 2, 3);   /* batch 2 */
    sisa_tensor *bt = input(&c, "bt", SISA_F32, 1, 1, 3, 2); /* b stored transposed */
    sisa_tensor *b = sisa_permute(c.g, bt, 0, 1, 3, 2);      /* (1,1,2,3), strided */
    sisa_tensor *y = sisa_matmul(c.g, a, b);                 /* b broadcasts over the batch */
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(a, (double[]){1, 2, 3, 4, 5, 6, 2, 4, 6, 8, 10, 12});
    tu_fill_values(bt, (double[]){1, 2, 0, 1, -1, 0}); /* b = [[1,0,-1],[2,1,0]] */
    if (!ctx_run(&c)) goto out;
    const double want[8] = {-2, 4, -2, 13, -4, 8, -4, 26};
    bool ok = true;
    for (int i = 0; i < 8; i++) ok &= tu_get(y, i / 4, 0, (i / 2) % 2, i % 2) == want[i];
    TU_CHECK(ok, "MATMUL a·bᵀ, broadcast b, strided b");
out:
    ctx_free(&c);
}

static void test_softmax(void) {
    ctx c = ctx_new();
    sisa_tensor *x = input(&c, "x", SISA_F32, 1, 1, 4, 3);
    sisa_tensor *y = sisa_softmax(c.g, x);
    sisa_tensor *xr = input(&c, "xr", SISA_F32, 1, 2, 5, 17);
    sisa_tensor *yr = sisa_softmax(c.g, xr);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(x, (double[]){0, log(2.0), 0, 1000, 1000, -INFINITY, -INFINITY, -INFINITY,
                                 -INFINITY, 1, NAN, 2});
    tu_rng r = tu_rng_new(SEED);
    tu_fill_normal(xr, &r, 0, 3);
    if (!ctx_run(&c)) goto out;
    const double want[9] = {0.25, 0.5, 0.25, 0.5, 0.5, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++)
        TU_CHECK_NEAR(tu_get(y, 0, 0, i / 3, i % 3), want[i], 1e-7, "softmax hand rows");
    TU_CHECK(isnan(tu_get(y, 0, 0, 3, 0)) && isnan(tu_get(y, 0, 0, 3, 2)),
             "a NaN makes the softmax row NaN");
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 5; t++) {
            double s = 0;
            for (int j = 0; j < 17; j++) s += tu_get(yr, 0, b, t, j);
            if (fabs(s - 1) > worst) worst = fabs(s - 1);
        }
    TU_CHECK(worst < 1e-6, "softmax rows sum to 1 (worst |sum - 1| = %.3g)", worst);
    tu_note("softmax worst |row sum - 1| = %.3g (f32 outputs)", worst);
out:
    ctx_free(&c);
}

static void test_argmax(void) {
    ctx c = ctx_new();
    sisa_tensor *x = input(&c, "x", SISA_F32, 1, 1, 5, 4);
    sisa_tensor *y = sisa_argmax(c.g, x);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(x, (double[]){1,         3,         3,         2,         /* tie: first */
                                 -INFINITY, -INFINITY, -INFINITY, -INFINITY, /* 0 */
                                 1,         NAN,       5,         NAN,       /* first NaN */
                                 -1,        -2,        -0.5,      -3,        NAN, 1, 2, 3});
    if (!ctx_run(&c)) goto out;
    const int want[5] = {1, 0, 1, 2, 0};
    for (int i = 0; i < 5; i++)
        TU_CHECK(tu_get(y, 0, 0, i, 0) == want[i], "argmax row %d: got %g want %d", i,
                 tu_get(y, 0, 0, i, 0), want[i]);
out:
    ctx_free(&c);
}

/* ================================ SISA ops, by hand ================================ */

static void test_ssm_decay(void) {
    ctx c = ctx_new();
    const int B = 2, T = 3, H = 3;
    sisa_tensor *a = input(&c, "a", SISA_F32, 1, B, T, H);
    sisa_tensor *bias = input(&c, "bias", SISA_F32, 1, 1, 1, H);
    sisa_tensor *g0 = input(&c, "g0", SISA_F32, 1, 1, B, H);
    sisa_tensor *g = sisa_ssm_decay(c.g, a, bias, NULL);
    sisa_tensor *gc = sisa_ssm_decay(c.g, a, bias, g0);
    if (!ctx_bind(&c)) goto out;
    tu_fill_const(a, 0.0);
    tu_fill_values(bias, (double[]){0, 800, -30}); /* softplus = ln 2, 800 (no overflow), ~e^-30 */
    tu_fill_values(g0, (double[]){1.5, 1.5, 1.5, -2, -2, -2});
    if (!ctx_run(&c)) goto out;
    const double rate[3] = {log(2.0), 800.0, log1p(exp(-30.0))};
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                double want = -(t + 1) * rate[h];
                TU_CHECK_NEAR(tu_get(g, 0, b, h, t), want, 1e-6 * fabs(want),
                              "g = -(t+1)·softplus");
                double wc = (b == 0 ? 1.5 : -2.0) + want;
                TU_CHECK_NEAR(tu_get(gc, 0, b, h, t), wc, 1e-6 * fabs(wc), "g with carry-in g0");
            }
out:
    ctx_free(&c);
}

/*
 * One head, d_s = 2, T = 2, d_h = 16 (d_h^(1/4) = 2), softplus(lambda_raw) = 1, so s = 2.
 * g = [-1, -3] -> c = -2, u = [1, -1]; theta = [0.5, 0.25] -> Phi = [0.5, 0.75] (+ Phi0).
 */
static void test_ssm_channels_hand(void) {
    ctx c = ctx_new();
    sisa_tensor *Bs = input(&c, "Bs", SISA_F32, 1, 1, 2, 2),
                *Cs = input(&c, "Cs", SISA_F32, 1, 1, 2, 2);
    sisa_tensor *th = input(&c, "theta", SISA_F32, 1, 1, 2, 1),
                *g = input(&c, "g", SISA_F32, 1, 1, 1, 2);
    sisa_tensor *lr = input(&c, "lambda_raw", SISA_F32, 1, 1, 1, 1);
    sisa_tensor *phi0 = input(&c, "phi0", SISA_F32, 1, 1, 1, 1);
    sisa_tensor *aug =
        sisa_ssm_channels(c.g, Bs, Cs, th, g, lr, NULL, SISA_SSM_AUGMENTED, 16, 11.0f);
    sisa_tensor *clamped =
        sisa_ssm_channels(c.g, Bs, Cs, th, g, lr, NULL, SISA_SSM_AUGMENTED, 16, 0.5f);
    sisa_tensor *fac =
        sisa_ssm_channels(c.g, Bs, Cs, th, g, lr, phi0, SISA_SSM_FACTORED, 16, 11.0f);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(Bs, (double[]){1, 1, 2, 0});
    tu_fill_values(Cs, (double[]){1, 0, 0, 1});
    tu_fill_values(th, (double[]){0.5, 0.25});
    tu_fill_values(g, (double[]){-1, -3});
    tu_fill_values(lr, (double[]){log(exp(1.0) - 1.0)});
    tu_fill_values(phi0, (double[]){0.1});
    if (!ctx_run(&c)) goto out;
    const double s = 2.0 * sqrt(softplus_naive((float)log(exp(1.0) - 1.0)));
    /* the closed form of [s·Cbar | s·Bbar] for u = (u0, u1), Phi = (p0, p1) */
    for (int variant = 0; variant < 3; variant++) {
        const sisa_tensor *y = variant == 0 ? aug : variant == 1 ? clamped : fac;
        const double u0 = variant == 0 ? 1 : variant == 1 ? 0.5 : 0, u1 = -u0;
        const double p0 = variant == 2 ? 0.6 : 0.5, p1 = variant == 2 ? 0.85 : 0.75;
        const double want[2][4] = {
            {s * exp(u0) * cos(p0), s * exp(u0) * sin(p0),                            /* Cs (1,0) */
             s * exp(-u0) * (cos(p0) - sin(p0)), s * exp(-u0) * (sin(p0) + cos(p0))}, /* Bs (1,1) */
            {s * exp(u1) * -sin(p1), s * exp(u1) * cos(p1),                           /* Cs (0,1) */
             s * exp(-u1) * 2 * cos(p1), s * exp(-u1) * 2 * sin(p1)},                 /* Bs (2,0) */
        };
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 4; i++)
                TU_CHECK_NEAR(tu_get(y, 0, 0, t, i), want[t][i], 1e-6 * (1 + fabs(want[t][i])),
                              variant == 0   ? "SSM_CHANNELS augmented"
                              : variant == 1 ? "SSM_CHANNELS clamped"
                                             : "SSM_CHANNELS factored + Phi0");
    }
out:
    ctx_free(&c);
}

/* FACTORED channels have no whole-sequence quantity, so they can be computed in chunks with the
 * carries g0 and Phi0 (what decoding does): two calls over [0,T1) and [T1,T) == one call. */
static void test_ssm_channels_chunked(void) {
    ctx c = ctx_new();
    const int64_t B = 2, H = 3, ds = 4, T = 13, T1 = 5, T2 = T - T1;
    sisa_tensor *a = input(&c, "a", SISA_F32, 1, B, T, H),
                *bias = input(&c, "bias", SISA_F32, 1, 1, 1, H);
    sisa_tensor *Bs = input(&c, "Bs", SISA_F32, 1, B, T, H * ds),
                *Cs = input(&c, "Cs", SISA_F32, 1, B, T, H * ds);
    sisa_tensor *th = input(&c, "theta", SISA_F32, 1, B, T, H * ds / 2);
    sisa_tensor *lr = input(&c, "lambda_raw", SISA_F32, 1, 1, 1, H);
    sisa_tensor *phi0 = input(&c, "phi0", SISA_F32, 1, 1, B, H * ds / 2); /* Phi after chunk 1 */
    sisa_tensor *g = sisa_ssm_decay(c.g, a, bias, NULL);
    sisa_tensor *full =
        sisa_ssm_channels(c.g, Bs, Cs, th, g, lr, NULL, SISA_SSM_FACTORED, 64, 11.0f);
    /* chunk views along time */
#define TIME_SLICE(x, t0, n)                                                                       \
    sisa_view(c.g, (x), (int64_t[4]){1, B, (n), (x)->shape[3]}, (x)->stride,                       \
              (size_t)((t0) * (x)->stride[2]))
    sisa_tensor *a1 = TIME_SLICE(a, 0, T1), *a2 = TIME_SLICE(a, T1, T2);
    sisa_tensor *g1 = sisa_ssm_decay(c.g, a1, bias, NULL);
    sisa_tensor *g_last =
        sisa_view(c.g, g1, (int64_t[4]){1, 1, B, H},
                  (int64_t[4]){g1->stride[0], g1->stride[0], g1->stride[1], g1->stride[2]},
                  (size_t)((T1 - 1) * g1->stride[3]));
    sisa_tensor *g2 = sisa_ssm_decay(c.g, a2, bias, g_last);
    sisa_tensor *c1 =
        sisa_ssm_channels(c.g, TIME_SLICE(Bs, 0, T1), TIME_SLICE(Cs, 0, T1), TIME_SLICE(th, 0, T1),
                          g1, lr, NULL, SISA_SSM_FACTORED, 64, 11.0f);
    sisa_tensor *c2 =
        sisa_ssm_channels(c.g, TIME_SLICE(Bs, T1, T2), TIME_SLICE(Cs, T1, T2),
                          TIME_SLICE(th, T1, T2), g2, lr, phi0, SISA_SSM_FACTORED, 64, 11.0f);
#undef TIME_SLICE
    if (!ctx_bind(&c)) goto out;
    tu_rng r = tu_rng_new(SEED + 1);
    tu_fill_normal(a, &r, 0, 1);
    tu_fill_normal(bias, &r, -1, 1);
    tu_fill_normal(Bs, &r, 0, 1);
    tu_fill_normal(Cs, &r, 0, 1);
    tu_fill_normal(th, &r, 0, 0.3);
    tu_fill_normal(lr, &r, -1, 0.5);
    for (int64_t b = 0; b < B; b++)
        for (int64_t m = 0; m < H * ds / 2; m++) {
            double phi = 0;
            for (int64_t t = 0; t < T1; t++) phi += tu_get(th, 0, b, t, m);
            tu_set(phi0, 0, 0, b, m, phi);
        }
    if (!ctx_run(&c)) goto out;
    double worst_g = 0, worst_c = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                double gp = t < T1 ? tu_get(g1, 0, b, h, t) : tu_get(g2, 0, b, h, t - T1);
                worst_g = fmax(worst_g, fabs(gp - tu_get(g, 0, b, h, t)));
                for (int64_t i = 0; i < 2 * ds; i++) {
                    double cp = t < T1 ? tu_get(c1, b, h, t, i) : tu_get(c2, b, h, t - T1, i);
                    worst_c = fmax(worst_c, fabs(cp - tu_get(full, b, h, t, i)));
                }
            }
    TU_CHECK(worst_g < 1e-5 && worst_c < 1e-5, "chunked == whole: |dg| %.3g, |dchannels| %.3g",
             worst_g, worst_c);
    tu_note("chunked SSM_DECAY/SSM_CHANNELS(FACTORED) vs whole: max |dg| %.3g, max |dch| %.3g",
            worst_g, worst_c);
out:
    ctx_free(&c);
}

static void test_augment(void) {
    ctx c = ctx_new();
    sisa_tensor *a = input(&c, "a", SISA_F32, 1, 1, 2, 2),
                *b = input(&c, "b", SISA_F32, 1, 1, 2, 1);
    sisa_tensor *y = sisa_augment(c.g, a, b, 5);
    if (!ctx_bind(&c)) goto out;
    tu_fill_values(a, (double[]){1, 2, 3, 4});
    tu_fill_values(b, (double[]){5, 6});
    if (!ctx_run(&c)) goto out;
    const double want[10] = {1, 2, 5, 0, 0, 3, 4, 6, 0, 0};
    bool ok = true;
    for (int i = 0; i < 10; i++) ok &= tu_get(y, 0, 0, i / 5, i % 5) == want[i];
    TU_CHECK(ok, "AUGMENT [a | b | 0 0]");
out:
    ctx_free(&c);
}

/* ================================ SDPA ================================ */

static void test_sdpa_simple(void) {
    ctx c = ctx_new();
    const int64_t B = 2, H = 3, Tq = 3, Tk = 5, D = 8, Dv = 6;
    tu_rng r = tu_rng_new(SEED + 2);
    /* one key: the output is V whatever the scores */
    sisa_tensor *q = input(&c, "q", SISA_F32, B, H, Tq, D),
                *k1 = input(&c, "k1", SISA_F32, B, H, 1, D);
    sisa_tensor *v1 = input(&c, "v1", SISA_F32, B, H, 1, Dv);
    sisa_tensor *y1 = sisa_sdpa(c.g, q, k1, v1, &(sisa_sdpa_params){.scale = 0.3f, .causal = 1});
    /* zero queries: uniform weights over the visible keys j <= p0 + i */
    sisa_tensor *q0 = input(&c, "q0", SISA_F32, B, H, Tq, D),
                *k = input(&c, "k", SISA_F32, B, H, Tk, D);
    sisa_tensor *v = input(&c, "v", SISA_F32, B, H, Tk, Dv);
    sisa_tensor *ym =
        sisa_sdpa(c.g, q0, k, v, &(sisa_sdpa_params){.scale = 1.0f, .causal = 1, .p0 = 1});
    /* a row whose every score is -inf gives zeros: q = +inf·e0 against k = -1 */
    sisa_tensor *qi = input(&c, "qinf", SISA_F32, 1, 1, 1, 2),
                *kn = input(&c, "kneg", SISA_F32, 1, 1, 2, 2);
    sisa_tensor *vz = input(&c, "vz", SISA_F32, 1, 1, 2, 3);
    sisa_tensor *yz = sisa_sdpa(c.g, qi, kn, vz, &(sisa_sdpa_params){.scale = 1.0f});
    /* form B with d_content = Dqk decays nothing: equals form A whatever g is */
    sisa_tensor *gq = input(&c, "gq", SISA_F32, 1, B, H, Tq),
                *gk = input(&c, "gk", SISA_F32, 1, B, H, Tk);
    sisa_tensor *yA =
        sisa_sdpa(c.g, q, k, v, &(sisa_sdpa_params){.scale = 0.35f, .causal = 1, .p0 = 2});
    sisa_tensor *yB = sisa_sdpa(
        c.g, q, k, v,
        &(sisa_sdpa_params){
            .scale = 0.35f, .causal = 1, .p0 = 2, .gq = gq, .gk = gk, .d_content = (int32_t)D});
    if (!ctx_bind(&c)) goto out;
    tu_fill_normal(q, &r, 0, 2);
    tu_fill_normal(k1, &r, 0, 2);
    tu_fill_normal(v1, &r, 0, 1);
    tu_fill_const(q0, 0);
    tu_fill_normal(k, &r, 0, 1);
    tu_fill_normal(v, &r, 0, 1);
    tu_fill_values(qi, (double[]){INFINITY, 0});
    tu_fill_const(kn, -1);
    tu_fill_normal(vz, &r, 0, 1);
    tu_fill_normal(gq, &r, 0, 3);
    tu_fill_normal(gk, &r, 0, 3);
    if (!ctx_run(&c)) goto out;
    double e1 = 0, em = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++)
                for (int64_t d = 0; d < Dv; d++) {
                    e1 = fmax(e1, fabs(tu_get(y1, b, i, h, d) - tu_get(v1, b, h, 0, d)));
                    double mean = 0;
                    for (int64_t j = 0; j <= 1 + i; j++)
                        mean += tu_get(v, b, h, j, d) / (double)(2 + i);
                    em = fmax(em, fabs(tu_get(ym, b, i, h, d) - mean));
                }
    TU_CHECK(e1 < 1e-6, "SDPA of one key == V (max err %.3g)", e1);
    TU_CHECK(em < 1e-6, "SDPA with zero queries == causal mean of V (max err %.3g)", em);
    bool zeros = true;
    for (int d = 0; d < 3; d++) zeros &= tu_get(yz, 0, 0, 0, d) == 0.0;
    TU_CHECK(zeros, "SDPA row with every score -inf gives zeros");
    TU_CHECK(tu_max_abs_diff(yA, yB) == 0.0, "form B with d_content = Dqk == form A");
out:
    ctx_free(&c);
}

/* Non-causal SDPA == softmax(scale·Q·Kᵀ)·V built from MATMUL, SCALE, SOFTMAX and a transposed
 * view of V; and a decode step (Tq = 1, p0 = Tk - 1) == the last row of the causal prefill. */
static void test_sdpa_composed(void) {
    ctx c = ctx_new();
    const int64_t B = 2, H = 2, T = 7, D = 24, Dv = 16;
    const float scale = 0.25f;
    sisa_tensor *q = input(&c, "q", SISA_F32, B, H, T, D),
                *k = input(&c, "k", SISA_F32, B, H, T, D);
    sisa_tensor *v = input(&c, "v", SISA_F32, B, H, T, Dv);
    sisa_tensor *y = sisa_sdpa(c.g, q, k, v, &(sisa_sdpa_params){.scale = scale});
    sisa_tensor *p = sisa_softmax(c.g, sisa_scale(c.g, sisa_matmul(c.g, q, k), scale));
    sisa_tensor *yc = sisa_matmul(c.g, p, sisa_permute(c.g, v, 0, 1, 3, 2)); /* (B,H,T,Dv) */
    sisa_tensor *yc_t = sisa_permute(c.g, yc, 0, 2, 1, 3);                   /* (B,T,H,Dv) */
    sisa_tensor *prefill =
        sisa_sdpa(c.g, q, k, v, &(sisa_sdpa_params){.scale = scale, .causal = 1});
    sisa_tensor *q_last =
        sisa_view(c.g, q, (int64_t[4]){B, H, 1, D}, q->stride, (size_t)((T - 1) * q->stride[2]));
    sisa_tensor *step =
        sisa_sdpa(c.g, q_last, k, v,
                  &(sisa_sdpa_params){.scale = scale, .causal = 1, .p0 = (int32_t)(T - 1)});
    if (!ctx_bind(&c)) goto out;
    tu_rng r = tu_rng_new(SEED + 3);
    tu_fill_normal(q, &r, 0, 1);
    tu_fill_normal(k, &r, 0, 1);
    tu_fill_normal(v, &r, 0, 1);
    if (!ctx_run(&c)) goto out;
    double e = tu_norm_err(y, yc_t);
    TU_CHECK(e < 1e-6, "SDPA == MATMUL/SCALE/SOFTMAX/MATMUL (normalised err %.3g)", e);
    tu_note("SDPA vs composed ops: normalised error %.3g", e);
    double es = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t d = 0; d < Dv; d++)
                es = fmax(es, fabs(tu_get(step, b, 0, h, d) - tu_get(prefill, b, T - 1, h, d)));
    TU_CHECK(es == 0.0, "decode step (p0 = T-1) == last prefill row (max diff %.3g)", es);
out:
    ctx_free(&c);
}

/* ================================ the SISA identities ================================ */

/* One SISA attention layer's inputs after the projections, and SISA.md §1 computed directly. */
typedef struct sisa_case {
    int64_t B, H, T, dh, ds, W; /* W = width of Qhat/Khat (>= dh + ds) */
    double rate_bias; /* alpha bias: sets how fast g falls, hence whether the clamp acts */
    float clamp;
    /* leaves */
    sisa_tensor *q, *k, *v, *Bs, *Cs, *theta, *a, *bias, *lambda_raw;
    /* SISA.md computed here in fp64 from the leaves' stored values */
    double *g, *u, *phi, *rotC, *rotB, *lambda;
} sisa_case;

#define G(sc, b, h, t) (sc)->g[((b) * (sc)->H + (h)) * (sc)->T + (t)]
#define U(sc, b, h, t) (sc)->u[((b) * (sc)->H + (h)) * (sc)->T + (t)]
#define PHI(sc, b, h, t, m)                                                                        \
    (sc)->phi[(((b) * (sc)->H + (h)) * (sc)->T + (t)) * ((sc)->ds / 2) + (m)]
#define ROTC(sc, b, h, t, i) (sc)->rotC[(((b) * (sc)->H + (h)) * (sc)->T + (t)) * (sc)->ds + (i)]
#define ROTB(sc, b, h, t, i) (sc)->rotB[(((b) * (sc)->H + (h)) * (sc)->T + (t)) * (sc)->ds + (i)]

static void case_leaves(ctx *c, sisa_case *sc) {
    const int64_t B = sc->B, H = sc->H, T = sc->T;
    sc->q = input(c, "q", SISA_F32, B, H, T, sc->dh);
    sc->k = input(c, "k", SISA_F32, B, H, T, sc->dh);
    sc->v = input(c, "v", SISA_F32, B, H, T, sc->dh);
    sc->Bs = input(c, "Bs", SISA_F32, 1, B, T, H * sc->ds);
    sc->Cs = input(c, "Cs", SISA_F32, 1, B, T, H * sc->ds);
    sc->theta = input(c, "theta", SISA_F32, 1, B, T, H * sc->ds / 2);
    sc->a = input(c, "alpha_logits", SISA_F32, 1, B, T, H);
    sc->bias = input(c, "alpha_bias", SISA_F32, 1, 1, 1, H);
    sc->lambda_raw = input(c, "lambda_raw", SISA_F32, 1, 1, 1, H);
}

static void case_fill(sisa_case *sc, uint64_t seed) {
    tu_rng r = tu_rng_new(seed);
    tu_fill_normal(sc->q, &r, 0, 1);
    tu_fill_normal(sc->k, &r, 0, 1);
    tu_fill_normal(sc->v, &r, 0, 1);
    tu_fill_normal(sc->Bs, &r, 0, 1);
    tu_fill_normal(sc->Cs, &r, 0, 1);
    tu_fill_normal(sc->theta, &r, 0, 0.5);
    tu_fill_normal(sc->a, &r, 0, 0.5);
    tu_fill_normal(sc->bias, &r, sc->rate_bias, 0.2);
    tu_fill_normal(sc->lambda_raw, &r, -1, 0.5);
}

/* g, u, Phi, Rot(Phi)Cs, Rot(Phi)Bs, lambda straight from SISA.md §1, in fp64. */
static bool case_direct(sisa_case *sc) {
    const int64_t B = sc->B, H = sc->H, T = sc->T, ds = sc->ds;
    sc->g = malloc(sizeof(double) * B * H * T);
    sc->u = malloc(sizeof(double) * B * H * T);
    sc->phi = malloc(sizeof(double) * B * H * T * (ds / 2));
    sc->rotC = malloc(sizeof(double) * B * H * T * ds);
    sc->rotB = malloc(sizeof(double) * B * H * T * ds);
    sc->lambda = malloc(sizeof(double) * H);
    if (!sc->g || !sc->u || !sc->phi || !sc->rotC || !sc->rotB || !sc->lambda) return false;
    for (int64_t h = 0; h < H; h++)
        sc->lambda[h] = softplus_naive(tu_get(sc->lambda_raw, 0, 0, 0, h));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            double g = 0, gmax = -INFINITY, gmin = INFINITY;
            for (int64_t t = 0; t < T; t++) {
                g += -softplus_naive(tu_get(sc->a, 0, b, t, h) + tu_get(sc->bias, 0, 0, 0, h));
                G(sc, b, h, t) = g;
                gmax = fmax(gmax, g);
                gmin = fmin(gmin, g);
                for (int64_t m = 0; m < ds / 2; m++) {
                    double prev = t ? PHI(sc, b, h, t - 1, m) : 0.0;
                    double phi = PHI(sc, b, h, t, m) =
                        prev + tu_get(sc->theta, 0, b, t, h * ds / 2 + m);
                    double c0 = tu_get(sc->Cs, 0, b, t, h * ds + 2 * m),
                           c1 = tu_get(sc->Cs, 0, b, t, h * ds + 2 * m + 1);
                    double b0 = tu_get(sc->Bs, 0, b, t, h * ds + 2 * m),
                           b1 = tu_get(sc->Bs, 0, b, t, h * ds + 2 * m + 1);
                    ROTC(sc, b, h, t, 2 * m) = c0 * cos(phi) - c1 * sin(phi);
                    ROTC(sc, b, h, t, 2 * m + 1) = c0 * sin(phi) + c1 * cos(phi);
                    ROTB(sc, b, h, t, 2 * m) = b0 * cos(phi) - b1 * sin(phi);
                    ROTB(sc, b, h, t, 2 * m + 1) = b0 * sin(phi) + b1 * cos(phi);
                }
            }
            double centre = (gmax + gmin) / 2;
            for (int64_t t = 0; t < T; t++)
                U(sc, b, h, t) = fmin(fmax(G(sc, b, h, t) - centre, -sc->clamp), sc->clamp);
        }
    return true;
}

static void case_free(sisa_case *sc) {
    free(sc->g);
    free(sc->u);
    free(sc->phi);
    free(sc->rotC);
    free(sc->rotB);
    free(sc->lambda);
}

static double case_max_u(const sisa_case *sc) { /* max |g - c| before the clamp */
    double worst = 0;
    for (int64_t b = 0; b < sc->B; b++)
        for (int64_t h = 0; h < sc->H; h++) {
            double gmax = -INFINITY, gmin = INFINITY;
            for (int64_t t = 0; t < sc->T; t++) {
                gmax = fmax(gmax, G(sc, b, h, t));
                gmin = fmin(gmin, G(sc, b, h, t));
            }
            worst = fmax(worst, (gmax - gmin) / 2);
        }
    return worst;
}

/* The score of SISA.md §1: q·k/sqrt(d_h) + lambda·decay·(Rot C_i)·(Rot B_j), with
 * decay = exp(g_i - g_j) (unclamped) or exp(u_i - u_j) (the clamped form A). */
static double case_score(const sisa_case *sc, int64_t b, int64_t h, int64_t i, int64_t j,
                         bool clamped) {
    double qk = 0, cb = 0;
    for (int64_t d = 0; d < sc->dh; d++)
        qk += tu_get(sc->q, b, h, i, d) * tu_get(sc->k, b, h, j, d);
    for (int64_t d = 0; d < sc->ds; d++) cb += ROTC(sc, b, h, i, d) * ROTB(sc, b, h, j, d);
    double decay =
        clamped ? exp(U(sc, b, h, i) - U(sc, b, h, j)) : exp(G(sc, b, h, i) - G(sc, b, h, j));
    return qk / sqrt((double)sc->dh) + sc->lambda[h] * decay * cb;
}

/* The same score as a Mamba kernel writes it (j <= i):
 *   q·k/sqrt(d_h) + lambda·prod_{k=j+1..i} alpha_k · Cs_i·Rot(Phi_j - Phi_i)·Bs_j,
 * alpha_k = exp(-softplus(x_k)) = 1/(1 + e^x_k). No g, no exponent differences. */
static double case_score_mamba(const sisa_case *sc, int64_t b, int64_t h, int64_t i, int64_t j) {
    const int64_t ds = sc->ds;
    double qk = 0, prod = 1, kern = 0;
    for (int64_t d = 0; d < sc->dh; d++)
        qk += tu_get(sc->q, b, h, i, d) * tu_get(sc->k, b, h, j, d);
    for (int64_t t = j + 1; t <= i; t++)
        prod *= 1.0 / (1.0 + exp(tu_get(sc->a, 0, b, t, h) + tu_get(sc->bias, 0, 0, 0, h)));
    for (int64_t m = 0; m < ds / 2; m++) {
        double delta = PHI(sc, b, h, j, m) - PHI(sc, b, h, i, m);
        double c0 = tu_get(sc->Cs, 0, b, i, h * ds + 2 * m),
               c1 = tu_get(sc->Cs, 0, b, i, h * ds + 2 * m + 1);
        double b0 = tu_get(sc->Bs, 0, b, j, h * ds + 2 * m),
               b1 = tu_get(sc->Bs, 0, b, j, h * ds + 2 * m + 1);
        kern += c0 * (b0 * cos(delta) - b1 * sin(delta)) + c1 * (b0 * sin(delta) + b1 * cos(delta));
    }
    return qk / sqrt((double)sc->dh) + sc->lambda[h] * prod * kern;
}

/* Causal attention from case_score, directly: Y[b,i,h,:] = sum_{j<=i} softmax(score) V_j. */
static void case_attention(const sisa_case *sc, bool clamped, double *y /* (B,T,H,dh) */) {
    const int64_t T = sc->T, dh = sc->dh;
    double *s = malloc(sizeof(double) * T);
    if (!s) return;
    for (int64_t b = 0; b < sc->B; b++)
        for (int64_t h = 0; h < sc->H; h++)
            for (int64_t i = 0; i < T; i++) {
                double max = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= i; j++)
                    max = fmax(max, s[j] = case_score(sc, b, h, i, j, clamped));
                for (int64_t j = 0; j <= i; j++) sum += s[j] = exp(s[j] - max);
                for (int64_t d = 0; d < dh; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j <= i; j++) acc += s[j] * tu_get(sc->v, b, h, j, d);
                    y[((b * T + i) * sc->H + h) * dh + d] = acc / sum;
                }
            }
    free(s);
}

typedef struct sisa_nodes {
    sisa_tensor *g, *ch_aug, *ch_fac, *qhat, *khat, *scores, *yA, *yB;
} sisa_nodes;

/* The engine's way: SSM_DECAY -> SSM_CHANNELS (both modes) -> AUGMENT -> scores and SDPA. */
static sisa_nodes case_graph(ctx *c, sisa_case *sc) {
    sisa_nodes n = {0};
    sisa_graph *g = c->g;
    const int64_t ds = sc->ds;
    const float scale = (float)(1.0 / sqrt((double)sc->dh));
    n.g = sisa_ssm_decay(g, sc->a, sc->bias, NULL);
    n.ch_aug = sisa_ssm_channels(g, sc->Bs, sc->Cs, sc->theta, n.g, sc->lambda_raw, NULL,
                                 SISA_SSM_AUGMENTED, (int32_t)sc->dh, sc->clamp);
    n.ch_fac = sisa_ssm_channels(g, sc->Bs, sc->Cs, sc->theta, n.g, sc->lambda_raw, NULL,
                                 SISA_SSM_FACTORED, (int32_t)sc->dh, sc->clamp);
    n.qhat = sisa_augment(g, sc->q, sisa_slice_row(g, n.ch_aug, 0, ds), sc->W);  /* [q | s·Cbar] */
    n.khat = sisa_augment(g, sc->k, sisa_slice_row(g, n.ch_aug, ds, ds), sc->W); /* [k | s·Bbar] */
    n.scores = sisa_scale(g, sisa_matmul(g, n.qhat, n.khat), scale);
    n.yA = sisa_sdpa(g, n.qhat, n.khat, sc->v, &(sisa_sdpa_params){.scale = scale, .causal = 1});
    sisa_tensor *qf = sisa_augment(g, sc->q, sisa_slice_row(g, n.ch_fac, 0, ds), sc->dh + ds);
    sisa_tensor *kf = sisa_augment(g, sc->k, sisa_slice_row(g, n.ch_fac, ds, ds), sc->dh + ds);
    /* gq = gk = g: SDPA takes them as (1,B,H,T), which is SSM_DECAY's layout */
    n.yB = sisa_sdpa(
        g, qf, kf, sc->v,
        &(sisa_sdpa_params){
            .scale = scale, .causal = 1, .gq = n.g, .gk = n.g, .d_content = (int32_t)sc->dh});
    return n;
}

/* Normalised error of the oracle's (B,H,T,T) score matrix against case_score / case_score_mamba. */
static double scores_err(const sisa_case *sc, const sisa_tensor *scores, bool clamped, bool mamba) {
    double num = 0, den = 0;
    for (int64_t b = 0; b < sc->B; b++)
        for (int64_t h = 0; h < sc->H; h++)
            for (int64_t i = 0; i < sc->T; i++)
                for (int64_t j = 0; j < (mamba ? i + 1 : sc->T); j++) {
                    double want = mamba ? case_score_mamba(sc, b, h, i, j)
                                        : case_score(sc, b, h, i, j, clamped);
                    double got = tu_get(scores, b, h, i, j);
                    if (!isfinite(got)) return INFINITY;
                    num += (got - want) * (got - want);
                    den += want * want;
                }
    return sqrt(num / den);
}

static double y_err(const sisa_tensor *y, const double *want) {
    int64_t n = sisa_tensor_nelements(y);
    double *got = malloc(sizeof(double) * n);
    if (!got) return INFINITY;
    tu_read_values(y, got);
    double e = tu_norm_err_values(got, want, n);
    free(got);
    return e;
}

static void run_case(sisa_case sc, uint64_t seed, bool expect_clamp) {
    ctx c = ctx_new();
    case_leaves(&c, &sc);
    sisa_nodes n = case_graph(&c, &sc);
    double *y_unclamped = malloc(sizeof(double) * sc.B * sc.T * sc.H * sc.dh);
    double *y_clamped = malloc(sizeof(double) * sc.B * sc.T * sc.H * sc.dh);
    if (!ctx_bind(&c) || !y_unclamped || !y_clamped) goto out;
    case_fill(&sc, seed);
    if (!ctx_run(&c) || !TU_CHECK(case_direct(&sc), "host memory")) goto out;

    const double umax = case_max_u(&sc);
    char what[160];
    snprintf(what, sizeof what,
             "B=%lld H=%lld T=%lld d_h=%lld d_s=%lld W=%lld seed=%llu max|g-c|=%.2f",
             (long long)sc.B, (long long)sc.H, (long long)sc.T, (long long)sc.dh, (long long)sc.ds,
             (long long)sc.W, (unsigned long long)seed, umax);
    if (!TU_CHECK((umax > sc.clamp) == expect_clamp, "%s: the case should %s the clamp", what,
                  expect_clamp ? "activate" : "not activate"))
        goto out;
    case_attention(&sc, false, y_unclamped);
    case_attention(&sc, true, y_clamped);

    const double e_id = scores_err(&sc, n.scores, expect_clamp, false);
    const double e_fb = y_err(n.yB, y_unclamped); /* form B is the unclamped definition, always */
    const double e_fa = y_err(n.yA, expect_clamp ? y_clamped : y_unclamped);
    const double e_ab = tu_norm_err(n.yA, n.yB);
    TU_CHECK(e_id < 1e-5, "%s: Qhat·Khat/sqrt(d_h) vs %s definition: normalised err %.3g", what,
             expect_clamp ? "clamped" : "unclamped", e_id);
    TU_CHECK(e_fa < 1e-5, "%s: SDPA form A vs direct attention: %.3g", what, e_fa);
    TU_CHECK(e_fb < 1e-5, "%s: SDPA form B vs direct attention: %.3g", what, e_fb);
    if (!expect_clamp) {
        const double e_mamba = scores_err(&sc, n.scores, false, true);
        TU_CHECK(e_mamba < 1e-5, "%s: identity vs the Mamba form prod(alpha)·C·Rot(dPhi)·B: %.3g",
                 what, e_mamba);
        TU_CHECK(e_ab < 1e-5, "%s: form A (augmented) == form B (factored): %.3g", what, e_ab);
        tu_note(
            "identity %s: scores err %.3g (Mamba form %.3g), form A vs B %.3g, A vs direct %.3g, "
            "B vs direct %.3g",
            what, e_id, e_mamba, e_ab, e_fa, e_fb);
    } else {
        const double e_scores_unclamped = scores_err(&sc, n.scores, false, false);
        TU_CHECK(e_ab > 1e-3, "%s: clamp active, yet form A == form B (%.3g)", what, e_ab);
        TU_CHECK(e_scores_unclamped > 1e-3,
                 "%s: clamp active, yet scores match the unclamped definition", what);
        tu_note("clamp active %s: scores vs clamped def %.3g, vs unclamped %.3g; form A vs B %.3g, "
                "A vs clamped direct %.3g, B vs unclamped direct %.3g",
                what, e_id, e_scores_unclamped, e_ab, e_fa, e_fb);
    }
out:
    free(y_unclamped);
    free(y_clamped);
    case_free(&sc);
    ctx_free(&c);
}

static double bias_for_range(double range, int64_t T) { /* alpha bias so that g spans ~range */
    double rate = range / (double)T;                    /* softplus(bias) */
    return log(expm1(rate));
}

static void test_identity(void) {
    const struct {
        int64_t B, H, T, dh, ds, W;
    } shapes[] = {
        {2, 3, 17, 16, 8, 32},   /* padded Qhat/Khat */
        {1, 2, 33, 64, 2, 66},   /* d_s = 2 */
        {1, 1, 113, 64, 16, 80}, /* the published d_h, odd T */
        {1, 2, 1, 64, 16, 80},   /* T = 1 */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        sisa_case sc = {.B = shapes[i].B,
                        .H = shapes[i].H,
                        .T = shapes[i].T,
                        .dh = shapes[i].dh,
                        .ds = shapes[i].ds,
                        .W = shapes[i].W,
                        .clamp = 11.0f};
        sc.rate_bias = bias_for_range(15.0, sc.T); /* g spans ~15: decays up to e^-15, clamp idle */
        run_case(sc, SEED + 10 + i, false);
    }
    sisa_case active = {.B = 2, .H = 2, .T = 33, .dh = 16, .ds = 8, .W = 24, .clamp = 11.0f};
    active.rate_bias = bias_for_range(60.0, active.T); /* g spans ~60: |g - c| up to ~30 */
    run_case(active, SEED + 20, true);
}

/* ================================ dtypes and strides ================================ */

/* The same node computed into f32 from f32 copies of its sources: identical input values, so
 * the twin differs from the node only by the node's final rounding to its dtype. */
static sisa_tensor *f32_twin(sisa_graph *g, const sisa_tensor *n) {
    sisa_tensor *src[SISA_MAX_SRC] = {0};
    for (int i = 0; i < SISA_MAX_SRC; i++)
        if (n->src[i])
            src[i] = n->src[i]->dtype == SISA_F32 || n->src[i]->dtype == SISA_I32
                         ? n->src[i]
                         : sisa_cpy(g, n->src[i], SISA_F32);
    return sisa_graph_node(g, n->op, SISA_F32, n->shape, src, n->fparams, n->iparams);
}

/* Every float op on bf16 / f16 sources and destinations (strided views among the sources) vs
 * its f32 twin: the normalised error is bounded by one rounding, 2^-8 (bf16) / 2^-11 (f16).
 * And in f32, ops on permuted views equal the same ops on contiguous copies exactly. */
static void test_dtypes_and_views(void) {
    const sisa_dtype dts[2] = {SISA_BF16, SISA_F16};
    /* unit roundoff u: |round(r) - r| <= u|r| per element, so the normalised error is <= u
     * (+ 2^-24 for the twin's own f32 rounding) */
    const double tol[2] = {0x1p-8 + 0x1p-23, 0x1p-11 + 0x1p-23};
    for (int di = 0; di < 2; di++) {
        ctx c = ctx_new();
        const sisa_dtype dt = dts[di];
        const int64_t B = 2, H = 2, T = 9, D = 16, ds = 4, V = 11;
        c.g->act_dtype = dt;
        sisa_tensor *x = input(&c, "x", dt, 1, B, T, H * D),
                    *w = input(&c, "w", dt, 1, 1, 1, H * D);
        sisa_tensor *Bs = input(&c, "Bs", dt, 1, B, T, H * ds),
                    *Cs = input(&c, "Cs", dt, 1, B, T, H * ds);
        sisa_tensor *th = input(&c, "theta", dt, 1, B, T, H * ds / 2),
                    *a = input(&c, "a", dt, 1, B, T, H);
        sisa_tensor *bias = input(&c, "bias", dt, 1, 1, 1, H),
                    *lr = input(&c, "lr", SISA_F32, 1, 1, 1, H);
        sisa_tensor *table = input(&c, "table", dt, 1, 1, V, D),
                    *ids = input(&c, "ids", SISA_I32, 1, 1, B, T);
        sisa_tensor *n[16];
        int nn = 0;
        n[nn++] = sisa_cpy(c.g, sisa_permute(c.g, x, 0, 2, 1, 3), dt);
        n[nn++] = sisa_embed(c.g, table, ids);
        sisa_tensor *xn = n[nn++] = sisa_rms_norm(c.g, x, w, 1e-6f);
        n[nn++] = sisa_add(c.g, x, w);
        n[nn++] = sisa_scale(c.g, x, 0.7f);
        n[nn++] = sisa_swiglu(c.g, xn, x);
        n[nn++] = sisa_softmax(c.g, x);
        sisa_tensor *rq = n[nn++] = sisa_rope(c.g, sisa_reshape(c.g, xn, B, T, H, D), 10000.0f, 3);
        sisa_tensor *qh = sisa_permute(c.g, rq, 0, 2, 1, 3); /* (B,H,T,D), strided */
        n[nn++] = sisa_matmul(c.g, qh, qh);
        sisa_tensor *gd = n[nn++] = sisa_ssm_decay(c.g, a, bias, NULL);
        sisa_tensor *ch = n[nn++] =
            sisa_ssm_channels(c.g, Bs, Cs, th, gd, lr, NULL, SISA_SSM_AUGMENTED, (int32_t)D, 11.0f);
        sisa_tensor *qhat = n[nn++] =
            sisa_augment(c.g, qh, sisa_slice_row(c.g, ch, 0, ds), D + ds + 4);
        sisa_tensor *khat = sisa_augment(c.g, qh, sisa_slice_row(c.g, ch, ds, ds), D + ds + 4);
        n[nn++] = sisa_sdpa(c.g, qhat, khat, qh, &(sisa_sdpa_params){.scale = 0.25f, .causal = 1});
        n[nn++] = sisa_sdpa(
            c.g, qhat, khat, qh,
            &(sisa_sdpa_params){
                .scale = 0.25f, .causal = 1, .gq = gd, .gk = gd, .d_content = (int32_t)D});
        sisa_tensor *twin[16];
        for (int i = 0; i < nn; i++) twin[i] = n[i] ? f32_twin(c.g, n[i]) : NULL;
        /* strided vs contiguous, in f32: exact */
        c.g->act_dtype = SISA_F32;
        sisa_tensor *xf = sisa_cpy(c.g, x, SISA_F32);
        sisa_tensor *xt =
            sisa_permute(c.g, sisa_reshape(c.g, xf, B, T, H, D), 0, 2, 1, 3); /* (B,H,T,D) */
        sisa_tensor *xt_c = sisa_cpy(c.g, xt, SISA_F32);
        sisa_tensor *s_view =
            sisa_sdpa(c.g, xt, xt, xt, &(sisa_sdpa_params){.scale = 0.5f, .causal = 1});
        sisa_tensor *s_copy =
            sisa_sdpa(c.g, xt_c, xt_c, xt_c, &(sisa_sdpa_params){.scale = 0.5f, .causal = 1});
        sisa_tensor *m_view = sisa_matmul(c.g, xt, xt), *m_copy = sisa_matmul(c.g, xt_c, xt_c);
        sisa_tensor *r_view = sisa_rope(c.g, xt, 500.0f, 0),
                    *r_copy = sisa_rope(c.g, xt_c, 500.0f, 0);
        if (!ctx_bind(&c)) goto next;
        tu_rng r = tu_rng_new(SEED + 30 + di);
        tu_fill_normal(x, &r, 0, 1);
        tu_fill_normal(w, &r, 1, 0.2);
        tu_fill_normal(Bs, &r, 0, 1);
        tu_fill_normal(Cs, &r, 0, 1);
        tu_fill_normal(th, &r, 0, 0.5);
        tu_fill_normal(a, &r, 0, 0.5);
        tu_fill_normal(bias, &r, -1, 0.2);
        tu_fill_normal(lr, &r, -1, 0.5);
        tu_fill_normal(table, &r, 0, 1);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) tu_set(ids, 0, 0, b, t, (double)((b * T + t) % V));
        if (!ctx_run(&c)) goto next;
        double worst = 0;
        for (int i = 0; i < nn; i++) {
            double e = tu_norm_err(n[i], twin[i]);
            worst = fmax(worst, e);
            TU_CHECK(e < tol[di], "%s %s vs its f32 twin: normalised err %.3g", sisa_dtype_name(dt),
                     sisa_op_name(n[i]->op), e);
        }
        tu_note("%s: %d ops vs their f32 twins: worst normalised err %.3g (bound %.3g)",
                sisa_dtype_name(dt), nn, worst, tol[di]);
        TU_CHECK(tu_max_abs_diff(s_view, s_copy) == 0.0,
                 "SDPA on strided views == on contiguous copies");
        TU_CHECK(tu_max_abs_diff(m_view, m_copy) == 0.0,
                 "MATMUL on strided views == on contiguous copies");
        TU_CHECK(tu_max_abs_diff(r_view, r_copy) == 0.0,
                 "ROPE on a strided view == on a contiguous copy");
    next:
        ctx_free(&c);
    }
}

/* ================================ bad nodes ================================ */

static void test_errors(void) {
    ctx c = ctx_new();
    sisa_tensor *x = input(&c, "x", SISA_F32, 1, 1, 2, 4);
    sisa_tensor *y = sisa_softmax(c.g, x);
    sisa_tensor *v = sisa_reshape(c.g, x, 1, 1, 4, 2);
    if (!TU_CHECK(sisa_graph_status(c.g) == SISA_OK, "build")) goto out;
    /* no storage yet: refused, naming the node */
    sisa_err_clear();
    TU_CHECK(sisa_cpu_ref_compute(y) == SISA_INVALID_ARG && strstr(sisa_last_error(), y->name),
             "node without storage: INVALID_ARG naming it (got '%s')", sisa_last_error());
    TU_CHECK(sisa_cpu_ref_compute(x) == SISA_OK && sisa_cpu_ref_compute(v) == SISA_OK,
             "NONE and VIEW are no-ops");
    TU_CHECK(sisa_cpu_ref_compute(NULL) == SISA_INVALID_ARG, "NULL node");
    if (!ctx_bind(&c)) goto out;
    sisa_tensor bad = *y;
    bad.op = SISA_OP_COUNT + 3;
    TU_CHECK(sisa_cpu_ref_compute(&bad) != SISA_OK, "unknown op refused: %s", sisa_last_error());
    bad = *y;
    bad.shape[3] = 2; /* destination shape outside the definition (but inside its buffer) */
    TU_CHECK(sisa_cpu_ref_compute(&bad) == SISA_INVALID_ARG && strstr(sisa_last_error(), "SOFTMAX"),
             "mis-shaped node refused: %s", sisa_last_error());
    bad = *y;
    bad.shape[3] = 5; /* more elements than its buffer holds */
    TU_CHECK(sisa_cpu_ref_compute(&bad) == SISA_INVALID_ARG &&
                 strstr(sisa_last_error(), "past the end"),
             "node larger than its buffer refused: %s", sisa_last_error());
    bad = *y;
    bad.shape[2] = 0; /* an empty dimension (the builders never make one) */
    TU_CHECK(sisa_cpu_ref_compute(&bad) == SISA_INVALID_ARG, "empty dimension refused: %s",
             sisa_last_error());
    sisa_tensor ids = *x;
    ids.dtype = SISA_I32;
    bad = *y;
    bad.src[0] = &ids;
    TU_CHECK(sisa_cpu_ref_compute(&bad) == SISA_INVALID_ARG, "i32 softmax input refused: %s",
             sisa_last_error());
    TU_CHECK(tu_host_guards_ok(c.h), "guards");
out:
    ctx_free(&c);
}

int main(void) {
    printf("test_ref_ops (seed %llu)\n", (unsigned long long)SEED);
    test_cpy();
    test_embed();
    test_rms_norm();
    test_rope();
    test_add_scale_swiglu();
    test_matmul();
    test_softmax();
    test_argmax();
    test_ssm_decay();
    test_ssm_channels_hand();
    test_ssm_channels_chunked();
    test_augment();
    test_sdpa_simple();
    test_sdpa_composed();
    test_identity();
    test_dtypes_and_views();
    test_errors();
    return tu_report("test_ref_ops");
}
