/*
 * run.c — running a case on a device and judging it against the oracle.
 *
 * The harness allocates every buffer itself through the device interface (not through the arena
 * allocator): one buffer per tensor with guard bytes on both sides, so a kernel that writes past
 * its output — or into its inputs — is caught by name, and every intermediate result of a graph
 * survives to be compared. Outputs are pre-filled with 0xFF bytes (NaN in f32/f16/bf16, -1 as an
 * i32) so an element a kernel never writes is a NaN the oracle does not have.
 *
 * The oracle runs on host copies of the sources exactly as the device holds them after the run
 * (read back), with an f32 destination; its result is rounded once to the node's dtype before
 * the comparison, which is what ops.h defines ("the result is rounded once to dst's dtype").
 * Checks, in order: guard bytes, inputs unchanged, NaN positions, Inf positions, then the
 * normalised error ||dev - ref|| / ||ref|| over the finite positions (or bit-exactness / index
 * equality where the threshold table says so).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu.h"
#include "conform_internal.h"

/* ---- rng ---- */

uint64_t conform_rng_next(conform_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double conform_rng_uniform(conform_rng *r) { return (double)(conform_rng_next(r) >> 11) * 0x1.0p-53; }

double conform_rng_normal(conform_rng *r) {
    double u1 = conform_rng_uniform(r), u2 = conform_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t conform_case_seed(uint64_t seed, const char *case_str) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)case_str; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    conform_rng r = {seed ^ h};
    return conform_rng_next(&r);
}

double conform_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- rows ---- */

void conform_result_init(conform_result *r, const conform_dev *cd, const conform_case *c, uint64_t seed) {
    memset(r, 0, sizeof *r);
    snprintf(r->backend, sizeof r->backend, "%s", cd->name);
    r->device = cd->dev->index;
    snprintf(r->device_name, sizeof r->device_name, "%s", cd->dev->info.name);
    snprintf(r->case_str, sizeof r->case_str, "%s", c->str);
    r->level = c->level;
    r->op = c->op;
    r->dtype = c->dtype;
    r->seed = seed;
    r->verdict = CONFORM_PASS;
    r->threshold = NAN;
    r->max_err = r->norm_err = NAN;
    r->ms = NAN;
}

