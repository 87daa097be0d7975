/*
 * kvcache.h — the decode state of a batch of sequences: per layer, on the model's device, what
 * later positions need from earlier ones (SISA.md §2, form B).
 *
 * Layout is position-major, (max_ctx, batch, H, width), so the T new positions of a step are ONE
 * contiguous block: the graph writes them with a plain CPY whose destination is that block, and
 * reads the whole prefix [0, pos + T) back as a strided view (B, H, Tk, width) for SDPA.
 *
 *   K    (max_ctx, B, H, Wk)  SISA: Khat = [k after RoPE | s·Rot(Phi)Bs | 0-pad], Wk = d_h + d_s
 *                              rounded up to 16 (the FACTORED channels: no exp(-u), no c);
 *                              Transformer: k after RoPE, Wk = d_h
 *   V    (max_ctx, B, H, d_h)
 *   g    F32 (max_ctx, B, H)  SISA only: the cumulative log-decay at every cached position; the
 *                              entry at pos - 1 is SSM_DECAY's carry-in g0 of the next step
 *   Phi  F32 (B, H·d_s/2)     SISA only: the running rotation, SSM_CHANNELS' carry-in Phi0
 *
 * The cache tensors enter a graph as leaves marked SISA_TENSOR_PARAM (storage owned here, not the
 * arena's); the CPY nodes that write them are marked PARAM too, with their buffer and offset set to
 * the block they write. Execution order (nodes run in creation order on every backend; Vulkan
 * tracks byte-range hazards) guarantees the write precedes the SDPA that reads it.
 */
#ifndef SISA_KVCACHE_H
#define SISA_KVCACHE_H

#include "model.h"

typedef struct sisa_kv_layer {
    sisa_buffer *buf;               /* one device buffer per layer */
    size_t k_off, v_off, g_off, phi_off;
} sisa_kv_layer;

typedef struct sisa_kvcache {
    sisa_device *dev;
    int n_layers, batch, max_ctx;
    int64_t H, dh, ds, wk;          /* wk = K row width */
    sisa_dtype dtype;               /* K/V storage (activation dtype) */
    sisa_kv_layer *layers;
    sisa_buffer *ones;              /* F32 [max_ctx] of 1.0: sums over time as a MATMUL */
    size_t bytes;                   /* device bytes held */
} sisa_kvcache;

sisa_status sisa_kvcache_init(sisa_kvcache *kv, const sisa_model *m, int batch, int max_ctx);
void sisa_kvcache_free(sisa_kvcache *kv);

/* Leaves for layer i's caches in graph g (full extent; NULL for absent parts). */
sisa_tensor *sisa_kvcache_leaf_k(const sisa_kvcache *kv, sisa_graph *g, int layer);
sisa_tensor *sisa_kvcache_leaf_v(const sisa_kvcache *kv, sisa_graph *g, int layer);
sisa_tensor *sisa_kvcache_leaf_g(const sisa_kvcache *kv, sisa_graph *g, int layer);
sisa_tensor *sisa_kvcache_leaf_phi(const sisa_kvcache *kv, sisa_graph *g, int layer);
sisa_tensor *sisa_kvcache_leaf_ones(const sisa_kvcache *kv, sisa_graph *g, int64_t T);

/* Make `node` (a freshly built CPY) write into `leaf`'s storage at byte offset off: it becomes a
 * PARAM node the arena leaves alone. Its shape must be contiguous and fit. Returns node. */
sisa_tensor *sisa_kvcache_write_into(sisa_graph *g, sisa_tensor *node, const sisa_tensor *leaf,
                                     size_t off);

#endif
