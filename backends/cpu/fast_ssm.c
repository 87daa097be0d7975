/*
 * fast_ssm.c — SSM_DECAY and SSM_CHANNELS (SISA.md §1, definitions in runtime/ops.h), one task
 * per (batch row, head): each is a scan along time, and (batch, head) pairs are independent.
 *
 * Numerics: the prefix sums run along the whole sequence, where plain fp32 accumulation drifts
 * by ~T ulp. g uses compensated (Kahan) fp32 summation. Phi is an angle that can grow to
 * hundreds of radians, where one fp32 ulp is already ~1e-5 rad: it is accumulated in double
 * (exact for any realistic T), reduced to [-pi, pi] in double, and only then handed to sincosf.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fast_internal.h"

#define TWO_PI 6.283185307179586476925287

static inline float softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

static inline float load_f(const sisa_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const char *p = (const char *)sisa_cpu_data(t) + sisa_tensor_offset_of(t, i0, i1, i2, i3);
    if (t->dtype == SISA_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    return (float)sisa_load_elem(p, t->dtype);
}

/* ---- SSM_DECAY: g[b,h,t] = g0[b,h] + sum_{k<=t} -softplus(a[b,k,h] + bias[h]) ---- */

static void decay_task(int64_t i, int tid, void *arg) {
    (void)tid;
    const sisa_tensor *n = arg, *a = n->src[0], *bias = n->src[1], *g0 = n->src[2];
    int64_t H = a->shape[3], T = a->shape[2], b = i / H, h = i % H;
    float bh = load_f(bias, 0, 0, 0, h);
    float sum = g0 ? load_f(g0, 0, 0, b, h) : 0.0f, comp = 0.0f;
    float *out = (float *)sisa_cpu_data(n) + (b * H + h) * T;
    for (int64_t t = 0; t < T; t++) {
        float y = -softplusf(load_f(a, 0, b, t, h) + bh) - comp;
        float s = sum + y;
        comp = (s - sum) - y;
        sum = s;
        out[t] = sum;
    }
}

sisa_status sisa_fast_ssm_decay(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *a = node->src[0];
    int64_t n = a->shape[1] * a->shape[3];
    sisa_fast_pool_run(n * a->shape[2] >= 16384 ? pool : NULL, n, decay_task, (void *)node);
    return SISA_OK;
}

/* ---- SSM_CHANNELS ---- */

typedef struct chan_job {
    const sisa_tensor *node;
    int64_t H, ds, T;
    sisa_cpu_pool *pool;
    size_t scratch_floats; /* per thread */
    int failed;
} chan_job;

