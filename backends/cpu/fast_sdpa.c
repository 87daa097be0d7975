/*
 * fast_sdpa.c — scaled dot-product attention for the fast path (ops.h SISA_OP_SDPA): both SISA
 * forms (A: one dot product over d_qk; B: content part plus the SSM part decayed by
 * exp(gq_i - gk_j)), causal with a query offset p0, d_qk != d_v, output (B, Tq, H, Dv).
 *
 * Flash-style: no Tq x Tk matrix. A task owns (batch, head, block of BQ queries); it walks the
 * keys in blocks of BK with an online softmax (running max m, running sum l, output O rescaled
 * by exp(m_old - m_new)), so memory is O(BQ·(BK + Dv)) per thread. Both products of a block,
 * S = Q·Kᵀ and O += P·V, run on the SGEMM register kernel of fast_gemm.c: K and V of every
 * (batch, head) are packed once into its panel layout (converting f16/bf16 and gathering
 * strided views on the way), queries are copied into a contiguous f32 block pre-multiplied by
 * the scale. Causal blocks stop at the diagonal; query blocks are issued last-first, so the
 * longest tasks start first and the dynamic schedule ends evenly.
 *
 * Numerics: fp32 throughout (an f16/bf16 result is rounded once at the end); exp ~1 ulp. A row that sees no finite score
 * (every key masked) keeps l = 0 and is written as zeros, as ops.h says.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fast_internal.h"

#define PACK_BUDGET_BYTES ((size_t)64 << 20)

typedef struct sdpa_job {
    const sisa_tensor *node;
    const sisa_fast_gemm_kit *kit;
    int64_t B, H, Tq, Tk, Dqk, Dv, Dvp, dc;
    int form_b, causal;
    int64_t p0;
    float scale;
    int64_t BQ, BK, nqb;
    int64_t npk, npv, nkb;   /* key panels, value panels (along Dv), key blocks */
    size_t kpack_floats, vpack_floats; /* per (b, h) pair */
    int64_t pair0, group_n;  /* first (b, h) pair of this group, pairs in it */
    float *kpack, *vpack;    /* group x per-pair */
    unsigned char *vbad;     /* group x nkb: the key block's V holds a NaN or Inf */
    sisa_cpu_pool *pool;
    size_t scratch_floats;
    int failed;
} sdpa_job;

/* ---- phase 1: pack K and V of one (b, h) pair ---- */

static void pack_task(int64_t gi, int tid, void *arg) {
    (void)tid;
    sdpa_job *J = arg;
    const sisa_tensor *n = J->node, *Q = n->src[0], *K = n->src[1], *V = n->src[2];
    (void)Q;
    int64_t pair = J->pair0 + gi, b = pair / J->H, h = pair % J->H;
    const int nr = J->kit->nr;
    sisa_fast_mat Km = {(const char *)sisa_cpu_data(K) + b * K->stride[0] + h * K->stride[1], K->dtype,
                        K->stride[2], K->stride[3]};
    float *kp = J->kpack + (size_t)gi * J->kpack_floats;
    for (int64_t p = 0; p < J->npk; p++) {
        int64_t j0 = p * nr, nn = J->Tk - j0 < nr ? J->Tk - j0 : nr;
        J->kit->pack_b(kp + (size_t)p * nr * J->Dqk, Km, j0, nn, 0, J->Dqk);
    }
    /* Vᵀ as the B operand: its rows are value channels, its k index is the key */
    sisa_fast_mat Vm = {(const char *)sisa_cpu_data(V) + b * V->stride[0] + h * V->stride[1], V->dtype,
                        V->stride[3], V->stride[2]};
    float *vp = J->vpack + (size_t)gi * J->vpack_floats;
    for (int64_t kb = 0; kb < J->nkb; kb++) {
        int64_t k0 = kb * J->BK, kc = J->Tk - k0 < J->BK ? J->Tk - k0 : J->BK;
        int bad = 0;
        for (int64_t q = 0; q < J->npv; q++) {
            int64_t j0 = q * nr, nn = J->Dv - j0 < nr ? J->Dv - j0 : nr;
            float *panel = vp + ((size_t)kb * J->npv + q) * J->BK * nr;
            J->kit->pack_b(panel, Vm, j0, nn, k0, kc);
            for (int64_t x = 0; x < kc * nr; x++) bad |= !isfinite(panel[x]);
        }
        J->vbad[gi * J->nkb + kb] = (unsigned char)bad;
    }
}

