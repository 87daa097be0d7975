/*
 * cuda_cudnn.c — SDPA form A through cuDNN 9's fused flash attention, built with the backend
 * descriptor API (plain C, no cudnn-frontend).
 *
 * The graph is the composite that cuDNN's runtime-fusion engines recognise as flash attention:
 *   S  = matmul(Q, Kᵀ)                      Q (B,H,Tq,D), Kᵀ as a strided view (B,H,D,Tk) of K
 *   S1 = S · scale                          scale: a by-value fp32 scalar
 *   [causal]  r = gen_index(S1, axis 2), c = gen_index(S1, axis 3), m = (r >= c),
 *             S1 = select(S1, -FLT_MAX, m)  (top-left aligned: valid for p0 = 0 only)
 *   M = max_j S1;  E = exp(S1 - M);  Z = sum_j E;  stats = M + log Z (virtual);  P = E / Z
 *   O  = matmul(P, V)                       O written through the op's (B,Tq,H,Dv) strides
 * Every intermediate is virtual fp32. d_qk != d_v is fine. Plans (operation graph -> heuristics
 * mode A -> first engine config that finalises) are built once per shape/strides/dtype/causal key
 * and cached with their workspace size; a key cuDNN refuses is cached as refused, with cuDNN's
 * message, and the node goes to the backend's own kernels. Execution: one cudnnHandle per device,
 * its stream set to the sisa_stream's before cudnnBackendExecute, workspace = the stream's.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "cuda_internal.h"
#include "error.h"

typedef struct cd_plan {
    int64_t key[32];
    int nkey;
    bool ok;
    cudnnBackendDescriptor_t plan;
    int64_t workspace;
    char why[160];
} cd_plan;

struct sc_cudnn_state {
    cudnnHandle_t handle;
    cd_plan *plans;
    int n, cap;
    long runs; /* executions (bench/test reporting) */
};

enum { U_Q = 1, U_K, U_V, U_O, U_SCALE, U_NEGINF, U_VIRT = 100 };

void sc_cudnn_init(sc_device *d) {
    d->cudnn = NULL;
    if (getenv("SISA_CUDA_NO_CUDNN")) {
        snprintf(d->cudnn_reason, sizeof d->cudnn_reason, "cuDNN disabled by SISA_CUDA_NO_CUDNN");
        return;
    }
    size_t ver = cudnnGetVersion();
    if (ver < 90000) {
        snprintf(d->cudnn_reason, sizeof d->cudnn_reason, "cuDNN %zu loaded, the SDPA path needs >= 9.0",
                 ver);
        return;
    }
    sc_cudnn_state *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(d->cudnn_reason, sizeof d->cudnn_reason, "out of host memory");
        return;
    }
    cudnnStatus_t st = cudnnCreate(&c->handle);
    if (st != CUDNN_STATUS_SUCCESS) {
        snprintf(d->cudnn_reason, sizeof d->cudnn_reason, "cudnnCreate: %s", cudnnGetErrorString(st));
        free(c);
        return;
    }
    d->cudnn = c;
    snprintf(d->cudnn_reason, sizeof d->cudnn_reason, "cuDNN %zu", ver);
}

void sc_cudnn_free(sc_device *d) {
    sc_cudnn_state *c = d->cudnn;
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        if (c->plans[i].plan) cudnnBackendDestroyDescriptor(c->plans[i].plan);
    free(c->plans);
    cudnnDestroy(c->handle);
    free(c);
    d->cudnn = NULL;
}

/* ---- descriptor helpers: every failure records cuDNN's status and message in 'why' ---- */

typedef struct builder {
    cudnnBackendDescriptor_t descs[64];
    int nd;
    cudnnBackendDescriptor_t ops[24];
    int nops;
    char *why;
    bool failed;
    int64_t next_virt;
} builder;

static bool chk(builder *b, cudnnStatus_t st, const char *what) {
    if (b->failed) return false;
    if (st == CUDNN_STATUS_SUCCESS) return true;
    char msg[256] = "";
    cudnnGetLastErrorString(msg, sizeof msg);
    snprintf(b->why, 160, "cuDNN %s: %s%s%.100s", what, cudnnGetErrorString(st), msg[0] ? ": " : "", msg);
    b->failed = true;
    return false;
}

