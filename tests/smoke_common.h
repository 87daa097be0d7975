/*
 * smoke_common.h — what the per-backend smoke tests (test_cuda_smoke.c, test_opencl_smoke.c,
 * test_vulkan_smoke.c) share: the graph-case builders they have in common, and the runner that
 * builds each case twice, runs it on "cpu-ref" (the fp64 oracle) and on the backend under test
 * through the scheduler in strict mode, with identical seeded inputs, and compares every output
 * by ||backend - ref|| / ||ref|| (exact match where the tolerance is 0, e.g. ARGMAX).
 *
 * What differs per backend stays in its own file: its extra cases and case order, the input
 * values where they differ (Vulkan), the device info line, and environment such as the Vulkan
 * pipeline cache and validation-layer counting (Vulkan probes its device itself for that reason).
 */
#ifndef SISA_TESTS_SMOKE_COMMON_H
#define SISA_TESTS_SMOKE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "graph.h"

#define SMOKE_MAX_OUT 4

typedef struct smoke_outs {
    sisa_tensor *t[SMOKE_MAX_OUT];
    double tol[SMOKE_MAX_OUT]; /* 0 = exact */
    int64_t nel[SMOKE_MAX_OUT];
    int n;
} smoke_outs;

typedef void (*smoke_build_fn)(sisa_graph *g, smoke_outs *o);
/* the input value of element k of leaf #idx (leaves numbered in the graph's order) */
typedef double (*smoke_value_fn)(const sisa_tensor *t, int idx, int64_t k);

typedef struct smoke_case {
    const char *name;
    smoke_build_fn fn;
} smoke_case;

/* One backend's runner: its name, how its leaves are filled and how its lines are printed. */
typedef struct smoke_runner {
    const char *backend;  /* "cuda", "opencl", "vulkan" */
    smoke_value_fn value; /* the inputs: smoke_value unless the backend needs others */
    int name_width;       /* width of the case-name column */
    const char *err_word; /* printed between "outN" and the error: " err" or "" */
    int failures, checks;
} smoke_runner;

/* Marks t an output compared with tolerance tol (0 = exact). */
void smoke_out(smoke_outs *o, sisa_tensor *t, double tol);

/* splitmix64 and a uniform value in [-1, 1) from (i, k): the seeded inputs. */
uint64_t smoke_mix(uint64_t x);
double smoke_uniform(uint64_t i, uint64_t k);

/* Default inputs: value k of leaf #idx from (idx, k) and the leaf's name prefix: alpha logits
 * spread around 0, theta small, big* wide, ids in [0, 50). */
double smoke_value(const sisa_tensor *t, int idx, int64_t k);

/* 0 when backend is compiled in and has a device; otherwise prints "SKIP: ..." with the reason
 * (label: the backend's name in prose, e.g. "CUDA") and returns 77. */
int smoke_probe(const char *backend, const char *label);

/* Runs one case on cpu-ref and on r->backend and prints one "ok"/"FAIL" line. */
void smoke_run_case(smoke_runner *r, const char *name, smoke_build_fn build);
/* Runs n cases of a table in order. */
void smoke_run_cases(smoke_runner *r, const smoke_case *cases, size_t n);

#define IN(g, name, dt, a, b, c, d) sisa_graph_input(g, name, dt, a, b, c, d)
#define SMOKE_F32_TOL 2e-6
#define SMOKE_SDPA_TOL 1e-5
#define SMOKE_BF16_TOL 1.5e-2

/* SDPA with scale 0.125 and the given causal flag, p0, decay gates and d_content. */
sisa_tensor *smoke_sdpa(sisa_graph *g, sisa_tensor *q, sisa_tensor *k, sisa_tensor *v, int causal,
                        int p0, sisa_tensor *gq, sisa_tensor *gk, int dc);

/* ---- the shared builders (see smoke_common.c for what each covers) ---- */
void smoke_matmul_flat(sisa_graph *g, smoke_outs *o);
void smoke_matmul_batched(sisa_graph *g, smoke_outs *o);
void smoke_matmul_bf16(sisa_graph *g, smoke_outs *o);
void smoke_matmul_views(sisa_graph *g, smoke_outs *o);
void smoke_rms_norm(sisa_graph *g, smoke_outs *o);
void smoke_sdpa_a(sisa_graph *g, smoke_outs *o);
void smoke_sdpa_decode(sisa_graph *g, smoke_outs *o);
void smoke_sdpa_odd(sisa_graph *g, smoke_outs *o);
/* SSM_DECAY -> SSM_CHANNELS (mode) over T positions: B 2, H 3, d_s 16 */
void smoke_ssm(sisa_graph *g, smoke_outs *o, int mode, int64_t T);
void smoke_ssm_a(sisa_graph *g, smoke_outs *o); /* smoke_ssm, AUGMENTED, T = 200 */
void smoke_ssm_b(sisa_graph *g, smoke_outs *o); /* smoke_ssm, FACTORED, T = 200 */
void smoke_ssm_carry(sisa_graph *g, smoke_outs *o);
/* SISA attention forms A and B on SISA's pieces (modes: 1 << SISA_SSM_AUGMENTED | 1 << ...) */
#define SMOKE_BOTH_MODES ((1 << SISA_SSM_AUGMENTED) | (1 << SISA_SSM_FACTORED))
void smoke_sisa_attention_on(sisa_graph *g, smoke_outs *o, int64_t B, int64_t T, sisa_dtype dt,
                             int modes, double tol);
void smoke_sisa_attention(sisa_graph *g, smoke_outs *o); /* f32, B 1, T 70, both forms */
void smoke_small_ops(sisa_graph *g, smoke_outs *o);
void smoke_small_ops2(sisa_graph *g, smoke_outs *o);

/* Case tables shared by the CUDA and OpenCL tests (same names, same order in both). */
extern const smoke_case smoke_matmul_cases[4]; /* flat, batched, bf16 weight/dst, views */
extern const smoke_case smoke_sdpa_cases[3];   /* A causal 80/64, decode p0, non-causal odd */
extern const smoke_case smoke_ssm_cases[3];    /* SSM A, SSM B, carry-in */
extern const smoke_case smoke_small_cases[2];  /* ADD..ARGMAX, ROPE EMBED CPY */
#define SMOKE_N(table) (sizeof(table) / sizeof((table)[0]))

#endif
