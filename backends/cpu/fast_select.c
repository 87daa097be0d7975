/*
 * fast_select.c — the ONE place that decides which fast kernel runs a node, or why none does.
 * The "cpu" device's supports_op and its dispatcher both call sisa_cpu_fast_select, so what the
 * scheduler is told and what graph_compute does cannot drift apart.
 *
 * Coverage (every op of ops.h): sources of any float dtype (f32, f16, bf16 — converted on load;
 * weights are converted while the GEMM packs them) and any strides; the destination is the
 * fresh contiguous tensor ops.h promises, in f32, f16 or bf16 (computed in f32 and rounded
 * once; MATMUL accumulates an f16/bf16 result in f32 scratch first), i32 for ARGMAX. CPY
 * converts between any two of f32, f16, bf16.
 * Declined, with the reason: f64 tensors (the oracle's reference outputs; host-side only) and a
 * destination that is not contiguous (no op produces one).
 */
#include <stdio.h>

#include "fast_internal.h"

static sisa_status noop_kernel(sisa_cpu_pool *pool, const sisa_tensor *node) {
    (void)pool;
    (void)node;
    return SISA_OK;
}

static bool storage_dtype(sisa_dtype t) { return t == SISA_F32 || t == SISA_F16 || t == SISA_BF16; }

static sisa_cpu_fast_kernel decline(char *reason, const char *fmt, const sisa_tensor *t) {
    if (reason) snprintf(reason, SISA_REASON_LEN, fmt, t->name, sisa_dtype_name(t->dtype));
    return NULL;
}

sisa_cpu_fast_kernel sisa_cpu_fast_select(const sisa_tensor *node, char *reason) {
    if (!node) {
        if (reason) snprintf(reason, SISA_REASON_LEN, "no node");
        return NULL;
    }
    if (node->op == SISA_OP_NONE || node->op == SISA_OP_VIEW) return noop_kernel;

    /* sources: any float storage dtype (ids of EMBED are i32) */
    for (int i = 0; i < SISA_MAX_SRC; i++) {
        const sisa_tensor *s = node->src[i];
        if (!s) continue;
        if (node->op == SISA_OP_EMBED && i == 1) {
            if (s->dtype != SISA_I32) return decline(reason, "cpu: EMBED ids '%s' are %s, not i32", s);
            continue;
        }
        if (!storage_dtype(s->dtype))
            return decline(reason, "cpu: source '%s' has dtype %s; the fast path reads f32, f16 and bf16", s);
    }
    /* destination */
    if (node->op == SISA_OP_ARGMAX) {
        if (node->dtype != SISA_I32) return decline(reason, "cpu: ARGMAX result '%s' is %s, not i32", node);
    } else if (!storage_dtype(node->dtype)) {
        return decline(reason, "cpu: result '%s' has dtype %s; the fast path writes f32, f16 and bf16", node);
    }
    if (!sisa_tensor_is_contiguous(node))
        return decline(reason, "cpu: result '%s' (%s) is not contiguous; kernels write fresh contiguous tensors", node);

    switch (node->op) {
    case SISA_OP_CPY: return sisa_fast_cpy;
    case SISA_OP_EMBED: return sisa_fast_embed;
    case SISA_OP_RMS_NORM: return sisa_fast_rms_norm;
    case SISA_OP_ROPE: return sisa_fast_rope;
    case SISA_OP_ADD: return sisa_fast_add;
    case SISA_OP_SCALE: return sisa_fast_scale;
    case SISA_OP_SOFTMAX: return sisa_fast_softmax;
    case SISA_OP_ARGMAX: return sisa_fast_argmax;
    case SISA_OP_SWIGLU: return sisa_fast_swiglu;
    case SISA_OP_AUGMENT: return sisa_fast_augment;
    case SISA_OP_SSM_DECAY:
        if (node->dtype != SISA_F32)
            return decline(reason, "cpu: SSM_DECAY result '%s' is %s; it is defined as f32", node);
        return sisa_fast_ssm_decay;
    case SISA_OP_SSM_CHANNELS: return sisa_fast_ssm_channels;
    case SISA_OP_MATMUL: return sisa_fast_matmul;
    case SISA_OP_SDPA: return sisa_fast_sdpa;
    default:
        if (reason)
            snprintf(reason, SISA_REASON_LEN, "cpu: op %s (%d) has no fast kernel",
                     sisa_op_name(node->op), node->op);
        return NULL;
    }
}
