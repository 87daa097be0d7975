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
 * Every intermediate is virtual fp32 except P (io dtype: the fp32-P graph finds no engine).
 * d_qk != d_v is fine. Plans are built once per shape/strides/dtype/causal key and cached with
 * their workspace size; a key cuDNN refuses is cached as refused, with cuDNN's message, and the
 * node goes to the backend's own kernels. Engine choice: mode A's first config; with
 * SISA_CUDA_CUDNN_TUNE=1 (tune_level) every engine config that heuristics modes A, B and FALLBACK
 * list for the graph variants is made a plan, and the first execution times them all on the
 * node's own tensors and keeps the fastest (SISA_CUDA_TRACE=1 prints each candidate's time). Execution: one cudnnHandle per device,
 * its stream set to the sisa_stream's before cudnnBackendExecute, workspace = the stream's.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cudnn.h>

#include "cuda_internal.h"
#include "error.h"

/* An execution plan that finalised for a key, with what it is (for the trace and the report). */
typedef struct cd_cand {
    cudnnBackendDescriptor_t plan;
    int64_t workspace;
    char desc[96]; /* "v4 heurA#0 eng9 knobs 2=1 ..." */
    float ms;      /* measured (tuning), -1 = not timed */
} cd_cand;

enum { CD_MAX_CAND = 64 };

typedef struct cd_plan {
    int64_t key[32];
    int nkey;
    bool ok;
    bool tuned; /* the candidates were timed once (or there was nothing to choose) */
    cudnnBackendDescriptor_t plan; /* the chosen candidate's */
    int64_t workspace;
    cd_cand cand[CD_MAX_CAND];
    int ncand;
    int chosen;
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
        for (int j = 0; j < c->plans[i].ncand; j++)
            if (c->plans[i].cand[j].plan) cudnnBackendDestroyDescriptor(c->plans[i].cand[j].plan);
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

/* ---- engine configs -> execution plans ---- */

/* Finalise a plan for engine config cfg; NULL (last = cuDNN's message) when it does not. */
static cudnnBackendDescriptor_t plan_for(cudnnHandle_t h, cudnnBackendDescriptor_t cfg, int64_t *ws,
                                         char *last) {
    cudnnBackendDescriptor_t p = NULL;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &p) != CUDNN_STATUS_SUCCESS)
        return NULL;
    cudnnStatus_t s1 = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
    cudnnStatus_t s2 = cudnnBackendSetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    cudnnStatus_t s3 = s1 == CUDNN_STATUS_SUCCESS && s2 == CUDNN_STATUS_SUCCESS ? cudnnBackendFinalize(p) : s1;
    if (s3 != CUDNN_STATUS_SUCCESS) {
        char msg[128] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        snprintf(last, 160, "cuDNN plan finalize: %s: %.100s", cudnnGetErrorString(s3), msg);
        cudnnBackendDestroyDescriptor(p);
        return NULL;
    }
    int64_t cnt = 0;
    *ws = 0;
    cudnnBackendGetAttribute(p, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, ws);
    return p;
}

enum { CD_MAX_KNOBS = 16 };

/* "eng<global index> k<type>=<value>..." of an engine config (the identity used to drop
 * duplicates between heuristics modes) */
static void cfg_describe(cudnnBackendDescriptor_t cfg, char *out, size_t len) {
    cudnnBackendDescriptor_t eng = NULL, kc[CD_MAX_KNOBS] = {0};
    int64_t idx = -1, cnt = 0, nk = 0;
    int n = 0;
    snprintf(out, len, "eng?");
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt,
                                 &eng) == CUDNN_STATUS_SUCCESS)
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &cnt, &idx);
    n = snprintf(out, len, "eng%lld", (long long)idx);
    for (; nk < CD_MAX_KNOBS; nk++)
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &kc[nk]) != CUDNN_STATUS_SUCCESS) break;
    int64_t got = 0;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nk, &got,
                                 kc) == CUDNN_STATUS_SUCCESS)
        for (int64_t i = 0; i < got && i < nk && n > 0 && (size_t)n < len; i++) {
            cudnnBackendKnobType_t t = 0;
            int64_t v = 0;
            cudnnBackendGetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &cnt, &t);
            cudnnBackendGetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &cnt, &v);
            n += snprintf(out + n, len - (size_t)n, " k%d=%lld", (int)t, (long long)v);
        }
    for (int64_t i = 0; i < nk; i++) cudnnBackendDestroyDescriptor(kc[i]);
    cudnnBackendDestroyDescriptor(eng);
}

