/*
 * fast_misc.c — the row-wise ops of the fast path: CPY, EMBED, RMS_NORM, ROPE, ADD, SCALE,
 * SOFTMAX, ARGMAX, SWIGLU, AUGMENT (definitions in runtime/ops.h).
 *
 * They are memory-bound, so the plan is the same for all: split the rows of the destination
 * into tasks for the pool, read every source row through sisa_fast_row_f32 (no copy when it is
 * already contiguous f32; otherwise converted from f16/bf16 or gathered from a strided view),
 * compute in f32, and store the row rounded once to the destination dtype. Small tensors run
 * on the calling thread: waking the pool costs more than the work.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fast_internal.h"

/* ---- row driver ---- */

typedef struct row_job row_job;
typedef void (*row_fn)(row_job *J, int64_t r, float *scratch);

struct row_job {
    const sisa_tensor *node;
    row_fn fn;
    int64_t nrows, rows_per_task;
    size_t scratch_floats; /* per thread */
    sisa_cpu_pool *pool;
    int failed;
    const float *table; /* op-specific shared data (RMS_NORM weight, ROPE cos/sin) */
    int64_t table_w;
};

static void row_task(int64_t t, int tid, void *arg) {
    row_job *J = arg;
    int64_t r0 = t * J->rows_per_task;
    int64_t r1 = r0 + J->rows_per_task < J->nrows ? r0 + J->rows_per_task : J->nrows;
    float *scratch = sisa_fast_scratch(J->pool, tid, SISA_FAST_SLOT_TASK, J->scratch_floats * sizeof(float));
    if (!scratch) {
        J->failed = 1;
        return;
    }
    for (int64_t r = r0; r < r1; r++) J->fn(J, r, scratch);
    sisa_fast_scratch_done(J->pool, scratch);
}

static int64_t node_rows(const sisa_tensor *t) { return t->shape[0] * t->shape[1] * t->shape[2]; }

/* Run fn over rows [0, nrows) of work `row_elems` each, with scratch_floats per thread. */
static sisa_status run_rows(sisa_cpu_pool *pool, row_job *J, int64_t row_elems) {
    int nth = sisa_fast_pool_threads(pool);
    if (row_elems < 1) row_elems = 1;
    int64_t total = J->nrows * row_elems;
    int64_t rpt;
    if (total < 32768 || nth == 1) {
        rpt = J->nrows; /* one task, on the caller */
        nth = 1;
    } else {
        rpt = (J->nrows + 4 * nth - 1) / (4 * nth);   /* ~4 tasks per thread */
        int64_t cap = 65536 / row_elems, floor_ = 4096 / row_elems;
        if (cap < 1) cap = 1;
        if (rpt > cap) rpt = cap;
        if (rpt < floor_) rpt = floor_;
        if (rpt < 1) rpt = 1;
    }
    J->rows_per_task = rpt;
    J->pool = pool;
    J->failed = 0;
    int64_t ntasks = (J->nrows + rpt - 1) / rpt;
    if (nth == 1) {
        for (int64_t t = 0; t < ntasks; t++) row_task(t, 0, J); /* on the caller: tid 0 */
    } else {
        sisa_fast_pool_run(pool, ntasks, row_task, J);
    }
    if (J->failed)
        return sisa_err(SISA_OUT_OF_MEMORY, "cpu %s: out of host memory for row scratch",
                        sisa_op_name(J->node->op));
    return SISA_OK;
}

/* Copy n elements (source stride sstride bytes) into contiguous dst, converting dtype. */
static void copy_row(void *dst, sisa_dtype ddt, const char *src, sisa_dtype sdt, int64_t sstride,
                     int64_t n, float *scratch) {
    if (ddt == sdt) {
        size_t es = sisa_dtype_size(sdt);
        if (sstride == (int64_t)es) {
            memcpy(dst, src, (size_t)n * es);
        } else {
            for (int64_t i = 0; i < n; i++) memcpy((char *)dst + (size_t)i * es, src + i * sstride, es);
        }
        return;
    }
    sisa_fast_load_row(scratch, src, sdt, sstride, n);
    sisa_fast_store_row(dst, ddt, scratch, n);
}

static inline char *dst_row(const sisa_tensor *node, int64_t r) {
    return (char *)sisa_cpu_data(node) + (size_t)r * (size_t)node->shape[3] * sisa_dtype_size(node->dtype);
}

/* ---- CPY ---- */

