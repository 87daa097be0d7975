/*
 * bench_opencl — a GPU backend's MATMUL and SDPA at SISA-152M shapes, through the engine's own
 * graph + scheduler path (what a model forward pays, one node per graph).
 *
 *   MATMUL  y = x·Wᵀ, M = 8·2048 tokens, K = 768, N = 768 (W_Q..W_O), 2908 (W_gate/W_up, d_s 16),
 *           50277 (logits), plus W_down (K = 2908, N = 768)             FLOP = 2·M·N·K
 *   SDPA    f32, causal, B = 8, H = 12, d_h = 64: SISA d_s = 16 (d_qk 80, d_v 64) form A and
 *           form B, and the Transformer control (64/64); T = 2048 and 4096; one decode step
 *           (form B, Tq = 1 at p0 = T - 1 over T = 2048 keys, FLOP = 2·B·H·T·(d_qk + d_v))
 *           FLOP = 2·B·H·(T(T+1)/2)·(d_qk + d_v)  (the causal half only: the work that counts)
 *
 * One device serves every case. Each timing: one warm-up compute (kernel builds, CLBlast's
 * compile), then repeated computes (each one synchronized) for >= 0.5 s or 3 runs; the table
 * shows the best and the mean. The first output row is read back and must be finite.
 *
 *   bench_opencl [--backend NAME] [--device I] [--quick] [--sweep] [--only matmul|sdpa]
 *                [--dtype f32|bf16|f16]   (operands and results; SDPA's gq/gk stay f32)
 *     --quick   small shapes (M = 512, T = 256) for CPU drivers such as PoCL
 *     --sweep   also time the SDPA tile sizes SISA_CL_SDPA_BQ x SISA_CL_SDPA_BK (opencl only)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "error.h"
#include "graph.h"
#include "sched.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char *backend = "opencl";
/* --dtype: the storage dtype of the operands and results (gq/gk stay f32) */
static sisa_dtype dtype = SISA_F32;
static int device = 0;
/* One device for every case: reopening would throw away compiled programs (ours and CLBlast's). */
static sisa_device *dev;

/* deterministic values in [-scale, scale) */
static sisa_status fill(sisa_tensor *t, double scale, uint64_t seed) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "bench: out of host memory");
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t k = 0; k < n; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        if (t->name[0] == 'g') /* a decay: decreasing along the row (time) */
            u = -0.02 * (double)(k % t->shape[3]);
        else u *= scale;
        sisa_store_elem(buf + (size_t)k * es, t->dtype, u);
    }
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

typedef struct result {
    double best, mean;
    int runs;
} result;

/* Place g on the device, fill its leaves, time sisa_sched_compute. */
static sisa_status time_graph(sisa_graph *g, sisa_tensor *y, result *r) {
    sisa_sched *s = NULL;
    sisa_status st = sisa_graph_status(g);
    if (st == SISA_OK) st = sisa_sched_new(dev, false, &s);
    if (st == SISA_OK) st = sisa_sched_prepare(s, g);
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) st = fill(g->leafs[i], 1.0, (uint64_t)i + 7);
    if (st == SISA_OK) st = sisa_sched_compute(s, g); /* warm-up: builds, CLBlast compile */
    *r = (result){.best = INFINITY};
    double t_start = now(), total = 0;
    while (st == SISA_OK && (r->runs < 3 || now() - t_start < 0.5) && r->runs < 200) {
        double t0 = now();
        st = sisa_sched_compute(s, g);
        double dt = now() - t0;
        total += dt;
        if (dt < r->best) r->best = dt;
        r->runs++;
    }
    r->mean = r->runs ? total / r->runs : 0;
    if (st == SISA_OK) { /* first row must be finite */
        int64_t n = y->shape[3] < 1024 ? y->shape[3] : 1024;
        float row[1024];
        sisa_tensor head = *y;
        head.shape[0] = head.shape[1] = head.shape[2] = 1;
        head.shape[3] = n;
        sisa_tensor_set_contiguous(&head);
        st = y->dtype == SISA_F32 ? sisa_tensor_read(&head, row, (size_t)n * 4) : SISA_OK;
        for (int64_t i = 0; st == SISA_OK && y->dtype == SISA_F32 && i < n; i++)
            if (!isfinite(row[i])) st = sisa_err(SISA_INTERNAL, "output element %lld is %g", (long long)i, row[i]);
    }
    sisa_sched_free(s);
    return st;
}

static void print_row(const char *what, const char *shape, double flop, const result *r) {
    printf("%-10s %-38s %-8s %9.3f %9.3f %8.2f %4d\n", what, shape, backend, r->best * 1e3,
           r->mean * 1e3, flop / r->best * 1e-12, r->runs);
    fflush(stdout);
}

static int failures;

static void bench_matmul(int64_t M, int64_t N, int64_t K, const char *what) {
    sisa_graph *g = sisa_graph_new();
    g->act_dtype = dtype;
    sisa_tensor *x = sisa_graph_input(g, "x", dtype, 1, 1, M, K);
    sisa_tensor *w = sisa_graph_input(g, "w", dtype, 1, 1, N, K);
    sisa_tensor *y = sisa_tensor_set_output(sisa_matmul(g, x, w));
    char shape[96];
    snprintf(shape, sizeof shape, "M=%lld N=%lld K=%lld %s", (long long)M, (long long)N,
             (long long)K, sisa_dtype_name(dtype));
    result r;
    sisa_status st = time_graph(g, y, &r);
    if (st != SISA_OK) {
        printf("%-10s %-38s FAILED: %s\n", what, shape, sisa_last_error());
        failures++;
    } else {
        print_row(what, shape, 2.0 * (double)M * (double)N * (double)K, &r);
    }
    sisa_graph_free(g);
}