void conform_set(conform_result *r, int verdict, const char *check, const char *fmt, ...) {
    r->verdict = verdict;
    snprintf(r->check, sizeof r->check, "%s", check);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

/* ---- placing a graph ---- */

static unsigned char guard_byte(size_t i) { return (unsigned char)(0xA5u ^ (i * 0x3Bu) ^ (i >> 7)); }

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static sisa_status alloc_slot(conform_exec *x, sisa_tensor *t, conform_slot *s, bool poison) {
    s->span = sisa_tensor_span_bytes(t);
    size_t size = CONFORM_GUARD + round_up(s->span, 256) + CONFORM_GUARD;
    SISA_TRY(sisa_buffer_alloc(x->cd->dev, size, &s->buf));
    unsigned char *pat = malloc(size);
    if (!pat) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
    for (size_t i = 0; i < size; i++) pat[i] = guard_byte(i);
    if (poison) memset(pat + CONFORM_GUARD, 0xFF, s->span);
    sisa_status st = s->buf->iface->write(s->buf, 0, pat, size);
    free(pat);
    if (st != SISA_OK) return sisa_err_prefix(st, "harness: initialising the buffer of '%s'", t->name);
    t->buffer = s->buf;
    t->offset = CONFORM_GUARD;
    return SISA_OK;
}

sisa_status conform_exec_place(conform_exec *x, conform_dev *cd, sisa_graph *g) {
    memset(x, 0, sizeof *x);
    x->cd = cd;
    x->g = g;
    SISA_TRY(sisa_graph_status(g));
    x->leaf = calloc((size_t)g->n_leafs + 1, sizeof *x->leaf);
    x->node = calloc((size_t)g->n_nodes + 1, sizeof *x->node);
    if (!x->leaf || !x->node) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
    for (int i = 0; i < g->n_leafs; i++) {
        sisa_tensor *t = g->leafs[i];
        conform_slot *s = &x->leaf[i];
        if ((t->flags & SISA_TENSOR_PARAM) && !(t->flags & SISA_TENSOR_INPUT)) {
            /* a weight that lives elsewhere (a model's device): its bytes are copied to the
             * device under test, and checked like an input afterwards (a weight that is also an
             * input, MATMUL bw=1, is generated like one) */
            if (!t->buffer)
                return sisa_err(SISA_INTERNAL, "harness: weight '%s' has no storage", t->name);
            size_t span = sisa_tensor_span_bytes(t);
            s->host = malloc(span ? span : 1);
            if (!s->host) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
            SISA_TRY(t->buffer->iface->read(t->buffer, t->offset, s->host, span));
        } else if (!(t->flags & SISA_TENSOR_INPUT)) {
            return sisa_err(SISA_INTERNAL, "harness: leaf '%s' is neither an input nor a weight", t->name);
        }
        SISA_TRY(alloc_slot(x, t, s, false));
    }
    for (int i = 0; i < g->n_nodes; i++) {
        sisa_tensor *t = g->nodes[i];
        if (t->op == SISA_OP_VIEW) {
            t->buffer = t->view_src->buffer;
            t->offset = t->view_src->offset + t->view_offset;
            continue;
        }
        SISA_TRY(alloc_slot(x, t, &x->node[i], true));
    }
    return SISA_OK;
}

static double softplus(double v) { return (v > 0 ? v : 0) + log1p(exp(-fabs(v))); }

/* Values of one leaf, element order (the leaf is contiguous). */
static void generate(const conform_gen *gen, const sisa_tensor *t, conform_rng *r, double *v,
                     double *const *vals, sisa_graph *g) {
    const int64_t n = sisa_tensor_nelements(t), row = t->shape[3], rows = n / row;
    switch (gen->kind) {
    case GEN_NORMAL:
        for (int64_t i = 0; i < n; i++) v[i] = gen->a + gen->b * conform_rng_normal(r);
        break;
    case GEN_UNIFORM:
        for (int64_t i = 0; i < n; i++) v[i] = gen->a + (gen->b - gen->a) * conform_rng_uniform(r);
        break;
    case GEN_IDS: /* [0, a), or [-b, a + b) to include out-of-range ids */
        for (int64_t i = 0; i < n; i++)
            v[i] = (double)(conform_rng_next(r) % (uint64_t)(gen->a + 2 * gen->b)) - gen->b;
        break;
    case GEN_DECAY:
        for (int64_t q = 0; q < rows; q++) {
            double acc = 0.0;
            for (int64_t i = 0; i < row; i++) {
                acc -= softplus(gen->a + gen->b * conform_rng_normal(r));
                v[q * row + i] = acc;
            }
        }
        break;
    case GEN_COPY_COLS: {
        const sisa_tensor *src = g->leafs[(int)gen->a];
        const double *sv = vals[(int)gen->a];
        const int64_t srow = src->shape[3], c0 = (int64_t)gen->b;
        for (int64_t q = 0; q < rows; q++)
            for (int64_t i = 0; i < row; i++) v[q * row + i] = sv[q * srow + c0 + i];
        break;
    }
    case GEN_MASKED: {
        const int64_t T = t->shape[2];
        for (int64_t q = 0; q < rows; q++) {
            const int64_t i = q % T; /* query row within its (T, row) block */
            for (int64_t j = 0; j < row; j++)
                v[q * row + j] = j > i + (row - T) ? -INFINITY : gen->a * conform_rng_normal(r);
        }
        for (int64_t j = 0; j < row; j++) v[(T - 1) * row + j] = -INFINITY; /* one row all -inf */
        break;
    }
    case GEN_ARGMAX:
        for (int64_t i = 0; i < n; i++) v[i] = conform_rng_normal(r);
        if (rows >= 3 && row >= 4) {
            v[1 * row + row / 3] = v[1 * row + (2 * row) / 3] = 10.0; /* tie: the first wins */
            v[2 * row + row / 2] = NAN;                             /* NaN wins */
        }
        break;
    case GEN_WIDE:
        for (int64_t i = 0; i < n; i++) {
            double mag = pow(10.0, -9.0 + 15.0 * conform_rng_uniform(r));
            v[i] = (conform_rng_next(r) & 1) ? -mag : mag;
        }
        break;
    case GEN_POISON_TAIL: {
        const int64_t T = t->shape[2];
        for (int64_t q = 0; q < rows; q++)
            for (int64_t i = 0; i < row; i++)
                v[q * row + i] = (q % T) >= (int64_t)gen->a ? NAN : conform_rng_normal(r);
        break;
    }
    default:
        for (int64_t i = 0; i < n; i++) v[i] = 0.0;
    }
}

sisa_status conform_exec_fill(conform_exec *x, const conform_built *b, uint64_t seed) {
    sisa_graph *g = x->g;
    conform_rng r = {seed};
    double **vals = calloc((size_t)g->n_leafs + 1, sizeof *vals);
    if (!vals) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory");
    sisa_status st = SISA_OK;
    for (int i = 0; st == SISA_OK && i < g->n_leafs; i++) {
        sisa_tensor *t = g->leafs[i];
        conform_slot *s = &x->leaf[i];
        const int64_t n = sisa_tensor_nelements(t);
        const size_t es = sisa_dtype_size(t->dtype);
        if (s->host) { /* a weight copied at placement */
            st = s->buf->iface->write(s->buf, CONFORM_GUARD, s->host, s->span);
            if (st != SISA_OK) st = sisa_err_prefix(st, "harness: uploading weight '%s'", t->name);
            continue;
        }
        vals[i] = malloc((size_t)n * sizeof(double));
        s->host = malloc(s->span ? s->span : 1);
        if (!vals[i] || !s->host) {
            st = sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory for input '%s'", t->name);
            break;
        }
        const conform_gen dflt = {GEN_NORMAL, 0, 1};
        generate(i < CONFORM_MAX_LEAFS ? &b->gen[i] : &dflt, t, &r, vals[i], vals, g);
        for (int64_t e = 0; e < n; e++) sisa_store_elem(s->host + (size_t)e * es, t->dtype, vals[i][e]);
        /* what the device sees is the rounded value: keep that for GEN_COPY_COLS consumers */
        for (int64_t e = 0; e < n; e++) vals[i][e] = sisa_load_elem(s->host + (size_t)e * es, t->dtype);
        st = s->buf->iface->write(s->buf, CONFORM_GUARD, s->host, s->span);
        if (st != SISA_OK) st = sisa_err_prefix(st, "harness: uploading input '%s'", t->name);
    }
    for (int i = 0; i < g->n_leafs; i++) free(vals[i]);
    free(vals);
    return st;
}

sisa_status conform_exec_run(conform_exec *x) {
    sisa_stream *s = x->cd->stream;
    SISA_TRY(s->iface->graph_compute(s, x->g, 0, x->g->n_nodes));
    return s->iface->synchronize(s);
}

/* 0 when the slot's guards (and, for an input, its bytes) are intact. */
static int check_slot(const conform_slot *s, const sisa_tensor *t, bool is_input, char *msg, size_t len) {
    if (!s->buf) return 0;
    const size_t size = s->buf->size;
    unsigned char *mem = malloc(size);
    if (!mem) {
        snprintf(msg, len, "harness: out of host memory reading back '%s'", t->name);
        return 1;
    }
    int bad = 0;
    if (s->buf->iface->read(s->buf, 0, mem, size) != SISA_OK) {
        snprintf(msg, len, "reading back '%s' failed: %s", t->name, sisa_last_error());
        free(mem);
        return 1;
    }
    char d[160];
    for (size_t i = 0; i < CONFORM_GUARD && !bad; i++)
        if (mem[i] != guard_byte(i)) {
            snprintf(msg, len, "guard bytes before %s overwritten: byte %zu before its start",
                     sisa_tensor_describe(t, d, sizeof d), CONFORM_GUARD - i);
            bad = 1;
        }
    for (size_t i = CONFORM_GUARD + s->span; i < size && !bad; i++)
        if (mem[i] != guard_byte(i)) {
            snprintf(msg, len,
                     "guard bytes after %s overwritten: byte %zu past its end (%zu bytes long)",
                     sisa_tensor_describe(t, d, sizeof d), i - CONFORM_GUARD - s->span, s->span);
            bad = 1;
        }
    if (!bad && is_input && s->host)
        for (size_t i = 0; i < s->span; i++)
            if (mem[CONFORM_GUARD + i] != s->host[i]) {
                snprintf(msg, len, "input %s was modified by the device: byte %zu changed",
                         sisa_tensor_describe(t, d, sizeof d), i);
                bad = 2;
                break;
            }
    free(mem);
    return bad;
}

int conform_exec_check(conform_exec *x, char *msg, size_t len) {
    int first_input = 0;
    char input_msg[400] = "";
    for (int i = 0; i < x->g->n_nodes; i++) {
        int bad = check_slot(&x->node[i], x->g->nodes[i], false, msg, len);
        if (bad) return bad;
    }
    for (int i = 0; i < x->g->n_leafs; i++) {
        int bad = check_slot(&x->leaf[i], x->g->leafs[i], true, input_msg, sizeof input_msg);
        if (bad == 1) {
            snprintf(msg, len, "%s", input_msg);
            return 1;
        }
        if (bad == 2 && !first_input) first_input = 2;
        if (bad == 2) snprintf(msg, len, "%s", input_msg);
    }
    return first_input;
}

void conform_exec_free(conform_exec *x) {
    if (x->g) {
        for (int i = 0; x->leaf && i < x->g->n_leafs; i++) {
            sisa_buffer_free(x->leaf[i].buf);
            free(x->leaf[i].host);
        }
        for (int i = 0; x->node && i < x->g->n_nodes; i++) sisa_buffer_free(x->node[i].buf);
    }
    free(x->leaf);
    free(x->node);
    memset(x, 0, sizeof *x);
}

/* ---- oracle ---- */

sisa_status conform_read(const sisa_tensor *t, double **out) {
    *out = malloc((size_t)sisa_tensor_nelements(t) * sizeof(double));
    if (!*out) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory reading '%s'", t->name);
    sisa_status st = sisa_tensor_read_f64(t, *out);
    if (st != SISA_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

sisa_status conform_oracle(const sisa_tensor *node, double *ref) {
    sisa_tensor srcs[SISA_MAX_SRC], dst = *node;
    sisa_buffer bufs[SISA_MAX_SRC], dbuf = {0};
    void *mems[SISA_MAX_SRC] = {0};
    sisa_status st = SISA_OK;
    for (int i = 0; st == SISA_OK && i < SISA_MAX_SRC; i++) {
        const sisa_tensor *s = node->src[i];
        if (!s) continue;
        const sisa_tensor *base = sisa_tensor_base((sisa_tensor *)s);
        size_t span = sisa_tensor_span_bytes(base);
        mems[i] = malloc(span ? span : 1);
        if (!mems[i]) {
            st = sisa_err(SISA_OUT_OF_MEMORY, "oracle: out of host memory");
            break;
        }
        st = base->buffer->iface->read(base->buffer, base->offset, mems[i], span);
        if (st != SISA_OK) {
            st = sisa_err_prefix(st, "oracle: reading source '%s' back", s->name);
            break;
        }
        srcs[i] = *s;
        bufs[i] = (sisa_buffer){.size = span, .host_ptr = mems[i]};
        srcs[i].buffer = &bufs[i];
        srcs[i].offset = s->offset - base->offset;
        dst.src[i] = &srcs[i];
    }
    const bool is_float = sisa_dtype_is_float(node->dtype);
    if (is_float) dst.dtype = SISA_F32;
    sisa_tensor_set_contiguous(&dst);
    dst.view_src = NULL;
    const size_t span = sisa_tensor_span_bytes(&dst);
    void *dmem = NULL;
    if (st == SISA_OK) {
        dmem = malloc(span ? span : 1);
        if (!dmem) st = sisa_err(SISA_OUT_OF_MEMORY, "oracle: out of host memory");
    }
    if (st == SISA_OK) {
        dbuf = (sisa_buffer){.size = span, .host_ptr = dmem};
        dst.buffer = &dbuf;
        dst.offset = 0;
        st = sisa_cpu_ref_compute(&dst);
    }
    if (st == SISA_OK) {
        const int64_t n = sisa_tensor_nelements(&dst);
        const size_t es = sisa_dtype_size(dst.dtype);
        for (int64_t e = 0; e < n; e++) ref[e] = sisa_load_elem((char *)dmem + (size_t)e * es, dst.dtype);
    }
    for (int i = 0; i < SISA_MAX_SRC; i++) free(mems[i]);
    free(dmem);
    return st;
}

/* ---- the checks ---- */

static double round_to(double v, sisa_dtype dt) {
    unsigned char tmp[8];
    sisa_store_elem(tmp, dt, v);
    return sisa_load_elem(tmp, dt);
}

static void coords(const sisa_tensor *t, int64_t e, char *buf, size_t len) {
    int64_t i3 = e % t->shape[3], r = e / t->shape[3];
    int64_t i2 = r % t->shape[2];
    r /= t->shape[2];
    int64_t i1 = r % t->shape[1], i0 = r / t->shape[1];
    snprintf(buf, len, "[%lld,%lld,%lld,%lld]", (long long)i0, (long long)i1, (long long)i2, (long long)i3);
}

void conform_compare(const sisa_tensor *node, const double *dev, const double *ref,
                     const conform_threshold *th, conform_result *r) {
    const int64_t n = sisa_tensor_nelements(node);
    char at[64];
    r->threshold = th ? th->tol : NAN;
    r->threshold_reason = th ? th->reason : NULL;
    if (!th) {
        conform_set(r, CONFORM_FAIL, "threshold",
                    "the threshold table has no row for %s %s: the harness cannot judge it",
                    sisa_op_name(node->op), sisa_dtype_name(node->dtype));
        return;
    }
    if (node->dtype == SISA_I32) { /* indices: equal or wrong */
        int64_t bad = 0, first = -1;
        for (int64_t e = 0; e < n; e++)
            if (dev[e] != ref[e] && bad++ == 0) first = e;
        r->max_err = r->norm_err = (double)bad / (double)n;
        if (bad) {
            coords(node, first, at, sizeof at);
            conform_set(r, CONFORM_FAIL, "index", "%lld of %lld indices differ; first at %s: device %.0f, oracle %.0f",
                        (long long)bad, (long long)n, at, dev[first], ref[first]);
        }
        return;
    }
    int64_t nan_bad = 0, nan_first = -1, inf_bad = 0, inf_first = -1, worst = -1;
    double num = 0.0, den = 0.0, max_err = 0.0;
    for (int64_t e = 0; e < n; e++) {
        const double x = round_to(ref[e], node->dtype), d = dev[e];
        if (isnan(x) || isnan(d)) {
            if (isnan(x) != isnan(d) && nan_bad++ == 0) nan_first = e;
            continue;
        }
        if (isinf(x) || isinf(d)) {
            if (x != d && inf_bad++ == 0) inf_first = e;
            continue;
        }
        const double diff = fabs(d - x);
        num += diff * diff;
        den += x * x;
        if (diff > max_err || worst < 0) {
            max_err = diff;
            worst = e;
        }
    }
    r->max_err = max_err;
    r->norm_err = den > 0.0 ? sqrt(num / den) : sqrt(num);
    if (nan_bad) {
        coords(node, nan_first, at, sizeof at);
        conform_set(r, CONFORM_FAIL, "nan",
                    "%lld NaN position(s) differ from the oracle's; first at %s: device %g, oracle %g%s",
                    (long long)nan_bad, at, dev[nan_first], round_to(ref[nan_first], node->dtype),
                    isnan(dev[nan_first]) && dev[nan_first] != dev[nan_first]
                        ? " (an unwritten output element reads as NaN: outputs are pre-filled with 0xFF)"
                        : "");
        return;
    }
    if (inf_bad) {
        coords(node, inf_first, at, sizeof at);
        conform_set(r, CONFORM_FAIL, "inf", "%lld Inf position(s) differ from the oracle's; first at %s: device %g, oracle %g",
                    (long long)inf_bad, at, dev[inf_first], round_to(ref[inf_first], node->dtype));
        return;
    }
    const bool fail = th->exact ? max_err != 0.0 : !(r->norm_err <= th->tol);
    if (fail) {
        coords(node, worst, at, sizeof at);
        conform_set(r, CONFORM_FAIL, "error",
                    "normalised error %.3g %s %.3g%s; largest difference at %s: device %.9g, oracle %.9g",
                    r->norm_err, th->exact ? "with" : ">", th->tol, th->exact ? " required bit-exact" : "",
                    at, dev[worst], round_to(ref[worst], node->dtype));
    }
}

/* ---- one level-2 case ---- */

static const char *dtype_missing(const sisa_graph *g, const sisa_device_info *info) {
    for (int pass = 0; pass < 2; pass++) {
        sisa_tensor *const *ts = pass ? g->nodes : g->leafs;
        int n = pass ? g->n_nodes : g->n_leafs;
        for (int i = 0; i < n; i++) {
            if (ts[i]->dtype == SISA_F16 && !info->has_f16) return "f16";
            if (ts[i]->dtype == SISA_BF16 && !info->has_bf16) return "bf16";
        }
    }
    return NULL;
}

static bool uses_low_precision(const sisa_graph *g) {
    for (int pass = 0; pass < 2; pass++) {
        sisa_tensor *const *ts = pass ? g->nodes : g->leafs;
        int n = pass ? g->n_nodes : g->n_leafs;
        for (int i = 0; i < n; i++)
            if (ts[i]->dtype == SISA_F16 || ts[i]->dtype == SISA_BF16) return true;
    }
    return false;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

sisa_status conform_run_case(conform_dev *cd, const conform_options *o, const conform_case *c,
                             uint64_t seed, conform_result *r) {
    conform_result_init(r, cd, c, seed);
    conform_built b;
    if (conform_build_case(c, &b) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "case", "%s", sisa_last_error());
        return SISA_OK;
    }
    const sisa_tensor *out = b.out;
    /* the row is labelled by the case dtype; the threshold is the destination dtype's */
    const conform_threshold *th = conform_threshold_find(sisa_op_name(out->op), out->dtype);
    r->threshold = th ? th->tol : NAN;
    r->threshold_reason = th ? th->reason : NULL;
    /* strict: every f32 case is something the model needs; f16/bf16 storage is optional */
    r->required = !uses_low_precision(b.g);

    const char *missing = dtype_missing(b.g, &cd->dev->info);
    if (missing) {
        conform_set(r, CONFORM_SKIP, "dtype", "device reports no %s", missing);
        conform_built_free(&b);
        return SISA_OK;
    }
    conform_exec x;
    if (conform_exec_place(&x, cd, b.g) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "alloc", "%s", sisa_last_error());
        goto done;
    }
    for (int i = 0; i < b.g->n_nodes; i++) {
        const sisa_tensor *n = b.g->nodes[i];
        char reason[SISA_REASON_LEN] = "";
        if (n->op == SISA_OP_VIEW || cd->dev->iface->supports_op(cd->dev, n, reason)) continue;
        conform_set(r, CONFORM_UNSUPPORTED, "supports_op", "unsupported: %s", reason[0] ? reason : "(no reason given)");
        goto done;
    }
    if (o->mode == CONFORM_MODE_SUPPORT) goto done;
    if (conform_exec_fill(&x, &b, conform_case_seed(seed, c->str)) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "upload", "%s", sisa_last_error());
        goto done;
    }
    if (o->mode == CONFORM_MODE_PERF) {
        const int reps = o->repeat > 0 ? o->repeat : 5;
        double *t = malloc((size_t)reps * sizeof *t);
        if (!t) {
            conform_set(r, CONFORM_ERROR, "alloc", "harness: out of host memory");
            goto done;
        }
        sisa_status st = conform_exec_run(&x); /* warm-up: pipelines, caches */
        for (int i = 0; st == SISA_OK && i < reps; i++) {
            double t0 = conform_now_ms();
            st = conform_exec_run(&x);
            t[i] = conform_now_ms() - t0;
        }
        if (st != SISA_OK) conform_set(r, CONFORM_ERROR, "run", "%s", sisa_last_error());
        else {
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            r->ms = t[reps / 2];
            r->gflops = b.flops > 0 && r->ms > 0 ? b.flops / (r->ms * 1e6) : 0.0;
        }
        free(t);
        goto done;
    }
    const double t0 = conform_now_ms();
    if (conform_exec_run(&x) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "run", "%s", sisa_last_error());
        goto done;
    }
    r->ms = conform_now_ms() - t0;
    char msg[400];
    int bad = conform_exec_check(&x, msg, sizeof msg);
    if (bad) {
        conform_set(r, CONFORM_FAIL, bad == 1 ? "guard" : "input", "%s", msg);
        goto done;
    }
    double *dev = NULL, *ref = malloc((size_t)sisa_tensor_nelements(out) * sizeof(double));
    if (!ref) conform_set(r, CONFORM_ERROR, "alloc", "harness: out of host memory");
    else if (conform_read(out, &dev) != SISA_OK) conform_set(r, CONFORM_ERROR, "read", "%s", sisa_last_error());
    else if (conform_oracle(out, ref) != SISA_OK) conform_set(r, CONFORM_ERROR, "oracle", "%s", sisa_last_error());
    else conform_compare(out, dev, ref, th, r);
    free(dev);
    free(ref);
done:
    conform_exec_free(&x);
    conform_built_free(&b);
    return SISA_OK;
}
