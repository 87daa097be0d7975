/*
 * bench_cuda.c — timings of the CUDA backend's heavy nodes, each run through the scheduler like the
 * model runs them: SDPA (SISA form A 80/64 and 96/64 = 80 zero-padded to 32, form B, Transformer
 * 64/64; cuDNN with and without the timed engine choice, own kernels), SSM_CHANNELS + AUGMENT
 * fused and unfused at the 152M prefill shape, and MATMUL at the 152M model's shapes. Prints one
 * line per case: shape, path, median ms, TFLOP/s (GB/s for the SSM/AUGMENT case).
 * First the decode-step SDPA (bench_decode_attn: the split kernel vs the chunk kernels, CUDA-graph
 * replays, us per kernel and the outputs compared).
 * Inputs are seeded random values (never zeros: METHOD.md). Usage: bench_cuda [reps] [decode]
 * ("decode": only the decode SDPA cases)
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

/* The median of the reps timings t when the runs succeeded, else -1 with the error in err. */
static double median_or_err(sisa_status st, double *t, int reps, char *err, size_t errlen) {
    if (st != SISA_OK) {
        snprintf(err, errlen, "%s", sisa_last_error());
        return -1.0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_d);
    return t[reps / 2];
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
    med = median_or_err(st, t, reps, err, errlen);
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

/* ---- decode attention: the split kernel vs the chunk kernels (decode_attn.cu) ----
 * The 152M decode step's SDPA: B=1, H=12, one query at position p0 over a Tk-key bucket, d_qk 80
 * (64 + d_s 16, the KV cache pads to 16), d_v 64, form B (d_content 64), f32 K/V cache viewed as
 * the step graph views it ((Tk,B,H,W) cache rows permuted to (B,H,Tk,W); gk a strided view of the
 * (Tk,B,H) g cache). Rows past p0 hold NaN: a kernel that reads them gives NaN.
 * One graph = a 64 MB CPY (evicts the 50 MB L2, as a step's 305 MB of weights do) + NC copies of
 * the node rotating over distinct caches (> L2 in all), recorded as a CUDA graph (the decode
 * step's launch mode, PDL included) and replayed; us/kernel = (t(64 copies) - t(8)) / 56, which
 * cancels the flush and the replay's fixed cost. The outputs are compared with the old kernels'. */
#define DA_NC_BIG 64
#define DA_NC_SMALL 8

static sisa_status fill_decode(sisa_tensor *t, int p0) {
    int64_t n = sisa_tensor_nelements(t);
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return SISA_OUT_OF_MEMORY;
    const int64_t row = t->shape[1] * t->shape[2] * t->shape[3]; /* elements per position */
    for (int64_t k = 0; k < n; k++) {
        double v = urand();
        if (t->name[0] == 'k' || t->name[0] == 'v' || t->name[0] == 'G') { /* caches (Tk, ...) */
            const int64_t pos = t->name[0] == 'G' ? k / t->shape[3] : k / row;
            v = t->name[0] == 'G' ? -0.01 * (double)pos - 0.002 * fabs(v) : v;
            if (pos > p0) v = NAN;
        }
        if (t->name[0] == 'g') v = -0.01 * (double)p0 - 0.003; /* gq: g at the query's position */
        if (strcmp(t->name, "flush") == 0) v = 0.0;
        buf[k] = (float)v;
    }
    sisa_status st = sisa_tensor_write(t, buf, (size_t)n * sizeof(float));
    free(buf);
    return st;
}

/* One variant ("old", "split", "split-S<N>", "split-1blk", "cluster") with nc copies: median ms per replay; the copies'
 * outputs into out (nc * H * 64 doubles) when out is given. */
static double time_decode_attn(sisa_device *dev, const char *variant, int Tk, int p0, int nc, int reps,
                               double *out, char *err, size_t errlen) {
    const int H = 12, D = 80, Dv = 64;
    const size_t set_bytes = (size_t)Tk * H * (D + Dv + 1) * 4;
    int nset = (int)((size_t)120 * 1000 * 1000 / set_bytes) + 1;
    if (nset > DA_NC_BIG) nset = DA_NC_BIG;
    unsetenv("SISA_CUDA_DECODE_ATTN");
    unsetenv("SISA_CUDA_ATTN_ONE");
    unsetenv("SISA_CUDA_DECODE_SPLIT");
    if (strcmp(variant, "old") == 0 || strcmp(variant, "cluster") == 0) setenv("SISA_CUDA_DECODE_ATTN", variant, 1);
    if (strcmp(variant, "split-1blk") == 0) setenv("SISA_CUDA_ATTN_ONE", "0", 1);
    if (strncmp(variant, "split-S", 7) == 0) setenv("SISA_CUDA_DECODE_SPLIT", variant + 7, 1);
    rng = 0x12345678abcdefull; /* the same inputs for every variant */
    sisa_graph *g = sisa_graph_new();
    sisa_tensor *flush = sisa_graph_input(g, "flush", SISA_F32, 1, 1, 4096, 4096);
    sisa_tensor_set_output(sisa_cpy(g, flush, SISA_F32));
    sisa_tensor *q = sisa_graph_input(g, "q", SISA_F32, 1, H, 1, D);
    sisa_tensor *gq = sisa_graph_input(g, "gq", SISA_F32, 1, 1, H, 1);
    sisa_tensor **ys = calloc((size_t)nc, sizeof *ys);
    sisa_tensor *kc[DA_NC_BIG], *vc[DA_NC_BIG], *gc[DA_NC_BIG];
    for (int c = 0; c < nset && c < nc; c++) {
        char nm[32];
        snprintf(nm, sizeof nm, "kc%d", c);
        kc[c] = sisa_graph_input(g, nm, SISA_F32, Tk, 1, H, D);
        snprintf(nm, sizeof nm, "vc%d", c);
        vc[c] = sisa_graph_input(g, nm, SISA_F32, Tk, 1, H, Dv);
        snprintf(nm, sizeof nm, "Gc%d", c);
        gc[c] = sisa_graph_input(g, nm, SISA_F32, 1, Tk, 1, H);
    }
    for (int c = 0; c < nc; c++) {
        const int k = c % nset;
        sisa_sdpa_params p = {.scale = 0.125f, .causal = 1, .p0 = p0, .gq = gq,
                              .gk = sisa_permute(g, gc[k], 0, 2, 3, 1), .d_content = 64};
        ys[c] = sisa_sdpa(g, q, sisa_permute(g, kc[k], 1, 2, 0, 3), sisa_permute(g, vc[k], 1, 2, 0, 3), &p);
        sisa_tensor_set_output(ys[c]);
    }
    double med = -1;
    sisa_sched *s = NULL;
    void *rec = NULL;
    sisa_status st = sisa_graph_status(g);
    if (st == SISA_OK) st = sisa_sched_new(dev, false, &s);
    if (st == SISA_OK) st = sisa_sched_prepare(s, g);
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) st = fill_decode(g->leafs[i], p0);
    if (st == SISA_OK) st = sisa_sched_compute(s, g); /* warm-up */
    if (st == SISA_OK) st = sisa_sched_record(s, g, &rec);
    if (st == SISA_OK && !rec) snprintf(err, errlen, "(not recorded: plain compute)");
    double *t = calloc((size_t)reps, sizeof *t);
    for (int r = -3; st == SISA_OK && r < reps; r++) {
        double t0 = now_ms();
        st = rec ? sisa_sched_replay(s, g, rec, NULL, 0) : sisa_sched_compute(s, g);
        if (r >= 0) t[r] = now_ms() - t0;
    }
    for (int c = 0; st == SISA_OK && out && c < nc; c++) st = sisa_tensor_read_f64(ys[c], out + (size_t)c * H * Dv);
    med = median_or_err(st, t, reps, err, errlen);
    free(t);
    if (rec) sisa_sched_release(s, rec);
    sisa_sched_free(s);
    sisa_graph_free(g);
    free(ys);
    unsetenv("SISA_CUDA_DECODE_ATTN");
    unsetenv("SISA_CUDA_ATTN_ONE");
    unsetenv("SISA_CUDA_DECODE_SPLIT");
    return med;
}

