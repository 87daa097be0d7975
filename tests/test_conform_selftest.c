/*
 * test_conform_selftest.c — the conformance harness must be able to FAIL.
 *
 * A test-only "broken" device wraps the CPU oracle (so it computes the right values) and then
 * misbehaves in one chosen way: writes past or before its output, scales its results, plants a
 * NaN, leaves an element unwritten, scribbles on an input, declares an op unsupported, ignores
 * the clamp of form A, or reports a device error. The harness, pointed at it through the normal
 * device interface, must flag each with the right check — and must pass the honest wrapper, so
 * that its verdicts mean something in both directions. The case list itself is checked too:
 * every listed case parses, builds, and has a row in the threshold table.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "error.h"
#include "tests/conformance/conform_internal.h"

enum breakage {
    HONEST = 0,
    OVERRUN,     /* 4 bytes past the end of every output */
    UNDERRUN,    /* 1 byte before the start */
    SCALED,      /* every output element * (1 + 1e-3) */
    ONE_WRONG,   /* one element * 1.01 */
    PLANT_NAN,   /* one element NaN */
    UNWRITTEN,   /* the last element never written */
    SCRIBBLE,    /* first byte of source 0 changed */
    NO_SDPA,     /* supports_op: no SDPA */
    NO_CLAMP,    /* SSM_CHANNELS(AUGMENTED) computed without the clamp */
    DEVICE_LOST, /* graph_compute fails */
};
static const char *const names[] = {"honest", "overrun", "underrun", "scaled", "one_wrong", "plant_nan",
                                    "unwritten", "scribble", "no_sdpa", "no_clamp", "device_lost"};

typedef struct broken {
    sisa_device *inner;
    int mode;
} broken;

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("not ok: " __VA_ARGS__);                                                        \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ---- the broken device ---- */

static sisa_status b_alloc(sisa_device *d, size_t size, sisa_buffer **out) {
    broken *b = d->ctx;
    return b->inner->iface->buffer_alloc(b->inner, size, out);
}

static bool b_supports(sisa_device *d, const sisa_tensor *n, char *reason) {
    broken *b = d->ctx;
    if (b->mode == NO_SDPA && n->op == SISA_OP_SDPA) {
        snprintf(reason, SISA_REASON_LEN, "broken device: no SDPA kernel");
        return false;
    }
    return true;
}

static void b_stream_free(sisa_stream *s) { free(s); }
static sisa_status b_sync(sisa_stream *s) { (void)s; return SISA_OK; }

static sisa_status b_compute(sisa_stream *s, sisa_graph *g, int first, int last) {
    broken *b = s->device->ctx;
    if (b->mode == DEVICE_LOST) return sisa_err(SISA_DEVICE_LOST, "broken device: lost (on purpose)");
    for (int i = first; i < last; i++) {
        sisa_tensor *n = g->nodes[i];
        if (n->op == SISA_OP_VIEW) continue;
        sisa_tensor tmp = *n;
        if (b->mode == NO_CLAMP && n->op == SISA_OP_SSM_CHANNELS) tmp.fparams[0] = 1e30f;
        SISA_TRY(sisa_cpu_ref_compute(&tmp));
        unsigned char *p = sisa_cpu_data(n);
        const size_t span = sisa_tensor_span_bytes(n), es = sisa_dtype_size(n->dtype);
        const int64_t ne = sisa_tensor_nelements(n);
        switch (b->mode) {
        case OVERRUN: memset(p + span, 0, 4); break;
        case UNDERRUN: p[-1] ^= 0x5A; break;
        case SCALED:
            if (sisa_dtype_is_float(n->dtype))
                for (int64_t e = 0; e < ne; e++)
                    sisa_store_elem(p + (size_t)e * es, n->dtype, sisa_load_elem(p + (size_t)e * es, n->dtype) * 1.001);
            break;
        case ONE_WRONG:
            if (sisa_dtype_is_float(n->dtype))
                sisa_store_elem(p + (size_t)(ne / 2) * es, n->dtype, sisa_load_elem(p + (size_t)(ne / 2) * es, n->dtype) * 1.01 + 1e-3);
            break;
        case PLANT_NAN:
            if (sisa_dtype_is_float(n->dtype)) sisa_store_elem(p + (size_t)(ne / 3) * es, n->dtype, NAN);
            break;
        case UNWRITTEN: memset(p + span - es, 0xFF, es); break;
        case SCRIBBLE: ((unsigned char *)sisa_cpu_data(n->src[0]))[0] ^= 0x40; break;
        default: break;
        }
    }
    return SISA_OK;
}

static const sisa_stream_iface b_stream_iface = {.free = b_stream_free, .graph_compute = b_compute, .synchronize = b_sync};

static sisa_status b_stream_new(sisa_device *d, sisa_stream **out) {
    sisa_stream *s = calloc(1, sizeof *s);
    if (!s) return SISA_OUT_OF_MEMORY;
    *s = (sisa_stream){.iface = &b_stream_iface, .device = d};
    *out = s;
    return SISA_OK;
}

static void b_free(sisa_device *d) { (void)d; }

