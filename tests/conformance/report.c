/*
 * report.c — what the suite prints: the human table (one row per case, failures followed by why
 * and the exact command that reproduces them), the support matrix (op x dtype per device), the
 * summary, and the same results as JSON for CI and dashboards.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conform_internal.h"

void conform_report_init(conform_report *rep) { memset(rep, 0, sizeof *rep); }

void conform_report_free(conform_report *rep) {
    free(rep->r);
    memset(rep, 0, sizeof *rep);
}

conform_result *conform_report_add(conform_report *rep) {
    if (rep->n == rep->cap) {
        int nc = rep->cap ? 2 * rep->cap : 256;
        conform_result *nr = realloc(rep->r, (size_t)nc * sizeof *nr);
        if (!nr) return NULL;
        rep->r = nr;
        rep->cap = nc;
    }
    conform_result *r = &rep->r[rep->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static bool is_failure(const conform_result *r, int mode) {
    if (r->verdict == CONFORM_FAIL || r->verdict == CONFORM_ERROR) return true;
    return r->verdict == CONFORM_UNSUPPORTED && r->required && mode == CONFORM_MODE_TEST;
}

int conform_report_failures(const conform_report *rep, int mode) {
    int n = 0;
    for (int i = 0; i < rep->n; i++) n += is_failure(&rep->r[i], mode);
    return n;
}

static const char *verdict_word(const conform_result *r, int mode) {
    switch (r->verdict) {
    case CONFORM_PASS: return mode == CONFORM_MODE_PERF ? "ran" : "pass";
    case CONFORM_FAIL: return "FAIL";
    case CONFORM_ERROR: return "ERROR";
    case CONFORM_UNSUPPORTED: return r->required && mode == CONFORM_MODE_TEST ? "UNSUP!" : "unsup";
    case CONFORM_SKIP: return "skip";
    }
    return "?";
}

static void num(char *buf, size_t len, double v) {
    if (isnan(v)) snprintf(buf, len, "-");
    else snprintf(buf, len, "%.2e", v);
}

void conform_print_header(const conform_options *o, FILE *f) {
    if (o->mode == CONFORM_MODE_PERF)
        fprintf(f, "%-6s %-8s %10s %9s  %s\n", "result", "backend", "ms", "GFLOP/s", "case");
    else
        fprintf(f, "%-6s %-8s %9s %10s %9s  %s\n", "result", "backend", "norm_err", "threshold", "max_err",
                "case");
}

void conform_print_row(const conform_options *o, const conform_result *r, FILE *f) {
    const bool bad = is_failure(r, o->mode);
    if (o->quiet && !bad && r->verdict != CONFORM_UNSUPPORTED) return;
    if (o->mode == CONFORM_MODE_PERF) {
        char ms[32], gf[32];
        num(ms, sizeof ms, r->ms);
        if (r->gflops > 0) snprintf(gf, sizeof gf, "%.2f", r->gflops);
        else snprintf(gf, sizeof gf, "-");
        if (!isnan(r->ms)) snprintf(ms, sizeof ms, "%.3f", r->ms);
        fprintf(f, "%-6s %-8s %10s %9s  %s\n", verdict_word(r, o->mode), r->backend, ms, gf, r->case_str);
    } else {
        char ne[32], th[32], me[32];
        num(ne, sizeof ne, r->norm_err);
        num(me, sizeof me, r->max_err);
        num(th + 1, sizeof th - 1, r->threshold);
        th[0] = r->threshold_is_min ? '>' : ' ';
        fprintf(f, "%-6s %-8s %9s %10s %9s  %s\n", verdict_word(r, o->mode), r->backend, ne, th, me, r->case_str);
    }
    if (r->verdict == CONFORM_PASS || r->verdict == CONFORM_SKIP) return;
    fprintf(f, "         %s%s%s\n", r->check[0] ? r->check : "", r->check[0] ? ": " : "", r->detail);
    if (r->verdict == CONFORM_UNSUPPORTED) {
        if (bad)
            fprintf(f, "         counted as a failure: an f32 case is something the model runs, and "
                       "conformance is strict (support mode lists what a device lacks)\n");
        return;
    }
    if (bad)
        fprintf(f, "         reproduce: %s --backend %s --device %d --case '%s' --seed %llu\n", o->argv0,
                r->backend, r->device, r->case_str, (unsigned long long)r->seed);
}

void conform_print_table(const conform_options *o, const conform_report *rep, FILE *f) {
    conform_print_header(o, f);
    for (int i = 0; i < rep->n; i++) conform_print_row(o, &rep->r[i], f);
}

/* ---- support matrix ---- */

