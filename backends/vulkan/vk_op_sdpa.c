/*
 * vk_op_sdpa.c — SDPA as a flash-attention shader (online softmax over key blocks; no Tq x Tk
 * matrix), both forms of SISA.md §2, d_qk != d_v, causal with a position offset p0 (decode:
 * Tq = 1 against a longer cache), output (B, Tq, H, Dv).
 *
 * Two kernels behind one selection: sdpa_coopmat.comp (NV cooperative matrices: f16 or bf16
 * Q/K/V as f16 operands, fp32 scores and accumulation; on wherever the device has cooperative
 * matrices, SISA_VK_NO_COOPMAT_SDPA=1 off; emulated with SISA_VK_COOPMAT=emulate) where a query block is at least one
 * 16-row tile; sdpa.comp (scalar, one invocation per query row) everywhere else, f32 inputs and
 * decode steps included. Head dims, key-block size, form and causality are specialization
 * constants; the scalar key block is the largest power of two <= 64 whose K and V tiles fit
 * shared memory. (b, h) pairs are the split unit when a binding would exceed
 * maxStorageBufferRange. With SISA_VK_SDPA_PREPASS=1 bf16 Q/K/V on the coopmat kernel are
 * converted beforehand (vk_sdpa_prepass.c) where that gives the same bits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

typedef struct pc_sdpa {
    uint32_t q_base, q_s[4];
    uint32_t k_base, k_s[4];
    uint32_t v_base, v_s[4];
    uint32_t gq_base, gq_s1, gq_s2, gq_s3;
    uint32_t gk_base, gk_s1, gk_s2, gk_s3;
    uint32_t d_base;
    uint32_t H, Tq, Tk, unit0, p0;
    float scale;
    uint32_t x_base; /* coopmat with the pre-pass: the exponents (binding 5) */
} pc_sdpa;

_Static_assert(sizeof(pc_sdpa) <= VK_PUSH_MAX, "SDPA push constants exceed 128 bytes");

static int64_t es(const sisa_tensor *t) { return (int64_t)sisa_dtype_size(t->dtype); }

static void sdpa_units(const sisa_tensor *n, vk_units *u) {
    memset(u, 0, sizeof *u);
    const sisa_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2], *gq = n->src[3], *gk = n->src[4];
    int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Dv = v->shape[3];
    u->dims[0] = 1, u->dims[1] = B, u->dims[2] = H;
    const sisa_tensor *qkv[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        const sisa_tensor *t = qkv[i];
        u->ops[u->n_ops] = (vk_operand){t, {0, t->stride[0], t->stride[1]}, 0,
                                        (t->shape[2] - 1) * t->stride[2] + (t->shape[3] - 1) * t->stride[3] + es(t)};
        u->slot[u->n_ops++] = i;
    }
    if (gq) {
        const sisa_tensor *g[2] = {gq, gk};
        for (int i = 0; i < 2; i++) {
            u->ops[u->n_ops] = (vk_operand){g[i], {0, g[i]->stride[1], g[i]->stride[2]}, 0,
                                            (g[i]->shape[3] - 1) * g[i]->stride[3] + 4};
            u->slot[u->n_ops++] = 3 + i;
        }
    }
    int64_t e = es(n);
    u->ops[u->n_ops] = (vk_operand){n, {0, Tq * H * Dv * e, Dv * e}, 0, ((Tq - 1) * H * Dv + Dv) * e};
    u->slot[u->n_ops++] = 6;
}

/* The cooperative-matrix kernel (sdpa_coopmat.comp): f16 or bf16 Q, K, V (f32 stays on the
 * scalar kernel: its results keep f32 accuracy), at least one 16-row tile of queries (decode steps
 * stay on the scalar kernel), the device's 16x16x16 shape, a 64-row query block = 4 subgroups of
 * 16 rows and 64-key blocks (32/32 with 2 subgroups where shared memory is short, e.g. 32 KiB).
 * The default where the device has cooperative matrices (SISA_VK_NO_COOPMAT_SDPA=1 off; the
 * alignment fix was confirmed on the H100, docs/VULKAN.md); SISA_VK_COOPMAT=emulate runs it with emulated matrix units
 * (lavapipe, tests). */
enum { CM_NW = 4 };

static bool cm_src_ok(const vk_device *d, const sisa_tensor *t) {
    return t->dtype == SISA_F16 || (t->dtype == SISA_BF16 && d->coopmat_bf16);
}

