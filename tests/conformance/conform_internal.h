/*
 * conform_internal.h — what the harness's files share and the outside does not need: the seeded
 * generator, input distributions, a case built into a graph, and a graph placed on a device with
 * guard bytes around every tensor.
 */
#ifndef SISA_CONFORM_INTERNAL_H
#define SISA_CONFORM_INTERNAL_H

#include "conform.h"
#include "error.h"

/* ---- random numbers: splitmix64 + Box-Muller; identical on every platform ---- */

typedef struct conform_rng {
    uint64_t s;
} conform_rng;

uint64_t conform_rng_next(conform_rng *r);
double conform_rng_uniform(conform_rng *r); /* [0, 1) */
double conform_rng_normal(conform_rng *r);  /* N(0, 1) */
/* The stream of a case: the base seed mixed with the case string, so a case's inputs depend on
 * (seed, case text) only — not on which other cases ran before it. */
uint64_t conform_case_seed(uint64_t seed, const char *case_str);

/* ---- input distributions ---- */

enum conform_gen_kind {
    GEN_NORMAL = 0,     /* N(a, b) */
    GEN_UNIFORM,        /* U[a, b) */
    GEN_IDS,            /* integers in [0, a); with b > 0 in [-b, a + b) (out-of-range ids) */
    GEN_DECAY,          /* rows (innermost dim) of g_t = sum_{k<=t} -softplus(N(a, b)): a realistic
                           cumulative log-decay; a is the step's bias (-5 = trained init) */
    GEN_COPY_COLS,      /* row r of this = columns [b, b + n) of row r of leaf (int)a
                           (form B decode: gq = gk at the query positions) */
    GEN_MASKED,         /* N(0, a) with -inf above the causal diagonal of each (T, T) row block,
                           plus one row of -inf only (SOFTMAX's "rows of -inf give 0s") */
    GEN_ARGMAX,         /* N(0, 1) rows; row 1 has a tie for the max, row 2 a NaN */
    GEN_WIDE,           /* +-10^U(-9, 6): subnormals and overflow for dtype conversions */
    GEN_POISON_TAIL,    /* N(0, 1), but rows (dim 2) >= (int)a are NaN: KV-cache slots past the
                           last visible position, which SDPA must never read */
};

typedef struct conform_gen {
    int kind;
    double a, b;
} conform_gen;

/* ---- a case built into a graph ---- */

#define CONFORM_MAX_LEAFS 256

typedef struct conform_built {
    sisa_graph *g;
    sisa_tensor *out;                   /* the node under test / the graph's output */
    conform_gen gen[CONFORM_MAX_LEAFS]; /* by leaf index */
    double flops;                       /* for perf (0 = not counted) */
} conform_built;

/* Build the graph of a level-2 op case. INVALID_ARG names the bad key/value. */
sisa_status conform_build_case(const conform_case *c, conform_built *b);
void conform_built_free(conform_built *b);
/* A leaf input with its distribution. */
sisa_tensor *conform_input(conform_built *b, const char *name, sisa_dtype dt, const int64_t shape[4],
                           conform_gen gen);
/* The same, seen through a layout: "contig" (the leaf itself), "perm" (a permuted view of a leaf
 * stored in another order), "tperm" (innermost two dims swapped: rows are not contiguous),
 * "slice" (channels [5, 5 + n) of rows of n + 11). */
sisa_tensor *conform_input_layout(conform_built *b, const char *name, sisa_dtype dt,
                                  const int64_t shape[4], const char *layout, conform_gen gen);

/* ---- a graph placed on a device ---- */

struct conform_dev {
    sisa_device *dev;
    sisa_stream *stream;
    const char *name; /* backend name as the rows say it */
};

#define CONFORM_GUARD 1024 /* bytes before and after every tensor's storage */

typedef struct conform_slot {
    sisa_buffer *buf; /* NULL: no storage of its own (a view) */
    size_t span;      /* bytes of the tensor (without guards) */
    unsigned char *host; /* leaves: the bytes written (kept to check the device left them alone) */
} conform_slot;

typedef struct conform_exec {
    conform_dev *cd;
    sisa_graph *g;
    conform_slot *leaf, *node;
} conform_exec;

/* One buffer per leaf and per non-view node, guard bytes on both sides (a pattern), node outputs
 * pre-filled with 0xFF bytes (NaN in every float dtype, -1 as an index) so that an element a
 * kernel forgets to write shows up. Views get their base's buffer and offset. */
sisa_status conform_exec_place(conform_exec *x, conform_dev *cd, sisa_graph *g);
/* Generate every leaf's values from its distribution (rounded to the leaf's dtype) and upload. */
sisa_status conform_exec_fill(conform_exec *x, const conform_built *b, uint64_t seed);
/* graph_compute over all nodes + synchronize. */
sisa_status conform_exec_run(conform_exec *x);
/* Guard bytes around every tensor, then every leaf's bytes unchanged. 0 = intact; otherwise
 * 1 (guard) or 2 (input) with msg naming the tensor and the first bad byte. */
int conform_exec_check(conform_exec *x, char *msg, size_t len);
void conform_exec_free(conform_exec *x);

/* The oracle on host copies of the node's sources as they are on the device now (read back),
 * computing into an f32 destination (or i32 for ARGMAX); ref gets nelements(node) values. */
sisa_status conform_oracle(const sisa_tensor *node, double *ref);
/* A tensor's values as doubles (malloc'ed, element order). */
sisa_status conform_read(const sisa_tensor *t, double **out);
/* The checks after the guards: NaN, Inf positions, normalised error (or exact / index equality).
 * ref is the oracle's f32 result; it is rounded to node's dtype first ("the result is rounded
 * once to dst's dtype", ops.h). Fills r's verdict, check, detail, errors, threshold. */
void conform_compare(const sisa_tensor *node, const double *dev, const double *ref,
                     const conform_threshold *th, conform_result *r);

/* Level 1 and level-2 graph runners (identity.c, graph.c). */
sisa_status conform_run_identity(conform_dev *cd, const conform_options *o, const conform_case *c,
                                 uint64_t seed, conform_report *rep);
sisa_status conform_run_graph(conform_dev *cd, const conform_options *o, const conform_case *c,
                              uint64_t seed, conform_result *r);
/* The tiny model graph of a GRAPH case (graph.c; the model's own builder where runtime/model.h
 * provides one). */
sisa_status conform_build_graph_case(const conform_case *c, conform_built *b);

/* Fill the common identity fields of a row. */
void conform_result_init(conform_result *r, const conform_dev *cd, const conform_case *c,
                         uint64_t seed);
void conform_set(conform_result *r, int verdict, const char *check, const char *fmt, ...)
    SISA_PRINTF(4, 5);

double conform_now_ms(void);

#endif
