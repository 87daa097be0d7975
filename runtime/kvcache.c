/*
 * kvcache.c — allocation of the decode state and the graph leaves that expose it (kvcache.h).
 */
#include "kvcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define KV_ALIGN 256

static size_t align_up(size_t x) { return (x + KV_ALIGN - 1) / KV_ALIGN * KV_ALIGN; }

void sisa_kvcache_free(sisa_kvcache *kv) {
    if (!kv) return;
    for (int i = 0; kv->layers && i < kv->n_layers; i++) sisa_buffer_free(kv->layers[i].buf);
    free(kv->layers);
    sisa_buffer_free(kv->ones);
    memset(kv, 0, sizeof *kv);
}

sisa_status sisa_kvcache_init(sisa_kvcache *kv, const sisa_model *m, int batch, int max_ctx) {
    memset(kv, 0, sizeof *kv);
    const sisa_config *c = &m->cfg;
    kv->dev = m->dev;
    kv->n_layers = (int)c->n_layers;
    kv->batch = batch;
    kv->max_ctx = max_ctx;
    kv->H = c->n_heads;
    kv->dh = c->head_dim;
    kv->ds = c->d_ssm;
    kv->wk = kv->ds > 0 ? (kv->dh + kv->ds + 15) / 16 * 16 : kv->dh;
    kv->dtype = SISA_F32;
    const size_t es = sisa_dtype_size(kv->dtype), P = (size_t)max_ctx, B = (size_t)batch,
                 H = (size_t)kv->H;
    size_t k_bytes = P * B * H * (size_t)kv->wk * es, v_bytes = P * B * H * (size_t)kv->dh * es;
    size_t g_bytes = kv->ds > 0 ? P * B * H * 4 : 0;
    size_t phi_bytes = kv->ds > 0 ? B * H * (size_t)(kv->ds / 2) * 4 : 0;
    kv->layers = calloc((size_t)kv->n_layers, sizeof *kv->layers);
    if (!kv->layers) return sisa_err(SISA_OUT_OF_MEMORY, "kv cache: out of host memory");
    for (int i = 0; i < kv->n_layers; i++) {
        sisa_kv_layer *L = &kv->layers[i];
        L->k_off = 0;
        L->v_off = align_up(k_bytes);
        L->g_off = L->v_off + align_up(v_bytes);
        L->phi_off = L->g_off + align_up(g_bytes);
        size_t total = L->phi_off + align_up(phi_bytes);
        sisa_status st = sisa_buffer_alloc(kv->dev, total, &L->buf);
        /* zeros, not whatever the allocation held: rows past the position are masked by SDPA
         * (the step graph attends over a whole key bucket), and finite values there keep any
         * kernel that multiplies before it masks away from 0·NaN */
        if (st == SISA_OK) st = L->buf->iface->fill(L->buf, 0, 0, total);
        if (st != SISA_OK) {
            sisa_kvcache_free(kv);
            return sisa_err_prefix(st, "kv cache of layer %d (%zu bytes for max_ctx %d, batch %d) "
                                       "on backend '%s'", i, total, max_ctx, batch,
                                   m->dev->backend->name);
        }
        kv->bytes += total;
    }
    if (kv->ds > 0) {
        sisa_status st = sisa_buffer_alloc(kv->dev, P * 4, &kv->ones);
        float *one = st == SISA_OK ? malloc(P * 4) : NULL;
        if (st == SISA_OK && !one) st = sisa_err(SISA_OUT_OF_MEMORY, "kv cache: out of host memory");
        for (size_t t = 0; one && t < P; t++) one[t] = 1.0f;
        if (st == SISA_OK) st = kv->ones->iface->write(kv->ones, 0, one, P * 4);
        free(one);
        if (st != SISA_OK) {
            sisa_kvcache_free(kv);
            return sisa_err_prefix(st, "kv cache: ones vector");
        }
        kv->bytes += P * 4;
    }
    return SISA_OK;
}

static sisa_tensor *leaf(sisa_graph *g, const char *name, sisa_dtype dt, int64_t d0, int64_t d1,
                         int64_t d2, int64_t d3, sisa_buffer *buf, size_t off) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    sisa_tensor *t = sisa_graph_leaf(g, name, dt, shape, SISA_TENSOR_PARAM);
    if (t) {
        t->buffer = buf;
        t->offset = off;
    }
    return t;
}

sisa_tensor *sisa_kvcache_leaf_k(const sisa_kvcache *kv, sisa_graph *g, int i) {
    char n[SISA_NAME_LEN];
    snprintf(n, sizeof n, "cache.%d.k", i);
    return leaf(g, n, kv->dtype, kv->max_ctx, kv->batch, kv->H, kv->wk, kv->layers[i].buf,
                kv->layers[i].k_off);
}

sisa_tensor *sisa_kvcache_leaf_v(const sisa_kvcache *kv, sisa_graph *g, int i) {
    char n[SISA_NAME_LEN];
    snprintf(n, sizeof n, "cache.%d.v", i);
    return leaf(g, n, kv->dtype, kv->max_ctx, kv->batch, kv->H, kv->dh, kv->layers[i].buf,
                kv->layers[i].v_off);
}

sisa_tensor *sisa_kvcache_leaf_g(const sisa_kvcache *kv, sisa_graph *g, int i) {
    if (kv->ds <= 0) return NULL;
    char n[SISA_NAME_LEN];
    snprintf(n, sizeof n, "cache.%d.g", i);
    return leaf(g, n, SISA_F32, 1, kv->max_ctx, kv->batch, kv->H, kv->layers[i].buf,
                kv->layers[i].g_off);
}

sisa_tensor *sisa_kvcache_leaf_phi(const sisa_kvcache *kv, sisa_graph *g, int i) {
    if (kv->ds <= 0) return NULL;
    char n[SISA_NAME_LEN];
    snprintf(n, sizeof n, "cache.%d.phi", i);
    return leaf(g, n, SISA_F32, 1, 1, kv->batch, kv->H * (kv->ds / 2), kv->layers[i].buf,
                kv->layers[i].phi_off);
}

sisa_tensor *sisa_kvcache_leaf_ones(const sisa_kvcache *kv, sisa_graph *g, int64_t T) {
    if (!kv->ones) return NULL;
    return leaf(g, "cache.ones", SISA_F32, 1, 1, 1, T, kv->ones, 0);
}

sisa_tensor *sisa_kvcache_write_into(sisa_graph *g, sisa_tensor *node, const sisa_tensor *lf,
                                     size_t off) {
    if (!node || !lf || g->status != SISA_OK) return NULL;
    if (!sisa_tensor_is_contiguous(node) ||
        off + sisa_tensor_span_bytes(node) > sisa_tensor_span_bytes(lf)) {
        g->status = SISA_INTERNAL;
        snprintf(g->err, sizeof g->err, "kv cache write '%s' at byte %zu does not fit cache '%s'",
                 node->name, off, lf->name);
        return NULL;
    }
    node->flags |= SISA_TENSOR_PARAM;
    node->buffer = lf->buffer;
    node->offset = lf->offset + off;
    return node;
}