static void chan_task(int64_t i, int tid, void *arg) {
    chan_job *J = arg;
    const sisa_tensor *n = J->node, *Bs = n->src[0], *Cs = n->src[1], *th = n->src[2],
                      *gd = n->src[3], *lr = n->src[4], *phi0 = n->src[5];
    int64_t H = J->H, ds = J->ds, T = J->T, half = ds / 2, b = i / H, h = i % H;
    float *cs_row = sisa_fast_scratch(J->pool, tid, SISA_FAST_SLOT_TASK, J->scratch_floats * sizeof(float));
    if (!cs_row) {
        J->failed = 1;
        return;
    }
    float *bs_row = cs_row + ds, *th_row = bs_row + ds;
    double *phi = (double *)(th_row + ((half + 1) & ~(int64_t)1));

    /* offset c and scale s of this (b, h) */
    float c = 0.0f;
    const int form_a = n->iparams[0] == SISA_SSM_AUGMENTED;
    const float L = n->fparams[0];
    if (form_a) {
        float gmax = -INFINITY, gmin = INFINITY;
        for (int64_t t = 0; t < T; t++) {
            float g = load_f(gd, 0, b, h, t);
            gmax = fmaxf(gmax, g);
            gmin = fminf(gmin, g);
        }
        c = 0.5f * gmax + 0.5f * gmin; /* halves first: no overflow for huge |g| */
    }
    float s = powf((float)n->iparams[1], 0.25f) * sqrtf(softplusf(load_f(lr, 0, 0, 0, h)));
    for (int64_t m = 0; m < half; m++) phi[m] = phi0 ? (double)load_f(phi0, 0, 0, b, h * half + m) : 0.0;

    const char *bs_base = (const char *)sisa_cpu_data(Bs) + b * Bs->stride[1] + h * ds * Bs->stride[3];
    const char *cs_base = (const char *)sisa_cpu_data(Cs) + b * Cs->stride[1] + h * ds * Cs->stride[3];
    const char *th_base = (const char *)sisa_cpu_data(th) + b * th->stride[1] + h * half * th->stride[3];
    float *out = (float *)sisa_cpu_data(n) + (b * H + h) * T * 2 * ds;
    sisa_dtype odt = n->dtype;
    float *orow = (float *)(phi + half);

    for (int64_t t = 0; t < T; t++) {
        const float *cr = sisa_fast_row_f32(cs_row, cs_base + t * Cs->stride[2], Cs->dtype, Cs->stride[3], ds);
        const float *br = sisa_fast_row_f32(bs_row, bs_base + t * Bs->stride[2], Bs->dtype, Bs->stride[3], ds);
        const float *tr = sisa_fast_row_f32(th_row, th_base + t * th->stride[2], th->dtype, th->stride[3], half);
        float u = 0.0f;
        if (form_a) {
            u = load_f(gd, 0, b, h, t) - c;
            u = u < -L ? -L : u > L ? L : u;
        }
        float ec = s * expf(u), eb = s * expf(-u);
        for (int64_t m = 0; m < half; m++) {
            phi[m] += (double)tr[m];
            double red = phi[m] - TWO_PI * nearbyint(phi[m] / TWO_PI);
            float sn, cn;
            sincosf((float)red, &sn, &cn);
            float c0 = ec * cr[2 * m], c1 = ec * cr[2 * m + 1];
            float b0 = eb * br[2 * m], b1 = eb * br[2 * m + 1];
            orow[2 * m] = c0 * cn - c1 * sn;
            orow[2 * m + 1] = c0 * sn + c1 * cn;
            orow[ds + 2 * m] = b0 * cn - b1 * sn;
            orow[ds + 2 * m + 1] = b0 * sn + b1 * cn;
        }
        if (odt == SISA_F32)
            memcpy(out + t * 2 * ds, orow, (size_t)(2 * ds) * sizeof(float));
        else
            sisa_fast_store_row((char *)sisa_cpu_data(n) + ((b * H + h) * T + t) * 2 * ds * sisa_dtype_size(odt),
                                odt, orow, 2 * ds);
    }
    sisa_fast_scratch_done(J->pool, cs_row);
}

sisa_status sisa_fast_ssm_channels(sisa_cpu_pool *pool, const sisa_tensor *node) {
    const sisa_tensor *lr = node->src[4], *Bs = node->src[0];
    chan_job J = {.node = node, .H = lr->shape[3], .T = Bs->shape[2]};
    J.ds = Bs->shape[3] / J.H;
    int64_t half = J.ds / 2;
    /* cs, bs rows (ds each), theta row (half, rounded to even), phi (half doubles = 2*half
     * floats), the output row (2*ds) */
    J.scratch_floats = (size_t)(2 * J.ds + ((half + 1) & ~(int64_t)1) + 2 * half + 2 * J.ds + 16);
    J.scratch_floats = (J.scratch_floats + 15) & ~(size_t)15;
    int64_t n = Bs->shape[1] * J.H;
    bool par = n * J.T * J.ds >= 16384;
    J.pool = pool;
    if (par) {
        sisa_fast_pool_run(pool, n, chan_task, &J);
    } else {
        for (int64_t i = 0; i < n; i++) chan_task(i, 0, &J);
    }
    if (J.failed) return sisa_err(SISA_OUT_OF_MEMORY, "cpu SSM_CHANNELS: out of host memory");
    return SISA_OK;
}
