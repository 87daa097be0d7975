/*
 * cuda_mega.c — the persistent decode kernel's host side (SISA_CUDA_MEGA=1; mega.cu runs it;
 * docs/CUDA.md "Persistent decode kernel"): a recording that is ONE cooperative launch executing
 * a task list, instead of a CUDA graph of one kernel per launch.
 *
 * Recording runs the normal dispatcher (graph_compute) node by node, as the CUDA-graph recording
 * does, with s->mega set: every launch the dispatcher and its fusions would make becomes a task
 * with the same by-value arguments (sc_mega_add_*), filled from the op family's own launch plan
 * (cuda_mega.h). A node that would launch anything else (cuBLASLt, cuDNN, a kernel or variant the
 * persistent kernel is not compiled for) refuses the recording, which then becomes a CUDA graph
 * (cuda_graph.c): the persistent kernel never fails a step by being unavailable. Then:
 *  - phases: consecutive tasks of which none writes what another reads or writes (byte spans of
 *    every tensor in their arguments, decode attention's workspace and counters) share a phase;
 *    a grid barrier ends each phase (SISA_CUDA_MEGA_PHASES=0: one after every task). A task's
 *    virtual blocks start at the physical block after the previous task's of its phase.
 *  - prefetch: at each barrier the blocks ask L2 for their slices of the next streaming GEMVs'
 *    weights, while at most SISA_CUDA_MEGA_PREFETCH_MB (default 24; 0 off) of prefetched weights
 *    are not yet used: a schedule made here, read by the kernel from each task's pf list.
 *  - grid: the SM count x the blocks per SM that fit (occupancy at SC_MEGA_SMEM; at most
 *    SISA_CUDA_MEGA_BPS when set), all co-resident (cooperative launch).
 * Update re-runs the dispatcher for the changed node into a scratch list (the same functions as
 * recording) and replaces its tasks in the host copy; another number, kind or grid of tasks, a
 * node covered by an earlier node's fused kernel, or a new conflict inside its phase answers
 * SISA_UNSUPPORTED (the session then computes normally). Replay copies the whole task list to
 * the device with one cudaMemcpyAsync from pinned memory, stream-ordered before the launch. The
 * host patches step p + 1 while step p's copy may still be queued, so the pinned buffers are a
 * ring of MEGA_RING: a buffer is refilled only after the event recorded behind its last copy, and
 * only with the tasks changed (update serials) since it was filled: by the updates themselves when
 * that copy is done already (the usual case: it was MEGA_RING replays ago), else at the replay.
 * A barrier that waits longer than SISA_CUDA_MEGA_TIMEOUT_MS (default 2000) ends the kernel;
 * synchronize reports it (sc_mega_check) naming the task, and the barrier state is reset.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

#define MEGA_RING 3
#define NAME_LEN 96

struct sc_mega_build {
    sc_mega_task *t;
    int n, cap;
    int minb, grid; /* the kernel variant and its blocks */
    bool refused;
    char why[SISA_REASON_LEN];
};

struct sc_mega_rec {
    int kind; /* SC_REC_MEGA (cuda_internal.h) */
    int first, last;
    sc_mega_task *t; /* the host copy, patched by updates */
    int n;
    int *node_t0, *node_n; /* [last - first]: each node's tasks */
    bool *covered;         /* [last - first]: computed by an earlier node's fused kernel */
    char (*name)[NAME_LEN]; /* [n]: the node that made each task */
    int64_t *changed;      /* [n]: the update serial that last changed the task */
    int64_t serial;
    sc_mega_task *pin[MEGA_RING];
    int64_t filled[MEGA_RING]; /* the serial a pinned buffer is up to date with (-1: never filled) */
    cudaEvent_t ev[MEGA_RING]; /* behind the buffer's last copy */
    bool ev_set[MEGA_RING];
    int ring;       /* the buffer the next replay copies from */
    bool ring_free; /* it is known free (its last copy done) and up to date with serial */
    sc_mega_task *scratch; /* updates build their tasks here */
    int scratch_cap;
    sc_mega_task *d_t;
    sc_mega_sync *d_sync;
    sc_mega_err *d_err;
    int minb, grid, barriers; /* minb: the kernel variant (sc_mega_occupancy) */
    size_t smem;
    int32_t pf0[SC_MEGA_PF];
    long long timeout_ns;
    bool refused; /* SISA_CUDA_MEGA=require and no kernel: replays fail with why */
    char why[SISA_REASON_LEN];
};

static long env_long(const char *name, long dflt) {
    const char *e = getenv(name);
    return e && e[0] ? atol(e) : dflt;
}

