/* cmd_generate.c — `sisa generate`: prefill a prompt, then sample new tokens with the KV cache
 * (form B, docs/GENERATE.md), streaming the decoded text to stdout as the tokens come. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "sisa.h"

static const char *USAGE =
    "sisa generate -m DIR (-p TEXT | --tokens \"1,2,3\") [-n N] [--temp T] [--top-k K] [--top-p P]\n"
    "       [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--backend NAME] [--device N] [--profile]\n"
    "       [--fallback] [--no-eos] [--ids]\n"
    "  defaults: -n 64, --temp 0.8, --top-k 40, --top-p 0.95, --repeat-penalty 1.1 (last 64),\n"
    "  --seed 0; --temp 0 is greedy. Needs DIR/tokenizer.json unless --tokens is given (then\n"
    "  the ids are printed when there is no tokenizer). --ids prints ids instead of text.\n"
    "  Timing (prefill, decode tokens/s) goes to stderr.";

typedef struct out_state {
    int ids_only;
    int n;
} out_state;

static int on_token(int32_t id, const char *piece, size_t len, void *user) {
    out_state *o = user;
    if (o->ids_only || !piece) {
        if (id >= 0) printf("%s%d", o->n++ ? " " : "", id);
    } else if (len) {
        fwrite(piece, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

int sisa_cmd_generate(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *toks = NULL, *v;
    sisa_load_options opts = {.backend = "cpu"};
    sisa_generate_params gp = {.max_new_tokens = 64, .stop_on_eos = 1};
    sisa_sampler_params_default(&gp.sampler);
    gp.sampler.temperature = 0.8f;
    gp.sampler.top_k = 40;
    gp.sampler.top_p = 0.95f;
    gp.sampler.repeat_penalty = 1.1f;
    gp.sampler.repeat_last_n = 64;
    out_state os = {0};
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "-m"))) dir = v;
        else if ((v = cli_opt(argc, argv, &i, "-p"))) prompt = v;
        else if ((v = cli_opt(argc, argv, &i, "--tokens"))) toks = v;
        else if ((v = cli_opt(argc, argv, &i, "-n"))) gp.max_new_tokens = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--temp"))) gp.sampler.temperature = (float)atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--top-k"))) gp.sampler.top_k = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--top-p"))) gp.sampler.top_p = (float)atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--repeat-penalty"))) gp.sampler.repeat_penalty = (float)atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--repeat-last-n"))) gp.sampler.repeat_last_n = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) gp.sampler.seed = strtoull(v, NULL, 10);
        else if ((v = cli_opt(argc, argv, &i, "--backend"))) opts.backend = v;
        else if ((v = cli_opt(argc, argv, &i, "--device"))) opts.device = atoi(v);
        else if (!strcmp(argv[i], "--fallback")) opts.allow_fallback = 1;
        else if (!strcmp(argv[i], "--no-eos")) gp.stop_on_eos = 0;
        else if (!strcmp(argv[i], "--profile")) opts.profile = 1;
        else if (!strcmp(argv[i], "--ids")) os.ids_only = 1;
        else return cli_usage(USAGE);
    }
    if (!dir || (!prompt == !toks) || gp.max_new_tokens < 0) return cli_usage(USAGE);
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    sisa_tokenizer *tok = NULL;
    if (access(path, R_OK) == 0) {
        if (sisa_tokenizer_load(path, &tok) != SISA_OK) return cli_fail("generate: tokenizer");
    } else if (prompt) {
        fprintf(stderr, "sisa generate: %s not found: a text prompt needs a tokenizer (or give "
                        "--tokens \"1,2,3\")\n", path);
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (toks) {
        int k = cli_parse_ids(toks, &ids);
        if (k <= 0) {
            free(ids);
            sisa_tokenizer_free(tok);
            fprintf(stderr, "sisa generate: --tokens must be a comma-separated list of token ids\n");
            return 2;
        }
        n = (size_t)k;
    } else if (sisa_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n) != SISA_OK) {
        sisa_tokenizer_free(tok);
        return cli_fail("generate: encode the prompt");
    }
    if (n == 0) {
        sisa_free(ids);
        sisa_tokenizer_free(tok);
        fprintf(stderr, "sisa generate: the prompt encodes to no tokens\n");
        return 2;
    }
    opts.max_tokens = (int)n; /* the arena fits the prompt's graph; decode steps are smaller */
    sisa_model *m = NULL;
    int rc = 0;
    if (sisa_model_load(dir, &opts, &m) != SISA_OK) {
        rc = cli_fail("generate: load");
    } else {
        if (!os.ids_only && tok && prompt) {
            fputs(prompt, stdout);
            fflush(stdout);
        }
        sisa_generate_stats stt;
        sisa_status st = sisa_generate(m, os.ids_only ? NULL : tok, ids, n, &gp, on_token, &os, &stt);
        printf("\n");
        fflush(stdout); /* the text ends before the timing line on stderr */
        if (st != SISA_OK) {
            rc = cli_fail("generate");
        } else {
            int steps = stt.n_generated > 0 ? stt.n_generated - 1 : 0;
            fprintf(stderr,
                    "[%s] prompt %d tokens: prefill %.3f s (%.1f tok/s); generated %d tokens, "
                    "decode %.3f s (%.2f tok/s)%s\n",
                    opts.backend, stt.n_prompt, stt.prefill_seconds,
                    stt.n_prompt / (stt.prefill_seconds > 0 ? stt.prefill_seconds : 1e-9),
                    stt.n_generated, stt.decode_seconds,
                    steps / (stt.decode_seconds > 0 ? stt.decode_seconds : 1e-9),
                    stt.stop_reason == 1 ? "; stopped at EOS" : "");
            char table[4096];
            if (opts.profile && sisa_model_profile(m, table, sizeof table) == SISA_OK)
                fprintf(stderr, "per-op time, prefill + decode (every node waited for):\n%s", table);
        }
    }
    sisa_model_free(m);
    if (toks) free(ids);
    else sisa_free(ids);
    sisa_tokenizer_free(tok);
    return rc;
}
