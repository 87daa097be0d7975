/*
 * sched.c — placement, strict or with explicit fallback, and execution (see sched.h).
 */
#include "sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../backends/cpu/cpu.h"
#include "error.h"

enum { PLACE_DEVICE = 0, PLACE_HOST = 1 };

sisa_status sisa_sched_new(sisa_device *dev, bool allow_fallback, sisa_sched **out) {
    *out = NULL;
    sisa_sched *s = calloc(1, sizeof *s);
    if (!s) return sisa_err(SISA_OUT_OF_MEMORY, "scheduler: out of host memory");
    s->dev = dev;
    s->allow_fallback = allow_fallback;
    sisa_arena_init(&s->arena, dev);
    sisa_status st = dev->iface->stream_new(dev, &s->stream);
    if (st != SISA_OK) {
        free(s);
        return sisa_err_prefix(st, "backend '%s': creating a stream", dev->backend->name);
    }
    s->stream->device = dev;
    *out = s;
    return SISA_OK;
}

void sisa_sched_free(sisa_sched *s) {
    if (!s) return;
    sisa_arena_free(&s->arena);
    if (s->stream) s->stream->iface->free(s->stream);
    free(s);
}

static sisa_status place(sisa_sched *s, sisa_graph *g) {
    s->n_fallback = 0;
    s->report[0] = '\0';
    for (int i = 0; i < g->n_nodes; i++) {
        sisa_tensor *n = g->nodes[i];
        n->device = PLACE_DEVICE;
        if (n->op == SISA_OP_VIEW) continue;
        char reason[SISA_REASON_LEN] = "";
        if (s->dev->iface->supports_op(s->dev, n, reason)) continue;
        char d[160];
        if (!s->allow_fallback)
            return sisa_err(SISA_UNSUPPORTED,
                            "backend '%s' device '%s' cannot run node %d %s (op %s): %s "
                            "(strict placement; allow fallback to run it on the CPU)",
                            s->dev->backend->name, s->dev->info.name, i,
                            sisa_tensor_describe(n, d, sizeof d), sisa_op_name(n->op), reason);
        n->device = PLACE_HOST;
        s->n_fallback++;
        size_t used = strlen(s->report);
        snprintf(s->report + used, sizeof s->report - used, "node %d %s (op %s) -> cpu: %s\n", i,
                 n->name, sisa_op_name(n->op), reason);
    }
    return SISA_OK;
}

sisa_status sisa_sched_prepare(sisa_sched *s, sisa_graph *g) {
    SISA_TRY(sisa_graph_status(g));
    SISA_TRY(place(s, g));
    return sisa_arena_assign(&s->arena, g);
}

/* A host copy of the bytes a tensor reads (its whole storage root) so the oracle can run. */
typedef struct host_copy {
    sisa_tensor t;
    sisa_buffer buf;
    void *mem;
} host_copy;

static sisa_status mirror(const sisa_tensor *src, host_copy *h) {
    sisa_tensor *base = sisa_tensor_base((sisa_tensor *)src);
    size_t span = base->nbytes_alloc ? base->nbytes_alloc : sisa_tensor_span_bytes(base);
    if (base->offset + span > base->buffer->size) span = base->buffer->size - base->offset;
    h->mem = malloc(span ? span : 1);
    if (!h->mem) return sisa_err(SISA_OUT_OF_MEMORY, "fallback: out of host memory for '%s'", src->name);
    SISA_TRY(base->buffer->iface->read(base->buffer, base->offset, h->mem, span));
    h->t = *src;
    h->buf = (sisa_buffer){.size = span, .host_ptr = h->mem};
    h->t.buffer = &h->buf;
    h->t.offset = src->offset - base->offset;
    return SISA_OK;
}

