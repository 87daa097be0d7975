/*
 * model_graph.c — the op graph of one full-sequence forward in the augmented form (A) of
 * SISA.md §1, built from the builders of graph.h. One helper per part of the block, in the
 * order SISA.md writes them, so the code can be read against the spec line by line:
 *
 *   xn = RMSNorm_attn(x)
 *   content path: q, k, v = xn·W_Q/K/Vᵀ, RoPE(q, k)
 *   SSM channels: Bs, Cs, g = cumsum(-softplus(alpha)), theta -> s·Cbar, s·Bbar  (sisa only)
 *   augmentation: Qhat = [q | s·Cbar], Khat = [k | s·Bbar]                      (sisa only)
 *   Y = SDPA(Qhat, Khat, V, 1/sqrt(d_h), causal);  x = x + concat_heads(Y)·W_Oᵀ
 *   FFN: x = x + W_down(silu(xn2·W_gateᵀ) ⊙ xn2·W_upᵀ)
 *   model: embed -> L blocks -> final RMSNorm -> logits = h·Eᵀ
 *
 * Node names are listed in model.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

typedef struct build {
    const sisa_model *m;
    const sisa_config *c;
    sisa_graph *g;
    int64_t B, T, H, dh, ds;
    int layer;
} build;

/* ---- weights and names ---- */

sisa_tensor *sisa_model_weight_leaf(const sisa_model *m, sisa_graph *g, const char *name) {
    if (!g || g->status != SISA_OK) return NULL;
    for (int i = 0; i < g->n_leafs; i++)
        if ((g->leafs[i]->flags & SISA_TENSOR_PARAM) && !strcmp(g->leafs[i]->name, name))
            return g->leafs[i];
    const sisa_weight *w = sisa_model_weight(m, name);
    if (!w) {
        g->status = SISA_INTERNAL;
        snprintf(g->err, sizeof g->err, "model has no weight '%s'", name);
        return NULL;
    }
    sisa_tensor *t = sisa_graph_leaf(g, w->name, w->dtype, w->shape, SISA_TENSOR_PARAM);
    if (t) {
        t->buffer = w->buffer;
        t->offset = w->offset;
    }
    return t;
}

sisa_tensor *sisa_model_layer_weight(const sisa_model *m, sisa_graph *g, int layer, const char *suffix) {
    char name[SISA_NAME_LEN];
    snprintf(name, sizeof name, "layers.%d.%s", layer, suffix);
    return sisa_model_weight_leaf(m, g, name);
}

/* Weight "layers.<i>.<suffix>" of the current layer. */
static sisa_tensor *layer_weight(build *b, const char *suffix) {
    return sisa_model_layer_weight(b->m, b->g, b->layer, suffix);
}

/* Name a node of the current layer. */
static sisa_tensor *named(build *b, sisa_tensor *t, const char *what) {
    return sisa_tensor_set_name(t, "layers.%d.%s", b->layer, what);
}

/* y = x·Wᵀ for the layer weight `wname` (stored [out, in], a (1,1,out,in) leaf). */
static sisa_tensor *linear(build *b, sisa_tensor *x, const char *wname, const char *out) {
    return named(b, sisa_matmul(b->g, x, layer_weight(b, wname)), out);
}

/* (1,B,T,H·w) -> (B,T,H,w): head h = channels [h·w, (h+1)·w) (SISA.md §5). */
static sisa_tensor *split_heads(build *b, sisa_tensor *t, int64_t w, const char *name) {
    return named(b, sisa_reshape(b->g, t, b->B, b->T, b->H, w), name);
}

/* (B,T,H,w) -> (B,H,T,w), a view. */
static sisa_tensor *heads_first(build *b, sisa_tensor *t, const char *name) {
    return named(b, sisa_permute(b->g, t, 0, 2, 1, 3), name);
}

/* ---- the parts of a block ---- */

/* q, k (after RoPE) and v, each a (B,H,T,d_h) view. */
static void content_path(build *b, sisa_tensor *xn, sisa_tensor **q, sisa_tensor **k,
                         sisa_tensor **v) {
    const float base = (float)b->c->rope_base;
    sisa_tensor *qp = linear(b, xn, "W_Q.weight", "q_proj");
    sisa_tensor *kp = linear(b, xn, "W_K.weight", "k_proj");
    sisa_tensor *vp = linear(b, xn, "W_V.weight", "v_proj");
    sisa_tensor *qr = named(b, sisa_rope(b->g, split_heads(b, qp, b->dh, "q_heads"), base, 0), "q_rope");
    sisa_tensor *kr = named(b, sisa_rope(b->g, split_heads(b, kp, b->dh, "k_heads"), base, 0), "k_rope");
    *q = heads_first(b, qr, "q");
    *k = heads_first(b, kr, "k");
    *v = heads_first(b, split_heads(b, vp, b->dh, "v_heads"), "v");
}

