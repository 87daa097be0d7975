/*
 * vk_op_matmul.c — MATMUL: dst = a.b^T with b broadcast over the batch dims (ops.h).
 *
 * Two kernels behind one selection: matmul_coopmat.comp (GL_NV_cooperative_matrix, f16 operands,
 * fp32 accumulation) where the device has f16 x f16 -> f32 matrix units and both operands are
 * f16 or bf16 (bf16 converted to f16 on the way into shared memory: exact in [2^-14, 65504],
 * saturated beyond; SISA_VK_NO_BF16_COOPMAT=1 turns that off; a constant bf16 weight b is read
 * through its f16 shadow instead, the same conversion done once: vk_shadow.c,
 * opt-in, SISA_VK_SHADOW=1, until timed on a GPU); matmul.comp (shared-memory tiled fp32 FMA) for everything else, f32
 * operands included, so f32 results keep f32 accuracy. The scalar kernel reads bf16 itself (a
 * shift; cheaper than decoding f16, and exact): no shadow there.
 * Tiles are specialization constants. coopmat: 128x128x32 per workgroup, 64x32 per subgroup
 * and one shared stage (SISA_VK_MM_TILES=BM,BN,BK,WM,WN[,stages] overrides, for tuning; a
 * config that does not fit is an error, never replaced); SISA_VK_COOPMAT=emulate runs that kernel with emulated matrix units
 * on devices without them (CI's lavapipe). Scalar: 128x128 (8x8 per invocation) for large
 * problems on GPUs, 64x64 (4x4) for small ones and on CPU implementations (quirk table).
 *
 * Operands larger than maxStorageBufferRange (the tied 50277-row embedding as b, multi-GB logits
 * as dst) are split: column blocks of b/dst first, then whole batches, then row blocks of a/dst,
 * each dispatch binding only the sub-ranges it touches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

typedef struct pc_matmul {
    uint32_t a_base, a_s[4];
    uint32_t b_base, b_s[4];
    uint32_t d_base;
    uint32_t A1, M, N, K;
    uint32_t batch0, m0, n0, m_end, n_end;
} pc_matmul;

enum { T_BM, T_BN, T_BK, T_TM, T_TN, T_WM, T_WN, T_ST };

/* Tiles of the coopmat kernel (BM, BN, BK, WM, WN, stages in t[]): the subgroup grid, the device's
 * matrix shape, the workgroup size, shared memory and the register slots (<= 8 uvec4 per operand
 * and invocation) must fit; *wg: invocations per workgroup. */
static bool coopmat_tiles_ok(const vk_device *d, const uint32_t t[8], uint32_t *wg, char *reason) {
    const uint32_t BM = t[T_BM], BN = t[T_BN], BK = t[T_BK], WM = t[T_WM], WN = t[T_WN], ST = t[T_ST];
    const uint32_t sg = d->cm_emulate ? 32 : d->subgroup_size; /* the emulation plans with 32 */
    if (!BM || !BN || !BK || !WM || !WN || BM % WM || BN % WN || WM % d->cm_m || WN % d->cm_n ||
        BK % d->cm_k || BK % 8 || BM > 512 || BN > 512 || BK > 256 || ST < 1 || ST > 2) {
        snprintf(reason, SISA_REASON_LEN,
                 "coopmat tiles %ux%ux%u / subgroup %ux%u, %u stages: do not fit the %ux%ux%u matrix shape",
                 BM, BN, BK, WM, WN, ST, d->cm_m, d->cm_n, d->cm_k);
        return false;
    }
    const uint32_t nsg = (BM / WM) * (BN / WN);
    *wg = nsg * sg;
    /* + 32: the 16-byte stand-ins of whichever slice arrays (uvec4 or float16_t) are unused */
    const uint64_t shared = (uint64_t)ST * (BM + BN) * (BK + 8) * 2 + (uint64_t)nsg * d->cm_m * d->cm_n * 4 + 32;
    const uint32_t slots_a = (BM * BK / 8 + *wg - 1) / *wg, slots_b = (BN * BK / 8 + *wg - 1) / *wg;
    if (*wg > d->max_wg_invocations || shared > d->max_shared || slots_a > 8 || slots_b > 8) {
        snprintf(reason, SISA_REASON_LEN,
                 "coopmat tiles %ux%ux%u / %ux%u, %u stages: %u invocations (max %u), %llu B shared (max %u), "
                 "%u+%u register slots (max 8+8)",
                 BM, BN, BK, WM, WN, ST, *wg, d->max_wg_invocations, (unsigned long long)shared, d->max_shared,
                 slots_a, slots_b);
        return false;
    }
    return true;
}

