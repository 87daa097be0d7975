/*
 * cuda_matmul.c — MATMUL (ops.h: dst = a·bᵀ, b broadcast over batch dims) through cuBLASLt.
 *
 * Row-major dst (M,N) = a (M,K) · bᵀ is, read column-major, dstᵀ (N,M) = op_T(b) · a, so cuBLASLt
 * gets A := b with TRANSA = T (K×N, ld = b's row stride), B := a with TRANSB = N (K×M, ld = a's
 * row stride), C = D := dst (N×M, ld = N). No copies, no transposes in memory.
 * Batches: when b is one matrix (a weight) and a's rows are evenly spaced across its batch dims,
 * everything folds into ONE GEMM with M' = A0·A1·M (the model's linear layers); otherwise the two
 * batch dims are flattened into one strided batch (b's batch stride 0 where it broadcasts), or,
 * where they do not flatten, one strided-batched call per outer index.
 * fp32 accumulation (CUBLAS_COMPUTE_32F, no TF32: f32 nodes keep f32 accuracy); a/b share a
 * dtype (f32, f16, bf16); dst may be that dtype or f32. One mixed case: f32 activations times
 * 16-bit weights (a f32, b bf16/f16, dst f32 — the default --compute f32 with a bf16 checkpoint).
 * cuBLASLt has no such GEMM, so b is widened to f32 per call into stream-ordered memory
 * (cudaMallocAsync, freed after the GEMM; exact: every bf16/f16 value is an f32) and the GEMM runs
 * in f32; SISA_CUDA_NO_WIDEN=1 sends those nodes to the tiled fallback instead.
 * Plans (descriptors + the heuristic's algorithm) are cached per shape/stride/alignment key, so a
 * graph replays without heuristics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

typedef struct lt_key {
    int atype, btype, dtype, align_a, align_b, align_d;
    int64_t M, N, K, lda, ldb, ldd, batch, sa, sb, sd;
} lt_key;

struct sc_matmul_plan {
    lt_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    int ok;
};

/* How a node maps onto cuBLASLt calls. */
typedef struct lt_shape {
    lt_key key;
    int64_t outer;           /* calls (1 unless the batch dims do not flatten) */
    int64_t oa, ob, od;      /* per-call element offsets for the outer index */
} lt_shape;

