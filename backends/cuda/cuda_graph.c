/*
 * cuda_graph.c — record / replay for the CUDA backend (backend.h's optional graph_record,
 * graph_update, graph_replay, graph_release): a decode step's ~300 launches are captured once
 * into a CUDA graph and replayed with one cudaGraphLaunch, so the host's per-launch cost (and
 * the per-node kernel selection of graph_compute) is paid once per recording, not per step.
 *
 * Recording runs the normal dispatcher (graph_compute) one node at a time under stream capture
 * and notes which captured kernel nodes each engine node produced (the capture's dependency set
 * before and after it: the stream is one chain). Updating a node after the caller changed its
 * params or addresses re-derives its sc_node and replaces the FIRST argument of each of its
 * kernels (cudaGraphExecKernelNodeSetParams): cuda_kernels.h's convention is that every own kernel
 * takes the node's sc_node by value first, and that later arguments depend only on shapes and
 * fixed addresses, which an update may not change (backend.h). A kernel whose first parameter is
 * not an sc_node (cuBLASLt, cuDNN) cannot be updated: SISA_UNSUPPORTED, and the caller computes
 * normally. SISA_CUDA_NO_GRAPH=1 turns recording off. SISA_CUDA_MEGA=1 records the nodes as the
 * task list of one persistent kernel instead where it can take them all (cuda_mega.c; this file
 * passes such recordings on), else as a CUDA graph here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

#define MAX_KERNELS_PER_NODE 8
#define MAX_ARGS 16

typedef struct rec_kernel {
    cudaGraphNode_t node;
    struct cudaKernelNodeParams p; /* as recorded; p.kernelParams points at `args` */
    void *args[MAX_ARGS];          /* [0] replaced by the new sc_node, the rest as recorded */
    bool ok;                       /* first parameter is an sc_node: updatable */
} rec_kernel;

typedef struct rec_node {
    int n;                                /* kernel nodes recorded for this engine node */
    rec_kernel k[MAX_KERNELS_PER_NODE];   /* in launch order */
    bool overflow;                        /* more than MAX_KERNELS_PER_NODE (not updatable) */
    bool covered;                         /* computed by a fused kernel recorded with an earlier
                                           * node: no kernel of its own to update */
} rec_node;

typedef struct sc_recording {
    int kind; /* SC_REC_GRAPH (cuda_internal.h) */
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    int first, last;
    rec_node *nodes; /* [last - first] */
} sc_recording;

static void rec_free(sc_recording *r) {
    if (!r) return;
    if (r->exec) cudaGraphExecDestroy(r->exec);
    if (r->graph) cudaGraphDestroy(r->graph);
    free(r->nodes);
    free(r);
}

/* The single node the capture's next launch would depend on (NULL at the start). */
static cudaError_t capture_tail(cudaStream_t st, cudaGraphNode_t *tail, size_t *n) {
    enum cudaStreamCaptureStatus cs;
    const cudaGraphNode_t *deps = NULL;
    const cudaGraphEdgeData *edges = NULL; /* asked for: programmatic edges (SISA_CUDA_PDL) are
                                             not default, and a query without it is "lossy" */
    size_t nd = 0;
    cudaError_t e = cudaStreamGetCaptureInfo(st, &cs, NULL, NULL, &deps, &edges, &nd);
    if (e != cudaSuccess) return e;
    if (cs != cudaStreamCaptureStatusActive) return cudaErrorStreamCaptureInvalidated;
    *n = nd;
    *tail = nd == 1 ? deps[0] : NULL;
    return cudaSuccess;
}