static void bench_decode_attn(sisa_device *dev, int Tk, int p0, int reps) {
    /* split-S<N>: N blocks per (b, h, query) (SISA_CUDA_DECODE_SPLIT; the default is 11 on 132
     * SMs): one and two blocks per SM around it; cluster: 8-block clusters (sm_90), last */
    static const char *const variants[] = {"old", "split", "split-S6", "split-S22", "split-1blk", "cluster"};
    enum { NV = sizeof variants / sizeof *variants };
    const size_t n_out = (size_t)DA_NC_BIG * 12 * 64;
    double *outs[NV];
    const double bytes = (double)(p0 + 1) * 12 * (80 + 64 + 1) * 4; /* visible K, V, gk */
    for (int vi = 0; vi < NV; vi++) {
        char err[512] = "", err2[512] = "", name[96];
        outs[vi] = calloc(n_out, sizeof(double));
        const double big = time_decode_attn(dev, variants[vi], Tk, p0, DA_NC_BIG, reps, outs[vi], err, sizeof err);
        const double small = time_decode_attn(dev, variants[vi], Tk, p0, DA_NC_SMALL, reps, NULL, err2, sizeof err2);
        snprintf(name, sizeof name, "decode SDPA B1 H12 Tk%d p0=%d 80/64 B f32", Tk, p0);
        if (big < 0 || small < 0) {
            printf("%-46s %-16s FAILED: %s %s\n", name, variants[vi], err, err2);
            free(outs[vi]);
            outs[vi] = NULL;
            continue;
        }
        const double us = (big - small) / (DA_NC_BIG - DA_NC_SMALL) * 1e3;
        double num = 0, den = 0;
        bool nan = false;
        for (size_t e = 0; outs[0] && e < n_out; e++) {
            nan = nan || !isfinite(outs[vi][e]);
            num += (outs[vi][e] - outs[0][e]) * (outs[vi][e] - outs[0][e]);
            den += outs[0][e] * outs[0][e];
        }
        printf("%-46s %-16s %8.2f us/kernel %8.1f GB/s  (replay %d: %.3f ms, %d: %.3f ms) err vs old %.2e%s %s\n",
               name, variants[vi], us, bytes / (us * 1e-6) / 1e9, DA_NC_BIG, big, DA_NC_SMALL, small,
               outs[0] && den > 0 ? sqrt(num / den) : NAN, nan ? " NON-FINITE OUTPUT" : "", err);
        fflush(stdout);
    }
    for (int vi = 0; vi < NV; vi++) free(outs[vi]);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    sisa_device *dev = NULL;
    if (sisa_device_open("cuda", 0, &dev) != SISA_OK) {
        printf("SKIP: %s\n", sisa_last_error());
        return 77;
    }
    printf("device: %s | %s\n", dev->info.name, dev->info.driver);
    /* decode attention first (the 152M step's shapes); "bench_cuda REPS decode": only these */
    bench_decode_attn(dev, 768, 639, reps);
    bench_decode_attn(dev, 2048, 2000, reps);
    if (argc > 2 && strcmp(argv[2], "decode") == 0) {
        sisa_device_free(dev);
        return 0;
    }
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
