/*
 * test_bad_input.c — the bad-input table: every way a model directory or a forward call can be
 * wrong, each made on the fly in a temporary directory with the safetensors writer, each
 * asserting the exact status and a substring of the message (which must name the file, tensor,
 * key or argument at fault). CI runs it under ASan+UBSan: no crash, no leak. A failed forward
 * must also leave the caller's logits untouched.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "safetensors.h"

static int failures = 0;
static char root[256];

/* A small SISA model: 1 layer, 2 heads, d_s 16 — every tensor kind present, loads in a blink. */
static sisa_config base_cfg(void) {
    sisa_config c;
    sisa_config_defaults(&c);
    c.vocab_size = 64;
    c.d_model = 128;
    c.n_heads = 2;
    c.head_dim = 64;
    c.n_layers = 1;
    c.d_ssm = 16;
    c.d_ff = 64;
    c.max_seq_len = 32;
    c.eos_token_id = 0;
    return c;
}

static void path_of(char *buf, size_t n, const char *dir, const char *file) {
    snprintf(buf, n, "%s/%s", dir, file);
}

static void write_text(const char *dir, const char *file, const char *text) {
    char p[512];
    path_of(p, sizeof p, dir, file);
    FILE *f = fopen(p, "wb");
    if (!f) {
        printf("cannot write %s\n", p);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void write_config(const char *dir, const sisa_config *c) {
    char p[512];
    path_of(p, sizeof p, dir, "config.json");
    if (sisa_config_save(c, p) != SISA_OK) {
        printf("config save: %s\n", sisa_last_error());
        exit(2);
    }
}

/* ---- model.safetensors with one deliberate defect ---- */

typedef enum {
    DEF_NONE,
    DEF_DROP,        /* leave `target` out */
    DEF_EXTRA,       /* add a tensor named `target` */
    DEF_DTYPE,       /* store `target` as `dtype` */
    DEF_SHAPE,       /* store `target` with its dims swapped / changed */
    DEF_NAN,         /* element 5 of `target` is NaN */
    DEF_INF,         /* element 3 of `target` is +Inf */
} defect;

typedef struct fill_ctx {
    defect def;
    int bad;
} fill_ctx;

static sisa_status fill(void *user, const sisa_st_entry *e, void *dst, size_t nbytes) {
    const fill_ctx *c = user;
    size_t es = sisa_dtype_size(e->dtype), n = nbytes / es;
    for (size_t i = 0; i < n; i++)
        sisa_store_elem((char *)dst + i * es, e->dtype, 0.01 * (double)((i * 7) % 13) - 0.06);
    if (c->bad && c->def == DEF_NAN && n > 5) sisa_store_elem((char *)dst + 5 * es, e->dtype, NAN);
    if (c->bad && c->def == DEF_INF && n > 3) sisa_store_elem((char *)dst + 3 * es, e->dtype, INFINITY);
    return SISA_OK;
}

static void write_model(const char *dir, const sisa_config *cfg, defect def, const char *target,
                        sisa_dtype dtype, sisa_dtype base_dtype) {
    write_config(dir, cfg);
    sisa_weight_spec *specs = NULL;
    int n = 0;
    if (sisa_model_weight_specs(cfg, &specs, &n) != SISA_OK) {
        printf("specs: %s\n", sisa_last_error());
        exit(2);
    }
    sisa_st_entry *e = calloc((size_t)n + 1, sizeof *e);
    fill_ctx *ctx = calloc((size_t)n + 1, sizeof *ctx);
    int k = 0;
    for (int i = 0; i < n; i++) {
        bool is_target = target && !strcmp(specs[i].name, target);
        if (is_target && def == DEF_DROP) continue;
        ctx[k] = (fill_ctx){.def = def, .bad = is_target};
        e[k] = (sisa_st_entry){.name = specs[i].name, .n_dims = specs[i].n_dims, .fill = fill,
                               .user = &ctx[k],
                               .dtype = specs[i].f32_only ? SISA_F32 : base_dtype};
        e[k].shape[0] = specs[i].shape[0];
        e[k].shape[1] = specs[i].shape[1];
        if (is_target && def == DEF_DTYPE) e[k].dtype = dtype;
        if (is_target && def == DEF_SHAPE) {
            e[k].shape[0] = specs[i].shape[0] + 2;
        }
        k++;
    }
    if (def == DEF_EXTRA) {
        ctx[k] = (fill_ctx){0};
        e[k] = (sisa_st_entry){.name = target, .dtype = SISA_F32, .n_dims = 1, .shape = {4},
                               .fill = fill, .user = &ctx[k]};
        k++;
    }
    char p[512];
    path_of(p, sizeof p, dir, "model.safetensors");
    if (sisa_st_write(p, e, k, NULL) != SISA_OK) {
        printf("write: %s\n", sisa_last_error());
        exit(2);
    }
    free(e);
    free(ctx);
    free(specs);
}

static void good_model(const char *dir) {
    sisa_config c = base_cfg();
    write_model(dir, &c, DEF_NONE, NULL, SISA_F32, SISA_F32);
}

/* A raw model.safetensors (header verbatim) next to a valid config.json. */
static void raw_model(const char *dir, const char *header, uint64_t hlen, size_t data_len) {
    sisa_config c = base_cfg();
    write_config(dir, &c);
    unsigned char *data = calloc(1, data_len + 1);
    char p[512];
    path_of(p, sizeof p, dir, "model.safetensors");
    if (sisa_st_write_raw(p, header, hlen, data, data_len) != SISA_OK) {
        printf("raw write: %s\n", sisa_last_error());
        exit(2);
    }
    free(data);
}

static long file_size(const char *dir, const char *file) {
    char p[512];
    path_of(p, sizeof p, dir, file);
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

/* ---- the makers, one per row ---- */

static void mk_no_config(const char *d) {
    good_model(d);
    char p[512];
    path_of(p, sizeof p, d, "config.json");
    remove(p);
}
static void mk_no_weights(const char *d) {
    sisa_config c = base_cfg();
    write_config(d, &c);
}
static void mk_truncated(const char *d) {
    good_model(d);
    char p[512];
    path_of(p, sizeof p, d, "model.safetensors");
    if (truncate(p, file_size(d, "model.safetensors") - 100) != 0) exit(2);
}
static void mk_tiny_file(const char *d) {
    good_model(d);
    char p[512];
    path_of(p, sizeof p, d, "model.safetensors");
    if (truncate(p, 5) != 0) exit(2);
}
static void mk_empty_file(const char *d) {
    good_model(d);
    char p[512];
    path_of(p, sizeof p, d, "model.safetensors");
    if (truncate(p, 0) != 0) exit(2);
}
static void mk_hlen_past_eof(const char *d) {
    good_model(d);
    char p[512];
    path_of(p, sizeof p, d, "model.safetensors");
    FILE *f = fopen(p, "r+b");
    uint64_t big = (uint64_t)file_size(d, "model.safetensors");
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(big >> (8 * i));
    fwrite(b, 1, 8, f);
    fclose(f);
}
static void mk_hlen_huge(const char *d) { raw_model(d, "{}", UINT64_MAX - 3, 0); }
static void mk_not_json(const char *d) { raw_model(d, "this is not json", 0, 0); }
static void mk_json_array(const char *d) { raw_model(d, "[1, 2]  ", 0, 0); }
static void mk_overlap(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12);
}
static void mk_out_of_range(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8);
}
static void mk_hole(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 0, 12);
}
static void mk_trailing(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 20);
}
static void mk_bad_dtype(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8);
}
static void mk_size_mismatch(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8);
}
static void mk_shape_overflow(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
              0, 8);
}
static void mk_duplicate(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8);
}
static void mk_missing_field(const char *d) {
    raw_model(d, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 0, 4);
}
static void mk_lambda_bf16(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_DTYPE, "layers.0.lambda_raw", SISA_BF16, SISA_F32);
}
static void mk_weight_i32(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_DTYPE, "layers.0.W_K.weight", SISA_I32, SISA_F32);
}
static void mk_weight_f64(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_DTYPE, "final_norm.weight", SISA_F64, SISA_F32);
}
static void mk_shape(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_SHAPE, "layers.0.W_B.weight", SISA_F32, SISA_F32);
}
static void mk_shape_vs_config(const char *d) {
    /* weights of a d_ff = 64 model, config.json saying d_ff = 96 */
    good_model(d);
    sisa_config c = base_cfg();
    c.d_ff = 96;
    write_config(d, &c);
}
static void mk_missing(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_DROP, "layers.0.W_V.weight", SISA_F32, SISA_F32);
}
static void mk_extra(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_EXTRA, "layers.0.bogus.weight", SISA_F32, SISA_F32);
}
static void mk_transformer_weights_sisa_config(const char *d) {
    sisa_config c = base_cfg();
    c.d_ssm = 0;
    write_model(d, &c, DEF_NONE, NULL, SISA_F32, SISA_F32);
    c.d_ssm = 16;
    write_config(d, &c);
}
static void mk_nan(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_NAN, "layers.0.ffn.w_up.weight", SISA_F32, SISA_F32);
}
static void mk_inf_bf16(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_INF, "layers.0.theta_proj.weight", SISA_F32, SISA_BF16);
}
static void mk_nan_f16(const char *d) {
    sisa_config c = base_cfg();
    write_model(d, &c, DEF_NAN, "embed.weight", SISA_F32, SISA_F16);
}
static void mk_cfg_text(const char *d, const char *json) {
    good_model(d);
    write_text(d, "config.json", json);
}
#define CFG_HEAD "{\"format\": \"sisa\", \"format_version\": 1, "
#define CFG_BODY                                                                                   \
    "\"vocab_size\": 64, \"n_heads\": 2, \"head_dim\": 64, \"n_layers\": 1, \"d_ff\": 64, "        \
    "\"max_seq_len\": 32"
