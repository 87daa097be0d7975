/*
 * ref_sdpa.c — the oracle's scaled dot-product attention (ops.h SDPA), both forms of SISA.md §2:
 *
 *   form A (no gq/gk):  s[i,j] = scale · Q_i·K_j
 *   form B (gq, gk):    s[i,j] = scale · (Q_i[:dc]·K_j[:dc] + exp(gq_i - gk_j) · Q_i[dc:]·K_j[dc:])
 *
 * With Qhat/Khat from SSM_CHANNELS(AUGMENTED)+AUGMENT, form A is the published SISA attention; with
 * the FACTORED channels and gq = gk = g, form B is the same score without the clamp (and what a KV
 * cache must use). d_qk may differ from d_v: V keeps the head width while Q/K are widened.
 *
 * Causal masking is by absolute position: query i sits at p0 + i, key j at j, and key j is visible
 * iff j <= p0 + i. Keys past that limit are never read at all, so a decode step may leave the
 * cache beyond the current position uninitialised. The output is laid out (B, Tq, H, Dv), heads
 * interleaved per position, so that (1, B, Tq, H·Dv) is concat_heads(Y) without a copy.
 */
#include "ref.h"

typedef struct sdpa {
    const sisa_tensor *q, *k, *v, *gq, *gk;
    double scale;
    int64_t d_content; /* channels [0, d_content) are undecayed; = Dqk in form A */
} sdpa;

/* The score s[i,j] of head (b, h) before masking. */
static double score(const sdpa *a, int64_t b, int64_t h, int64_t i, int64_t j) {
    const int64_t D = a->q->shape[3];
    double content = 0.0, decayed = 0.0;
    for (int64_t c = 0; c < a->d_content; c++)
        content += ref_get(a->q, b, h, i, c) * ref_get(a->k, b, h, j, c);
    if (a->d_content == D) return a->scale * content; /* form A, or form B with no decayed part */
    for (int64_t c = a->d_content; c < D; c++)
        decayed += ref_get(a->q, b, h, i, c) * ref_get(a->k, b, h, j, c);
    double decay = exp(ref_get(a->gq, 0, b, h, i) - ref_get(a->gk, 0, b, h, j));
    return a->scale * (content + decay * decayed);
}

sisa_status sisa_ref_sdpa(const sisa_tensor *node) {
    const sdpa a = {
        .q = node->src[0],
        .k = node->src[1],
        .v = node->src[2],
        .gq = node->src[3],
        .gk = node->src[4],
        .scale = node->fparams[0],
        .d_content = node->src[3] ? node->iparams[2] : node->src[0]->shape[3],
    };
    const int64_t B = a.q->shape[0], H = a.q->shape[1], Tq = a.q->shape[2];
    const int64_t Tk = a.k->shape[2], Dv = a.v->shape[3];
    const bool causal = node->iparams[0] != 0;
    const int64_t p0 = node->iparams[1];

    double *p = sisa_ref_scratch(node, Tk); /* one row of scores, then of weights */
    if (!p) return SISA_OUT_OF_MEMORY;

    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                /* visible keys: j < n_vis */
                const int64_t n_vis = causal ? (p0 + i + 1 < Tk ? p0 + i + 1 : Tk) : Tk;
                double max = -INFINITY;
                bool has_nan = false;
                for (int64_t j = 0; j < n_vis; j++) {
                    p[j] = score(&a, b, h, i, j);
                    if (isnan(p[j])) has_nan = true;
                    if (p[j] > max) max = p[j];
                }
                if (max == -INFINITY && !has_nan) { /* every key masked: zeros, not 0/0 */
                    for (int64_t d = 0; d < Dv; d++) ref_set(node, b, i, h, d, 0.0);
                    continue;
                }
                double sum = 0.0;
                for (int64_t j = 0; j < n_vis; j++) {
                    p[j] = exp(p[j] - max);
                    sum += p[j];
                }
                for (int64_t d = 0; d < Dv; d++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < n_vis; j++) acc += p[j] * ref_get(a.v, b, h, j, d);
                    ref_set(node, b, i, h, d, acc / sum);
                }
            }
    free(p);
    return SISA_OK;
}
