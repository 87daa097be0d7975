/*
 * ops.c — op names and the node checker: the shape/dtype/parameter rules of ops.h in code.
 * Every kernel of every backend may rely on a node having passed sisa_node_check.
 */
#include <math.h>
#include <stdio.h>

#include "error.h"
#include "graph.h"

const char *sisa_op_name(int op) {
    static const char *const names[SISA_OP_COUNT] = {
        [SISA_OP_NONE] = "NONE",
        [SISA_OP_VIEW] = "VIEW",
        [SISA_OP_CPY] = "CPY",
        [SISA_OP_EMBED] = "EMBED",
        [SISA_OP_RMS_NORM] = "RMS_NORM",
        [SISA_OP_ROPE] = "ROPE",
        [SISA_OP_ADD] = "ADD",
        [SISA_OP_SCALE] = "SCALE",
        [SISA_OP_MATMUL] = "MATMUL",
        [SISA_OP_SOFTMAX] = "SOFTMAX",
        [SISA_OP_ARGMAX] = "ARGMAX",
        [SISA_OP_SWIGLU] = "SWIGLU",
        [SISA_OP_SSM_DECAY] = "SSM_DECAY",
        [SISA_OP_SSM_CHANNELS] = "SSM_CHANNELS",
        [SISA_OP_AUGMENT] = "AUGMENT",
        [SISA_OP_SDPA] = "SDPA",
    };
    if (op < 0 || op >= SISA_OP_COUNT) return "UNKNOWN_OP";
    return names[op];
}

int sisa_op_n_src(const sisa_tensor *node) {
    int n = 0;
    for (int i = 0; i < SISA_MAX_SRC; i++)
        if (node->src[i]) n = i + 1;
    return n;
}

/* ---- checking helpers: each returns false after setting the error ---- */

typedef struct check {
    const sisa_tensor *node;
    sisa_status st;
} check;

