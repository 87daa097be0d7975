/*
 * config.c — the model configuration: config.json parsing and writing, the published
 * configurations of SISA.md §4, validation and the parameter count.
 *
 * config.json is strict on purpose: an unknown key, a wrong type or a missing required key is an
 * error naming the file and the key, because a typo ("d_sms") must never silently fall back to a
 * default and change the model.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "error.h"

void sisa_config_defaults(sisa_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->head_dim = 64;
    cfg->max_seq_len = 2048;
    cfg->norm_eps = 1e-6;
    cfg->rope_base = 10000.0;
    cfg->ssm_clamp = 11.0;
    cfg->eos_token_id = -1;
}

/* ---- validation ---- */

static sisa_status validate(const sisa_config *c, const char *what) {
    const int64_t M = SISA_CONFIG_MAX_DIM;
    struct { const char *key; int64_t v; int64_t lo, hi; } ints[] = {
        {"vocab_size", c->vocab_size, 1, INT32_MAX},
        {"d_model", c->d_model, 1, M},
        {"n_heads", c->n_heads, 1, M},
        {"head_dim", c->head_dim, 2, M},
        {"n_layers", c->n_layers, 1, SISA_CONFIG_MAX_LAYERS},
        {"d_ssm", c->d_ssm, 0, M},
        {"d_ff", c->d_ff, 1, M},
        {"max_seq_len", c->max_seq_len, 1, M},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].v < ints[i].lo || ints[i].v > ints[i].hi)
            return sisa_err(SISA_INVALID_ARG, "%s: key '%s' = %lld: must lie in [%lld, %lld]", what,
                            ints[i].key, (long long)ints[i].v, (long long)ints[i].lo,
                            (long long)ints[i].hi);
    if (c->head_dim % 2)
        return sisa_err(SISA_INVALID_ARG, "%s: key 'head_dim' = %lld: must be even (RoPE pairs)",
                        what, (long long)c->head_dim);
    if (c->n_heads * c->head_dim != c->d_model)
        return sisa_err(SISA_INVALID_ARG,
                        "%s: key 'd_model' = %lld: must equal n_heads * head_dim = %lld * %lld = %lld",
                        what, (long long)c->d_model, (long long)c->n_heads,
                        (long long)c->head_dim, (long long)(c->n_heads * c->head_dim));
    if (c->d_ssm % 2)
        return sisa_err(SISA_INVALID_ARG,
                        "%s: key 'd_ssm' = %lld: must be even (the SSM channels rotate in pairs)",
                        what, (long long)c->d_ssm);
    if (c->n_heads * c->d_ssm > M)
        return sisa_err(SISA_INVALID_ARG, "%s: key 'd_ssm' = %lld: n_heads * d_ssm exceeds %lld",
                        what, (long long)c->d_ssm, (long long)M);
    if (!(c->norm_eps > 0.0) || !isfinite(c->norm_eps))
        return sisa_err(SISA_INVALID_ARG, "%s: key 'norm_eps' = %g: must be positive and finite",
                        what, c->norm_eps);
    if (!(c->rope_base > 1.0) || !isfinite(c->rope_base))
        return sisa_err(SISA_INVALID_ARG, "%s: key 'rope_base' = %g: must be finite and > 1", what,
                        c->rope_base);
    if (!(c->ssm_clamp > 0.0) || !isfinite(c->ssm_clamp))
        return sisa_err(SISA_INVALID_ARG, "%s: key 'ssm_clamp' = %g: must be positive and finite",
                        what, c->ssm_clamp);
    if (c->eos_token_id < -1 || c->eos_token_id >= c->vocab_size)
        return sisa_err(SISA_INVALID_ARG,
                        "%s: key 'eos_token_id' = %lld: must be -1 (none) or lie in [0, %lld)", what,
                        (long long)c->eos_token_id, (long long)c->vocab_size);
    return SISA_OK;
}

sisa_status sisa_config_validate(const sisa_config *cfg) {
    if (!cfg) return sisa_err(SISA_INVALID_ARG, "config: NULL configuration");
    return validate(cfg, "config");
}

/* ---- parameter count (SISA.md §4) ---- */

uint64_t sisa_config_ssm_params_per_layer(const sisa_config *c) {
    if (c->d_ssm <= 0) return 0;
    uint64_t d = (uint64_t)c->d_model, H = (uint64_t)c->n_heads, ds = (uint64_t)c->d_ssm;
    return 2 * d * H * ds   /* W_B, W_C */
           + d * H + H      /* alpha_proj weight + bias */
           + d * H * ds / 2 /* theta_proj */
           + H;             /* lambda_raw */
}