static void cpy_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *a = n->src[0];
    int64_t idx[3];
    sisa_fast_row_index(a, r, idx);
    copy_row(dst_row(n, r), n->dtype, sisa_fast_row_ptr(a, idx), a->dtype, a->stride[3], a->shape[3],
             scratch);
}

sisa_status sisa_fast_cpy(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0];
    if (a->dtype == node->dtype && sisa_tensor_is_contiguous(a)) {
        memcpy(sisa_cpu_data(node), sisa_cpu_data(a),
               (size_t)sisa_tensor_nelements(a) * sisa_dtype_size(a->dtype));
        return SISA_OK;
    }
    row_job J = {.node = node, .fn = cpy_row, .nrows = node_rows(node),
                 .scratch_floats = (size_t)node->shape[3]};
    return run_rows(pool, &J, node->shape[3]);
}

/* ---- EMBED ---- */

static void embed_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *tab = n->src[0], *ids = n->src[1];
    int64_t T = ids->shape[3], b = r / T, t = r % T, D = tab->shape[3], V = tab->shape[2];
    int32_t id;
    memcpy(&id, (const char *)sisa_cpu_data(ids) + b * ids->stride[2] + t * ids->stride[3], 4);
    char *out = dst_row(n, r);
    if (id < 0 || id >= V) { /* ops.h: an id out of range gives a row of zeros */
        memset(out, 0, (size_t)D * sisa_dtype_size(n->dtype));
        return;
    }
    copy_row(out, n->dtype, (const char *)sisa_cpu_data(tab) + id * tab->stride[2], tab->dtype,
             tab->stride[3], D, scratch);
}

sisa_status sisa_fast_embed(sisa_cpu_pool *pool, const sisa_tensor *node) {
    row_job J = {.node = node, .fn = embed_row, .nrows = node->shape[1] * node->shape[2],
                 .scratch_floats = (size_t)node->shape[3]};
    return run_rows(pool, &J, node->shape[3]);
}

/* ---- RMS_NORM ---- */

static void rms_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *x = n->src[0];
    int64_t D = x->shape[3], idx[3];
    sisa_fast_row_index(x, r, idx);
    const float *xr = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(x, idx), x->dtype, x->stride[3], D);
    float *out = scratch + D;
    float ms = sisa_fast_sumsq(xr, D) / (float)D;
    float inv = 1.0f / sqrtf(ms + n->fparams[0]);
    const float *w = J->table;
    for (int64_t i = 0; i < D; i++) out[i] = xr[i] * inv * w[i];
    sisa_fast_store_row(dst_row(n, r), n->dtype, out, D);
}

sisa_status sisa_fast_rms_norm(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *w = node->src[1];
    int64_t D = node->shape[3];
    float *wf = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0, (size_t)D * sizeof(float));
    if (!wf) return sisa_err(SISA_OUT_OF_MEMORY, "cpu RMS_NORM: out of host memory");
    sisa_fast_load_row(wf, sisa_cpu_data(w), w->dtype, w->stride[3], D);
    row_job J = {.node = node, .fn = rms_row, .nrows = node_rows(node),
                 .scratch_floats = 2 * (size_t)D, .table = wf};
    sisa_status st = run_rows(pool, &J, D);
    sisa_fast_scratch_done(pool, wf);
    return st;
}

/* ---- ROPE ----
 * The angles (p0 + t)·base^(-2m/D) reach thousands of radians, where one fp32 ulp is ~1e-4 rad.
 * So the frequency and the angle are computed in double and reduced to [-pi, pi] in double;
 * only then sincosf runs, once per (t, m) — a table shared by all batches and heads — and the
 * rotation itself runs in fp32. */

typedef struct rope_table_job {
    float *tab;         /* [T][D/2][2] = cos, sin */
    const double *freq; /* [D/2] */
    int64_t half, p0;
} rope_table_job;

static void rope_table_task(int64_t t, int tid, void *arg) {
    (void)tid;
    rope_table_job *R = arg;
    float *row = R->tab + t * R->half * 2;
    double pos = (double)(R->p0 + t);
    for (int64_t m = 0; m < R->half; m++) {
        double a = pos * R->freq[m];
        a -= 6.283185307179586476925287 * nearbyint(a / 6.283185307179586476925287);
        sincosf((float)a, &row[2 * m + 1], &row[2 * m]);
    }
}

