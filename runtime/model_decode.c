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
 * Only the logits the caller asks for are computed (all positions, or the last one).
 *
 * Projections that read the same input run as ONE MATMUL when the model placed their weights
 * back to back (model.c does for GPU devices): [W_Q|W_K|W_V|W_B|W_C|alpha|theta] and
 * [w_gate|w_up]; the results are column views of one output. Same math, fewer launches.
 *
 * Steps (one new position, pos > 0) reuse ONE graph per key bucket: it attends over Tk = pos + 1
 * rounded up to a multiple of SISA_DECODE_BUCKET (default 256) keys — the causal mask with p0
 * hides the keys past the position, and SDPA's definition says masked keys contribute nothing —
 * so between steps only position-dependent values change: the RoPE and SDPA p0, the cache rows
 * the CPYs write and the g0 row SSM_DECAY reads. Those are patched in place (step_patch), the
 * graph is built and placed once per bucket, and on backends that record (CUDA graphs) the step
 * is recorded once and replayed with the patched nodes updated. Prefill chunks (T > 1) build
 * their own graph per call.
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

/* A value of the step graph that depends on the position p (step_patch). */
enum { PATCH_ROPE, PATCH_SDPA, PATCH_WRITE, PATCH_VIEW };
typedef struct patch {
    int kind;
    sisa_tensor *t;    /* the node (or view) whose param/offset changes */
    sisa_tensor *user; /* the node the backend must be told about (t, or the view's reader) */
    size_t base, stride; /* WRITE/VIEW: byte offset = base + row·stride (row p, or p - 1 for VIEW) */
} patch;

/* The cached graph of one decode step for one key bucket. */
typedef struct step_graph {
    sisa_graph *g;
    sisa_tensor *tokens, *logits;
    int64_t Tk;
    patch *p;
    int n_p, cap_p;
    int *changed; /* node indices told to the backend before a replay */
    int n_changed;
    bool prepared;
    unsigned arena_gen;
    void *rec;       /* the backend's recording, or NULL */
    bool no_record;  /* recording refused or failed once: compute normally */
    int64_t rec_pos; /* the position the recording's nodes are updated for (-1: none) */
} step_graph;

/* Host-side time split of decode steps (SISA_DECODE_TIMING=1 prints it when the session ends). */
enum { T_BUILD, T_PREPARE, T_RECORD, T_PATCH, T_INPUT, T_COMPUTE, T_READ, T_N };

struct sisa_session {
    sisa_model *m;
    sisa_kvcache kv;
    sisa_buffer *resid; /* the residual rows h and out of a step (pin_resid), or NULL */
    int batch, max_ctx, pos;
    float *last;   /* batch·V logits of the last position */
    bool has_last;
    step_graph step;
    int bucket;        /* key bucket of the step graph */
    bool rebuild;      /* SISA_DECODE_REBUILD=1: build every step's graph (the old way; tests) */
    bool timing;
    double t[T_N];
    int64_t n_steps, n_builds, n_records, n_replays;
};

typedef struct dbuild {
    const sisa_model *m;
    const sisa_kvcache *kv;
    sisa_graph *g;
    int64_t B, T, H, dh, ds, p0, Tk;
    int layer;
    step_graph *sg; /* non-NULL: record the position-dependent values */
    sisa_buffer *resid; /* T == 1: the residual rows go here (pin_resid), or NULL */
} dbuild;

/* Bytes of one residual slot of the session's resid buffer: B rows of d_model f32, aligned. */
static size_t resid_slot(int64_t B, int64_t d) { return ((size_t)(B * d) * 4 + 255) / 256 * 256; }

/* A step's residual ADDs (h = x + o and out = h + down) write into slot 0 / 1 of the session's
 * resid buffer instead of the arena. Same values; what changes is only where they live: outside
 * the arena, no output of a step overlaps the memory of a temporary that died inside it, so a
 * backend that computes a MATMUL and the ADD after it as one kernel (CUDA: SWIGLU + down GEMV +
 * ADD, W_O GEMV + ADD) never has to refuse for overlap. Every layer reuses the two slots: all
 * readers of layer l's h/out precede the node that overwrites it (they are its ancestors).
 * SISA_DECODE_NO_RESID=1: in the arena as before. */