/* ---- phase 2: one (b, h, query block) ---- */

static inline float load_g(const sisa_tensor *g, int64_t b, int64_t h, int64_t t) {
    float v;
    memcpy(&v, (const char *)sisa_cpu_data(g) + b * g->stride[1] + h * g->stride[2] + t * g->stride[3], 4);
    return v;
}

static void attn_task(int64_t task, int tid, void *arg) {
    sdpa_job *J = arg;
    const sisa_tensor *n = J->node, *Q = n->src[0], *gq = n->src[3], *gk = n->src[4];
    const sisa_fast_gemm_kit *kit = J->kit;
    const int mr = kit->mr, nr = kit->nr;
    const int64_t BQ = J->BQ, BK = J->BK, Dqk = J->Dqk, Dvp = J->Dvp, dc = J->dc;

    /* the last query blocks of every head first: causal cost grows with the block index */
    int64_t qb = J->nqb - 1 - task / J->group_n, gi = task % J->group_n;
    int64_t pair = J->pair0 + gi, b = pair / J->H, h = pair % J->H;
    int64_t i0 = qb * BQ, nq = J->Tq - i0 < BQ ? J->Tq - i0 : BQ;

    float *Qs = sisa_fast_scratch(J->pool, tid, SISA_FAST_SLOT_TASK, J->scratch_floats * sizeof(float));
    if (!Qs) {
        J->failed = 1;
        return;
    }
    /* [BQ][Dqk] queries, then: */
    float *S = Qs + BQ * Dqk;      /* [BQ][BK] scores, then probabilities */
    float *S2 = S + BQ * BK;       /* [BQ][BK] form B: SSM part */
    float *O = S2 + BQ * BK;       /* [BQ][Dvp] */
    float *mrow = O + BQ * Dvp, *lrow = mrow + BQ, *gqv = lrow + BQ; /* [BQ] each */
    float *gkv = gqv + BQ, *tmp = gkv + BK;                           /* [BK] each */
    int *visn = (int *)(tmp + BK);                                    /* [BQ] */

    /* queries, pre-scaled */
    const char *qbase = (const char *)sisa_cpu_data(Q) + b * Q->stride[0] + h * Q->stride[1];
    for (int64_t i = 0; i < nq; i++) {
        float *qr = Qs + i * Dqk;
        const char *src = qbase + (i0 + i) * Q->stride[2];
        if (Q->dtype == SISA_F32 && Q->stride[3] == 4) {
            const float *qf = (const float *)src;
            for (int64_t d = 0; d < Dqk; d++) qr[d] = qf[d] * J->scale;
        } else {
            sisa_fast_load_row(qr, src, Q->dtype, Q->stride[3], Dqk);
            for (int64_t d = 0; d < Dqk; d++) qr[d] *= J->scale;
        }
        mrow[i] = -INFINITY;
        lrow[i] = 0.0f;
        if (J->form_b) gqv[i] = load_g(gq, b, h, i0 + i);
    }
    memset(O, 0, (size_t)(BQ * Dvp) * sizeof(float));

    int64_t kend = J->Tk;
    if (J->causal) {
        int64_t lim = J->p0 + i0 + nq; /* keys j < lim can be visible to some query */
        if (lim < kend) kend = lim;
    }
    const float *kp = J->kpack + (size_t)gi * J->kpack_floats;
    const float *vp = J->vpack + (size_t)gi * J->vpack_floats;

    for (int64_t k0 = 0; k0 < kend; k0 += BK) {
        int64_t kc = kend - k0 < BK ? kend - k0 : BK;  /* keys used in this block */
        int64_t np = (kc + nr - 1) / nr;
        /* S = Qs · Kᵀ over the block's key panels (form B: content dims only, SSM dims to S2) */
        for (int64_t p = 0; p < np; p++) {
            const float *panel = kp + (size_t)((k0 / nr) + p) * nr * Dqk;
            for (int64_t i = 0; i < nq; i += mr) {
                int mm = (int)(nq - i < mr ? nq - i : mr);
                if (!J->form_b) {
                    kit->kernel(Dqk, Qs + i * Dqk, Dqk, panel, S + i * BK + p * nr, BK, mm, nr, 0);
                } else {
                    kit->kernel(dc, Qs + i * Dqk, Dqk, panel, S + i * BK + p * nr, BK, mm, nr, 0);
                    kit->kernel(Dqk - dc, Qs + i * Dqk + dc, Dqk, panel + dc * nr, S2 + i * BK + p * nr,
                                BK, mm, nr, 0);
                }
            }
        }
        if (J->form_b)
            for (int64_t j = 0; j < kc; j++) gkv[j] = load_g(gk, b, h, k0 + j);

        for (int64_t i = 0; i < nq; i++) {
            float *s = S + i * BK;
            if (J->form_b) {
                const float *s2 = S2 + i * BK;
                for (int64_t j = 0; j < kc; j++) tmp[j] = gqv[i] - gkv[j];
                sisa_fast_exp(tmp, tmp, kc);
                for (int64_t j = 0; j < kc; j++) s[j] += tmp[j] * s2[j];
            }
            /* mask: keys past the causal limit (the block never extends past Tk) */
            int64_t vis = kc;
            if (J->causal) {
                int64_t lim = J->p0 + i0 + i + 1 - k0; /* keys [k0, k0 + lim) visible */
                vis = lim < 0 ? 0 : lim < kc ? lim : kc;
            }
            visn[i] = (int)vis;
            for (int64_t j = vis; j < kc; j++) s[j] = -INFINITY;
            float mx = sisa_fast_max(s, kc);
            float mnew = mx > mrow[i] ? mx : mrow[i];
            if (mx != mx) mnew = mx; /* NaN propagates */
            if (mnew == -INFINITY) { /* nothing visible yet: probabilities 0, state unchanged */
                memset(s, 0, (size_t)kc * sizeof(float));
                continue;
            }
            float alpha = mrow[i] == -INFINITY ? 0.0f : expf(mrow[i] - mnew);
            lrow[i] = lrow[i] * alpha + sisa_fast_exp_sum(s, s, mnew, kc);
            mrow[i] = mnew;
            if (alpha != 1.0f) {
                float *o = O + i * Dvp;
                for (int64_t d = 0; d < Dvp; d++) o[d] *= alpha;
            }
        }
        /* O += P · V over the block */
        const float *vblk = vp + (size_t)(k0 / BK) * J->npv * BK * nr;
        if (J->vbad[gi * J->nkb + k0 / BK] && J->causal && J->p0 + i0 + 1 < k0 + kc) {
            /* A key masked for some rows has a non-finite V: the GEMM would add 0·NaN. ops.h
             * says masked keys contribute nothing, so sum only the visible ones, row by row. */
            for (int64_t i = 0; i < nq; i++)
                for (int64_t j = 0; j < visn[i]; j++) {
                    float pij = S[i * BK + j];
                    for (int64_t d = 0; d < J->Dv; d++)
                        O[i * Dvp + d] += pij * vblk[(size_t)(d / nr) * BK * nr + j * nr + d % nr];
                }
            continue;
        }
        for (int64_t q = 0; q < J->npv; q++) {
            const float *panel = vblk + (size_t)q * BK * nr;
            for (int64_t i = 0; i < nq; i += mr) {
                int mm = (int)(nq - i < mr ? nq - i : mr);
                kit->kernel(kc, S + i * BK, BK, panel, O + i * Dvp + q * nr, Dvp, mm, nr, 1);
            }
        }
    }

    /* normalise in place, then store (f32 directly, f16/bf16 rounded once) */
    size_t es = sisa_dtype_size(n->dtype);
    for (int64_t i = 0; i < nq; i++) {
        float *o = O + i * Dvp;
        if (lrow[i] > 0.0f || lrow[i] != lrow[i]) {
            float inv = 1.0f / lrow[i];
            for (int64_t d = 0; d < J->Dv; d++) o[d] *= inv;
        } else {
            memset(o, 0, (size_t)J->Dv * sizeof(float));
        }
        char *dst = (char *)sisa_cpu_data(n) + ((((b * J->Tq) + i0 + i) * J->H + h) * J->Dv) * es;
        sisa_fast_store_row(dst, n->dtype, o, J->Dv);
    }
    sisa_fast_scratch_done(J->pool, Qs);
}

