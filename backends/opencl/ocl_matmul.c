/*
 * ocl_matmul.c — MATMUL (ops.h: dst[p,q] = a[p,q] · b[p',q']ᵀ, b broadcast over batch dims)
 * through CLBlast's SGEMM.
 *
 * CLBlast addresses a matrix as (buffer, element offset, leading dimension), row- or
 * column-major: an f32 operand whose rows are contiguous, or whose columns are (a transposed
 * view), is handed over as it is. Anything else — f16/bf16 storage (CLBlast has no bf16 and its
 * HGEMM accumulates in f16, which ops.h rules out), other strided views — is first copied to a
 * contiguous f32 scratch buffer with our k_cpy. A non-f32 destination is computed in f32 and
 * rounded once by k_cpy. Batches: when b is shared by every batch and a's rows are uniformly
 * strided (y = x·Wᵀ, the common case), one GEMM with M·batch rows; else a strided-batched GEMM
 * over the inner batch dimension per outer index, b's stride 0 where it broadcasts.
 */
#include <stdio.h>

#include "ocl.h" /* first: it sets CL_TARGET_OPENCL_VERSION */

#include <clblast_c.h>

typedef struct operand {
    cl_mem mem;
    size_t off;        /* elements */
    size_t ld;
    int col;           /* 1: stored K×R (a transposed view), 0: R×K */
    int64_t bs0, bs1;  /* batch strides in elements (0 where broadcast) */
    int64_t rs;        /* row stride (elements) in R×K form */
} operand;

/* Describe x (X0, X1, R, K) for CLBlast, copying it into scratch `slot` when it must. */
static sisa_status prepare(ocl_stream *s, const sisa_tensor *x, int slot, operand *op) {
    const int64_t R = x->shape[2], K = x->shape[3];
    if (x->dtype == SISA_F32) {
        ocl_targ t;
        SISA_TRY(ocl_targ_of(s->dev, x, &t));
        const int64_t s2 = t.st.s[2], s3 = t.st.s[3];
        op->mem = t.mem;
        op->off = (size_t)t.off;
        op->bs0 = x->shape[0] == 1 ? 0 : t.st.s[0];
        op->bs1 = x->shape[1] == 1 ? 0 : t.st.s[1];
        if ((s3 == 1 || K == 1) && (R == 1 || s2 >= K)) {
            op->col = 0;
            op->ld = (size_t)(R == 1 ? K : s2);
            op->rs = R == 1 ? K : s2;
            return SISA_OK;
        }
        if ((s2 == 1 || R == 1) && (K == 1 || s3 >= R)) {
            op->col = 1;
            op->ld = (size_t)(K == 1 ? R : s3);
            op->rs = 1;
            return SISA_OK;
        }
    }
    const int64_t n = x->shape[0] * x->shape[1] * R * K;
    cl_mem m;
    SISA_TRY(ocl_scratch(s, slot, (size_t)n * sizeof(float), &m));
    SISA_TRY(ocl_enqueue_cpy(s, x, SISA_F32, m, 0));
    *op = (operand){.mem = m, .off = 0, .ld = (size_t)K, .col = 0, .rs = K,
                    .bs0 = x->shape[0] == 1 ? 0 : x->shape[1] * R * K,
                    .bs1 = x->shape[1] == 1 ? 0 : R * K};
    return SISA_OK;
}

static sisa_status gemm(ocl_stream *s, const sisa_tensor *node, size_t m, size_t n, size_t k,
                        const operand *a, size_t a_off, const operand *b, size_t b_off,
                        cl_mem c, size_t c_off, size_t batch, size_t c_stride) {
    /* row-major: op(A) is M×K, op(B) must be K×N; our b is N×K, so it is transposed unless it
     * is stored column-wise already */
    const CLBlastTranspose ta = a->col ? CLBlastTransposeYes : CLBlastTransposeNo;
    const CLBlastTranspose tb = b->col ? CLBlastTransposeNo : CLBlastTransposeYes;
    cl_event ev = NULL;
    CLBlastStatusCode st;
    if (batch == 1)
        st = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, 1.0f, a->mem, a_off, a->ld,
                          b->mem, b_off, b->ld, 0.0f, c, c_off, n, &s->q, &ev);
    else
        st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, m, n, k, 1.0f, a->mem, a_off,
                                        a->ld, (size_t)a->bs1, b->mem, b_off, b->ld, (size_t)b->bs1,
                                        0.0f, c, c_off, n, c_stride, batch, &s->q, &ev);
    if (ev) clReleaseEvent(ev);
    if (st != CLBlastSuccess)
        return ocl_clblast_fail(st, "%s(M=%zu, N=%zu, K=%zu, batch=%zu) for '%s'",
                                batch == 1 ? "Sgemm" : "SgemmStridedBatched", m, n, k, batch,
                                node->name);
    return SISA_OK;
}

sisa_status ocl_run_matmul(ocl_stream *s, const sisa_tensor *node) {
    const sisa_tensor *x = node->src[0], *w = node->src[1];
    const int64_t A0 = x->shape[0], A1 = x->shape[1], M = x->shape[2], K = x->shape[3];
    const int64_t N = w->shape[2];
    operand a, b;
    SISA_TRY(prepare(s, x, 0, &a));
    SISA_TRY(prepare(s, w, 1, &b));

    cl_mem c;
    size_t c_off;
    if (node->dtype == SISA_F32) {
        ocl_targ t;
        SISA_TRY(ocl_targ_of(s->dev, node, &t));
        c = t.mem;
        c_off = (size_t)t.off;
    } else {
        SISA_TRY(ocl_scratch(s, 2, (size_t)(A0 * A1 * M * N) * sizeof(float), &c));
        c_off = 0;
    }

    const bool b_shared = w->shape[0] == 1 && w->shape[1] == 1;
    const bool a_flat = !a.col && (A1 == 1 || a.bs1 == M * a.rs) &&
                        (A0 == 1 || a.bs0 == A1 * M * a.rs);
    if (b_shared && a_flat) {
        SISA_TRY(gemm(s, node, (size_t)(A0 * A1 * M), (size_t)N, (size_t)K, &a, a.off, &b, b.off,
                      c, c_off, 1, 0));
    } else {
        for (int64_t p = 0; p < A0; p++)
            SISA_TRY(gemm(s, node, (size_t)M, (size_t)N, (size_t)K, &a,
                          a.off + (size_t)(p * a.bs0), &b, b.off + (size_t)(p * b.bs0), c,
                          c_off + (size_t)(p * A1 * M * N), (size_t)A1, (size_t)(M * N)));
    }
    if (node->dtype != SISA_F32) SISA_TRY(ocl_enqueue_store(s, c, node));
    return SISA_OK;
}
