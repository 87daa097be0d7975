/* cmd_init.c — `sisa init`: write a randomly initialised model directory (SISA.md §6) for a
 * published configuration name or a config.json file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sisa.h"

static const char *USAGE =
    "sisa init (--config NAME | --config-file FILE) -o DIR [--seed N] [--dtype f32|bf16|f16]\n"
    "  NAME: tiny, small, transformer-{50m,152m,369m}, sisa-{50m,152m,369m}-ds{16,32,64,128}";

int sisa_cmd_init(int argc, char **argv) {
    const char *name = NULL, *out = NULL, *dtype = "f32", *v;
    unsigned long long seed = 1234;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "--config"))) name = v;
        else if ((v = cli_opt(argc, argv, &i, "-o"))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) seed = strtoull(v, NULL, 10);
        else if ((v = cli_opt(argc, argv, &i, "--dtype"))) dtype = v;
        else return cli_usage(USAGE);
    }
    if (!name || !out) return cli_usage(USAGE);
    sisa_dtype_public dt;
    if (!strcmp(dtype, "f32")) dt = SISA_DTYPE_F32;
    else if (!strcmp(dtype, "bf16")) dt = SISA_DTYPE_BF16;
    else if (!strcmp(dtype, "f16")) dt = SISA_DTYPE_F16;
    else {
        fprintf(stderr, "sisa init: unknown dtype '%s' (f32, bf16, f16)\n", dtype);
        return 2;
    }
    sisa_config cfg;
    if (sisa_config_from_name(name, &cfg) != SISA_OK) return cli_fail("init");
    if (sisa_model_init_dir(&cfg, seed, dt, out) != SISA_OK) return cli_fail("init");
    uint64_t n = 0;
    if (sisa_model_param_count(&cfg, &n) != SISA_OK) return cli_fail("init");
    printf("wrote %s: %s, %llu parameters, d=%lld H=%lld L=%lld d_s=%lld d_ff=%lld, %s, seed %llu\n",
           out, name, (unsigned long long)n, (long long)cfg.d_model, (long long)cfg.n_heads,
           (long long)cfg.n_layers, (long long)cfg.d_ssm, (long long)cfg.d_ff, dtype, seed);
    return 0;
}