static cudaDataType_t cuda_type(int dt) {
    return dt == SISA_F16 ? CUDA_R_16F : dt == SISA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static int ptr_align(const void *p) {
    uintptr_t v = (uintptr_t)p;
    int a = 16;
    while (a > 1 && (v % (uintptr_t)a)) a /= 2;
    return a;
}

/* Flatten batch dims (n0, n1) with element strides (s0, s1) (0 = broadcast) into one stride. */
static bool flat_batch(int64_t n0, int64_t n1, int64_t s0, int64_t s1, int64_t *s) {
    if (n0 == 1) { *s = n1 > 1 ? s1 : 0; return true; }
    if (n1 == 1) { *s = s0; return true; }
    if (s0 == n1 * s1) { *s = s1; return true; }
    return false;
}

/* f32 activations x bf16/f16 weights: cuBLASLt runs it on an f32 copy of b (see the header). */
static bool widens_b(const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    const char *off = getenv("SISA_CUDA_NO_WIDEN");
    return a->dtype == SISA_F32 && (b->dtype == SISA_BF16 || b->dtype == SISA_F16) &&
           node->dtype == SISA_F32 && !(off && off[0] && strcmp(off, "0"));
}

/* The node cuBLASLt sees: node itself, or (widens_b) a copy whose b is the contiguous f32 copy
 * (no buffer: the copy's address comes from cudaMallocAsync, 256-byte aligned). */
static const sisa_tensor *lt_view(const sisa_tensor *node, sisa_tensor *tmp, sisa_tensor *wide_b) {
    if (!widens_b(node)) return node;
    *tmp = *node;
    *wide_b = *node->src[1];
    wide_b->dtype = SISA_F32;
    wide_b->buffer = NULL;
    wide_b->offset = 0;
    sisa_tensor_set_contiguous(wide_b);
    tmp->src[1] = wide_b;
    return tmp;
}

static bool lt_shape_of(const sisa_tensor *node, lt_shape *o, char *reason) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    memset(o, 0, sizeof *o);
    if (a->dtype != b->dtype) {
        snprintf(reason, SISA_REASON_LEN, "a is %s, b is %s: cuBLASLt needs one dtype",
                 sisa_dtype_name(a->dtype), sisa_dtype_name(b->dtype));
        return false;
    }
    if (node->dtype != a->dtype && node->dtype != SISA_F32) {
        snprintf(reason, SISA_REASON_LEN, "dst %s from %s inputs", sisa_dtype_name(node->dtype),
                 sisa_dtype_name(a->dtype));
        return false;
    }
    const int64_t ea = sisa_dtype_size(a->dtype), eb = sisa_dtype_size(b->dtype);
    int64_t sa[4], sb[4];
    for (int i = 0; i < 4; i++) {
        if (a->stride[i] % ea || b->stride[i] % eb) {
            snprintf(reason, SISA_REASON_LEN, "strides not whole elements");
            return false;
        }
        sa[i] = a->stride[i] / ea;
        sb[i] = b->stride[i] / eb;
    }
    const int64_t A0 = a->shape[0], A1 = a->shape[1], M = a->shape[2], K = a->shape[3];
    const int64_t N = b->shape[2];
    if ((K > 1 && sa[3] != 1) || (K > 1 && sb[3] != 1)) {
        snprintf(reason, SISA_REASON_LEN, "innermost stride of a or b is not 1");
        return false;
    }
    lt_key *k = &o->key;
    k->atype = a->dtype; k->btype = b->dtype; k->dtype = node->dtype;
    k->K = K; k->N = N;
    k->lda = M > 1 ? sa[2] : K;
    k->ldb = N > 1 ? sb[2] : K;
    k->ldd = N;
    if (k->lda < K || k->ldb < K) {
        snprintf(reason, SISA_REASON_LEN, "row stride smaller than K (overlapping rows)");
        return false;
    }
    const bool b_single = b->shape[0] == 1 && b->shape[1] == 1;
    const bool a_rows_even = (A1 == 1 || sa[1] == M * k->lda) && (A0 == 1 || sa[0] == A1 * M * k->lda);
    o->outer = 1;
    if (b_single && a_rows_even) {
        k->M = A0 * A1 * M;
        k->batch = 1;
        return true;
    }
    k->M = M;
    int64_t bs0 = b->shape[0] == 1 ? 0 : sb[0], bs1 = b->shape[1] == 1 ? 0 : sb[1];
    int64_t fa, fb;
    if (flat_batch(A0, A1, sa[0], sa[1], &fa) && flat_batch(A0, A1, bs0, bs1, &fb)) {
        k->batch = A0 * A1;
        k->sa = fa; k->sb = fb; k->sd = M * N;
        return true;
    }
    /* one call per outer index p, batched over q */
    o->outer = A0;
    o->oa = sa[0]; o->ob = bs0; o->od = A1 * M * N;
    k->batch = A1;
    k->sa = sa[1]; k->sb = bs1; k->sd = M * N;
    return true;
}

static void plan_destroy(sc_matmul_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld) cublasLtMatrixLayoutDestroy(p->ld);
}

void sc_matmul_plans_free(sc_device *d) {
    for (int i = 0; i < d->n_plans; i++) plan_destroy(&d->plans[i]);
    free(d->plans);
    d->plans = NULL;
    d->n_plans = d->cap_plans = 0;
}

static cublasStatus_t layout(cublasLtMatrixLayout_t *l, int dt, int64_t rows, int64_t cols,
                             int64_t ld, int64_t batch, int64_t stride) {
    cublasStatus_t s = cublasLtMatrixLayoutCreate(l, cuda_type(dt), (uint64_t)rows, (uint64_t)cols, ld);
    if (s != CUBLAS_STATUS_SUCCESS || batch <= 1) return s;
    int32_t bc = (int32_t)batch;
    s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                             &stride, sizeof stride);
    return s;
}