static bool same_device(const conform_result *a, const conform_result *b) {
    return strcmp(a->backend, b->backend) == 0 && a->device == b->device;
}

void conform_print_support(const conform_report *rep, FILE *f) {
    static const sisa_dtype dts[3] = {SISA_F32, SISA_F16, SISA_BF16};
    for (int first = 0; first < rep->n;) {
        const conform_result *d0 = &rep->r[first];
        int end = first;
        while (end < rep->n && same_device(&rep->r[end], d0)) end++;
        fprintf(f, "\nsupport matrix: backend %s, device %d: %s\n", d0->backend, d0->device, d0->device_name);
        fprintf(f, "  %-14s %-10s %-10s %-10s\n", "op", "f32", "f16", "bf16");
        for (int op = SISA_OP_CPY; op < SISA_OP_COUNT; op++) {
            char cell[3][32];
            bool any = false;
            for (int k = 0; k < 3; k++) {
                int n = 0, yes = 0, skip = 0;
                for (int i = first; i < end; i++) {
                    const conform_result *r = &rep->r[i];
                    if (r->level != CONFORM_LEVEL_OPS || r->op != op || r->dtype != dts[k]) continue;
                    n++;
                    yes += r->verdict != CONFORM_UNSUPPORTED && r->verdict != CONFORM_SKIP;
                    skip += r->verdict == CONFORM_SKIP;
                }
                any |= n > 0;
                if (n == 0) snprintf(cell[k], sizeof cell[k], "-");
                else if (skip == n) snprintf(cell[k], sizeof cell[k], "no dtype");
                else if (yes == n - skip) snprintf(cell[k], sizeof cell[k], "yes");
                else if (yes == 0) snprintf(cell[k], sizeof cell[k], "no");
                else snprintf(cell[k], sizeof cell[k], "%d/%d", yes, n - skip);
            }
            if (any) fprintf(f, "  %-14s %-10s %-10s %-10s\n", sisa_op_name(op), cell[0], cell[1], cell[2]);
        }
        /* why, once per (op, dtype, reason); --json has every case */
        bool header = false;
        for (int i = first; i < end; i++) {
            const conform_result *r = &rep->r[i];
            if (r->verdict != CONFORM_UNSUPPORTED) continue;
            bool seen = false;
            int count = 0;
            for (int j = first; j < end; j++) {
                const conform_result *q = &rep->r[j];
                bool same = q->verdict == CONFORM_UNSUPPORTED && q->op == r->op && q->dtype == r->dtype &&
                            q->level == r->level && strcmp(q->detail, r->detail) == 0;
                if (same && j < i) seen = true;
                count += same;
            }
            if (seen) continue;
            if (!header) fprintf(f, "  why not:\n");
            header = true;
            fprintf(f, "    %s %s (%d case%s): %s\n", r->level == CONFORM_LEVEL_OPS ? sisa_op_name(r->op) : "graph",
                    sisa_dtype_name(r->dtype), count, count == 1 ? "" : "s", r->detail);
        }
        first = end;
    }
}

/* ---- summary ---- */

void conform_print_summary(const conform_options *o, const conform_report *rep, FILE *f) {
    for (int first = 0; first < rep->n;) {
        const conform_result *d0 = &rep->r[first];
        int end = first, c[5] = {0}, req_unsup = 0, fails = 0;
        while (end < rep->n && same_device(&rep->r[end], d0)) {
            const conform_result *r = &rep->r[end++];
            c[r->verdict]++;
            req_unsup += r->verdict == CONFORM_UNSUPPORTED && r->required;
            fails += is_failure(r, o->mode);
        }
        fprintf(f, "summary %s device %d: %d pass, %d fail, %d error, %d unsupported (%d required), %d skipped -> %s\n",
                d0->backend, d0->device, c[CONFORM_PASS], c[CONFORM_FAIL], c[CONFORM_ERROR],
                c[CONFORM_UNSUPPORTED], req_unsup, c[CONFORM_SKIP],
                o->mode != CONFORM_MODE_TEST ? "no verdict (not test mode)" : fails ? "FAILED" : "CONFORMS");
        first = end;
    }
}

