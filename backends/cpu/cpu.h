/*
 * cpu.h — the two CPU backends' internal interface.
 *
 * "cpu-ref" is the oracle: plain loops, fp64 accumulation, every op of ops.h and every dtype,
 * written to read like SISA.md. "cpu" is the fast path (threads + SIMD-friendly loops), just
 * another backend that the conformance suite checks against the oracle.
 *
 * Both address tensor memory directly: sisa_cpu_data(t) = t->buffer->host_ptr + t->offset.
 */
#ifndef SISA_CPU_H
#define SISA_CPU_H

#include "backend.h"

static inline void *sisa_cpu_data(const sisa_tensor *t) {
    return (char *)t->buffer->host_ptr + t->offset;
}

/* Oracle: compute one node (any op except NONE/VIEW, which are no-ops) from host-addressable
 * sources into its host-addressable destination. Any float dtype, f64 included (reference outputs).
 * A node outside the definition gets INVALID_ARG with a message naming it. */
sisa_status sisa_cpu_ref_compute(const sisa_tensor *node);

/* Fast path. A thread pool is created per stream; n_threads <= 0 means all cores. */
typedef struct sisa_cpu_pool sisa_cpu_pool;
sisa_status sisa_cpu_pool_new(int n_threads, sisa_cpu_pool **out);
void sisa_cpu_pool_free(sisa_cpu_pool *p);
int sisa_cpu_pool_size(const sisa_cpu_pool *p);
/* Run fn(i, arg) for i in [0, n) across the pool; returns when all are done. */
void sisa_cpu_pool_run(sisa_cpu_pool *p, int64_t n, void (*fn)(int64_t i, void *arg), void *arg);

/* Which fast kernel handles the node, or NULL with reason filled. supports_op and the dispatcher
 * both call this: one selection function, no second whitelist. */
typedef sisa_status (*sisa_cpu_fast_kernel)(sisa_cpu_pool *pool, const sisa_tensor *node);
sisa_cpu_fast_kernel sisa_cpu_fast_select(const sisa_tensor *node, char *reason);

extern const sisa_backend_def sisa_backend_cpu_ref;
extern const sisa_backend_def sisa_backend_cpu;

#endif