/* decode: one query at position T-1 over T cached keys (Tq = 1, p0 = T - 1) */
static void bench_sdpa(int64_t B, int64_t H, int64_t T, int64_t dqk, int64_t dv, bool form_b,
                       bool decode, const char *what) {
    sisa_graph *g = sisa_graph_new();
    const int64_t Tq = decode ? 1 : T;
    g->act_dtype = dtype;
    sisa_tensor *q = sisa_graph_input(g, "q", dtype, B, H, Tq, dqk);
    sisa_tensor *k = sisa_graph_input(g, "k", dtype, B, H, T, dqk);
    sisa_tensor *v = sisa_graph_input(g, "v", dtype, B, H, T, dv);
    sisa_sdpa_params p = {.scale = 1.0f / sqrtf(64.0f), .causal = 1, .p0 = (int32_t)(T - Tq)};
    if (form_b) {
        p.gq = sisa_graph_input(g, "gq", SISA_F32, 1, B, H, Tq);
        p.gk = sisa_graph_input(g, "gk", SISA_F32, 1, B, H, T);
        p.d_content = 64;
    }
    sisa_tensor *y = sisa_tensor_set_output(sisa_sdpa(g, q, k, v, &p));
    char shape[96];
    snprintf(shape, sizeof shape, "B=%lld H=%lld T=%lld d_qk=%lld d_v=%lld%s%s%s", (long long)B,
             (long long)H, (long long)T, (long long)dqk, (long long)dv, form_b ? " B" : "",
             decode ? " Tq=1" : "", dtype == SISA_F32 ? "" : dtype == SISA_BF16 ? " bf16" : " f16");
    result r;
    sisa_status st = time_graph(g, y, &r);
    if (st != SISA_OK) {
        printf("%-10s %-38s FAILED: %s\n", what, shape, sisa_last_error());
        failures++;
    } else {
        double pairs = decode ? (double)T : (double)T * (double)(T + 1) / 2.0;
        double flop = 2.0 * (double)(B * H) * pairs * (double)(dqk + dv);
        print_row(what, shape, flop, &r);
    }
    sisa_graph_free(g);
}

int main(int argc, char **argv) {
    bool quick = false, sweep = false;
    const char *only = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--sweep")) sweep = true;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *v = argv[++i];
            dtype = !strcmp(v, "bf16") ? SISA_BF16 : !strcmp(v, "f16") ? SISA_F16 : SISA_F32;
        }
        else {
            fprintf(stderr, "usage: bench_opencl [--backend NAME] [--device I] [--quick] [--sweep] "
                            "[--only matmul|sdpa] [--dtype f32|bf16|f16]\n");
            return 2;
        }
    }
    if (sisa_device_open(backend, device, &dev) != SISA_OK) {
        printf("bench_opencl: skipped: %s\n", sisa_last_error());
        return 77;
    }
    const sisa_device_info info = dev->info;
    printf("backend %s device %d: %s (%s), driver %s\n", backend, device, info.name, info.vendor,
           info.driver);
    printf("%-10s %-38s %-8s %9s %9s %8s %4s\n", "op", "shape", "backend", "best ms", "mean ms",
           "TFLOP/s", "runs");

    const int64_t M = quick ? 512 : 8 * 2048, T0 = quick ? 256 : 2048, B = quick ? 1 : 8;
    if (strcmp(only, "sdpa") != 0) {
        bench_matmul(M, 768, 768, "MATMUL");
        bench_matmul(M, 2908, 768, "MATMUL");
        bench_matmul(M, 768, 2908, "MATMUL");
        bench_matmul(M, 2944, 768, "MATMUL"); /* the FFN width as GPU devices pad it (model.c) */
        bench_matmul(M, 768, 2944, "MATMUL");
        bench_matmul(M, quick ? 4096 : 50277, 768, "MATMUL");
    }
    if (strcmp(only, "matmul") != 0) {
        for (int64_t T = T0; T <= 2 * T0; T *= 2) {
            bench_sdpa(B, 12, T, 80, 64, false, false, "SDPA");
            bench_sdpa(B, 12, T, 96, 64, false, false, "SDPA"); /* the model's padded Qhat */
            bench_sdpa(B, 12, T, 80, 64, true, false, "SDPA");
            bench_sdpa(B, 12, T, 64, 64, false, false, "SDPA");
        }
        bench_sdpa(B, 12, T0, 80, 64, true, true, "SDPA");
        if (sweep && strcmp(backend, "opencl") == 0) {
            static const char *bqs[] = {"32", "64", "128"}, *bks[] = {"16", "32", "64"};
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    char what[32];
                    setenv("SISA_CL_SDPA_BQ", bqs[i], 1);
                    setenv("SISA_CL_SDPA_BK", bks[j], 1);
                    snprintf(what, sizeof what, "SDPA %sx%s", bqs[i], bks[j]);
                    sisa_device_free(dev); /* the tile is read when the device opens */
                    if (sisa_device_open(backend, device, &dev) != SISA_OK) {
                        printf("bench_opencl: reopening: %s\n", sisa_last_error());
                        return 1;
                    }
                    bench_sdpa(B, 12, T0, 80, 64, false, false, what);
                }
            unsetenv("SISA_CL_SDPA_BQ");
            unsetenv("SISA_CL_SDPA_BK");
        }
    }
    sisa_device_free(dev);
    return failures ? 1 : 0;
}
