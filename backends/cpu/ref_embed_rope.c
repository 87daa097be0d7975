/*
 * ref_embed_rope.c — the oracle's positional and lookup ops: EMBED (get rows) and ROPE (ops.h).
 *
 * ROPE is SISA.md's content-path rotary embedding with INTERLEAVED pairs: pair m is channels
 * (2m, 2m+1), not (m, m + D/2) as in GPT-NeoX — the classic way to get a model that loads, runs
 * and is quietly wrong. Frequencies and angles are computed in fp64 exactly as ops.h writes them.
 */
#include "ref.h"

/* EMBED: dst[0,b,t,:] = table[0,0,ids[0,0,b,t],:]; an id outside [0,V) gives a row of zeros. */
sisa_status sisa_ref_embed(const sisa_tensor *node) {
    const sisa_tensor *table = node->src[0], *ids = node->src[1];
    const int64_t V = table->shape[2], D = table->shape[3];
    for (int64_t b = 0; b < ids->shape[2]; b++)
        for (int64_t t = 0; t < ids->shape[3]; t++) {
            double id = ref_get(ids, 0, 0, b, t); /* an i32, exact in a double */
            bool valid = id >= 0.0 && id < (double)V;
            for (int64_t i = 0; i < D; i++)
                ref_set(node, 0, b, t, i, valid ? ref_get(table, 0, 0, (int64_t)id, i) : 0.0);
        }
    return SISA_OK;
}

/* ROPE: x (B,T,H,D); pair m of position t rotated by (p0 + t) * base^(-2m/D). */
sisa_status sisa_ref_rope(const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0];
    const int64_t D = x->shape[3];
    const double log_base = log((double)node->fparams[0]);
    const int64_t p0 = node->iparams[0];
    for (int64_t b = 0; b < x->shape[0]; b++)
        for (int64_t t = 0; t < x->shape[1]; t++)
            for (int64_t h = 0; h < x->shape[2]; h++)
                for (int64_t m = 0; m < D / 2; m++) {
                    double freq = exp(-((double)(2 * m) / (double)D) * log_base);
                    double angle = (double)(p0 + t) * freq;
                    double x0 = ref_get(x, b, t, h, 2 * m), x1 = ref_get(x, b, t, h, 2 * m + 1);
                    ref_rotate(angle, &x0, &x1);
                    ref_set(node, b, t, h, 2 * m, x0);
                    ref_set(node, b, t, h, 2 * m + 1, x1);
                }
    return SISA_OK;
}
