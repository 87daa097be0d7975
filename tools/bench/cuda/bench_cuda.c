/*
 * bench_cuda.c — timings of the CUDA backend's heavy nodes, each run through the scheduler like the
 * model runs them: SDPA (SISA form A 80/64 and 96/64 = 80 zero-padded to 32, form B, Transformer
 * 64/64; cuDNN with and without the timed engine choice, own kernels), SSM_CHANNELS + AUGMENT
 * fused and unfused at the 152M prefill shape, and MATMUL at the 152M model's shapes. Prints one
 * line per case: shape, path, median ms, TFLOP/s (GB/s for the SSM/AUGMENT case).
 * Inputs are seeded random values (never zeros: METHOD.md). Usage: bench_cuda [reps]
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

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 0x12345678abcdefull;
static double urand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static sisa_status fill(sisa_tensor *t, double scale) {
    int64_t n = sisa_tensor_nelements(t);
    size_t es = sisa_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es);
    if (!buf) return SISA_OUT_OF_MEMORY;
    for (int64_t k = 0; k < n; k++) {
        double v = scale * urand();
        if (strncmp(t->name, "g", 1) == 0) v = -0.01 * (double)(k % 4096) * fabs(urand()); /* decay */
        sisa_store_elem(buf + (size_t)k * es, t->dtype, v);
    }
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * es);
    free(buf);
    return st;
}

/* Run graph g (already built) reps times; median ms of one compute (synchronised). */
static double time_graph(sisa_device *dev, sisa_graph *g, int reps, char *err, size_t errlen) {
    sisa_sched *s = NULL;
    double med = -1;
    sisa_status st = sisa_sched_new(dev, false, &s);
    if (st == SISA_OK) st = sisa_sched_prepare(s, g);
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) st = fill(g->leafs[i], 1.0);
    if (st == SISA_OK) st = sisa_sched_compute(s, g); /* warm-up: plans, handles */
    if (st == SISA_OK) st = sisa_sched_compute(s, g);
    double *t = calloc((size_t)reps, sizeof *t);
    for (int r = 0; st == SISA_OK && r < reps; r++) {
        double t0 = now_ms();
        st = sisa_sched_compute(s, g);
        t[r] = now_ms() - t0;
    }
    if (st == SISA_OK) {
        qsort(t, (size_t)reps, sizeof *t, cmp_d);
        med = t[reps / 2];
    } else {
        snprintf(err, errlen, "%s", sisa_last_error());
    }
    free(t);
    sisa_sched_free(s);
    return med;
}

static void report(const char *name, const char *path, double ms, double flop, const char *err) {
    if (ms < 0) printf("%-46s %-16s FAILED: %s\n", name, path, err);
    else printf("%-46s %-16s %9.3f ms %8.1f TFLOP/s\n", name, path, ms, flop / (ms * 1e-3) / 1e12);
    fflush(stdout);
}

static void bench_sdpa(sisa_device *dev, const char *name, const char *mode, int B, int H, int T,
                       int dqk, int dv, int formB, int reps) {
    /* "cudnn" = cuDNN's first choice (heuristics mode A, the default); "cudnn-tuned": every
     * config heuristics list, timed on first use; "cudnn-sweep": also one-knob changes of it */
    const bool tuned = mode && strcmp(mode, "cudnn-tuned") == 0;
    const bool sweep = mode && strcmp(mode, "cudnn-sweep") == 0;
    if (tuned) setenv("SISA_CUDA_CUDNN_TUNE", "1", 1);
    if (sweep) setenv("SISA_CUDA_CUDNN_TUNE", "2", 1);
    if (mode) setenv("SISA_CUDA_SDPA", tuned || sweep ? "cudnn" : mode, 1); else unsetenv("SISA_CUDA_SDPA");
    sisa_graph *g = sisa_graph_new();
    g->act_dtype = SISA_BF16;
    sisa_tensor *q = sisa_graph_input(g, "q", SISA_BF16, B, H, T, dqk);
    sisa_tensor *k = sisa_graph_input(g, "k", SISA_BF16, B, H, T, dqk);
    sisa_tensor *v = sisa_graph_input(g, "v", SISA_BF16, B, H, T, dv);
    sisa_sdpa_params p = {.scale = 0.125f, .causal = 1};
    if (formB) {
        p.gq = p.gk = sisa_graph_input(g, "g", SISA_F32, 1, B, H, T);
        p.d_content = 64;
    }
    sisa_tensor_set_output(sisa_sdpa(g, q, k, v, &p));
    char err[512] = "";
    double ms = sisa_graph_status(g) == SISA_OK ? time_graph(dev, g, reps, err, sizeof err) : -1;
    if (ms < 0 && !err[0]) snprintf(err, sizeof err, "%s", sisa_last_error());
    /* causal: half the score matrix; 2 flops per MAC for QK and PV */
    double flop = 2.0 * B * H * ((double)T * T / 2) * (dqk + dv);
    char path[64];
    snprintf(path, sizeof path, "%s", mode ? mode : "default");
    report(name, path, ms, flop, err);
    sisa_graph_free(g);
    unsetenv("SISA_CUDA_SDPA");
    unsetenv("SISA_CUDA_CUDNN_TUNE");
}