sisa_status sisa_model_param_count(const sisa_config *cfg, uint64_t *out) {
    if (!out) return sisa_err(SISA_INVALID_ARG, "param count: NULL output");
    SISA_TRY(sisa_config_validate(cfg));
    uint64_t d = (uint64_t)cfg->d_model, ff = (uint64_t)cfg->d_ff;
    uint64_t per_layer = 4 * d * d        /* W_Q, W_K, W_V, W_O */
                         + 2 * d          /* attn_norm, ffn_norm */
                         + 3 * d * ff     /* w_gate, w_up, w_down */
                         + sisa_config_ssm_params_per_layer(cfg);
    *out = (uint64_t)cfg->vocab_size * d /* embedding, tied with the output: counted once */
           + (uint64_t)cfg->n_layers * per_layer + d /* final_norm */;
    return SISA_OK;
}

/* ---- published configurations (SISA.md §4) ---- */

typedef struct scale_row {
    const char *scale;
    int64_t d, H, L, dff_transformer;
    int64_t ds[4], dff[4];
} scale_row;

static const scale_row scales[] = {
    {"50m", 512, 8, 6, 2048, {16, 32, 64, 128}, {1939, 1832, 1619, 1192}},
    {"152m", 768, 12, 12, 3072, {16, 32, 64, 128}, {2908, 2748, 2428, 1788}},
    {"369m", 1024, 16, 24, 2944, {16, 32, 64, 128}, {2725, 2512, 2085, 1232}},
};

static void published(sisa_config *c, const scale_row *r) {
    sisa_config_defaults(c);
    c->vocab_size = 50277;
    c->d_model = r->d;
    c->n_heads = r->H;
    c->head_dim = 64;
    c->n_layers = r->L;
    c->d_ff = r->dff_transformer;
    c->max_seq_len = 2048;
    c->eos_token_id = 0;
}

static void test_sized(sisa_config *c, int64_t V, int64_t d, int64_t H, int64_t L, int64_t ds,
                       int64_t ff, int64_t T) {
    sisa_config_defaults(c);
    c->vocab_size = V;
    c->d_model = d;
    c->n_heads = H;
    c->head_dim = d / H;
    c->n_layers = L;
    c->d_ssm = ds;
    c->d_ff = ff;
    c->max_seq_len = T;
    c->eos_token_id = 0;
}

static const char *name_list =
    "sisa-{50m,152m,369m}-ds{16,32,64,128}, transformer-{50m,152m,369m}, tiny, tiny-transformer, "
    "small, small-transformer";

sisa_status sisa_config_from_name(const char *name, sisa_config *cfg) {
    if (!name || !cfg) return sisa_err(SISA_INVALID_ARG, "config from name: NULL argument");
    /* test-sized: tiny (byte vocabulary, ~0.2M params), small (real tokenizer vocabulary, ~16M) */
    if (!strcmp(name, "tiny") || !strcmp(name, "tiny-transformer")) {
        test_sized(cfg, 256, 128, 2, 2, name[4] ? 0 : 16, 256, 256);
        return SISA_OK;
    }
    if (!strcmp(name, "small") || !strcmp(name, "small-transformer")) {
        test_sized(cfg, 50277, 256, 4, 4, name[5] ? 0 : 16, 768, 1024);
        return SISA_OK;
    }
    for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++) {
        const scale_row *r = &scales[i];
        char buf[64];
        snprintf(buf, sizeof buf, "transformer-%s", r->scale);
        if (!strcmp(name, buf)) {
            published(cfg, r);
            return SISA_OK;
        }
        for (int j = 0; j < 4; j++) {
            snprintf(buf, sizeof buf, "sisa-%s-ds%lld", r->scale, (long long)r->ds[j]);
            if (!strcmp(name, buf)) {
                published(cfg, r);
                cfg->d_ssm = r->ds[j];
                cfg->d_ff = r->dff[j];
                return SISA_OK;
            }
        }
    }
    return sisa_err(SISA_INVALID_ARG, "unknown configuration name '%s' (known: %s)", name, name_list);
}

/* ---- config.json ---- */

typedef enum { K_STR, K_INT, K_NUM } key_kind;

typedef struct key_def {
    const char *key;
    key_kind kind;
    bool required;
    size_t off; /* offset in sisa_config (K_INT: int64_t, K_NUM: double); K_STR: unused */
} key_def;

