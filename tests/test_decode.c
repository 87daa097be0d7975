/*
 * test_decode.c — decoding with a KV cache (form B, SISA.md §2) against the full-sequence forward.
 *
 * For SISA and the Transformer control (tiny configs), on "cpu-ref", "cpu" and every GPU-API
 * backend present (absent ones are skipped with the reason):
 *   - every decode step's logits equal sisa_model_forward (form A) at that position, with the
 *     clamp report saying "inactive" (forms A and B then agree): normalised error <= 1e-5
 *   - prefill in chunks (8 + 13 + 19) equals one prefill of 40; batch 2 in lockstep equals the
 *     batch-2 forward
 *   - context overflow (session and sisa_generate) is SISA_INVALID_ARG naming both numbers
 *   - a model whose alpha_proj.bias is pushed to +2 (fast decay: max|g - c| >> 11): form A reports
 *     the clamp active, decoding 200 positions stays finite, and on every prefix where the clamp is
 *     still inactive the steps equal form A.
 *   - every step path (run_paths), on CUDA the persistent decode kernel among them, and (CUDA)
 *     that kernel against the CUDA-graph replay with bf16 weights (run_mega_vs_graph).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "safetensors.h"

static int failures = 0;
#define TOL 1e-5

static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        if (!isfinite(a[i])) return INFINITY;
        e += d * d;
        r += (double)b[i] * (double)b[i];
    }
    return r > 0 ? sqrt(e / r) : sqrt(e);
}

static void fail(const char *what, const char *arch, const char *be) {
    printf("FAIL %s %s: %s: %s\n", arch, be, what, sisa_last_error());
    failures++;
}

static void check(double err, const char *what, const char *arch, const char *be, double *worst) {
    if (err > *worst) *worst = err;
    if (!(err <= TOL)) {
        printf("FAIL %s %s: %s: normalised error %.3g > %.0g\n", arch, be, what, err, TOL);
        failures++;
    }
}

enum { N = 40 };

static void seq(int32_t *t, int n, int salt) {
    for (int i = 0; i < n; i++) t[i] = (int32_t)((i * 97 + 13 + salt * 31) % 256);
}

/* decode vs forward, chunks, batch, overflow */
static void run_exact(const char *dir, const char *arch, const char *be) {
    const int64_t V = 256;
    sisa_load_options o = {.backend = be, .max_batch = 2, .max_tokens = N};
    sisa_model *m = NULL;
    if (sisa_model_load(dir, &o, &m) != SISA_OK) return fail("load", arch, be);
    int32_t tok[2 * N];
    seq(tok, N, 0);
    seq(tok + N, N, 1);
    float *A = malloc(sizeof(float) * 2 * N * V), *D = malloc(sizeof(float) * 2 * N * V),
          *C = malloc(sizeof(float) * 2 * N * V);
    sisa_clamp_report rep;
    sisa_session *s = NULL;
    double w_step = 0, w_chunk = 0, w_batch = 0;
    if (sisa_model_forward(m, tok, 1, N, A, &rep) != SISA_OK) {
        fail("forward", arch, be);
        goto done;
    }
    if (m->cfg.d_ssm > 0 && (rep.any_active || !(rep.max_abs_u[0] > 0))) {
        printf("FAIL %s %s: clamp report should be inactive and non-zero: %g active %d\n", arch, be,
               rep.max_abs_u[0], rep.any_active);
        failures++;
    }
    if (sisa_session_new(m, N, &s) != SISA_OK) {
        fail("session", arch, be);
        goto done;
    }
    /* prefill 8, then one step per position */
    if (sisa_session_prefill(s, tok, 8, D) != SISA_OK) {
        fail("prefill", arch, be);
        goto done;
    }
    check(rel_err(D, A, 8 * V), "prefill(8) vs forward", arch, be, &w_step);
    for (int t = 8; t < N; t++) {
        if (sisa_session_step(s, &tok[t], D) != SISA_OK) {
            fail("step", arch, be);
            goto done;
        }
        char what[64];
        snprintf(what, sizeof what, "step at position %d vs forward", t);
        check(rel_err(D, A + (size_t)t * V, V), what, arch, be, &w_step);
        check(rel_err(sisa_session_last_logits(s), A + (size_t)t * V, V), "last_logits", arch, be,
              &w_step);
    }
    /* overflow: the context is full */
    sisa_status st = sisa_session_step(s, &tok[0], D);
    if (st != SISA_INVALID_ARG || !strstr(sisa_last_error(), "40") || sisa_session_pos(s) != N) {
        printf("FAIL %s %s: overflow gave %s '%s'\n", arch, be, sisa_status_name(st), sisa_last_error());
        failures++;
    } else {
        printf("  overflow message: %s\n", sisa_last_error());
    }
    /* chunks 8 + 13 + 19 vs one prefill of 40 (and vs A) */
    sisa_session_reset(s);
    int off = 0, chunks[3] = {8, 13, 19};
    for (int c = 0; c < 3; c++) {
        if (sisa_session_prefill(s, tok + off, chunks[c], C + (size_t)off * V) != SISA_OK) {
            fail("chunk prefill", arch, be);
            goto done;
        }
        off += chunks[c];
    }
    sisa_session_reset(s);
    if (sisa_session_prefill(s, tok, N, D) != SISA_OK) {
        fail("one prefill", arch, be);
        goto done;
    }
    check(rel_err(C, D, N * V), "chunked prefill vs one prefill", arch, be, &w_chunk);
    check(rel_err(D, A, N * V), "one prefill vs forward", arch, be, &w_chunk);
    sisa_session_free(s);
    s = NULL;
    /* batch 2 in lockstep: prefill 5 then steps, vs the batch-2 forward */
    if (sisa_model_forward(m, tok, 2, N, A, NULL) != SISA_OK ||
        sisa_session_new_batch(m, 2, N, &s) != SISA_OK) {
        fail("batch 2 setup", arch, be);
        goto done;
    }
    int32_t two[2 * 5];
    memcpy(two, tok, 5 * sizeof *two);
    memcpy(two + 5, tok + N, 5 * sizeof *two);
    if (sisa_session_prefill(s, two, 5, D) != SISA_OK) {
        fail("batch prefill", arch, be);
        goto done;
    }
    for (int b = 0; b < 2; b++)
        check(rel_err(D + (size_t)b * 5 * V, A + (size_t)b * N * V, 5 * V), "batch prefill", arch,
              be, &w_batch);
    for (int t = 5; t < N; t++) {
        int32_t pair[2] = {tok[t], tok[N + t]};
        if (sisa_session_step(s, pair, D) != SISA_OK) {
            fail("batch step", arch, be);
            goto done;
        }
        for (int b = 0; b < 2; b++)
            check(rel_err(D + (size_t)b * V, A + ((size_t)b * N + t) * V, V), "batch step", arch,
                  be, &w_batch);
    }
    /* sisa_generate refuses prompt + new beyond the limit before running anything */
    sisa_generate_params gp = {.max_new_tokens = 300};
    sisa_sampler_params_default(&gp.sampler);
    st = sisa_generate(m, NULL, tok, 10, &gp, NULL, NULL, NULL);
    if (st != SISA_INVALID_ARG || !strstr(sisa_last_error(), "310") || !strstr(sisa_last_error(), "256")) {
        printf("FAIL %s %s: generate overflow gave %s '%s'\n", arch, be, sisa_status_name(st),
               sisa_last_error());
        failures++;
    }
    printf("%-16s %-8s max normalised error: steps %.2e, chunks %.2e, batch2 %.2e%s\n", arch, be,
           w_step, w_chunk, w_batch, m->cfg.d_ssm ? "" : "");
    if (m->cfg.d_ssm) printf("  clamp report (form A, T=%d): layer 0 max|g-c| = %.4f, active %d\n", N,
                             rep.max_abs_u[0], rep.any_active);
done:
    sisa_session_free(s);
    free(A);
    free(D);
    free(C);
    sisa_model_free(m);
}

