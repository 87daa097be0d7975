/*
 * cuda_backend.c — the CUDA backend's registry entry, devices, buffers and streams, and the
 * dispatcher.
 *
 * Probing calls cudaGetDeviceCount; any failure (no driver, the stub libcuda of CI: error 35,
 * cudaErrorInsufficientDriver) makes the backend absent with the cudaError_t named — never an
 * abort. A sisa_stream is one cudaStream_t plus a workspace for cuBLASLt/cuDNN; graph_compute
 * launches every node asynchronously on it and checks each launch; synchronize waits and reports
 * asynchronous device errors. Kernel choice is ONE function, sc_select, which both supports_op
 * and graph_compute call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

_Static_assert((int)SC_F32 == (int)SISA_F32 && (int)SC_F16 == (int)SISA_F16 && (int)SC_BF16 == (int)SISA_BF16 && (int)SC_I32 == (int)SISA_I32,
               "sc dtype numbering must match sisa_dtype");
_Static_assert((int)SC_OP_CPY == (int)SISA_OP_CPY && (int)SC_OP_EMBED == (int)SISA_OP_EMBED &&
                   (int)SC_OP_RMS_NORM == (int)SISA_OP_RMS_NORM && (int)SC_OP_ROPE == (int)SISA_OP_ROPE &&
                   (int)SC_OP_ADD == (int)SISA_OP_ADD && (int)SC_OP_SCALE == (int)SISA_OP_SCALE &&
                   (int)SC_OP_MATMUL == (int)SISA_OP_MATMUL && (int)SC_OP_SOFTMAX == (int)SISA_OP_SOFTMAX &&
                   (int)SC_OP_ARGMAX == (int)SISA_OP_ARGMAX && (int)SC_OP_SWIGLU == (int)SISA_OP_SWIGLU &&
                   (int)SC_OP_SSM_DECAY == (int)SISA_OP_SSM_DECAY &&
                   (int)SC_OP_SSM_CHANNELS == (int)SISA_OP_SSM_CHANNELS && (int)SC_OP_AUGMENT == (int)SISA_OP_AUGMENT &&
                   (int)SC_OP_SDPA == (int)SISA_OP_SDPA,
               "sc op numbering must match enum sisa_op");

#define WORKSPACE_BYTES ((size_t)64 << 20)
#define ATTN_COUNTERS 16384 /* (b, h, query) triples the one-kernel decode SDPA can count */

sisa_status sc_cuda_err(cudaError_t e, const char *what) {
    return sisa_err(e == cudaErrorMemoryAllocation ? SISA_OUT_OF_MEMORY : SISA_DEVICE_LOST,
                    "cuda: %s: %s (cudaError_t %d: %s)", what, cudaGetErrorName(e), (int)e,
                    cudaGetErrorString(e));
}

const char *sc_describe(const sisa_tensor *node, char *buf, size_t len) {
    return sisa_tensor_describe(node, buf, len);
}