static bool have_cand(const cd_plan *out, const char *id) {
    for (int i = 0; i < out->ncand; i++) {
        const char *d = strchr(out->cand[i].desc, ' '); /* skip the "v<variant>/<source>" prefix */
        if (d && strcmp(d + 1, id) == 0) return true;
    }
    return false;
}

/* The engine index and knob choices of an engine config. */
static int cfg_knobs(cudnnBackendDescriptor_t cfg, int64_t *idx, cudnnBackendKnobType_t *type, int64_t *val) {
    cudnnBackendDescriptor_t eng = NULL, kc[CD_MAX_KNOBS] = {0};
    int64_t cnt = 0, got = 0;
    int nk = 0, n = 0;
    *idx = -1;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng) != CUDNN_STATUS_SUCCESS) return 0;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cnt,
                                 &eng) == CUDNN_STATUS_SUCCESS)
        cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &cnt, idx);
    for (; nk < CD_MAX_KNOBS; nk++)
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &kc[nk]) != CUDNN_STATUS_SUCCESS) break;
    if (cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nk, &got,
                                 kc) == CUDNN_STATUS_SUCCESS)
        for (int64_t i = 0; i < got && i < nk; i++, n++) {
            type[n] = 0;
            val[n] = 0;
            cudnnBackendGetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &cnt, &type[n]);
            cudnnBackendGetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &cnt, &val[n]);
        }
    for (int i = 0; i < nk; i++) cudnnBackendDestroyDescriptor(kc[i]);
    cudnnBackendDestroyDescriptor(eng);
    return n;
}

/* An engine config for engine idx of graph with the given knob choices (NULL when cuDNN refuses). */
static cudnnBackendDescriptor_t make_cfg(cudnnBackendDescriptor_t graph, int64_t idx, const cudnnBackendKnobType_t *type,
                                         const int64_t *val, int nk, cudnnBackendDescriptor_t *eng_out,
                                         cudnnBackendDescriptor_t *kc) {
    cudnnBackendDescriptor_t eng = NULL, cfg = NULL;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(eng, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &idx);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(eng);
    for (int i = 0; i < nk; i++) {
        kc[i] = NULL;
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &kc[i]);
        if (st == CUDNN_STATUS_SUCCESS)
            st = cudnnBackendSetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &type[i]);
        if (st == CUDNN_STATUS_SUCCESS)
            st = cudnnBackendSetAttribute(kc[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &val[i]);
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(kc[i]);
    }
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnBackendSetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &eng);
    if (st == CUDNN_STATUS_SUCCESS && nk > 0)
        st = cudnnBackendSetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nk, kc);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(cfg);
    *eng_out = eng;
    if (st != CUDNN_STATUS_SUCCESS && cfg) {
        cudnnBackendDestroyDescriptor(cfg);
        cfg = NULL;
    }
    return cfg;
}

/* SISA_CUDA_CUDNN_TUNE=2: beside the heuristics' configs, every engine config made by changing one
 * knob of the first config (each value of the knob's range, 40 at most per knob). An exploration
 * mode (benchmarks); its finds are reported in docs/CUDA.md. */
