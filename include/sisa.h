/*
 * sisa.h — the only public header of the SISA engine.
 *
 * SISA (SSM-Informed Softmax Attention) language models and their Transformer control, run on the
 * CPU or on any GPU backend compiled in (CUDA, Vulkan, OpenCL). Every handle is opaque; every call
 * that can fail returns a sisa_status and leaves a message in sisa_last_error() that names the
 * file, tensor, backend and native error code involved. The library never aborts the process.
 */
#ifndef SISA_H
#define SISA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SISA_VERSION_MAJOR 0
#define SISA_VERSION_MINOR 1
#define SISA_VERSION_PATCH 0
#define SISA_VERSION_STRING "0.1.0"

typedef enum sisa_status {
    SISA_OK = 0,
    SISA_INVALID_ARG = 1,
    SISA_BAD_FILE = 2,
    SISA_UNSUPPORTED = 3,
    SISA_OUT_OF_MEMORY = 4,
    SISA_DEVICE_LOST = 5,
    SISA_COMPILE_FAILED = 6,
    SISA_INTERNAL = 7,
} sisa_status;

/* Name of a status ("OK", "INVALID_ARG", ...). */
const char *sisa_status_name(sisa_status st);
/* Message of the last failed call on this thread ("" if none). Valid until the next failing call. */
const char *sisa_last_error(void);
/* Version of the library actually linked. */
const char *sisa_version(void);

/* ---- backends and devices ------------------------------------------------------------------- */

/* Backends known to this build: "cpu-ref" (the fp64 oracle), "cpu" (fast path), and where compiled
 * in "cuda", "vulkan", "opencl". A backend compiled in may still be absent at run time (no driver,
 * no device): sisa_backend_info says why. */
typedef struct sisa_backend_info {
    const char *name;        /* "cpu", "vulkan", ... */
    int compiled;            /* built into this library */
    int available;           /* usable now: a driver and at least one device were found */
    const char *reason;      /* when !available: why (names the native error) */
    int n_devices;
} sisa_backend_info;

typedef struct sisa_device_info {
    char name[256];
    char vendor[64];
    char driver[128];
    uint64_t memory_bytes;
    uint64_t max_buffer_bytes;       /* largest single allocation */
    uint64_t max_storage_range;      /* largest range one kernel argument may address */
    int has_f16, has_bf16, has_f64;
    int subgroup_size;               /* 0 when not applicable */
    int has_coopmat;                 /* matrix units reachable from this backend */
    int is_cpu;
} sisa_device_info;

int sisa_backend_count(void);
sisa_status sisa_backend_get_info(int index, sisa_backend_info *out);
sisa_status sisa_device_get_info(const char *backend, int device, sisa_device_info *out);

/* ---- model configuration -------------------------------------------------------------------- */

typedef struct sisa_config {
    int64_t vocab_size;
    int64_t d_model;
    int64_t n_heads;
    int64_t head_dim;        /* d_h */
    int64_t n_layers;
    int64_t d_ssm;           /* d_s; 0 = the Transformer control */
    int64_t d_ff;
    int64_t max_seq_len;
    double norm_eps;         /* 1e-6 */
    double rope_base;        /* 10000 */
    double ssm_clamp;        /* 11 */
    int64_t eos_token_id;    /* -1 if none */
} sisa_config;

/* Fill *cfg from a published name: "sisa-50m-ds64", "transformer-152m", "sisa-152m-ds16", ...
 * (scale 50m/152m/369m; d_s 16/32/64/128), or "tiny" / "small" for test-sized models. */
sisa_status sisa_config_from_name(const char *name, sisa_config *cfg);
/* Check a configuration for consistency (H·d_h = d, even d_s, positive sizes). */
sisa_status sisa_config_validate(const sisa_config *cfg);
/* Number of parameters of a model of this configuration (tied embedding counted once). */
sisa_status sisa_model_param_count(const sisa_config *cfg, uint64_t *out);

/* ---- models --------------------------------------------------------------------------------- */

typedef struct sisa_model sisa_model;