static void mk_odd_ds(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"sisa\", \"d_model\": 128, \"d_ssm\": 15, " CFG_BODY "}");
}
static void mk_bad_d(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"sisa\", \"d_model\": 100, \"d_ssm\": 16, " CFG_BODY "}");
}
static void mk_unknown_key(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"sisa\", \"d_model\": 128, \"d_sms\": 16, " CFG_BODY "}");
}
static void mk_cfg_not_json(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"sisa\",\n \"d_model\": 128 \"d_ssm\": 16, " CFG_BODY "}");
}
static void mk_cfg_missing_key(const char *d) {
    mk_cfg_text(d, "{\"format\": \"sisa\", \"format_version\": 1, \"arch\": \"sisa\", \"d_model\": 128, "
                   "\"d_ssm\": 16, \"n_heads\": 2, \"head_dim\": 64, \"n_layers\": 1, \"d_ff\": 64, "
                   "\"max_seq_len\": 32}");
}
static void mk_cfg_type(const char *d) {
    mk_cfg_text(d, "{\"format\": \"sisa\", \"format_version\": 1, \"arch\": \"sisa\", \"d_model\": 128, "
                   "\"d_ssm\": 16, \"n_heads\": \"2\", \"vocab_size\": 64, \"head_dim\": 64, "
                   "\"n_layers\": 1, \"d_ff\": 64, \"max_seq_len\": 32}");
}
static void mk_cfg_version(const char *d) {
    mk_cfg_text(d, "{\"format\": \"sisa\", \"format_version\": 2, \"arch\": \"sisa\", \"d_model\": 128, "
                   "\"d_ssm\": 16, " CFG_BODY "}");
}
static void mk_cfg_arch(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"transformer\", \"d_model\": 128, \"d_ssm\": 16, " CFG_BODY "}");
}
static void mk_cfg_eos(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"sisa\", \"d_model\": 128, \"d_ssm\": 16, \"eos_token_id\": 64, "
                   CFG_BODY "}");
}
static void mk_cfg_fraction(const char *d) {
    mk_cfg_text(d, CFG_HEAD "\"arch\": \"sisa\", \"d_model\": 128.5, \"d_ssm\": 16, " CFG_BODY "}");
}

