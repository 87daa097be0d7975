/*
 * model_decode.c — incremental decoding: the graph of one chunk of T new positions per sequence in
 * the factored form (B) of SISA.md §2, reading and writing the KV cache (kvcache.h).
 *
 * Per layer, for the new positions [p0, p0 + T):
 *   content path as in form (A), RoPE at absolute positions p0 + t
 *   g    = SSM_DECAY(alpha, bias, g0 = cached g at p0 - 1)                      (1,B,H,T)
 *   sCB  = SSM_CHANNELS(Bs, Cs, theta, g, lambda, Phi0 = running Phi, FACTORED)  no exp(±u), no c
 *   Qhat = [q | s·Rot C], Khat = [k | s·Rot B]  -> Khat, v, g written into the caches (CPY)
 *   Y    = SDPA(Qhat, cache K[0, p0+T), cache V[0, p0+T), gq = g, gk = cached g, d_content = d_h,
 *               causal with p0)
 *   Phi' = Phi0 + sum_t theta_t  (a MATMUL with a ones vector when T > 1) -> the running Phi
 * The Transformer control writes/reads plain k, v. Everything else is the block of model_graph.c.
 * The graph is rebuilt per call (p0 and Tk change); building and placing it is cheap next to the
 * compute. Only the logits the caller asks for are computed (all positions, or the last one).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "kvcache.h"
#include "model.h"
#include "sample.h"
#include "tokenizer.h"

struct sisa_session {
    sisa_model *m;
    sisa_kvcache kv;
    int batch, max_ctx, pos;
    float *last;   /* batch·V logits of the last position */
    bool has_last;
};

typedef struct dbuild {
    const sisa_model *m;
    const sisa_kvcache *kv;
    sisa_graph *g;
    int64_t B, T, H, dh, ds, p0, Tk;
    int layer;
} dbuild;

static sisa_tensor *wleaf(dbuild *b, const char *suffix) {
    return sisa_model_layer_weight(b->m, b->g, b->layer, suffix);
}

static sisa_tensor *named(dbuild *b, sisa_tensor *t, const char *what) {
    return sisa_tensor_set_name(t, "layers.%d.%s", b->layer, what);
}

static sisa_tensor *linear(dbuild *b, sisa_tensor *x, const char *w, const char *out) {
    return named(b, sisa_matmul(b->g, x, wleaf(b, w)), out);
}

/* Contiguous strides of shape in dtype dt. */
static void strides_of(sisa_dtype dt, const int64_t shape[4], int64_t stride[4]) {
    stride[3] = (int64_t)sisa_dtype_size(dt);
    for (int i = 2; i >= 0; i--) stride[i] = stride[i + 1] * shape[i + 1];
}

/* View of positions [p, p + n) of a position-major cache leaf (P, d1, d2, d3) or (1, P, d2, d3). */
static sisa_tensor *cache_rows(dbuild *b, sisa_tensor *leaf, int pdim, int64_t p, int64_t n) {
    if (!leaf) return NULL;
    int64_t shape[4], stride[4];
    memcpy(shape, leaf->shape, sizeof shape);
    shape[pdim] = n;
    strides_of(leaf->dtype, leaf->shape, stride);
    return sisa_view(b->g, leaf, shape, stride, (size_t)(p * stride[pdim]));
}

/* CPY of `src` (already arranged position-major like the leaf) into positions [p0, p0+T). */
static sisa_tensor *cache_write(dbuild *b, sisa_tensor *leaf, int pdim, sisa_tensor *src,
                                const char *what) {
    if (!leaf || !src) return NULL;
    int64_t stride[4];
    strides_of(leaf->dtype, leaf->shape, stride);
    sisa_tensor *c = named(b, sisa_cpy(b->g, src, leaf->dtype), what);
    return sisa_kvcache_write_into(b->g, c, leaf, (size_t)(b->p0 * stride[pdim]));
}

