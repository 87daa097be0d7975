/*
 * vk_op_rowwise.c — the element- and row-wise ops: CPY, ADD, SCALE, SWIGLU, AUGMENT, EMBED, ROPE
 * (one invocation per element or pair) and RMS_NORM, SOFTMAX, ARGMAX (one workgroup per row).
 *
 * They share one push-constant layout (shaders/rowwise.glsl): work is indexed by destination
 * rows (dims 0..2 flattened) and every source is addressed through strides per DESTINATION
 * dimension, 0 where it broadcasts — ADD's b, RMS_NORM's weight and EMBED's ids are ordinary
 * operands then. Rows are the split unit when a binding would exceed maxStorageBufferRange;
 * EMBED additionally walks vocabulary blocks of its table.
 */
#include <stdio.h>
#include <string.h>

#include "vk_internal.h"

typedef struct pc_rowwise {
    uint32_t row0, n, D1, D2, D3;
    uint32_t a_base, a_s[4];
    uint32_t b_base, b_s[4];
    uint32_t d_base;
    float f0;
    uint32_t u0, u1, u2, u3;
} pc_rowwise;

enum { ITEM_ELEM = 0, ITEM_PAIR = 1, ITEM_ROW = 2 };

static uint32_t pow2_at_least(uint64_t x, uint32_t lo, uint32_t hi) {
    uint32_t p = lo;
    while (p < hi && p < x) p <<= 1;
    return p;
}

bool sisa_vk_select_rowwise(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason) {
    int base;
    int item = ITEM_ELEM;
    switch (n->op) {
    case SISA_OP_CPY: base = VK_SH_CPY; break;
    case SISA_OP_ADD: base = VK_SH_ADD; break;
    case SISA_OP_SCALE: base = VK_SH_SCALE; break;
    case SISA_OP_SWIGLU: base = VK_SH_SWIGLU; break;
    case SISA_OP_AUGMENT: base = VK_SH_AUGMENT; break;
    case SISA_OP_EMBED: base = VK_SH_EMBED; break;
    case SISA_OP_ROPE: base = VK_SH_ROPE; item = ITEM_PAIR; break;
    case SISA_OP_RMS_NORM: base = VK_SH_RMS_NORM; item = ITEM_ROW; break;
    case SISA_OP_SOFTMAX: base = VK_SH_SOFTMAX; item = ITEM_ROW; break;
    case SISA_OP_ARGMAX: base = VK_SH_ARGMAX; item = ITEM_ROW; break;
    default: snprintf(reason, SISA_REASON_LEN, "not a row-wise op"); return false;
    }
    k->kind = n->op == SISA_OP_EMBED ? VK_K_EMBED : n->op == SISA_OP_ROPE ? VK_K_ROPE : VK_K_ROWWISE;
    k->shader = n->op == SISA_OP_ARGMAX ? base : vk_variant(base, n->dtype);
    k->per_group = item;
    int64_t rows = n->shape[0] * n->shape[1] * n->shape[2];
    int64_t row_len = n->op == SISA_OP_ARGMAX ? n->src[0]->shape[3] : n->shape[3];
    if (rows >= ((int64_t)1 << 32) || row_len >= ((int64_t)1 << 31)) {
        snprintf(reason, SISA_REASON_LEN, "more than 2^32 rows or 2^31 columns");
        return false;
    }
    if (item == ITEM_ROW) {
        uint32_t cap = d->max_wg_invocations < 256 ? d->max_wg_invocations : 256;
        k->wg = pow2_at_least((uint64_t)row_len, 32 < cap ? 32 : cap, cap);
        while (k->wg > cap) k->wg >>= 1;
    } else {
        k->wg = d->max_wg_invocations < 256 ? d->max_wg_invocations : 256;
    }
    sisa_vk_spec_dtypes(n, k->spec);
    k->spec[10] = k->wg;
    /* every operand's per-row span must fit one binding; EMBED's table per vocabulary row */
    vk_units u;
    memset(&u, 0, sizeof u);
    u.dims[0] = n->shape[0];
    u.dims[1] = n->shape[1];
    u.dims[2] = n->shape[2];
    int64_t es_d = (int64_t)sisa_dtype_size(n->dtype);
    u.ops[u.n_ops++] = (vk_operand){n, {0, 0, 0}, 0, n->shape[3] * es_d};
    for (int i = 0; i < 2; i++) {
        const sisa_tensor *s = n->src[i];
        if (!s || (n->op == SISA_OP_EMBED && i == 0)) continue;
        int64_t es = (int64_t)sisa_dtype_size(s->dtype);
        u.ops[u.n_ops++] = (vk_operand){s, {0, 0, 0}, 0, (s->shape[3] - 1) * s->stride[3] + es};
    }
    if (n->op == SISA_OP_EMBED) {
        const sisa_tensor *t = n->src[0];
        u.ops[u.n_ops++] = (vk_operand){t, {0, 0, 0}, 0,
                                        (t->shape[3] - 1) * t->stride[3] + (int64_t)sisa_dtype_size(t->dtype)};
    }
    return sisa_vk_units_feasible(d, &u, reason);
}