/* Build (or find) the plan for key; returns it with ok = 0 when cuBLASLt offers no algorithm. */
static sc_matmul_plan *get_plan(sc_device *d, const lt_key *key, size_t ws, char *reason) {
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n_plans; i++)
        if (memcmp(&d->plans[i].key, key, sizeof *key) == 0) {
            sc_matmul_plan *p = &d->plans[i];
            pthread_mutex_unlock(&d->lock);
            if (!p->ok && reason) snprintf(reason, SISA_REASON_LEN, "cuBLASLt has no algorithm for this shape");
            return p;
        }
    if (d->n_plans == d->cap_plans) {
        int cap = d->cap_plans ? 2 * d->cap_plans : 64;
        sc_matmul_plan *np = realloc(d->plans, (size_t)cap * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&d->lock);
            if (reason) snprintf(reason, SISA_REASON_LEN, "out of host memory");
            return NULL;
        }
        d->plans = np;
        d->cap_plans = cap;
    }
    sc_matmul_plan *p = &d->plans[d->n_plans++];
    memset(p, 0, sizeof *p);
    p->key = *key;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s == CUBLAS_STATUS_SUCCESS) s = layout(&p->la, key->btype, key->K, key->N, key->ldb, key->batch, key->sb);
    if (s == CUBLAS_STATUS_SUCCESS) s = layout(&p->lb, key->atype, key->K, key->M, key->lda, key->batch, key->sa);
    if (s == CUBLAS_STATUS_SUCCESS) s = layout(&p->ld, key->dtype, key->N, key->M, key->ldd, key->batch, key->sd);
    cublasLtMatmulPreference_t pref = NULL;
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulPreferenceCreate(&pref);
    uint64_t wsb = ws;
    uint32_t al_a = (uint32_t)key->align_b, al_b = (uint32_t)key->align_a, al_d = (uint32_t)key->align_d;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(d->lt, p->op, p->la, p->lb, p->ld, p->ld, pref, 1, &res, &nres);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    p->ok = s == CUBLAS_STATUS_SUCCESS && nres > 0;
    if (p->ok) p->algo = res.algo;
    else if (reason)
        snprintf(reason, SISA_REASON_LEN, "cuBLASLt heuristic found no algorithm (cublasStatus_t %d: %s)",
                 (int)s, cublasLtGetStatusName(s));
    pthread_mutex_unlock(&d->lock);
    return p;
}

static void fill_align(lt_key *k, const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    k->align_a = a->buffer ? ptr_align((char *)a->buffer->ctx + a->offset) : 16;
    k->align_b = b->buffer ? ptr_align((char *)b->buffer->ctx + b->offset) : 16;
    k->align_d = node->buffer ? ptr_align((char *)node->buffer->ctx + node->offset) : 16;
    /* every batch/row start must keep that alignment */
    const int64_t ea = sisa_dtype_size(a->dtype), ed = sisa_dtype_size(node->dtype);
    while (k->align_a > 1 && ((k->lda * ea) % k->align_a || (k->sa * ea) % k->align_a)) k->align_a /= 2;
    while (k->align_b > 1 && ((k->ldb * ea) % k->align_b || (k->sb * ea) % k->align_b)) k->align_b /= 2;
    while (k->align_d > 1 && ((k->ldd * ed) % k->align_d || (k->sd * ed) % k->align_d)) k->align_d /= 2;
}

bool sc_matmul_lt_accepts(sc_device *d, const sisa_tensor *node_in, char *reason) {
    sisa_tensor tmp, wide_b;
    const sisa_tensor *node = lt_view(node_in, &tmp, &wide_b);
    lt_shape sh;
    if (!lt_shape_of(node, &sh, reason)) return false;
    if (sh.key.M == 0 || sh.key.N == 0 || sh.key.K == 0) {
        snprintf(reason, SISA_REASON_LEN, "empty matrix");
        return false;
    }
    fill_align(&sh.key, node);
    sc_matmul_plan *p = get_plan(d, &sh.key, ((size_t)64 << 20), reason);
    return p && p->ok;
}

