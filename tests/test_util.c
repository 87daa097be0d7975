/* test_util.c — helpers shared by the engine's tests (see test_util.h). */
#include "test_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backends/cpu/cpu.h"

/* ---- random numbers ---- */

tu_rng tu_rng_new(uint64_t seed) { return (tu_rng){.state = seed}; }

uint64_t tu_rng_u64(tu_rng *r) { /* splitmix64 */
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r, double lo, double hi) {
    double u = (double)(tu_rng_u64(r) >> 11) * 0x1.0p-53; /* [0, 1) */
    return lo + (hi - lo) * u;
}

double tu_rng_normal(tu_rng *r, double mean, double std) { /* Box-Muller */
    double u1 = tu_rng_uniform(r, 0.0, 1.0), u2 = tu_rng_uniform(r, 0.0, 1.0);
    if (u1 < 1e-300) u1 = 1e-300;
    return mean + std * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- host storage ---- */

#define TU_GUARD 64
#define TU_GUARD_BYTE 0xA5

typedef struct tu_block {
    sisa_buffer buf;
    unsigned char *mem; /* TU_GUARD | n bytes | TU_GUARD */
    size_t n;
    char name[SISA_NAME_LEN];
} tu_block;

struct tu_host {
    tu_block **blocks;
    int n, cap;
};

static sisa_status host_write(sisa_buffer *b, size_t off, const void *src, size_t n) {
    if (off > b->size || n > b->size - off)
        return sisa_err(SISA_INVALID_ARG, "test buffer: write out of range");
    memcpy((char *)b->host_ptr + off, src, n);
    return SISA_OK;
}

static sisa_status host_read(sisa_buffer *b, size_t off, void *dst, size_t n) {
    if (off > b->size || n > b->size - off)
        return sisa_err(SISA_INVALID_ARG, "test buffer: read out of range");
    memcpy(dst, (const char *)b->host_ptr + off, n);
    return SISA_OK;
}

static sisa_status host_fill(sisa_buffer *b, size_t off, uint8_t v, size_t n) {
    if (off > b->size || n > b->size - off)
        return sisa_err(SISA_INVALID_ARG, "test buffer: fill out of range");
    memset((char *)b->host_ptr + off, v, n);
    return SISA_OK;
}

static void host_free(sisa_buffer *b) { (void)b; /* owned by tu_host */ }

static const sisa_buffer_iface host_iface = {
    .free = host_free,
    .write = host_write,
    .read = host_read,
    .fill = host_fill,
};

tu_host *tu_host_new(void) { return calloc(1, sizeof(tu_host)); }

void tu_host_free(tu_host *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) {
        free(h->blocks[i]->mem);
        free(h->blocks[i]);
    }
    free(h->blocks);
    free(h);
}

bool tu_host_bind(tu_host *h, sisa_tensor *t) {
    if (!h || !t) return false;
    if (t->op == SISA_OP_VIEW) {
        const sisa_tensor *base = t->view_src;
        if (!base || !base->buffer) {
            fprintf(stderr, "tu_host_bind: view '%s' of an unbound tensor\n", t->name);
            return false;
        }
        t->buffer = base->buffer;
        t->offset = base->offset + t->view_offset;
        return true;
    }
    if (h->n == h->cap) {
        int nc = h->cap ? 2 * h->cap : 32;
        tu_block **nb = realloc(h->blocks, (size_t)nc * sizeof *nb);
        if (!nb) return false;
        h->blocks = nb;
        h->cap = nc;
    }
    size_t n = sisa_tensor_span_bytes(t);
    tu_block *b = calloc(1, sizeof *b);
    unsigned char *mem = b ? malloc(n + 2 * TU_GUARD) : NULL;
    if (!mem) {
        free(b);
        fprintf(stderr, "tu_host_bind: no memory for '%s' (%zu bytes)\n", t->name, n);
        return false;
    }
    memset(mem, TU_GUARD_BYTE, TU_GUARD);
    memset(mem + TU_GUARD, t->op == SISA_OP_NONE ? 0x00 : 0xFF,
           n); /* 0xFF..: NaN in f32/f16/bf16 */
    memset(mem + TU_GUARD + n, TU_GUARD_BYTE, TU_GUARD);
    b->mem = mem;
    b->n = n;
    snprintf(b->name, sizeof b->name, "%s", t->name);
    b->buf = (sisa_buffer){.iface = &host_iface, .size = n, .host_ptr = mem + TU_GUARD};
    h->blocks[h->n++] = b;
    t->buffer = &b->buf;
    t->offset = 0;
    t->nbytes_alloc = n;
    return true;
}

bool tu_host_bind_graph(tu_host *h, sisa_graph *g) {
    for (int i = 0; i < g->n_leafs; i++)
        if (!tu_host_bind(h, g->leafs[i])) return false;
    for (int i = 0; i < g->n_nodes; i++)
        if (!tu_host_bind(h, g->nodes[i])) return false;
    return true;
}

bool tu_host_guards_ok(const tu_host *h) {
    bool ok = true;
    for (int i = 0; i < h->n; i++) {
        const tu_block *b = h->blocks[i];
        for (size_t k = 0; k < TU_GUARD; k++) {
            if (b->mem[k] != TU_GUARD_BYTE || b->mem[TU_GUARD + b->n + k] != TU_GUARD_BYTE) {
                fprintf(stderr, "guard bytes around '%s' overwritten\n", b->name);
                ok = false;
                break;
            }
        }
    }
    return ok;
}

/* ---- element access ---- */

double tu_get(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return sisa_load_elem((const char *)sisa_cpu_data(t) + sisa_tensor_offset_of(t, i0, i1, i2, i3),
                          t->dtype);
}