bool sisa_vk_select_matmul(const vk_device *d, const sisa_tensor *n, vk_kernel *k, char *reason) {
    const sisa_tensor *a = n->src[0], *b = n->src[1];
    int64_t M = a->shape[2], K = a->shape[3], N = b->shape[2];
    if (M >= ((int64_t)1 << 31) || N >= ((int64_t)1 << 31) || K >= ((int64_t)1 << 31) ||
        a->shape[0] * a->shape[1] > 65535) {
        snprintf(reason, SISA_REASON_LEN, "matrix dims beyond 2^31 or more than 65535 batches");
        return false;
    }
    sisa_vk_spec_dtypes(n, k->spec);
    bool a16 = a->dtype == SISA_F16 || (a->dtype == SISA_BF16 && d->coopmat_bf16);
    bool b16 = b->dtype == SISA_F16 || (b->dtype == SISA_BF16 && d->coopmat_bf16);
    bool cm = (d->coopmat || d->cm_emulate) && a16 && b16 && d->storage16;
    uint32_t t[8] = {128, 128, 32, 0, 0, 64, 32, 1}; /* BM BN BK - - WM WN stages */
    if (cm) {
        const char *env = getenv("SISA_VK_MM_TILES"); /* tuning: BM,BN,BK,WM,WN[,stages] */
        if (env && env[0]) {
            unsigned v[6] = {0, 0, 0, 0, 0, 1};
            char tail;
            int got = sscanf(env, "%u,%u,%u,%u,%u,%u%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail);
            if (got != 5 && got != 6) {
                snprintf(reason, SISA_REASON_LEN, "SISA_VK_MM_TILES='%s': want BM,BN,BK,WM,WN[,stages]", env);
                return false;
            }
            t[T_BM] = v[0], t[T_BN] = v[1], t[T_BK] = v[2], t[T_WM] = v[3], t[T_WN] = v[4], t[T_ST] = v[5];
        }
        if (!coopmat_tiles_ok(d, t, &k->wg, reason)) {
            if (env && env[0]) return false; /* an explicit choice is never replaced silently */
            cm = false;
        }
    }
    if (cm) {
        k->kind = VK_K_MATMUL_COOPMAT;
        k->shader = vk_variant(d->coopmat ? VK_SH_MATMUL_CM : VK_SH_MATMUL_CM_EMU, n->dtype);
        memcpy(k->tile, t, sizeof t);
        k->spec[11] = t[T_BM], k->spec[12] = t[T_BN], k->spec[13] = t[T_BK], k->spec[14] = t[T_WM], k->spec[15] = t[T_WN];
        k->spec[16] = d->cm_m, k->spec[17] = d->cm_n, k->spec[18] = d->cm_k, k->spec[21] = t[T_ST];
        k->spec[22] = sisa_vk_env_flag("SISA_VK_SHARED16"); /* the 16-bit shared stores of before */
        k->spec[23] = !sisa_vk_env_flag("SISA_VK_CVT_INT"); /* bf16 -> f16 through fp32 only unless opted in (vk_op_sdpa.c) */
        /* SISA_VK_SHADOW=1 (opt-in until it has run on real matrix units): a constant bf16 weight
         * is read through its f16 shadow (vk_shadow.c; record falls back to converting in the
         * loop when the shadow cannot be allocated) */
        k->shadow_b = b->dtype == SISA_BF16 && sisa_vk_shadow_eligible(b) && sisa_vk_env_flag("SISA_VK_SHADOW");
    }
    if (!cm) {
        for (int i = 11; i < VK_SPEC_N; i++) k->spec[i] = 0;
        k->kind = VK_K_MATMUL;
        k->shader = vk_variant(VK_SH_MATMUL, n->dtype);
        bool big = !(d->quirks & VK_QUIRK_SMALL_TILES) && M >= 512 && N >= 512;
        uint32_t bm = big ? 128 : 64, tm = 8, bk = 16; /* tm, bk: compile-time in matmul.comp */
        uint32_t ts[] = {bm, bm, bk, tm, tm, 0, 0, 0};
        memcpy(k->tile, ts, sizeof ts);
        k->wg = (bm / tm) * (bm / tm);
        if (k->wg > d->max_wg_invocations || 2 * bk * (bm + 1) * 4 > d->max_shared) {
            snprintf(reason, SISA_REASON_LEN, "device too small for the matmul tile (%u invocations, %u B shared)",
                     d->max_wg_invocations, d->max_shared);
            return false;
        }
        k->spec[11] = bm, k->spec[12] = bm;
    }
    k->spec[10] = k->wg;
    /* one row of a and of b must each fit a binding */
    vk_units u;
    memset(&u, 0, sizeof u);
    u.dims[0] = u.dims[1] = u.dims[2] = 1;
    u.ops[u.n_ops++] = (vk_operand){a, {0, 0, 0}, 0, (K - 1) * a->stride[3] + (int64_t)sisa_dtype_size(a->dtype)};
    u.ops[u.n_ops++] = (vk_operand){b, {0, 0, 0}, 0, (K - 1) * b->stride[3] + (int64_t)sisa_dtype_size(b->dtype)};
    return sisa_vk_units_feasible(d, &u, reason);
}

static bool vec8_ok(const sisa_tensor *t, uint32_t base) {
    if (sisa_dtype_size(t->dtype) != 2 || vk_es(t, 3) != 1 || base % 8) return false;
    for (int i = 0; i < 3; i++)
        if (t->shape[i] > 1 && vk_es(t, i) % 8) return false;
    return true;
}

sisa_status sisa_vk_record_matmul(vk_rec *r, const sisa_tensor *n, const vk_kernel *k) {
    const vk_device *d = r->d;
    const sisa_tensor *a = n->src[0], *b = n->src[1];
    uint32_t spec[VK_SPEC_N];
    memcpy(spec, k->spec, sizeof spec);
    sisa_tensor shadow; /* b's f16 stand-in: same shape and strides, the shadow's buffer */
    bool shadowed = false;
    if (k->shadow_b) SISA_TRY(sisa_vk_shadow_get(r, b, k->spec[23], &shadow, &shadowed));
    if (shadowed) {
        b = &shadow;
        spec[2] = SISA_F16; /* S1_DT: b is moved as f16, a still converted */
    }
    const int64_t A0 = a->shape[0], A1 = a->shape[1], M = a->shape[2], K = a->shape[3], N = b->shape[2];
    const int64_t es_a = (int64_t)sisa_dtype_size(a->dtype), es_b = (int64_t)sisa_dtype_size(b->dtype),
                  es_d = (int64_t)sisa_dtype_size(n->dtype);
    const uint32_t BM = k->tile[T_BM], BN = k->tile[T_BN];
    const bool bc0 = b->shape[0] != 1, bc1 = b->shape[1] != 1;
    const uint64_t limit = sisa_vk_range_limit(d);

    pc_matmul pc;
    memset(&pc, 0, sizeof pc);
    for (int i = 0; i < 4; i++) pc.a_s[i] = vk_es(a, i), pc.b_s[i] = vk_es(b, i);
    if (!bc0) pc.b_s[0] = 0;
    if (!bc1) pc.b_s[1] = 0;
    pc.A1 = (uint32_t)A1, pc.M = (uint32_t)M, pc.N = (uint32_t)N, pc.K = (uint32_t)K;

    /* column blocks: rows [n0, n1) of one batch of b, and that segment of a dst row, must fit */
    const int64_t b_row = (K - 1) * b->stride[3] + es_b;
    int64_t nb = N;
    if (b->stride[2] > 0 && (N - 1) * b->stride[2] + b_row > (int64_t)limit)
        nb = ((int64_t)limit - b_row) / b->stride[2] + 1;
    if (nb * es_d > (int64_t)limit) nb = (int64_t)limit / es_d;
    if (nb > (int64_t)d->max_groups[0] * BN) nb = (int64_t)d->max_groups[0] * BN;
    if (nb < N && nb > (int64_t)BN) nb -= nb % BN;

    vk_bind binds[VK_BINDINGS];
    uint32_t base[VK_BINDINGS];
    memset(binds, 0, sizeof binds);
    memset(base, 0, sizeof base);
    const int64_t max_rows = (int64_t)d->max_groups[1] * BM, max_batches = d->max_groups[2];

    for (int64_t n0 = 0; n0 < N; n0 += nb) {
        const int64_t n1 = n0 + nb < N ? n0 + nb : N;
        vk_units u;
        memset(&u, 0, sizeof u);
        u.dims[0] = A0, u.dims[1] = A1, u.dims[2] = M;
        u.ops[0] = (vk_operand){a, {a->stride[0], a->stride[1], a->stride[2]}, 0, (K - 1) * a->stride[3] + es_a};
        u.ops[1] = (vk_operand){b, {bc0 ? b->stride[0] : 0, bc1 ? b->stride[1] : 0, 0}, n0 * b->stride[2],
                                (n1 - 1) * b->stride[2] + b_row};
        u.ops[2] = (vk_operand){n, {A1 * M * N * es_d, M * N * es_d, N * es_d}, n0 * es_d, n1 * es_d};
        u.slot[0] = 0, u.slot[1] = 1, u.slot[2] = 6;
        u.n_ops = 3;
        const int64_t total = A0 * A1 * M;
        for (int64_t u0 = 0; u0 < total;) {
            char reason[SISA_REASON_LEN] = "";
            int64_t u1 = sisa_vk_units_next(d, &u, u0, total, reason);
            if (u1 <= u0) return sisa_vk_node_err(r, VK_SUCCESS, reason);
            /* shape the unit range into whole batches, or rows of one batch */
            int64_t batch0 = u0 / M, m0 = u0 % M, m1, nbatch;
            if (m0 == 0 && u1 - u0 >= M) {
                nbatch = (u1 - u0) / M;
                if (nbatch > max_batches) nbatch = max_batches;
                m1 = M;
                u1 = u0 + nbatch * M;
                if (M > max_rows) { /* too many row tiles for one grid: rows of one batch */
                    nbatch = 1;
                    m1 = max_rows;
                    u1 = u0 + m1;
                }
            } else {
                nbatch = 1;
                m1 = u1 - batch0 * M < M ? u1 - batch0 * M : M;
                if (m1 - m0 > max_rows) m1 = m0 + max_rows;
                u1 = batch0 * M + m1;
            }
            SISA_TRY(sisa_vk_units_bind(r, &u, u0, u1, binds, base));
            pc.a_base = base[0], pc.b_base = base[1], pc.d_base = base[6];
            pc.batch0 = (uint32_t)batch0, pc.m0 = (uint32_t)m0, pc.m_end = (uint32_t)m1;
            pc.n0 = (uint32_t)n0, pc.n_end = (uint32_t)n1;
            if (k->kind == VK_K_MATMUL_COOPMAT) {
                spec[19] = vec8_ok(a, base[0]) && binds[0].off % 16 == 0;
                spec[20] = vec8_ok(b, base[1]) && binds[1].off % 16 == 0;
            }
            uint32_t gx = (uint32_t)((n1 - n0 + BN - 1) / BN), gy = (uint32_t)((m1 - m0 + BM - 1) / BM);
            SISA_TRY(sisa_vk_dispatch(r, k->shader, spec, binds, &pc, sizeof pc, gx, gy, (uint32_t)nbatch));
            u0 = u1;
        }
    }
    return SISA_OK;
}