static bool coopmat_plan(const vk_device *d, const sisa_tensor *n, int64_t dc, vk_kernel *k) {
    const sisa_tensor *q = n->src[0], *kk = n->src[1], *v = n->src[2];
    const bool emu = !d->coopmat && d->cm_emulate && d->subgroup_shuffle &&
                     !sisa_vk_env_flag("SISA_VK_NO_COOPMAT_SDPA");
    if ((!d->coopmat_sdpa && !emu) || !cm_src_ok(d, q) || !cm_src_ok(d, kk) || !cm_src_ok(d, v) ||
        q->shape[2] < 16 || !d->storage16)
        return false;
    /* the emulation plans with 32-invocation "subgroups" whatever the device's size */
    const uint32_t TM = d->cm_m, TN = d->cm_n, TK = d->cm_k, SG = emu ? 32 : d->subgroup_size;
    if (TM != 16 || TN != 16 || TK != 16 || SG % TM || (SG / TM) & (SG / TM - 1)) return false;
    const uint32_t Dqk = (uint32_t)q->shape[3], Dv = (uint32_t)v->shape[3];
    const uint32_t dcp = ((uint32_t)dc + TK - 1) / TK * TK, drp = (Dqk - (uint32_t)dc + TK - 1) / TK * TK;
    const uint32_t dkp = dcp + drp, dvp = (Dv + TN - 1) / TN * TN;
    /* debugging only: variant bits of the kernel (its header: 16 adds an O array, 64 a Q array) */
    const char *var_env = getenv("SISA_VK_SDPA_VARIANT");
    uint32_t var = var_env ? (uint32_t)strtoul(var_env, NULL, 0) : 0; /* 256 may be forced */
    var &= ~4096u; /* the pre-pass flag: set by the record function with the pre-pass's bindings only */
    if (sisa_vk_env_flag("SISA_VK_SHARED16")) var |= 512; /* the 16-bit shared stores of before */
    /* bf16 range maxima reduced one key block ahead (one barrier per block) and bf16 -> f16 by an
     * integer exponent re-bias: opt-in until timed and checked on real matrix units (they pass
     * with emulated ones, conform-vulkan-cmemu-new); by default the range maxima are reduced at
     * the top of each block (bit 1024) and every value goes through fp32 (bit 2048), as before */
    if (!sisa_vk_env_flag("SISA_VK_SDPA_RANGE_AHEAD")) var |= 1024;
    if (!sisa_vk_env_flag("SISA_VK_CVT_INT")) var |= 2048;
    /* 4 subgroups (64 query rows, 64-key blocks) where the shared memory allows, else 2 or 1;
     * K rows padded by 8 halves (fewer bank conflicts) unless only the unpadded rows fit (flag 256:
     * 64/64 blocks with d_qk 80 need 48,432 bytes unpadded, NVIDIA's limit is 48 KiB) */
    uint32_t NW = CM_NW, BC = 0;
    for (; NW >= 1 && !BC; NW /= 2) {
        const uint32_t bc = NW * TM, wgs = NW * SG;
        if (bc % (SG / TM) || bc / (SG / TM) > 64 || dvp % (SG / TM)) continue;
        /* register staging: at most 16 chunks of 8 elements per invocation for a K and a V block */
        if ((bc * dkp / 8 + wgs - 1) / wgs > 16 || (bc * dvp / 8 + wgs - 1) / wgs > 16) continue;
        for (uint32_t kpad = 8;; kpad = 0) {
            const uint32_t kst = dkp + kpad, vst = dvp + 8, pst = bc + 8, sst = (bc > dvp ? bc : dvp) + 4;
            const bool q_own = emu || (var & 64); /* a Q array (else Q is staged through K's) */
            /* Qs, Ks, Vs, Ps (f16), the fp32 scratch (and O: variant 16), gk, red[4], Os[4], and
             * the 16-byte stand-ins of the unused Ks/Vs declarations (uvec4 or float16_t) */
            uint64_t shared = (q_own ? (uint64_t)bc * kst * 2 : 16) + (uint64_t)bc * kst * 2 +
                              (uint64_t)bc * vst * 2 + (uint64_t)bc * pst * 2 +
                              (uint64_t)bc * sst * 4 * (var & 16 ? 2 : 1) + bc * 4 + 32 + 32;
            if (shared <= d->max_shared && wgs <= d->max_wg_invocations) {
                BC = bc;
                if (!kpad) var |= 256;
                break;
            }
            if (!kpad) break;
        }
    }
    NW = BC / TM;
    if (!BC) return false;
    const uint32_t wgs = NW * SG;
    k->shader = emu ? vk_variant(VK_SH_SDPA_CM_EMU, n->dtype) : vk_variant(VK_SH_SDPA_CM, n->dtype);
    k->wg = wgs;
    k->tile[0] = BC;
    k->tile[1] = BC; /* query rows per workgroup */
    k->tile[2] = 1;  /* record sets the 16-byte-load flags (spec 22..24) */
    k->spec[10] = k->wg;
    k->spec[13] = BC;
    k->spec[17] = TM, k->spec[18] = TN, k->spec[19] = TK, k->spec[20] = SG, k->spec[21] = NW;
    k->spec[25] = var;
    return true;
}

