/*
 * bench_gemm — the CPU fast path's SGEMM (C = A·Bᵀ, the MATMUL of a linear layer) against
 * OpenBLAS at the GEMM shapes of a SISA-152M forward (M = tokens, N/K in {768, 2304, 2908,
 * 50277}) and at 2048^3.
 *
 * OpenBLAS is optional and never linked: it is looked up at run time with dlopen
 * ("libopenblas.so.0", or the path in SISA_BENCH_BLAS), so the engine keeps no BLAS dependency.
 * Both sides get the same operands (A [M,K] row-major, B [N,K] row-major = cblas Trans) and the
 * same number of threads. Each timing is the best of a few runs of >= 0.3 s, after a warm-up.
 *
 *   bench_gemm [-t threads] [-m M] [-q]     (-q: the 152M shapes only, no 2048^3)
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/cpu/fast_internal.h"

typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);
typedef void (*set_threads_fn)(int);
typedef char *(*corename_fn)(void);

enum { CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct shape {
    const char *what;
    int64_t M, N, K;
} shape;

typedef struct ctx {
    sisa_cpu_pool *pool;
    sgemm_fn sgemm;
    const float *A;
    const void *B;
    sisa_dtype bdt;
    float *C;
    int64_t M, N, K;
} ctx;

static void run_ours(ctx *c) {
    size_t es = sisa_dtype_size(c->bdt);
    sisa_fast_mat A = {c->A, SISA_F32, c->K * 4, 4};
    sisa_fast_mat B = {c->B, c->bdt, c->K * (int64_t)es, (int64_t)es};
    if (sisa_fast_gemm(c->pool, c->M, c->N, c->K, A, B, c->C, c->N, 0) != SISA_OK) {
        fprintf(stderr, "bench_gemm: %s\n", sisa_last_error());
        exit(1);
    }
}

static void run_blas(ctx *c) {
    c->sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->M, (int)c->N, (int)c->K, 1.0f, c->A,
             (int)c->K, c->B, (int)c->K, 0.0f, c->C, (int)c->N);
}

/* GFLOP/s: best of 3 timed batches of >= 0.3 s each. */
static double time_it(void (*fn)(ctx *), ctx *c) {
    double flop = 2.0 * (double)c->M * (double)c->N * (double)c->K;
    fn(c); /* warm-up: page faults, packing buffers, thread start */
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        int n = 0;
        double t0 = now(), t;
        do {
            fn(c);
            n++;
            t = now() - t0;
        } while (t < 0.3);
        double r = flop * n / t * 1e-9;
        if (r > best) best = r;
    }
    return best;
}

