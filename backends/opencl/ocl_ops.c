/*
 * ocl_ops.c — launching our own kernels (everything but MATMUL): arguments, work sizes, and the
 * copy/convert helpers ocl_matmul.c uses around CLBlast.
 *
 * Every launch names the kernel and the native code on failure; the dispatcher adds the node.
 * Called with the device lock held (kernel objects carry their arguments, so setting them and
 * enqueueing must not interleave between threads).
 */
#include <stdio.h>
#include <string.h>

#include "ocl.h"

sisa_status ocl_targ_of(const ocl_dev *d, const sisa_tensor *t, ocl_targ *out) {
    out->mem = ocl_tensor_mem(d, t);
    if (!out->mem) return SISA_INTERNAL;
    const int64_t es = (int64_t)sisa_dtype_size(t->dtype);
    if (t->offset % (size_t)es)
        return sisa_err(SISA_INTERNAL, "opencl: tensor '%s' sits at byte offset %zu, not a "
                        "multiple of its %lld-byte elements", t->name, t->offset, (long long)es);
    out->off = (cl_long)(t->offset / (size_t)es);
    for (int i = 0; i < 4; i++) out->st.s[i] = (cl_long)(t->stride[i] / es);
    return SISA_OK;
}

/* ---- argument lists ---- */

typedef struct args {
    cl_kernel k;
    const char *name;
    cl_uint i;
    cl_int err;
    cl_uint bad; /* index of the first failing argument */
} args;

static void arg(args *a, size_t size, const void *value) {
    if (a->err == CL_SUCCESS) {
        a->err = clSetKernelArg(a->k, a->i, size, value);
        if (a->err != CL_SUCCESS) a->bad = a->i;
    }
    a->i++;
}

static void arg_src(args *a, const ocl_targ *t) {
    arg(a, sizeof t->mem, &t->mem);
    arg(a, sizeof t->off, &t->off);
    arg(a, sizeof t->st, &t->st);
}

static void arg_dst(args *a, const ocl_targ *t) {
    arg(a, sizeof t->mem, &t->mem);
    arg(a, sizeof t->off, &t->off);
}

static void arg_long(args *a, int64_t v) {
    cl_long x = v;
    arg(a, sizeof x, &x);
}