int sc_mega_mode(void) {
    const char *e = getenv("SISA_CUDA_MEGA");
    if (!e || !e[0] || strcmp(e, "0") == 0) return 0;
    return strcmp(e, "require") == 0 ? 2 : 1;
}

/* ---- building the task list (the dispatcher's launches while s->mega is set) ---- */

void sc_mega_refuse(sc_stream *s, const char *fmt, ...) {
    sc_mega_build *b = s->mega;
    if (!b || b->refused) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof b->why, fmt, ap);
    va_end(ap);
    b->refused = true;
}

static cudaError_t push(sc_stream *s, const sc_mega_task *t) {
    sc_mega_build *b = s->mega;
    if (b->refused || t->nvb <= 0) return cudaSuccess; /* nvb 0: the launcher would launch nothing */
    if (t->smem > SC_MEGA_SMEM) {
        sc_mega_refuse(s, "a task needs %d bytes of shared memory (at most %d)", t->smem, SC_MEGA_SMEM);
        return cudaSuccess;
    }
    if (b->n == b->cap) {
        const int cap = b->cap ? 2 * b->cap : 64;
        sc_mega_task *nt = realloc(b->t, (size_t)cap * sizeof *nt);
        if (!nt) {
            sc_mega_refuse(s, "out of host memory for the task list");
            return cudaSuccess;
        }
        b->t = nt;
        b->cap = cap;
    }
    b->t[b->n++] = *t;
    return cudaSuccess;
}

cudaError_t sc_mega_add_gemv(sc_stream *s, const sc_gemv_fused *f, int b_const) {
    sc_mega_task t;
    memset(&t, 0, sizeof t);
    if (!b_const) { /* the GEMV bodies read b through the read-only path (gemv.cuh) */
        sc_mega_refuse(s, "a GEMV whose matrix b is written by the graph");
        return cudaSuccess;
    }
    if (!sc_mega_gemv(f, s->dev->prop.multiProcessorCount, s->mega->grid, &t)) {
        const sc_tensor *a = &f->mm.src[0];
        sc_mega_refuse(s, "a GEMV of %lld rows (the kernel is compiled for %d) or of too much shared memory",
                       (long long)(a->ne[0] * a->ne[1] * a->ne[2]), SC_MEGA_GEMV_ROWS);
        return cudaSuccess;
    }
    return push(s, &t);
}

cudaError_t sc_mega_add_ssm_augment(sc_stream *s, sc_ssm_augment *f) {
    sc_mega_task t;
    memset(&t, 0, sizeof t);
    if (!sc_mega_ssm_augment(f, &t)) {
        sc_mega_refuse(s, "SSM_CHANNELS + AUGMENT with no task for its shape");
        return cudaSuccess;
    }
    return push(s, &t);
}

cudaError_t sc_mega_add_kernel(sc_stream *s, sc_kernel k, const sc_node *n, int b_const) {
    sc_mega_task t;
    memset(&t, 0, sizeof t);
    int ok = 0;
    switch (k) {
    case SC_K_ELEMENTWISE: ok = sc_mega_elementwise(n, &t); break;
    case SC_K_RMS_NORM: ok = sc_mega_rms_norm(n, &t); break;
    case SC_K_ROPE: ok = sc_mega_rope(n, &t); break;
    case SC_K_SSM_DECAY: ok = sc_mega_ssm_decay(n, &t); break;
    case SC_K_SSM_CHANNELS: ok = sc_mega_ssm_channels(n, &t); break;
    case SC_K_GEMV: {
        sc_gemv_fused f;
        memset(&f, 0, sizeof f);
        f.mm = *n;
        return sc_mega_add_gemv(s, &f, b_const);
    }
    case SC_K_SDPA_DECODE: {
        sc_attn_choice c;
        sc_attn_choose(s, &c);
        if (c.old || c.cluster) {
            sc_mega_refuse(s, "decode attention SISA_CUDA_DECODE_ATTN=%s has no task", c.old ? "old" : "cluster");
            return cudaSuccess;
        }
        if (sc_decode_attn_workspace(n) > s->workspace_size) return cudaErrorInvalidValue;
        ok = sc_mega_decode_attn(n, s->workspace, c.count, s->n_attn_count, s->dev->prop.multiProcessorCount,
                                 c.split, &t);
        break;
    }
    default: break;
    }
    if (!ok) {
        sc_mega_refuse(s, "kernel %s (op %s) has no task for this node", sc_kernel_name(k), sisa_op_name(n->op));
        return cudaSuccess;
    }
    return push(s, &t);
}

/* ---- phases: which tasks may run without a barrier between them ---- */

typedef struct span {
    uintptr_t lo, hi;
    bool w;
} span;
#define MAX_SPANS 20