static double check(const ctx *c, const float *ref) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < c->M * c->N; i++) {
        e += ((double)c->C[i] - ref[i]) * ((double)c->C[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

int main(int argc, char **argv) {
    int threads = 0;
    int64_t M = 512;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) M = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-q")) quick = 1;
        else {
            fprintf(stderr, "usage: %s [-t threads] [-m M] [-q]\n", argv[0]);
            return 2;
        }
    }
    sisa_cpu_pool *pool;
    if (sisa_cpu_pool_new(threads, &pool) != SISA_OK) {
        fprintf(stderr, "bench_gemm: %s\n", sisa_last_error());
        return 1;
    }
    threads = sisa_cpu_pool_size(pool);

    const char *blas_path = getenv("SISA_BENCH_BLAS") ? getenv("SISA_BENCH_BLAS") : "libopenblas.so.0";
    /* read before dlopen: OpenBLAS writes its own choice into the variable when it loads */
    char user_core[64] = "";
    if (getenv("OPENBLAS_CORETYPE")) snprintf(user_core, sizeof user_core, "%s", getenv("OPENBLAS_CORETYPE"));
    void *h = dlopen(blas_path, RTLD_NOW | RTLD_LOCAL);
    sgemm_fn sgemm = h ? (sgemm_fn)dlsym(h, "cblas_sgemm") : NULL;
    if (h) {
        set_threads_fn st = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
        if (st) st(threads);
    }
    corename_fn cn = h ? (corename_fn)dlsym(h, "openblas_get_corename") : NULL;

    printf("bench_gemm: C[M,N] = A[M,K] · B[N,K]^T, f32 out, %d thread(s), isa %s\n", threads,
           sisa_fast_isa_name(sisa_fast_get_isa()));
    if (sgemm) {
        const char *core = cn ? cn() : "";
        printf("reference: %s (cblas_sgemm%s%s)\n", blas_path, cn ? ", core " : "", core);
        if (user_core[0])
            printf("note: OPENBLAS_CORETYPE=%s was set in the environment, so OpenBLAS runs that "
                   "core's kernels, not necessarily its best for this CPU (unset it to let OpenBLAS "
                   "choose)\n", user_core);
    } else
        printf("reference: none (%s not found: %s)\n", blas_path, dlerror());

    const shape shapes[] = {
        {"QKV fused", M, 2304, 768}, {"Q/K/V/O", M, 768, 768},  {"gate/up", M, 2908, 768},
        {"down", M, 768, 2908},      {"logits", M, 50277, 768}, {"square", 2048, 2048, 2048},
    };
    int ns = (int)(sizeof shapes / sizeof shapes[0]) - (quick ? 1 : 0);

    printf("\n%-10s %6s %6s %6s | %12s %12s %12s | %6s %9s\n", "what", "M", "N", "K",
           "ours f32", "ours bf16-B", "OpenBLAS", "ratio", "rel.err");
    printf("%-10s %6s %6s %6s | %12s %12s %12s | %6s %9s\n", "", "", "", "", "GFLOP/s", "GFLOP/s",
           "GFLOP/s", "f32", "vs BLAS");
    double sum_ours = 0, sum_blas = 0;
    for (int s = 0; s < ns; s++) {
        ctx c = {.pool = pool, .sgemm = sgemm, .M = shapes[s].M, .N = shapes[s].N, .K = shapes[s].K};
        float *A = malloc((size_t)(c.M * c.K) * 4), *B = malloc((size_t)(c.N * c.K) * 4);
        uint16_t *Bh = malloc((size_t)(c.N * c.K) * 2);
        float *C = malloc((size_t)(c.M * c.N) * 4), *R = malloc((size_t)(c.M * c.N) * 4);
        if (!A || !B || !Bh || !C || !R) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            return 1;
        }
        srand(1);
        for (int64_t i = 0; i < c.M * c.K; i++) A[i] = (float)((double)rand() / RAND_MAX - 0.5);
        for (int64_t i = 0; i < c.N * c.K; i++) {
            Bh[i] = sisa_f32_to_bf16((float)((double)rand() / RAND_MAX - 0.5));
            B[i] = sisa_bf16_to_f32(Bh[i]);
        }
        c.A = A;
        c.C = C;
        c.B = B;
        c.bdt = SISA_F32;
        double ours = time_it(run_ours, &c);
        memcpy(R, C, (size_t)(c.M * c.N) * 4);
        c.B = Bh;
        c.bdt = SISA_BF16;
        double ours16 = time_it(run_ours, &c);
        double blas = 0, err = NAN;
        if (sgemm) {
            c.B = B;
            blas = time_it(run_blas, &c);
            err = check(&c, R); /* C holds OpenBLAS's result, R ours (f32 B) */
        }
        sum_ours += 2.0 * c.M * c.N * c.K / (ours * 1e9);
        if (sgemm) sum_blas += 2.0 * c.M * c.N * c.K / (blas * 1e9);
        printf("%-10s %6lld %6lld %6lld | %12.1f %12.1f %12.1f | %6.2f %9.1e\n", shapes[s].what,
               (long long)c.M, (long long)c.N, (long long)c.K, ours, ours16, blas,
               sgemm ? ours / blas : NAN, err);
        fflush(stdout);
        free(A);
        free(B);
        free(Bh);
        free(C);
        free(R);
    }
    if (sgemm)
        printf("\ntotal time over the shapes above: ours %.1f ms, OpenBLAS %.1f ms (ratio %.2f)\n",
               sum_ours * 1e3, sum_blas * 1e3, sum_blas / sum_ours);
    sisa_cpu_pool_free(pool);
    if (h) dlclose(h);
    return 0;
}
