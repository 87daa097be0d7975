/*
 * ref_matmul.c — the oracle's MATMUL (ops.h): dst = a·bᵀ over the two batch dimensions.
 *
 * bᵀ because weights are stored [out, in] (PyTorch nn.Linear), so y = x·Wᵀ is MATMUL(x, W) with
 * no transpose anywhere; b broadcasts over a batch dimension where it has size 1 (one weight for
 * every batch row). Each output is one fp64 dot product of length K.
 */
#include "ref.h"

/* dst[p,q,i,j] = sum_k a[p,q,i,k] * b[p',q',j,k], p' = p or 0, q' = q or 0 (broadcast). */
sisa_status sisa_ref_matmul(const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    const int64_t K = a->shape[3];
    const int64_t bp = b->shape[0] == 1 ? 0 : 1, bq = b->shape[1] == 1 ? 0 : 1;
    REF_FOR_EACH(node, p, q, i, j) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; k++)
            acc += ref_get(a, p, q, i, k) * ref_get(b, p * bp, q * bq, j, k);
        ref_set(node, p, q, i, j, acc);
    }
    return SISA_OK;
}