static sisa_tensor *pin_resid(dbuild *b, sisa_tensor *t, int slot) {
    if (!t || !b->resid || b->g->status != SISA_OK || !sisa_tensor_is_contiguous(t) ||
        sisa_tensor_span_bytes(t) > resid_slot(b->B, b->m->cfg.d_model))
        return t;
    t->flags |= SISA_TENSOR_PARAM;
    t->buffer = b->resid;
    t->offset = (size_t)slot * resid_slot(b->B, b->m->cfg.d_model);
    return t;
}

static void add_patch(dbuild *b, int kind, sisa_tensor *t, sisa_tensor *user, size_t base,
                      size_t stride) {
    step_graph *sg = b->sg;
    if (!sg || !t || !user || b->g->status != SISA_OK) return;
    if (sg->n_p == sg->cap_p) {
        int cap = sg->cap_p ? 2 * sg->cap_p : 128;
        patch *np = realloc(sg->p, (size_t)cap * sizeof *np);
        if (!np) {
            b->g->status = SISA_OUT_OF_MEMORY;
            snprintf(b->g->err, sizeof b->g->err, "decode graph: out of host memory");
            return;
        }
        sg->p = np;
        sg->cap_p = cap;
    }
    sg->p[sg->n_p++] = (patch){.kind = kind, .t = t, .user = user, .base = base, .stride = stride};
}

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
    c = sisa_kvcache_write_into(b->g, c, leaf, (size_t)(b->p0 * stride[pdim]));
    add_patch(b, PATCH_WRITE, c, c, leaf->offset, (size_t)stride[pdim]);
    return c;
}

/* A leaf spanning the weights "layers.<i>.<suffix>" of names[0..n) when the model placed them
 * back to back in one buffer with one dtype and row length (their rows concatenated = the weight
 * of the fused projection); NULL otherwise (the caller then runs them one by one). */
static sisa_tensor *fused_weight(dbuild *b, const char *const *names, int n, int64_t *rows) {
    if (getenv("SISA_DECODE_NO_FUSE")) return NULL;
    const sisa_weight *first = NULL, *prev = NULL;
    int64_t total = 0;
    for (int k = 0; k < n; k++) {
        char nm[SISA_NAME_LEN];
        snprintf(nm, sizeof nm, "layers.%d.%s", b->layer, names[k]);
        const sisa_weight *w = sisa_model_weight(b->m, nm);
        if (!w || w->shape[0] != 1 || w->shape[1] != 1) return NULL;
        if (prev && (w->buffer != prev->buffer || w->dtype != prev->dtype ||
                     w->shape[3] != prev->shape[3] ||
                     w->offset != prev->offset + (size_t)(prev->shape[2] * prev->shape[3]) *
                                                     sisa_dtype_size(prev->dtype)))
            return NULL;
        if (!first) first = w;
        rows[k] = w->shape[2];
        total += w->shape[2];
        prev = w;
    }
    if (!first || b->g->status != SISA_OK) return NULL;
    const int64_t shape[4] = {1, 1, total, first->shape[3]};
    sisa_tensor *t = sisa_graph_leaf(b->g, "fused", first->dtype, shape, SISA_TENSOR_PARAM);
    if (!t) return NULL;
    sisa_tensor_set_name(t, "layers.%d.%s+%d", b->layer, names[0], n - 1);
    t->buffer = first->buffer;
    t->offset = first->offset;
    return t;
}

