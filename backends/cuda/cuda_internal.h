/*
 * cuda_internal.h — the CUDA backend's private C interface: device and stream contexts, the one
 * kernel-selection function (used by supports_op AND graph_compute), cuBLASLt and cuDNN paths.
 */
#ifndef SISA_CUDA_INTERNAL_H
#define SISA_CUDA_INTERNAL_H

#include <pthread.h>

#include <cublasLt.h>

#include "backend.h"
#include "cuda_decode_kernels.h"
#include "cuda_kernels.h"
#include "cuda_mega.h"

typedef struct sc_matmul_plan sc_matmul_plan;
typedef struct sc_cudnn_state sc_cudnn_state;
typedef struct sc_mega_build sc_mega_build;
typedef struct sc_mega_rec sc_mega_rec;

typedef struct sc_device {
    int ordinal;
    struct cudaDeviceProp prop;
    cublasLtHandle_t lt;
    pthread_mutex_t lock; /* guards the plan caches */
    sc_matmul_plan *plans;
    int n_plans, cap_plans;
    sc_cudnn_state *cudnn; /* NULL when built without cuDNN or it failed to start */
    void *pinned;          /* page-locked bounce buffer for reads (guarded by lock), or NULL */
    char cudnn_reason[SISA_REASON_LEN];
} sc_device;

typedef struct sc_stream {
    sc_device *dev;
    cudaStream_t stream;
    void *workspace; /* cuBLASLt / cuDNN workspace */
    size_t workspace_size;
    char last_path[64]; /* which kernel the last SDPA/MATMUL node ran (bench/test reporting) */
    const sisa_tensor *gemv_skip[2]; /* nodes a fused GEMV already computed (cuda_fuse_gemv.c) */
    const sisa_tensor *fuse_skip[2]; /* AUGMENT nodes a fused kernel already computed (cuda_fuse.c) */
    unsigned *attn_count;            /* zeroed counters of the one-kernel decode SDPA, or NULL */
    int64_t n_attn_count;
    bool capturing;                  /* inside sc_graph_record's stream capture */
    bool last_covered;               /* the last node computed was covered by a fused kernel
                                      * launched for an earlier node (cuda_graph.c) */
    struct sc_prof *prof;            /* SISA_CUDA_PROFILE tables (cuda_profile.c), or NULL */
    sc_mega_build *mega;             /* non-NULL while a persistent-kernel recording is built:
                                      * the dispatcher's launches become its tasks (cuda_mega.c) */
    sc_mega_err *mega_err;           /* a stalled barrier's report (mapped host memory), or NULL */
    sc_mega_rec *mega_last;          /* the persistent-kernel recording replayed last, or NULL */
} sc_stream;

/* Kernel choice for a node: what supports_op reports and what graph_compute launches. */
typedef enum sc_kernel {
    SC_K_NONE = 0,
    SC_K_ELEMENTWISE,
    SC_K_RMS_NORM,
    SC_K_ROPE,
    SC_K_SOFTMAX,
    SC_K_ARGMAX,
    SC_K_SSM_DECAY,
    SC_K_SSM_CHANNELS,
    SC_K_MATMUL_LT,       /* cuBLASLt */
    SC_K_MATMUL_FALLBACK, /* own tiled kernel */
    SC_K_SDPA_CUDNN,      /* cuDNN fused SDPA (form A) */
    SC_K_SDPA_WMMA,       /* own flash attention, tensor cores */
    SC_K_SDPA_SCALAR,     /* own flash attention, fp32 */
    SC_K_SDPA_FA,         /* own flash attention, mma.sync + cp.async (sdpa_fa.cu) */
    SC_K_GEMV,            /* few-row MATMUL against one matrix (gemv.cu) */
    SC_K_SDPA_DECODE,     /* few-query split-key SDPA (decode_attn.cu) */
} sc_kernel;

const char *sc_kernel_name(sc_kernel k);
sc_kernel sc_select(sc_device *d, const sisa_tensor *node, char *reason);

/* Fill an sc_node from an engine node (device addresses from buffer + offset). Fails (reason)
 * when a stride is not a whole number of elements. */
bool sc_node_from(const sisa_tensor *node, sc_node *out, char *reason);

/* cuda_matmul.c */
bool sc_matmul_lt_accepts(sc_device *d, const sisa_tensor *node, char *reason);
sisa_status sc_matmul_lt_run(sc_stream *s, const sisa_tensor *node, const sc_node *n);
void sc_matmul_plans_free(sc_device *d);

/* cuda_cudnn.c (stubs when built without cuDNN) */
void sc_cudnn_init(sc_device *d);
void sc_cudnn_free(sc_device *d);
bool sc_cudnn_sdpa_accepts(sc_device *d, const sisa_tensor *node, char *reason);
sisa_status sc_cudnn_sdpa_run(sc_stream *s, const sisa_tensor *node, const sc_node *n);

/* cuda_fuse.c: do the device memory of x and y overlap (both placed)? The fusions refuse to
 * write an output early over an input that a later part of the fused kernel still reads. */
bool sc_overlap(const sisa_tensor *x, const sisa_tensor *y);

/* cuda_fuse.c: SSM_CHANNELS + its two AUGMENT consumers as one kernel. True when node i of g was
 * handled here (the fused kernel launched at it, *st its status; or it is an AUGMENT that kernel
 * already wrote); false: compute node i as usual. */
bool sc_fuse_node(sc_stream *s, sisa_graph *g, int i, int first, sisa_status *st);