static void add_raw(span *sp, int *k, const void *p, size_t bytes, bool w) {
    if (p && bytes) sp[(*k)++] = (span){(uintptr_t)p, (uintptr_t)p + bytes, w};
}

/* The bytes a tensor's elements can touch; a negative stride: everything. */
static void add_tensor(span *sp, int *k, const sc_tensor *t, bool w) {
    if (!t->p) return;
    int64_t ext = 1;
    bool neg = false;
    for (int d = 0; d < 4; d++) {
        if (t->ne[d] <= 0) return;
        neg |= t->nb[d] < 0;
        ext += (t->ne[d] - 1) * (t->nb[d] < 0 ? -t->nb[d] : t->nb[d]);
    }
    const size_t es = t->dt == SC_F16 || t->dt == SC_BF16 ? 2 : 4;
    if (neg) sp[(*k)++] = (span){0, UINTPTR_MAX, w};
    else add_raw(sp, k, t->p, (size_t)ext * es, w);
}

static int task_spans(const sc_mega_task *t, span *sp) {
    int k = 0;
    switch (t->kind) {
    case SC_MT_GEMV:
    case SC_MT_GEMV_STREAM: {
        const sc_gemv_fused *f = &t->u.g;
        add_tensor(sp, &k, f->epi ? &f->out : &f->mm.dst, true);
        if (f->pro) {
            add_tensor(sp, &k, &f->px, false);
            add_tensor(sp, &k, &f->pw, false);
        } else {
            add_tensor(sp, &k, &f->mm.src[0], false);
        }
        add_tensor(sp, &k, &f->mm.src[1], false);
        if (f->epi) add_tensor(sp, &k, &f->res, false);
        break;
    }
    case SC_MT_SSM_AUGMENT: {
        const sc_ssm_augment *a = &t->u.a;
        add_tensor(sp, &k, &a->ssm.dst, true);
        add_tensor(sp, &k, &a->out_c, true);
        add_tensor(sp, &k, &a->out_b, true);
        for (int j = 0; j < 6; j++) add_tensor(sp, &k, &a->ssm.src[j], false);
        add_tensor(sp, &k, &a->a_c, false);
        add_tensor(sp, &k, &a->a_b, false);
        break;
    }
    default:
        add_tensor(sp, &k, &t->u.n.dst, true);
        for (int j = 0; j < 6; j++) add_tensor(sp, &k, &t->u.n.src[j], false);
        if (t->kind == SC_MT_DECODE_ATTN) { /* the partials and the counters of the last-block combine */
            const size_t bhq = (size_t)t->gx, S = (size_t)t->i[0], Dv = (size_t)t->u.n.src[2].ne[3];
            add_raw(sp, &k, t->p[0], bhq * S * (Dv + 2) * sizeof(float), true);
            add_raw(sp, &k, t->p[1], bhq * sizeof(unsigned), true);
        }
        break;
    }
    return k;
}

bool sc_mega_conflict(const sc_mega_task *a, const sc_mega_task *b) {
    span sa[MAX_SPANS], sb[MAX_SPANS];
    const int na = task_spans(a, sa), nb = task_spans(b, sb);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if ((sa[i].w || sb[j].w) && sa[i].lo < sb[j].hi && sb[j].lo < sa[i].hi) return true;
    return false;
}

static bool self_test(const sc_mega_task *t) { return t->kind == SC_MT_CHECK || t->kind == SC_MT_STALL; }

/* Barrier flags and first blocks; returns the number of barriers. */
static int make_phases(sc_mega_task *t, int n, int grid, bool every) {
    int start = 0, barriers = 0;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        t[i].barrier = 0;
        bool cut = i > start && (every || self_test(&t[i]) || self_test(&t[i - 1]));
        for (int j = start; j < i && !cut; j++) cut = sc_mega_conflict(&t[j], &t[i]);
        if (cut) {
            t[i - 1].barrier = 1;
            barriers++;
            start = i;
            off = 0;
        }
        t[i].first = (int32_t)(off % grid);
        off += t[i].nvb;
    }
    return barriers;
}

/* The phase of task i: [*a, *b). */
static void phase_of(const sc_mega_task *t, int n, int i, int *a, int *b) {
    *a = i;
    while (*a > 0 && !t[*a - 1].barrier) (*a)--;
    *b = i;
    while (*b < n - 1 && !t[*b].barrier) (*b)++;
    (*b)++;
}

/* ---- the L2 prefetch schedule ---- */