/* ---- JSON ---- */

static const char *verdict_json(int v) {
    static const char *const w[] = {"pass", "fail", "error", "unsupported", "skip"};
    return v >= 0 && v <= CONFORM_SKIP ? w[v] : "?";
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

sisa_status conform_write_json(const conform_options *o, const conform_report *rep, const char *path) {
    static const char *const modes[] = {"test", "support", "perf"};
    static const char *const levels[] = {"ops", "identity", "graph"};
    cJSON *root = cJSON_CreateObject(), *arr = NULL;
    if (!root) return sisa_err(SISA_OUT_OF_MEMORY, "json: out of host memory");
    cJSON_AddStringToObject(root, "tool", "sisa conform");
    cJSON_AddStringToObject(root, "version", sisa_version());
    cJSON_AddStringToObject(root, "mode", modes[o->mode]);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddNumberToObject(root, "repeat", o->repeat);
    cJSON_AddBoolToObject(root, "full", o->full);
    cJSON_AddNumberToObject(root, "failures", conform_report_failures(rep, o->mode));
    arr = cJSON_AddArrayToObject(root, "results");
    for (int i = 0; arr && i < rep->n; i++) {
        const conform_result *r = &rep->r[i];
        cJSON *j = cJSON_CreateObject();
        if (!j) break;
        cJSON_AddStringToObject(j, "backend", r->backend);
        cJSON_AddNumberToObject(j, "device", r->device);
        cJSON_AddStringToObject(j, "device_name", r->device_name);
        cJSON_AddStringToObject(j, "level", r->level >= 0 && r->level <= 2 ? levels[r->level] : "?");
        cJSON_AddStringToObject(j, "case", r->case_str);
        cJSON_AddStringToObject(j, "dtype", sisa_dtype_name(r->dtype));
        cJSON_AddNumberToObject(j, "seed", (double)r->seed);
        cJSON_AddStringToObject(j, "verdict", verdict_json(r->verdict));
        cJSON_AddBoolToObject(j, "required", r->required);
        cJSON_AddBoolToObject(j, "counts_as_failure", is_failure(r, o->mode));
        add_num(j, "norm_err", r->norm_err);
        add_num(j, "max_err", r->max_err);
        add_num(j, "threshold", r->threshold);
        cJSON_AddBoolToObject(j, "threshold_is_min", r->threshold_is_min);
        if (r->threshold_reason) cJSON_AddStringToObject(j, "threshold_reason", r->threshold_reason);
        cJSON_AddStringToObject(j, "check", r->check);
        cJSON_AddStringToObject(j, "detail", r->detail);
        add_num(j, "ms", r->ms);
        add_num(j, "wall_ms", r->wall_ms);
        if (r->gflops > 0) add_num(j, "gflops", r->gflops);
        if (is_failure(r, o->mode) && r->verdict != CONFORM_UNSUPPORTED) {
            char cmd[CONFORM_CASE_LEN + 160];
            snprintf(cmd, sizeof cmd, "%s --backend %s --device %d --case '%s' --seed %llu", o->argv0,
                     r->backend, r->device, r->case_str, (unsigned long long)r->seed);
            cJSON_AddStringToObject(j, "reproduce", cmd);
        }
        cJSON_AddItemToArray(arr, j);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return sisa_err(SISA_OUT_OF_MEMORY, "json: out of host memory");
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        cJSON_free(text);
        return sisa_err(SISA_BAD_FILE, "json: cannot write %s", path);
    }
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f != stdout) ok = fclose(f) == 0 && ok;
    cJSON_free(text);
    return ok ? SISA_OK : sisa_err(SISA_BAD_FILE, "json: error writing %s", path);
}