/* The SSM channels [s·Cbar | s·Bbar] (B,H,T,2·d_s); *g_out = the cumulative log-decay g. */
static sisa_tensor *ssm_channels(build *b, sisa_tensor *xn, sisa_tensor **g_out) {
    sisa_tensor *Bs = linear(b, xn, "W_B.weight", "Bs");
    sisa_tensor *Cs = linear(b, xn, "W_C.weight", "Cs");
    sisa_tensor *a = linear(b, xn, "alpha_proj.weight", "alpha_logits");
    sisa_tensor *g = named(b, sisa_ssm_decay(b->g, a, layer_weight(b, "alpha_proj.bias"), NULL), "g");
    sisa_tensor *theta = linear(b, xn, "theta_proj.weight", "theta");
    *g_out = sisa_tensor_set_output(g); /* read back for the clamp report */
    return named(b,
                 sisa_ssm_channels(b->g, Bs, Cs, theta, g, layer_weight(b, "lambda_raw"), NULL,
                                   SISA_SSM_AUGMENTED, (int32_t)b->dh, (float)b->c->ssm_clamp),
                 "sCB");
}

/* Qhat = [q | s·Cbar], Khat = [k | s·Bbar], zero-padded to a multiple of 16 channels (or of the
 * device's augment_align, backend.h). */
static void augment(build *b, sisa_tensor *q, sisa_tensor *k, sisa_tensor *sCB, sisa_tensor **Qhat,
                    sisa_tensor **Khat) {
    const sisa_device *dev = sisa_model_device(b->m);
    const int64_t al = dev && dev->augment_align > 0 ? dev->augment_align : 16;
    const int64_t width = b->dh + b->ds, padded = (width + al - 1) / al * al;
    sisa_tensor *sC = named(b, sisa_slice_row(b->g, sCB, 0, b->ds), "sCbar");
    sisa_tensor *sB = named(b, sisa_slice_row(b->g, sCB, b->ds, b->ds), "sBbar");
    sisa_tensor *qa = named(b, sisa_augment(b->g, q, sC, padded), "Qhat_pad");
    sisa_tensor *ka = named(b, sisa_augment(b->g, k, sB, padded), "Khat_pad");
    /* views without the padding carry the golden names */
    named(b, sisa_slice_row(b->g, qa, 0, width), "Qhat");
    named(b, sisa_slice_row(b->g, ka, 0, width), "Khat");
    *Qhat = qa;
    *Khat = ka;
}

/* concat_heads(SDPA(Q, K, V)) as (1,B,T,d). The scale is 1/sqrt(d_h), never 1/sqrt(d_h + d_s). */
static sisa_tensor *attention(build *b, sisa_tensor *Q, sisa_tensor *K, sisa_tensor *V) {
    const sisa_sdpa_params p = {.scale = (float)(1.0 / sqrt((double)b->dh)), .causal = 1, .p0 = 0};
    sisa_tensor *y = named(b, sisa_sdpa(b->g, Q, K, V, &p), "attn");
    heads_first(b, y, "Y");
    return named(b, sisa_reshape(b->g, y, 1, b->B, b->T, b->H * b->dh), "attn_concat");
}

/* W_down(silu(xn2·W_gateᵀ) ⊙ (xn2·W_upᵀ)) */
static sisa_tensor *ffn(build *b, sisa_tensor *xn2) {
    sisa_tensor *gate = linear(b, xn2, "ffn.w_gate.weight", "gate");
    sisa_tensor *up = linear(b, xn2, "ffn.w_up.weight", "up");
    sisa_tensor *act = named(b, sisa_swiglu(b->g, gate, up), "swiglu");
    return linear(b, act, "ffn.w_down.weight", "down");
}

/* Builders after this store their results in dt (graph.h's act_dtype). */
static void store_as(build *b, sisa_dtype dt) {
    if (b->g) b->g->act_dtype = dt;
}

/* One pre-norm block: x -> x + attn(RMSNorm(x)) -> + ffn(RMSNorm(.)). The residual stream x
 * stays f32; everything between a norm and its residual add is stored in the compute dtype. */
