/*
 * ref_dispatch.c — the oracle's entry point: one node in, one op definition of ops.h out.
 *
 * sisa_cpu_ref_compute is what the conformance suite trusts, so before any arithmetic it re-runs
 * sisa_node_check (cheap next to the fp64 loops) and checks that every tensor it will touch has
 * host-addressable storage that holds all of its elements. A node that fails either gets a status
 * and a message naming it: the oracle never crashes on a malformed node, and never computes
 * something ops.h does not define.
 */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "ref.h"

/* Why t cannot be touched safely, or NULL: no host pointer, an empty or negative dimension (which
 * a hand-built node may carry past the builders), or bytes beyond its buffer's known size. */
static const char *storage_problem(const sisa_tensor *t) {
    if (!t->buffer || !t->buffer->host_ptr) return "has no host-addressable storage";
    for (int d = 0; d < SISA_MAX_DIMS; d++)
        if (t->shape[d] < 1 || t->stride[d] < 0) return "has a dimension < 1 or a negative stride";
    if (sisa_dtype_size(t->dtype) == 0) return "has an unknown dtype";
    size_t span = sisa_tensor_span_bytes(t), size = t->buffer->size; /* size 0: not known */
    if (size && (t->offset > size || span > size - t->offset))
        return "reaches past the end of its buffer";
    return NULL;
}

static sisa_status check_storage(const sisa_tensor *node) {
    char d[160], ds[160];
    const char *why = storage_problem(node);
    if (why)
        return sisa_err(SISA_INVALID_ARG, "cpu-ref: node %s op %s %s",
                        sisa_tensor_describe(node, d, sizeof d), sisa_op_name(node->op), why);
    for (int i = 0; i < SISA_MAX_SRC; i++) {
        const sisa_tensor *s = node->src[i];
        if (s && (why = storage_problem(s)))
            return sisa_err(SISA_INVALID_ARG, "cpu-ref: node %s op %s: source %d %s %s",
                            sisa_tensor_describe(node, d, sizeof d), sisa_op_name(node->op), i,
                            sisa_tensor_describe(s, ds, sizeof ds), why);
    }
    return SISA_OK;
}

double *sisa_ref_scratch(const sisa_tensor *node, int64_t n) {
    double *p =
        n > 0 && (uint64_t)n < SIZE_MAX / sizeof(double) ? malloc((size_t)n * sizeof *p) : NULL;
    if (!p) {
        char d[160];
        sisa_err(SISA_OUT_OF_MEMORY,
                 "cpu-ref: node %s op %s: no host memory for %lld scratch values",
                 sisa_tensor_describe(node, d, sizeof d), sisa_op_name(node->op), (long long)n);
    }
    return p;
}

sisa_status sisa_cpu_ref_compute(const sisa_tensor *node) {
    if (!node) return sisa_err(SISA_INVALID_ARG, "cpu-ref: NULL node");
    if (node->op == SISA_OP_NONE || node->op == SISA_OP_VIEW) return SISA_OK;

    /* storage first: it also rules out the empty dimensions sisa_node_check divides by */
    SISA_TRY(check_storage(node));
    sisa_status st = sisa_node_check(node); /* also rejects an unknown op */
    if (st != SISA_OK) return sisa_err_prefix(st, "cpu-ref");

    switch (node->op) {
    case SISA_OP_CPY: return sisa_ref_cpy(node);
    case SISA_OP_EMBED: return sisa_ref_embed(node);
    case SISA_OP_RMS_NORM: return sisa_ref_rms_norm(node);
    case SISA_OP_ROPE: return sisa_ref_rope(node);
    case SISA_OP_ADD: return sisa_ref_add(node);
    case SISA_OP_SCALE: return sisa_ref_scale(node);
    case SISA_OP_MATMUL: return sisa_ref_matmul(node);
    case SISA_OP_SOFTMAX: return sisa_ref_softmax(node);
    case SISA_OP_ARGMAX: return sisa_ref_argmax(node);
    case SISA_OP_SWIGLU: return sisa_ref_swiglu(node);
    case SISA_OP_SSM_DECAY: return sisa_ref_ssm_decay(node);
    case SISA_OP_SSM_CHANNELS: return sisa_ref_ssm_channels(node);
    case SISA_OP_AUGMENT: return sisa_ref_augment(node);
    case SISA_OP_SDPA: return sisa_ref_sdpa(node);
    default: {
        char d[160];
        return sisa_err(SISA_UNSUPPORTED, "cpu-ref: node %s: op %d (%s) has no reference kernel",
                        sisa_tensor_describe(node, d, sizeof d), node->op, sisa_op_name(node->op));
    }
    }
}