/* Columns [c0, c0 + w) of a (1,B,T,N) result as (1,B,T,w), or as (B,T,H,w/H) when heads > 0. */
static sisa_tensor *cols(dbuild *b, sisa_tensor *P, int64_t c0, int64_t w, int64_t heads,
                         const char *what) {
    if (!P) return NULL;
    const int64_t es = (int64_t)sisa_dtype_size(P->dtype);
    int64_t shape[4] = {1, b->B, b->T, w}, stride[4] = {P->stride[0], P->stride[1], P->stride[2], es};
    if (heads > 0) {
        const int64_t sh[4] = {b->B, b->T, heads, w / heads};
        const int64_t st[4] = {P->stride[1], P->stride[2], (w / heads) * es, es};
        memcpy(shape, sh, sizeof shape);
        memcpy(stride, st, sizeof stride);
    }
    return named(b, sisa_view(b->g, P, shape, stride, (size_t)(c0 * es)), what);
}

/* One block in form (B) against the caches. */
static sisa_tensor *block(dbuild *b, sisa_tensor *x) {
    sisa_graph *g = b->g;
    const sisa_config *c = &b->m->cfg;
    const float eps = (float)c->norm_eps, base = (float)c->rope_base;
    const int i = b->layer;
    sisa_tensor *xn = named(b, sisa_rms_norm(g, x, wleaf(b, "attn_norm.weight"), eps), "xn");
    /* every projection of xn: one MATMUL on the fused weight, or one each */
    static const char *const proj[] = {"W_Q.weight", "W_K.weight", "W_V.weight", "W_B.weight",
                                       "W_C.weight", "alpha_proj.weight", "theta_proj.weight"};
    static const char *const proj_out[] = {"q_proj", "k_proj", "v_proj", "Bs", "Cs",
                                           "alpha_logits", "theta"};
    const int n_proj = b->ds > 0 ? 7 : 3;
    sisa_tensor *pr[7] = {0}, *qh = NULL, *kh = NULL, *vh = NULL; /* qh, kh, vh: (B,T,H,dh) */
    int64_t rows[7];
    sisa_tensor *Wf = fused_weight(b, proj, n_proj, rows);
    if (Wf) {
        sisa_tensor *P = named(b, sisa_matmul(g, xn, Wf), "proj");
        int64_t c0 = 0;
        for (int k = 0; k < n_proj; k++) {
            if (k < 3) {
                sisa_tensor *v = cols(b, P, c0, rows[k], b->H, proj_out[k]);
                if (k == 0) qh = v; else if (k == 1) kh = v; else vh = v;
            } else {
                pr[k] = cols(b, P, c0, rows[k], 0, proj_out[k]);
            }
            c0 += rows[k];
        }
    } else {
        for (int k = 0; k < n_proj; k++) pr[k] = linear(b, xn, proj[k], proj_out[k]);
        qh = sisa_reshape(g, pr[0], b->B, b->T, b->H, b->dh);
        kh = sisa_reshape(g, pr[1], b->B, b->T, b->H, b->dh);
        vh = sisa_reshape(g, pr[2], b->B, b->T, b->H, b->dh);
    }
    sisa_tensor *qr, *kr;
    if (Wf) { /* q and k are adjacent column blocks of the fused output: ONE RoPE over 2H heads */
        const int64_t es = (int64_t)sisa_dtype_size(qh->dtype);
        const int64_t sh[4] = {b->B, b->T, 2 * b->H, b->dh};
        const int64_t st[4] = {qh->stride[0], qh->stride[1], b->dh * es, es};
        sisa_tensor *qk = named(b, sisa_rope(g, sisa_view(g, qh->view_src, sh, st, qh->view_offset),
                                             base, (int32_t)b->p0), "qk_rope");
        add_patch(b, PATCH_ROPE, qk, qk, 0, 0);
        const int64_t hs[4] = {b->B, b->T, b->H, b->dh};
        qr = qk ? named(b, sisa_view(g, qk, hs, qk->stride, 0), "q_rope") : NULL;
        kr = qk ? named(b, sisa_view(g, qk, hs, qk->stride, (size_t)(b->H * b->dh) * qk->stride[3]),
                        "k_rope") : NULL;
    } else {
        qr = named(b, sisa_rope(g, qh, base, (int32_t)b->p0), "q_rope");
        kr = named(b, sisa_rope(g, kh, base, (int32_t)b->p0), "k_rope");
        add_patch(b, PATCH_ROPE, qr, qr, 0, 0);
        add_patch(b, PATCH_ROPE, kr, kr, 0, 0);
    }
    sisa_tensor *q = sisa_permute(g, qr, 0, 2, 1, 3); /* (B,H,T,dh) */
    sisa_tensor *k = sisa_permute(g, kr, 0, 2, 1, 3);

    sisa_tensor *Kc = sisa_kvcache_leaf_k(b->kv, g, i), *Vc = sisa_kvcache_leaf_v(b->kv, g, i);
    sisa_sdpa_params sp = {.scale = (float)(1.0 / sqrt((double)b->dh)), .causal = 1,
                           .p0 = (int32_t)b->p0};
    sisa_tensor *Q = q, *Knew = k;
    if (b->ds > 0) {
        sisa_tensor *Gc = sisa_kvcache_leaf_g(b->kv, g, i), *Phc = sisa_kvcache_leaf_phi(b->kv, g, i);
        sisa_tensor *Bs = pr[3], *Cs = pr[4], *a = pr[5], *theta = pr[6];
        sisa_tensor *g0 = b->p0 > 0 ? cache_rows(b, Gc, 1, b->p0 - 1, 1) : NULL; /* (1,1,B,H) */
        sisa_tensor *phi0 = b->p0 > 0 ? Phc : NULL;
        sisa_tensor *gd = named(b, sisa_ssm_decay(g, a, wleaf(b, "alpha_proj.bias"), g0), "g");
        if (g0 && Gc) add_patch(b, PATCH_VIEW, g0, gd, Gc->offset, (size_t)Gc->stride[1]);
        sisa_tensor *sCB = named(b, sisa_ssm_channels(g, Bs, Cs, theta, gd, wleaf(b, "lambda_raw"),
                                                      phi0, SISA_SSM_FACTORED, (int32_t)b->dh,
                                                      (float)c->ssm_clamp), "sCB");
        const int64_t W = b->kv->wk;
        Q = named(b, sisa_augment(g, q, sisa_slice_row(g, sCB, 0, b->ds), W), "Qhat_pad");
        Knew = named(b, sisa_augment(g, k, sisa_slice_row(g, sCB, b->ds, b->ds), W), "Khat_pad");
        /* g -> cache (1,T,B,H); gk = cached g over [0, Tk) as a strided view (1,B,H,Tk). One
         * new position: g (1,B,H,1) has the layout of a cache row, so SSM_DECAY writes it there
         * itself (no CPY; SISA_DECODE_G_CPY=1 copies as for T > 1) */
        if (b->T == 1 && gd && Gc && gd->dtype == Gc->dtype && sisa_tensor_is_contiguous(gd) &&
            !getenv("SISA_DECODE_G_CPY")) {
            sisa_kvcache_write_into(g, gd, Gc, (size_t)(b->p0 * Gc->stride[1]));
            add_patch(b, PATCH_WRITE, gd, gd, Gc->offset, (size_t)Gc->stride[1]);
        } else {
            cache_write(b, Gc, 1, sisa_permute(g, gd, 0, 3, 1, 2), "g_cache");
        }
        sisa_tensor *gk = sisa_permute(g, cache_rows(b, Gc, 1, 0, b->Tk), 0, 2, 3, 1);
        if (getenv("SISA_DECODE_GK_COPY")) gk = sisa_cpy(g, gk, SISA_F32);
        sp.gq = gd;
        sp.gk = named(b, gk, "gk");
        sp.d_content = (int32_t)b->dh;
        /* the running rotation: Phi' = Phi0 + sum_t theta_t */
        sisa_tensor *sum;
        if (b->T == 1 && theta) { /* (1,B,1,w) as (1,1,B,w); theta may be a column view */
            const int64_t shape[4] = {1, 1, b->B, theta->shape[3]};
            const int64_t stride[4] = {b->B * theta->stride[1], theta->stride[1], theta->stride[1],
                                       theta->stride[3]};
            sum = sisa_view(g, theta, shape, stride, 0);
        } else {
            sisa_tensor *thT = sisa_cpy(g, sisa_permute(g, theta, 0, 1, 3, 2), SISA_F32);
            sisa_tensor *s1 = sisa_matmul(g, thT, sisa_kvcache_leaf_ones(b->kv, g, b->T));
            sum = sisa_reshape(g, s1, 1, 1, b->B, theta ? theta->shape[3] : 1);
        }
        if (phi0 && g->act_dtype == SISA_F32 && sum && sum->dtype == SISA_F32) {
            /* Phi0 + sum straight into the state (each element reads then writes itself) */
            sisa_kvcache_write_into(g, named(b, sisa_add(g, phi0, sum), "phi_state"), Phc, 0);
        } else {
            sisa_tensor *phi_new = phi0 ? sisa_add(g, phi0, sum) : sum;
            sisa_kvcache_write_into(g, named(b, sisa_cpy(g, phi_new, SISA_F32), "phi_state"), Phc, 0);
        }
    }
    /* new K/V rows -> cache (T,B,H,w), then attention over [0, Tk) */
    cache_write(b, Kc, 0, sisa_permute(g, Knew, 2, 0, 1, 3), "k_cache");
    cache_write(b, Vc, 0, sisa_permute(g, vh, 1, 0, 2, 3), "v_cache");
    sisa_tensor *Kall = sisa_permute(g, cache_rows(b, Kc, 0, 0, b->Tk), 1, 2, 0, 3);
    sisa_tensor *Vall = sisa_permute(g, cache_rows(b, Vc, 0, 0, b->Tk), 1, 2, 0, 3);
    sisa_tensor *y = named(b, sisa_sdpa(g, Q, Kall, Vall, &sp), "attn");
    add_patch(b, PATCH_SDPA, y, y, 0, 0);
    sisa_tensor *yc = sisa_reshape(g, y, 1, b->B, b->T, b->H * b->dh);
    sisa_tensor *h = pin_resid(b, named(b, sisa_add(g, x, linear(b, yc, "W_O.weight", "o")), "h"), 0);
    sisa_tensor *xn2 = named(b, sisa_rms_norm(g, h, wleaf(b, "ffn_norm.weight"), eps), "xn2");
    static const char *const ffn_in[] = {"ffn.w_gate.weight", "ffn.w_up.weight"};
    int64_t frows[2];
    sisa_tensor *Wgu = fused_weight(b, ffn_in, 2, frows), *gate, *up;
    if (Wgu && frows[0] == frows[1]) {
        sisa_tensor *P = named(b, sisa_matmul(g, xn2, Wgu), "gate_up");
        gate = cols(b, P, 0, frows[0], 0, "gate");
        up = cols(b, P, frows[0], frows[1], 0, "up");
    } else {
        gate = linear(b, xn2, "ffn.w_gate.weight", "gate");
        up = linear(b, xn2, "ffn.w_up.weight", "up");
    }
    sisa_tensor *down = linear(b, named(b, sisa_swiglu(g, gate, up), "swiglu"), "ffn.w_down.weight",
                               "down");
    return pin_resid(b, named(b, sisa_add(g, h, down), "out"), 1);
}