static bool fail(check *c, const char *fmt, ...) SISA_PRINTF(2, 3);
#include <stdarg.h>
static bool fail(check *c, const char *fmt, ...) {
    char msg[400], d[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->st = sisa_err(SISA_INVALID_ARG, "node %s op %s: %s",
                     sisa_tensor_describe(c->node, d, sizeof d), sisa_op_name(c->node->op), msg);
    return false;
}

static bool need_src(check *c, int i, const char *what) {
    if (!c->node->src[i]) return fail(c, "missing source %d (%s)", i, what);
    return true;
}

static bool is_float(check *c, const sisa_tensor *t, const char *what) {
    /* F64 is allowed by the definition (the oracle computes it, for reference outputs);
     * device backends decline it in supports_op. */
    if (!sisa_dtype_is_float(t->dtype))
        return fail(c, "%s '%s' has dtype %s; a float dtype expected", what, t->name,
                    sisa_dtype_name(t->dtype));
    return true;
}

static bool is_f32(check *c, const sisa_tensor *t, const char *what) {
    if (t->dtype != SISA_F32)
        return fail(c, "%s '%s' has dtype %s; f32 required", what, t->name, sisa_dtype_name(t->dtype));
    return true;
}

static bool dim_eq(check *c, const sisa_tensor *t, int d, int64_t want, const char *what) {
    if (t->shape[d] != want)
        return fail(c, "%s '%s' dim %d is %lld, expected %lld", what, t->name, d,
                    (long long)t->shape[d], (long long)want);
    return true;
}

static bool shape_eq(check *c, const sisa_tensor *t, const int64_t s[4], const char *what) {
    for (int d = 0; d < 4; d++)
        if (!dim_eq(c, t, d, s[d], what)) return false;
    return true;
}

static bool finite_param(check *c, float v, const char *what) {
    if (!isfinite(v)) return fail(c, "parameter %s is not finite", what);
    return true;
}

/* ---- per-op rules ---- */

static bool check_op(check *c) {
    const sisa_tensor *n = c->node, *a = n->src[0], *b = n->src[1];
    if (n->op != SISA_OP_NONE && !need_src(c, 0, "input")) return false;
    if (n->op != SISA_OP_ARGMAX && n->op != SISA_OP_NONE && n->op != SISA_OP_VIEW &&
        !is_float(c, n, "destination"))
        return false;
    switch (n->op) {
    case SISA_OP_NONE:
    case SISA_OP_VIEW: return true;
    case SISA_OP_CPY:
        if (a->dtype == SISA_I32) return is_float(c, a, "source");
        return shape_eq(c, n, a->shape, "destination");
    case SISA_OP_EMBED:
        if (!need_src(c, 1, "ids") || !is_float(c, a, "table")) return false;
        if (b->dtype != SISA_I32) return fail(c, "ids '%s' must be i32", b->name);
        if (!dim_eq(c, a, 0, 1, "table") || !dim_eq(c, a, 1, 1, "table")) return false;
        if (!dim_eq(c, b, 0, 1, "ids") || !dim_eq(c, b, 1, 1, "ids")) return false;
        return shape_eq(c, n, (int64_t[4]){1, b->shape[2], b->shape[3], a->shape[3]}, "destination");
    case SISA_OP_RMS_NORM:
        if (!need_src(c, 1, "weight") || !is_float(c, a, "x") || !is_float(c, b, "weight"))
            return false;
        if (!shape_eq(c, b, (int64_t[4]){1, 1, 1, a->shape[3]}, "weight")) return false;
        if (!(n->fparams[0] > 0.0f) || !finite_param(c, n->fparams[0], "eps"))
            return fail(c, "eps must be positive and finite");
        return shape_eq(c, n, a->shape, "destination");
    case SISA_OP_ROPE:
        if (!is_float(c, a, "x")) return false;
        if (a->shape[3] % 2) return fail(c, "head dim %lld is odd", (long long)a->shape[3]);
        if (!(n->fparams[0] > 1.0f) || !finite_param(c, n->fparams[0], "base"))
            return fail(c, "RoPE base must be > 1");
        if (n->iparams[0] < 0) return fail(c, "position offset %d < 0", n->iparams[0]);
        return shape_eq(c, n, a->shape, "destination");
    case SISA_OP_ADD:
        if (!need_src(c, 1, "b") || !is_float(c, a, "a") || !is_float(c, b, "b")) return false;
        for (int d = 0; d < 4; d++)
            if (b->shape[d] != 1 && b->shape[d] != a->shape[d])
                return fail(c, "b '%s' dim %d is %lld: must be 1 or %lld", b->name, d,
                            (long long)b->shape[d], (long long)a->shape[d]);
        return shape_eq(c, n, a->shape, "destination");
    case SISA_OP_SCALE:
        if (!is_float(c, a, "a") || !finite_param(c, n->fparams[0], "scale")) return false;
        return shape_eq(c, n, a->shape, "destination");
    case SISA_OP_MATMUL:
        if (!need_src(c, 1, "b") || !is_float(c, a, "a") || !is_float(c, b, "b")) return false;
        if (b->shape[3] != a->shape[3])
            return fail(c, "inner dims differ: a '%s' K=%lld, b '%s' K=%lld", a->name,
                        (long long)a->shape[3], b->name, (long long)b->shape[3]);
        for (int d = 0; d < 2; d++)
            if (b->shape[d] != 1 && b->shape[d] != a->shape[d])
                return fail(c, "b '%s' batch dim %d is %lld: must be 1 or %lld", b->name, d,
                            (long long)b->shape[d], (long long)a->shape[d]);
        return shape_eq(c, n, (int64_t[4]){a->shape[0], a->shape[1], a->shape[2], b->shape[2]},
                        "destination");
    case SISA_OP_SOFTMAX:
        return is_float(c, a, "x") && shape_eq(c, n, a->shape, "destination");
    case SISA_OP_ARGMAX:
        if (!is_float(c, a, "x")) return false;
        if (n->dtype != SISA_I32) return fail(c, "destination must be i32");
        return shape_eq(c, n, (int64_t[4]){a->shape[0], a->shape[1], a->shape[2], 1}, "destination");
    case SISA_OP_SWIGLU:
        if (!need_src(c, 1, "up") || !is_float(c, a, "gate") || !is_float(c, b, "up")) return false;
        return shape_eq(c, b, a->shape, "up") && shape_eq(c, n, a->shape, "destination");
    case SISA_OP_SSM_DECAY: {
        if (!need_src(c, 1, "bias") || !is_float(c, a, "alpha logits") || !is_float(c, b, "bias"))
            return false;
        int64_t B = a->shape[1], T = a->shape[2], H = a->shape[3];
        if (!dim_eq(c, a, 0, 1, "alpha logits")) return false;
        if (!shape_eq(c, b, (int64_t[4]){1, 1, 1, H}, "bias")) return false;
        if (n->src[2] && (!is_f32(c, n->src[2], "g0") ||
                          !shape_eq(c, n->src[2], (int64_t[4]){1, 1, B, H}, "g0")))
            return false;
        if (!is_f32(c, n, "destination")) return false;
        return shape_eq(c, n, (int64_t[4]){1, B, H, T}, "destination");
    }
    case SISA_OP_SSM_CHANNELS: {
        for (int i = 0; i < 5; i++)
            if (!need_src(c, i, "Bs, Cs, theta, g, lambda_raw")) return false;
        const sisa_tensor *Bs = a, *Cs = b, *th = n->src[2], *gd = n->src[3], *lr = n->src[4];
        int64_t H = lr->shape[3], B = Bs->shape[1], T = Bs->shape[2];
        if (!is_float(c, Bs, "Bs") || !is_float(c, Cs, "Cs") || !is_float(c, th, "theta") ||
            !is_f32(c, gd, "g") || !is_f32(c, lr, "lambda_raw"))
            return false;
        if (!shape_eq(c, lr, (int64_t[4]){1, 1, 1, H}, "lambda_raw")) return false;
        if (!dim_eq(c, Bs, 0, 1, "Bs")) return false;
        if (H <= 0 || Bs->shape[3] % H)
            return fail(c, "Bs width %lld is not a multiple of H=%lld", (long long)Bs->shape[3],
                        (long long)H);
        int64_t ds = Bs->shape[3] / H;
        if (ds % 2) return fail(c, "d_s = %lld is odd", (long long)ds);
        if (!shape_eq(c, Cs, Bs->shape, "Cs")) return false;
        if (!shape_eq(c, th, (int64_t[4]){1, B, T, H * ds / 2}, "theta")) return false;
        if (!shape_eq(c, gd, (int64_t[4]){1, B, H, T}, "g")) return false;
        if (n->src[5] && (!is_f32(c, n->src[5], "Phi0") ||
                          !shape_eq(c, n->src[5], (int64_t[4]){1, 1, B, H * ds / 2}, "Phi0")))
            return false;
        if (n->iparams[0] != SISA_SSM_AUGMENTED && n->iparams[0] != SISA_SSM_FACTORED)
            return fail(c, "mode %d is neither AUGMENTED (0) nor FACTORED (1)", n->iparams[0]);
        if (n->iparams[1] <= 0) return fail(c, "d_h = %d must be positive", n->iparams[1]);
        if (!(n->fparams[0] > 0.0f)) return fail(c, "clamp bound must be positive");
        return shape_eq(c, n, (int64_t[4]){B, H, T, 2 * ds}, "destination");
    }
    case SISA_OP_AUGMENT:
        if (!need_src(c, 1, "b") || !is_float(c, a, "a") || !is_float(c, b, "b")) return false;
        for (int d = 0; d < 3; d++)
            if (!dim_eq(c, b, d, a->shape[d], "b")) return false;
        if (n->iparams[0] < a->shape[3] + b->shape[3])
            return fail(c, "width %d < %lld + %lld", n->iparams[0], (long long)a->shape[3],
                        (long long)b->shape[3]);
        return shape_eq(c, n, (int64_t[4]){a->shape[0], a->shape[1], a->shape[2], n->iparams[0]},
                        "destination");
    case SISA_OP_SDPA: {
        for (int i = 0; i < 3; i++)
            if (!need_src(c, i, "Q, K, V")) return false;
        const sisa_tensor *q = a, *k = b, *v = n->src[2], *gq = n->src[3], *gk = n->src[4];
        if (!is_float(c, q, "Q") || !is_float(c, k, "K") || !is_float(c, v, "V")) return false;
        int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
        if (!shape_eq(c, k, (int64_t[4]){B, H, Tk, q->shape[3]}, "K")) return false;
        if (!shape_eq(c, v, (int64_t[4]){B, H, Tk, v->shape[3]}, "V")) return false;
        if ((gq == NULL) != (gk == NULL)) return fail(c, "form B needs both gq and gk");
        if (gq) {
            if (!is_f32(c, gq, "gq") || !is_f32(c, gk, "gk")) return false;
            if (!shape_eq(c, gq, (int64_t[4]){1, B, H, Tq}, "gq") ||
                !shape_eq(c, gk, (int64_t[4]){1, B, H, Tk}, "gk"))
                return false;
            /* exp(gq_i - gk_j) is bounded by 1 only for j <= i: form B is causal by definition */
            if (n->iparams[0] != 1) return fail(c, "form B (gq/gk given) requires causal = 1");
            if (n->iparams[2] < 0 || n->iparams[2] > q->shape[3])
                return fail(c, "d_content %d outside [0, %lld]", n->iparams[2],
                            (long long)q->shape[3]);
        }
        if (!(n->fparams[0] > 0.0f) || !finite_param(c, n->fparams[0], "scale"))
            return fail(c, "scale must be positive and finite");
        if (n->iparams[0] != 0 && n->iparams[0] != 1) return fail(c, "causal must be 0 or 1");
        if (n->iparams[1] < 0) return fail(c, "p0 = %d < 0", n->iparams[1]);
        return shape_eq(c, n, (int64_t[4]){B, Tq, H, v->shape[3]}, "destination");
    }
    default: return fail(c, "unknown op %d", n->op);
    }
}

sisa_status sisa_node_check(const sisa_tensor *node) {
    check c = {.node = node, .st = SISA_OK};
    if (!node) return sisa_err(SISA_INVALID_ARG, "node check: NULL node");
    if (!check_op(&c)) return c.st;
    return SISA_OK;
}
