/*
 * vk_op_ssm.c — SISA's SSM ops: SSM_DECAY (prefix sum of -softplus over time) and SSM_CHANNELS
 * (scaled, rotated s.Cbar | s.Bbar with form A's centre and clamp, or form B's u = 0).
 * One workgroup per (b, h) pair; pairs are the split unit.
 */
#include <stdio.h>
#include <string.h>

#include "vk_internal.h"

typedef struct pc_decay {
    uint32_t unit0, n_units, H, T;
    uint32_t a_base, a_s1, a_s2, a_s3;
    uint32_t bias_base, bias_s3;
    uint32_t g0_base, g0_s2, g0_s3, has_g0;
    uint32_t d_base;
} pc_decay;

typedef struct pc_channels {
    uint32_t unit0, n_units, H, T, ds, mode;
    uint32_t bs_base, bs_s1, bs_s2, bs_s3;
    uint32_t cs_base, cs_s1, cs_s2, cs_s3;
    uint32_t th_base, th_s1, th_s2, th_s3;
    uint32_t g_base, g_s1, g_s2, g_s3;
    uint32_t lam_base, lam_s3;
    uint32_t p0_base, p0_s2, p0_s3, has_phi0;
    uint32_t d_base;
    float clamp_l, d_h;
} pc_channels;

static int64_t es(const sisa_tensor *t) { return (int64_t)sisa_dtype_size(t->dtype); }

/* The operands of n over (b, h) units. */
static void ssm_units(const sisa_tensor *n, vk_units *u) {
    memset(u, 0, sizeof *u);
    if (n->op == SISA_OP_SSM_DECAY) {
        const sisa_tensor *a = n->src[0], *bias = n->src[1], *g0 = n->src[2];
        int64_t B = a->shape[1], T = a->shape[2], H = a->shape[3];
        u->dims[0] = 1, u->dims[1] = B, u->dims[2] = H;
        u->ops[u->n_ops] = (vk_operand){a, {0, a->stride[1], a->stride[3]}, 0, (T - 1) * a->stride[2] + es(a)};
        u->slot[u->n_ops++] = 0;
        u->ops[u->n_ops] = (vk_operand){bias, {0, 0, bias->stride[3]}, 0, es(bias)};
        u->slot[u->n_ops++] = 1;
        if (g0) {
            u->ops[u->n_ops] = (vk_operand){g0, {0, g0->stride[2], g0->stride[3]}, 0, 4};
            u->slot[u->n_ops++] = 2;
        }
        u->ops[u->n_ops] = (vk_operand){n, {0, H * T * 4, T * 4}, 0, T * 4};
        u->slot[u->n_ops++] = 6;
        return;
    }
    const sisa_tensor *Bs = n->src[0], *Cs = n->src[1], *th = n->src[2], *g = n->src[3], *lam = n->src[4],
                      *p0 = n->src[5];
    int64_t H = lam->shape[3], B = Bs->shape[1], T = Bs->shape[2], ds = Bs->shape[3] / H, half = ds / 2;
    u->dims[0] = 1, u->dims[1] = B, u->dims[2] = H;
    const sisa_tensor *bc[2] = {Bs, Cs};
    for (int i = 0; i < 2; i++) {
        const sisa_tensor *t = bc[i];
        u->ops[u->n_ops] = (vk_operand){t, {0, t->stride[1], ds * t->stride[3]}, 0,
                                        (T - 1) * t->stride[2] + (ds - 1) * t->stride[3] + es(t)};
        u->slot[u->n_ops++] = i;
    }
    u->ops[u->n_ops] = (vk_operand){th, {0, th->stride[1], half * th->stride[3]}, 0,
                                    (T - 1) * th->stride[2] + (half - 1) * th->stride[3] + es(th)};
    u->slot[u->n_ops++] = 2;
    u->ops[u->n_ops] = (vk_operand){g, {0, g->stride[1], g->stride[2]}, 0, (T - 1) * g->stride[3] + 4};
    u->slot[u->n_ops++] = 3;
    u->ops[u->n_ops] = (vk_operand){lam, {0, 0, lam->stride[3]}, 0, 4};
    u->slot[u->n_ops++] = 4;
    if (p0) {
        u->ops[u->n_ops] = (vk_operand){p0, {0, p0->stride[2], half * p0->stride[3]}, 0,
                                        (half - 1) * p0->stride[3] + es(p0)};
        u->slot[u->n_ops++] = 5;
    }
    int64_t row = 2 * ds * es(n);
    u->ops[u->n_ops] = (vk_operand){n, {0, H * T * row, T * row}, 0, T * row};
    u->slot[u->n_ops++] = 6;
}