/* One block in form (B) against the caches. */
static sisa_tensor *block(dbuild *b, sisa_tensor *x) {
    sisa_graph *g = b->g;
    const sisa_config *c = &b->m->cfg;
    const float eps = (float)c->norm_eps, base = (float)c->rope_base;
    const int i = b->layer;
    sisa_tensor *xn = named(b, sisa_rms_norm(g, x, wleaf(b, "attn_norm.weight"), eps), "xn");
    sisa_tensor *qp = linear(b, xn, "W_Q.weight", "q_proj");
    sisa_tensor *kp = linear(b, xn, "W_K.weight", "k_proj");
    sisa_tensor *vp = linear(b, xn, "W_V.weight", "v_proj");
    sisa_tensor *qr = named(b, sisa_rope(g, sisa_reshape(g, qp, b->B, b->T, b->H, b->dh), base,
                                         (int32_t)b->p0), "q_rope");
    sisa_tensor *kr = named(b, sisa_rope(g, sisa_reshape(g, kp, b->B, b->T, b->H, b->dh), base,
                                         (int32_t)b->p0), "k_rope");
    sisa_tensor *q = sisa_permute(g, qr, 0, 2, 1, 3); /* (B,H,T,dh) */
    sisa_tensor *k = sisa_permute(g, kr, 0, 2, 1, 3);
    sisa_tensor *vh = sisa_reshape(g, vp, b->B, b->T, b->H, b->dh); /* (B,T,H,dh) */

    sisa_tensor *Kc = sisa_kvcache_leaf_k(b->kv, g, i), *Vc = sisa_kvcache_leaf_v(b->kv, g, i);
    sisa_sdpa_params sp = {.scale = (float)(1.0 / sqrt((double)b->dh)), .causal = 1,
                           .p0 = (int32_t)b->p0};
    sisa_tensor *Q = q, *Knew = k;
    if (b->ds > 0) {
        sisa_tensor *Gc = sisa_kvcache_leaf_g(b->kv, g, i), *Phc = sisa_kvcache_leaf_phi(b->kv, g, i);
        sisa_tensor *Bs = linear(b, xn, "W_B.weight", "Bs");
        sisa_tensor *Cs = linear(b, xn, "W_C.weight", "Cs");
        sisa_tensor *a = linear(b, xn, "alpha_proj.weight", "alpha_logits");
        sisa_tensor *theta = linear(b, xn, "theta_proj.weight", "theta");
        sisa_tensor *g0 = b->p0 > 0 ? cache_rows(b, Gc, 1, b->p0 - 1, 1) : NULL; /* (1,1,B,H) */
        sisa_tensor *phi0 = b->p0 > 0 ? Phc : NULL;
        sisa_tensor *gd = named(b, sisa_ssm_decay(g, a, wleaf(b, "alpha_proj.bias"), g0), "g");
        sisa_tensor *sCB = named(b, sisa_ssm_channels(g, Bs, Cs, theta, gd, wleaf(b, "lambda_raw"),
                                                      phi0, SISA_SSM_FACTORED, (int32_t)b->dh,
                                                      (float)c->ssm_clamp), "sCB");
        const int64_t W = b->kv->wk;
        Q = named(b, sisa_augment(g, q, sisa_slice_row(g, sCB, 0, b->ds), W), "Qhat_pad");
        Knew = named(b, sisa_augment(g, k, sisa_slice_row(g, sCB, b->ds, b->ds), W), "Khat_pad");
        /* g -> cache (1,T,B,H); gk = cached g over [0, Tk) made contiguous (1,B,H,Tk) */
        cache_write(b, Gc, 1, sisa_permute(g, gd, 0, 3, 1, 2), "g_cache");
        sisa_tensor *gk = sisa_cpy(g, sisa_permute(g, cache_rows(b, Gc, 1, 0, b->Tk), 0, 2, 3, 1),
                                   SISA_F32);
        sp.gq = gd;
        sp.gk = named(b, gk, "gk");
        sp.d_content = (int32_t)b->dh;
        /* the running rotation: Phi' = Phi0 + sum_t theta_t */
        sisa_tensor *sum;
        if (b->T == 1) {
            sum = sisa_reshape(g, theta, 1, 1, b->B, theta ? theta->shape[3] : 1);
        } else {
            sisa_tensor *thT = sisa_cpy(g, sisa_permute(g, theta, 0, 1, 3, 2), SISA_F32);
            sisa_tensor *s1 = sisa_matmul(g, thT, sisa_kvcache_leaf_ones(b->kv, g, b->T));
            sum = sisa_reshape(g, s1, 1, 1, b->B, theta ? theta->shape[3] : 1);
        }
        sisa_tensor *phi_new = phi0 ? sisa_add(g, phi0, sum) : sum;
        sisa_kvcache_write_into(g, named(b, sisa_cpy(g, phi_new, SISA_F32), "phi_state"), Phc, 0);
    }
    /* new K/V rows -> cache (T,B,H,w), then attention over [0, Tk) */
    cache_write(b, Kc, 0, sisa_permute(g, Knew, 2, 0, 1, 3), "k_cache");
    cache_write(b, Vc, 0, sisa_permute(g, vh, 1, 0, 2, 3), "v_cache");
    sisa_tensor *Kall = sisa_permute(g, cache_rows(b, Kc, 0, 0, b->Tk), 1, 2, 0, 3);
    sisa_tensor *Vall = sisa_permute(g, cache_rows(b, Vc, 0, 0, b->Tk), 1, 2, 0, 3);
    sisa_tensor *y = named(b, sisa_sdpa(g, Q, Kall, Vall, &sp), "attn");
    sisa_tensor *yc = sisa_reshape(g, y, 1, b->B, b->T, b->H * b->dh);
    sisa_tensor *h = named(b, sisa_add(g, x, linear(b, yc, "W_O.weight", "o")), "h");
    sisa_tensor *xn2 = named(b, sisa_rms_norm(g, h, wleaf(b, "ffn_norm.weight"), eps), "xn2");
    sisa_tensor *gate = linear(b, xn2, "ffn.w_gate.weight", "gate");
    sisa_tensor *up = linear(b, xn2, "ffn.w_up.weight", "up");
    sisa_tensor *down = linear(b, named(b, sisa_swiglu(g, gate, up), "swiglu"), "ffn.w_down.weight",
                               "down");
    return named(b, sisa_add(g, h, down), "out");
}