#define OFF(f) offsetof(sisa_config, f)
static const key_def keys[] = {
    {"format", K_STR, true, 0},
    {"format_version", K_INT, true, 0},
    {"arch", K_STR, true, 0},
    {"vocab_size", K_INT, true, OFF(vocab_size)},
    {"d_model", K_INT, true, OFF(d_model)},
    {"n_heads", K_INT, true, OFF(n_heads)},
    {"head_dim", K_INT, true, OFF(head_dim)},
    {"n_layers", K_INT, true, OFF(n_layers)},
    {"d_ssm", K_INT, false, OFF(d_ssm)},
    {"d_ff", K_INT, true, OFF(d_ff)},
    {"max_seq_len", K_INT, true, OFF(max_seq_len)},
    {"norm_eps", K_NUM, false, OFF(norm_eps)},
    {"rope_base", K_NUM, false, OFF(rope_base)},
    {"ssm_clamp", K_NUM, false, OFF(ssm_clamp)},
    {"eos_token_id", K_INT, false, OFF(eos_token_id)},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

static const char *json_type(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* Line and column of byte `pos` in text (1-based). */
static void line_col(const char *text, size_t pos, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static sisa_status parse_object(const cJSON *root, const char *what, sisa_config *cfg) {
    bool seen[N_KEYS] = {false};
    char arch[32] = "";
    for (const cJSON *it = root->child; it; it = it->next) {
        int k = -1;
        for (int i = 0; i < N_KEYS; i++)
            if (it->string && !strcmp(it->string, keys[i].key)) k = i;
        if (k < 0)
            return sisa_err(SISA_BAD_FILE,
                            "%s: key '%s': unknown key (a typo must not silently change the model; "
                            "the keys are listed in docs/FORMAT.md)",
                            what, it->string ? it->string : "");
        const key_def *kd = &keys[k];
        if (seen[k]) return sisa_err(SISA_BAD_FILE, "%s: key '%s': appears twice", what, kd->key);
        seen[k] = true;
        switch (kd->kind) {
        case K_STR:
            if (!cJSON_IsString(it))
                return sisa_err(SISA_BAD_FILE, "%s: key '%s': expected a string, got %s", what,
                                kd->key, json_type(it));
            if (!strcmp(kd->key, "format") && strcmp(it->valuestring, "sisa"))
                return sisa_err(SISA_BAD_FILE, "%s: key 'format': expected \"sisa\", got \"%s\"",
                                what, it->valuestring);
            if (!strcmp(kd->key, "arch")) {
                if (strcmp(it->valuestring, "sisa") && strcmp(it->valuestring, "transformer"))
                    return sisa_err(SISA_BAD_FILE,
                                    "%s: key 'arch': expected \"sisa\" or \"transformer\", got \"%s\"",
                                    what, it->valuestring);
                snprintf(arch, sizeof arch, "%s", it->valuestring);
            }
            break;
        case K_INT: {
            double v = it->valuedouble;
            if (!cJSON_IsNumber(it))
                return sisa_err(SISA_BAD_FILE, "%s: key '%s': expected an integer, got %s", what,
                                kd->key, json_type(it));
            if (v != floor(v) || fabs(v) > 9007199254740992.0)
                return sisa_err(SISA_BAD_FILE, "%s: key '%s': expected an integer, got %g", what,
                                kd->key, v);
            if (!strcmp(kd->key, "format_version")) {
                if (v != 1)
                    return sisa_err(SISA_BAD_FILE,
                                    "%s: key 'format_version': %g is not supported (this build "
                                    "reads version 1)",
                                    what, v);
            } else {
                *(int64_t *)((char *)cfg + kd->off) = (int64_t)v;
            }
            break;
        }
        case K_NUM:
            if (!cJSON_IsNumber(it))
                return sisa_err(SISA_BAD_FILE, "%s: key '%s': expected a number, got %s", what,
                                kd->key, json_type(it));
            *(double *)((char *)cfg + kd->off) = it->valuedouble;
            break;
        }
    }
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].required && !seen[i])
            return sisa_err(SISA_BAD_FILE, "%s: key '%s': missing (required)", what, keys[i].key);
    bool has_ds = false;
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].key, "d_ssm")) has_ds = seen[i];
    if (!strcmp(arch, "sisa") && (!has_ds || cfg->d_ssm <= 0))
        return sisa_err(SISA_BAD_FILE, "%s: key 'd_ssm': arch \"sisa\" needs d_ssm > 0 (got %s)",
                        what, has_ds ? "0 or less" : "no d_ssm");
    if (!strcmp(arch, "transformer") && cfg->d_ssm != 0)
        return sisa_err(SISA_BAD_FILE,
                        "%s: key 'd_ssm': arch \"transformer\" needs d_ssm = 0 or absent (got %lld)",
                        what, (long long)cfg->d_ssm);
    return SISA_OK;
}