static sisa_status run_on_host(sisa_sched *s, sisa_tensor *n) {
    host_copy srcs[SISA_MAX_SRC] = {0}, dst = {0};
    sisa_status st = SISA_OK;
    sisa_tensor node = *n;
    for (int i = 0; st == SISA_OK && i < SISA_MAX_SRC; i++) {
        if (!n->src[i]) continue;
        st = mirror(n->src[i], &srcs[i]);
        node.src[i] = &srcs[i].t;
    }
    size_t span = sisa_tensor_span_bytes(n);
    if (st == SISA_OK) {
        dst.mem = malloc(span ? span : 1);
        if (!dst.mem) st = sisa_err(SISA_OUT_OF_MEMORY, "fallback: out of host memory");
    }
    if (st == SISA_OK) {
        dst.buf = (sisa_buffer){.size = span, .host_ptr = dst.mem};
        node.buffer = &dst.buf;
        node.offset = 0;
        st = sisa_cpu_ref_compute(&node);
    }
    if (st == SISA_OK) st = n->buffer->iface->write(n->buffer, n->offset, dst.mem, span);
    for (int i = 0; i < SISA_MAX_SRC; i++) free(srcs[i].mem);
    free(dst.mem);
    if (st != SISA_OK) return sisa_err_prefix(st, "fallback of node '%s' on the CPU", n->name);
    (void)s;
    return SISA_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One node at a time, each waited for, timed per op (see sched.h). */
static sisa_status compute_profiled(sisa_sched *s, sisa_graph *g) {
    const sisa_stream_iface *si = s->stream->iface;
    SISA_TRY(si->synchronize(s->stream));
    for (int i = 0; i < g->n_nodes; i++) {
        sisa_tensor *n = g->nodes[i];
        if (n->op == SISA_OP_VIEW) continue;
        double t0 = now_s();
        if (n->device == PLACE_DEVICE) {
            SISA_TRY(si->graph_compute(s->stream, g, i, i + 1));
            SISA_TRY(si->synchronize(s->stream));
        } else {
            SISA_TRY(run_on_host(s, n));
        }
        s->op_seconds[n->op] += now_s() - t0;
        s->op_calls[n->op]++;
    }
    return SISA_OK;
}

void sisa_sched_profile_table(const sisa_sched *s, char *buf, size_t len) {
    double total = 0;
    for (int op = 0; op < SISA_OP_COUNT; op++) total += s->op_seconds[op];
    int n = snprintf(buf, len, "| op | calls | seconds | share |\n|---|---|---|---|\n");
    bool done[SISA_OP_COUNT] = {0};
    for (;;) { /* ops by decreasing time */
        int best = -1;
        for (int op = 0; op < SISA_OP_COUNT; op++)
            if (!done[op] && s->op_calls[op] && (best < 0 || s->op_seconds[op] > s->op_seconds[best]))
                best = op;
        if (best < 0 || n < 0 || (size_t)n >= len) break;
        done[best] = true;
        n += snprintf(buf + n, len - (size_t)n, "| %s | %lld | %.4f | %.1f%% |\n", sisa_op_name(best),
                      (long long)s->op_calls[best], s->op_seconds[best],
                      total > 0 ? 100.0 * s->op_seconds[best] / total : 0.0);
    }
}

sisa_status sisa_sched_compute(sisa_sched *s, sisa_graph *g) {
    if (s->profile) return compute_profiled(s, g);
    const sisa_stream_iface *si = s->stream->iface;
    int i = 0;
    while (i < g->n_nodes) {
        int j = i;
        while (j < g->n_nodes && g->nodes[j]->device == PLACE_DEVICE) j++;
        if (j > i) SISA_TRY(si->graph_compute(s->stream, g, i, j));
        if (j < g->n_nodes) {
            SISA_TRY(si->synchronize(s->stream));
            SISA_TRY(run_on_host(s, g->nodes[j]));
            j++;
        }
        i = j;
    }
    return si->synchronize(s->stream);
}

sisa_status sisa_sched_record(sisa_sched *s, sisa_graph *g, void **rec) {
    *rec = NULL;
    const sisa_stream_iface *si = s->stream->iface;
    if (!si->graph_record || s->profile || s->n_fallback > 0) return SISA_OK;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->device != PLACE_DEVICE) return SISA_OK;
    return si->graph_record(s->stream, g, 0, g->n_nodes, rec);
}

sisa_status sisa_sched_update(sisa_sched *s, sisa_graph *g, void *rec, const int *changed, int n) {
    const sisa_stream_iface *si = s->stream->iface;
    for (int i = 0; i < n; i++)
        if (i == 0 || changed[i] != changed[i - 1]) SISA_TRY(si->graph_update(s->stream, rec, g, changed[i]));
    return SISA_OK;
}

sisa_status sisa_sched_launch(sisa_sched *s, void *rec) {
    return s->stream->iface->graph_replay(s->stream, rec);
}

sisa_status sisa_sched_sync(sisa_sched *s) { return s->stream->iface->synchronize(s->stream); }

sisa_status sisa_sched_replay(sisa_sched *s, sisa_graph *g, void *rec, const int *changed, int n) {
    SISA_TRY(sisa_sched_update(s, g, rec, changed, n));
    SISA_TRY(sisa_sched_launch(s, rec));
    return sisa_sched_sync(s);
}

void sisa_sched_release(sisa_sched *s, void *rec) {
    if (rec && s->stream->iface->graph_release) s->stream->iface->graph_release(s->stream, rec);
}
