/*
 * cmd_conform.c — `sisa conform`: the cross-backend conformance suite (tests/conformance,
 * docs/CONFORMANCE.md). The same function is the main of the meson conformance tests.
 *
 * Exit status: 0 every case passed; 1 failures (a check failed, a device error, or a required
 * case the device declares unsupported); 2 usage error; 77 the requested backend is absent (not
 * compiled, or no driver/device) — printed with the reason, and meson reports it as skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/conformance/conform.h"

static const char *const usage_text =
    "usage: sisa conform [mode] [options]\n"
    "\n"
    "modes:\n"
    "  test (default)    run level 1 (identity), level 2 (ops) and level 2 (graph, node by node)\n"
    "                    on every backend present, against the CPU oracle; exit 1 on any failure\n"
    "  support           print each device's support matrix (op x dtype), run nothing\n"
    "  perf              time every op case on the device (no checks, no oracle)\n"
    "\n"
    "options:\n"
    "  --backend NAME    cpu, vulkan, opencl, cuda (cpu-ref: the oracle against itself);\n"
    "                    default: every backend present; absent backend -> exit 77\n"
    "  --device N        device index within the backend (default: all)\n"
    "  --op NAME         only cases of this op (SDPA, MATMUL, ...) or IDENTITY or GRAPH\n"
    "  --case STR        exactly this case, e.g. 'SDPA f32 B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1'\n"
    "  --seed N          base seed of the inputs (default 1); printed with every failure\n"
    "  --repeat N        test: seeds N consecutive seeds; perf: timed runs per case (default 5)\n"
    "  --full            add the big shapes (T = 512/2048, full vocabulary)\n"
    "  --json FILE       write the results as JSON ('-' = stdout)\n"
    "  --list            print the case strings and exit\n"
    "  --thresholds      print the threshold table with the reason for each number and exit\n"
    "  --quiet           table rows only for failures and unsupported cases\n"
    "  --verbose         graph level: one line per node\n";

static int usage(void) {
    fputs(usage_text, stderr);
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (!s || !*s) return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end) return false;
    *out = v;
    return true;
}

static int list_cases(const conform_options *o) {
    conform_case *cases;
    int n = conform_case_list(&cases);
    if (n < 0) {
        fprintf(stderr, "sisa conform: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (cases[i].full_only && !o->full) continue;
        if (o->op) {
            const char *k = cases[i].level == CONFORM_LEVEL_IDENTITY ? "IDENTITY"
                            : cases[i].level == CONFORM_LEVEL_GRAPH  ? "GRAPH"
                            : cases[i].op >= 0                       ? sisa_op_name(cases[i].op)
                                                                     : "?";
            if (strcmp(k, o->op) != 0) continue;
        }
        printf("%s%s\n", cases[i].str, cases[i].full_only ? "   (--full)" : "");
    }
    free(cases);
    return 0;
}

static int print_thresholds(void) {
    int n;
    const conform_threshold *t = conform_threshold_table(&n);
    for (int i = 0; i < n; i++) {
        if (t[i].exact) printf("%-13s %-5s bit-exact\n", t[i].key, sisa_dtype_name(t[i].dtype));
        else printf("%-13s %-5s %.0e\n", t[i].key, sisa_dtype_name(t[i].dtype), t[i].tol);
        printf("    %s\n", t[i].reason);
    }
    return 0;
}

int sisa_cmd_conform(int argc, char **argv) {
    conform_options o;
    conform_options_default(&o);
    const char *json = NULL;
    bool list = false, thresholds = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        if (!strcmp(a, "test")) o.mode = CONFORM_MODE_TEST;
        else if (!strcmp(a, "support")) o.mode = CONFORM_MODE_SUPPORT;
        else if (!strcmp(a, "perf")) o.mode = CONFORM_MODE_PERF;
        else if (!strcmp(a, "--full")) o.full = true;
        else if (!strcmp(a, "--list")) list = true;
        else if (!strcmp(a, "--thresholds")) thresholds = true;
        else if (!strcmp(a, "--quiet")) o.quiet = true;
        else if (!strcmp(a, "--verbose")) o.verbose = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!v) {
            fprintf(stderr, "sisa conform: unknown argument or missing value: '%s'\n", a);
            return usage();
        } else if (!strcmp(a, "--backend")) o.backend = v, i++;
        else if (!strcmp(a, "--op")) o.op = v, i++;
        else if (!strcmp(a, "--case")) o.case_str = v, i++;
        else if (!strcmp(a, "--json")) json = v, i++;
        else if (!strcmp(a, "--device") && parse_u64(v, &u) && u < 1024) o.device = (int)u, i++;
        else if (!strcmp(a, "--seed") && parse_u64(v, &u)) o.seed = u, i++;
        else if (!strcmp(a, "--repeat") && parse_u64(v, &u) && u >= 1 && u <= 100000) o.repeat = (int)u, i++;
        else {
            fprintf(stderr, "sisa conform: bad argument '%s %s'\n", a, v);
            return usage();
        }
    }
    if (o.mode == CONFORM_MODE_PERF && o.repeat == 1) o.repeat = 5;
    if (list) return list_cases(&o);
    if (thresholds) return print_thresholds();
    if (o.case_str) {
        conform_case c;
        if (conform_case_parse(o.case_str, &c) != SISA_OK) {
            fprintf(stderr, "sisa conform: %s\n", sisa_last_error());
            return 2;
        }
    }

    conform_report rep;
    conform_report_init(&rep);
    int n_ran = 0;
    sisa_status st = conform_run(&o, &rep, &n_ran);
    FILE *f = stdout;
    if (o.mode == CONFORM_MODE_SUPPORT) conform_print_support(&rep, f);
    fprintf(f, "\n");
    conform_print_summary(&o, &rep, f);
    int rc;
    if (st == SISA_UNSUPPORTED && n_ran == 0) {
        fprintf(f, "sisa conform: SKIP: %s\n", sisa_last_error());
        rc = 77;
    } else if (st == SISA_INVALID_ARG && n_ran == 0) {
        fprintf(stderr, "sisa conform: %s\n", sisa_last_error());
        rc = 2;
    } else if (st != SISA_OK) {
        fprintf(stderr, "sisa conform: the harness stopped: %s\n", sisa_last_error());
        rc = 1;
    } else {
        int fails = conform_report_failures(&rep, o.mode);
        rc = fails ? 1 : 0;
        if (o.mode == CONFORM_MODE_TEST)
            fprintf(f, "sisa conform: %d result(s), %d failure(s)\n", rep.n, fails);
    }
    if (json && rc != 2) {
        if (conform_write_json(&o, &rep, json) != SISA_OK) {
            fprintf(stderr, "sisa conform: %s\n", sisa_last_error());
            if (rc == 0) rc = 1;
        }
    }
    conform_report_free(&rep);
    return rc;
}