static int sweep_knobs(cudnnHandle_t h, cudnnBackendDescriptor_t graph, cudnnBackendDescriptor_t base, int variant,
                       cd_plan *out, char *last) {
    int64_t idx = -1, val[CD_MAX_KNOBS];
    cudnnBackendKnobType_t type[CD_MAX_KNOBS];
    const int nk = cfg_knobs(base, &idx, type, val);
    if (idx < 0) return 0;
    cudnnBackendDescriptor_t eng = NULL, info[CD_MAX_KNOBS] = {0};
    int added = 0, ni = 0;
    int64_t tmp = 0, got = 0;
    const int64_t idx0 = idx;
    cudnnBackendDescriptor_t kc[CD_MAX_KNOBS];
    cudnnBackendDescriptor_t c0 = make_cfg(graph, idx0, type, val, nk, &eng, kc);
    for (int i = 0; i < nk; i++)
        if (kc[i]) cudnnBackendDestroyDescriptor(kc[i]);
    if (c0) cudnnBackendDestroyDescriptor(c0);
    if (!eng) return 0;
    for (; ni < CD_MAX_KNOBS; ni++)
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR, &info[ni]) != CUDNN_STATUS_SUCCESS) break;
    if (cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_KNOB_INFO, CUDNN_TYPE_BACKEND_DESCRIPTOR, ni, &got, info) !=
        CUDNN_STATUS_SUCCESS)
        got = 0;
    for (int64_t k = 0; k < got && k < ni && out->ncand < CD_MAX_CAND; k++) {
        cudnnBackendKnobType_t kt = 0;
        int64_t lo = 0, hi = 0, step = 1;
        cudnnBackendGetAttribute(info[k], CUDNN_ATTR_KNOB_INFO_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &tmp, &kt);
        cudnnBackendGetAttribute(info[k], CUDNN_ATTR_KNOB_INFO_MINIMUM_VALUE, CUDNN_TYPE_INT64, 1, &tmp, &lo);
        cudnnBackendGetAttribute(info[k], CUDNN_ATTR_KNOB_INFO_MAXIMUM_VALUE, CUDNN_TYPE_INT64, 1, &tmp, &hi);
        cudnnBackendGetAttribute(info[k], CUDNN_ATTR_KNOB_INFO_STRIDE, CUDNN_TYPE_INT64, 1, &tmp, &step);
        if (getenv("SISA_CUDA_TRACE"))
            fprintf(stderr, "cuda: cuDNN engine %lld knob type %d range [%lld, %lld] step %lld\n", (long long)idx0,
                    (int)kt, (long long)lo, (long long)hi, (long long)step);
        if (step < 1) step = 1;
        int slot = -1;
        for (int i = 0; i < nk; i++)
            if (type[i] == kt) slot = i;
        for (int64_t v = lo, nv = 0; v <= hi && nv < 40 && out->ncand < CD_MAX_CAND; v += step, nv++) {
            cudnnBackendKnobType_t t2[CD_MAX_KNOBS];
            int64_t v2[CD_MAX_KNOBS];
            int n2 = nk;
            memcpy(t2, type, sizeof type);
            memcpy(v2, val, sizeof val);
            if (slot >= 0) {
                if (v2[slot] == v) continue;
                v2[slot] = v;
            } else if (n2 < CD_MAX_KNOBS) {
                t2[n2] = kt;
                v2[n2++] = v;
            }
            cudnnBackendDescriptor_t e2 = NULL, kc2[CD_MAX_KNOBS];
            cudnnBackendDescriptor_t cfg = make_cfg(graph, idx0, t2, v2, n2, &e2, kc2);
            if (!cfg && getenv("SISA_CUDA_TRACE")) {
                char msg[128] = "";
                cudnnGetLastErrorString(msg, sizeof msg);
                fprintf(stderr, "cuda: cuDNN sweep eng%lld k%d=%lld: no config: %.100s\n", (long long)idx0, (int)kt,
                        (long long)v, msg);
            }
            if (cfg) {
                char id[80];
                cfg_describe(cfg, id, sizeof id);
                if (!have_cand(out, id)) {
                    cd_cand *c = &out->cand[out->ncand];
                    c->plan = plan_for(h, cfg, &c->workspace, last);
                    if (!c->plan && getenv("SISA_CUDA_TRACE"))
                        fprintf(stderr, "cuda: cuDNN sweep %s: %s\n", id, last);
                    if (c->plan) {
                        c->ms = -1;
                        snprintf(c->desc, sizeof c->desc, "v%d/S %s", variant, id);
                        out->ncand++;
                        added++;
                    }
                }
                cudnnBackendDestroyDescriptor(cfg);
            }
            for (int i = 0; i < n2; i++)
                if (kc2[i]) cudnnBackendDestroyDescriptor(kc2[i]);
            if (e2) cudnnBackendDestroyDescriptor(e2);
        }
    }
    for (int i = 0; i < ni; i++) cudnnBackendDestroyDescriptor(info[i]);
    cudnnBackendDestroyDescriptor(eng);
    return added;
}

/* Add the plans of graph's engine configs to out. all = false: heuristics mode A, the first config
 * that finalises (what cuDNN ranks best). all = true: every config that heuristics modes A, B and
 * FALLBACK list (duplicates dropped), for timing on first use. Returns how many were added. */