/* The graph for T new positions at p0; all_logits: every position, else only the last. */
static sisa_status build_chunk(sisa_session *s, int T, bool all_logits, sisa_graph **out,
                               sisa_tensor **tokens, sisa_tensor **logits) {
    const sisa_model *m = s->m;
    const sisa_config *c = &m->cfg;
    sisa_graph *g = sisa_graph_new();
    if (!g) return sisa_err(SISA_OUT_OF_MEMORY, "decode graph: out of host memory");
    dbuild b = {.m = m, .kv = &s->kv, .g = g, .B = s->batch, .T = T, .H = c->n_heads,
                .dh = c->head_dim, .ds = c->d_ssm, .p0 = s->pos, .Tk = s->pos + T, .layer = -1};
    *tokens = sisa_graph_input(g, "tokens", SISA_I32, 1, 1, s->batch, T);
    sisa_tensor *E = sisa_model_weight_leaf(m, g, "embed.weight");
    sisa_tensor *x = sisa_tensor_set_name(sisa_embed(g, E, *tokens), "embed");
    for (int i = 0; i < c->n_layers; i++) {
        b.layer = i;
        x = block(&b, x);
    }
    if (!all_logits && T > 1 && x) { /* the last position only: (1,B,1,d) */
        const int64_t shape[4] = {1, s->batch, 1, x->shape[3]};
        x = sisa_view(g, x, shape, x->stride, (size_t)((T - 1) * x->stride[2]));
    }
    sisa_tensor *h = sisa_rms_norm(g, x, sisa_model_weight_leaf(m, g, "final_norm.weight"),
                                   (float)c->norm_eps);
    *logits = sisa_tensor_set_output(sisa_tensor_set_name(sisa_matmul(g, h, E), "logits"));
    sisa_status st = sisa_graph_status(g);
    if (st != SISA_OK) {
        sisa_graph_free(g);
        return sisa_err_prefix(st, "decode graph (batch %d, T %d, position %d)", s->batch, T, s->pos);
    }
    *out = g;
    return SISA_OK;
}