static int64_t pf_bytes(const sc_mega_task *t) {
    if (t->kind != SC_MT_GEMV_STREAM || !t->pf_ok) return 0;
    return t->u.g.mm.src[1].ne[2] * t->u.g.mm.src[1].ne[3] * 2; /* b (1, 1, N, K), 16-bit */
}

static int next_pf(const sc_mega_task *t, int n, int from) {
    for (int i = from; i < n; i++)
        if (pf_bytes(&t[i]) > 0) return i;
    return -1;
}

/* At the start (pf0) and at each barrier (the pf list of the task before it): the next streaming
 * GEMVs whose weights to prefetch, while the prefetched and not yet used bytes stay within budget
 * (the first one always). */
static void make_prefetch(sc_mega_task *t, int n, int32_t pf0[SC_MEGA_PF], bool *pre, int64_t budget) {
    for (int i = 0; i < n; i++)
        for (int q = 0; q < SC_MEGA_PF; q++) t[i].pf[q] = -1;
    for (int q = 0; q < SC_MEGA_PF; q++) pf0[q] = -1;
    if (budget <= 0) return;
    int64_t out = 0;
    int next = next_pf(t, n, 0), done = 0;
    for (int k = -1; k < n - 1; k++) {
        if (k >= 0 && !t[k].barrier) continue;
        for (int j = done; j <= k; j++) /* run before this barrier: their prefetched bytes are used */
            if (pre[j]) out -= pf_bytes(&t[j]);
        done = k + 1;
        while (next >= 0 && next <= k) next = next_pf(t, n, next + 1);
        int32_t *list = k < 0 ? pf0 : t[k].pf;
        for (int q = 0; q < SC_MEGA_PF && next >= 0 && (out == 0 || out + pf_bytes(&t[next]) <= budget); q++) {
            list[q] = next;
            out += pf_bytes(&t[next]);
            pre[next] = true;
            next = next_pf(t, n, next + 1);
        }
    }
}

int sc_mega_schedule(sc_mega_task *t, int n, int grid, bool every, int64_t pf_budget, int32_t pf0[SC_MEGA_PF]) {
    const int barriers = make_phases(t, n, grid, every);
    bool *pre = calloc((size_t)n + 1, sizeof *pre);
    if (!pre) return -1;
    make_prefetch(t, n, pf0, pre, pf_budget);
    free(pre);
    return barriers;
}

/* ---- recordings ---- */

static void rec_free(sc_mega_rec *r) {
    if (!r) return;
    for (int k = 0; k < MEGA_RING; k++) {
        if (r->pin[k]) cudaFreeHost(r->pin[k]);
        if (r->ev[k]) cudaEventDestroy(r->ev[k]);
    }
    cudaFree(r->d_t);
    cudaFree(r->d_sync);
    cudaGetLastError();
    free(r->t);
    free(r->scratch);
    free(r->node_t0);
    free(r->node_n);
    free(r->covered);
    free(r->name);
    free(r->changed);
    free(r);
}

/* Phases, prefetch schedule, device and pinned memory for r's n tasks r->t on r->grid blocks. */
static sisa_status rec_setup(sc_stream *s, sc_mega_rec *r) {
    r->kind = SC_REC_MEGA;
    const char *ph = getenv("SISA_CUDA_MEGA_PHASES");
    r->changed = calloc((size_t)r->n, sizeof *r->changed);
    if (!r->changed || (r->barriers = sc_mega_schedule(r->t, r->n, r->grid, ph && ph[0] == '0',
                                                       (int64_t)env_long("SISA_CUDA_MEGA_PREFETCH_MB", 24) << 20,
                                                       r->pf0)) < 0)
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory for a persistent-kernel recording");
    r->smem = 0;
    for (int i = 0; i < r->n; i++)
        if ((size_t)r->t[i].smem > r->smem) r->smem = (size_t)r->t[i].smem;
    r->timeout_ns = env_long("SISA_CUDA_MEGA_TIMEOUT_MS", 2000) * 1000000LL;
    if (r->timeout_ns <= 0) r->timeout_ns = 2000000000LL;
    const size_t bytes = (size_t)r->n * sizeof(sc_mega_task);
    cudaError_t e = cudaMalloc((void **)&r->d_t, bytes);
    if (e == cudaSuccess) e = cudaMalloc((void **)&r->d_sync, sizeof *r->d_sync);
    if (e == cudaSuccess) e = cudaMemsetAsync(r->d_sync, 0, sizeof *r->d_sync, s->stream);
    for (int k = 0; k < MEGA_RING && e == cudaSuccess; k++) {
        r->filled[k] = -1;
        e = cudaMallocHost((void **)&r->pin[k], bytes);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&r->ev[k], cudaEventDisableTiming);
    }
    if (e == cudaSuccess && !s->mega_err) { /* the stalled-barrier report: host memory the kernel writes */
        e = cudaHostAlloc((void **)&s->mega_err, sizeof *s->mega_err, cudaHostAllocMapped);
        if (e == cudaSuccess) memset(s->mega_err, 0, sizeof *s->mega_err);
        else s->mega_err = NULL;
    }
    if (e == cudaSuccess) e = cudaHostGetDevicePointer((void **)&r->d_err, s->mega_err, 0);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return sc_cuda_err(e, "allocating a persistent-kernel recording");
    }
    return SISA_OK;
}

