/*
 * ocl_select.c — THE kernel-selection function of the OpenCL backend.
 *
 * ocl_select decides which program variant (family, entry point, -D options) runs a node, or
 * says why the node cannot run here. supports_op answers with it and graph_compute dispatches
 * with it, so the support matrix `sisa conform` prints is by construction what executes.
 * Nothing here touches the device: it reads only the node and the device's properties.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ocl.h"

static bool why(char *reason, const char *fmt, ...) SISA_PRINTF(2, 3);
static bool why(char *reason, const char *fmt, ...) {
    if (reason) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, SISA_REASON_LEN, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* The storage code a kernel macro uses for a dtype: 0 f32, 1 f16, 2 bf16, 3 i32; -1 none. */
static int dt_code(sisa_dtype t) {
    switch (t) {
    case SISA_F32: return 0;
    case SISA_F16: return 1;
    case SISA_BF16: return 2;
    case SISA_I32: return 3;
    default: return -1;
    }
}

/* Our kernels address elements: byte strides and view offsets must be whole elements. (The base
 * offset is checked again at launch, once the allocator has placed the tensor.) */
static bool layout_ok(const sisa_tensor *t, const char *what, char *reason) {
    if (!t) return true;
    if (dt_code(t->dtype) < 0)
        return why(reason, "%s '%s' has dtype %s, which the OpenCL kernels do not store", what,
                   t->name, sisa_dtype_name(t->dtype));
    int64_t es = (int64_t)sisa_dtype_size(t->dtype);
    size_t voff = 0;
    for (const sisa_tensor *v = t; v && v->view_src; v = v->view_src) voff += v->view_offset;
    if (voff % (size_t)es)
        return why(reason, "%s '%s' is a view at byte offset %zu, not a multiple of its %lld-byte "
                   "elements", what, t->name, voff, (long long)es);
    for (int i = 0; i < 4; i++)
        if (t->stride[i] % es)
            return why(reason, "%s '%s' has a byte stride %lld not a multiple of its element size",
                       what, t->name, (long long)t->stride[i]);
    return true;
}

static void add_opt(ocl_plan *p, const char *fmt, ...) SISA_PRINTF(2, 3);
static void add_opt(ocl_plan *p, const char *fmt, ...) {
    size_t n = strlen(p->opts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->opts + n, sizeof p->opts - n, fmt, ap);
    va_end(ap);
}

static void dtypes(ocl_plan *p, const sisa_tensor *node) {
    if (node->dtype != SISA_I32) add_opt(p, "-DT_D=%d ", dt_code(node->dtype));
    static const int slots[] = {0, 1, 2, 5}; /* the sources kernels take by dtype macro */
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        const sisa_tensor *s = node->src[slots[i]];
        if (s && s->dtype != SISA_I32 && !(node->op == SISA_OP_SDPA && slots[i] > 2))
            add_opt(p, "-DT_S%d=%d ", slots[i], dt_code(s->dtype));
    }
}

/* kernels/sdpa_mma.cl: form A, Q, K, V one 16-bit dtype, a 16-bit destination (P is rounded to
 * 16 bits before P·V, which only the 16-bit thresholds admit), head widths the mma tiles cover,
 * and its local memory (Q and K tiles of 64 rows, Vᵀ; the emulation's scratch) within the
 * device's. */
static bool sdpa_mma_fits(const ocl_dev *d, const sisa_tensor *n) {
    const sisa_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2];
    const sisa_dtype t = q->dtype;
    if (d->mma == OCL_MMA_OFF || n->src[3] || (t != SISA_BF16 && t != SISA_F16) ||
        k->dtype != t || v->dtype != t || (n->dtype != SISA_BF16 && n->dtype != SISA_F16))
        return false;
    const int64_t dqk = q->shape[3], dv = v->shape[3];
    if (dqk % 16 || dv % 8 || dqk > 256 || dv > 256) return false;
    /* OCL_SDPA_MMA_WARPS·16 query rows of Q (staged where the 64-key K tile goes), Vᵀ */
    const int64_t rows = OCL_SDPA_MMA_WARPS * 16 > 64 ? OCL_SDPA_MMA_WARPS * 16 : 64;
    const cl_ulong bytes = (cl_ulong)(rows * (dqk / 2 + 4) + dv * 36) * 4u +
                           (d->mma == OCL_MMA_EMULATE
                                ? (cl_ulong)OCL_SDPA_MMA_WARPS * (16 * 16 + 8 * 16 + 32) * 4u : 0u);
    return bytes + 256 <= d->local_mem;
}