/* ---- the table ---- */

enum { AT_LOAD, AT_FORWARD };

typedef struct row {
    const char *what;
    void (*make)(const char *dir);
    const char *backend;
    int max_tokens, max_batch; /* load options (0 = defaults) */
    int stage;
    /* forward: batch, T, one token replaced at (row, pos) by `tok`, NULL pointers */
    int batch, T, tok_row, tok_pos;
    int32_t tok;
    int null_tokens, null_logits;
    sisa_status want;
    const char *sub1, *sub2; /* substrings the message must contain */
} row;

static const row rows[] = {
    /* files that are missing or not safetensors at all */
    {"missing config.json", mk_no_config, .want = SISA_BAD_FILE, .sub1 = "config.json", .sub2 = "cannot open"},
    {"missing model.safetensors", mk_no_weights, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "cannot open"},
    {"truncated data", mk_truncated, .want = SISA_BAD_FILE, .sub1 = "model.safetensors: tensor '", .sub2 = "truncated"},
    {"file shorter than 8 bytes", mk_tiny_file, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "shorter than the 8-byte"},
    {"empty file", mk_empty_file, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "truncated: 0 bytes"},
    {"header length past EOF", mk_hlen_past_eof, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "header length"},
    {"header length 2^64-4", mk_hlen_huge, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "past the end of the file"},
    {"header not JSON", mk_not_json, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "not valid JSON"},
    {"header JSON array", mk_json_array, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "not an object"},
    {"offsets overlapping", mk_overlap, .want = SISA_BAD_FILE, .sub1 = "tensor 'b'", .sub2 = "overlap tensor 'a'"},
    {"offsets outside the data", mk_out_of_range, .want = SISA_BAD_FILE, .sub1 = "tensor 'a'", .sub2 = "reach past the end of the data"},
    {"data with a hole", mk_hole, .want = SISA_BAD_FILE, .sub1 = "tensor 'b'", .sub2 = "belong to no tensor"},
    {"trailing data", mk_trailing, .want = SISA_BAD_FILE, .sub1 = "model.safetensors", .sub2 = "16 data bytes after the last tensor"},
    {"dtype unknown", mk_bad_dtype, .want = SISA_BAD_FILE, .sub1 = "tensor 'a'", .sub2 = "dtype 'I64'"},
    {"shape*dtype != byte range", mk_size_mismatch, .want = SISA_BAD_FILE, .sub1 = "tensor 'a'", .sub2 = "needs 6 bytes"},
    {"shape product overflows", mk_shape_overflow, .want = SISA_BAD_FILE, .sub1 = "tensor 'a'", .sub2 = "needs more than"},
    {"duplicate names", mk_duplicate, .want = SISA_BAD_FILE, .sub1 = "tensor 'a'", .sub2 = "appears twice"},
    {"entry lacks shape", mk_missing_field, .want = SISA_BAD_FILE, .sub1 = "tensor 'a'", .sub2 = "lacks 'shape'"},
    /* safetensors fine, disagreeing with config.json */
    {"lambda_raw in BF16", mk_lambda_bf16, .want = SISA_BAD_FILE, .sub1 = "tensor 'layers.0.lambda_raw'", .sub2 = "must be F32"},
    {"weight in I32", mk_weight_i32, .want = SISA_BAD_FILE, .sub1 = "tensor 'layers.0.W_K.weight'", .sub2 = "dtype I32"},
    {"weight in F64", mk_weight_f64, .want = SISA_BAD_FILE, .sub1 = "tensor 'final_norm.weight'", .sub2 = "dtype F64"},
    {"shape disagrees", mk_shape, .want = SISA_BAD_FILE, .sub1 = "tensor 'layers.0.W_B.weight'", .sub2 = "shape [34, 128] disagrees with config.json (expected [32, 128])"},
    {"config d_ff disagrees", mk_shape_vs_config, .want = SISA_BAD_FILE, .sub1 = "tensor 'layers.0.ffn.w_gate.weight'", .sub2 = "expected [96, 128]"},
    {"missing tensor", mk_missing, .want = SISA_BAD_FILE, .sub1 = "missing tensor 'layers.0.W_V.weight'", .sub2 = "model.safetensors"},
    {"extra tensor", mk_extra, .want = SISA_BAD_FILE, .sub1 = "unexpected tensor 'layers.0.bogus.weight'", .sub2 = "model.safetensors"},
    {"transformer weights, sisa config", mk_transformer_weights_sisa_config, .want = SISA_BAD_FILE, .sub1 = "missing tensor 'layers.0.W_B.weight'", .sub2 = NULL},
    {"NaN weight (f32)", mk_nan, .want = SISA_BAD_FILE, .sub1 = "tensor 'layers.0.ffn.w_up.weight'", .sub2 = "element 5 is NaN"},
    {"Inf weight (bf16)", mk_inf_bf16, .want = SISA_BAD_FILE, .sub1 = "tensor 'layers.0.theta_proj.weight'", .sub2 = "element 3 is +Inf"},
    {"NaN weight (f16)", mk_nan_f16, .want = SISA_BAD_FILE, .sub1 = "tensor 'embed.weight'", .sub2 = "element 5 is NaN"},
    /* config.json */
    {"odd d_s", mk_odd_ds, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'd_ssm' = 15", .sub2 = "even"},
    {"H*d_h != d", mk_bad_d, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'd_model' = 100", .sub2 = "n_heads * head_dim"},
    {"unknown config key", mk_unknown_key, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'd_sms'", .sub2 = "unknown key"},
    {"config not JSON", mk_cfg_not_json, .want = SISA_BAD_FILE, .sub1 = "config.json", .sub2 = "line 2"},
    {"config key missing", mk_cfg_missing_key, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'vocab_size'", .sub2 = "missing"},
    {"config wrong type", mk_cfg_type, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'n_heads'", .sub2 = "got a string"},
    {"config version 2", mk_cfg_version, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'format_version'", .sub2 = "not supported"},
    {"arch transformer with d_s", mk_cfg_arch, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'd_ssm'", .sub2 = "transformer"},
    {"eos outside vocab", mk_cfg_eos, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'eos_token_id' = 64", .sub2 = NULL},
    {"non-integer size", mk_cfg_fraction, .want = SISA_BAD_FILE, .sub1 = "config.json: key 'd_model'", .sub2 = "128.5"},
    /* load options */
    {"unknown backend", good_model, .backend = "nope", .want = SISA_INVALID_ARG, .sub1 = "unknown backend 'nope'", .sub2 = "cpu-ref"},
    {"max_tokens above max_seq_len", good_model, .max_tokens = 33, .want = SISA_INVALID_ARG, .sub1 = "max_tokens = 33", .sub2 = "max_seq_len = 32"},
    {"max_batch negative", good_model, .max_batch = -1, .want = SISA_INVALID_ARG, .sub1 = "max_batch = -1", .sub2 = NULL},
    /* forward arguments on a valid model */
    {"T = 0", good_model, .stage = AT_FORWARD, .batch = 1, .T = 0, .want = SISA_INVALID_ARG, .sub1 = "T = 0", .sub2 = ">= 1"},
    {"T above max_tokens", good_model, .max_tokens = 8, .stage = AT_FORWARD, .batch = 1, .T = 9, .want = SISA_INVALID_ARG, .sub1 = "T = 9 exceeds max_tokens = 8", .sub2 = NULL},
    {"T above max_seq_len", good_model, .stage = AT_FORWARD, .batch = 1, .T = 33, .want = SISA_INVALID_ARG, .sub1 = "T = 33", .sub2 = "max_seq_len is 32"},
    {"token id = vocab", good_model, .max_batch = 2, .stage = AT_FORWARD, .batch = 2, .T = 6, .tok_row = 1, .tok_pos = 3, .tok = 64, .want = SISA_INVALID_ARG, .sub1 = "token id 64 at batch row 1, position 3", .sub2 = "[0, 64)"},
    {"token id negative", good_model, .stage = AT_FORWARD, .batch = 1, .T = 4, .tok_row = 0, .tok_pos = 0, .tok = -1, .want = SISA_INVALID_ARG, .sub1 = "token id -1 at batch row 0, position 0", .sub2 = NULL},
    {"batch 0", good_model, .stage = AT_FORWARD, .batch = 0, .T = 4, .want = SISA_INVALID_ARG, .sub1 = "batch = 0", .sub2 = ">= 1"},
    {"batch above max_batch", good_model, .max_batch = 2, .stage = AT_FORWARD, .batch = 3, .T = 4, .want = SISA_INVALID_ARG, .sub1 = "batch = 3 exceeds max_batch = 2", .sub2 = NULL},
    {"NULL tokens", good_model, .stage = AT_FORWARD, .batch = 1, .T = 4, .null_tokens = 1, .want = SISA_INVALID_ARG, .sub1 = "NULL tokens", .sub2 = NULL},
    /* NULL logits is allowed: the forward runs and leaves them on the device (benchmarks) */
    {"NULL logits (compute only)", good_model, .stage = AT_FORWARD, .batch = 1, .T = 4, .null_logits = 1, .want = SISA_OK, .sub1 = NULL, .sub2 = NULL},
    /* and the good case, so the table also proves the fixtures load */
    {"valid model", good_model, .max_batch = 2, .stage = AT_FORWARD, .batch = 2, .T = 5, .tok = -2, .want = SISA_OK},
};

static void remove_dir(const char *dir) {
    const char *files[] = {"config.json", "model.safetensors", "model.safetensors.tmp"};
    char p[512];
    for (int i = 0; i < 3; i++) {
        path_of(p, sizeof p, dir, files[i]);
        remove(p);
    }
    rmdir(dir);
}

static void check(const row *r, sisa_status st, const char *stage) {
    const char *msg = sisa_last_error();
    bool ok = st == r->want;
    if (r->want != SISA_OK) {
        if (r->sub1 && !strstr(msg, r->sub1)) ok = false;
        if (r->sub2 && !strstr(msg, r->sub2)) ok = false;
    }
    printf("%-4s %-34s %-8s %-12s %s\n", ok ? "ok" : "FAIL", r->what, stage, sisa_status_name(st),
           st == SISA_OK ? "" : msg);
    if (!ok) {
        failures++;
        printf("     expected %s with \"%s\"%s%s%s\n", sisa_status_name(r->want), r->sub1 ? r->sub1 : "",
               r->sub2 ? " and \"" : "", r->sub2 ? r->sub2 : "", r->sub2 ? "\"" : "");
    }
}

static void run_row(int i, const row *r) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/row%02d", root, i);
    if (mkdir(dir, 0777) != 0) {
        printf("mkdir %s: %s\n", dir, strerror(errno));
        exit(2);
    }
    r->make(dir);
    sisa_load_options o = {.backend = r->backend ? r->backend : "cpu-ref",
                           .max_tokens = r->max_tokens, .max_batch = r->max_batch};
    sisa_model *m = (sisa_model *)0x1;
    sisa_status st = sisa_model_load(dir, &o, &m);
    if (r->stage == AT_LOAD) {
        check(r, st, "load");
        if (st != SISA_OK && m != NULL) {
            printf("FAIL %s: *out not NULL after a failed load\n", r->what);
            failures++;
        }
        sisa_model_free(st == SISA_OK ? m : NULL);
    } else if (st != SISA_OK) {
        printf("FAIL %-34s load of the valid fixture failed: %s\n", r->what, sisa_last_error());
        failures++;
    } else {
        int n_tok = r->batch > 0 && r->T > 0 ? r->batch * r->T : 1;
        int32_t *tok = calloc((size_t)n_tok, sizeof *tok);
        for (int k = 0; k < n_tok; k++) tok[k] = (k * 5 + 1) % 64;
        if (r->tok != 0 && r->tok != -2) tok[r->tok_row * (r->T > 0 ? r->T : 1) + r->tok_pos] = r->tok;
        size_t n_logits = (size_t)n_tok * 64;
        float *logits = malloc(n_logits * sizeof *logits);
        for (size_t k = 0; k < n_logits; k++) logits[k] = 12345.0f;
        sisa_clamp_report rep;
        st = sisa_model_forward(m, r->null_tokens ? NULL : tok, r->batch, r->T,
                                r->null_logits ? NULL : logits, &rep);
        check(r, st, "forward");
        if (st != SISA_OK) {
            for (size_t k = 0; k < n_logits; k++)
                if (logits[k] != 12345.0f) {
                    printf("FAIL %s: a failed forward wrote the caller's logits\n", r->what);
                    failures++;
                    break;
                }
        } else {
            bool finite = true;
            for (size_t k = 0; k < n_logits; k++) finite &= isfinite(logits[k]) != 0;
            if (!finite || rep.n_layers != 1 || rep.any_active) {
                printf("FAIL %s: logits finite %d, report layers %d active %d\n", r->what, finite,
                       rep.n_layers, rep.any_active);
                failures++;
            }
        }
        free(logits);
        free(tok);
        sisa_model_free(m);
    }
    remove_dir(dir);
}

int main(void) {
    snprintf(root, sizeof root, "%s/sisa_bad_input_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        printf("mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    int n = (int)(sizeof rows / sizeof rows[0]);
    for (int i = 0; i < n; i++) run_row(i, &rows[i]);

    /* API misuse outside any directory */
    sisa_model *m = NULL;
    sisa_status st = sisa_model_load(NULL, NULL, &m);
    if (st != SISA_INVALID_ARG || m) {
        printf("FAIL load(NULL dir) gave %s\n", sisa_status_name(st));
        failures++;
    }
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/does-not-exist", root);
    st = sisa_model_load(nodir, NULL, &m);
    if (st != SISA_BAD_FILE || !strstr(sisa_last_error(), "does-not-exist/config.json")) {
        printf("FAIL load(missing dir) gave %s: %s\n", sisa_status_name(st), sisa_last_error());
        failures++;
    }
    sisa_model_free(NULL);

    /* a device whose largest buffer is smaller than one weight (is_cpu off: no in-place mapping) */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/small-buffers", root);
    mkdir(dir, 0777);
    good_model(dir);
    sisa_device *dev = NULL;
    if (sisa_device_open("cpu-ref", 0, &dev) != SISA_OK) {
        printf("FAIL open cpu-ref: %s\n", sisa_last_error());
        failures++;
    } else {
        dev->info.is_cpu = 0;
        dev->info.max_buffer_bytes = 48 << 10;
        m = NULL;
        st = sisa_model_load_device(dir, dev, NULL, &m); /* takes dev over, also on failure */
        const char *msg = sisa_last_error();
        bool ok = st == SISA_OUT_OF_MEMORY && !m && strstr(msg, "tensor 'layers.0.W_Q.weight' needs 65536 bytes") &&
                  strstr(msg, "backend 'cpu-ref'") && strstr(msg, "(49152)");
        printf("%-4s %-34s %-8s %-12s %s\n", ok ? "ok" : "FAIL", "weight larger than a device buffer",
               "load", sisa_status_name(st), msg);
        if (!ok) failures++;
        sisa_model_free(m);
    }
    remove_dir(dir);
    rmdir(root);
    printf("%d rows + 3 checks, %d failure(s)\n", n, failures);
    return failures ? 1 : 0;
}
