/*
 * conform.h — the conformance harness: every backend against the CPU oracle (DESIGN.md,
 * "Conformance"; docs/CONFORMANCE.md says how to run it and what each level checks).
 *
 * A static library linked by the meson tests (tests/conformance/conform_main.c) and by the
 * `sisa conform` command (tools/sisa/cmd_conform.c). It drives devices only through
 * runtime/backend.h: a new backend is conformance-tested as soon as it is in the registry.
 *
 *   level 1 "identity"  the augmented score identity of SISA.md, built on the device from the raw
 *                       inputs, against an fp64 host construction; form A vs form B SDPA.
 *   level 2 "ops"       every op x dtype x shape case against sisa_cpu_ref_compute.
 *   level 2 "graph"     a whole tiny model graph on the device, every node compared with the
 *                       oracle run on the device's own inputs of that node: the first bad node
 *                       is named.
 *
 * Files: cases.c (the case list and the case-string grammar), build.c (case -> graph + input
 * distributions), thresholds.c (THE threshold table), run.c (placing and running a graph on a
 * device with guard bytes, the oracle, the checks), identity.c (level 1), graph.c (level 2 graph),
 * driver.c (backends x devices x levels x seeds), report.c (human table, JSON).
 *
 * Library code never calls exit() or abort(): every failure is a result row or a status.
 */
#ifndef SISA_CONFORM_H
#define SISA_CONFORM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"

/* ---- cases ------------------------------------------------------------------------------------
 * A case is one line of text, which is also how it is reproduced on the command line:
 *     "<KIND> <dtype> key=value key=value ..."
 * KIND is an op name of ops.h (level 2 ops), IDENTITY (level 1) or GRAPH (level 2 graph);
 * dtype is the storage dtype of the case's float tensors (f32, f16, bf16). The keys a kind reads
 * and their defaults are listed in build.c; an unknown key is an error (typos do not silently
 * test something else). */

#define CONFORM_CASE_LEN 256
#define CONFORM_MAX_KV 20
#define CONFORM_KEY_LEN 16
#define CONFORM_VAL_LEN 40

enum conform_level { CONFORM_LEVEL_OPS = 0, CONFORM_LEVEL_IDENTITY = 1, CONFORM_LEVEL_GRAPH = 2 };

typedef struct conform_case {
    char str[CONFORM_CASE_LEN]; /* the canonical text (what --case takes) */
    int level;                  /* enum conform_level */
    int op;                     /* enum sisa_op for level OPS, else -1 */
    sisa_dtype dtype;
    bool full_only;             /* big shapes: only with --full */
    int n_kv;
    char key[CONFORM_MAX_KV][CONFORM_KEY_LEN];
    char val[CONFORM_MAX_KV][CONFORM_VAL_LEN];
} conform_case;

/* Parse a case string. INVALID_ARG with a message naming the bad token. */
sisa_status conform_case_parse(const char *s, conform_case *c);
/* The built-in case list (every level, every dtype; full_only marks the --full ones).
 * *out is malloc'ed; returns the count or -1 (out of memory). */
int conform_case_list(conform_case **out);
/* Parameter access (build.c, identity.c, graph.c): the value of key, or def when absent. */
int64_t conform_case_int(const conform_case *c, const char *key, int64_t def);
double conform_case_num(const conform_case *c, const char *key, double def);
const char *conform_case_str(const conform_case *c, const char *key, const char *def);
bool conform_case_has(const conform_case *c, const char *key);
/* Check that every key of c is one of the names in `known` (NULL-terminated). */
sisa_status conform_case_check_keys(const conform_case *c, const char *const *known);

/* ---- thresholds (thresholds.c: THE table) ------------------------------------------------------
 * Keyed by a name (an op name, or a level-1 check: "IDENTITY", "FORMS_AGREE", "FORMS_DIFFER") and
 * the destination dtype. Every number carries the reason it is that number. */
typedef struct conform_threshold {
    const char *key;
    sisa_dtype dtype;
    double tol;         /* normalised error ||dev - ref|| / ||ref|| must be <= tol */
    bool exact;         /* bit-exact against the oracle rounded to the destination dtype */
    const char *reason;
} conform_threshold;

/* The row for (key, dtype); NULL when the table has none (the caller reports that as a failure
 * of the harness, never as a pass). */
const conform_threshold *conform_threshold_find(const char *key, sisa_dtype dt);
/* The whole table, for docs and `sisa conform --thresholds`. */
const conform_threshold *conform_threshold_table(int *n);

/* ---- results -------------------------------------------------------------------------------- */