static int gather(cudnnHandle_t h, cudnnBackendDescriptor_t graph, int variant, bool all, cd_plan *out,
                  char *why) {
    static const cudnnBackendHeurMode_t modes[3] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_B,
                                                    CUDNN_HEUR_MODE_FALLBACK};
    static const char mname[3] = {'A', 'B', 'F'};
    int added = 0, listed = 0;
    char last[160] = "";
    for (int mi = 0; mi < (all ? 3 : 1) && out->ncand < CD_MAX_CAND; mi++) {
        cudnnBackendDescriptor_t heur = NULL;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur) != CUDNN_STATUS_SUCCESS)
            continue;
        cudnnBackendHeurMode_t mode = modes[mi];
        cudnnStatus_t st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
        if (st == CUDNN_STATUS_SUCCESS)
            st = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(heur);
        enum { NCFG = 16 };
        cudnnBackendDescriptor_t cfg[NCFG] = {0};
        int nc = 0;
        int64_t got = 0;
        if (st == CUDNN_STATUS_SUCCESS) {
            for (; nc < NCFG; nc++)
                if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfg[nc]) != CUDNN_STATUS_SUCCESS)
                    break;
            st = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nc,
                                          &got, cfg);
        }
        if (st != CUDNN_STATUS_SUCCESS && mi == 0) {
            char msg[128] = "";
            cudnnGetLastErrorString(msg, sizeof msg);
            snprintf(last, sizeof last, "cuDNN heuristics: %s: %.100s", cudnnGetErrorString(st), msg);
        }
        for (int64_t i = 0; st == CUDNN_STATUS_SUCCESS && i < got && out->ncand < CD_MAX_CAND; i++) {
            listed++;
            char id[80];
            cfg_describe(cfg[i], id, sizeof id);
            if (have_cand(out, id)) continue;
            cd_cand *c = &out->cand[out->ncand];
            c->plan = plan_for(h, cfg[i], &c->workspace, last);
            if (!c->plan) continue;
            c->ms = -1;
            snprintf(c->desc, sizeof c->desc, "v%d/%c%d %s", variant, mname[mi], (int)i, id);
            out->ncand++;
            added++;
            if (!all) break;
        }
        const char *tune = getenv("SISA_CUDA_CUDNN_TUNE");
        if (all && mi == 0 && got > 0 && tune && tune[0] == '2')
            added += sweep_knobs(h, graph, cfg[0], variant, out, last);
        for (int i = 0; i < nc; i++) cudnnBackendDestroyDescriptor(cfg[i]);
        cudnnBackendDestroyDescriptor(heur);
    }
    if (!added) {
        if (last[0]) snprintf(why, 160, "%s", last);
        else if (!listed) snprintf(why, 160, "cuDNN heuristics found no engine for this SDPA graph");
        else snprintf(why, 160, "cuDNN: every engine config listed was a duplicate");
    }
    return added;
}

/* Build the SDPA graph of node n and add the execution plans that finalise for it to out (all
 * candidates, or only the first, see gather). Returns how many were added; 0 = why says why.
 * variant bits: 1 = no (virtual) stats branch, 2 = comparison computed in fp32 (not boolean),
 * 4 = P (the softmax output feeding the second matmul) in the io dtype instead of fp32 */