static const sisa_device_iface b_dev_iface = {
    .free = b_free, .buffer_alloc = b_alloc, .stream_new = b_stream_new, .supports_op = b_supports};
static const sisa_backend_def b_def = {.name = "broken"};

/* ---- running the harness on it ---- */

static conform_report run(sisa_device *inner, int mode, const char *case_str) {
    broken b = {.inner = inner, .mode = mode};
    sisa_device dev = {.iface = &b_dev_iface, .ctx = &b, .backend = &b_def, .index = 0, .info = inner->info};
    snprintf(dev.info.name, sizeof dev.info.name, "broken device (%s)", names[mode]);
    conform_options o;
    conform_options_default(&o);
    o.case_str = case_str;
    o.out = stdout;
    conform_report rep;
    conform_report_init(&rep);
    sisa_status st = conform_run_device(&o, &dev, "broken", &rep);
    CHECK(st == SISA_OK, "harness stopped on '%s' (%s): %s", case_str, names[mode], sisa_last_error());
    return rep;
}

/* mode on case: at least one row must count as a failure, the first failing one with `check`. */
static void expect_caught(sisa_device *inner, int mode, const char *case_str, const char *check) {
    conform_report rep = run(inner, mode, case_str);
    const conform_result *hit = NULL;
    for (int i = 0; i < rep.n && !hit; i++) {
        const conform_result *r = &rep.r[i];
        bool fail = r->verdict == CONFORM_FAIL || r->verdict == CONFORM_ERROR ||
                    (r->verdict == CONFORM_UNSUPPORTED && r->required);
        if (fail) hit = r;
    }
    CHECK(hit, "%s device not caught on '%s'", names[mode], case_str);
    CHECK(conform_report_failures(&rep, CONFORM_MODE_TEST) > 0, "%s: failures not counted", names[mode]);
    if (hit) {
        CHECK(strcmp(hit->check, check) == 0, "%s device on '%s': caught by check '%s', expected '%s' (%s)",
              names[mode], case_str, hit->check, check, hit->detail);
        if (strcmp(hit->check, check) == 0) printf("ok: %-11s caught by '%s' on %s\n", names[mode], check, case_str);
    }
    conform_report_free(&rep);
}

static const char *const honest_cases[] = {
    "ADD f32 s=1x1x17x768 bs=1x1x1x768",
    "MATMUL f32 A0=2 A1=3 M=17 N=33 K=67 layout=tperm",
    "SDPA f32 B=1 H=2 Tq=17 Tk=17 dqk=80 dv=64 causal=1 layout=perm",
    "SDPA f32 B=1 H=2 Tq=1 Tk=40 dqk=80 dv=64 causal=1 p0=36 form=B dc=64 poison=1",
    "SSM_CHANNELS bf16 B=1 H=2 T=17 ds=16 mode=A decay=-5 layout=slice",
    "CPY f32 s=1x1x113x64 to=f16 range=wide",
    "SOFTMAX f32 s=1x2x17x17 mask=causal",
    "ARGMAX f16 s=1x1x5x97 special=1",
    "EMBED f32 V=97 D=64 B=2 T=5",
    "IDENTITY f32 B=1 H=2 T=17 ds=16 decay=2",
    "IDENTITY f32 B=1 H=2 T=33 ds=4 decay=-5",
    "GRAPH f32 model=block B=1 T=5 d=64 H=2 ds=4 ff=64 V=31 L=1",
};

static void check_case_list(void) {
    conform_case *cases;
    int n = conform_case_list(&cases);
    CHECK(n > 100, "case list has %d cases", n);
    int built = 0;
    for (int i = 0; i < n; i++) {
        const conform_case *c = &cases[i];
        CHECK(c->level >= 0, "listed case does not parse: '%s'", c->str);
        if (c->level < 0) continue;
        conform_case again;
        CHECK(conform_case_parse(c->str, &again) == SISA_OK && strcmp(again.str, c->str) == 0,
              "case string is not canonical: '%s'", c->str);
        if (c->level != CONFORM_LEVEL_OPS) continue;
        conform_built b;
        if (conform_build_case(c, &b) != SISA_OK) {
            CHECK(0, "listed case does not build: %s", sisa_last_error());
            continue;
        }
        built++;
        CHECK(conform_threshold_find(sisa_op_name(b.out->op), b.out->dtype) != NULL,
              "no threshold row for %s %s (case '%s')", sisa_op_name(b.out->op), sisa_dtype_name(b.out->dtype), c->str);
        conform_built_free(&b);
    }
    printf("ok: %d listed cases parse, %d op cases build and have a threshold\n", n, built);
    free(cases);
    int nt;
    const conform_threshold *t = conform_threshold_table(&nt);
    for (int i = 0; i < nt; i++)
        CHECK(t[i].reason && strlen(t[i].reason) > 20 && (t[i].exact || t[i].tol > 0),
              "threshold row %s %s has no reason or no number", t[i].key, sisa_dtype_name(t[i].dtype));
    conform_case c;
    CHECK(conform_case_parse("SDPA f32 B=1 H=2 Tq=1 Tk=1 dqk=8 dv=8 bogus=1", &c) == SISA_OK, "parse");
    conform_built b;
    CHECK(conform_build_case(&c, &b) != SISA_OK, "an unknown key must be an error");
    CHECK(conform_case_parse("NOT_AN_OP f32", &c) != SISA_OK, "an unknown kind must be an error");
}