const char *sc_kernel_name(sc_kernel k) {
    static const char *names[] = {"none", "elementwise", "rms_norm", "rope", "softmax", "argmax",
                                  "ssm_decay", "ssm_channels", "matmul/cublaslt",
                                  "matmul/fallback", "sdpa/cudnn", "sdpa/own-wmma",
                                  "sdpa/own-scalar", "sdpa/own-fa", "matmul/gemv",
                                  "sdpa/decode"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* On a device of compute capability >= 9.0 the own kernels are launched as programmatic
 * dependents (sc_common.cuh); SISA_CUDA_PDL=0 turns it off. Read per launch: tests switch it
 * between models. */
int sc_pdl_on(void) {
    const char *e = getenv("SISA_CUDA_PDL");
    if (e && e[0] == '0') return 0;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return major >= 9;
}

/* ---- engine node -> kernel node ---- */

static void *dev_addr(const sisa_tensor *t) {
    return t->buffer ? (char *)t->buffer->ctx + t->offset : NULL;
}

static bool tensor_from(const sisa_tensor *t, sc_tensor *o, char *reason) {
    memset(o, 0, sizeof *o);
    if (!t) return true;
    size_t es = sisa_dtype_size(t->dtype);
    o->p = dev_addr(t);
    o->dt = (int)t->dtype;
    for (int i = 0; i < 4; i++) {
        o->ne[i] = t->shape[i];
        if (t->stride[i] % (int64_t)es) {
            if (reason)
                snprintf(reason, SISA_REASON_LEN,
                         "tensor '%s' stride %d (%lld bytes) is not a multiple of its element size",
                         t->name, i, (long long)t->stride[i]);
            return false;
        }
        o->nb[i] = t->stride[i] / (int64_t)es;
    }
    if (((uintptr_t)t->offset % es) != 0) {
        if (reason) snprintf(reason, SISA_REASON_LEN, "tensor '%s' offset is misaligned", t->name);
        return false;
    }
    return true;
}

bool sc_node_from(const sisa_tensor *node, sc_node *n, char *reason) {
    memset(n, 0, sizeof *n);
    n->op = node->op;
    if (!tensor_from(node, &n->dst, reason)) return false;
    if (!sisa_tensor_is_contiguous(node)) {
        if (reason) snprintf(reason, SISA_REASON_LEN, "destination is not contiguous");
        return false;
    }
    for (int i = 0; i < 6; i++)
        if (!tensor_from(node->src[i], &n->src[i], reason)) return false;
    memcpy(n->fp, node->fparams, sizeof n->fp);
    memcpy(n->ip, node->iparams, sizeof n->ip);
    return true;
}

/* ---- the one selection function ---- */

static bool dtypes_ok(const sisa_tensor *node, char *reason) {
    for (int i = -1; i < SISA_MAX_SRC; i++) {
        const sisa_tensor *t = i < 0 ? node : node->src[i];
        if (t && t->dtype == SISA_F64) {
            snprintf(reason, SISA_REASON_LEN, "f64 tensors are host-side only ('%s')", t->name);
            return false;
        }
    }
    return true;
}

static sc_kernel select_sdpa(sc_device *d, const sisa_tensor *node, char *reason) {
    sc_node n;
    if (!sc_node_from(node, &n, reason)) return SC_K_NONE;
    const size_t optin = d->prop.sharedMemPerBlockOptin;
    /* SISA_CUDA_SDPA forces a path (benchmarks, tests): "cudnn" (then the own ones), "own" (the
     * fast own kernel, then wmma, then scalar), "wmma", "scalar". */
    const char *force = getenv("SISA_CUDA_SDPA");
    if (force && !force[0]) force = NULL;
    char why[SISA_REASON_LEN] = "";
    /* a few queries (decode steps): the split-key kernel, whatever the dtypes */
    if (!force || strcmp(force, "decode") == 0) {
        size_t ws = sc_decode_attn_workspace(&n);
        if (ws && ws <= WORKSPACE_BYTES) return SC_K_SDPA_DECODE;
    }
    if (!force || strcmp(force, "cudnn") == 0) {
        if (sc_cudnn_sdpa_accepts(d, node, why)) return SC_K_SDPA_CUDNN;
    }
    if (!force || strcmp(force, "cudnn") == 0 || strcmp(force, "own") == 0) {
        size_t sm = sc_sdpa_fa_smem(&n);
        if (sm && sm <= optin) return SC_K_SDPA_FA;
    }
    if (!force || strcmp(force, "scalar") != 0) {
        size_t sm = sc_sdpa_smem(&n, SC_SDPA_WMMA);
        if (sm && sm <= optin) return SC_K_SDPA_WMMA;
    }
    size_t sm = sc_sdpa_smem(&n, SC_SDPA_SCALAR);
    if (sm && sm <= optin) return SC_K_SDPA_SCALAR;
    snprintf(reason, SISA_REASON_LEN,
             "SDPA with d_qk=%lld, d_v=%lld needs %zu bytes of shared memory (device: %zu); "
             "d_v must be <= 256%s%s",
             (long long)node->src[0]->shape[3], (long long)node->src[2]->shape[3], sm, optin,
             why[0] ? "; cuDNN: " : "", why);
    return SC_K_NONE;
}

sc_kernel sc_select(sc_device *d, const sisa_tensor *node, char *reason) {
    char dummy[SISA_REASON_LEN];
    if (!reason) reason = dummy;
    reason[0] = '\0';
    if (!dtypes_ok(node, reason)) return SC_K_NONE;
    if ((node->dtype == SISA_BF16 || (node->src[0] && node->src[0]->dtype == SISA_BF16)) &&
        d->prop.major < 8) {
        snprintf(reason, SISA_REASON_LEN, "bf16 needs compute capability >= 8.0 (device: %d.%d)",
                 d->prop.major, d->prop.minor);
        return SC_K_NONE;
    }
    sc_node n;
    if (node->op != SISA_OP_NONE && node->op != SISA_OP_VIEW && !sc_node_from(node, &n, reason))
        return SC_K_NONE;
    switch (node->op) {
    case SISA_OP_CPY:
    case SISA_OP_EMBED:
    case SISA_OP_ADD:
    case SISA_OP_SCALE:
    case SISA_OP_SWIGLU:
    case SISA_OP_AUGMENT: return SC_K_ELEMENTWISE;
    case SISA_OP_RMS_NORM: return SC_K_RMS_NORM;
    case SISA_OP_ROPE: return SC_K_ROPE;
    case SISA_OP_SOFTMAX: return SC_K_SOFTMAX;
    case SISA_OP_ARGMAX: return SC_K_ARGMAX;
    case SISA_OP_SSM_DECAY: return SC_K_SSM_DECAY;
    case SISA_OP_SSM_CHANNELS: return SC_K_SSM_CHANNELS;
    case SISA_OP_MATMUL: {
        char why[SISA_REASON_LEN];
        const char *force = getenv("SISA_CUDA_MATMUL");
        /* few rows against one matrix (decode projections): the GEMV kernel, any float dtypes;
         * SISA_CUDA_MATMUL=lt or =fallback skips it */
        if (!(force && force[0]) && sc_gemv_takes(&n)) return SC_K_GEMV;
        if (!(force && strcmp(force, "fallback") == 0) && sc_matmul_lt_accepts(d, node, why))
            return SC_K_MATMUL_LT;
        int64_t batch = node->shape[0] * node->shape[1];
        if (batch > 65535 || (node->shape[2] + 15) / 16 > 65535) {
            snprintf(reason, SISA_REASON_LEN, "cuBLASLt: %s; fallback: grid too large", why);
            return SC_K_NONE;
        }
        return SC_K_MATMUL_FALLBACK;
    }
    case SISA_OP_SDPA:
        if (node->src[0]->shape[0] * node->src[0]->shape[1] > 65535) {
            snprintf(reason, SISA_REASON_LEN, "SDPA with B*H > 65535");
            return SC_K_NONE;
        }
        return select_sdpa(d, node, reason);
    default:
        snprintf(reason, SISA_REASON_LEN, "op %s has no CUDA kernel", sisa_op_name(node->op));
        return SC_K_NONE;
    }
}

/* ---- buffers: ctx = the device pointer ---- */

static sisa_status set_device(sc_device *d) {
    cudaError_t e = cudaSetDevice(d->ordinal);
    return e == cudaSuccess ? SISA_OK : sc_cuda_err(e, "cudaSetDevice");
}

static sc_device *buf_dev(sisa_buffer *b) { return b->device->ctx; }

static void buf_free(sisa_buffer *b) {
    if (!b) return;
    cudaSetDevice(buf_dev(b)->ordinal);
    cudaFree(b->ctx);
    free(b);
}

static sisa_status buf_range(sisa_buffer *b, size_t off, size_t n, const char *what) {
    if (off > b->size || n > b->size - off)
        return sisa_err(SISA_INVALID_ARG, "cuda buffer: %s [%zu, %zu) past its %zu bytes", what,
                        off, off + n, b->size);
    return SISA_OK;
}

static sisa_status buf_write(sisa_buffer *b, size_t off, const void *src, size_t n) {
    SISA_TRY(buf_range(b, off, n, "write"));
    SISA_TRY(set_device(buf_dev(b)));
    cudaError_t e = cudaMemcpy((char *)b->ctx + off, src, n, cudaMemcpyHostToDevice);
    /* from pageable memory cudaMemcpy may return before the DMA lands, and the streams are
     * non-blocking: wait for the legacy stream so that later work on them sees the bytes */
    if (e == cudaSuccess) e = cudaStreamSynchronize(cudaStreamLegacy);
    return e == cudaSuccess ? SISA_OK : sc_cuda_err(e, "cudaMemcpy host->device (buffer write)");
}

#define PINNED_BYTES ((size_t)4 << 20)

static sisa_status buf_read(sisa_buffer *b, size_t off, void *dst, size_t n) {
    SISA_TRY(buf_range(b, off, n, "read"));
    sc_device *d = buf_dev(b);
    SISA_TRY(set_device(d));
    /* small reads (a decode step's logits) through a page-locked buffer: a copy into pageable
     * memory goes through the driver's staging in pieces and took ~45 us for 200 KB */
    if (n <= PINNED_BYTES) {
        pthread_mutex_lock(&d->lock);
        if (!d->pinned && cudaMallocHost(&d->pinned, PINNED_BYTES) != cudaSuccess) {
            d->pinned = NULL;
            cudaGetLastError();
        }
        if (d->pinned) {
            cudaError_t e = cudaMemcpy(d->pinned, (char *)b->ctx + off, n, cudaMemcpyDeviceToHost);
            if (e == cudaSuccess) memcpy(dst, d->pinned, n);
            pthread_mutex_unlock(&d->lock);
            return e == cudaSuccess ? SISA_OK : sc_cuda_err(e, "cudaMemcpy device->host (buffer read)");
        }
        pthread_mutex_unlock(&d->lock);
    }
    cudaError_t e = cudaMemcpy(dst, (char *)b->ctx + off, n, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? SISA_OK : sc_cuda_err(e, "cudaMemcpy device->host (buffer read)");
}

static sisa_status buf_fill(sisa_buffer *b, size_t off, uint8_t v, size_t n) {
    SISA_TRY(buf_range(b, off, n, "fill"));
    SISA_TRY(set_device(buf_dev(b)));
    cudaError_t e = cudaMemset((char *)b->ctx + off, v, n);
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    return e == cudaSuccess ? SISA_OK : sc_cuda_err(e, "cudaMemset (buffer fill)");
}

static const sisa_buffer_iface cuda_buffer_iface = {
    .free = buf_free, .write = buf_write, .read = buf_read, .fill = buf_fill};

static sisa_status dev_buffer_alloc(sisa_device *dv, size_t size, sisa_buffer **out) {
    sc_device *d = dv->ctx;
    SISA_TRY(set_device(d));
    sisa_buffer *b = calloc(1, sizeof *b);
    if (!b) return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory");
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size ? size : 1);
    if (e != cudaSuccess) {
        free(b);
        cudaGetLastError();
        return sc_cuda_err(e, "cudaMalloc");
    }
    *b = (sisa_buffer){.iface = &cuda_buffer_iface, .ctx = p, .device = dv, .size = size};
    *out = b;
    return SISA_OK;
}

/* ---- streams ---- */

static void stream_free(sisa_stream *st) {
    if (!st) return;
    sc_stream *s = st->ctx;
    if (s) {
        cudaSetDevice(s->dev->ordinal);
        cudaStreamSynchronize(s->stream);
        sc_prof_free(s);
        sc_mega_stream_free(s);
        cudaFree(s->workspace);
        cudaFree(s->attn_count);
        cudaStreamDestroy(s->stream);
        free(s);
    }
    free(st);
}

static sisa_status node_fail(sisa_status st, const sisa_tensor *n, int i, sc_kernel k) {
    char d[160];
    return sisa_err_prefix(st, "backend 'cuda' node %d %s (op %s, kernel %s)", i,
                           sisa_tensor_describe(n, d, sizeof d), sisa_op_name(n->op),
                           sc_kernel_name(k));
}

void sc_attn_choose(const sc_stream *s, sc_attn_choice *c) {
    /* the split kernel, blocks per (b, h, query) from the SM count, the last one combines;
     * SISA_CUDA_DECODE_ATTN=old: the chunk kernels (decode_attn.cu). SISA_CUDA_ATTN_ONE=0:
     * no counters — old: partial + combine as two kernels; split: one block per (b, h, query).
     * SISA_CUDA_DECODE_SPLIT=N: N blocks per (b, h, query) instead of the SM count's (bench);
     * SISA_CUDA_DECODE_ATTN=cluster (sm_90+, else the default): 8-block clusters combining in
     * distributed shared memory (measurement) */
    const char *one = getenv("SISA_CUDA_ATTN_ONE"), *which = getenv("SISA_CUDA_DECODE_ATTN");
    const char *split = getenv("SISA_CUDA_DECODE_SPLIT");
    c->count = one && one[0] == '0' ? NULL : s->attn_count;
    c->old = which && strcmp(which, "old") == 0;
    c->cluster = which && strcmp(which, "cluster") == 0 && s->dev->prop.major >= 9;
    c->split = split ? atoi(split) : 0;
}

/* b_const: for SC_K_GEMV, sc_gemv_b_const of its b. While a persistent-kernel recording is built
 * (s->mega), the launch becomes its task instead (cuda_mega.c). */
static cudaError_t launch(sc_stream *s, sc_kernel k, const sc_node *n, int b_const) {
    if (s->mega) return sc_mega_add_kernel(s, k, n, b_const);
    switch (k) {
    case SC_K_ELEMENTWISE: return sc_launch_elementwise(n, s->stream);
    case SC_K_RMS_NORM: return sc_launch_rms_norm(n, s->stream);
    case SC_K_ROPE: return sc_launch_rope(n, s->stream);
    case SC_K_SOFTMAX: return sc_launch_softmax(n, s->stream);
    case SC_K_ARGMAX: return sc_launch_argmax(n, s->stream);
    case SC_K_SSM_DECAY: return sc_launch_ssm_decay(n, s->stream);
    case SC_K_SSM_CHANNELS: return sc_launch_ssm_channels(n, s->stream);
    case SC_K_MATMUL_FALLBACK: return sc_launch_matmul_fallback(n, s->stream);
    case SC_K_SDPA_WMMA: return sc_launch_sdpa(n, SC_SDPA_WMMA, s->stream);
    case SC_K_SDPA_SCALAR: return sc_launch_sdpa(n, SC_SDPA_SCALAR, s->stream);
    case SC_K_SDPA_FA: return sc_launch_sdpa_fa(n, s->stream);
    case SC_K_GEMV: return sc_launch_gemv(n, s->dev->prop.multiProcessorCount, b_const, s->stream);
    case SC_K_SDPA_DECODE: {
        if (sc_decode_attn_workspace(n) > s->workspace_size) return cudaErrorInvalidValue;
        sc_attn_choice c;
        sc_attn_choose(s, &c);
        if (c.old) return sc_launch_decode_attn(n, s->workspace, c.count, s->n_attn_count, s->stream);
        return sc_launch_decode_attn_split(n, s->workspace, c.count, s->n_attn_count,
                                           s->dev->prop.multiProcessorCount, c.split, c.cluster, s->stream);
    }
    default: return cudaErrorInvalidValue;
    }
}

static sisa_status compute_node(sc_stream *s, sisa_graph *g, int i, int first, const char **kind);

static sisa_status stream_compute(sisa_stream *st, sisa_graph *g, int first, int last) {
    sc_stream *s = st->ctx;
    SISA_TRY(set_device(s->dev));
    const bool prof = sc_prof_on(s);
    if (prof) sc_prof_graph(s, g, first);
    for (int i = first; i < last; i++) {
        sisa_tensor *node = g->nodes[i];
        if (node->op == SISA_OP_VIEW || node->op == SISA_OP_NONE) continue;
        const char *kind = "";
        if (prof) sc_prof_start(s);
        SISA_TRY(compute_node(s, g, i, first, &kind));
        if (prof) sc_prof_stop(s, node, kind);
    }
    return SISA_OK;
}

/* Launch node i (or the fused kernel that covers it, or nothing when one already did);
 * *kind names what ran (profiling). */
static sisa_status compute_node(sc_stream *s, sisa_graph *g, int i, int first, const char **kind) {
    sisa_tensor *node = g->nodes[i];
    const bool covered = node == s->gemv_skip[0] || node == s->gemv_skip[1] || node == s->fuse_skip[0] ||
                         node == s->fuse_skip[1]; /* by a fused kernel already launched */
    s->last_covered = covered;
    sisa_status fs;
    if (sc_fuse_node(s, g, i, first, &fs)) { /* SSM_CHANNELS+AUGMENT (cuda_fuse.c) */
        *kind = covered ? "(in-fused)" : "fused-ssm-augment";
        return fs != SISA_OK ? node_fail(fs, node, i, SC_K_SSM_CHANNELS) : SISA_OK;
    }
    sisa_status gs;
    if (sc_gemv_fuse_node(s, g, i, &gs)) { /* GEMV + RMS_NORM/SWIGLU/ADD (cuda_fuse_gemv.c) */
        *kind = covered ? "(in-fused)" : "fused-gemv";
        return gs != SISA_OK ? node_fail(gs, node, i, SC_K_GEMV) : SISA_OK;
    }
    char reason[SISA_REASON_LEN] = "";
    sc_kernel k = sc_select(s->dev, node, reason);
    if (k == SC_K_NONE)
        return node_fail(sisa_err(SISA_UNSUPPORTED, "%s", reason), node, i, k);
    sc_node n;
    if (!sc_node_from(node, &n, reason))
        return node_fail(sisa_err(SISA_UNSUPPORTED, "%s", reason), node, i, k);
    if (node->op == SISA_OP_MATMUL || node->op == SISA_OP_SDPA) {
        /* SISA_CUDA_TRACE=1: name the path each SDPA/MATMUL node takes when it changes */
        if (getenv("SISA_CUDA_TRACE") && strcmp(s->last_path, sc_kernel_name(k)) != 0)
            fprintf(stderr, "cuda: %s '%s' -> %s\n", sisa_op_name(node->op), node->name,
                    sc_kernel_name(k));
        snprintf(s->last_path, sizeof s->last_path, "%s", sc_kernel_name(k));
    }
    *kind = sc_kernel_name(k);
    sisa_status rs = SISA_OK;
    if (s->mega && (k == SC_K_MATMUL_LT || k == SC_K_SDPA_CUDNN)) /* library calls: no task for them */
        sc_mega_refuse(s, "node %d '%s' (%s) runs a library kernel (%s)", i, node->name,
                       sisa_op_name(node->op), sc_kernel_name(k));
    else if (k == SC_K_MATMUL_LT)
        rs = sc_matmul_lt_run(s, node, &n);
    else if (k == SC_K_SDPA_CUDNN)
        rs = sc_cudnn_sdpa_run(s, node, &n);
    else {
        cudaError_t e = launch(s, k, &n, k == SC_K_GEMV && sc_gemv_b_const(s, g, node->src[1]));
        if (e != cudaSuccess) rs = sc_cuda_err(e, "kernel launch");
    }
    if (rs != SISA_OK) return node_fail(rs, node, i, k);
    return SISA_OK;
}

static sisa_status stream_sync(sisa_stream *st) {
    sc_stream *s = st->ctx;
    SISA_TRY(set_device(s->dev));
    cudaError_t e = cudaStreamSynchronize(s->stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess)
        return sisa_err_prefix(sc_cuda_err(e, "cudaStreamSynchronize"), "backend 'cuda' device %d",
                               s->dev->ordinal);
    return sc_mega_check(s); /* a persistent kernel's barrier that timed out */
}

static const sisa_stream_iface cuda_stream_iface = {.free = stream_free,
                                                    .graph_compute = stream_compute,
                                                    .synchronize = stream_sync,
                                                    .graph_record = sc_graph_record,
                                                    .graph_update = sc_graph_update,
                                                    .graph_replay = sc_graph_replay,
                                                    .graph_release = sc_graph_release};

static sisa_status dev_stream_new(sisa_device *dv, sisa_stream **out) {
    sc_device *d = dv->ctx;
    SISA_TRY(set_device(d));
    sisa_stream *st = calloc(1, sizeof *st);
    sc_stream *s = calloc(1, sizeof *s);
    if (!st || !s) {
        free(st);
        free(s);
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory for a stream");
    }
    s->dev = d;
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) {
        s->workspace_size = WORKSPACE_BYTES;
        e = cudaMalloc(&s->workspace, s->workspace_size);
        if (e == cudaSuccess) {
            s->n_attn_count = ATTN_COUNTERS;
            e = cudaMalloc((void **)&s->attn_count, (size_t)ATTN_COUNTERS * sizeof(unsigned));
            if (e == cudaSuccess)
                e = cudaMemsetAsync(s->attn_count, 0, (size_t)ATTN_COUNTERS * sizeof(unsigned), s->stream);
            if (e != cudaSuccess) {
                cudaFree(s->attn_count);
                cudaFree(s->workspace);
            }
        }
        if (e != cudaSuccess) cudaStreamDestroy(s->stream);
    }
    if (e != cudaSuccess) {
        free(st);
        free(s);
        return sc_cuda_err(e, "creating a stream and its workspace");
    }
    *st = (sisa_stream){.iface = &cuda_stream_iface, .ctx = s, .device = dv};
    *out = st;
    return SISA_OK;
}

/* ---- devices ---- */

static bool dev_supports(sisa_device *dv, const sisa_tensor *node, char *reason) {
    if (node->op == SISA_OP_VIEW || node->op == SISA_OP_NONE) return true;
    return sc_select(dv->ctx, node, reason) != SC_K_NONE;
}

static void dev_free(sisa_device *dv) {
    if (!dv) return;
    sc_device *d = dv->ctx;
    if (d) {
        cudaSetDevice(d->ordinal);
        sc_cudnn_free(d);
        sc_matmul_plans_free(d);
        if (d->pinned) cudaFreeHost(d->pinned);
        if (d->lt) cublasLtDestroy(d->lt);
        pthread_mutex_destroy(&d->lock);
        free(d);
    }
    free(dv);
}

static const sisa_device_iface cuda_device_iface = {.free = dev_free,
                                                    .buffer_alloc = dev_buffer_alloc,
                                                    .stream_new = dev_stream_new,
                                                    .supports_op = dev_supports};

static sisa_status cuda_device_open(int index, sisa_device **out) {
    sisa_device *dv = calloc(1, sizeof *dv);
    sc_device *d = calloc(1, sizeof *d);
    if (!dv || !d) {
        free(dv);
        free(d);
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory");
    }
    d->ordinal = index;
    pthread_mutex_init(&d->lock, NULL);
    dv->iface = &cuda_device_iface;
    dv->ctx = d;
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&d->prop, index);
    if (e != cudaSuccess) {
        sisa_status st = sc_cuda_err(e, "opening the device");
        dev_free(dv);
        return st;
    }
    cublasStatus_t cs = cublasLtCreate(&d->lt);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        dev_free(dv);
        return sisa_err(SISA_DEVICE_LOST, "cuda: cublasLtCreate failed (cublasStatus_t %d: %s)",
                        (int)cs, cublasLtGetStatusName(cs));
    }
    sc_cudnn_init(d);

    sisa_device_info *in = &dv->info;
    snprintf(in->name, sizeof in->name, "%s", d->prop.name);
    snprintf(in->vendor, sizeof in->vendor, "NVIDIA");
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(in->driver, sizeof in->driver, "CUDA driver %d.%d, runtime %d.%d, sm_%d%d, cuDNN: %s",
             drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, d->prop.major,
             d->prop.minor, d->cudnn ? "yes" : d->cudnn_reason);
    in->memory_bytes = d->prop.totalGlobalMem;
    in->max_buffer_bytes = d->prop.totalGlobalMem;
    in->max_storage_range = 0;
    in->has_f16 = d->prop.major >= 6;
    in->has_bf16 = d->prop.major >= 8;
    in->has_f64 = 1;
    in->subgroup_size = d->prop.warpSize;
    in->has_coopmat = d->prop.major >= 7; /* tensor cores */
    in->is_cpu = 0;
    /* Qhat/Khat widths padded to a multiple of 32 (80 -> 96 for d_s = 16): cuDNN's attention
     * runs faster at 96 than at 80 (docs/CUDA.md). SISA_CUDA_QK_ALIGN overrides (benchmarks). */
    const char *al = getenv("SISA_CUDA_QK_ALIGN");
    dv->augment_align = al && atoi(al) > 0 ? atoi(al) : 32;
    *out = dv;
    return SISA_OK;
}

static int cuda_probe(char *reason) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(reason, SISA_REASON_LEN, "cudaGetDeviceCount failed: %s (cudaError_t %d: %s)",
                 cudaGetErrorName(e), (int)e, cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    if (n == 0) {
        snprintf(reason, SISA_REASON_LEN, "the CUDA driver reports no device");
        return -1;
    }
    return n;
}

const sisa_backend_def sisa_backend_cuda = {
    .name = "cuda", .probe = cuda_probe, .device_open = cuda_device_open, .shutdown = NULL};