/* Widen b (bf16/f16) into a fresh contiguous f32 buffer on the stream (elementwise CPY). */
static sisa_status widen(sc_stream *s, const sisa_tensor *node, const sc_node *n, void **out) {
    const sc_tensor *b = &n->src[1];
    const int64_t count = b->ne[0] * b->ne[1] * b->ne[2] * b->ne[3];
    /* keep freed copies in the device's default pool between forwards (its default threshold, 0,
     * hands them back to the driver at every synchronisation) */
    cudaMemPool_t pool;
    uint64_t keep = 0;
    if (cudaDeviceGetDefaultMemPool(&pool, s->dev->ordinal) == cudaSuccess &&
        cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) == cudaSuccess && keep == 0) {
        keep = (uint64_t)1 << 30;
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    cudaGetLastError();
    cudaError_t e = cudaMallocAsync(out, (size_t)count * sizeof(float), s->stream);
    if (e != cudaSuccess) {
        *out = NULL;
        return sisa_err(e == cudaErrorMemoryAllocation ? SISA_OUT_OF_MEMORY : SISA_DEVICE_LOST,
                        "MATMUL %s: widening %s weight %s (%lld elements) to f32: cudaMallocAsync: "
                        "cudaError_t %d: %s", node->name, sisa_dtype_name(node->src[1]->dtype),
                        node->src[1]->name, (long long)count, (int)e, cudaGetErrorString(e));
    }
    sc_node c;
    memset(&c, 0, sizeof c);
    c.op = SC_OP_CPY;
    c.src[0] = *b;
    c.dst.p = *out;
    c.dst.dt = SC_F32;
    c.dst.nb[3] = 1;
    for (int i = 0; i < 4; i++) c.dst.ne[i] = b->ne[i];
    for (int i = 2; i >= 0; i--) c.dst.nb[i] = c.dst.nb[i + 1] * b->ne[i + 1];
    e = sc_launch_elementwise(&c, s->stream);
    if (e != cudaSuccess)
        return sisa_err(SISA_DEVICE_LOST, "MATMUL %s: widening weight %s to f32: cudaError_t %d: %s",
                        node->name, node->src[1]->name, (int)e, cudaGetErrorString(e));
    return SISA_OK;
}

sisa_status sc_matmul_lt_run(sc_stream *s, const sisa_tensor *node_in, const sc_node *n) {
    char reason[SISA_REASON_LEN] = "";
    sisa_tensor tmp, wide_b;
    const sisa_tensor *node = lt_view(node_in, &tmp, &wide_b);
    lt_shape sh;
    if (!lt_shape_of(node, &sh, reason)) return sisa_err(SISA_INTERNAL, "cuBLASLt: %s", reason);
    fill_align(&sh.key, node);
    sc_matmul_plan *p = get_plan(s->dev, &sh.key, s->workspace_size, reason);
    if (!p || !p->ok) return sisa_err(SISA_INTERNAL, "cuBLASLt: %s", reason);
    void *wide = NULL;
    const char *bsrc = (const char *)n->src[1].p;
    if (node != node_in) {
        sisa_status ws = widen(s, node_in, n, &wide);
        if (ws != SISA_OK) {
            if (wide) cudaFreeAsync(wide, s->stream);
            return ws;
        }
        bsrc = (const char *)wide;
    }
    const float alpha = 1.0f, beta = 0.0f;
    const int64_t ea = sisa_dtype_size(node->src[0]->dtype), ed = sisa_dtype_size(node->dtype);
    sisa_status rs = SISA_OK;
    for (int64_t o = 0; o < sh.outer && rs == SISA_OK; o++) {
        const char *A = bsrc + o * sh.ob * ea;
        const char *B = (const char *)n->src[0].p + o * sh.oa * ea;
        char *D = (char *)n->dst.p + o * sh.od * ed;
        cublasStatus_t st = cublasLtMatmul(s->dev->lt, p->op, &alpha, A, p->la, B, p->lb, &beta, D,
                                           p->ld, D, p->ld, &p->algo, s->workspace,
                                           s->workspace_size, s->stream);
        if (st != CUBLAS_STATUS_SUCCESS)
            rs = sisa_err(SISA_DEVICE_LOST, "cublasLtMatmul %s (M=%lld N=%lld K=%lld batch=%lld) failed: "
                          "cublasStatus_t %d: %s", node->name, (long long)sh.key.M, (long long)sh.key.N,
                          (long long)sh.key.K, (long long)sh.key.batch, (int)st, cublasLtGetStatusName(st));
    }
    if (wide) {
        cudaError_t e = cudaFreeAsync(wide, s->stream);
        if (e != cudaSuccess && rs == SISA_OK)
            rs = sisa_err(SISA_DEVICE_LOST, "MATMUL %s: cudaFreeAsync of the widened weight: cudaError_t %d: %s",
                          node->name, (int)e, cudaGetErrorString(e));
    }
    return rs;
}