typedef enum sisa_dtype_public {
    SISA_DTYPE_F32 = 0,
    SISA_DTYPE_F16 = 1,
    SISA_DTYPE_BF16 = 2,
} sisa_dtype_public;

typedef struct sisa_load_options {
    const char *backend;     /* NULL = "cpu" */
    int device;              /* index within the backend */
    int allow_fallback;      /* 0 = strict: an op the device cannot run is an error */
    int max_batch;           /* worst-case batch the graph is reserved for (0 = 1) */
    int max_tokens;          /* worst-case T (0 = config max_seq_len) */
    /* Storage dtype of the activations that feed and leave the matrix products (SISA_DTYPE_F32,
     * the default, or SISA_DTYPE_BF16 on devices that have it). The residual stream, g and the
     * logits stay f32 whatever this says; math is fp32 or better either way. */
    sisa_dtype_public compute_dtype;
    /* Time every op (each node run and waited for on its own: slower, for finding where the
     * time goes). Read with sisa_model_profile. */
    int profile;
} sisa_load_options;

/* Load a model directory (config.json + model.safetensors). Validates everything. */
sisa_status sisa_model_load(const char *dir, const sisa_load_options *opts, sisa_model **out);
void sisa_model_free(sisa_model *m);
const sisa_config *sisa_model_config(const sisa_model *m);

/* Write a randomly initialised model directory (SISA.md §6 initialisation), weights in dtype. */
sisa_status sisa_model_init_dir(const sisa_config *cfg, uint64_t seed, sisa_dtype_public dtype,
                                const char *dir);

/* What the augmented form's clamp did on the last forward: per layer, max over batch rows and heads
 * of max_t |g_t - c|. The clamp was active (forms A and B differ) where this exceeds ssm_clamp. */
typedef struct sisa_clamp_report {
    int n_layers;
    float max_abs_u[256];
    int any_active;
} sisa_clamp_report;

/* Full-sequence forward in the augmented form (A). tokens: batch·T ids, row-major.
 * logits: batch·T·vocab floats (caller's memory), or NULL to leave them on the device (no copy
 * back: for benchmarks, or when only the clamp report is wanted). report may be NULL. */
sisa_status sisa_model_forward(sisa_model *m, const int32_t *tokens, int batch, int T,
                               float *logits, sisa_clamp_report *report);
/* Per-op time table (markdown) of the forwards run since load with sisa_load_options.profile. */
sisa_status sisa_model_profile(const sisa_model *m, char *buf, size_t len);

/* ---- tokenizer (Hugging Face tokenizer.json, byte-level BPE) ------------------------------- */

typedef struct sisa_tokenizer sisa_tokenizer;

sisa_status sisa_tokenizer_load(const char *path, sisa_tokenizer **out);
void sisa_tokenizer_free(sisa_tokenizer *t);
int64_t sisa_tokenizer_vocab_size(const sisa_tokenizer *t);
/* Encode UTF-8 text. *ids is malloc'ed by the library (free with sisa_free). */
sisa_status sisa_tokenizer_encode(const sisa_tokenizer *t, const char *text, size_t len,
                                  int32_t **ids, size_t *n_ids);
/* Decode ids to bytes. *text is malloc'ed, NUL-terminated (free with sisa_free). */
sisa_status sisa_tokenizer_decode(const sisa_tokenizer *t, const int32_t *ids, size_t n_ids,
                                  char **text, size_t *len);
/* Id of a token string (e.g. "<|endoftext|>"), or -1. */
int32_t sisa_tokenizer_token_id(const sisa_tokenizer *t, const char *token);

/* ---- decoding: sessions with a KV cache, sampling, generation ---------------------------- */

/* A decode session: a batch of sequences advanced in lockstep (all at the same position), with
 * their KV caches on the model's device. Decoding computes the factored form (B) of SISA.md §2:
 * no offset c, no clamp, exact at any length. For a prompt on which the clamp of form (A) is
 * inactive, every step's logits equal the full-sequence forward's (sisa_model_forward) at that
 * position. A session uses its model's scheduler: one session at a time per model, and
 * sisa_model_forward between session calls is allowed. */
typedef struct sisa_session sisa_session;