static int build_plans(cudnnHandle_t h, const sc_node *n, bool causal, char *why, int variant, bool all,
                       cd_plan *out) {
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

    int added = 0;
    if (!b->failed) added = gather(h, graph, variant, all, out, why);
    for (int i = b->nd - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(b->descs[i]);
    return added;
}

/* Time every candidate on first use? SISA_CUDA_CUDNN_TUNE=1: yes; =2: yes, with the knob sweep
 * (sweep_knobs); unset or 0: no, cuDNN's first choice (heuristics mode A). Off by default: on the
 * H100 (cuDNN 9.19) mode A's first config was the fastest candidate for every SDPA shape measured
 * (docs/CUDA.md), and building the candidates' plans costs 0.2-1.9 s at first use. Returns 0-2. */
static int tune_level(const sc_node *n) {
    (void)n;
    const char *e = getenv("SISA_CUDA_CUDNN_TUNE");
    if (!e || !e[0] || e[0] == '0') return 0;
    return e[0] == '2' ? 2 : 1;
}

static int make_key(const sc_node *n, int64_t key[32]) {
    int k = 0;
    key[k++] = n->src[0].dt;
    key[k++] = n->ip[0] != 0;
    key[k++] = tune_level(n); /* a tuned and an untuned plan can coexist (benchmarks compare them) */
    for (int t = 0; t < 4; t++) {
        const sc_tensor *x = t == 3 ? &n->dst : &n->src[t];
        for (int i = 0; i < 4; i++) key[k++] = x->ne[i];
        for (int i = 0; i < 3; i++) key[k++] = x->nb[i];
    }
    return k;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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
        const bool all = tune_level(n) > 0, trace = getenv("SISA_CUDA_TRACE") != NULL;
        /* graph variants tried in order (tuning: every variant's configs are candidates; else the
         * first that builds); the first refusal's message is the one reported */
        char why[160] = "";
        static const int order[8] = {4, 5, 6, 7, 0, 1, 2, 3};
        for (int vi = 0; vi < 8 && (all || found->ncand == 0) && found->ncand < CD_MAX_CAND; vi++) {
            const int v = order[vi];
            const double t0 = now_ms();
            const int got = build_plans(c->handle, n, n->ip[0] != 0, why, v, all, found);
            if (trace)
                fprintf(stderr, "cuda: cuDNN SDPA graph variant %d: %d plan(s) in %.0f ms%s%s\n", v, got,
                        now_ms() - t0, got ? "" : ": ", got ? "" : why);
            if (vi == 0 && !got) snprintf(found->why, sizeof found->why, "%s", why);
        }
        found->ok = found->ncand > 0;
        if (found->ok) {
            found->plan = found->cand[0].plan;
            found->workspace = found->cand[0].workspace;
        }
        found->tuned = found->ncand <= 1;
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

/* Execute plan on s's stream with node n's pointers (caller holds the device lock: one handle per
 * device, its stream set per call). */
static cudnnStatus_t execute(sc_cudnn_state *c, sc_stream *s, cudnnBackendDescriptor_t plan, const sc_node *n) {
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
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(c->handle, s->stream);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(c->handle, plan, vp);
    if (vp) cudnnBackendDestroyDescriptor(vp);
    return st;
}

/* First use of a key with several candidate plans: time each on this node's own tensors (one
 * warm-up, then 3 runs between CUDA events on the stream), keep the fastest, drop the others.
 * The output is written by the chosen plan right after. A candidate that fails or needs more
 * workspace than the stream has is skipped. Caller holds the device lock. */
static void tune(sc_cudnn_state *c, sc_stream *s, cd_plan *p, const sc_node *n) {
    const bool trace = getenv("SISA_CUDA_TRACE") != NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        cudaGetLastError();
        if (e0) cudaEventDestroy(e0);
        p->tuned = true; /* keep cuDNN's first choice */
        return;
    }
    int best = -1;
    for (int i = 0; i < p->ncand; i++) {
        cd_cand *k = &p->cand[i];
        k->ms = -1;
        if ((size_t)k->workspace > s->workspace_size) continue;
        cudnnStatus_t st = execute(c, s, k->plan, n);
        if (st == CUDNN_STATUS_SUCCESS && cudaEventRecord(e0, s->stream) == cudaSuccess) {
            for (int r = 0; r < 3 && st == CUDNN_STATUS_SUCCESS; r++) st = execute(c, s, k->plan, n);
            float ms = 0;
            if (st == CUDNN_STATUS_SUCCESS && cudaEventRecord(e1, s->stream) == cudaSuccess &&
                cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess)
                k->ms = ms / 3;
        }
        cudaGetLastError();
        if (k->ms >= 0 && (best < 0 || k->ms < p->cand[best].ms)) best = i;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (best < 0) best = 0;
    if (trace)
        for (int i = 0; i < p->ncand; i++)
            fprintf(stderr, "cuda: cuDNN SDPA candidate %-44s %8.3f ms%s\n", p->cand[i].desc, p->cand[i].ms,
                    i == best ? "  <- chosen" : "");
    for (int i = 0; i < p->ncand; i++)
        if (i != best) {
            cudnnBackendDestroyDescriptor(p->cand[i].plan);
            p->cand[i].plan = NULL;
        }
    p->cand[0] = p->cand[best];
    p->ncand = 1;
    p->plan = p->cand[0].plan;
    p->workspace = p->cand[0].workspace;
    p->tuned = true;
}

sisa_status sc_cudnn_sdpa_run(sc_stream *s, const sisa_tensor *node, const sc_node *n) {
    (void)node;
    sc_device *d = s->dev;
    sc_cudnn_state *c = d->cudnn;
    if (!c) return sisa_err(SISA_UNSUPPORTED, "cuda: cuDNN is not available: %s", d->cudnn_reason);
    cd_plan *p = get_plan(d, n);
    if (!p || !p->ok) return sisa_err(SISA_UNSUPPORTED, "cuda: cuDNN SDPA plan: %s", p ? p->why : "no memory");
    pthread_mutex_lock(&d->lock);
    if (!p->tuned) tune(c, s, p, n);
    sisa_status rs = SISA_OK;
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
    if ((size_t)p->workspace > s->workspace_size)
        rs = sisa_err(SISA_UNSUPPORTED, "cuda: cuDNN SDPA wants %lld bytes of workspace (stream has %zu)",
                      (long long)p->workspace, s->workspace_size);
    else
        st = execute(c, s, p->plan, n);
    c->runs++;
    pthread_mutex_unlock(&d->lock);
    if (rs == SISA_OK && st != CUDNN_STATUS_SUCCESS) {
        char msg[256] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        rs = sisa_err(SISA_INTERNAL, "cuda: cudnnBackendExecute (SDPA, %s): %s%s%s", p->cand[0].desc,
                      cudnnGetErrorString(st), msg[0] ? ": " : "", msg);
    }
    return rs;
}