int main(void) {
    sisa_device *inner = NULL;
    if (sisa_device_open("cpu-ref", 0, &inner) != SISA_OK) {
        printf("cpu-ref unavailable: %s\n", sisa_last_error());
        return 1;
    }
    check_case_list();

    /* the honest wrapper passes everything: no false alarms */
    for (size_t i = 0; i < sizeof honest_cases / sizeof honest_cases[0]; i++) {
        conform_report rep = run(inner, HONEST, honest_cases[i]);
        CHECK(rep.n > 0, "no rows for '%s'", honest_cases[i]);
        CHECK(conform_report_failures(&rep, CONFORM_MODE_TEST) == 0, "honest device fails '%s'", honest_cases[i]);
        for (int j = 0; j < rep.n; j++)
            CHECK(rep.r[j].verdict == CONFORM_PASS, "honest device: '%s' verdict %d (%s: %s)", rep.r[j].case_str,
                  rep.r[j].verdict, rep.r[j].check, rep.r[j].detail);
        conform_report_free(&rep);
    }

    /* each breakage is caught, by the right check */
    expect_caught(inner, OVERRUN, "ADD f32 s=1x1x17x768", "guard");
    expect_caught(inner, OVERRUN, "SDPA f32 B=1 H=2 Tq=17 Tk=17 dqk=80 dv=64 causal=1", "guard");
    expect_caught(inner, UNDERRUN, "MATMUL f32 M=17 N=64 K=67", "guard");
    expect_caught(inner, SCALED, "MATMUL f32 M=17 N=64 K=67", "error");
    expect_caught(inner, SCALED, "SDPA f32 B=1 H=2 Tq=17 Tk=17 dqk=80 dv=64 causal=1", "error");
    expect_caught(inner, ONE_WRONG, "AUGMENT f32 B=1 H=2 T=17 Da=64 Db=16 W=80", "error");
    expect_caught(inner, ONE_WRONG, "RMS_NORM f32 s=1x1x17x768", "error");
    expect_caught(inner, PLANT_NAN, "SOFTMAX f32 s=1x1x17x100", "nan");
    expect_caught(inner, UNWRITTEN, "ROPE f32 s=1x17x2x64 p0=0", "nan");
    expect_caught(inner, UNWRITTEN, "ARGMAX f32 s=1x1x17x100", "index");
    expect_caught(inner, SCRIBBLE, "SCALE f32 s=1x1x17x64 k=0.5", "input");
    expect_caught(inner, NO_SDPA, "SDPA f32 B=1 H=2 Tq=17 Tk=17 dqk=80 dv=64 causal=1", "supports_op");
    expect_caught(inner, NO_CLAMP, "IDENTITY f32 B=1 H=2 T=17 ds=16 decay=2 check=forms", "clamp");
    expect_caught(inner, NO_CLAMP, "IDENTITY f32 B=1 H=2 T=17 ds=16 decay=2 check=scores", "error");
    expect_caught(inner, DEVICE_LOST, "ADD f32 s=1x1x17x768", "run");
    /* node by node: the graph level names the first bad node */
    expect_caught(inner, SCALED, "GRAPH f32 model=block B=1 T=5 d=64 H=2 ds=4 ff=64 V=31 L=1", "error");
    {
        conform_report rep = run(inner, NO_CLAMP, "GRAPH f32 model=block B=1 T=17 d=64 H=2 ds=4 ff=64 V=31 L=1");
        /* with the trained decay the clamp is inactive: the broken form A is still exact there */
        CHECK(rep.n == 1 && rep.r[0].verdict == CONFORM_PASS, "graph with inactive clamp should pass");
        conform_report_free(&rep);
        rep = run(inner, SCALED, "GRAPH f32 model=block B=1 T=5 d=64 H=2 ds=4 ff=64 V=31 L=1");
        CHECK(rep.n == 1 && strstr(rep.r[0].detail, "first bad node") && strstr(rep.r[0].detail, "'embed'"),
              "graph level must name the first bad node: %s", rep.n ? rep.r[0].detail : "(no row)");
        conform_report_free(&rep);
    }

    /* JSON output is well-formed enough to write */
    {
        conform_report rep = run(inner, SCALED, "ADD f32 s=1x1x17x768");
        conform_options o;
        conform_options_default(&o);
        char path[] = "/tmp/conform-selftest-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0, "mkstemp");
        if (fd >= 0) {
            CHECK(conform_write_json(&o, &rep, path) == SISA_OK, "json: %s", sisa_last_error());
            FILE *f = fopen(path, "r");
            char buf[4096] = "";
            size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f) fclose(f);
            buf[got] = '\0';
            CHECK(strstr(buf, "\"reproduce\"") && strstr(buf, "--seed 1"), "json lacks the reproduce line");
            remove(path);
        }
        conform_report_free(&rep);
    }
    sisa_device_free(inner);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
