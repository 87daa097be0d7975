/*
 * sched.h — placing a graph on a device and running it.
 *
 * Strict by default: a node the device cannot run (supports_op says no) is an error that names
 * the node, the op, the device and the device's reason. With allow_fallback, such a node runs on
 * the CPU oracle instead — its sources are read back to the host, computed, and the result is
 * written to the device — and every fallback is listed in the report. Never silent.
 */
#ifndef SISA_SCHED_H
#define SISA_SCHED_H

#include "alloc.h"

typedef struct sisa_sched {
    sisa_device *dev;
    sisa_stream *stream;
    bool allow_fallback;
    sisa_arena arena;
    int n_fallback;     /* nodes of the last placed graph that fell back to the CPU */
    /* profiling (off by default): every node is run and waited for on its own, so the
     * per-op times add up to more than a normal run; they say where the time goes. */
    bool profile;
    double op_seconds[SISA_OP_COUNT];
    int64_t op_calls[SISA_OP_COUNT];
    char report[2048];  /* one line per fallback node (truncated) */
} sisa_sched;

sisa_status sisa_sched_new(sisa_device *dev, bool allow_fallback, sisa_sched **out);
void sisa_sched_free(sisa_sched *s);
/* Decide placement (strict or fallback) and give every node storage. */
sisa_status sisa_sched_prepare(sisa_sched *s, sisa_graph *g);
/* Run the whole prepared graph and wait for it. */
sisa_status sisa_sched_compute(sisa_sched *s, sisa_graph *g);
/* Recorded replay (backends that offer it, sched.c): record the prepared graph g once (every node
 * on the device, profiling off; otherwise *rec = NULL and SISA_OK: compute normally). replay
 * first tells the backend about the nodes whose params/offsets the caller changed since the last
 * replay (indices into g->nodes), then runs the recording and waits. release frees it. */
sisa_status sisa_sched_record(sisa_sched *s, sisa_graph *g, void **rec);
sisa_status sisa_sched_replay(sisa_sched *s, sisa_graph *g, void *rec, const int *changed, int n);
/* The parts of replay, for callers that overlap host work with the device: update tells the
 * backend about changed nodes (allowed while an earlier replay runs: it affects later ones only),
 * launch starts the recording without waiting, sync waits for the stream. */
sisa_status sisa_sched_update(sisa_sched *s, sisa_graph *g, void *rec, const int *changed, int n);
sisa_status sisa_sched_launch(sisa_sched *s, void *rec);
sisa_status sisa_sched_sync(sisa_sched *s);
void sisa_sched_release(sisa_sched *s, void *rec);
/* The per-op profile as a table (ops by time), into buf. */
void sisa_sched_profile_table(const sisa_sched *s, char *buf, size_t len);

#endif