void tu_set(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3, double v) {
    sisa_store_elem((char *)sisa_cpu_data(t) + sisa_tensor_offset_of(t, i0, i1, i2, i3), t->dtype,
                    v);
}

#define TU_FOR_EACH(t, i0, i1, i2, i3)                                                             \
    for (int64_t i0 = 0; i0 < (t)->shape[0]; i0++)                                                 \
        for (int64_t i1 = 0; i1 < (t)->shape[1]; i1++)                                             \
            for (int64_t i2 = 0; i2 < (t)->shape[2]; i2++)                                         \
                for (int64_t i3 = 0; i3 < (t)->shape[3]; i3++)

void tu_fill_values(const sisa_tensor *t, const double *v) {
    int64_t k = 0;
    TU_FOR_EACH(t, i0, i1, i2, i3) tu_set(t, i0, i1, i2, i3, v[k++]);
}

void tu_fill_const(const sisa_tensor *t, double v) {
    TU_FOR_EACH(t, i0, i1, i2, i3) tu_set(t, i0, i1, i2, i3, v);
}

void tu_fill_uniform(const sisa_tensor *t, tu_rng *r, double lo, double hi) {
    TU_FOR_EACH(t, i0, i1, i2, i3) tu_set(t, i0, i1, i2, i3, tu_rng_uniform(r, lo, hi));
}

void tu_fill_normal(const sisa_tensor *t, tu_rng *r, double mean, double std) {
    TU_FOR_EACH(t, i0, i1, i2, i3) tu_set(t, i0, i1, i2, i3, tu_rng_normal(r, mean, std));
}

void tu_read_values(const sisa_tensor *t, double *v) {
    int64_t k = 0;
    TU_FOR_EACH(t, i0, i1, i2, i3) v[k++] = tu_get(t, i0, i1, i2, i3);
}

void tu_print(const sisa_tensor *t, int64_t max_elems) {
    char d[160];
    printf("%s:", sisa_tensor_describe(t, d, sizeof d));
    int64_t k = 0;
    TU_FOR_EACH(t, i0, i1, i2, i3) {
        if (k++ >= max_elems) {
            printf(" ...");
            goto done;
        }
        printf(" %.9g", tu_get(t, i0, i1, i2, i3));
    }
done:
    printf("\n");
}

/* ---- running on the oracle ---- */

sisa_status tu_run_ref(sisa_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        sisa_status st = sisa_cpu_ref_compute(g->nodes[i]);
        if (st != SISA_OK) {
            fprintf(stderr, "node %d '%s' (%s): %s: %s\n", i, g->nodes[i]->name,
                    sisa_op_name(g->nodes[i]->op), sisa_status_name(st), sisa_last_error());
            return st;
        }
    }
    return SISA_OK;
}

/* ---- comparisons ---- */

/* Accumulate one pair into the squared norms; false when the pair can never pass. */
static bool err_accumulate(double a, double r, double *num, double *den) {
    if (isnan(a) || isnan(r)) return false;
    if (isinf(r) || isinf(a)) return a == r; /* same Inf at the same place; not in the norms */
    *num += (a - r) * (a - r);
    *den += r * r;
    return true;
}

static double err_finish(double num, double den) { return den > 0.0 ? sqrt(num / den) : sqrt(num); }

double tu_norm_err_values(const double *a, const double *ref, int64_t n) {
    double num = 0.0, den = 0.0;
    for (int64_t k = 0; k < n; k++)
        if (!err_accumulate(a[k], ref[k], &num, &den)) return INFINITY;
    return err_finish(num, den);
}

double tu_norm_err_f32(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / den);
}

void tu_remove_model_dir(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    remove(p);
    rmdir(dir);
}

static bool same_shape(const sisa_tensor *a, const sisa_tensor *b) {
    for (int d = 0; d < 4; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

double tu_norm_err(const sisa_tensor *a, const sisa_tensor *ref) {
    if (!same_shape(a, ref)) return INFINITY;
    double num = 0.0, den = 0.0;
    TU_FOR_EACH(a, i0, i1, i2, i3) {
        if (!err_accumulate(tu_get(a, i0, i1, i2, i3), tu_get(ref, i0, i1, i2, i3), &num, &den))
            return INFINITY;
    }
    return err_finish(num, den);
}

double tu_max_abs_diff(const sisa_tensor *a, const sisa_tensor *b) {
    if (!same_shape(a, b)) return INFINITY;
    double m = 0.0;
    TU_FOR_EACH(a, i0, i1, i2, i3) {
        double d = fabs(tu_get(a, i0, i1, i2, i3) - tu_get(b, i0, i1, i2, i3));
        if (!(d <= m)) m = d; /* a NaN difference sticks */
    }
    return m;
}

bool tu_all_finite(const sisa_tensor *t) {
    TU_FOR_EACH(t, i0, i1, i2, i3) {
        if (!isfinite(tu_get(t, i0, i1, i2, i3))) return false;
    }
    return true;
}

/* ---- check harness ---- */

int tu_checks, tu_failures;

bool tu_check_(bool cond, const char *file, int line, const char *fmt, ...) {
    tu_checks++;
    if (cond) return true;
    tu_failures++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return false;
}

bool tu_check_near_(double got, double want, double tol, const char *what, const char *file,
                    int line) {
    return tu_check_(fabs(got - want) <= tol, file, line,
                     "%s: got %.17g, want %.17g (diff %.3g > tol %.3g)", what, got, want,
                     fabs(got - want), tol);
}

void tu_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("  note: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

int tu_report(const char *suite) {
    printf("%s: %d checks, %d failed\n", suite, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}