static void trace(sc_stream *s, const sc_mega_rec *r) {
    int kinds[SC_MT_STALL + 1] = {0};
    for (int i = 0; i < r->n; i++)
        if (r->t[i].kind >= 0 && r->t[i].kind <= SC_MT_STALL) kinds[r->t[i].kind]++;
    char desc[160];
    snprintf(desc, sizeof desc, "%d tasks, %d grid barriers, grid %d x %d, %zu bytes of shared memory", r->n,
             r->barriers, r->grid, SC_MEGA_THREADS, r->smem);
    if (sc_prof_on(s)) sc_prof_recorded(s, "persistent-kernel", desc);
    if (getenv("SISA_CUDA_TRACE"))
        fprintf(stderr, "cuda: recorded nodes [%d, %d) as one persistent kernel: %s (tasks: %d elementwise, "
                        "%d rms_norm, %d rope, %d ssm_decay, %d ssm_channels, %d ssm+augment, %d gemv, %d "
                        "streaming gemv, %d decode attention)\n",
                r->first, r->last, desc, kinds[SC_MT_ELEMENTWISE], kinds[SC_MT_RMS_NORM], kinds[SC_MT_ROPE],
                kinds[SC_MT_SSM_DECAY], kinds[SC_MT_SSM_CHANNELS], kinds[SC_MT_SSM_AUGMENT], kinds[SC_MT_GEMV],
                kinds[SC_MT_GEMV_STREAM], kinds[SC_MT_DECODE_ATTN]);
}

/* The persistent grid: SMs x the blocks per SM that fit (cooperative launch); 0 with why.
 * SISA_CUDA_MEGA_BPS=N: at most N per SM, and N >= 2 takes the 128-register variant. */
static int mega_grid(sc_stream *s, int *minb, char *why) {
    if (!s->dev->prop.cooperativeLaunch) {
        snprintf(why, SISA_REASON_LEN, "the device has no cooperative launch");
        return 0;
    }
    int bps = 0;
    const long cap = env_long("SISA_CUDA_MEGA_BPS", 0);
    *minb = cap >= 2 ? 2 : 1;
    cudaError_t e = cudaSetDevice(s->dev->ordinal);
    if (e == cudaSuccess) e = sc_mega_occupancy(*minb, &bps);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, SISA_REASON_LEN, "occupancy of the persistent kernel: %s", cudaGetErrorName(e));
        return 0;
    }
    if (cap > 0 && bps > cap) bps = (int)cap;
    if (bps < 1) snprintf(why, SISA_REASON_LEN, "the persistent kernel does not fit on an SM");
    return bps * s->dev->prop.multiProcessorCount;
}

/* Run node i of g through the dispatcher into b (s->mega); the stream's fusion state is kept. */
static sisa_status build_node(sisa_stream *st, sisa_graph *g, int i, sc_mega_build *b, bool *covered) {
    sc_stream *s = st->ctx;
    s->mega = b;
    s->capturing = true; /* no profiling; sc_gemv_b_const answers for a recording */
    s->last_covered = false;
    sisa_status rs = st->iface->graph_compute(st, g, i, i + 1);
    *covered = s->last_covered;
    s->capturing = false;
    s->mega = NULL;
    return rs;
}

