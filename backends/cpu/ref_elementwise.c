/*
 * ref_elementwise.c — the oracle's element-by-element ops: CPY, ADD, SCALE, SWIGLU (ops.h).
 *
 * Each destination element is a function of the source elements at the same index (ADD's second
 * operand broadcasts along its size-1 dimensions). Sources are read as doubles whatever their
 * dtype and strides; the result is rounded once, on the store, to the destination's dtype.
 */
#include "ref.h"

/* CPY: dst[i] = src0[i]; the store does the dtype conversion (round to nearest even). */
sisa_status sisa_ref_cpy(const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0];
    REF_FOR_EACH(node, i0, i1, i2, i3) {
        ref_set(node, i0, i1, i2, i3, ref_get(x, i0, i1, i2, i3));
    }
    return SISA_OK;
}

/* ADD: dst = a + b, b broadcast along every dimension where it has size 1. */
sisa_status sisa_ref_add(const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    /* index into b: 0 along a broadcast dimension */
    const int64_t bc0 = b->shape[0] == 1 ? 0 : 1, bc1 = b->shape[1] == 1 ? 0 : 1,
                  bc2 = b->shape[2] == 1 ? 0 : 1, bc3 = b->shape[3] == 1 ? 0 : 1;
    REF_FOR_EACH(node, i0, i1, i2, i3) {
        double va = ref_get(a, i0, i1, i2, i3);
        double vb = ref_get(b, i0 * bc0, i1 * bc1, i2 * bc2, i3 * bc3);
        ref_set(node, i0, i1, i2, i3, va + vb);
    }
    return SISA_OK;
}

/* SCALE: dst = src0 * fparams[0]. */
sisa_status sisa_ref_scale(const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0];
    const double s = node->fparams[0];
    REF_FOR_EACH(node, i0, i1, i2, i3) {
        ref_set(node, i0, i1, i2, i3, ref_get(x, i0, i1, i2, i3) * s);
    }
    return SISA_OK;
}

/* SWIGLU: dst = silu(gate) * up, silu(x) = x / (1 + e^-x) (the FFN of SISA.md §1). */
sisa_status sisa_ref_swiglu(const sisa_tensor *node) {
    const sisa_tensor *gate = node->src[0], *up = node->src[1];
    REF_FOR_EACH(node, i0, i1, i2, i3) {
        double g = ref_get(gate, i0, i1, i2, i3);
        double silu = g / (1.0 + exp(-g));
        ref_set(node, i0, i1, i2, i3, silu * ref_get(up, i0, i1, i2, i3));
    }
    return SISA_OK;
}
