/*
 * cmd_bench.c — `sisa bench`: whole-model forward throughput on a backend.
 *
 * Prints tokens/s and the achieved GFLOP/s, counting the FLOPs of the definition (every MATMUL
 * as 2·M·N·K, causal attention as half of the full T×T score and value products), so the number
 * can be set against the device's measured GEMM rate (tools/bench for that). The timed forwards
 * leave the logits on the device (what a prefill does); one more forward with the logits copied
 * to the host is reported beside it. --profile adds a per-op time table. Timings are reported,
 * never asserted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "sisa.h"

static const char *USAGE =
    "sisa bench (-m DIR | --config NAME) [--backend NAME] [--device N] [--batch B] [--tokens T]\n"
    "           [--reps R] [--dtype f32|bf16|f16] [--profile] [--fallback] [--compute f32|bf16]";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* FLOPs of one forward of `batch` sequences of T tokens (definition, not kernels). */
static double forward_flops(const sisa_config *c, int batch, int T) {
    double d = (double)c->d_model, H = (double)c->n_heads, ds = (double)c->d_ssm;
    double per_tok = 4 * d * d + 3 * d * (double)c->d_ff; /* Q K V O + FFN weights */
    if (c->d_ssm) per_tok += 2 * d * H * ds + d * H + d * H * ds / 2;
    double mm = 2.0 * (double)batch * T * ((double)c->n_layers * per_tok + (double)c->vocab_size * d);
    double dqk = (double)c->head_dim + ds;
    double pairs = (double)T * (T + 1) / 2; /* causal (i, j <= i) */
    double attn = 2.0 * batch * H * pairs * (dqk + (double)c->head_dim) * (double)c->n_layers;
    return mm + attn;
}

static int cleanup_dir(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    return rmdir(dir);
}

int sisa_cmd_bench(int argc, char **argv) {
    const char *dir = NULL, *name = NULL, *dtype = "f32", *v;
    sisa_load_options opts = {.backend = "cpu"};
    int batch = 1, T = 128, reps = 3;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "-m"))) dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--config"))) name = v;
        else if ((v = cli_opt(argc, argv, &i, "--backend"))) opts.backend = v;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) opts.device = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--batch"))) batch = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--tokens"))) T = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--reps"))) reps = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--dtype"))) dtype = v;
        else if (!strcmp(argv[i], "--fallback")) opts.allow_fallback = 1;
        else if (!strcmp(argv[i], "--profile")) opts.profile = 1;
        else if ((v = cli_opt(argc, argv, &i, "--compute"))) {
            if (!strcmp(v, "bf16")) opts.compute_dtype = SISA_DTYPE_BF16;
            else if (strcmp(v, "f32")) return cli_usage(USAGE);
        }
        else return cli_usage(USAGE);
    }
    if ((!dir) == (!name) || batch < 1 || T < 1 || reps < 1) return cli_usage(USAGE);
    char tmp[] = "/tmp/sisa-bench-XXXXXX";
    if (name) {
        sisa_config cfg;
        sisa_dtype_public dt = !strcmp(dtype, "bf16") ? SISA_DTYPE_BF16
                             : !strcmp(dtype, "f16")  ? SISA_DTYPE_F16
                                                      : SISA_DTYPE_F32;
        if (!mkdtemp(tmp)) {
            perror("sisa bench: mkdtemp");
            return 1;
        }
        if (sisa_config_from_name(name, &cfg) != SISA_OK || sisa_model_init_dir(&cfg, 1, dt, tmp) != SISA_OK) {
            int rc = cli_fail("bench");
            cleanup_dir(tmp);
            return rc;
        }
        dir = tmp;
    }
    opts.max_batch = batch;
    opts.max_tokens = T;
    sisa_model *m = NULL;
    sisa_status st = sisa_model_load(dir, &opts, &m);
    if (name) cleanup_dir(tmp);
    if (st != SISA_OK) return cli_fail("bench");
    const sisa_config *cfg = sisa_model_config(m);
    size_t n = (size_t)batch * (size_t)T;
    int32_t *ids = malloc(sizeof *ids * n);
    float *logits = malloc(sizeof *logits * n * (size_t)cfg->vocab_size);
    int rc = 0;
    if (!ids || !logits) {
        fprintf(stderr, "sisa bench: out of host memory\n");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 2654435761u) % (uint64_t)cfg->vocab_size);
    /* warm-up: first-use compilation, allocation and caches stay out of the numbers */
    if (sisa_model_forward(m, ids, batch, T, logits, NULL) != SISA_OK) {
        rc = cli_fail("bench");
        goto done;
    }
    double *times = malloc(sizeof *times * (size_t)reps);
    for (int r = 0; times && r < reps; r++) {
        double t0 = now_s();
        if (sisa_model_forward(m, ids, batch, T, NULL, NULL) != SISA_OK) {
            rc = cli_fail("bench");
            break;
        }
        times[r] = now_s() - t0;
    }
    double t_read = now_s();
    if (rc == 0 && sisa_model_forward(m, ids, batch, T, logits, NULL) != SISA_OK) rc = cli_fail("bench");
    t_read = now_s() - t_read;
    if (times && rc == 0) {
        /* median */
        for (int a = 0; a < reps; a++)
            for (int b = a + 1; b < reps; b++)
                if (times[b] < times[a]) {
                    double t = times[a];
                    times[a] = times[b];
                    times[b] = t;
                }
        double med = times[reps / 2];
        double fl = forward_flops(cfg, batch, T);
        uint64_t params = 0;
        sisa_model_param_count(cfg, &params);
        printf("| model | backend | batch | T | median s | tokens/s | GFLOP/s | s with logits to host |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
        printf("| %s d_s=%lld (%.1fM params, %s%s) | %s | %d | %d | %.4f | %.1f | %.2f | %.4f |\n",
               cfg->d_ssm ? "SISA" : "Transformer", (long long)cfg->d_ssm, (double)params / 1e6,
               dtype, opts.compute_dtype == SISA_DTYPE_BF16 ? ", bf16 activations" : "",
               opts.backend, batch, T, med, (double)n / med, fl / med / 1e9, t_read);
        if (opts.profile) {
            char table[4096];
            if (sisa_model_profile(m, table, sizeof table) == SISA_OK)
                printf("\nper-op time (each node waited for; warm-up and readback included):\n%s", table);
        }
    }
    free(times);
done:
    free(ids);
    free(logits);
    sisa_model_free(m);
    return rc;
}