/* max_ctx: positions the caches hold (0 = the model's max_seq_len; more is an error).
 * Batch 1. */
sisa_status sisa_session_new(sisa_model *m, int max_ctx, sisa_session **out);
/* The same for n_seq sequences in lockstep (tokens/logits are row-major per sequence). */
sisa_status sisa_session_new_batch(sisa_model *m, int n_seq, int max_ctx, sisa_session **out);
void sisa_session_free(sisa_session *s);
/* Forget every cached position (the caches are kept). */
void sisa_session_reset(sisa_session *s);
/* Positions cached so far. */
int sisa_session_pos(const sisa_session *s);
/* Append n tokens per sequence (tokens: n_seq·n ids) in one graph, form (B). logits: NULL, or
 * n_seq·n·vocab floats (every new position). May be called again (prefill in chunks). Going past
 * max_ctx is SISA_INVALID_ARG naming both numbers; nothing is written then. */
sisa_status sisa_session_prefill(sisa_session *s, const int32_t *tokens, int n, float *logits);
/* One decode step: one token per sequence; logits: NULL or n_seq·vocab floats. */
sisa_status sisa_session_step(sisa_session *s, const int32_t *tokens, float *logits);
/* The logits of the last position appended (n_seq·vocab floats, valid until the next call). */
const float *sisa_session_last_logits(const sisa_session *s);
/* Prefill an empty session, returning the logits of the full-sequence forward in the augmented
 * form (A, sisa_model_forward: what published checkpoints were evaluated with) and its clamp
 * report, and filling the caches in form (B). When report->any_active, (A) and (B) differ on this
 * prompt and decoding continues form (B). Needs n <= the model's max_tokens (load option). */
sisa_status sisa_session_prefill_form_a(sisa_session *s, const int32_t *tokens, int n,
                                        float *logits, sisa_clamp_report *report);

typedef struct sisa_sampler_params {
    float temperature;       /* <= 0: greedy (argmax) */
    int32_t top_k;           /* keep the k most likely (0 = off) */
    float top_p;             /* keep the smallest set with probability >= top_p (>= 1: off) */
    float repeat_penalty;    /* > 1 lowers tokens in the recent history (1 = off) */
    int32_t repeat_last_n;   /* history window for the penalty (0 = all of it) */
    uint64_t seed;           /* the sampler's own PRNG: same seed, same sequence */
} sisa_sampler_params;

/* temperature 1, no top-k/top-p, no penalty, seed 0. */
void sisa_sampler_params_default(sisa_sampler_params *p);

/* Streaming callback: one call per generated token. text_piece holds the decoded bytes that are
 * now complete UTF-8 (possibly empty: a multi-byte character still missing bytes is held back and
 * comes with a later token; NULL without a tokenizer). Return non-zero to stop. When generation
 * ends with bytes still held back (an incomplete, hence invalid, UTF-8 tail), one last call with
 * id = -1 delivers them. An EOS token ends generation and is reported with an empty piece. */
typedef int (*sisa_token_callback)(int32_t id, const char *text_piece, size_t len, void *user);

typedef struct sisa_generate_params {
    sisa_sampler_params sampler;
    int32_t max_new_tokens;  /* stop after this many */
    int stop_on_eos;         /* stop when the config's eos_token_id is produced (it is reported) */
    int32_t max_ctx;         /* 0 = the model's max_seq_len */
} sisa_generate_params;

typedef struct sisa_generate_stats {
    int32_t n_prompt, n_generated;
    double prefill_seconds, decode_seconds; /* decode: every step after the prefill */
    int stop_reason;                        /* 0 max_new_tokens, 1 EOS, 2 callback */
} sisa_generate_stats;

/* Prefill the prompt, then sample up to max_new_tokens (batch 1). n_prompt + max_new_tokens beyond
 * max_ctx is SISA_INVALID_ARG (checked before anything runs). tok may be NULL. stats may be NULL. */
sisa_status sisa_generate(sisa_model *m, const sisa_tokenizer *tok, const int32_t *prompt,
                          size_t n_prompt, const sisa_generate_params *p,
                          sisa_token_callback on_token, void *user, sisa_generate_stats *stats);

void sisa_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