/* Strides of source s in the destination's index space (0 where s broadcasts), in elements. */
static void dst_space_strides(const sisa_tensor *n, const sisa_tensor *s, int64_t bytes[4], uint32_t el[4]) {
    int64_t es = (int64_t)sisa_dtype_size(s->dtype);
    for (int i = 0; i < 4; i++) {
        bytes[i] = (s->shape[i] == 1 && n->shape[i] != 1) ? 0 : s->stride[i];
        if (s->shape[i] == 1) bytes[i] = 0;
        el[i] = (uint32_t)(bytes[i] / es);
    }
}

sisa_status sisa_vk_record_rowwise(vk_rec *r, const sisa_tensor *n, const vk_kernel *k) {
    const vk_device *d = r->d;
    pc_rowwise pc;
    memset(&pc, 0, sizeof pc);
    pc.D1 = (uint32_t)n->shape[1];
    pc.D2 = (uint32_t)n->shape[2];
    pc.D3 = (uint32_t)n->shape[3];
    pc.f0 = n->fparams[0];

    vk_units u;
    memset(&u, 0, sizeof u);
    u.dims[0] = n->shape[0];
    u.dims[1] = n->shape[1];
    u.dims[2] = n->shape[2];
    int64_t es_d = (int64_t)sisa_dtype_size(n->dtype);
    u.ops[u.n_ops] = (vk_operand){n, {n->stride[0], n->stride[1], n->stride[2]}, 0, n->shape[3] * es_d};
    u.slot[u.n_ops++] = 6;

    const sisa_tensor *A = n->src[0], *B = n->src[1];
    int64_t sb[4];
    uint32_t se[4];
    bool embed = n->op == SISA_OP_EMBED;
    if (!embed) {
        dst_space_strides(n, A, sb, se);
        memcpy(pc.a_s, se, sizeof se);
        int64_t cols = n->op == SISA_OP_ARGMAX ? A->shape[3] : A->shape[3];
        u.ops[u.n_ops] = (vk_operand){A, {sb[0], sb[1], sb[2]}, 0,
                                      (cols - 1) * sb[3] + (int64_t)sisa_dtype_size(A->dtype)};
        u.slot[u.n_ops++] = 0;
    }
    if (B) {
        if (embed) { /* ids (1,1,B,T) indexed by the destination's (b, t) = dims 1, 2 */
            sb[0] = 0, sb[1] = B->stride[2], sb[2] = B->stride[3], sb[3] = 0;
            for (int i = 0; i < 4; i++) se[i] = (uint32_t)(sb[i] / 4);
        } else {
            dst_space_strides(n, B, sb, se);
        }
        memcpy(pc.b_s, se, sizeof se);
        int64_t cols = embed ? 1 : B->shape[3];
        u.ops[u.n_ops] = (vk_operand){B, {sb[0], sb[1], sb[2]}, 0,
                                      (cols - 1) * sb[3] + (int64_t)sisa_dtype_size(B->dtype)};
        u.slot[u.n_ops++] = 1;
    }
    switch (n->op) {
    case SISA_OP_AUGMENT: pc.u0 = (uint32_t)A->shape[3], pc.u1 = (uint32_t)B->shape[3]; break;
    case SISA_OP_ARGMAX: pc.u0 = (uint32_t)A->shape[3]; break;
    case SISA_OP_ROPE: pc.u0 = (uint32_t)n->iparams[0]; break;
    default: break;
    }

    vk_bind binds[VK_BINDINGS];
    uint32_t base[VK_BINDINGS];
    memset(binds, 0, sizeof binds);
    memset(base, 0, sizeof base);
    if (n->op == SISA_OP_ROPE) {
        VkDeviceSize size;
        SISA_TRY(sisa_vk_rope_table(r->d, n->shape[3], n->fparams[0], &binds[7].buf, &size));
        binds[7].range = size;
    }

    /* vocabulary blocks of EMBED's table (one block unless it exceeds a binding) */
    int64_t V = embed ? A->shape[2] : 1, nv = V;
    int64_t row_bytes = embed ? (A->shape[3] - 1) * A->stride[3] + (int64_t)sisa_dtype_size(A->dtype) : 0;
    uint64_t limit = sisa_vk_range_limit(d);
    if (embed && (V - 1) * A->stride[2] + row_bytes > (int64_t)limit)
        nv = A->stride[2] > 0 ? ((int64_t)limit - row_bytes) / A->stride[2] + 1 : V;
    if (embed) {
        memcpy(pc.a_s, (uint32_t[4]){0, 0, vk_es(A, 2), vk_es(A, 3)}, sizeof pc.a_s);
        pc.u3 = (uint32_t)V;
    }

    int64_t rows = u.dims[0] * u.dims[1] * u.dims[2];
    uint64_t per_row = k->per_group == ITEM_ROW ? 1 : k->per_group == ITEM_PAIR ? (uint64_t)n->shape[3] / 2
                                                                                : (uint64_t)n->shape[3];
    int64_t max_rows = per_row ? (int64_t)(0xffffffffull / per_row) : rows;
    if (max_rows < 1) max_rows = 1;
    for (int64_t v0 = 0; v0 < V; v0 += nv) {
        int64_t v1 = v0 + nv < V ? v0 + nv : V;
        if (embed) {
            SISA_TRY(sisa_vk_bind_span(r, A, v0 * A->stride[2], (v1 - 1) * A->stride[2] + row_bytes, &binds[0],
                                       &base[0]));
            pc.u0 = (uint32_t)v0, pc.u1 = (uint32_t)v1, pc.u2 = v0 == 0;
        }
        for (int64_t r0 = 0; r0 < rows;) {
            char reason[SISA_REASON_LEN] = "";
            int64_t end = rows - r0 > max_rows ? r0 + max_rows : rows;
            int64_t r1 = sisa_vk_units_next(d, &u, r0, end, reason);
            if (r1 <= r0) return sisa_vk_node_err(r, VK_SUCCESS, reason);
            SISA_TRY(sisa_vk_units_bind(r, &u, r0, r1, binds, base));
            pc.row0 = (uint32_t)r0;
            pc.n = (uint32_t)((uint64_t)(r1 - r0) * per_row);
            pc.a_base = base[0];
            pc.b_base = base[1];
            pc.d_base = base[6];
            uint64_t groups = k->per_group == ITEM_ROW ? (uint64_t)(r1 - r0) : ((uint64_t)pc.n + k->wg - 1) / k->wg;
            uint32_t gx, gy;
            sisa_vk_grid(d, groups, &gx, &gy);
            SISA_TRY(sisa_vk_dispatch(r, k->shader, k->spec, binds, &pc, sizeof pc, gx, gy, 1));
            r0 = r1;
        }
    }
    return SISA_OK;
}