/* The graph for T new positions at p0 attending over Tk >= p0 + T keys; all_logits: every
 * position, else only the last. sg non-NULL: record its position-dependent values. */
static sisa_status build_chunk(sisa_session *s, int T, int64_t Tk, bool all_logits, step_graph *sg,
                               sisa_graph **out, sisa_tensor **tokens, sisa_tensor **logits) {
    const sisa_model *m = s->m;
    const sisa_config *c = &m->cfg;
    sisa_graph *g = sisa_graph_new();
    if (!g) return sisa_err(SISA_OUT_OF_MEMORY, "decode graph: out of host memory");
    dbuild b = {.m = m, .kv = &s->kv, .g = g, .B = s->batch, .T = T, .H = c->n_heads,
                .dh = c->head_dim, .ds = c->d_ssm, .p0 = s->pos, .Tk = Tk, .layer = -1, .sg = sg,
                .resid = T == 1 ? s->resid : NULL};
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

/* ---- the cached step graph ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void step_release(sisa_session *s) {
    step_graph *sg = &s->step;
    sisa_sched_release(s->m->sched, sg->rec);
    sisa_graph_free(sg->g);
    free(sg->p);
    free(sg->changed);
    memset(sg, 0, sizeof *sg);
}

/* Set every position-dependent value of the step graph for new position p (>= 1). */
static void step_patch(step_graph *sg, int64_t p) {
    sg->n_changed = 0;
    for (int i = 0; i < sg->n_p; i++) {
        patch *q = &sg->p[i];
        switch (q->kind) {
        case PATCH_ROPE: q->t->iparams[0] = (int32_t)p; break;
        case PATCH_SDPA: q->t->iparams[1] = (int32_t)p; break;
        case PATCH_WRITE: q->t->offset = q->base + (size_t)p * q->stride; break;
        case PATCH_VIEW: /* the view's storage follows its source (alloc.c) */
            q->t->view_offset = (size_t)(p - 1) * q->stride;
            q->t->offset = q->base + q->t->view_offset;
            break;
        }
        if (sg->n_changed == 0 || sg->changed[sg->n_changed - 1] != q->user->index)
            sg->changed[sg->n_changed++] = q->user->index;
    }
}

/* Key capacity of the step graph for a step at position pos: pos + 1 rounded up to the bucket. */
static int64_t step_keys(const sisa_session *s, int pos) {
    int64_t tk = ((int64_t)pos + 1 + s->bucket - 1) / s->bucket * s->bucket;
    return tk < s->max_ctx ? tk : s->max_ctx;
}

/* Make the step graph fit position s->pos: built for its bucket, placed in the current arena. */
static sisa_status step_ready(sisa_session *s) {
    step_graph *sg = &s->step;
    const int64_t Tk = step_keys(s, s->pos);
    double t0 = now_s();
    if (!sg->g || sg->Tk != Tk) {
        step_release(s);
        sisa_status st = build_chunk(s, 1, Tk, true, sg, &sg->g, &sg->tokens, &sg->logits);
        if (st == SISA_OK && !(sg->changed = malloc(sizeof(int) * (size_t)(sg->n_p + 1))))
            st = sisa_err(SISA_OUT_OF_MEMORY, "decode graph: out of host memory");
        if (st != SISA_OK) {
            step_release(s);
            return st;
        }
        sg->Tk = Tk;
        s->n_builds++;
    }
    double t1 = now_s();
    s->t[T_BUILD] += t1 - t0;
    sisa_sched *sc = s->m->sched;
    if (!sg->prepared || sg->arena_gen != sc->arena.generation) {
        sisa_sched_release(sc, sg->rec);
        sg->rec = NULL;
        sg->rec_pos = -1;
        sg->prepared = false;
        step_patch(sg, s->pos); /* placement sees real offsets */
        SISA_TRY(sisa_sched_prepare(sc, sg->g));
        sg->prepared = true;
        sg->arena_gen = sc->arena.generation;
    }
    s->t[T_PREPARE] += now_s() - t1;
    return SISA_OK;
}

static void stop_replay(sisa_session *s) {
    step_graph *sg = &s->step;
    sisa_sched_release(s->m->sched, sg->rec);
    sg->rec = NULL;
    sg->no_record = true;
}

/* Replay the recording (its nodes hold position s->pos) and wait for it. While the device runs
 * it, the nodes are patched and updated for position pos + 1 when that step uses this graph too
 * (the update affects later replays only), so the host's update cost hides behind the device's
 * work; *patch_s gets that time. An update the backend refuses only means that the next step
 * computes normally: the recording is released after the wait. */
static sisa_status step_replay(sisa_session *s, double *patch_s) {
    step_graph *sg = &s->step;
    sisa_sched *sc = s->m->sched;
    *patch_s = 0.0;
    SISA_TRY(sisa_sched_launch(sc, sg->rec));
    s->n_replays++;
    const int64_t next = (int64_t)s->pos + 1;
    bool keep = true;
    if (next < s->max_ctx && step_keys(s, (int)next) == sg->Tk) {
        const double u0 = now_s();
        step_patch(sg, next);
        keep = sisa_sched_update(sc, sg->g, sg->rec, sg->changed, sg->n_changed) == SISA_OK;
        sg->rec_pos = keep ? next : -1;
        *patch_s = now_s() - u0;
    }
    const sisa_status st = sisa_sched_sync(sc);
    if (!keep) stop_replay(s);
    return st;
}

/* One new position per sequence at s->pos > 0 through the cached step graph: replayed where the
 * backend recorded it (step_replay), else computed node by node. */
static sisa_status step_run(sisa_session *s, const int32_t *tokens, float *logits) {
    SISA_TRY(step_ready(s));
    step_graph *sg = &s->step;
    sisa_sched *sc = s->m->sched;
    double t0 = now_s();
    if (!sg->rec || sg->rec_pos != s->pos) step_patch(sg, s->pos);
    double t1 = now_s();
    SISA_TRY(sisa_tensor_write(sg->tokens, tokens, (size_t)s->batch * sizeof *tokens));
    double t2 = now_s();
    s->t[T_PATCH] += t1 - t0;
    s->t[T_INPUT] += t2 - t1;
    if (!sg->rec && !sg->no_record) { /* record once; not offered or refused: compute normally */
        if (sisa_sched_record(sc, sg->g, &sg->rec) != SISA_OK || !sg->rec) {
            sg->no_record = true;
            sg->rec = NULL;
        } else {
            sg->rec_pos = s->pos; /* recorded with this position's values */
            s->n_records++;
        }
        s->t[T_RECORD] += now_s() - t2;
        t2 = now_s();
    }
    sisa_status st = SISA_OK;
    if (sg->rec && sg->rec_pos != s->pos) { /* the recording holds another position's values */
        st = sisa_sched_update(sc, sg->g, sg->rec, sg->changed, sg->n_changed);
        if (st == SISA_OK) {
            sg->rec_pos = s->pos;
        } else if (st == SISA_UNSUPPORTED) { /* an update the backend cannot make: stop replaying */
            stop_replay(s);
            st = SISA_OK;
        }
    }
    double t3 = now_s(), overlapped = 0.0;
    s->t[T_PATCH] += t3 - t2;
    if (st == SISA_OK) st = sg->rec ? step_replay(s, &overlapped) : sisa_sched_compute(sc, sg->g);
    double t4 = now_s();
    s->t[T_PATCH] += overlapped;
    s->t[T_COMPUTE] += t4 - t3 - overlapped;
    if (st == SISA_OK) {
        const size_t row = (size_t)s->m->cfg.vocab_size * sizeof(float);
        st = sisa_tensor_read(sg->logits, s->last, (size_t)s->batch * row);
        if (st == SISA_OK && logits) memcpy(logits, s->last, (size_t)s->batch * row);
    }
    s->t[T_READ] += now_s() - t4;
    s->n_steps++;
    return st;
}

static void print_timing(const sisa_session *s) {
    if (!s->timing || s->n_steps == 0) return;
    static const char *names[T_N] = {"build", "prepare", "record", "patch", "input", "compute+wait",
                                     "read logits"};
    double total = 0;
    for (int i = 0; i < T_N; i++) total += s->t[i];
    int ops = 0;
    for (int i = 0; s->step.g && i < s->step.g->n_nodes; i++) ops += s->step.g->nodes[i]->op != SISA_OP_VIEW;
    fprintf(stderr, "decode steps: %lld (graphs built %lld, recorded %lld, replays %lld; step graph "
                    "%d ops, %d patched), host-timed split per step in us:", (long long)s->n_steps,
            (long long)s->n_builds, (long long)s->n_records, (long long)s->n_replays, ops,
            s->step.n_p);
    for (int i = 0; i < T_N; i++) fprintf(stderr, " %s %.1f", names[i], 1e6 * s->t[i] / (double)s->n_steps);
    fprintf(stderr, " | total %.1f\n", 1e6 * total / (double)s->n_steps);
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
    const char *e = getenv("SISA_DECODE_BUCKET");
    s->bucket = e && atoi(e) > 0 ? atoi(e) : 256;
    s->rebuild = (e = getenv("SISA_DECODE_REBUILD")) && e[0] && strcmp(e, "0") != 0;
    s->timing = (e = getenv("SISA_DECODE_TIMING")) && e[0] && strcmp(e, "0") != 0;
    s->last = malloc((size_t)n_seq * (size_t)m->cfg.vocab_size * sizeof *s->last);
    sisa_status st = s->last ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "session: out of host memory");
    if (st == SISA_OK) st = sisa_kvcache_init(&s->kv, m, n_seq, s->max_ctx);
    if (st == SISA_OK && !((e = getenv("SISA_DECODE_NO_RESID")) && e[0] && strcmp(e, "0") != 0)) {
        st = sisa_buffer_alloc(m->dev, 2 * resid_slot(n_seq, m->cfg.d_model), &s->resid);
        if (st != SISA_OK) st = sisa_err_prefix(st, "session: residual rows");
    }
    if (st != SISA_OK) {
        sisa_buffer_free(s->resid);
        sisa_kvcache_free(&s->kv);
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
    print_timing(s);
    step_release(s);
    sisa_kvcache_free(&s->kv);
    sisa_buffer_free(s->resid);
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
    sisa_status st = SISA_OK;
    if (n == 1 && s->pos > 0 && !s->rebuild) {
        st = step_run(s, tokens, logits);
    } else {
        sisa_graph *g = NULL;
        sisa_tensor *tk = NULL, *lg = NULL;
        double t0 = now_s();
        SISA_TRY(build_chunk(s, n, (int64_t)s->pos + n, logits != NULL, NULL, &g, &tk, &lg));
        double t1 = now_s();
        st = sisa_sched_prepare(s->m->sched, g);
        double t2 = now_s();
        if (st == SISA_OK) st = sisa_tensor_write(tk, tokens, (size_t)s->batch * (size_t)n * sizeof *tokens);
        double t3 = now_s();
        if (st == SISA_OK) st = sisa_sched_compute(s->m->sched, g);
        double t4 = now_s();
        const size_t row = (size_t)V * sizeof(float);
        if (st == SISA_OK && logits) {
            st = sisa_tensor_read(lg, logits, (size_t)s->batch * (size_t)n * row);
            for (int b = 0; b < s->batch; b++) /* last position of each sequence */
                memcpy(s->last + (size_t)b * V, logits + ((size_t)b * n + (size_t)n - 1) * V, row);
        } else if (st == SISA_OK) {
            st = sisa_tensor_read(lg, s->last, (size_t)s->batch * row);
        }
        sisa_graph_free(g);
        if (n == 1) { /* a step the old way (SISA_DECODE_REBUILD, or at position 0) */
            s->t[T_BUILD] += t1 - t0;
            s->t[T_PREPARE] += t2 - t1;
            s->t[T_INPUT] += t3 - t2;
            s->t[T_COMPUTE] += t4 - t3;
            s->t[T_READ] += now_s() - t4;
            s->n_steps++;
            s->n_builds++;
        }
    }
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