/* cuda_fuse_gemv.c: a GEMV with the RMS_NORM/SWIGLU before and the ADD after it as one kernel.
 * True when node i of g was handled (the fused kernel launched at it, *st its status; or it was
 * computed by one already); false: compute node i as usual. */
bool sc_gemv_fuse_node(sc_stream *s, sisa_graph *g, int i, sisa_status *st);
/* May a GEMV read b before it waits for the kernel before it (gemv.cu's preload)? Only while
 * recording a CUDA graph (its first kernel starts after all earlier work on the stream, never as
 * a programmatic dependent), and only when no node of g writes memory b occupies. */
bool sc_gemv_b_const(const sc_stream *s, const sisa_graph *g, const sisa_tensor *b);

/* The first int of every recording (cuda_graph.c's CUDA graphs, cuda_mega.c's task lists). */
enum { SC_REC_GRAPH = 1, SC_REC_MEGA = 2 };

/* cuda_backend.c: the decode SDPA's launch switches (SISA_CUDA_ATTN_ONE, SISA_CUDA_DECODE_ATTN,
 * SISA_CUDA_DECODE_SPLIT): the chunk kernels (old), the cluster form, blocks per (b, h, query)
 * (0 = from the SM count) and the counters (NULL = none). */
typedef struct sc_attn_choice {
    bool old, cluster;
    int split;
    unsigned *count;
} sc_attn_choice;
void sc_attn_choose(const sc_stream *s, sc_attn_choice *c);

/* cuda_mega.c: the persistent decode kernel (SISA_CUDA_MEGA=1; docs/CUDA.md). While s->mega is
 * set, the dispatcher hands its launches here instead of to the stream (sc_mega_add_*): each
 * becomes a task, or refuses (the recording then falls back to a CUDA graph) — cudaSuccess
 * either way, nothing runs. sc_mega_mode: 0 off, 1 on, 2 "require" (tests: a refusal makes the
 * replay fail instead of falling back). record answers SISA_UNSUPPORTED (why filled) when a node
 * has no task. sc_mega_check: the report of a barrier that timed out during the last replay. */
cudaError_t sc_mega_add_kernel(sc_stream *s, sc_kernel k, const sc_node *n, int b_const);
cudaError_t sc_mega_add_gemv(sc_stream *s, const sc_gemv_fused *f, int b_const);
cudaError_t sc_mega_add_ssm_augment(sc_stream *s, sc_ssm_augment *f);
void sc_mega_refuse(sc_stream *s, const char *fmt, ...);
int sc_mega_mode(void);
sisa_status sc_mega_record(sisa_stream *st, sisa_graph *g, int first, int last, void **rec, char *why);
void *sc_mega_refused(const char *why);
sisa_status sc_mega_update(sisa_stream *st, void *rec, sisa_graph *g, int node);
sisa_status sc_mega_replay(sisa_stream *st, void *rec);
void sc_mega_release(sisa_stream *st, void *rec);
sisa_status sc_mega_check(sc_stream *s);
void sc_mega_stream_free(sc_stream *s);
/* Pure host code (tests/test_cuda_mega_plan.c runs it without a device): does one of a, b write
 * bytes the other reads or writes; the phases (barrier flags, first blocks) and the L2 prefetch
 * schedule of t[0, n) on `grid` blocks (every: a barrier after each task); returns the barriers
 * (-1: out of memory). */
bool sc_mega_conflict(const sc_mega_task *a, const sc_mega_task *b);
int sc_mega_schedule(sc_mega_task *t, int n, int grid, bool every, int64_t pf_budget, int32_t pf0[SC_MEGA_PF]);
/* Self-test of the grid barrier (test_cuda_smoke.c): n_tasks tasks each checking that every block
 * finished the one before; stall: block 0 leaves after the first, the others must time out after
 * timeout_ms and the call return that report. */
sisa_status sc_mega_selftest(sisa_stream *st, int n_tasks, bool stall, int timeout_ms);

/* cuda_graph.c: record / replay (backend.h's optional stream functions) */
sisa_status sc_graph_record(sisa_stream *st, sisa_graph *g, int first, int last, void **rec);
sisa_status sc_graph_update(sisa_stream *st, void *rec, sisa_graph *g, int node);
sisa_status sc_graph_replay(sisa_stream *st, void *rec);
void sc_graph_release(sisa_stream *st, void *rec);

/* cuda_profile.c: per-node device times (SISA_CUDA_PROFILE=1; printed by sc_prof_free).
 * sc_prof_on: profiling asked for and not capturing. graph_compute calls sc_prof_graph once per
 * call, sc_prof_start / sc_prof_stop around each node (stop waits for the device); replays call
 * sc_prof_replay before (true) and after (false) the launch. */
bool sc_prof_on(const sc_stream *s);
void sc_prof_graph(sc_stream *s, const sisa_graph *g, int first);
void sc_prof_start(sc_stream *s);
void sc_prof_stop(sc_stream *s, const sisa_tensor *node, const char *kind);
void sc_prof_replay(sc_stream *s, bool before);
/* what: "CUDA-graph" or "persistent-kernel"; desc: the recording (its kernels, tasks, ...) */
void sc_prof_recorded(sc_stream *s, const char *what, const char *desc);
void sc_prof_free(sc_stream *s);

/* Error helpers: messages name the backend, the node and the native code. */
sisa_status sc_cuda_err(cudaError_t e, const char *what);
const char *sc_describe(const sisa_tensor *node, char *buf, size_t len);

#endif