/* The step paths: the cached step graph crossing key buckets (SISA_DECODE_BUCKET=8: Tk 8, 16, ..,
 * 40), with and without the fused projections, without CUDA-graph replay, the rebuilt graph of
 * every step (the old path), the residual rows in the arena instead of the session's buffer, g
 * copied into its cache instead of written there by SSM_DECAY, and (CUDA) the kernels launched
 * without programmatic dependence, the decode SDPA without counters (split kernel: one block per
 * (b, h, query)), the old chunk kernels, the cluster form (sm_90), and the persistent decode
 * kernel (SISA_CUDA_MEGA=require: its replay fails rather than fall back to a CUDA graph) with
 * its phases, with a barrier after every task, with 2 blocks per SM and with split-less attention:
 * every step of every path equals the forward. */
#define MAX_ENV 3
typedef struct env_set {
    const char *kv[MAX_ENV][2]; /* name, value ("1" when NULL); name NULL ends */
} env_set;

static const env_set step_paths[] = {
    {{{"SISA_DECODE_BUCKET", "8"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_DECODE_NO_FUSE", NULL}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_NO_GRAPH", NULL}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_DECODE_REBUILD", NULL}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_DECODE_NO_RESID", NULL}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_DECODE_G_CPY", NULL}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_PDL", "0"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_ATTN_ONE", "0"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_DECODE_ATTN", "old"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_DECODE_ATTN", "cluster"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_MEGA", "require"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_MEGA", "require"}, {"SISA_CUDA_MEGA_PHASES", "0"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_MEGA", "require"}, {"SISA_CUDA_MEGA_BPS", "2"}}},
    {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_MEGA", "require"}, {"SISA_CUDA_ATTN_ONE", "0"}}},
};