sisa_status sc_mega_record(sisa_stream *st, sisa_graph *g, int first, int last, void **out, char *why) {
    sc_stream *s = st->ctx;
    *out = NULL;
    why[0] = '\0';
    sc_mega_build b = {0};
    if ((b.grid = mega_grid(s, &b.minb, why)) < 1) return SISA_UNSUPPORTED;
    sc_mega_rec *r = calloc(1, sizeof *r);
    const size_t nn = (size_t)(last - first) + 1;
    if (!r || !(r->node_t0 = calloc(nn, sizeof(int))) || !(r->node_n = calloc(nn, sizeof(int))) ||
        !(r->covered = calloc(nn, sizeof(bool)))) {
        rec_free(r);
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory for a persistent-kernel recording");
    }
    r->first = first;
    r->last = last;
    sisa_status rs = SISA_OK;
    for (int i = first; i < last && rs == SISA_OK && !b.refused; i++) {
        r->node_t0[i - first] = b.n;
        rs = build_node(st, g, i, &b, &r->covered[i - first]);
        r->node_n[i - first] = b.n - r->node_t0[i - first];
        if (b.refused) {
            char w[SISA_REASON_LEN];
            snprintf(w, sizeof w, "%s", b.why);
            snprintf(b.why, sizeof b.why, "node %d '%s' (op %s): %s", i, g->nodes[i]->name,
                     sisa_op_name(g->nodes[i]->op), w);
        }
    }
    r->t = b.t;
    r->n = b.n;
    r->minb = b.minb;
    r->grid = b.grid;
    if (rs != SISA_OK || b.refused || b.n == 0) {
        snprintf(why, SISA_REASON_LEN, "%s", rs != SISA_OK ? sisa_last_error() : b.refused ? b.why : "no work");
        rec_free(r);
        return SISA_UNSUPPORTED;
    }
    if (!(r->name = calloc((size_t)r->n, sizeof *r->name))) {
        rec_free(r);
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory for a persistent-kernel recording");
    }
    for (int i = first; i < last; i++)
        for (int k = 0; k < r->node_n[i - first]; k++)
            snprintf(r->name[r->node_t0[i - first] + k], NAME_LEN, "node %d '%s' (op %s)", i, g->nodes[i]->name,
                     sisa_op_name(g->nodes[i]->op));
    rs = rec_setup(s, r);
    if (rs != SISA_OK) {
        snprintf(why, SISA_REASON_LEN, "%s", sisa_last_error());
        rec_free(r);
        return SISA_UNSUPPORTED;
    }
    trace(s, r);
    *out = r;
    return SISA_OK;
}

void *sc_mega_refused(const char *why) {
    sc_mega_rec *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->kind = SC_REC_MEGA;
    r->refused = true;
    snprintf(r->why, sizeof r->why, "%s", why);
    return r;
}

/* Bring the next replay's pinned buffer up to date (the tasks changed since it was filled), once
 * its last copy has read it: wait for that (replay), or only if it is done already (update). */
static cudaError_t ring_catch_up(sc_mega_rec *r, bool wait) {
    const int k = r->ring;
    if (r->ev_set[k]) {
        const cudaError_t e = wait ? cudaEventSynchronize(r->ev[k]) : cudaEventQuery(r->ev[k]);
        if (e != cudaSuccess) {
            cudaGetLastError(); /* (cudaErrorNotReady: not yet) */
            return e;
        }
    }
    for (int i = 0; i < r->n; i++)
        if (r->filled[k] < 0 || r->changed[i] > r->filled[k]) r->pin[k][i] = r->t[i];
    r->filled[k] = r->serial;
    return cudaSuccess;
}

/* May candidate c (replacing task ti) run without a barrier beside the other tasks of ti's phase
 * (the node's other candidates cand[0, nc) standing in for tasks t0..)? */
static bool fits_phase(const sc_mega_rec *r, int ti, const sc_mega_task *c, int t0, const sc_mega_task *cand,
                       int nc) {
    int a, e;
    phase_of(r->t, r->n, ti, &a, &e);
    for (int j = a; j < e; j++) {
        if (j == ti) continue;
        const sc_mega_task *o = j >= t0 && j < t0 + nc ? &cand[j - t0] : &r->t[j];
        if (sc_mega_conflict(o, c)) return false;
    }
    return true;
}