static void rope_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *x = n->src[0];
    int64_t D = x->shape[3], idx[3];
    sisa_fast_row_index(x, r, idx);
    const float *xr = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(x, idx), x->dtype, x->stride[3], D);
    float *out = scratch + D;
    const float *cs = J->table + idx[1] * D; /* t = idx[1]; D/2 pairs of (cos, sin) */
    for (int64_t m = 0; m < D / 2; m++) {
        float x0 = xr[2 * m], x1 = xr[2 * m + 1], c = cs[2 * m], s = cs[2 * m + 1];
        out[2 * m] = x0 * c - x1 * s;
        out[2 * m + 1] = x0 * s + x1 * c;
    }
    sisa_fast_store_row(dst_row(n, r), n->dtype, out, D);
}

sisa_status sisa_fast_rope(sisa_cpu_pool *pool, const sisa_tensor *node) {
    int64_t T = node->shape[1], D = node->shape[3], half = D / 2;
    double log_base = log((double)node->fparams[0]);
    rope_table_job R = {.half = half, .p0 = node->iparams[0]};
    R.tab = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0, (size_t)(T * D) * sizeof(float));
    double *freq = sisa_fast_scratch(pool, 0, SISA_FAST_SLOT_SHARED0 + 1,
                                     (size_t)(half > 0 ? half : 1) * sizeof(double));
    if (!R.tab || !freq) {
        if (R.tab) sisa_fast_scratch_done(pool, R.tab);
        if (freq) sisa_fast_scratch_done(pool, freq);
        return sisa_err(SISA_OUT_OF_MEMORY, "cpu ROPE: out of host memory");
    }
    for (int64_t m = 0; m < half; m++) freq[m] = exp(-((double)(2 * m) / (double)D) * log_base);
    R.freq = freq;
    sisa_fast_pool_run(T * D >= 4096 ? pool : NULL, T, rope_table_task, &R);
    row_job J = {.node = node, .fn = rope_row, .nrows = node_rows(node),
                 .scratch_floats = 2 * (size_t)D, .table = R.tab};
    sisa_status st = run_rows(pool, &J, D);
    sisa_fast_scratch_done(pool, R.tab);
    sisa_fast_scratch_done(pool, freq);
    return st;
}

/* ---- ADD ---- */

static void add_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *a = n->src[0], *b = n->src[1];
    int64_t D = a->shape[3], idx[3], bidx[3];
    sisa_fast_row_index(a, r, idx);
    for (int d = 0; d < 3; d++) bidx[d] = b->shape[d] == 1 ? 0 : idx[d];
    const float *ar = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(a, idx), a->dtype, a->stride[3], D);
    float *out = scratch + 2 * D;
    if (b->shape[3] == 1) {
        float bv = (float)sisa_load_elem(sisa_fast_row_ptr(b, bidx), b->dtype);
        for (int64_t i = 0; i < D; i++) out[i] = ar[i] + bv;
    } else {
        const float *br = sisa_fast_row_f32(scratch + D, sisa_fast_row_ptr(b, bidx), b->dtype,
                                            b->stride[3], D);
        for (int64_t i = 0; i < D; i++) out[i] = ar[i] + br[i];
    }
    sisa_fast_store_row(dst_row(n, r), n->dtype, out, D);
}

sisa_status sisa_fast_add(sisa_cpu_pool *pool, const sisa_tensor *node) {
    row_job J = {.node = node, .fn = add_row, .nrows = node_rows(node),
                 .scratch_floats = 3 * (size_t)node->shape[3]};
    return run_rows(pool, &J, node->shape[3]);
}

/* ---- SCALE ---- */

static void scale_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *a = n->src[0];
    int64_t D = a->shape[3], idx[3];
    sisa_fast_row_index(a, r, idx);
    const float *ar = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(a, idx), a->dtype, a->stride[3], D);
    float *out = scratch + D, s = n->fparams[0];
    for (int64_t i = 0; i < D; i++) out[i] = ar[i] * s;
    sisa_fast_store_row(dst_row(n, r), n->dtype, out, D);
}

sisa_status sisa_fast_scale(sisa_cpu_pool *pool, const sisa_tensor *node) {
    row_job J = {.node = node, .fn = scale_row, .nrows = node_rows(node),
                 .scratch_floats = 2 * (size_t)node->shape[3]};
    return run_rows(pool, &J, node->shape[3]);
}

/* ---- SOFTMAX ---- */

