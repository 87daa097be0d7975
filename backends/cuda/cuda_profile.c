/*
 * cuda_profile.c — where a graph's device time goes, node by node (SISA_CUDA_PROFILE=1).
 *
 * Outside CUDA-graph capture, every node that graph_compute launches is bracketed by two CUDA
 * events and waited for. Before the start event a spin kernel (profile.cu) holds the device for
 * ~200 us, longer than the host takes to prepare and launch the node, so the start event is
 * stamped when the spin ends and the node's kernels follow at once: each node's time is its
 * kernels' device time alone (plus the gaps of the event pair, ~1 us), not the host's work and not
 * overlapped with anything — the sum is what the graph would take with no launch gaps. (A node
 * fused into an earlier kernel shows only that gap.) Profile with SISA_CUDA_PDL=0: the spin and
 * the events sit between the kernels. Times are summed per label (kernel + the node's name
 * without "layers.<i>.", so the 12 layers' "proj" nodes are one row) for the graph computed most
 * recently: a different graph (other ops or shapes) starts a new table (a decode run ends with
 * its step graph's table). A replay of a recording is timed as a whole (events around
 * cudaGraphLaunch, or around the persistent kernel's task copy and launch; then waited for).
 * The tables go to stderr when the stream is freed. Profiling serialises the host and the
 * device: its times are for comparing nodes, not for throughput.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define PROF_MAX 128

typedef struct prof_row {
    char label[80];
    int64_t n;
    double ms;
} prof_row;

typedef struct sc_prof {
    uint64_t sig; /* graph_sig of the graph the table is for */
    int g_nodes;
    int64_t runs;
    int n;
    prof_row row[PROF_MAX];
    cudaEvent_t ev[2];
    bool ev_ok;
    int64_t replays;
    double replay_ms;
    char rec_what[24], rec_desc[160]; /* the last recording */
} sc_prof;

bool sc_prof_on(const sc_stream *s) {
    if (s->capturing) return false;
    const char *e = getenv("SISA_CUDA_PROFILE");
    return e && e[0] && strcmp(e, "0") != 0;
}

static sc_prof *prof_get(sc_stream *s) {
    if (!s->prof) {
        s->prof = calloc(1, sizeof *s->prof);
        if (s->prof)
            s->prof->ev_ok = cudaEventCreate(&s->prof->ev[0]) == cudaSuccess &&
                             cudaEventCreate(&s->prof->ev[1]) == cudaSuccess;
    }
    return s->prof && s->prof->ev_ok ? s->prof : NULL;
}

static void prof_print(sc_prof *p);

/* Which graph: its nodes' ops and shapes (a freed graph's memory may hold the next one, and a
 * prefill chunk has as many nodes as a step). */
static uint64_t graph_sig(const sisa_graph *g) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < g->n_nodes; i++) {
        const sisa_tensor *t = g->nodes[i];
        uint64_t v = (uint64_t)t->op;
        for (int d = 0; d < 4; d++) v = v * 1000003u + (uint64_t)t->shape[d];
        h = (h ^ v) * 1099511628211ull;
    }
    return h;
}

void sc_prof_graph(sc_stream *s, const sisa_graph *g, int first) {
    sc_prof *p = prof_get(s);
    if (!p) return;
    const uint64_t sig = graph_sig(g);
    if (p->sig != sig || p->g_nodes != g->n_nodes) {
        if (p->runs > 1) prof_print(p); /* a graph computed more than once: its table too */
        p->sig = sig;
        p->g_nodes = g->n_nodes;
        p->runs = 0;
        p->n = 0;
    }
    if (first == 0) p->runs++;
}

void sc_prof_start(sc_stream *s) {
    sc_prof *p = prof_get(s);
    if (!p) return;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, s->dev->ordinal) != cudaSuccess) khz = 0;
    const long long cycles = (long long)khz * 200 / 1000; /* 200 us at the peak clock */
    if (sc_launch_spin(cycles > 0 ? cycles : 400000, s->stream) != cudaSuccess) cudaGetLastError();
    cudaEventRecord(p->ev[0], s->stream);
}