/* Kernel nodes between `before` (exclusive) and `after` (inclusive) on the captured chain. */
static void collect(rec_node *rn, cudaGraphNode_t before, cudaGraphNode_t after) {
    cudaGraphNode_t chain[MAX_KERNELS_PER_NODE * 4];
    int n = 0;
    for (cudaGraphNode_t x = after; x && x != before;) {
        if (n == (int)(sizeof chain / sizeof *chain)) {
            rn->overflow = true;
            return;
        }
        chain[n++] = x;
        size_t nd = 0;
        cudaGraphNode_t dep;
        cudaGraphEdgeData edge; /* see capture_tail */
        if (cudaGraphNodeGetDependencies(x, NULL, NULL, &nd) != cudaSuccess || nd != 1 ||
            cudaGraphNodeGetDependencies(x, &dep, &edge, &nd) != cudaSuccess) {
            cudaGetLastError();
            if (nd != 0) { /* the chain could not be followed back to `before`: not updatable */
                rn->overflow = true;
                return;
            }
            break; /* the first node of the capture */
        }
        x = dep;
    }
    if (before && n > 0 && !rn->overflow) {
        /* the walk must have stopped at `before` (a chain); else the nodes are unknown */
        size_t nd = 0;
        cudaGraphNode_t dep;
        cudaGraphEdgeData edge;
        if (cudaGraphNodeGetDependencies(chain[n - 1], NULL, NULL, &nd) != cudaSuccess || nd != 1 ||
            cudaGraphNodeGetDependencies(chain[n - 1], &dep, &edge, &nd) != cudaSuccess || dep != before) {
            cudaGetLastError();
            rn->overflow = true;
            return;
        }
    }
    for (int i = n - 1; i >= 0; i--) { /* launch order */
        enum cudaGraphNodeType t = cudaGraphNodeTypeEmpty;
        if (cudaGraphNodeGetType(chain[i], &t) != cudaSuccess || t != cudaGraphNodeTypeKernel) {
            rn->overflow = true; /* memcpy/memset/...: not an own kernel */
            continue;
        }
        if (rn->n == MAX_KERNELS_PER_NODE) {
            rn->overflow = true;
            return;
        }
        rec_kernel *rk = &rn->k[rn->n++];
        rk->node = chain[i];
        /* the launch as recorded (its argument values live in the graph node); can its first
         * parameter take a new sc_node? (arguments counted once, here, not per update) */
        size_t off = 0, size = 0;
        rk->ok = cudaGraphKernelNodeGetParams(chain[i], &rk->p) == cudaSuccess && rk->p.kernelParams &&
                 cudaFuncGetParamInfo(rk->p.func, 0, &off, &size) == cudaSuccess && off == 0 &&
                 size == sizeof(sc_node);
        int na = 0;
        while (rk->ok && na < MAX_ARGS && cudaFuncGetParamInfo(rk->p.func, (size_t)na, &off, &size) == cudaSuccess) {
            rk->args[na] = rk->p.kernelParams[na];
            na++;
        }
        if (na == MAX_ARGS) rk->ok = false;
        cudaGetLastError(); /* the probe past the last parameter */
        rk->p.kernelParams = rk->args;
        rk->p.extra = NULL;
    }
}

/* How many kernel (and other) nodes a recording holds: the launches per replay. */
static void count_nodes(sc_stream *s, const sc_recording *r, int first, int last) {
    size_t n = 0;
    if (cudaGraphGetNodes(r->graph, NULL, &n) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    cudaGraphNode_t *nodes = malloc((n ? n : 1) * sizeof *nodes);
    int kernels = 0, other = 0;
    if (nodes && cudaGraphGetNodes(r->graph, nodes, &n) == cudaSuccess) {
        for (size_t i = 0; i < n; i++) {
            enum cudaGraphNodeType t = cudaGraphNodeTypeEmpty;
            if (cudaGraphNodeGetType(nodes[i], &t) == cudaSuccess && t == cudaGraphNodeTypeKernel) kernels++;
            else other++;
        }
    }
    cudaGetLastError();
    free(nodes);
    char desc[96];
    snprintf(desc, sizeof desc, "%d kernel nodes, %d other nodes", kernels, other);
    sc_prof_recorded(s, "CUDA-graph", desc);
    if (getenv("SISA_CUDA_TRACE"))
        fprintf(stderr, "cuda: recorded nodes [%d, %d) as a CUDA graph of %d kernel nodes, %d other "
                        "nodes%s\n", first, last, kernels, other, sc_pdl_on() ? " (programmatic launches)" : "");
}

sisa_status sc_graph_record(sisa_stream *st, sisa_graph *g, int first, int last, void **out) {
    *out = NULL;
    const char *off = getenv("SISA_CUDA_NO_GRAPH");
    if (off && off[0] && strcmp(off, "0") != 0)
        return sisa_err(SISA_UNSUPPORTED, "cuda: graph recording is off (SISA_CUDA_NO_GRAPH)");
    sc_stream *s = st->ctx;
    const int mega = sc_mega_mode(); /* SISA_CUDA_MEGA: the persistent kernel, where it takes the nodes */
    if (mega) {
        char why[SISA_REASON_LEN] = "";
        if (sc_mega_record(st, g, first, last, out, why) == SISA_OK) return SISA_OK;
        if (getenv("SISA_CUDA_TRACE"))
            fprintf(stderr, "cuda: no persistent kernel for nodes [%d, %d): %s%s\n", first, last, why,
                    mega == 2 ? " (SISA_CUDA_MEGA=require: its replays fail)" : "; recording a CUDA graph");
        if (mega == 2) { /* tests: say so at replay instead of falling back */
            *out = sc_mega_refused(why);
            return *out ? SISA_OK : sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory");
        }
    }
    sc_recording *r = calloc(1, sizeof *r);
    if (!r || !(r->nodes = calloc((size_t)(last - first + 1), sizeof *r->nodes))) {
        free(r);
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory for a graph recording");
    }
    r->kind = SC_REC_GRAPH;
    r->first = first;
    r->last = last;
    cudaError_t e = cudaSetDevice(s->dev->ordinal);
    if (e == cudaSuccess) e = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        rec_free(r);
        return sisa_err_prefix(sc_cuda_err(e, "cudaStreamBeginCapture"), "backend 'cuda' recording");
    }
    sisa_status rs = SISA_OK;
    s->capturing = true;
    for (int i = first; i < last && rs == SISA_OK; i++) {
        cudaGraphNode_t before = NULL, after = NULL;
        size_t nb = 0, na = 0;
        e = capture_tail(s->stream, &before, &nb);
        s->last_covered = false;
        if (e == cudaSuccess) rs = st->iface->graph_compute(st, g, i, i + 1);
        r->nodes[i - first].covered = s->last_covered;
        if (e == cudaSuccess && rs == SISA_OK) e = capture_tail(s->stream, &after, &na);
        if (e != cudaSuccess) rs = sc_cuda_err(e, "stream capture");
        if (rs == SISA_OK && na > 1) r->nodes[i - first].overflow = true; /* not a chain */
        else if (rs == SISA_OK && after != before) collect(&r->nodes[i - first], before, after);
    }
    s->capturing = false;
    cudaGraph_t graph = NULL;
    e = cudaStreamEndCapture(s->stream, &graph);
    r->graph = graph;
    if (rs == SISA_OK && e != cudaSuccess) rs = sc_cuda_err(e, "cudaStreamEndCapture");
    if (rs == SISA_OK) {
        e = cudaGraphInstantiate(&r->exec, r->graph, 0);
        if (e != cudaSuccess) rs = sc_cuda_err(e, "cudaGraphInstantiate");
    }
    if (rs != SISA_OK) {
        cudaGetLastError();
        rec_free(r);
        return sisa_err_prefix(rs, "backend 'cuda': recording nodes [%d, %d) as a CUDA graph", first,
                               last);
    }
    if (getenv("SISA_CUDA_TRACE") || sc_prof_on(s)) count_nodes(s, r, first, last);
    *out = r;
    return SISA_OK;
}