sisa_status sc_mega_update(sisa_stream *st, void *rec, sisa_graph *g, int i) {
    sc_stream *s = st->ctx;
    sc_mega_rec *r = rec;
    if (r->refused) return SISA_OK;
    if (i < r->first || i >= r->last)
        return sisa_err(SISA_INVALID_ARG, "cuda persistent-kernel update: node %d outside the recording", i);
    const sisa_tensor *node = g->nodes[i];
    if (r->covered[i - r->first])
        return sisa_err(SISA_UNSUPPORTED, "cuda persistent-kernel update: node %d '%s' is computed by a fused "
                        "task recorded with an earlier node and cannot be updated alone", i, node->name);
    /* the dispatcher again, for this node alone, from an empty fusion state (restored after) */
    sc_mega_build b = {.t = r->scratch, .cap = r->scratch_cap, .minb = r->minb, .grid = r->grid};
    const sisa_tensor *skip[4] = {s->gemv_skip[0], s->gemv_skip[1], s->fuse_skip[0], s->fuse_skip[1]};
    s->gemv_skip[0] = s->gemv_skip[1] = s->fuse_skip[0] = s->fuse_skip[1] = NULL;
    bool covered = false;
    sisa_status rs = build_node(st, g, i, &b, &covered);
    s->gemv_skip[0] = skip[0];
    s->gemv_skip[1] = skip[1];
    s->fuse_skip[0] = skip[2];
    s->fuse_skip[1] = skip[3];
    const int t0 = r->node_t0[i - r->first], nt = r->node_n[i - r->first];
    if (rs == SISA_OK && (b.refused || b.n != nt || covered))
        rs = sisa_err(SISA_UNSUPPORTED, "cuda persistent-kernel update: node %d '%s' now makes %d tasks%s%s "
                      "(recorded: %d)", i, node->name, b.n, b.refused ? ": " : "", b.refused ? b.why : "", nt);
    for (int k = 0; k < nt && rs == SISA_OK; k++) {
        sc_mega_task *c = &b.t[k];
        const sc_mega_task *o = &r->t[t0 + k];
        if (c->kind != o->kind || c->sub != o->sub || c->nvb != o->nvb || c->gx != o->gx || c->smem != o->smem)
            rs = sisa_err(SISA_UNSUPPORTED, "cuda persistent-kernel update: node %d '%s' task %d changed its "
                          "kernel or grid", i, node->name, k);
        /* the new arguments, the recording's schedule */
        c->first = o->first;
        c->barrier = o->barrier;
        c->pf_ok = o->pf_ok;
        memcpy(c->pf, o->pf, sizeof c->pf);
    }
    for (int k = 0; k < nt && rs == SISA_OK; k++)
        if (!fits_phase(r, t0 + k, &b.t[k], t0, b.t, nt))
            rs = sisa_err(SISA_UNSUPPORTED, "cuda persistent-kernel update: node %d '%s' now touches memory "
                          "another task of its phase uses (no barrier between them)", i, node->name);
    if (rs == SISA_OK && nt > 0) {
        r->serial++;
        for (int k = 0; k < nt; k++) {
            r->t[t0 + k] = b.t[k];
            r->changed[t0 + k] = r->serial;
        }
        /* into the next replay's pinned buffer too, now, while the device still runs: when its last
         * copy is done, it catches up once, then each update writes its own tasks */
        if (r->ring_free) {
            memcpy(&r->pin[r->ring][t0], &r->t[t0], (size_t)nt * sizeof *r->t);
            r->filled[r->ring] = r->serial;
        } else {
            r->ring_free = ring_catch_up(r, false) == cudaSuccess;
        }
    }
    r->scratch = b.t; /* kept for the next update */
    r->scratch_cap = b.cap;
    return rs;
}

sisa_status sc_mega_replay(sisa_stream *st, void *rec) {
    sc_stream *s = st->ctx;
    sc_mega_rec *r = rec;
    if (r->refused)
        return sisa_err(SISA_UNSUPPORTED, "backend 'cuda': persistent decode kernel required "
                        "(SISA_CUDA_MEGA=require) but not recorded: %s", r->why);
    const int k = r->ring;
    cudaError_t e = r->ring_free ? cudaSuccess : ring_catch_up(r, true);
    r->ring = (k + 1) % MEGA_RING;
    r->ring_free = false;
    const bool prof = sc_prof_on(s);
    if (prof) sc_prof_replay(s, true);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(r->d_t, r->pin[k], (size_t)r->n * sizeof(sc_mega_task), cudaMemcpyHostToDevice,
                            s->stream);
    if (e == cudaSuccess) e = cudaEventRecord(r->ev[k], s->stream);
    r->ev_set[k] = e == cudaSuccess;
    if (e == cudaSuccess)
        e = sc_mega_launch(r->minb, r->d_t, r->n, r->pf0, r->d_sync, r->d_err, r->timeout_ns, r->grid, r->smem,
                           s->stream);
    if (e == cudaSuccess) s->mega_last = r;
    if (prof && e == cudaSuccess) sc_prof_replay(s, false);
    if (e != cudaSuccess) cudaGetLastError();
    if (e == cudaSuccess) return SISA_OK;
    return sisa_err_prefix(sc_cuda_err(e, "persistent decode kernel launch"), "backend 'cuda' replay");
}

void sc_mega_release(sisa_stream *st, void *rec) {
    sc_stream *s = st->ctx;
    sc_mega_rec *r = rec;
    if (!r) return;
    if (!r->refused) cudaStreamSynchronize(s->stream);
    if (s->mega_last == r) s->mega_last = NULL;
    rec_free(r);
}