static cudnnBackendDescriptor_t mk(builder *b, cudnnBackendDescriptorType_t t, const char *what) {
    cudnnBackendDescriptor_t d = NULL;
    if (b->failed || b->nd == 64) return NULL;
    if (!chk(b, cudnnBackendCreateDescriptor(t, &d), what)) return NULL;
    b->descs[b->nd++] = d;
    return d;
}

static void set(builder *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
                cudnnBackendAttributeType_t t, int64_t n, const void *v, const char *what) {
    if (b->failed || !d) return;
    chk(b, cudnnBackendSetAttribute(d, a, t, n, v), what);
}

static void fin(builder *b, cudnnBackendDescriptor_t d, const char *what) {
    if (b->failed || !d) return;
    chk(b, cudnnBackendFinalize(d), what);
}

static cudnnBackendDescriptor_t tensor(builder *b, int64_t uid, cudnnDataType_t dt, const int64_t dim[4],
                                       const int64_t str[4], bool virt, bool by_value) {
    cudnnBackendDescriptor_t t = mk(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    int64_t align = 16;
    bool v = virt, bv = by_value;
    set(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor dtype");
    set(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "tensor dims");
    set(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str, "tensor strides");
    set(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
    set(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    set(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v, "tensor virtual");
    if (by_value) set(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv, "tensor by value");
    fin(b, t, "tensor finalize");
    return t;
}

/* a virtual fp32 (or other dtype) tensor of shape (B,H,Tq,n), packed */
static cudnnBackendDescriptor_t vtensor(builder *b, cudnnDataType_t dt, int64_t B, int64_t H, int64_t Tq,
                                        int64_t n) {
    const int64_t dim[4] = {B, H, Tq, n}, str[4] = {H * Tq * n, Tq * n, n, 1};
    return tensor(b, U_VIRT + b->next_virt++, dt, dim, str, true, false);
}

static void add_op(builder *b, cudnnBackendDescriptor_t op) {
    if (!b->failed && op && b->nops < 24) b->ops[b->nops++] = op;
}

static void pointwise(builder *b, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                      cudnnBackendDescriptor_t bb, cudnnBackendDescriptor_t tt, cudnnBackendDescriptor_t y,
                      int64_t axis, cudnnDataType_t prec) {
    cudnnBackendDescriptor_t pw = mk(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise desc");
    set(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    set(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise prec");
    if (mode == CUDNN_POINTWISE_GEN_INDEX)
        set(b, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    fin(b, pw, "pointwise desc finalize");
    cudnnBackendDescriptor_t op = mk(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    set(b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pw desc");
    set(b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pw x");
    if (bb) set(b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bb, "pw b");
    if (tt) set(b, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tt, "pw t");
    set(b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pw y");
    fin(b, op, "pointwise op finalize");
    add_op(b, op);
}

static void reduction(builder *b, cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x,
                      cudnnBackendDescriptor_t y) {
    cudnnDataType_t f = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = mk(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction desc");
    set(b, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red, "reduction op");
    set(b, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f, "reduction comp");
    fin(b, rd, "reduction desc finalize");
    cudnnBackendDescriptor_t op = mk(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
    set(b, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, "red desc");
    set(b, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "red x");
    set(b, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "red y");
    fin(b, op, "reduction op finalize");
    add_op(b, op);
}

static void matmul(builder *b, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t bm,
                   cudnnBackendDescriptor_t c) {
    cudnnDataType_t f = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t md = mk(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul desc");
    set(b, md, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f, "matmul comp");
    fin(b, md, "matmul desc finalize");
    cudnnBackendDescriptor_t op = mk(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    set(b, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "mm a");
    set(b, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bm, "mm b");
    set(b, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "mm c");
    set(b, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &md, "mm desc");
    fin(b, op, "matmul op finalize");
    add_op(b, op);
}

/* Build the SDPA graph and an execution plan for node n. Returns the plan or NULL (why). */
/* variant bits: 1 = no (virtual) stats branch, 2 = comparison computed in fp32 (not boolean),
 * 4 = P (the softmax output feeding the second matmul) in the io dtype instead of fp32 */
static cudnnBackendDescriptor_t build_plan(cudnnHandle_t h, const sc_node *n, bool causal, int64_t *ws,
                                           char *why, int variant) {
    builder bd = {.why = why, .next_virt = 0};
    builder *b = &bd;
    const sc_tensor *Q = &n->src[0], *K = &n->src[1], *V = &n->src[2], *O = &n->dst;
    const int64_t B = Q->ne[0], H = Q->ne[1], Tq = Q->ne[2], D = Q->ne[3], Tk = K->ne[2], Dv = V->ne[3];
    const cudnnDataType_t io = Q->dt == SC_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    const int64_t qd[4] = {B, H, Tq, D}, qs[4] = {Q->nb[0], Q->nb[1], Q->nb[2], Q->nb[3]};
    const int64_t kd[4] = {B, H, D, Tk}, ks[4] = {K->nb[0], K->nb[1], K->nb[3], K->nb[2]};
    const int64_t vd[4] = {B, H, Tk, Dv}, vs[4] = {V->nb[0], V->nb[1], V->nb[2], V->nb[3]};
    const int64_t od[4] = {B, H, Tq, Dv}, os[4] = {O->nb[0], O->nb[2], O->nb[1], O->nb[3]};
    const int64_t one[4] = {1, 1, 1, 1};
    cudnnBackendDescriptor_t tQ = tensor(b, U_Q, io, qd, qs, false, false);
    cudnnBackendDescriptor_t tK = tensor(b, U_K, io, kd, ks, false, false);
    cudnnBackendDescriptor_t tV = tensor(b, U_V, io, vd, vs, false, false);
    cudnnBackendDescriptor_t tO = tensor(b, U_O, io, od, os, false, false);
    cudnnBackendDescriptor_t tScale = tensor(b, U_SCALE, f32, one, one, false, true);

    cudnnBackendDescriptor_t S = vtensor(b, f32, B, H, Tq, Tk);
    matmul(b, tQ, tK, S);
    cudnnBackendDescriptor_t S1 = vtensor(b, f32, B, H, Tq, Tk);
    pointwise(b, CUDNN_POINTWISE_MUL, S, tScale, NULL, S1, 0, f32);
    if (causal) {
        cudnnBackendDescriptor_t tNeg = tensor(b, U_NEGINF, f32, one, one, false, true);
        cudnnBackendDescriptor_t r = vtensor(b, CUDNN_DATA_INT32, B, H, Tq, Tk);
        pointwise(b, CUDNN_POINTWISE_GEN_INDEX, S1, NULL, NULL, r, 2, CUDNN_DATA_INT32);
        cudnnBackendDescriptor_t c = vtensor(b, CUDNN_DATA_INT32, B, H, Tq, Tk);
        pointwise(b, CUDNN_POINTWISE_GEN_INDEX, S1, NULL, NULL, c, 3, CUDNN_DATA_INT32);
        cudnnBackendDescriptor_t m = vtensor(b, CUDNN_DATA_BOOLEAN, B, H, Tq, Tk);
        pointwise(b, CUDNN_POINTWISE_CMP_GE, r, c, NULL, m, 0, (variant & 2) ? f32 : CUDNN_DATA_BOOLEAN);
        cudnnBackendDescriptor_t S2 = vtensor(b, f32, B, H, Tq, Tk);
        pointwise(b, CUDNN_POINTWISE_BINARY_SELECT, S1, tNeg, m, S2, 0, f32);
        S1 = S2;
    }
    cudnnBackendDescriptor_t M = vtensor(b, f32, B, H, Tq, 1);
    reduction(b, CUDNN_REDUCE_TENSOR_MAX, S1, M);
    cudnnBackendDescriptor_t Sm = vtensor(b, f32, B, H, Tq, Tk);
    pointwise(b, CUDNN_POINTWISE_SUB, S1, M, NULL, Sm, 0, f32);
    cudnnBackendDescriptor_t E = vtensor(b, f32, B, H, Tq, Tk);
    pointwise(b, CUDNN_POINTWISE_EXP, Sm, NULL, NULL, E, 0, f32);
    cudnnBackendDescriptor_t Z = vtensor(b, f32, B, H, Tq, 1);
    reduction(b, CUDNN_REDUCE_TENSOR_ADD, E, Z);
    if (!(variant & 1)) {
        cudnnBackendDescriptor_t LZ = vtensor(b, f32, B, H, Tq, 1);
        pointwise(b, CUDNN_POINTWISE_LOG, Z, NULL, NULL, LZ, 0, f32);
        cudnnBackendDescriptor_t St = vtensor(b, f32, B, H, Tq, 1);
        pointwise(b, CUDNN_POINTWISE_ADD, M, LZ, NULL, St, 0, f32);
    }
    cudnnBackendDescriptor_t P = vtensor(b, (variant & 4) ? io : f32, B, H, Tq, Tk);
    pointwise(b, CUDNN_POINTWISE_DIV, E, Z, NULL, P, 0, f32);
    matmul(b, P, tV, tO);

    cudnnBackendDescriptor_t graph = mk(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    set(b, graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, b->nops, b->ops, "graph ops");
    set(b, graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h, "graph handle");
    fin(b, graph, "operation graph finalize");

    cudnnBackendDescriptor_t heur = mk(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    set(b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph, "heur graph");
    set(b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heur mode");
    fin(b, heur, "heuristics finalize");

    cudnnBackendDescriptor_t plan = NULL;
    if (!b->failed) {
        enum { NCFG = 8 };
        cudnnBackendDescriptor_t cfg[NCFG] = {0};
        int nc = 0;
        for (; nc < NCFG; nc++)
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg[nc]) != CUDNN_STATUS_SUCCESS) break;
        int64_t got = 0;
        if (chk(b, cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                            nc, &got, cfg), "heuristics results")) {
            if (got == 0) {
                snprintf(why, 160, "cuDNN heuristics found no engine for this SDPA graph");
                b->failed = true;
            }
            char last[160] = "";
            for (int64_t i = 0; i < got && !plan; i++) {
                cudnnBackendDescriptor_t p = NULL;
                if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p) != CUDNN_STATUS_SUCCESS)
                    continue;
                cudnnStatus_t s1 = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]);
                cudnnStatus_t s2 = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
                cudnnStatus_t s3 = s1 == CUDNN_STATUS_SUCCESS && s2 == CUDNN_STATUS_SUCCESS ? cudnnBackendFinalize(p) : s1;
                if (s3 == CUDNN_STATUS_SUCCESS) {
                    int64_t cnt = 0;
                    *ws = 0;
                    cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, ws);
                    plan = p;
                } else {
                    char msg[128] = "";
                    cudnnGetLastErrorString(msg, sizeof msg);
                    snprintf(last, sizeof last, "cuDNN plan finalize: %s: %.100s", cudnnGetErrorString(s3), msg);
                    cudnnBackendDestroyDescriptor(p);
                }
            }
            if (!plan && got > 0) {
                snprintf(why, 160, "%s", last);
                b->failed = true;
            }
        }
        for (int i = 0; i < nc; i++) cudnnBackendDestroyDescriptor(cfg[i]);
    }
    for (int i = b->nd - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(b->descs[i]);
    return plan;
}

static int make_key(const sc_node *n, int64_t key[32]) {
    int k = 0;
    key[k++] = n->src[0].dt;
    key[k++] = n->ip[0] != 0;
    for (int t = 0; t < 4; t++) {
        const sc_tensor *x = t == 3 ? &n->dst : &n->src[t];
        for (int i = 0; i < 4; i++) key[k++] = x->ne[i];
        for (int i = 0; i < 3; i++) key[k++] = x->nb[i];
    }
    return k;
}

/* Find or build (under the device lock) the plan for this node's key. */
static cd_plan *get_plan(sc_device *d, const sc_node *n) {
    sc_cudnn_state *c = d->cudnn;
    int64_t key[32];
    int nk = make_key(n, key);
    cd_plan *found = NULL;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < c->n && !found; i++)
        if (c->plans[i].nkey == nk && memcmp(c->plans[i].key, key, nk * sizeof key[0]) == 0) found = &c->plans[i];
    if (!found && c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        cd_plan *np = realloc(c->plans, (size_t)cap * sizeof *np);
        if (np) { c->plans = np; c->cap = cap; }
    }
    if (!found && c->n < c->cap) {
        found = &c->plans[c->n++];
        memset(found, 0, sizeof *found);
        memcpy(found->key, key, nk * sizeof key[0]);
        found->nkey = nk;
        /* graph variants tried in order; the first refusal's message is the one reported */
        char why[160] = "";
        static const int order[8] = {4, 5, 6, 7, 0, 1, 2, 3};
        for (int vi = 0; vi < 8 && !found->plan; vi++) {
            const int v = order[vi];
            found->plan = build_plan(c->handle, n, n->ip[0] != 0, &found->workspace, why, v);
            if (getenv("SISA_CUDA_TRACE"))
                fprintf(stderr, "cuda: cuDNN SDPA plan variant %d: %s\n", v, found->plan ? "built" : why);
            if (vi == 0) snprintf(found->why, sizeof found->why, "%s", why);
        }
        found->ok = found->plan != NULL;
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

static bool ok16(const sc_tensor *t) {
    if (t->nb[3] != 1 || ((uintptr_t)t->p % 16) != 0) return false;
    for (int i = 0; i < 3; i++)
        if (t->nb[i] % 8) return false;
    return true;
}

bool sc_cudnn_sdpa_accepts(sc_device *d, const sisa_tensor *node, char *reason) {
    if (!d->cudnn) {
        snprintf(reason, SISA_REASON_LEN, "%s", d->cudnn_reason);
        return false;
    }
    sc_node n;
    if (!sc_node_from(node, &n, reason)) return false;
    if (n.src[3].p || n.src[4].p) {
        snprintf(reason, SISA_REASON_LEN, "cuDNN SDPA: form B (factored decay) is the own kernel's");
        return false;
    }
    const int dt = n.src[0].dt;
    if ((dt != SC_BF16 && dt != SC_F16) || n.src[1].dt != dt || n.src[2].dt != dt || n.dst.dt != dt) {
        snprintf(reason, SISA_REASON_LEN, "cuDNN SDPA: Q, K, V and the output must all be bf16 or all f16");
        return false;
    }
    if (n.ip[0] && n.ip[1] != 0) {
        snprintf(reason, SISA_REASON_LEN, "cuDNN SDPA: causal with p0 = %d (cuDNN's mask is top-left, p0 0)",
                 n.ip[1]);
        return false;
    }
    const int64_t D = n.src[0].ne[3], Dv = n.src[2].ne[3];
    if (D % 8 || Dv % 8 || D > 256 || Dv > 256 || n.src[0].ne[2] < 1) {
        snprintf(reason, SISA_REASON_LEN, "cuDNN SDPA: d_qk %lld / d_v %lld must be multiples of 8, <= 256",
                 (long long)D, (long long)Dv);
        return false;
    }
    if (!ok16(&n.src[0]) || !ok16(&n.src[1]) || !ok16(&n.src[2]) || !ok16(&n.dst)) {
        snprintf(reason, SISA_REASON_LEN, "cuDNN SDPA: tensors need unit channel stride, 16-byte alignment");
        return false;
    }
    cd_plan *p = get_plan(d, &n);
    if (!p) {
        snprintf(reason, SISA_REASON_LEN, "cuDNN SDPA: out of host memory for the plan cache");
        return false;
    }
    if (!p->ok) {
        snprintf(reason, SISA_REASON_LEN, "%s", p->why);
        return false;
    }
    return true;
}

sisa_status sc_cudnn_sdpa_run(sc_stream *s, const sisa_tensor *node, const sc_node *n) {
    (void)node;
    sc_device *d = s->dev;
    sc_cudnn_state *c = d->cudnn;
    if (!c) return sisa_err(SISA_UNSUPPORTED, "cuda: cuDNN is not available: %s", d->cudnn_reason);
    cd_plan *p = get_plan(d, n);
    if (!p || !p->ok) return sisa_err(SISA_UNSUPPORTED, "cuda: cuDNN SDPA plan: %s", p ? p->why : "no memory");
    if ((size_t)p->workspace > s->workspace_size)
        return sisa_err(SISA_UNSUPPORTED, "cuda: cuDNN SDPA wants %lld bytes of workspace (stream has %zu)",
                        (long long)p->workspace, s->workspace_size);
    float scale = n->fp[0], neg = -FLT_MAX;
    int64_t uids[6] = {U_Q, U_K, U_V, U_O, U_SCALE, U_NEGINF};
    void *ptrs[6] = {n->src[0].p, n->src[1].p, n->src[2].p, n->dst.p, &scale, &neg};
    const int64_t nu = n->ip[0] ? 6 : 5;
    cudnnBackendDescriptor_t vp = NULL;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, nu, uids);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, nu, ptrs);
    void *ws = s->workspace;
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(vp);
    if (st == CUDNN_STATUS_SUCCESS) {
        pthread_mutex_lock(&d->lock); /* one handle per device: its stream is set per call */
        st = cudnnSetStream(c->handle, s->stream);
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(c->handle, p->plan, vp);
        c->runs++;
        pthread_mutex_unlock(&d->lock);
    }
    if (vp) cudnnBackendDestroyDescriptor(vp);
    if (st != CUDNN_STATUS_SUCCESS) {
        char msg[256] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        return sisa_err(SISA_INTERNAL, "cuda: cudnnBackendExecute (SDPA): %s%s%s", cudnnGetErrorString(st),
                        msg[0] ? ": " : "", msg);
    }
    return SISA_OK;
}
