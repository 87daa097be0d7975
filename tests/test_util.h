/*
 * test_util.h — small helpers shared by the engine's tests.
 *
 * Tests build graphs with the graph builders (runtime/graph.h) and need nothing else from the
 * runtime to run them on the oracle: tu_host gives every tensor host memory (with guard bytes
 * around it, and outputs pre-filled with NaN so an element a kernel forgets to write is caught),
 * tu_run_ref runs a graph node by node on the CPU reference kernels, and the comparison helpers
 * measure what the conformance suite measures: the normalised error ||a - ref|| / ||ref||.
 *
 * All randomness comes from a seeded tu_rng, so a failure reproduces from the printed seed.
 */
#ifndef SISA_TEST_UTIL_H
#define SISA_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "error.h"
#include "graph.h"

/* ---- seeded random numbers (splitmix64) ---- */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;

tu_rng tu_rng_new(uint64_t seed);
uint64_t tu_rng_u64(tu_rng *r);
double tu_rng_uniform(tu_rng *r, double lo, double hi); /* [lo, hi) */
double tu_rng_normal(tu_rng *r, double mean, double std);

/* ---- host storage for graph tensors ---- */
typedef struct tu_host tu_host;

tu_host *tu_host_new(void);
void tu_host_free(tu_host *h); /* frees the memory; tensors keep dangling buffer pointers */
/* Give t storage. A leaf gets a fresh zeroed block, a computed node a block filled with NaN
 * bytes (0xFF), each between guard bytes; a VIEW points into its view_src's storage, which must
 * already be bound. Returns false (and prints why) on failure. */
bool tu_host_bind(tu_host *h, sisa_tensor *t);
/* Bind every leaf, then every node of g in order. */
bool tu_host_bind_graph(tu_host *h, sisa_graph *g);
/* True when every guard byte around every block is intact; prints the offending tensor. */
bool tu_host_guards_ok(const tu_host *h);

/* ---- element access: any dtype, any strides ---- */
double tu_get(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3);
void tu_set(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, double v);
/* Fill in element order (i0 outermost): from an array, a constant, uniform or normal values.
 * Values are rounded to t's dtype on the store. */
void tu_fill_values(const sisa_tensor *t, const double *v);
void tu_fill_const(const sisa_tensor *t, double v);
void tu_fill_uniform(const sisa_tensor *t, tu_rng *r, double lo, double hi);
void tu_fill_normal(const sisa_tensor *t, tu_rng *r, double mean, double std);
/* Read t into v (element order); v holds sisa_tensor_nelements(t) doubles. */
void tu_read_values(const sisa_tensor *t, double *v);
void tu_print(const sisa_tensor *t, int64_t max_elems);

/* ---- running on the oracle ---- */
/* sisa_cpu_ref_compute on every node of g in order; prints the failing node's error. */
sisa_status tu_run_ref(sisa_graph *g);

/* ---- comparisons ---- */
/* ||a - ref|| / ||ref|| (2-norms over all elements; ||a - ref|| alone when ref is all zeros).
 * INFINITY when the shapes differ, when either side has a NaN, or when an Inf of ref is not the
 * same Inf in a (Inf positions must agree; they are left out of the norms). */
double tu_norm_err(const sisa_tensor *a, const sisa_tensor *ref);
/* Same on two arrays of n doubles. */
double tu_norm_err_values(const double *a, const double *ref, int64_t n);
/* ||a - ref|| / ||ref|| over n floats (logits); INFINITY when a has a NaN or Inf. */
double tu_norm_err_f32(const float *a, const float *ref, size_t n);
double tu_max_abs_diff(const sisa_tensor *a, const sisa_tensor *b); /* INFINITY on shape mismatch */
bool tu_all_finite(const sisa_tensor *t);

/* Remove a model directory written by sisa_model_init_dir (its two files, then the directory). */
void tu_remove_model_dir(const char *dir);

/* ---- a minimal check harness ---- */
extern int tu_checks, tu_failures;
/* Count a check; print the message (with file:line) when cond is false. */
bool tu_check_(bool cond, const char *file, int line, const char *fmt, ...) SISA_PRINTF(4, 5);
#define TU_CHECK(cond, ...) tu_check_((cond), __FILE__, __LINE__, __VA_ARGS__)
/* |got - want| <= tol; prints both values (and the difference) when it is not. */
#define TU_CHECK_NEAR(got, want, tol, what)                                                        \
    tu_check_near_((got), (want), (tol), (what), __FILE__, __LINE__)
bool tu_check_near_(double got, double want, double tol, const char *what, const char *file,
                    int line);
/* A measured number worth reporting ("name: value"), printed in the test log. */
void tu_note(const char *fmt, ...) SISA_PRINTF(1, 2);
/* Print the summary; returns the process exit code (0 when every check passed). */
int tu_report(const char *suite);

#endif