static void env_apply(const env_set *e, bool on, char *what, size_t len) {
    if (what) snprintf(what, len, "step path bucket 8");
    for (int k = 0; k < MAX_ENV && e->kv[k][0]; k++) {
        const char *v = e->kv[k][1] ? e->kv[k][1] : "1";
        if (!on) {
            unsetenv(e->kv[k][0]);
            continue;
        }
        setenv(e->kv[k][0], v, 1);
        if (what && k > 0) {
            const size_t n = strlen(what);
            snprintf(what + n, len - n, " + %s%s%s", e->kv[k][0], e->kv[k][1] ? "=" : "",
                     e->kv[k][1] ? e->kv[k][1] : "");
        }
    }
}

static void run_paths(const char *dir, const char *arch, const char *be) {
    const int64_t V = 256;
    float *A = malloc(sizeof(float) * N * V), *D = malloc(sizeof(float) * V);
    int32_t tok[N];
    seq(tok, N, 2);
    for (size_t e = 0; e < sizeof step_paths / sizeof *step_paths; e++) {
        if (strcmp(be, "cuda") && !strcmp(step_paths[e].kv[1][0] ? step_paths[e].kv[1][0] : "", "SISA_CUDA_MEGA"))
            continue; /* a CUDA recording mode: elsewhere the same path as the first */
        char what[200];
        env_apply(&step_paths[e], true, what, sizeof what);
        sisa_load_options o = {.backend = be, .max_tokens = N};
        sisa_model *m = NULL;
        sisa_session *s = NULL;
        double worst = 0;
        if (sisa_model_load(dir, &o, &m) != SISA_OK || sisa_model_forward(m, tok, 1, N, A, NULL) != SISA_OK ||
            sisa_session_new(m, N, &s) != SISA_OK || sisa_session_prefill(s, tok, 3, NULL) != SISA_OK) {
            fail(what, arch, be);
        } else {
            for (int t = 3; t < N; t++) {
                if (sisa_session_step(s, &tok[t], D) != SISA_OK) {
                    fail(what, arch, be);
                    break;
                }
                check(rel_err(D, A + (size_t)t * V, V), what, arch, be, &worst);
            }
            /* a forward between steps, then more steps: the step graph survives it */
            sisa_session_reset(s);
            if (sisa_session_prefill(s, tok, 20, NULL) != SISA_OK ||
                sisa_model_forward(m, tok, 1, 7, A, NULL) != SISA_OK ||
                sisa_model_forward(m, tok, 1, N, A, NULL) != SISA_OK) {
                fail(what, arch, be);
            } else {
                for (int t = 20; t < N; t++) {
                    if (sisa_session_step(s, &tok[t], D) != SISA_OK) {
                        fail(what, arch, be);
                        break;
                    }
                    check(rel_err(D, A + (size_t)t * V, V), what, arch, be, &worst);
                }
            }
        }
        printf("%-16s %-8s %s: max normalised error %.2e\n", arch, be, what, worst);
        sisa_session_free(s);
        sisa_model_free(m);
        env_apply(&step_paths[e], false, NULL, 0);
    }
    free(A);
    free(D);
}

/* The logits of steps 3 .. N-1 (bucket 8) of a model with 16-bit weights (the streaming GEMV,
 * bf16 caches where compute is bf16) through the step path env e, into L ((N - 3) x V). */