sisa_status sc_mega_check(sc_stream *s) {
    volatile sc_mega_err *e = s->mega_err;
    if (!e || !e->flag) return SISA_OK;
    const int task = e->task, block = e->block;
    const unsigned word = e->counter;
    e->flag = 0;
    sc_mega_rec *r = s->mega_last;
    char what[160] = "a task of a released recording";
    long long ms = 0;
    if (r) {
        if (task >= 0 && task < r->n) snprintf(what, sizeof what, "task %d of %d, %s", task, r->n, r->name[task]);
        ms = r->timeout_ns / 1000000LL;
        /* the blocks left mid-barrier: start the next launch from a clean state */
        if (cudaMemsetAsync(r->d_sync, 0, sizeof *r->d_sync, s->stream) != cudaSuccess ||
            cudaStreamSynchronize(s->stream) != cudaSuccess)
            cudaGetLastError();
    }
    return sisa_err(SISA_INTERNAL, "backend 'cuda': persistent decode kernel: the grid barrier after %s did "
                    "not complete within %lld ms (block %d gave up; barrier word 0x%08x): the step's results "
                    "are invalid (SISA_CUDA_MEGA=0 turns the kernel off)", what, ms, block, word);
}

void sc_mega_stream_free(sc_stream *s) {
    if (s->mega_err) cudaFreeHost(s->mega_err);
    s->mega_err = NULL;
    s->mega_last = NULL;
}

sisa_status sc_mega_selftest(sisa_stream *st, int n_tasks, bool stall, int timeout_ms) {
    sc_stream *s = st->ctx;
    char why[SISA_REASON_LEN] = "";
    int minb = 1;
    const int grid = mega_grid(s, &minb, why);
    if (grid < 1) return sisa_err(SISA_UNSUPPORTED, "cuda: persistent-kernel self-test: %s", why);
    if (n_tasks < 2) n_tasks = 2;
    unsigned *d_c = NULL;
    cudaError_t e = cudaMalloc((void **)&d_c, (size_t)(n_tasks + 1) * sizeof *d_c);
    if (e == cudaSuccess) e = cudaMemsetAsync(d_c, 0, (size_t)(n_tasks + 1) * sizeof *d_c, s->stream);
    if (e != cudaSuccess) {
        cudaFree(d_c);
        cudaGetLastError();
        return sc_cuda_err(e, "persistent-kernel self-test");
    }
    sc_mega_rec *r = calloc(1, sizeof *r);
    if (!r || !(r->t = calloc((size_t)n_tasks, sizeof *r->t)) ||
        !(r->name = calloc((size_t)n_tasks, sizeof *r->name))) {
        rec_free(r);
        cudaFree(d_c);
        return sisa_err(SISA_OUT_OF_MEMORY, "cuda: out of host memory");
    }
    r->n = n_tasks;
    r->minb = minb;
    r->grid = grid;
    for (int k = 0; k < n_tasks; k++) {
        sc_mega_task *t = &r->t[k];
        t->kind = stall && k == 1 ? SC_MT_STALL : SC_MT_CHECK;
        t->nvb = grid;
        t->i[0] = k;
        t->i[1] = n_tasks;
        t->p[0] = d_c;
        snprintf(r->name[k], NAME_LEN, "self-test task %d", k);
    }
    sisa_status rs = rec_setup(s, r);
    if (rs == SISA_OK) {
        r->timeout_ns = (long long)timeout_ms * 1000000LL;
        rs = sc_mega_replay(st, r);
    }
    if (rs == SISA_OK) {
        e = cudaStreamSynchronize(s->stream);
        rs = e == cudaSuccess ? sc_mega_check(s) : sc_cuda_err(e, "persistent-kernel self-test");
    }
    if (rs == SISA_OK && !stall) {
        unsigned *c = malloc((size_t)(n_tasks + 1) * sizeof *c);
        e = c ? cudaMemcpy(c, d_c, (size_t)(n_tasks + 1) * sizeof *c, cudaMemcpyDeviceToHost)
              : cudaErrorMemoryAllocation;
        if (e != cudaSuccess) rs = sc_cuda_err(e, "persistent-kernel self-test: reading the counters");
        for (int k = 0; rs == SISA_OK && k <= n_tasks; k++)
            if (k < n_tasks ? c[k] != (unsigned)grid : c[k] != 0u)
                rs = sisa_err(SISA_INTERNAL, "cuda: persistent-kernel self-test: %s %u (expected %u; grid %d, "
                              "%d tasks)", k < n_tasks ? "a task counted" : "tasks that began before the "
                              "previous one ended:", c[k], k < n_tasks ? (unsigned)grid : 0u, grid, n_tasks);
        free(c);
    }
    sc_mega_release(st, r);
    cudaFree(d_c);
    return rs;
}