/* 8 consecutive elements along d (16 bytes) can be loaded at once: 16-bit, d contiguous, every
 * stride and the element base a multiple of 8, the binding 16-byte aligned, and the channel
 * groups of the kernel's [content | decayed] layout (dc, d_qk or d_v) multiples of 8. */
static uint32_t vec8_ok(const sisa_tensor *t, uint32_t base, uint64_t bind_off, int64_t groups) {
    if (sisa_dtype_size(t->dtype) != 2 || vk_es(t, 3) != 1 || base % 8 || bind_off % 16 || groups % 8) return 0;
    for (int i = 0; i < 3; i++)
        if (vk_es(t, i) % 8) return 0;
    return 1;
}

static bool true_if_feasible(const vk_device *d, const sisa_tensor *n, char *reason);

bool sisa_vk_select_sdpa(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason) {
    const sisa_tensor *q = n->src[0], *v = n->src[2];
    int64_t Dqk = q->shape[3], Dv = v->shape[3], Tq = q->shape[2], Tk = n->src[1]->shape[2];
    if (Dqk > 256 || Dv > 256) {
        snprintf(reason, SISA_REASON_LEN, "head dims d_qk=%lld d_v=%lld: the flash shader keeps at most 256 each in registers",
                 (long long)Dqk, (long long)Dv);
        return false;
    }
    if (Tq >= ((int64_t)1 << 31) || Tk >= ((int64_t)1 << 31)) {
        snprintf(reason, SISA_REASON_LEN, "sequence length >= 2^31");
        return false;
    }
    bool form_b = n->src[3] != NULL;
    int64_t dc = form_b ? n->iparams[2] : Dqk;
    sisa_vk_spec_dtypes(n, k->spec);
    k->kind = VK_K_SDPA;
    k->spec[11] = (uint32_t)Dqk;
    k->spec[12] = (uint32_t)Dv;
    k->spec[14] = form_b;
    k->spec[15] = (uint32_t)dc;
    k->spec[16] = n->iparams[0] != 0;
    if (coopmat_plan(d, n, dc, k)) {
        k->prepass = sisa_vk_sdpa_prepass_ok(d, n, k, NULL);
        return true_if_feasible(d, n, reason);
    }
    k->shader = vk_variant(VK_SH_SDPA, n->dtype);
    uint32_t cap = d->max_wg_invocations < 64 ? d->max_wg_invocations : 64;
    k->wg = 8 < cap ? 8 : cap;
    while (k->wg < cap && k->wg < (uint64_t)Tq) k->wg <<= 1;
    /* shared: K and V tiles as vec4 rows ([content | decayed] padded to 4 each) + gk */
    uint32_t dk4 = (uint32_t)((dc + 3) / 4 + (Dqk - dc + 3) / 4), dv4 = (uint32_t)((Dv + 3) / 4);
    uint32_t bc = 64;
    while (bc > 8 && bc * (dk4 + dv4) * 16 + bc * 4 > d->max_shared) bc >>= 1;
    if (bc * (dk4 + dv4) * 16 + bc * 4 > d->max_shared) {
        snprintf(reason, SISA_REASON_LEN, "K/V tiles of 8 keys need more than the %u bytes of shared memory",
                 d->max_shared);
        return false;
    }
    k->tile[0] = bc;
    k->spec[10] = k->wg;
    k->spec[13] = bc;
    return true_if_feasible(d, n, reason);
}

static bool true_if_feasible(const vk_device *d, const sisa_tensor *n, char *reason) {
    vk_units u;
    sdpa_units(n, &u);
    return sisa_vk_units_feasible(d, &u, reason);
}