static bool steps_with(const char *dir, const char *be, sisa_dtype_public compute, const env_set *e, float *L) {
    const int64_t V = 256;
    int32_t tok[N];
    seq(tok, N, 4);
    env_apply(e, true, NULL, 0);
    sisa_load_options o = {.backend = be, .max_tokens = N, .compute_dtype = compute};
    sisa_model *m = NULL;
    sisa_session *s = NULL;
    bool ok = sisa_model_load(dir, &o, &m) == SISA_OK && sisa_session_new(m, N, &s) == SISA_OK &&
              sisa_session_prefill(s, tok, 3, NULL) == SISA_OK;
    for (int t = 3; ok && t < N; t++) ok = sisa_session_step(s, &tok[t], L + (size_t)(t - 3) * V) == SISA_OK;
    sisa_session_free(s);
    sisa_model_free(m);
    env_apply(e, false, NULL, 0);
    return ok;
}

/* CUDA: the persistent decode kernel against the CUDA-graph replay of the same steps, bf16 weights
 * with f32 and with bf16 activations. Same kernels' bodies, same plans: the same values are
 * expected (printed: bit-identical or not); the check is the decode bound. */
static void run_mega_vs_graph(const char *dir, const char *arch, const char *be) {
    static const env_set graph = {{{"SISA_DECODE_BUCKET", "8"}}};
    static const env_set mega = {{{"SISA_DECODE_BUCKET", "8"}, {"SISA_CUDA_MEGA", "require"}}};
    const size_t n = (size_t)(N - 3) * 256;
    float *G = malloc(n * sizeof *G), *M = malloc(n * sizeof *M);
    for (int c = 0; c < 2; c++) {
        const sisa_dtype_public cd = c ? SISA_DTYPE_BF16 : SISA_DTYPE_F32;
        char what[96];
        snprintf(what, sizeof what, "bf16 weights, %s activations: persistent kernel vs CUDA graph",
                 c ? "bf16" : "f32");
        double worst = 0;
        if (!steps_with(dir, be, cd, &graph, G) || !steps_with(dir, be, cd, &mega, M)) {
            fail(what, arch, be);
            continue;
        }
        check(rel_err(M, G, n), what, arch, be, &worst);
        printf("%-16s %-8s %s: normalised error %.2e (%s)\n", arch, be, what, worst,
               memcmp(M, G, n * sizeof *G) ? "not bit-identical" : "bit-identical");
    }
    free(G);
    free(M);
}

/* alpha_proj.bias -> +2 in a written model dir (safetensors writer, data copied otherwise) */
static sisa_status push_bias(const char *src_dir, const char *dst_dir) {
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/model.safetensors", src_dir);
    sisa_st_file *f = NULL;
    sisa_status st0 = sisa_st_open(p, &f);
    if (st0 != SISA_OK) return st0;
    sisa_st_entry *e = calloc((size_t)f->n_tensors, sizeof *e);
    float *bias = malloc(4096 * sizeof *bias);
    for (int i = 0; i < 4096; i++) bias[i] = 2.0f;
    for (int i = 0; i < f->n_tensors; i++) {
        const sisa_st_tensor *t = &f->tensors[i];
        e[i] = (sisa_st_entry){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims, .data = t->data};
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        if (strstr(t->name, "alpha_proj.bias")) e[i].data = bias; /* F32 at f32 init */
    }
    snprintf(q, sizeof q, "%s/model.safetensors", dst_dir);
    sisa_status st = sisa_st_write(q, e, f->n_tensors, NULL);
    free(e);
    free(bias);
    sisa_st_close(f);
    if (st == SISA_OK) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/config.json'", src_dir, dst_dir);
        if (system(cmd) != 0) st = SISA_BAD_FILE;
    }
    return st;
}

enum { LONG = 200 };