/* SSM_DECAY's output g and the SSM_CHANNELS + two AUGMENT nodes of one 152M layer's prefill
 * (B=8, T=2048, H=12, d_h=64, d_s=16, bf16, W = 96), fused (cuda_fuse.c) or not (SISA_CUDA_FUSE=0).
 * GB/s = the fused kernel's fewest bytes (Bs, Cs, theta, g, q, k read once; Qhat, Khat written)
 * over the time. */
static void bench_ssm_augment(sisa_device *dev, bool fused, int reps) {
    const int B = 8, T = 2048, H = 12, dh = 64, ds = 16, W = 96;
    if (!fused) setenv("SISA_CUDA_FUSE", "0", 1);
    sisa_graph *g = sisa_graph_new();
    g->act_dtype = SISA_BF16;
    sisa_tensor *Bs = sisa_graph_input(g, "Bs", SISA_BF16, 1, B, T, H * ds);
    sisa_tensor *Cs = sisa_graph_input(g, "Cs", SISA_BF16, 1, B, T, H * ds);
    sisa_tensor *th = sisa_graph_input(g, "theta", SISA_BF16, 1, B, T, H * ds / 2);
    sisa_tensor *gd = sisa_graph_input(g, "g", SISA_F32, 1, B, H, T);
    sisa_tensor *lr = sisa_graph_input(g, "lambda_raw", SISA_F32, 1, 1, 1, H);
    sisa_tensor *q = sisa_graph_input(g, "q", SISA_BF16, B, T, H, dh);
    sisa_tensor *k = sisa_graph_input(g, "k", SISA_BF16, B, T, H, dh);
    sisa_tensor *ch = sisa_ssm_channels(g, Bs, Cs, th, gd, lr, NULL, SISA_SSM_AUGMENTED, dh, 11.0f);
    sisa_tensor *Q = sisa_augment(g, sisa_permute(g, q, 0, 2, 1, 3), sisa_slice_row(g, ch, 0, ds), W);
    sisa_tensor *K = sisa_augment(g, sisa_permute(g, k, 0, 2, 1, 3), sisa_slice_row(g, ch, ds, ds), W);
    sisa_tensor_set_output(Q);
    sisa_tensor_set_output(K);
    /* Views (no work) after the AUGMENT nodes keep the inputs alive past them, so the allocator
     * cannot put Khat over q/Bs (it does in this small graph otherwise, and then Khat's AUGMENT
     * runs unfused; cuda_fuse.c) — the placement the 152M model graph gets. */
    sisa_tensor *keep[6] = {Bs, Cs, th, gd, q, k};
    for (int i = 0; i < 6; i++) sisa_slice_row(g, keep[i], 0, 1);
    char err[512] = "";
    double ms = sisa_graph_status(g) == SISA_OK ? time_graph(dev, g, reps, err, sizeof err) : -1;
    const double bytes = 2.0 * B * T * H * (2 * ds + ds / 2 + 2 * dh + 2 * W) + 4.0 * B * H * T;
    if (ms < 0) printf("%-46s %-16s FAILED: %s\n", "SSM_CHANNELS+2 AUGMENT 152M B8 T2048", fused ? "fused" : "unfused", err);
    else printf("%-46s %-16s %9.3f ms %8.1f GB/s\n", "SSM_CHANNELS+2 AUGMENT 152M B8 T2048",
                fused ? "fused" : "unfused", ms, bytes / (ms * 1e-3) / 1e9);
    fflush(stdout);
    sisa_graph_free(g);
    unsetenv("SISA_CUDA_FUSE");
}

