/*
 * vk_sdpa_prepass.c — the bf16 attention pre-pass (SISA_VK_SDPA_PREPASS=1; opt-in: checked with
 * emulated matrix units only, never run on a GPU). docs/VULKAN.md, "bf16 attention pre-pass".
 *
 * Why: with bf16 Q/K/V the coopmat attention kernel (sdpa_coopmat.comp) reduces the largest |x| of
 * every Q tile and K/V block (subgroup shuffles, shared atomics, two extra workgroup barriers per
 * block), derives a power-of-two exponent from it and converts every element to f16 with it, in its
 * inner loop, once per query tile that reads the block: ~3x the f16 kernel's time on the H100. The
 * pre-pass does the reduction and the conversion once per element (sdpa_prepass.comp, the rule of
 * sdpa_range.glsl) into f16 copies in the stream's scratch buffer, and the kernel runs its f16 path
 * on them, taking the exponents from an array (flag 4096).
 *
 * Exactness. The kernel's exponents are maxima over what a workgroup LOADS: the Q tile's rows
 * [q0, min(q0 + BR, Tq)) (all channels; independent of the workgroup otherwise), and for key block
 * n the keys [nBC, min(nBC + BC, kv_end)) with kv_end = Tk, or when causal min(p0 + (last query row
 * of the tile) + 1, Tk): keys beyond kv_end are zero-filled and not in the maximum. V's exponent is
 * the running maximum over the blocks the workgroup has walked, and every workgroup walks blocks
 * 0, 1, ... from the first. So the exponents are a function of the block alone — what one f16 copy
 * needs — exactly when every workgroup's last block is whole: kv_end == Tk or kv_end a multiple of
 * BC for every query tile. Non-causal: always. Causal: for the full tiles kv_end = min(p0 + (t+1)BC,
 * Tk), fine for all of them iff p0 % BC == 0 or tile 0's already reaches Tk; for the last tile
 * min(p0 + Tq, Tk) must be Tk or a multiple of BC. Prefill (p0 = 0, Tq = Tk) always qualifies;
 * e.g. causal Tq = 100 against Tk = 150 at p0 = 0 does not (its last tile would see keys 64..99 of
 * block 64..127 and might take a smaller exponent than the copy's), and keeps today's path.
 * Given equal exponents the kernel stages equal f16 bits: the copy holds bf16x2_scaled(x, e), the
 * conversion the loop applies (per half a function of the value and e alone, so pairing channels
 * differently in a word changes nothing), zero where the loop zero-fills (padding, rows beyond Tq,
 * keys beyond kv_end: the kernel's f16 path fills the same zeros). Then S, P, O are computed by the
 * same instructions on the same operands: bit-identical results (tests/test_vulkan_prepass.c).
 *
 * Layout: per (b, h) unit a slab of f16 rows [Q: Tq | K: Tk | V: Tk], rows of d_qk / d_v halves
 * rounded up to 8 (16-byte loads stay possible), then the chunk's exponents. Units go in chunks
 * that fit one binding (maxStorageBufferRange) and one buffer (maxMemoryAllocationSize): per chunk
 * pre-pass phase 0 (maxima, Q/K converted), phase 1 (V with its running exponent), the kernel; the
 * next chunk reuses the scratch (the stream's hazard tracking orders the write after the reads).
 */
#include <stdio.h>
#include <string.h>

#include "vk_internal.h"

enum { PP_WG = 256, PRE_FLAG = 4096, CVT_FLOAT_FLAG = 2048 };

typedef struct pc_prepass {
    uint32_t q_base, q_s[4];
    uint32_t k_base, k_s[4];
    uint32_t v_base, v_s[4];
    uint32_t H, Tq, Tk, unit0, phase;
    uint32_t slab, k_off, v_off, x_off;
} pc_prepass;

_Static_assert(sizeof(pc_prepass) <= VK_PUSH_MAX, "pre-pass push constants exceed 128 bytes");

static int64_t rup8(int64_t x) { return (x + 7) / 8 * 8; }

/* bytes of one chunk binding: the range limit (16-byte multiple) and the largest buffer */
static uint64_t chunk_cap(const vk_device *d) {
    uint64_t cap = sisa_vk_range_limit(d) & ~(uint64_t)15;
    if (d->max_alloc < cap) cap = d->max_alloc;
    if (d->max_buffer < cap) cap = d->max_buffer;
    return cap;
}