sisa_status sc_graph_update(sisa_stream *st, void *rec, sisa_graph *g, int i) {
    if (*(const int *)rec == SC_REC_MEGA) return sc_mega_update(st, rec, g, i);
    sc_recording *r = rec;
    if (i < r->first || i >= r->last)
        return sisa_err(SISA_INVALID_ARG, "cuda graph update: node %d outside the recording", i);
    const sisa_tensor *node = g->nodes[i];
    rec_node *rn = &r->nodes[i - r->first];
    if (rn->covered) /* its values live in another node's fused kernel: replaying would use stale ones */
        return sisa_err(SISA_UNSUPPORTED, "cuda graph update: node %d '%s' is computed by a fused "
                        "kernel recorded with an earlier node and cannot be updated alone", i, node->name);
    if (node->op == SISA_OP_VIEW || node->op == SISA_OP_NONE || rn->n == 0) {
        if (rn->n == 0 && !rn->overflow) return SISA_OK; /* nothing launched for it */
    }
    if (rn->overflow)
        return sisa_err(SISA_UNSUPPORTED, "cuda graph update: node %d '%s' launched work that is "
                        "not a chain of own kernels", i, node->name);
    char reason[SISA_REASON_LEN] = "";
    sc_node n;
    if (!sc_node_from(node, &n, reason))
        return sisa_err(SISA_UNSUPPORTED, "cuda graph update: node %d '%s': %s", i, node->name, reason);
    for (int k = 0; k < rn->n; k++) {
        rec_kernel *rk = &rn->k[k];
        if (!rk->ok)
            return sisa_err(SISA_UNSUPPORTED, "cuda graph update: node %d '%s': kernel %d does not "
                            "take an sc_node first", i, node->name, k);
        rk->args[0] = &n;
        cudaError_t e = cudaGraphExecKernelNodeSetParams(r->exec, rk->node, &rk->p);
        if (e != cudaSuccess) {
            cudaGetLastError();
            return sisa_err(SISA_UNSUPPORTED, "cuda graph update: node %d '%s': "
                            "cudaGraphExecKernelNodeSetParams: %s", i, node->name, cudaGetErrorName(e));
        }
    }
    return SISA_OK;
}

sisa_status sc_graph_replay(sisa_stream *st, void *rec) {
    if (*(const int *)rec == SC_REC_MEGA) return sc_mega_replay(st, rec);
    sc_stream *s = st->ctx;
    sc_recording *r = rec;
    const bool prof = sc_prof_on(s);
    if (prof) sc_prof_replay(s, true);
    cudaError_t e = cudaGraphLaunch(r->exec, s->stream);
    if (prof && e == cudaSuccess) sc_prof_replay(s, false);
    return e == cudaSuccess ? SISA_OK
                            : sisa_err_prefix(sc_cuda_err(e, "cudaGraphLaunch"), "backend 'cuda' replay");
}

void sc_graph_release(sisa_stream *st, void *rec) {
    if (rec && *(const int *)rec == SC_REC_MEGA) {
        sc_mega_release(st, rec);
        return;
    }
    sc_stream *s = st->ctx;
    if (rec) cudaStreamSynchronize(s->stream);
    rec_free(rec);
}