static void softmax_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *a = n->src[0];
    int64_t D = a->shape[3], idx[3];
    sisa_fast_row_index(a, r, idx);
    const float *ar = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(a, idx), a->dtype, a->stride[3], D);
    float *out = scratch + D;
    float mx = sisa_fast_max(ar, D);
    if (mx == -INFINITY) { /* every entry -inf: zeros (ops.h) */
        memset(out, 0, (size_t)D * sizeof(float));
    } else {
        float inv = 1.0f / sisa_fast_exp_sum(out, ar, mx, D);
        for (int64_t i = 0; i < D; i++) out[i] *= inv;
    }
    sisa_fast_store_row(dst_row(n, r), n->dtype, out, D);
}

sisa_status sisa_fast_softmax(sisa_cpu_pool *pool, const sisa_tensor *node) {
    row_job J = {.node = node, .fn = softmax_row, .nrows = node_rows(node),
                 .scratch_floats = 2 * (size_t)node->shape[3]};
    return run_rows(pool, &J, node->shape[3]);
}

/* ---- ARGMAX ---- */

static void argmax_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *a = n->src[0];
    int64_t D = a->shape[3], idx[3];
    sisa_fast_row_index(a, r, idx);
    const float *ar = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(a, idx), a->dtype, a->stride[3], D);
    int64_t best = 0;
    float bv = ar[0];
    if (bv == bv) {
        for (int64_t i = 1; i < D; i++) {
            float v = ar[i];
            if (v != v) { /* NaN: larger than everything, first one wins */
                best = i;
                break;
            }
            if (v > bv) {
                bv = v;
                best = i;
            }
        }
    }
    ((int32_t *)sisa_cpu_data(n))[r] = (int32_t)best;
}

sisa_status sisa_fast_argmax(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0];
    row_job J = {.node = node, .fn = argmax_row, .nrows = node_rows(node),
                 .scratch_floats = (size_t)a->shape[3]};
    return run_rows(pool, &J, a->shape[3]);
}

/* ---- SWIGLU: silu(g)·u = g / (1 + e^-g) · u ---- */

static void swiglu_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *g = n->src[0], *u = n->src[1];
    int64_t D = g->shape[3], gi[3], ui[3];
    sisa_fast_row_index(g, r, gi);
    sisa_fast_row_index(u, r, ui);
    const float *gr = sisa_fast_row_f32(scratch, sisa_fast_row_ptr(g, gi), g->dtype, g->stride[3], D);
    const float *ur = sisa_fast_row_f32(scratch + D, sisa_fast_row_ptr(u, ui), u->dtype, u->stride[3], D);
    float *e = scratch + 2 * D;
    for (int64_t i = 0; i < D; i++) e[i] = -gr[i];
    sisa_fast_exp(e, e, D);
    for (int64_t i = 0; i < D; i++) e[i] = gr[i] / (1.0f + e[i]) * ur[i];
    sisa_fast_store_row(dst_row(n, r), n->dtype, e, D);
}

sisa_status sisa_fast_swiglu(sisa_cpu_pool *pool, const sisa_tensor *node) {
    row_job J = {.node = node, .fn = swiglu_row, .nrows = node_rows(node),
                 .scratch_floats = 3 * (size_t)node->shape[3]};
    return run_rows(pool, &J, node->shape[3]);
}

/* ---- AUGMENT: [a | b | 0 ...] ---- */

static void augment_row(row_job *J, int64_t r, float *scratch) {
    const sisa_tensor *n = J->node, *a = n->src[0], *b = n->src[1];
    int64_t ai[3], bi[3], Da = a->shape[3], Db = b->shape[3], W = n->shape[3];
    size_t es = sisa_dtype_size(n->dtype);
    sisa_fast_row_index(a, r, ai);
    sisa_fast_row_index(b, r, bi);
    char *out = dst_row(n, r);
    copy_row(out, n->dtype, sisa_fast_row_ptr(a, ai), a->dtype, a->stride[3], Da, scratch);
    copy_row(out + (size_t)Da * es, n->dtype, sisa_fast_row_ptr(b, bi), b->dtype, b->stride[3], Db,
             scratch);
    if (W > Da + Db) memset(out + (size_t)(Da + Db) * es, 0, (size_t)(W - Da - Db) * es);
}

sisa_status sisa_fast_augment(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0], *b = node->src[1];
    int64_t m = a->shape[3] > b->shape[3] ? a->shape[3] : b->shape[3];
    row_job J = {.node = node, .fn = augment_row, .nrows = node_rows(node),
                 .scratch_floats = (size_t)m};
    return run_rows(pool, &J, node->shape[3]);
}