static void layout(const sisa_tensor *n, uint32_t bc, vk_prepass *p) {
    const sisa_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2];
    const int64_t Tq = q->shape[2], Tk = k->shape[2];
    p->dq = (uint32_t)rup8(q->shape[3]), p->dv = (uint32_t)rup8(v->shape[3]);
    p->k_off = (uint32_t)(Tq * p->dq / 2);
    p->v_off = p->k_off + (uint32_t)(Tk * p->dq / 2);
    p->slab_w = p->v_off + (uint32_t)(Tk * p->dv / 2);
    p->xn = (uint32_t)((Tq + bc - 1) / bc + 3 * ((Tk + bc - 1) / bc));
}

/* Does every workgroup walk whole key blocks (see the header)? */
static bool whole_blocks(int64_t Tq, int64_t Tk, int64_t p0, int64_t bc) {
    const int64_t nqt = (Tq + bc - 1) / bc;
    if (nqt > 1 && p0 % bc != 0 && p0 + bc < Tk) return false; /* tile 0 ends inside a block */
    const int64_t last = p0 + Tq; /* the last tile's kv_end before the Tk clamp */
    return last >= Tk || last % bc == 0;
}

static bool is_coopmat(const sisa_tensor *n, const vk_kernel *k) {
    return k->kind == VK_K_SDPA && (k->shader == vk_variant(VK_SH_SDPA_CM, n->dtype) ||
                                    k->shader == vk_variant(VK_SH_SDPA_CM_EMU, n->dtype));
}

bool sisa_vk_sdpa_prepass_ok(const vk_device *d, const sisa_tensor *n, const vk_kernel *k, char *why) {
    char tmp[SISA_REASON_LEN];
    if (!why) why = tmp;
    const sisa_tensor *q = n->src[0], *kk = n->src[1], *v = n->src[2];
    if (!sisa_vk_env_flag("SISA_VK_SDPA_PREPASS")) {
        snprintf(why, SISA_REASON_LEN, "SISA_VK_SDPA_PREPASS is not set");
        return false;
    }
    if (!is_coopmat(n, k)) {
        snprintf(why, SISA_REASON_LEN, "the node runs on the scalar kernel '%s'", sisa_vk_shader_name(k->shader));
        return false;
    }
    if (q->dtype != SISA_BF16 || kk->dtype != SISA_BF16 || v->dtype != SISA_BF16) {
        snprintf(why, SISA_REASON_LEN, "Q/K/V are %s/%s/%s, not all bf16", sisa_dtype_name(q->dtype),
                 sisa_dtype_name(kk->dtype), sisa_dtype_name(v->dtype));
        return false;
    }
    const int64_t bc = k->tile[0], Tq = q->shape[2], Tk = kk->shape[2], p0 = n->iparams[1];
    if (n->iparams[0] != 0 && !whole_blocks(Tq, Tk, p0, bc)) {
        snprintf(why, SISA_REASON_LEN, "causal Tq=%lld Tk=%lld p0=%lld with %lld-key blocks: some query tile "
                 "ends inside a key block, whose range exponents would then depend on the tile",
                 (long long)Tq, (long long)Tk, (long long)p0, (long long)bc);
        return false;
    }
    vk_prepass p;
    layout(n, (uint32_t)bc, &p);
    const uint64_t unit = ((uint64_t)p.slab_w + p.xn) * 4, cap = chunk_cap(d);
    if (unit > cap) {
        snprintf(why, SISA_REASON_LEN, "one (b, h) unit's copies take %llu bytes, more than one binding or "
                 "buffer (%llu)", (unsigned long long)unit, (unsigned long long)cap);
        return false;
    }
    const int64_t nqt = (Tq + bc - 1) / bc, nkb = (Tk + bc - 1) / bc;
    if ((nqt > nkb ? nqt : nkb) > d->max_groups[0] || d->max_groups[2] < 3) {
        snprintf(why, SISA_REASON_LEN, "%lld key blocks exceed the workgroup grid", (long long)nkb);
        return false;
    }
    return true;
}