void sc_prof_stop(sc_stream *s, const sisa_tensor *node, const char *kind) {
    sc_prof *p = prof_get(s);
    if (!p) return;
    float ms = 0.0f;
    if (cudaEventRecord(p->ev[1], s->stream) != cudaSuccess || cudaEventSynchronize(p->ev[1]) != cudaSuccess ||
        cudaEventElapsedTime(&ms, p->ev[0], p->ev[1]) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    const char *name = node->name, *dot;
    if (strncmp(name, "layers.", 7) == 0 && (dot = strchr(name + 7, '.')) != NULL) name = dot + 1;
    char label[80];
    snprintf(label, sizeof label, "%s %s %s", sisa_op_name(node->op), kind, name);
    int i = 0;
    while (i < p->n && strcmp(p->row[i].label, label) != 0) i++;
    if (i == p->n) {
        if (p->n == PROF_MAX) return;
        snprintf(p->row[p->n++].label, sizeof p->row[0].label, "%s", label);
    }
    p->row[i].n++;
    p->row[i].ms += ms;
}

void sc_prof_replay(sc_stream *s, bool before) {
    sc_prof *p = prof_get(s);
    if (!p) return;
    if (before) {
        cudaEventRecord(p->ev[0], s->stream);
        return;
    }
    float ms = 0.0f;
    if (cudaEventRecord(p->ev[1], s->stream) == cudaSuccess && cudaEventSynchronize(p->ev[1]) == cudaSuccess &&
        cudaEventElapsedTime(&ms, p->ev[0], p->ev[1]) == cudaSuccess) {
        p->replays++;
        p->replay_ms += ms;
    }
    cudaGetLastError();
}

void sc_prof_recorded(sc_stream *s, const char *what, const char *desc) {
    sc_prof *p = prof_get(s);
    if (!p) return;
    snprintf(p->rec_what, sizeof p->rec_what, "%s", what);
    snprintf(p->rec_desc, sizeof p->rec_desc, "%s", desc);
}

static int by_ms(const void *a, const void *b) {
    const double x = ((const prof_row *)a)->ms, y = ((const prof_row *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void prof_print(sc_prof *p) {
    if (p->n > 0 && p->runs > 0) {
        qsort(p->row, (size_t)p->n, sizeof *p->row, by_ms);
        double total = 0.0;
        int64_t launches = 0;
        for (int i = 0; i < p->n; i++) {
            total += p->row[i].ms;
            launches += p->row[i].n;
        }
        fprintf(stderr, "cuda profile: graph of %d nodes computed %lld times unrecorded; per "
                        "compute: %.1f us device time in %.1f timed nodes (each waited for alone)\n",
                p->g_nodes, (long long)p->runs, 1e3 * total / (double)p->runs,
                (double)launches / (double)p->runs);
        fprintf(stderr, "cuda profile: %8s %8s %8s  %s\n", "us/run", "n/run", "us/node", "op kernel node");
        for (int i = 0; i < p->n; i++)
            fprintf(stderr, "cuda profile: %8.1f %8.1f %8.2f  %s\n", 1e3 * p->row[i].ms / (double)p->runs,
                    (double)p->row[i].n / (double)p->runs, 1e3 * p->row[i].ms / (double)p->row[i].n,
                    p->row[i].label);
    }
}

void sc_prof_free(sc_stream *s) {
    sc_prof *p = s->prof;
    if (!p) return;
    prof_print(p);
    if (p->replays > 0)
        fprintf(stderr, "cuda profile: %lld %s replays, %.1f us device time each (last recording: %s)\n",
                (long long)p->replays, p->rec_what[0] ? p->rec_what : "recording", 1e3 * p->replay_ms / (double)p->replays,
                p->rec_desc);
    if (p->ev_ok) {
        cudaEventDestroy(p->ev[0]);
        cudaEventDestroy(p->ev[1]);
    }
    free(p);
    s->prof = NULL;
}
