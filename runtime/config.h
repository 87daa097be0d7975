/*
 * config.h — config.json of a model directory (docs/FORMAT.md) <-> sisa_config.
 *
 * The public half (sisa_config_from_name, sisa_config_validate, sisa_model_param_count) is in
 * sisa.h; this header adds the file side used by the model loader, `sisa init` and the tests.
 * Every error names the file and the key.
 */
#ifndef SISA_CONFIG_H
#define SISA_CONFIG_H

#include <stdbool.h>

#include "sisa.h"

/* Limits the loader enforces on top of the model's own rules (they keep every size product of a
 * model, e.g. vocab·d or T·vocab, inside int64 and every position inside int32). */
#define SISA_CONFIG_MAX_DIM ((int64_t)1 << 24)
#define SISA_CONFIG_MAX_LAYERS 4096

/* Defaults of the optional keys. */
void sisa_config_defaults(sisa_config *cfg);

/* Parse config.json text. `what` names the source in messages (normally the file's path). */
sisa_status sisa_config_parse(const char *text, size_t len, const char *what, sisa_config *cfg);
/* Read and parse a config.json file. */
sisa_status sisa_config_load(const char *path, sisa_config *cfg);
/* Write cfg as config.json (format 1, every key spelled out). */
sisa_status sisa_config_save(const sisa_config *cfg, const char *path);

/* "sisa" or "transformer". */
static inline const char *sisa_config_arch(const sisa_config *cfg) {
    return cfg->d_ssm > 0 ? "sisa" : "transformer";
}

/* Parameters of one layer's SSM part (SISA.md §4): 2·d·H·d_s + d·H + H + d·H·d_s/2 + H. */
uint64_t sisa_config_ssm_params_per_layer(const sisa_config *cfg);

#endif