static void run_clamp(const char *dir, const char *be) {
    const int64_t V = 256;
    sisa_load_options o = {.backend = be, .max_tokens = LONG};
    sisa_model *m = NULL;
    if (sisa_model_load(dir, &o, &m) != SISA_OK) return fail("load (clamp model)", "sisa-fastdecay", be);
    int32_t tok[LONG];
    seq(tok, LONG, 3);
    float *A = malloc(sizeof(float) * LONG * V), *D = malloc(sizeof(float) * LONG * V);
    sisa_clamp_report rep;
    sisa_session *s = NULL;
    double worst = 0;
    int compared = 0, nonfinite = 0;
    if (sisa_model_forward(m, tok, 1, LONG, A, &rep) != SISA_OK) {
        fail("forward", "sisa-fastdecay", be);
        goto done;
    }
    printf("sisa-fastdecay   %-8s form A at T=%d: clamp active %d, max|g-c| layer 0 = %.1f\n", be,
           LONG, rep.any_active, rep.max_abs_u[0]);
    if (!rep.any_active) {
        printf("FAIL sisa-fastdecay %s: the clamp should be active\n", be);
        failures++;
    }
    if (sisa_session_new(m, LONG, &s) != SISA_OK || sisa_session_prefill(s, tok, 1, D) != SISA_OK) {
        fail("session", "sisa-fastdecay", be);
        goto done;
    }
    for (int t = 0; t < LONG; t++) {
        if (t > 0 && sisa_session_step(s, &tok[t], D) != SISA_OK) {
            fail("step", "sisa-fastdecay", be);
            goto done;
        }
        for (int64_t j = 0; j < V; j++) nonfinite += !isfinite(D[j]);
        /* where the prefix's clamp is inactive, form A of the prefix equals the decode step */
        if (t < 12) {
            sisa_clamp_report r2;
            if (sisa_model_forward(m, tok, 1, t + 1, A, &r2) != SISA_OK) {
                fail("prefix forward", "sisa-fastdecay", be);
                goto done;
            }
            if (!r2.any_active) {
                check(rel_err(D, A + (size_t)t * V, V), "fast-decay step vs forward (clamp inactive)",
                      "sisa-fastdecay", be, &worst);
                compared++;
            }
        }
    }
    if (nonfinite) {
        printf("FAIL sisa-fastdecay %s: %d non-finite logits while decoding %d positions\n", be,
               nonfinite, LONG);
        failures++;
    }
    printf("  decoded %d positions, all finite: %s; %d clamp-inactive prefixes equal form A (max "
           "err %.2e)\n", LONG, nonfinite ? "NO" : "yes", compared, worst);
done:
    sisa_session_free(s);
    free(A);
    free(D);
    sisa_model_free(m);
}

static bool backend_present(const char *name) {
    for (int i = 0; i < sisa_backend_count(); i++) {
        sisa_backend_info bi;
        if (sisa_backend_get_info(i, &bi) != SISA_OK || strcmp(bi.name, name)) continue;
        if (!bi.compiled) printf("SKIP backend %s: not compiled in\n", name);
        else if (!bi.available) printf("SKIP backend %s: %s\n", name, bi.reason ? bi.reason : "absent");
        return bi.compiled && bi.available;
    }
    printf("SKIP backend %s: unknown to this build\n", name);
    return false;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *only = argc > 1 ? argv[1] : NULL; /* optional: one backend */
    char root[] = "/tmp/sisa-decode-XXXXXX";
    if (!mkdtemp(root)) return 1;
    const char *archs[2] = {"tiny", "tiny-transformer"};
    char dirs[3][600], dirs16[2][600]; /* dirs16: the same with bf16 weights */
    for (int i = 0; i < 2; i++) {
        sisa_config cfg;
        snprintf(dirs[i], sizeof dirs[i], "%s/%s", root, archs[i]);
        snprintf(dirs16[i], sizeof dirs16[i], "%s/%s-bf16", root, archs[i]);
        if (sisa_config_from_name(archs[i], &cfg) != SISA_OK ||
            sisa_model_init_dir(&cfg, 5 + i, SISA_DTYPE_F32, dirs[i]) != SISA_OK ||
            sisa_model_init_dir(&cfg, 5 + i, SISA_DTYPE_BF16, dirs16[i]) != SISA_OK) {
            printf("FAIL init %s: %s\n", archs[i], sisa_last_error());
            return 1;
        }
    }
    snprintf(dirs[2], sizeof dirs[2], "%s/fastdecay", root);
    mkdir(dirs[2], 0777);
    if (push_bias(dirs[0], dirs[2]) != SISA_OK) {
        printf("FAIL writing the fast-decay model: %s\n", sisa_last_error());
        return 1;
    }
    const char *backends[] = {"cpu-ref", "cpu", "vulkan", "opencl", "cuda"};
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) {
        if (only && strcmp(only, backends[b])) continue;
        if (!backend_present(backends[b])) continue;
        for (int i = 0; i < 2; i++) run_exact(dirs[i], archs[i], backends[b]);
        for (int i = 0; i < 2; i++) run_paths(dirs[i], archs[i], backends[b]);
        if (!strcmp(backends[b], "cuda"))
            for (int i = 0; i < 2; i++) run_mega_vs_graph(dirs16[i], archs[i], backends[b]);
        run_clamp(dirs[2], backends[b]);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) printf("note: could not remove %s\n", root);
    printf(failures ? "%d FAILURES\n" : "all decode checks passed\n", failures);
    return failures ? 1 : 0;
}