sisa_status sisa_config_parse(const char *text, size_t len, const char *what, sisa_config *cfg) {
    if (!text || !cfg) return sisa_err(SISA_INVALID_ARG, "config parse: NULL argument");
    if (!what) what = "config.json";
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line, col;
        line_col(text, pos, &line, &col);
        return sisa_err(SISA_BAD_FILE, "%s: not valid JSON (error near line %d, column %d)", what,
                        line, col);
    }
    /* nothing but whitespace may follow the object */
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0') {
            cJSON_Delete(root);
            return sisa_err(SISA_BAD_FILE, "%s: text after the JSON object", what);
        }
    sisa_status st;
    if (!cJSON_IsObject(root)) {
        st = sisa_err(SISA_BAD_FILE, "%s: expected a JSON object at the top, got %s", what,
                      json_type(root));
    } else {
        sisa_config c;
        sisa_config_defaults(&c);
        st = parse_object(root, what, &c);
        if (st == SISA_OK) {
            st = validate(&c, what);
            if (st != SISA_OK) st = SISA_BAD_FILE; /* the file is wrong, not an argument */
        }
        if (st == SISA_OK) *cfg = c;
    }
    cJSON_Delete(root);
    return st;
}

sisa_status sisa_config_load(const char *path, sisa_config *cfg) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return sisa_err(SISA_BAD_FILE, "%s: cannot open (%s)", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    sisa_status st = SISA_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t nc = cap ? cap * 2 : 8192;
            if (nc > ((size_t)16 << 20)) {
                st = sisa_err(SISA_BAD_FILE, "%s: larger than 16 MiB: not a config file", path);
                break;
            }
            char *nt = realloc(text, nc);
            if (!nt) {
                st = sisa_err(SISA_OUT_OF_MEMORY, "%s: out of host memory", path);
                break;
            }
            text = nt;
            cap = nc;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) st = sisa_err(SISA_BAD_FILE, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (st == SISA_OK) {
        text[len] = '\0';
        st = sisa_config_parse(text, len, path, cfg);
    }
    free(text);
    return st;
}

sisa_status sisa_config_save(const sisa_config *cfg, const char *path) {
    SISA_TRY(sisa_config_validate(cfg));
    FILE *f = fopen(path, "wb");
    if (!f) return sisa_err(SISA_BAD_FILE, "%s: cannot create (%s)", path, strerror(errno));
    int n = fprintf(f,
                    "{\n"
                    "  \"format\": \"sisa\",\n"
                    "  \"format_version\": 1,\n"
                    "  \"arch\": \"%s\",\n"
                    "  \"vocab_size\": %lld,\n"
                    "  \"d_model\": %lld,\n"
                    "  \"n_heads\": %lld,\n"
                    "  \"head_dim\": %lld,\n"
                    "  \"n_layers\": %lld,\n"
                    "  \"d_ssm\": %lld,\n"
                    "  \"d_ff\": %lld,\n"
                    "  \"max_seq_len\": %lld,\n"
                    "  \"norm_eps\": %.17g,\n"
                    "  \"rope_base\": %.17g,\n"
                    "  \"ssm_clamp\": %.17g,\n"
                    "  \"eos_token_id\": %lld\n"
                    "}\n",
                    sisa_config_arch(cfg), (long long)cfg->vocab_size, (long long)cfg->d_model,
                    (long long)cfg->n_heads, (long long)cfg->head_dim, (long long)cfg->n_layers,
                    (long long)cfg->d_ssm, (long long)cfg->d_ff, (long long)cfg->max_seq_len,
                    cfg->norm_eps, cfg->rope_base, cfg->ssm_clamp, (long long)cfg->eos_token_id);
    bool bad = n < 0 || ferror(f);
    if (fclose(f) != 0) bad = true;
    if (bad) return sisa_err(SISA_BAD_FILE, "%s: write failed (%s)", path, strerror(errno));
    return SISA_OK;
}
