/*
 * driver.c — which devices, which cases, which seeds: the loop of the conformance suite.
 *
 * Every backend in the registry is tested through the same device interface, so a new backend
 * (CUDA, Vulkan, OpenCL, ...) needs nothing here: once registry.c lists it and its probe finds a
 * device, `sisa conform` runs every level on it. cpu-ref is the oracle and is skipped unless it
 * is asked for by name (then the suite checks the oracle against itself: a harness sanity run).
 */
#include <stdlib.h>
#include <string.h>

#include "conform_internal.h"

void conform_options_default(conform_options *o) {
    memset(o, 0, sizeof *o);
    o->mode = CONFORM_MODE_TEST;
    o->device = -1;
    o->seed = 1;
    o->repeat = 1;
    snprintf(o->argv0, sizeof o->argv0, "sisa conform");
}

static const char *kind_name(const conform_case *c) {
    if (c->level == CONFORM_LEVEL_IDENTITY) return "IDENTITY";
    if (c->level == CONFORM_LEVEL_GRAPH) return "GRAPH";
    return c->op >= 0 ? sisa_op_name(c->op) : "?";
}

static bool selected(const conform_options *o, const conform_case *c) {
    if (c->full_only && !o->full) return false;
    if (o->op && strcmp(o->op, kind_name(c)) != 0) return false;
    /* support and perf are about ops; level 1 and the graph level are tests only */
    if (o->mode != CONFORM_MODE_TEST && c->level != CONFORM_LEVEL_OPS) return false;
    return true;
}

static FILE *out_of(const conform_options *o) { return o->out ? o->out : stdout; }

/* Print rows [from, rep->n) as they are now. */
static void stream(const conform_options *o, const conform_report *rep, int from) {
    if (o->mode == CONFORM_MODE_SUPPORT) return;
    for (int i = from; i < rep->n; i++) conform_print_row(o, &rep->r[i], out_of(o));
    fflush(out_of(o));
}

static sisa_status run_one(conform_dev *cd, const conform_options *o, const conform_case *c,
                           uint64_t seed, conform_report *rep) {
    int from = rep->n;
    const double t0 = conform_now_ms();
    if (c->level < 0) { /* a case string that does not parse (a typo in the list) */
        conform_case tmp;
        conform_result *r = conform_report_add(rep);
        if (!r) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
        conform_case_parse(c->str, &tmp);
        conform_result_init(r, cd, c, seed);
        conform_set(r, CONFORM_ERROR, "case", "%s", sisa_last_error());
    } else if (c->level == CONFORM_LEVEL_IDENTITY) {
        SISA_TRY(conform_run_identity(cd, o, c, seed, rep));
    } else {
        conform_result *r = conform_report_add(rep);
        if (!r) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
        if (c->level == CONFORM_LEVEL_GRAPH) SISA_TRY(conform_run_graph(cd, o, c, seed, r));
        else SISA_TRY(conform_run_case(cd, o, c, seed, r));
    }
    for (int i = from; i < rep->n; i++) rep->r[i].wall_ms = conform_now_ms() - t0;
    stream(o, rep, from);
    return SISA_OK;
}

sisa_status conform_run_device(const conform_options *o, sisa_device *dev, const char *backend_name,
                               conform_report *rep) {
    conform_dev cd = {.dev = dev, .name = backend_name};
    sisa_status st = dev->iface->stream_new(dev, &cd.stream);
    if (st != SISA_OK) return sisa_err_prefix(st, "backend '%s': creating a stream", backend_name);
    cd.stream->device = dev;

    conform_case *cases = NULL, single;
    int n_cases;
    if (o->case_str) {
        st = conform_case_parse(o->case_str, &single);
        cases = &single;
        n_cases = 1;
    } else {
        n_cases = conform_case_list(&cases);
        if (n_cases < 0) st = sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory for the case list");
    }
    const int seeds = o->mode == CONFORM_MODE_TEST && o->repeat > 1 ? o->repeat : 1;
    for (int i = 0; st == SISA_OK && i < n_cases; i++) {
        if (!o->case_str && !selected(o, &cases[i])) continue;
        for (int s = 0; st == SISA_OK && s < seeds; s++)
            st = run_one(&cd, o, &cases[i], o->seed + (uint64_t)s, rep);
    }
    if (cases != &single) free(cases);
    cd.stream->iface->free(cd.stream);
    return st;
}

static sisa_status run_backend(const conform_options *o, const char *name, conform_report *rep, int *n_ran) {
    const sisa_backend_def *b = sisa_backend_find(name);
    sisa_device *probe_dev = NULL;
    /* sisa_device_open says precisely why a backend is absent (not compiled / no device) */
    SISA_TRY(sisa_device_open(name, 0, &probe_dev));
    sisa_device_free(probe_dev);
    const int n_dev = sisa_backend_probe(b, NULL);
    if (o->device >= n_dev) /* a device this machine does not have: absent, like a backend */
        return sisa_err(SISA_UNSUPPORTED, "backend '%s' has %d device(s); device %d is not present", name,
                        n_dev, o->device);
    FILE *f = out_of(o);
    for (int d = o->device >= 0 ? o->device : 0; d < (o->device >= 0 ? o->device + 1 : n_dev); d++) {
        sisa_device *dev = NULL;
        SISA_TRY(sisa_device_open(name, d, &dev));
        fprintf(f, "\n== backend %s, device %d: %s (f16 %s, bf16 %s)\n", name, d, dev->info.name,
                dev->info.has_f16 ? "yes" : "no", dev->info.has_bf16 ? "yes" : "no");
        if (o->mode != CONFORM_MODE_SUPPORT) conform_print_header(o, f);
        double t0 = conform_now_ms();
        sisa_status st = conform_run_device(o, dev, name, rep);
        fprintf(f, "-- backend %s device %d done in %.1f s\n", name, d, (conform_now_ms() - t0) / 1e3);
        sisa_device_free(dev);
        SISA_TRY(st);
        (*n_ran)++;
    }
    return SISA_OK;
}

sisa_status conform_run(const conform_options *o, conform_report *rep, int *n_ran) {
    *n_ran = 0;
    if (o->backend) return run_backend(o, o->backend, rep, n_ran);
    FILE *f = out_of(o);
    for (int i = 0; i < sisa_backend_count(); i++) {
        sisa_backend_info info;
        if (sisa_backend_get_info(i, &info) != SISA_OK) continue;
        if (strcmp(info.name, "cpu-ref") == 0) continue; /* the oracle */
        if (!info.compiled || !info.available) {
            fprintf(f, "backend %s: skipped: %s\n", info.name,
                    info.reason && info.reason[0] ? info.reason : "not available");
            continue;
        }
        SISA_TRY(run_backend(o, info.name, rep, n_ran));
    }
    if (*n_ran == 0) return sisa_err(SISA_UNSUPPORTED, "no backend with a device is present");
    return SISA_OK;
}
