/* cmd_run.c — `sisa run`: one full-sequence forward (form A), the top next tokens after the last
 * position, and the clamp report (where forms A and B of SISA.md §2 would differ). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sisa.h"

static const char *USAGE =
    "sisa run -m DIR --tokens \"1,2,3\" [--backend NAME] [--device N] [--fallback] [--compute f32|bf16] [--top-k K]";

static void print_top_k(const float *row, int64_t V, int k) {
    printf("top-%d next tokens after the last position:\n", k);
    char *taken = calloc((size_t)V, 1);
    if (!taken) return;
    /* softmax denominators for probabilities */
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    for (int64_t j = 0; j < V; j++) sum += exp((double)row[j] - mx);
    for (int r = 0; r < k && r < V; r++) {
        int64_t best = -1;
        for (int64_t j = 0; j < V; j++)
            if (!taken[j] && (best < 0 || row[j] > row[best])) best = j;
        taken[best] = 1;
        printf("  %2d. token %-8lld logit %9.4f  p %.4f\n", r + 1, (long long)best, row[best],
               exp((double)row[best] - mx) / sum);
    }
    free(taken);
}

int sisa_cmd_run(int argc, char **argv) {
    const char *dir = NULL, *toks = NULL, *v;
    sisa_load_options opts = {.backend = "cpu"};
    int top_k = 5;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "-m"))) dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--tokens"))) toks = v;
        else if ((v = cli_opt(argc, argv, &i, "--backend"))) opts.backend = v;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) opts.device = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--top-k"))) top_k = atoi(v);
        else if (!strcmp(argv[i], "--fallback")) opts.allow_fallback = 1;
        else if ((v = cli_opt(argc, argv, &i, "--compute"))) {
            if (!strcmp(v, "bf16")) opts.compute_dtype = SISA_DTYPE_BF16;
            else if (strcmp(v, "f32")) return cli_usage(USAGE);
        }
        else return cli_usage(USAGE);
    }
    if (!dir || !toks || top_k < 1) return cli_usage(USAGE);
    int32_t *ids = NULL;
    int T = cli_parse_ids(toks, &ids);
    if (T <= 0) {
        free(ids);
        fprintf(stderr, "sisa run: --tokens must be a comma-separated list of token ids\n");
        return 2;
    }
    opts.max_tokens = T;
    sisa_model *m = NULL;
    if (sisa_model_load(dir, &opts, &m) != SISA_OK) {
        free(ids);
        return cli_fail("run");
    }
    const sisa_config *cfg = sisa_model_config(m);
    float *logits = malloc(sizeof(float) * (size_t)T * (size_t)cfg->vocab_size);
    sisa_clamp_report rep;
    int rc = 0;
    if (!logits) {
        fprintf(stderr, "sisa run: out of memory for %d x %lld logits\n", T, (long long)cfg->vocab_size);
        rc = 1;
    } else if (sisa_model_forward(m, ids, 1, T, logits, &rep) != SISA_OK) {
        rc = cli_fail("run");
    } else {
        printf("model %s: %s, %d tokens, backend %s\n", dir, cfg->d_ssm ? "SISA" : "Transformer", T,
               opts.backend);
        print_top_k(logits + (size_t)(T - 1) * (size_t)cfg->vocab_size, cfg->vocab_size, top_k);
        if (cfg->d_ssm) {
            printf("clamp report (max |g - c| per layer; the clamp bound is %.1f):\n", cfg->ssm_clamp);
            for (int l = 0; l < rep.n_layers; l++)
                printf("  layer %2d: %8.4f%s\n", l, rep.max_abs_u[l],
                       rep.max_abs_u[l] > cfg->ssm_clamp ? "  ACTIVE: form A differs from form B here" : "");
            printf("  clamp %s\n", rep.any_active ? "ACTIVE on this sequence" : "inactive: forms A and B agree");
        }
    }
    free(logits);
    free(ids);
    sisa_model_free(m);
    return rc;
}