static bool select_sdpa(const ocl_dev *d, const sisa_tensor *n, ocl_plan *p, char *reason) {
    const sisa_tensor *q = n->src[0], *v = n->src[2];
    const int64_t dqk = q->shape[3], dv = v->shape[3];
    const bool form_b = n->src[3] != NULL;
    if (sdpa_mma_fits(d, n)) {
        p->fam = OCL_FAM_SDPA_MMA;
        p->kernel = "k_sdpa_mma";
        add_opt(p, "-DMMA_PTX=%d -DMMA_F16=%d -DT_D=%d -DDQK=%lld -DDV=%lld -DNWARP=%d ",
                d->mma == OCL_MMA_PTX ? 1 : 0, q->dtype == SISA_F16 ? 1 : 0, dt_code(n->dtype),
                (long long)dqk, (long long)dv, OCL_SDPA_MMA_WARPS);
        return true;
    }
    const int64_t dc = form_b ? n->iparams[2] : dqk;
    /* one query row lives in registers: DQK + DV + BK floats per work-item */
    if (dqk > 512 || dv > 512)
        return why(reason, "SDPA head widths d_qk=%lld, d_v=%lld: the flash kernel keeps a row in "
                   "registers and takes at most 512 each", (long long)dqk, (long long)dv);
    int bk = d->sdpa_bk;
    const cl_ulong budget = d->local_mem > 1024 ? d->local_mem - 512 : d->local_mem;
    while (bk > 1 && (cl_ulong)bk * (cl_ulong)(dqk + dv + 1) * 4u > budget) bk /= 2;
    if ((cl_ulong)bk * (cl_ulong)(dqk + dv + 1) * 4u > budget)
        return why(reason, "SDPA tile of d_qk=%lld + d_v=%lld does not fit the device's %llu bytes "
                   "of local memory", (long long)dqk, (long long)dv,
                   (unsigned long long)d->local_mem);
    p->fam = OCL_FAM_SDPA;
    p->kernel = "k_sdpa";
    p->bk = bk;
    dtypes(p, n);
    add_opt(p, "-DDQK=%lld -DDV=%lld -DDC=%lld -DFORM_B=%d -DBQ=%d -DBK=%d", (long long)dqk,
            (long long)dv, (long long)dc, form_b ? 1 : 0, d->sdpa_bq, bk);
    return true;
}

bool ocl_select(const ocl_dev *d, const sisa_tensor *n, ocl_plan *p, char *reason) {
    memset(p, 0, sizeof *p);
    if (reason) reason[0] = '\0';
    if (!sisa_tensor_is_contiguous(n))
        return why(reason, "destination '%s' is not contiguous", n->name);
    if (!layout_ok(n, "destination", reason)) return false;
    for (int i = 0; i < SISA_MAX_SRC; i++)
        if (!layout_ok(n->src[i], "source", reason)) return false;

    switch (n->op) {
    case SISA_OP_CPY: p->fam = OCL_FAM_ELEMENTWISE, p->kernel = "k_cpy"; break;
    case SISA_OP_ADD: p->fam = OCL_FAM_ELEMENTWISE, p->kernel = "k_add"; break;
    case SISA_OP_SCALE: p->fam = OCL_FAM_ELEMENTWISE, p->kernel = "k_scale"; break;
    case SISA_OP_SWIGLU: p->fam = OCL_FAM_ELEMENTWISE, p->kernel = "k_swiglu"; break;
    case SISA_OP_AUGMENT: p->fam = OCL_FAM_ELEMENTWISE, p->kernel = "k_augment"; break;
    case SISA_OP_EMBED: p->fam = OCL_FAM_EMBED_ROPE, p->kernel = "k_embed"; break;
    case SISA_OP_ROPE: p->fam = OCL_FAM_EMBED_ROPE, p->kernel = "k_rope"; break;
    case SISA_OP_RMS_NORM: p->fam = OCL_FAM_NORM, p->kernel = "k_rms_norm"; break;
    case SISA_OP_SOFTMAX: p->fam = OCL_FAM_NORM, p->kernel = "k_softmax"; break;
    case SISA_OP_ARGMAX: p->fam = OCL_FAM_NORM, p->kernel = "k_argmax"; break;
    case SISA_OP_SSM_DECAY:
        p->fam = OCL_FAM_SSM, p->kernel = "k_ssm_decay";
        add_opt(p, "-DHAS_G0=%d ", n->src[2] ? 1 : 0);
        break;
    case SISA_OP_SSM_CHANNELS:
        p->fam = OCL_FAM_SSM, p->kernel = "k_ssm_channels";
        add_opt(p, "-DMODE_A=%d -DHAS_PHI0=%d -DNP=%lld ", n->iparams[0] == SISA_SSM_AUGMENTED ? 1 : 0,
                n->src[5] ? 1 : 0, (long long)(n->src[2]->shape[3] / n->src[4]->shape[3]));
        break;
    case SISA_OP_SDPA: return select_sdpa(d, n, p, reason);
    case SISA_OP_MATMUL: {
        /* Both operands bf16 (or both f16) on a device with the warp mma: kernels/gemm.cl, exact
         * products and f32 sums, so it meets every MATMUL row the f32 path meets. Otherwise
         * CLBlast SGEMM; f16/bf16 operands and views it cannot address are first copied to f32
         * (CLBlast has no bf16, and its HGEMM accumulates in f16, which ops.h rules out). */
        const sisa_dtype ta = n->src[0]->dtype, tb = n->src[1]->dtype;
        if (d->mma != OCL_MMA_OFF && ta == tb && (ta == SISA_BF16 || ta == SISA_F16)) {
            p->fam = OCL_FAM_GEMM;
            p->kernel = "k_gemm";
            add_opt(p, "-DMMA_PTX=%d -DMMA_F16=%d -DT_D=%d ", d->mma == OCL_MMA_PTX ? 1 : 0,
                    ta == SISA_F16 ? 1 : 0, dt_code(n->dtype));
            return true;
        }
        p->fam = OCL_FAM_CLBLAST;
        return true;
    }
    default:
        return why(reason, "op %s has no OpenCL kernel", sisa_op_name(n->op));
    }
    if (p->fam == OCL_FAM_NORM || p->fam == OCL_FAM_SSM) add_opt(p, "-DWG=%d ", d->wg_reduce);
    dtypes(p, n);
    return true;
}