bool sisa_vk_select_ssm(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason) {
    int64_t T;
    if (n->op == SISA_OP_SSM_DECAY) {
        k->kind = VK_K_SSM_DECAY;
        k->shader = VK_SH_SSM_DECAY;
        T = n->src[0]->shape[2];
    } else {
        k->kind = VK_K_SSM_CHANNELS;
        k->shader = vk_variant(VK_SH_SSM_CHANNELS, n->dtype);
        T = n->src[0]->shape[2];
        int64_t ds = n->src[0]->shape[3] / n->src[4]->shape[3];
        if (ds > 256) {
            snprintf(reason, SISA_REASON_LEN, "d_s = %lld > 256 (the shader keeps 128 rotation carries)",
                     (long long)ds);
            return false;
        }
    }
    if (T >= ((int64_t)1 << 31)) {
        snprintf(reason, SISA_REASON_LEN, "T >= 2^31");
        return false;
    }
    uint32_t cap = d->max_wg_invocations < 256 ? d->max_wg_invocations : 256;
    k->wg = 32 < cap ? 32 : cap;
    while (k->wg < cap && k->wg < (uint64_t)T) k->wg <<= 1;
    sisa_vk_spec_dtypes(n, k->spec);
    k->spec[10] = k->wg;
    vk_units u;
    ssm_units(n, &u);
    return sisa_vk_units_feasible(d, &u, reason);
}

sisa_status sisa_vk_record_ssm(vk_rec *r, const sisa_tensor *n, const vk_kernel *k) {
    vk_units u;
    ssm_units(n, &u);
    int64_t total = u.dims[1] * u.dims[2];
    vk_bind binds[VK_BINDINGS];
    uint32_t base[VK_BINDINGS];
    memset(binds, 0, sizeof binds);
    memset(base, 0, sizeof base);
    int64_t max_units = (int64_t)r->d->max_groups[0] * r->d->max_groups[1];
    for (int64_t u0 = 0; u0 < total;) {
        char reason[SISA_REASON_LEN] = "";
        int64_t end = total - u0 > max_units ? u0 + max_units : total;
        int64_t u1 = sisa_vk_units_next(r->d, &u, u0, end, reason);
        if (u1 <= u0) return sisa_vk_node_err(r, VK_SUCCESS, reason);
        SISA_TRY(sisa_vk_units_bind(r, &u, u0, u1, binds, base));
        uint32_t gx, gy;
        sisa_vk_grid(r->d, (uint64_t)(u1 - u0), &gx, &gy);
        if (n->op == SISA_OP_SSM_DECAY) {
            const sisa_tensor *a = n->src[0], *bias = n->src[1], *g0 = n->src[2];
            pc_decay pc = {
                .unit0 = (uint32_t)u0, .n_units = (uint32_t)(u1 - u0),
                .H = (uint32_t)a->shape[3], .T = (uint32_t)a->shape[2],
                .a_base = base[0], .a_s1 = vk_es(a, 1), .a_s2 = vk_es(a, 2), .a_s3 = vk_es(a, 3),
                .bias_base = base[1], .bias_s3 = vk_es(bias, 3),
                .g0_base = g0 ? base[2] : 0, .g0_s2 = g0 ? vk_es(g0, 2) : 0, .g0_s3 = g0 ? vk_es(g0, 3) : 0,
                .has_g0 = g0 != NULL, .d_base = base[6]};
            SISA_TRY(sisa_vk_dispatch(r, k->shader, k->spec, binds, &pc, sizeof pc, gx, gy, 1));
        } else {
            const sisa_tensor *Bs = n->src[0], *Cs = n->src[1], *th = n->src[2], *g = n->src[3],
                              *lam = n->src[4], *p0 = n->src[5];
            int64_t H = lam->shape[3];
            pc_channels pc = {
                .unit0 = (uint32_t)u0, .n_units = (uint32_t)(u1 - u0), .H = (uint32_t)H,
                .T = (uint32_t)Bs->shape[2], .ds = (uint32_t)(Bs->shape[3] / H), .mode = (uint32_t)n->iparams[0],
                .bs_base = base[0], .bs_s1 = vk_es(Bs, 1), .bs_s2 = vk_es(Bs, 2), .bs_s3 = vk_es(Bs, 3),
                .cs_base = base[1], .cs_s1 = vk_es(Cs, 1), .cs_s2 = vk_es(Cs, 2), .cs_s3 = vk_es(Cs, 3),
                .th_base = base[2], .th_s1 = vk_es(th, 1), .th_s2 = vk_es(th, 2), .th_s3 = vk_es(th, 3),
                .g_base = base[3], .g_s1 = vk_es(g, 1), .g_s2 = vk_es(g, 2), .g_s3 = vk_es(g, 3),
                .lam_base = base[4], .lam_s3 = vk_es(lam, 3),
                .p0_base = p0 ? base[5] : 0, .p0_s2 = p0 ? vk_es(p0, 2) : 0, .p0_s3 = p0 ? vk_es(p0, 3) : 0,
                .has_phi0 = p0 != NULL, .d_base = base[6],
                .clamp_l = n->fparams[0], .d_h = (float)n->iparams[1]};
            SISA_TRY(sisa_vk_dispatch(r, k->shader, k->spec, binds, &pc, sizeof pc, gx, gy, 1));
        }
        u0 = u1;
    }
    return SISA_OK;
}