enum conform_verdict {
    CONFORM_PASS = 0,
    CONFORM_FAIL,        /* a check failed (guard, NaN, Inf, error, wrong index) */
    CONFORM_ERROR,       /* the device returned an error running a supported case */
    CONFORM_UNSUPPORTED, /* supports_op said no (a failure in test mode when required) */
    CONFORM_SKIP,        /* not applicable here (dtype the device lacks, perf of an absent op) */
};

typedef struct conform_result {
    char backend[32];
    int device;
    char device_name[128];
    char case_str[CONFORM_CASE_LEN];
    int level, op;
    sisa_dtype dtype;
    uint64_t seed;
    int verdict;
    bool required;       /* an unsupported required case counts as a failure (strict) */
    double max_err;      /* max |dev - ref| over finite positions */
    double norm_err;     /* ||dev - ref|| / ||ref|| */
    double threshold;
    bool threshold_is_min; /* FORMS_DIFFER: the error must EXCEED the threshold */
    const char *threshold_reason;
    char check[24];      /* the check that failed: guard, input, nan, inf, error, index, run, ... */
    char detail[640];    /* why (failures, unsupported reasons, first bad node) */
    double ms;           /* perf: median time of one graph_compute + synchronize */
    double gflops;       /* perf: where the case has a flop count */
    double wall_ms;      /* the whole case: build, upload, run, read back, oracle, checks */
} conform_result;

typedef struct conform_report {
    conform_result *r;
    int n, cap;
} conform_report;

void conform_report_init(conform_report *rep);
void conform_report_free(conform_report *rep);
/* A new zeroed row (NULL when out of host memory). */
conform_result *conform_report_add(conform_report *rep);
/* Counts of failures: FAIL, ERROR, and UNSUPPORTED rows that are required (test mode). */
int conform_report_failures(const conform_report *rep, int mode);

/* ---- running -------------------------------------------------------------------------------- */

enum conform_mode { CONFORM_MODE_TEST = 0, CONFORM_MODE_SUPPORT = 1, CONFORM_MODE_PERF = 2 };

typedef struct conform_options {
    int mode;              /* enum conform_mode */
    const char *backend;   /* NULL: every backend present except cpu-ref */
    int device;            /* -1: every device of the backend */
    const char *op;        /* NULL: every kind; else an op name, IDENTITY or GRAPH */
    const char *case_str;  /* NULL: the list; else exactly this case */
    uint64_t seed;
    int repeat;            /* test: seeds seed .. seed+repeat-1; perf: timed runs per case */
    bool full;             /* include the big shapes */
    bool quiet;            /* table shows only non-passing rows */
    bool verbose;          /* graph level: one line per node */
    FILE *out;             /* human output (stdout when NULL) */
    char argv0[64];        /* how to print the reproduce line ("sisa conform") */
} conform_options;

void conform_options_default(conform_options *o);

/* Run the selected levels/cases on one open device (the self-test passes its own broken one).
 * backend_name is what the rows and reproduce lines say. Appends rows to rep. Returns OK unless
 * the harness itself could not run (out of host memory, a case string that does not parse). */
sisa_status conform_run_device(const conform_options *o, sisa_device *dev, const char *backend_name,
                               conform_report *rep);

/* Run on every selected backend/device. *n_ran = number of devices tested; when a requested
 * backend is absent, returns UNSUPPORTED with the reason in sisa_last_error(). */
sisa_status conform_run(const conform_options *o, conform_report *rep, int *n_ran);

/* One case on one device (run.c); fills r. Used by the driver and by tests. */
typedef struct conform_dev conform_dev;
sisa_status conform_run_case(conform_dev *cd, const conform_options *o, const conform_case *c,
                             uint64_t seed, conform_result *r);

/* ---- output (report.c) ---------------------------------------------------------------------- */

/* The human table: a header, then one row per result (failures followed by their detail and
 * the command line that reproduces them). The driver streams rows as they complete. */
void conform_print_header(const conform_options *o, FILE *f);
void conform_print_row(const conform_options *o, const conform_result *r, FILE *f);
void conform_print_table(const conform_options *o, const conform_report *rep, FILE *f);
void conform_print_support(const conform_report *rep, FILE *f);
void conform_print_summary(const conform_options *o, const conform_report *rep, FILE *f);
sisa_status conform_write_json(const conform_options *o, const conform_report *rep,
                               const char *path);

/* The command behind `sisa conform` (tools/sisa/cmd_conform.c). */
int sisa_cmd_conform(int argc, char **argv);

#endif