static void arg_shape(args *a, const int64_t shape[4]) {
    cl_long4 sh;
    for (int i = 0; i < 4; i++) sh.s[i] = shape[i];
    arg(a, sizeof sh, &sh);
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* A local size for dimension 0 of a row launch: 64, or the smallest power of two >= n. */
static size_t row_local(int64_t n) {
    size_t l = 1;
    while (l < 64 && (int64_t)l < n) l *= 2;
    return l;
}

static sisa_status launch(ocl_stream *s, args *a, cl_uint dims, const size_t *global,
                          const size_t *local) {
    if (a->err != CL_SUCCESS)
        return ocl_fail(a->err, "%s: clSetKernelArg(%u)", a->name, a->bad);
    for (cl_uint i = 0; i < dims; i++)
        if (global[i] == 0) return SISA_OK; /* nothing to do */
    if (local) {
        /* a compiled kernel may allow fewer work-items per group than the device (registers) */
        size_t want = local[0] * (dims > 1 ? local[1] : 1) * (dims > 2 ? local[2] : 1), kwg = 0;
        if (clGetKernelWorkGroupInfo(a->k, s->dev->id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kwg, &kwg,
                                     NULL) == CL_SUCCESS && kwg > 0 && want > kwg)
            return sisa_err(SISA_UNSUPPORTED,
                            "opencl: %s needs %zu work-items per group but this build of it allows "
                            "%zu on '%s' (for SDPA set SISA_CL_SDPA_BQ=%zu or lower)",
                            a->name, want, kwg, s->dev->name, kwg);
    }
    cl_int err = clEnqueueNDRangeKernel(s->q, a->k, dims, NULL, global, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return ocl_fail(err, "clEnqueueNDRangeKernel(%s, global %zu x %zu, local %zu x %zu)",
                        a->name, global[0], dims > 1 ? global[1] : 1, local ? local[0] : 0,
                        local && dims > 1 ? local[1] : 0);
    return SISA_OK;
}

static sisa_status kernel_for(ocl_stream *s, ocl_family fam, const char *opts, const char *name,
                              args *a) {
    memset(a, 0, sizeof *a);
    a->name = name;
    return ocl_kernel_get(s->dev, fam, opts, name, &a->k);
}

/* ---- copies around CLBlast ---- */

static int dt_code(sisa_dtype t) { return t == SISA_F16 ? 1 : t == SISA_BF16 ? 2 : t == SISA_I32 ? 3 : 0; }

static sisa_status launch_cpy(ocl_stream *s, const ocl_targ *dst, sisa_dtype dst_dt,
                              const int64_t shape[4], const ocl_targ *src, sisa_dtype src_dt) {
    char opts[64];
    snprintf(opts, sizeof opts, "-DT_D=%d -DT_S0=%d ", dt_code(dst_dt), dt_code(src_dt));
    args a;
    SISA_TRY(kernel_for(s, OCL_FAM_ELEMENTWISE, opts, "k_cpy", &a));
    arg_dst(&a, dst);
    arg_shape(&a, shape);
    arg_src(&a, src);
    const size_t l0 = row_local(shape[3]);
    const size_t global[2] = {round_up((size_t)shape[3], l0), (size_t)(shape[0] * shape[1] * shape[2])};
    const size_t local[2] = {l0, 1};
    return launch(s, &a, 2, global, local);
}

sisa_status ocl_enqueue_cpy(ocl_stream *s, const sisa_tensor *src, sisa_dtype dst_dtype,
                            cl_mem dst_mem, size_t dst_off_elems) {
    ocl_targ st, dt = {.mem = dst_mem, .off = (cl_long)dst_off_elems};
    SISA_TRY(ocl_targ_of(s->dev, src, &st));
    return launch_cpy(s, &dt, dst_dtype, src->shape, &st, src->dtype);
}

sisa_status ocl_enqueue_store(ocl_stream *s, cl_mem src, const sisa_tensor *dst) {
    ocl_targ dt, st = {.mem = src, .off = 0};
    SISA_TRY(ocl_targ_of(s->dev, dst, &dt));
    st.st.s[3] = 1;
    st.st.s[2] = dst->shape[3];
    st.st.s[1] = dst->shape[2] * dst->shape[3];
    st.st.s[0] = dst->shape[1] * dst->shape[2] * dst->shape[3];
    return launch_cpy(s, &dt, dst->dtype, dst->shape, &st, SISA_F32);
}

/* ---- one node ---- */

typedef struct node_args {
    ocl_targ dst, src[SISA_MAX_SRC];
} node_args;

static sisa_status gather(const ocl_dev *d, const sisa_tensor *n, node_args *na) {
    memset(na, 0, sizeof *na);
    SISA_TRY(ocl_targ_of(d, n, &na->dst));
    for (int i = 0; i < SISA_MAX_SRC; i++) {
        if (n->src[i]) SISA_TRY(ocl_targ_of(d, n->src[i], &na->src[i]));
        else na->src[i] = (ocl_targ){.mem = na->dst.mem}; /* absent optional: any valid buffer */
    }
    return SISA_OK;
}

static sisa_status run_elementwise(ocl_stream *s, const sisa_tensor *n, args *a, node_args *na) {
    arg_dst(a, &na->dst);
    arg_shape(a, n->shape);
    switch (n->op) {
    case SISA_OP_CPY: arg_src(a, &na->src[0]); break;
    case SISA_OP_ADD:
        /* broadcast: stride 0 along b's size-1 dimensions */
        for (int i = 0; i < 4; i++)
            if (n->src[1]->shape[i] == 1) na->src[1].st.s[i] = 0;
        arg_src(a, &na->src[0]);
        arg_src(a, &na->src[1]);
        break;
    case SISA_OP_SCALE:
        arg_src(a, &na->src[0]);
        arg(a, sizeof(float), &n->fparams[0]);
        break;
    case SISA_OP_SWIGLU:
        arg_src(a, &na->src[0]);
        arg_src(a, &na->src[1]);
        break;
    case SISA_OP_AUGMENT:
        arg_src(a, &na->src[0]);
        arg_long(a, n->src[0]->shape[3]);
        arg_src(a, &na->src[1]);
        arg_long(a, n->src[1]->shape[3]);
        break;
    default: return sisa_err(SISA_INTERNAL, "opencl: %s is not elementwise", sisa_op_name(n->op));
    }
    const size_t l0 = row_local(n->shape[3]);
    const size_t global[2] = {round_up((size_t)n->shape[3], l0),
                              (size_t)(n->shape[0] * n->shape[1] * n->shape[2])};
    const size_t local[2] = {l0, 1};
    return launch(s, a, 2, global, local);
}

static sisa_status run_norm(ocl_stream *s, const sisa_tensor *n, args *a, node_args *na) {
    const sisa_tensor *x = n->src[0];
    arg_dst(a, &na->dst);
    arg_shape(a, x->shape);
    arg_src(a, &na->src[0]);
    if (n->op == SISA_OP_RMS_NORM) {
        arg_src(a, &na->src[1]);
        arg(a, sizeof(float), &n->fparams[0]);
    }
    const size_t wg = (size_t)s->dev->wg_reduce;
    const size_t global = (size_t)(x->shape[0] * x->shape[1] * x->shape[2]) * wg;
    return launch(s, a, 1, &global, &wg);
}

static sisa_status run_embed_rope(ocl_stream *s, const sisa_tensor *n, args *a, node_args *na) {
    arg_dst(a, &na->dst);
    if (n->op == SISA_OP_EMBED) {
        const sisa_tensor *tab = n->src[0], *ids = n->src[1];
        const int64_t B = ids->shape[2], T = ids->shape[3], D = tab->shape[3];
        arg_long(a, T);
        arg_long(a, D);
        arg_long(a, tab->shape[2]);
        arg_src(a, &na->src[1]);
        arg_src(a, &na->src[0]);
        const size_t l0 = row_local(D);
        const size_t global[2] = {round_up((size_t)D, l0), (size_t)(B * T)}, local[2] = {l0, 1};
        return launch(s, a, 2, global, local);
    }
    const sisa_tensor *x = n->src[0];
    const cl_int p0 = n->iparams[0];
    arg_shape(a, x->shape);
    arg_src(a, &na->src[0]);
    arg(a, sizeof(float), &n->fparams[0]);
    arg(a, sizeof p0, &p0);
    const size_t l0 = row_local(x->shape[3] / 2);
    const size_t global[2] = {round_up((size_t)(x->shape[3] / 2), l0),
                              (size_t)(x->shape[0] * x->shape[1] * x->shape[2])};
    const size_t local[2] = {l0, 1};
    return launch(s, a, 2, global, local);
}

/* One work-group of wg_reduce work-items per (b, h): a chunked scan over time (ssm.cl). */
static sisa_status run_ssm(ocl_stream *s, const sisa_tensor *n, args *a, node_args *na) {
    const size_t wg = (size_t)s->dev->wg_reduce;
    if (n->op == SISA_OP_SSM_DECAY) {
        const sisa_tensor *x = n->src[0];
        const int64_t B = x->shape[1], T = x->shape[2], H = x->shape[3];
        arg_dst(a, &na->dst);
        arg_long(a, B);
        arg_long(a, T);
        arg_long(a, H);
        arg_src(a, &na->src[0]);
        arg_src(a, &na->src[1]);
        arg_src(a, &na->src[2]);
        const size_t global = (size_t)(B * H) * wg;
        return launch(s, a, 1, &global, &wg);
    }
    const sisa_tensor *bs = n->src[0], *lam = n->src[4];
    const int64_t B = bs->shape[1], T = bs->shape[2], H = lam->shape[3], ds = bs->shape[3] / H;
    const cl_int dh = n->iparams[1];
    arg_dst(a, &na->dst);
    arg_long(a, B);
    arg_long(a, T);
    arg_long(a, H);
    arg_long(a, ds);
    for (int i = 0; i < 6; i++) arg_src(a, &na->src[i]);
    arg(a, sizeof dh, &dh);
    arg(a, sizeof(float), &n->fparams[0]);
    const size_t global = (size_t)(B * H) * wg;
    return launch(s, a, 1, &global, &wg);
}

static sisa_status run_sdpa(ocl_stream *s, const sisa_tensor *n, args *a, node_args *na) {
    const sisa_tensor *q = n->src[0], *k = n->src[1];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
    const cl_int causal = n->iparams[0];
    arg_dst(a, &na->dst);
    arg_long(a, H);
    arg_long(a, Tq);
    arg_long(a, Tk);
    arg(a, sizeof(float), &n->fparams[0]);
    arg(a, sizeof causal, &causal);
    arg_long(a, n->iparams[1]);
    for (int i = 0; i < 5; i++) arg_src(a, &na->src[i]);
    const size_t bq = (size_t)s->dev->sdpa_bq;
    const size_t global[2] = {round_up((size_t)Tq, bq), (size_t)(B * H)}, local[2] = {bq, 1};
    return launch(s, a, 2, global, local);
}

/* Can gemm.cl read t (a MATMUL operand) 8 elements (16 bytes) at a time? k contiguous and every
 * other stride and the offset multiples of 8 (K too: checked by the caller). */
static bool gemm_vec_ok(const sisa_tensor *t, const ocl_targ *ta) {
    if (ta->st.s[3] != 1 || ta->off % 8) return false;
    for (int i = 0; i < 3; i++)
        if (t->shape[i] > 1 && ta->st.s[i] % 8) return false;
    return true;
}

static sisa_status run_gemm(ocl_stream *s, const sisa_tensor *n, const ocl_plan *plan,
                            node_args *na) {
    const sisa_tensor *x = n->src[0], *w = n->src[1];
    const int64_t A0 = x->shape[0], A1 = x->shape[1], M = x->shape[2], K = x->shape[3];
    const int64_t N = w->shape[2];
    ocl_targ ta = na->src[0], tb = na->src[1];
    for (int i = 0; i < 2; i++) { /* broadcast and size-1 batch dims: stride 0 */
        if (x->shape[i] == 1) ta.st.s[i] = 0;
        if (w->shape[i] == 1) tb.st.s[i] = 0;
    }
    const bool vec = K % 8 == 0 && gemm_vec_ok(x, &ta) && gemm_vec_ok(w, &tb);
    char opts[sizeof plan->opts + 16];
    snprintf(opts, sizeof opts, "%s-DVEC=%d", plan->opts, vec ? 1 : 0);
    args a;
    SISA_TRY(kernel_for(s, plan->fam, opts, plan->kernel, &a));
    arg_dst(&a, &na->dst);
    arg_long(&a, M);
    arg_long(&a, N);
    arg_long(&a, K);
    arg_long(&a, A1);
    arg_src(&a, &ta);
    arg_src(&a, &tb);
    const size_t global[3] = {(size_t)((M + 127) / 128) * 256, (size_t)((N + 127) / 128),
                              (size_t)(A0 * A1)};
    const size_t local[3] = {256, 1, 1};
    return launch(s, &a, 3, global, local);
}

/* sdpa_mma.cl: Q, K, V read a channel pair as one word when every stride and offset is even
 * and the channels are contiguous (the widths are even: select checked). */
static bool pair_ok(const ocl_targ *t) {
    return t->st.s[3] == 1 && t->off % 2 == 0 && t->st.s[0] % 2 == 0 && t->st.s[1] % 2 == 0 &&
           t->st.s[2] % 2 == 0;
}

static sisa_status run_sdpa_mma(ocl_stream *s, const sisa_tensor *n, const ocl_plan *plan,
                                node_args *na) {
    const sisa_tensor *q = n->src[0], *k = n->src[1];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
    const cl_int causal = n->iparams[0];
    const bool vec = pair_ok(&na->src[0]) && pair_ok(&na->src[1]) && pair_ok(&na->src[2]);
    char opts[sizeof plan->opts + 16];
    snprintf(opts, sizeof opts, "%s-DVEC2=%d", plan->opts, vec ? 1 : 0);
    args a;
    SISA_TRY(kernel_for(s, plan->fam, opts, plan->kernel, &a));
    arg_dst(&a, &na->dst);
    arg_long(&a, H);
    arg_long(&a, Tq);
    arg_long(&a, Tk);
    arg(&a, sizeof(float), &n->fparams[0]);
    arg(&a, sizeof causal, &causal);
    arg_long(&a, n->iparams[1]);
    for (int i = 0; i < 3; i++) arg_src(&a, &na->src[i]);
    const size_t bq = OCL_SDPA_MMA_WARPS * 16, wg = OCL_SDPA_MMA_WARPS * 32;
    const size_t global[2] = {((size_t)Tq + bq - 1) / bq * wg, (size_t)(B * H)};
    const size_t local[2] = {wg, 1};
    return launch(s, &a, 2, global, local);
}

sisa_status ocl_run_kernel(ocl_stream *s, const sisa_tensor *n, const ocl_plan *plan) {
    node_args na;
    SISA_TRY(gather(s->dev, n, &na));
    if (plan->fam == OCL_FAM_GEMM) return run_gemm(s, n, plan, &na);
    if (plan->fam == OCL_FAM_SDPA_MMA) return run_sdpa_mma(s, n, plan, &na);
    args a;
    SISA_TRY(kernel_for(s, plan->fam, plan->opts, plan->kernel, &a));
    switch (plan->fam) {
    case OCL_FAM_ELEMENTWISE: return run_elementwise(s, n, &a, &na);
    case OCL_FAM_NORM: return run_norm(s, n, &a, &na);
    case OCL_FAM_EMBED_ROPE: return run_embed_rope(s, n, &a, &na);
    case OCL_FAM_SSM: return run_ssm(s, n, &a, &na);
    case OCL_FAM_SDPA: return run_sdpa(s, n, &a, &na);
    default: return sisa_err(SISA_INTERNAL, "opencl: family %s has no launcher", ocl_family_name(plan->fam));
    }
}