/* ---- sessions ---- */

sisa_status sisa_session_new_batch(sisa_model *m, int n_seq, int max_ctx, sisa_session **out) {
    if (!out) return sisa_err(SISA_INVALID_ARG, "session: NULL output");
    *out = NULL;
    if (!m) return sisa_err(SISA_INVALID_ARG, "session: NULL model");
    if (n_seq < 1) return sisa_err(SISA_INVALID_ARG, "session: n_seq = %d must be >= 1", n_seq);
    const int64_t limit = m->cfg.max_seq_len;
    if (max_ctx < 0 || max_ctx > limit)
        return sisa_err(SISA_INVALID_ARG,
                        "session: max_ctx = %d is outside [1, %lld] (the model's max_seq_len, "
                        "config.json)", max_ctx, (long long)limit);
    sisa_session *s = calloc(1, sizeof *s);
    if (!s) return sisa_err(SISA_OUT_OF_MEMORY, "session: out of host memory");
    s->m = m;
    s->batch = n_seq;
    s->max_ctx = max_ctx ? max_ctx : (int)limit;
    s->last = malloc((size_t)n_seq * (size_t)m->cfg.vocab_size * sizeof *s->last);
    sisa_status st = s->last ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "session: out of host memory");
    if (st == SISA_OK) st = sisa_kvcache_init(&s->kv, m, n_seq, s->max_ctx);
    if (st != SISA_OK) {
        free(s->last);
        free(s);
        return st;
    }
    *out = s;
    return SISA_OK;
}

sisa_status sisa_session_new(sisa_model *m, int max_ctx, sisa_session **out) {
    return sisa_session_new_batch(m, 1, max_ctx, out);
}

void sisa_session_free(sisa_session *s) {
    if (!s) return;
    sisa_kvcache_free(&s->kv);
    free(s->last);
    free(s);
}

void sisa_session_reset(sisa_session *s) {
    if (!s) return;
    s->pos = 0;
    s->has_last = false;
}

int sisa_session_pos(const sisa_session *s) { return s ? s->pos : 0; }

const float *sisa_session_last_logits(const sisa_session *s) {
    return s && s->has_last ? s->last : NULL;
}