static void bench_mm(sisa_device *dev, const char *name, sisa_dtype dt, int64_t M, int64_t N, int64_t K,
                     int reps) {
    sisa_graph *g = sisa_graph_new();
    g->act_dtype = dt;
    sisa_tensor *a = sisa_graph_input(g, "a", dt, 1, 1, M, K);
    sisa_tensor *b = sisa_graph_input(g, "b", dt, 1, 1, N, K);
    sisa_tensor_set_output(sisa_matmul(g, a, b));
    char err[512] = "";
    double ms = sisa_graph_status(g) == SISA_OK ? time_graph(dev, g, reps, err, sizeof err) : -1;
    char full[96];
    snprintf(full, sizeof full, "%s %lldx%lldx%lld %s", name, (long long)M, (long long)N,
             (long long)K, sisa_dtype_name(dt));
    report(full, "cublaslt", ms, 2.0 * M * N * K, err);
    sisa_graph_free(g);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    sisa_device *dev = NULL;
    if (sisa_device_open("cuda", 0, &dev) != SISA_OK) {
        printf("SKIP: %s\n", sisa_last_error());
        return 77;
    }
    printf("device: %s | %s\n", dev->info.name, dev->info.driver);
    const int B = 8, H = 12, T = 4096;
    /* paths: "cudnn" (cuDNN fused flash attention; falls back to own when cuDNN declines, the
     * trace on stderr says which ran), "own" (sdpa_fa.cu), "wmma" (the older own kernel) */
    for (int ti = 0; ti < 2; ti++) {
        const int TT = ti ? 2048 : T;
        char nm[96];
        static const char *paths[3] = {"cudnn", "cudnn-tuned", "own"};
        for (int pi = 0; pi < 3; pi++) {
            snprintf(nm, sizeof nm, "SDPA SISA A bf16 B8 H12 T%d 80/64", TT);
            bench_sdpa(dev, nm, paths[pi], B, H, TT, 80, 64, 0, reps);
            snprintf(nm, sizeof nm, "SDPA SISA A bf16 B8 H12 T%d 96/64 (80 padded)", TT);
            bench_sdpa(dev, nm, paths[pi], B, H, TT, 96, 64, 0, reps);
            snprintf(nm, sizeof nm, "SDPA Transformer bf16 B8 H12 T%d 64/64", TT);
            bench_sdpa(dev, nm, paths[pi], B, H, TT, 64, 64, 0, reps);
        }
        snprintf(nm, sizeof nm, "SDPA SISA B bf16 B8 H12 T%d 80/64", TT);
        bench_sdpa(dev, nm, "own", B, H, TT, 80, 64, 1, reps);
    }
    bench_ssm_augment(dev, false, reps);
    bench_ssm_augment(dev, true, reps);
    const int64_t M = 8 * 2048;
    bench_mm(dev, "ceiling", SISA_BF16, 8192, 8192, 8192, reps);
    bench_mm(dev, "152M W_Q/K/V/O", SISA_BF16, M, 768, 768, reps);
    /* last: the knob sweep builds many plans (slow to start; a timeout cuts only these) */
    bench_sdpa(dev, "SDPA SISA A bf16 B8 H12 T4096 80/64", "cudnn-sweep", B, H, T, 80, 64, 0, reps);
    bench_sdpa(dev, "SDPA SISA A bf16 B8 H12 T4096 96/64 (80 padded)", "cudnn-sweep", B, H, T, 96, 64, 0, reps);
    bench_sdpa(dev, "SDPA Transformer bf16 B8 H12 T4096 64/64", "cudnn-sweep", B, H, T, 64, 64, 0, reps);
    sisa_device_free(dev);
    return 0;
}
