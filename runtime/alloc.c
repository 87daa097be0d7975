/*
 * alloc.c — the liveness-based arena allocator (see alloc.h).
 */
#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct block {
    size_t off, size;
} block;

typedef struct chunk_state {
    block *free; /* free blocks below `end`, unordered */
    int n_free, cap_free;
    size_t end;  /* high-water mark */
} chunk_state;

typedef struct planner {
    chunk_state ch[SISA_ARENA_MAX_CHUNKS];
    int n_chunks;
    size_t max_chunk;
} planner;

static size_t align_up(size_t x) { return (x + SISA_ARENA_ALIGN - 1) & ~(size_t)(SISA_ARENA_ALIGN - 1); }

static bool needs_storage(const sisa_tensor *t) {
    if (t->op == SISA_OP_VIEW || t->flags & SISA_TENSOR_PARAM) return false;
    if (t->op == SISA_OP_NONE) return (t->flags & SISA_TENSOR_INPUT) != 0;
    return true;
}

static sisa_status add_free(chunk_state *c, size_t off, size_t size) {
    /* coalesce with neighbours, then with the high-water mark */
    for (int i = 0; i < c->n_free; i++) {
        block *b = &c->free[i];
        if (b->off + b->size == off) {
            off = b->off;
            size += b->size;
            c->free[i--] = c->free[--c->n_free];
        } else if (off + size == b->off) {
            size += b->size;
            c->free[i--] = c->free[--c->n_free];
        }
    }
    if (off + size == c->end) {
        c->end = off;
        return SISA_OK;
    }
    if (c->n_free == c->cap_free) {
        int nc = c->cap_free ? 2 * c->cap_free : 32;
        block *nb = realloc(c->free, (size_t)nc * sizeof *nb);
        if (!nb) return sisa_err(SISA_OUT_OF_MEMORY, "allocator: out of host memory");
        c->free = nb;
        c->cap_free = nc;
    }
    c->free[c->n_free++] = (block){off, size};
    return SISA_OK;
}

/* Best fit over every chunk's free blocks; else grow the chunk with room; else a new chunk. */
static sisa_status take(planner *p, size_t size, int *chunk, size_t *off) {
    int best_c = -1, best_i = -1;
    size_t best = SIZE_MAX;
    for (int c = 0; c < p->n_chunks; c++)
        for (int i = 0; i < p->ch[c].n_free; i++)
            if (p->ch[c].free[i].size >= size && p->ch[c].free[i].size < best) {
                best = p->ch[c].free[i].size;
                best_c = c;
                best_i = i;
            }
    if (best_c >= 0) {
        block *b = &p->ch[best_c].free[best_i];
        *chunk = best_c;
        *off = b->off;
        b->off += size;
        b->size -= size;
        if (b->size == 0) *b = p->ch[best_c].free[--p->ch[best_c].n_free];
        return SISA_OK;
    }
    for (int c = 0; c < p->n_chunks; c++) {
        if (p->ch[c].end + size <= p->max_chunk) {
            *chunk = c;
            *off = p->ch[c].end;
            p->ch[c].end += size;
            return SISA_OK;
        }
    }
    if (size > p->max_chunk)
        return sisa_err(SISA_OUT_OF_MEMORY,
                        "allocator: one tensor needs %zu bytes, more than the device's largest "
                        "allocation (%zu)",
                        size, p->max_chunk);
    if (p->n_chunks == SISA_ARENA_MAX_CHUNKS)
        return sisa_err(SISA_OUT_OF_MEMORY, "allocator: activations need more than %d buffers of %zu bytes",
                        SISA_ARENA_MAX_CHUNKS, p->max_chunk);
    *chunk = p->n_chunks++;
    *off = 0;
    p->ch[*chunk].end = size;
    return SISA_OK;
}

static void planner_free(planner *p) {
    for (int c = 0; c < SISA_ARENA_MAX_CHUNKS; c++) free(p->ch[c].free);
}