static sisa_status append(sisa_session *s, const int32_t *tokens, int n, float *logits) {
    if (!s) return sisa_err(SISA_INVALID_ARG, "session: NULL session");
    if (!tokens) return sisa_err(SISA_INVALID_ARG, "session: NULL tokens");
    if (n < 1) return sisa_err(SISA_INVALID_ARG, "session: %d new tokens: must be >= 1", n);
    if ((int64_t)s->pos + n > s->max_ctx)
        return sisa_err(SISA_INVALID_ARG,
                        "session: context full: %d cached + %d new = %lld positions exceed the "
                        "context limit max_ctx = %d (model max_seq_len %lld)",
                        s->pos, n, (long long)s->pos + n, s->max_ctx,
                        (long long)s->m->cfg.max_seq_len);
    const int64_t V = s->m->cfg.vocab_size;
    for (int i = 0; i < s->batch * n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return sisa_err(SISA_INVALID_ARG,
                            "session: token id %d (sequence %d, new position %d) is outside the "
                            "vocabulary [0, %lld)", tokens[i], i / n, i % n, (long long)V);
    sisa_graph *g = NULL;
    sisa_tensor *tk = NULL, *lg = NULL;
    SISA_TRY(build_chunk(s, n, logits != NULL, &g, &tk, &lg));
    sisa_status st = sisa_sched_prepare(s->m->sched, g);
    if (st == SISA_OK) st = sisa_tensor_write(tk, tokens, (size_t)s->batch * (size_t)n * sizeof *tokens);
    if (st == SISA_OK) st = sisa_sched_compute(s->m->sched, g);
    const size_t row = (size_t)V * sizeof(float);
    if (st == SISA_OK && logits) {
        st = sisa_tensor_read(lg, logits, (size_t)s->batch * (size_t)n * row);
        for (int b = 0; b < s->batch; b++) /* last position of each sequence */
            memcpy(s->last + (size_t)b * V, logits + ((size_t)b * n + (size_t)n - 1) * V, row);
    } else if (st == SISA_OK) {
        st = sisa_tensor_read(lg, s->last, (size_t)s->batch * row);
    }
    sisa_graph_free(g);
    if (st != SISA_OK) {
        s->has_last = false;
        return sisa_err_prefix(st, "decode at position %d (%d new) on backend '%s'", s->pos, n,
                               s->m->dev->backend->name);
    }
    s->pos += n;
    s->has_last = true;
    return SISA_OK;
}

sisa_status sisa_session_prefill(sisa_session *s, const int32_t *tokens, int n, float *logits) {
    return append(s, tokens, n, logits);
}

sisa_status sisa_session_step(sisa_session *s, const int32_t *tokens, float *logits) {
    return append(s, tokens, 1, logits);
}

sisa_status sisa_session_prefill_form_a(sisa_session *s, const int32_t *tokens, int n,
                                        float *logits, sisa_clamp_report *report) {
    if (!s) return sisa_err(SISA_INVALID_ARG, "session: NULL session");
    if (s->pos != 0)
        return sisa_err(SISA_INVALID_ARG,
                        "session: form-A prefill needs an empty session (%d positions cached): "
                        "form A's offset c is a whole-sequence quantity", s->pos);
    if (n > s->max_ctx)
        return sisa_err(SISA_INVALID_ARG, "session: prompt of %d tokens exceeds max_ctx = %d", n,
                        s->max_ctx);
    float *la = logits;
    const size_t nl = (size_t)s->batch * (size_t)n * (size_t)s->m->cfg.vocab_size;
    if (!la && !(la = malloc(nl * sizeof *la)))
        return sisa_err(SISA_OUT_OF_MEMORY, "session: out of host memory");
    sisa_status st = sisa_model_forward(s->m, tokens, s->batch, n, la, report);
    if (st == SISA_OK) st = append(s, tokens, n, NULL); /* caches in form (B) */
    if (st == SISA_OK) /* the caller asked for form A: the last logits are A's too */
        for (int b = 0; b < s->batch; b++)
            memcpy(s->last + (size_t)b * s->m->cfg.vocab_size,
                   la + ((size_t)b * n + (size_t)n - 1) * s->m->cfg.vocab_size,
                   (size_t)s->m->cfg.vocab_size * sizeof(float));
    if (la != logits) free(la);
    return st;
}

/* ---- generation ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct stream_text {
    char *pending;
    size_t n, cap;
} stream_text;

/* Append the token's bytes; *emit = how many leading bytes are complete UTF-8 now. */
static sisa_status text_push(stream_text *st, const sisa_tokenizer *tok, int32_t id, size_t *emit) {
    char *txt = NULL;
    size_t len = 0;
    *emit = 0;
    if (sisa_tokenizer_decode(tok, &id, 1, &txt, &len) != SISA_OK) return SISA_INVALID_ARG;
    if (st->n + len + 1 > st->cap) {
        size_t nc = (st->n + len + 1) * 2;
        char *p = realloc(st->pending, nc);
        if (!p) {
            sisa_free(txt);
            return sisa_err(SISA_OUT_OF_MEMORY, "generate: out of host memory");
        }
        st->pending = p;
        st->cap = nc;
    }
    memcpy(st->pending + st->n, txt, len);
    st->n += len;
    sisa_free(txt);
    *emit = sisa_utf8_complete_len(st->pending, st->n);
    return SISA_OK;
}

static void text_consume(stream_text *st, size_t k) {
    memmove(st->pending, st->pending + k, st->n - k);
    st->n -= k;
}

sisa_status sisa_generate(sisa_model *m, const sisa_tokenizer *tok, const int32_t *prompt,
                          size_t n_prompt, const sisa_generate_params *p,
                          sisa_token_callback on_token, void *user, sisa_generate_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!m || !p) return sisa_err(SISA_INVALID_ARG, "generate: NULL model or params");
    if (!prompt || n_prompt == 0)
        return sisa_err(SISA_INVALID_ARG, "generate: the prompt is empty (at least one token needed)");
    if (p->max_new_tokens < 0)
        return sisa_err(SISA_INVALID_ARG, "generate: max_new_tokens = %d must be >= 0", p->max_new_tokens);
    const int64_t limit = p->max_ctx > 0 ? p->max_ctx : m->cfg.max_seq_len;
    if ((int64_t)n_prompt + p->max_new_tokens > limit)
        return sisa_err(SISA_INVALID_ARG,
                        "generate: prompt of %zu tokens + %d new tokens = %lld exceeds the context "
                        "limit of %lld positions (%s)",
                        n_prompt, p->max_new_tokens, (long long)n_prompt + p->max_new_tokens,
                        (long long)limit, p->max_ctx > 0 ? "max_ctx" : "the model's max_seq_len");
    const int ctx = (int)((int64_t)n_prompt + p->max_new_tokens);
    sisa_session *s = NULL;
    SISA_TRY(sisa_session_new(m, ctx, &s));
    sisa_sampler smp;
    sisa_status st = sisa_sampler_init(&smp, &p->sampler, m->cfg.vocab_size);
    if (st != SISA_OK) {
        sisa_session_free(s);
        return st;
    }
    int32_t *hist = malloc((size_t)ctx * sizeof *hist);
    stream_text text = {0};
    if (!hist) st = sisa_err(SISA_OUT_OF_MEMORY, "generate: out of host memory");
    else memcpy(hist, prompt, n_prompt * sizeof *hist);
    size_t n_hist = n_prompt;
    double t0 = now_s();
    if (st == SISA_OK) st = sisa_session_prefill(s, prompt, (int)n_prompt, NULL);
    double t1 = now_s();
    if (stats) {
        stats->n_prompt = (int32_t)n_prompt;
        stats->prefill_seconds = t1 - t0;
    }
    int reason = 0;
    for (int i = 0; st == SISA_OK && i < p->max_new_tokens; i++) {
        const size_t win = p->sampler.repeat_last_n > 0 && (size_t)p->sampler.repeat_last_n < n_hist
                               ? (size_t)p->sampler.repeat_last_n : n_hist;
        int32_t id = sisa_sampler_sample(&smp, sisa_session_last_logits(s), hist + n_hist - win, win);
        hist[n_hist++] = id;
        if (stats) stats->n_generated++;
        bool eos = p->stop_on_eos && m->cfg.eos_token_id >= 0 && id == m->cfg.eos_token_id;
        size_t emit = 0;
        if (tok && !eos) {
            st = text_push(&text, tok, id, &emit);
            if (st != SISA_OK) break;
        }
        if (on_token && on_token(id, tok ? (text.pending ? text.pending : "") : NULL, emit, user)) {
            reason = 2;
            break;
        }
        if (emit) text_consume(&text, emit);
        if (eos) {
            reason = 1;
            break;
        }
        if (i + 1 < p->max_new_tokens) st = sisa_session_step(s, &id, NULL);
    }
    if (st == SISA_OK && reason != 2 && tok && text.n && on_token) /* flush an incomplete tail */
        on_token(-1, text.pending, text.n, user);
    if (stats) {
        stats->decode_seconds = now_s() - t1;
        stats->stop_reason = reason;
    }
    free(text.pending);
    free(hist);
    sisa_sampler_free(&smp);
    sisa_session_free(s);
    return st;
}
