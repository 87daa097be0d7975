/*
 * alloc.h — liveness-based arena allocator for a graph's activations.
 *
 * One pass over the nodes in execution order: a node's result gets the best-fitting free block,
 * and a tensor's block is returned to the free list right after its last consumer (views extend
 * the life of what they alias). Blocks live in "chunks", each one device buffer no larger than
 * the device's largest allocation, so a 4 GB activation set still works on a Vulkan device whose
 * allocations stop at 2 GB. Reserve once from the worst-case graph (sisa_arena_reserve); later
 * graphs of the same model reuse the chunks without allocating.
 */
#ifndef SISA_ALLOC_H
#define SISA_ALLOC_H

#include "backend.h"

#define SISA_ARENA_MAX_CHUNKS 16
#define SISA_ARENA_ALIGN 256

typedef struct sisa_arena {
    sisa_device *dev;
    int n_chunks;
    sisa_buffer *chunks[SISA_ARENA_MAX_CHUNKS];
    size_t reserved; /* total bytes held */
    int n_reallocs;  /* times a graph did not fit and the arena had to grow (reported) */
    unsigned generation; /* bumped whenever a chunk is (re)allocated: storage assigned under an
                          * older generation points at freed buffers and must be assigned again */
} sisa_arena;

typedef struct sisa_alloc_plan {
    int n_chunks;
    size_t chunk_need[SISA_ARENA_MAX_CHUNKS];
    size_t total;
} sisa_alloc_plan;

void sisa_arena_init(sisa_arena *a, sisa_device *dev);
void sisa_arena_free(sisa_arena *a);
/* Plan offsets for g without touching any device: fills plan, and records each tensor's chunk
 * and offset in the graph (tensor->offset; chunk index kept in an internal field). */
sisa_status sisa_alloc_plan_graph(sisa_graph *g, const sisa_device *dev, sisa_alloc_plan *plan);
/* Make sure the arena can hold graph g (planning it), growing only when it must. */
sisa_status sisa_arena_reserve(sisa_arena *a, sisa_graph *g);
/* Plan g and give every node and input its buffer + offset inside the arena. */
sisa_status sisa_arena_assign(sisa_arena *a, sisa_graph *g);

#endif