static sisa_tensor *block(build *b, sisa_tensor *x, sisa_tensor **g_out) {
    const float eps = (float)b->c->norm_eps;
    store_as(b, b->m->act_dtype);
    sisa_tensor *xn = named(b, sisa_rms_norm(b->g, x, layer_weight(b, "attn_norm.weight"), eps), "xn");
    sisa_tensor *q, *k, *v, *Q, *K;
    content_path(b, xn, &q, &k, &v);
    *g_out = NULL;
    if (b->ds > 0) {
        augment(b, q, k, ssm_channels(b, xn, g_out), &Q, &K);
    } else { /* the Transformer control: plain q, k */
        Q = q;
        K = k;
    }
    sisa_tensor *o = linear(b, attention(b, Q, K, v), "W_O.weight", "o");
    store_as(b, SISA_F32);
    sisa_tensor *h = named(b, sisa_add(b->g, x, o), "h");
    store_as(b, b->m->act_dtype);
    sisa_tensor *xn2 = named(b, sisa_rms_norm(b->g, h, layer_weight(b, "ffn_norm.weight"), eps), "xn2");
    sisa_tensor *f = ffn(b, xn2);
    store_as(b, SISA_F32);
    return named(b, sisa_add(b->g, h, f), "out");
}

/* ---- the model ---- */

void sisa_model_graph_free(sisa_model_graph *mg) {
    if (!mg) return;
    sisa_graph_free(mg->graph);
    free(mg->g);
    free(mg);
}

sisa_status sisa_model_build_graph(const sisa_model *m, int batch, int T, bool keep_all,
                                   sisa_model_graph **out) {
    if (!out) return sisa_err(SISA_INVALID_ARG, "model graph: NULL output");
    *out = NULL;
    if (!m) return sisa_err(SISA_INVALID_ARG, "model graph: NULL model");
    if (batch < 1 || T < 1)
        return sisa_err(SISA_INVALID_ARG, "model graph: batch %d and T %d must both be >= 1", batch, T);
    const sisa_config *c = &m->cfg;
    sisa_model_graph *mg = calloc(1, sizeof *mg);
    if (!mg) return sisa_err(SISA_OUT_OF_MEMORY, "model graph: out of host memory");
    mg->batch = batch;
    mg->T = T;
    mg->keep_all = keep_all;
    mg->n_layers = (int)c->n_layers;
    mg->g = calloc((size_t)c->n_layers, sizeof *mg->g);
    mg->graph = sisa_graph_new();
    if (!mg->g || !mg->graph) {
        sisa_model_graph_free(mg);
        return sisa_err(SISA_OUT_OF_MEMORY, "model graph: out of host memory");
    }
    build b = {.m = m, .c = c, .g = mg->graph, .B = batch, .T = T, .H = c->n_heads,
               .dh = c->head_dim, .ds = c->d_ssm, .layer = -1};
    sisa_graph *g = mg->graph;

    mg->tokens = sisa_graph_input(g, "tokens", SISA_I32, 1, 1, batch, T);
    sisa_tensor *E = sisa_model_weight_leaf(m, g, "embed.weight");
    sisa_tensor *x = sisa_tensor_set_name(sisa_embed(g, E, mg->tokens), "embed");
    for (int i = 0; i < c->n_layers; i++) {
        b.layer = i;
        x = block(&b, x, &mg->g[i]);
    }
    store_as(&b, m->act_dtype);
    sisa_tensor *h = sisa_rms_norm(g, x, sisa_model_weight_leaf(m, g, "final_norm.weight"),
                                   (float)c->norm_eps);
    sisa_tensor_set_name(h, "final_norm");
    store_as(&b, SISA_F32); /* logits in f32 */
    /* tied embedding: logits = h·Eᵀ, E (1,1,V,d) is exactly the [out, in] layout MATMUL wants */
    mg->logits = sisa_tensor_set_output(sisa_tensor_set_name(sisa_matmul(g, h, E), "logits"));

    sisa_status st = sisa_graph_status(g);
    if (st != SISA_OK) {
        sisa_model_graph_free(mg);
        return sisa_err_prefix(st, "model graph (batch %d, T %d)", batch, T);
    }
    if (keep_all)
        for (int i = 0; i < g->n_nodes; i++) sisa_tensor_set_output(g->nodes[i]);
    *out = mg;
    return SISA_OK;
}

sisa_tensor *sisa_model_graph_find(const sisa_model_graph *mg, const char *name) {
    if (!mg || !name) return NULL;
    const sisa_graph *g = mg->graph;
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (!strcmp(g->nodes[i]->name, name)) return g->nodes[i];
    for (int i = g->n_leafs - 1; i >= 0; i--)
        if (!strcmp(g->leafs[i]->name, name)) return g->leafs[i];
    return NULL;
}