/* last_use[i] for every node and leaf index: the last node that reads the tensor's storage. */
static sisa_status liveness(sisa_graph *g, int **node_last, int **leaf_last) {
    *node_last = malloc(sizeof(int) * (size_t)(g->n_nodes + 1));
    *leaf_last = malloc(sizeof(int) * (size_t)(g->n_leafs + 1));
    if (!*node_last || !*leaf_last) return sisa_err(SISA_OUT_OF_MEMORY, "allocator: out of host memory");
    for (int i = 0; i < g->n_nodes; i++) (*node_last)[i] = i;
    for (int i = 0; i < g->n_leafs; i++) (*leaf_last)[i] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        sisa_tensor *n = g->nodes[i];
        for (int s = 0; s < SISA_MAX_SRC; s++) {
            sisa_tensor *b = sisa_tensor_base(n->src[s]);
            if (!b) continue;
            if (b->op == SISA_OP_NONE) (*leaf_last)[b->index] = i;
            else if ((*node_last)[b->index] < i) (*node_last)[b->index] = i;
        }
        if (n->flags & SISA_TENSOR_OUTPUT) {
            sisa_tensor *b = sisa_tensor_base(n);
            if (b->op == SISA_OP_NONE) (*leaf_last)[b->index] = g->n_nodes;
            else (*node_last)[b->index] = g->n_nodes;
        }
    }
    return SISA_OK;
}

sisa_status sisa_alloc_plan_graph(sisa_graph *g, const sisa_device *dev, sisa_alloc_plan *plan) {
    SISA_TRY(sisa_graph_status(g));
    planner p = {.max_chunk = dev && dev->info.max_buffer_bytes ? dev->info.max_buffer_bytes
                                                                : (SIZE_MAX >> 2)};
    p.max_chunk &= ~(size_t)(SISA_ARENA_ALIGN - 1);
    int *node_last = NULL, *leaf_last = NULL;
    sisa_status st = liveness(g, &node_last, &leaf_last);
    /* Inputs first: they are written before anything runs. */
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) {
        sisa_tensor *t = g->leafs[i];
        if (t->flags & SISA_TENSOR_PARAM && !t->buffer) {
            char d[160];
            st = sisa_err(SISA_INTERNAL, "allocator: weight %s has no storage",
                          sisa_tensor_describe(t, d, sizeof d));
        }
        if (st != SISA_OK || !needs_storage(t)) continue;
        t->nbytes_alloc = align_up(sisa_tensor_span_bytes(t));
        st = take(&p, t->nbytes_alloc, &t->chunk, &t->offset);
    }
    for (int i = 0; st == SISA_OK && i < g->n_nodes; i++) {
        sisa_tensor *t = g->nodes[i];
        if (needs_storage(t)) {
            t->nbytes_alloc = align_up(sisa_tensor_span_bytes(t));
            st = take(&p, t->nbytes_alloc, &t->chunk, &t->offset);
        }
        /* release what dies here (never a block the current node still writes) */
        for (int s = 0; st == SISA_OK && s < SISA_MAX_SRC; s++) {
            sisa_tensor *b = sisa_tensor_base(t->src[s]);
            if (!b || !needs_storage(b)) continue;
            int last = b->op == SISA_OP_NONE ? leaf_last[b->index] : node_last[b->index];
            if (last != i) continue;
            /* a tensor read twice by this node is freed once */
            bool dup = false;
            for (int s2 = 0; s2 < s; s2++)
                if (sisa_tensor_base(t->src[s2]) == b) dup = true;
            if (!dup) st = add_free(&p.ch[b->chunk], b->offset, b->nbytes_alloc);
        }
        /* a result nobody reads dies at once */
        if (st == SISA_OK && needs_storage(t) && node_last[i] == i && !(t->flags & SISA_TENSOR_OUTPUT))
            st = add_free(&p.ch[t->chunk], t->offset, t->nbytes_alloc);
    }
    if (st == SISA_OK) {
        memset(plan, 0, sizeof *plan);
        plan->n_chunks = p.n_chunks;
        for (int c = 0; c < p.n_chunks; c++) {
            /* the high-water mark after freeing is not the peak: recompute from tensors */
            plan->chunk_need[c] = 0;
        }
        for (int i = 0; i < g->n_leafs; i++) {
            sisa_tensor *t = g->leafs[i];
            if (needs_storage(t) && t->offset + t->nbytes_alloc > plan->chunk_need[t->chunk])
                plan->chunk_need[t->chunk] = t->offset + t->nbytes_alloc;
        }
        for (int i = 0; i < g->n_nodes; i++) {
            sisa_tensor *t = g->nodes[i];
            if (needs_storage(t) && t->offset + t->nbytes_alloc > plan->chunk_need[t->chunk])
                plan->chunk_need[t->chunk] = t->offset + t->nbytes_alloc;
        }
        for (int c = 0; c < p.n_chunks; c++) plan->total += plan->chunk_need[c];
    }
    free(node_last);
    free(leaf_last);
    planner_free(&p);
    return st;
}