sisa_status sisa_vk_sdpa_prepass_begin(vk_rec *r, const sisa_tensor *n, const vk_kernel *k, vk_prepass *p, bool *got) {
    *got = false;
    memset(p, 0, sizeof *p);
    char why[SISA_REASON_LEN] = "";
    if (!k->prepass) { /* say why a bf16 node the switch asked for keeps today's path */
        if (sisa_vk_debug() && sisa_vk_env_flag("SISA_VK_SDPA_PREPASS") && n->src[1]->dtype == SISA_BF16 &&
            !sisa_vk_sdpa_prepass_ok(r->d, n, k, why))
            fprintf(stderr, "sisa vulkan: node %d '%s': no bf16 pre-pass: %s\n", r->node_index, n->name, why);
        return SISA_OK;
    }
    layout(n, k->tile[0], p);
    const uint64_t unit = ((uint64_t)p->slab_w + p->xn) * 4;
    const int64_t units = n->src[0]->shape[0] * n->src[0]->shape[1];
    p->cap_units = (int64_t)(chunk_cap(r->d) / unit);
    if (p->cap_units > units) p->cap_units = units;
    SISA_TRY(sisa_vk_stream_scratch(r, (uint64_t)p->cap_units * unit, &p->scratch, why));
    if (!p->scratch) {
        if (sisa_vk_debug())
            fprintf(stderr, "sisa vulkan: node %d '%s': no bf16 pre-pass: %s\n", r->node_index, n->name, why);
        return SISA_OK;
    }
    __atomic_fetch_add(&r->d->sdpa_prepass_nodes, 1, __ATOMIC_RELAXED);
    if (sisa_vk_debug())
        fprintf(stderr, "sisa vulkan: node %d '%s': bf16 pre-pass, %llu bytes per (b, h), %lld per chunk\n",
                r->node_index, n->name, (unsigned long long)unit, (long long)p->cap_units);
    *got = true;
    return SISA_OK;
}

sisa_status sisa_vk_sdpa_prepass_record(vk_rec *r, const sisa_tensor *n, const vk_kernel *k, const vk_prepass *p,
                                        int64_t u0, int64_t u1, const vk_bind src[3], const uint32_t src_base[3],
                                        vk_prepass_view *out) {
    const sisa_tensor *t[3] = {n->src[0], n->src[1], n->src[2]};
    const uint32_t bc = k->tile[0], m = (uint32_t)(u1 - u0);
    const uint32_t Tq = (uint32_t)t[0]->shape[2], Tk = (uint32_t)t[1]->shape[2];
    const uint32_t nqt = (Tq + bc - 1) / bc, nkb = (Tk + bc - 1) / bc;
    pc_prepass pc;
    memset(&pc, 0, sizeof pc);
    pc.q_base = src_base[0], pc.k_base = src_base[1], pc.v_base = src_base[2];
    for (int i = 0; i < 4; i++) pc.q_s[i] = vk_es(t[0], i), pc.k_s[i] = vk_es(t[1], i), pc.v_s[i] = vk_es(t[2], i);
    pc.H = (uint32_t)t[0]->shape[1], pc.Tq = Tq, pc.Tk = Tk, pc.unit0 = (uint32_t)u0;
    pc.slab = p->slab_w, pc.k_off = p->k_off, pc.v_off = p->v_off, pc.x_off = m * p->slab_w;
    const uint64_t bytes = (uint64_t)m * (p->slab_w + p->xn) * 4;
    vk_bind binds[VK_BINDINGS];
    memset(binds, 0, sizeof binds);
    for (int i = 0; i < 3; i++) binds[i] = src[i];
    binds[6] = (vk_bind){p->scratch->buf, 0, bytes};
    uint32_t spec[VK_SPEC_N];
    memset(spec, 0, sizeof spec);
    spec[10] = r->d->max_wg_invocations < PP_WG ? r->d->max_wg_invocations : PP_WG;
    spec[11] = (uint32_t)t[0]->shape[3], spec[12] = (uint32_t)t[2]->shape[3], spec[13] = bc;
    spec[25] = k->spec[25] & CVT_FLOAT_FLAG; /* the kernel's conversion path (same bits either way) */
    pc.phase = 0;
    SISA_TRY(sisa_vk_dispatch(r, VK_SH_SDPA_PREPASS, spec, binds, &pc, sizeof pc, nqt > nkb ? nqt : nkb, m, 3));
    pc.phase = 1;
    SISA_TRY(sisa_vk_dispatch(r, VK_SH_SDPA_PREPASS, spec, binds, &pc, sizeof pc, nkb, m, 1));
    /* the kernel indexes base + b*s0 + h*s1 with absolute (b, h): unit u's slab is at (u - u0) slabs */
    const uint32_t slab_h = 2 * p->slab_w;
    out->bind = binds[6];
    out->s1 = slab_h, out->s0 = pc.H * slab_h;
    out->base[0] = 0u - (uint32_t)u0 * slab_h;
    out->base[1] = out->base[0] + 2 * p->k_off;
    out->base[2] = out->base[0] + 2 * p->v_off;
    out->x_base = pc.x_off - (uint32_t)u0 * p->xn;
    return SISA_OK;
}

uint64_t sisa_vk_sdpa_prepass_stats(const sisa_device *sd) {
    return __atomic_load_n(&vk_dev(sd)->sdpa_prepass_nodes, __ATOMIC_RELAXED);
}