sisa_status sisa_fast_sdpa(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *Q = node->src[0], *K = node->src[1], *V = node->src[2];
    sdpa_job J = {.node = node, .kit = sisa_fast_gemm_kit_get()};
    J.B = Q->shape[0];
    J.H = Q->shape[1];
    J.Tq = Q->shape[2];
    J.Dqk = Q->shape[3];
    J.Tk = K->shape[2];
    J.Dv = V->shape[3];
    J.form_b = node->src[3] != NULL;
    J.dc = J.form_b ? node->iparams[2] : J.Dqk;
    if (J.form_b && J.dc == J.Dqk) J.form_b = 0; /* no SSM dims: nothing to decay */
    J.causal = node->iparams[0];
    J.p0 = node->iparams[1];
    J.scale = node->fparams[0];

    const int mr = J.kit->mr, nr = J.kit->nr;
    J.BQ = 4 * mr;
    J.BK = 64 > 2 * nr ? 64 : 2 * nr;
    J.BK = (J.BK + nr - 1) / nr * nr;
    J.nqb = (J.Tq + J.BQ - 1) / J.BQ;
    J.npk = (J.Tk + nr - 1) / nr;
    J.npv = (J.Dv + nr - 1) / nr;
    J.Dvp = J.npv * nr;
    J.nkb = (J.Tk + J.BK - 1) / J.BK;
    J.kpack_floats = (size_t)(J.npk * nr * J.Dqk + 16);
    J.vpack_floats = (size_t)(J.nkb * J.npv * J.BK * nr + 16);
    J.kpack_floats = (J.kpack_floats + 15) & ~(size_t)15;
    J.vpack_floats = (J.vpack_floats + 15) & ~(size_t)15;

    int64_t pairs = J.B * J.H;
    size_t per_pair = (J.kpack_floats + J.vpack_floats) * sizeof(float);
    int64_t group = (int64_t)(PACK_BUDGET_BYTES / per_pair);
    if (group < 1) group = 1;
    if (group > pairs) group = pairs;

    J.pool = pool;
    J.scratch_floats = (size_t)(J.BQ * J.Dqk + 2 * J.BQ * J.BK + J.BQ * J.Dvp + 3 * J.BQ + 2 * J.BK +
                                2 * J.BQ /* visn */ + 64);
    J.kpack = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0, (size_t)group * J.kpack_floats * sizeof(float));
    J.vpack = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0 + 1, (size_t)group * J.vpack_floats * sizeof(float));
    J.vbad = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0 + 2, (size_t)(group * J.nkb));
    sisa_status st = SISA_OK;
    if (!J.kpack || !J.vpack || !J.vbad) {
        st = sisa_err(SISA_OUT_OF_MEMORY, "cpu SDPA: out of host memory for %lld packed heads",
                      (long long)group);
    } else {
        for (J.pair0 = 0; J.pair0 < pairs && !J.failed; J.pair0 += group) {
            int64_t g = pairs - J.pair0 < group ? pairs - J.pair0 : group;
            J.group_n = g;
            sisa_fast_pool_run(pool, g, pack_task, &J);
            sisa_fast_pool_run(pool, g * J.nqb, attn_task, &J);
        }
        if (J.failed) st = sisa_err(SISA_OUT_OF_MEMORY, "cpu SDPA: out of host memory for scratch");
    }
    if (J.kpack) sisa_fast_scratch_done(pool, J.kpack);
    if (J.vpack) sisa_fast_scratch_done(pool, J.vpack);
    if (J.vbad) sisa_fast_scratch_done(pool, J.vbad);
    return st;
}