void sisa_arena_init(sisa_arena *a, sisa_device *dev) {
    memset(a, 0, sizeof *a);
    a->dev = dev;
}

void sisa_arena_free(sisa_arena *a) {
    for (int c = 0; c < a->n_chunks; c++) sisa_buffer_free(a->chunks[c]);
    a->n_chunks = 0;
    a->reserved = 0;
}

static bool fits(const sisa_arena *a, const sisa_alloc_plan *plan) {
    if (plan->n_chunks > a->n_chunks) return false;
    for (int c = 0; c < plan->n_chunks; c++)
        if (plan->chunk_need[c] > a->chunks[c]->size) return false;
    return true;
}

static sisa_status grow(sisa_arena *a, const sisa_alloc_plan *plan) {
    for (int c = 0; c < plan->n_chunks; c++) {
        if (c < a->n_chunks && a->chunks[c]->size >= plan->chunk_need[c]) continue;
        if (c < a->n_chunks) {
            a->reserved -= a->chunks[c]->size;
            sisa_buffer_free(a->chunks[c]);
            a->chunks[c] = NULL;
        }
        a->generation++;
        SISA_TRY(sisa_buffer_alloc(a->dev, plan->chunk_need[c], &a->chunks[c]));
        a->reserved += a->chunks[c]->size;
        if (c >= a->n_chunks) a->n_chunks = c + 1;
    }
    return SISA_OK;
}

sisa_status sisa_arena_reserve(sisa_arena *a, sisa_graph *g) {
    sisa_alloc_plan plan;
    SISA_TRY(sisa_alloc_plan_graph(g, a->dev, &plan));
    if (fits(a, &plan)) return SISA_OK;
    return grow(a, &plan);
}

sisa_status sisa_arena_assign(sisa_arena *a, sisa_graph *g) {
    sisa_alloc_plan plan;
    SISA_TRY(sisa_alloc_plan_graph(g, a->dev, &plan));
    if (!fits(a, &plan)) {
        a->n_reallocs++;
        SISA_TRY(grow(a, &plan));
    }
    for (int i = 0; i < g->n_leafs; i++) {
        sisa_tensor *t = g->leafs[i];
        if (needs_storage(t)) t->buffer = a->chunks[t->chunk];
    }
    for (int i = 0; i < g->n_nodes; i++) {
        sisa_tensor *t = g->nodes[i];
        if (needs_storage(t)) {
            t->buffer = a->chunks[t->chunk];
        } else if (t->op == SISA_OP_VIEW) {
            /* views are created after their source, so the source is already placed */
            t->buffer = t->view_src->buffer;
            t->offset = t->view_src->offset + t->view_offset;
        }
    }
    return SISA_OK;
}