sisa_status sisa_vk_record_sdpa(vk_rec *r, const sisa_tensor *n, const vk_kernel *k) {
    const sisa_tensor *q = n->src[0], *kk = n->src[1], *v = n->src[2], *gq = n->src[3], *gk = n->src[4];
    vk_units u;
    sdpa_units(n, &u);
    int64_t total = u.dims[1] * u.dims[2];
    vk_bind binds[VK_BINDINGS];
    uint32_t base[VK_BINDINGS];
    memset(binds, 0, sizeof binds);
    memset(base, 0, sizeof base);
    pc_sdpa pc;
    memset(&pc, 0, sizeof pc);
    for (int i = 0; i < 4; i++) pc.q_s[i] = vk_es(q, i), pc.k_s[i] = vk_es(kk, i), pc.v_s[i] = vk_es(v, i);
    if (gq) {
        pc.gq_s1 = vk_es(gq, 1), pc.gq_s2 = vk_es(gq, 2), pc.gq_s3 = vk_es(gq, 3);
        pc.gk_s1 = vk_es(gk, 1), pc.gk_s2 = vk_es(gk, 2), pc.gk_s3 = vk_es(gk, 3);
    }
    pc.H = (uint32_t)q->shape[1], pc.Tq = (uint32_t)q->shape[2], pc.Tk = (uint32_t)kk->shape[2];
    pc.p0 = (uint32_t)n->iparams[1];
    pc.scale = n->fparams[0];
    const uint32_t rows = k->tile[1] ? k->tile[1] : k->wg; /* query rows per workgroup */
    uint32_t gx = (uint32_t)((q->shape[2] + rows - 1) / rows);
    if (gx > r->d->max_groups[0]) return sisa_vk_node_err(r, VK_SUCCESS, "too many query blocks for one grid");
    int64_t max_units = r->d->max_groups[1];
    vk_prepass pp;
    bool pre = false;
    if (k->kind == VK_K_SDPA && k->tile[2]) SISA_TRY(sisa_vk_sdpa_prepass_begin(r, n, k, &pp, &pre));
    if (pre && pp.cap_units < max_units) max_units = pp.cap_units; /* chunks of the scratch */
    for (int64_t u0 = 0; u0 < total;) {
        char reason[SISA_REASON_LEN] = "";
        int64_t end = total - u0 > max_units ? u0 + max_units : total;
        int64_t u1 = sisa_vk_units_next(r->d, &u, u0, end, reason);
        if (u1 <= u0) return sisa_vk_node_err(r, VK_SUCCESS, reason);
        SISA_TRY(sisa_vk_units_bind(r, &u, u0, u1, binds, base));
        pc.q_base = base[0], pc.k_base = base[1], pc.v_base = base[2];
        pc.gq_base = base[3], pc.gk_base = base[4], pc.d_base = base[6];
        pc.unit0 = (uint32_t)u0;
        uint32_t spec[VK_SPEC_N];
        memcpy(spec, k->spec, sizeof spec);
        int64_t dc = gq ? n->iparams[2] : q->shape[3];
        if (pre) { /* the pre-pass's f16 copies instead of Q, K, V (contiguous rows, 16-byte aligned) */
            vk_prepass_view pv;
            SISA_TRY(sisa_vk_sdpa_prepass_record(r, n, k, &pp, u0, u1, binds, base, &pv));
            const uint32_t row[3] = {pp.dq, pp.dq, pp.dv};
            uint32_t *bs[3] = {&pc.q_base, &pc.k_base, &pc.v_base}, *st[3] = {pc.q_s, pc.k_s, pc.v_s};
            for (int i = 0; i < 3; i++) {
                binds[i] = pv.bind;
                *bs[i] = pv.base[i];
                st[i][0] = pv.s0, st[i][1] = pv.s1, st[i][2] = row[i], st[i][3] = 1;
                spec[1 + i] = SISA_F16;
            }
            binds[5] = pv.bind;
            pc.x_base = pv.x_base;
            spec[25] |= 4096;
            spec[22] = spec[23] = dc % 8 == 0 && q->shape[3] % 8 == 0;
            spec[24] = v->shape[3] % 8 == 0;
        } else if (k->tile[2]) {
            spec[22] = vec8_ok(q, base[0], binds[0].off, dc) && q->shape[3] % 8 == 0;
            spec[23] = vec8_ok(kk, base[1], binds[1].off, dc) && kk->shape[3] % 8 == 0;
            spec[24] = vec8_ok(v, base[2], binds[2].off, v->shape[3]);
        }
        SISA_TRY(sisa_vk_dispatch(r, k->shader, spec, binds, &pc, sizeof pc, gx, (uint32_t)(u1 - u0), 1));
        u0 = u1;
    }
    return SISA_OK;
}
