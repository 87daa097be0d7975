/*
 * graph.c — graph ownership, views and the op builders (see graph.h).
 *
 * The builders compute the result shape of each op; sisa_node_check (ops_check.c) then verifies
 * the node against the definition in ops.h, so a hand-built node (tests) and a built one are held
 * to the same rules.
 */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

sisa_graph *sisa_graph_new(void) {
    sisa_graph *g = calloc(1, sizeof *g);
    if (g) g->act_dtype = SISA_F32;
    return g;
}

void sisa_graph_free(sisa_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i]);
    for (int i = 0; i < g->n_leafs; i++) free(g->leafs[i]);
    free(g->nodes);
    free(g->leafs);
    free(g);
}

sisa_status sisa_graph_status(const sisa_graph *g) {
    if (!g) return sisa_err(SISA_OUT_OF_MEMORY, "graph: out of host memory");
    if (g->status != SISA_OK) return sisa_err(g->status, "graph: %s", g->err);
    return SISA_OK;
}

static void graph_fail(sisa_graph *g, sisa_status st, const char *fmt, ...) SISA_PRINTF(3, 4);
static void graph_fail(sisa_graph *g, sisa_status st, const char *fmt, ...) {
    if (g->status != SISA_OK) return; /* keep the first error: later ones are consequences */
    g->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
}

static bool push(sisa_graph *g, sisa_tensor ***arr, int *n, int *cap, sisa_tensor *t) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        sisa_tensor **na = realloc(*arr, (size_t)nc * sizeof *na);
        if (!na) {
            graph_fail(g, SISA_OUT_OF_MEMORY, "out of host memory growing the graph");
            return false;
        }
        *arr = na;
        *cap = nc;
    }
    t->index = *n;
    (*arr)[(*n)++] = t;
    return true;
}

static sisa_tensor *new_tensor(sisa_graph *g, sisa_dtype dt, const int64_t shape[4]) {
    if (!g || g->status != SISA_OK) return NULL;
    for (int i = 0; i < 4; i++) {
        if (shape[i] <= 0) {
            graph_fail(g, SISA_INVALID_ARG, "dimension %d of a new tensor is %lld (must be > 0)", i,
                       (long long)shape[i]);
            return NULL;
        }
    }
    sisa_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        graph_fail(g, SISA_OUT_OF_MEMORY, "out of host memory for a tensor");
        return NULL;
    }
    t->dtype = dt;
    memcpy(t->shape, shape, sizeof t->shape);
    sisa_tensor_set_contiguous(t);
    return t;
}

sisa_tensor *sisa_graph_leaf(sisa_graph *g, const char *name, sisa_dtype dt, const int64_t shape[4],
                             int flags) {
    sisa_tensor *t = new_tensor(g, dt, shape);
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->op = SISA_OP_NONE;
    t->flags = flags;
    if (!push(g, &g->leafs, &g->n_leafs, &g->cap_leafs, t)) {
        free(t);
        return NULL;
    }
    return t;
}

sisa_tensor *sisa_graph_input(sisa_graph *g, const char *name, sisa_dtype dt, int64_t d0, int64_t d1,
                              int64_t d2, int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    return sisa_graph_leaf(g, name, dt, shape, SISA_TENSOR_INPUT);
}

sisa_tensor *sisa_tensor_set_name(sisa_tensor *t, const char *fmt, ...) {
    if (!t) return NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    return t;
}

sisa_tensor *sisa_tensor_set_output(sisa_tensor *t) {
    if (t) t->flags |= SISA_TENSOR_OUTPUT;
    return t;
}

sisa_tensor *sisa_tensor_base(sisa_tensor *t) {
    while (t && t->view_src) t = t->view_src;
    return t;
}

/* Append a node after checking it against its definition. */
static sisa_tensor *add_node(sisa_graph *g, sisa_tensor *t) {
    if (t->op != SISA_OP_VIEW && sisa_node_check(t) != SISA_OK) {
        graph_fail(g, SISA_INVALID_ARG, "%s", sisa_last_error());
        free(t);
        return NULL;
    }
    if (!push(g, &g->nodes, &g->n_nodes, &g->cap_nodes, t)) {
        free(t);
        return NULL;
    }
    return t;
}

sisa_tensor *sisa_graph_node(sisa_graph *g, int op, sisa_dtype dt, const int64_t shape[4],
                             sisa_tensor *const src[SISA_MAX_SRC], const float *fparams,
                             const int32_t *iparams) {
    if (!g || g->status != SISA_OK) return NULL;
    /* A required source that is NULL means an earlier builder failed: that error is recorded. */
    if (!src[0]) {
        graph_fail(g, SISA_INVALID_ARG, "%s: missing first source", sisa_op_name(op));
        return NULL;
    }
    sisa_tensor *t = new_tensor(g, dt, shape);
    if (!t) return NULL;
    t->op = op;
    memcpy(t->src, src, sizeof t->src);
    if (fparams) memcpy(t->fparams, fparams, sizeof t->fparams);
    if (iparams) memcpy(t->iparams, iparams, sizeof t->iparams);
    snprintf(t->name, sizeof t->name, "%s(%s)", sisa_op_name(op), src[0]->name);
    return add_node(g, t);
}

/* ---- views ---- */

sisa_tensor *sisa_view(sisa_graph *g, sisa_tensor *a, const int64_t shape[4], const int64_t stride[4],
                       size_t byte_offset) {
    if (!g || g->status != SISA_OK) return NULL;
    if (!a) {
        graph_fail(g, SISA_INVALID_ARG, "view of a missing tensor");
        return NULL;
    }
    sisa_tensor *t = new_tensor(g, a->dtype, shape);
    if (!t) return NULL;
    memcpy(t->stride, stride, sizeof t->stride);
    t->op = SISA_OP_VIEW;
    t->src[0] = a;
    t->view_src = a;
    t->view_offset = byte_offset;
    snprintf(t->name, sizeof t->name, "%s (view)", a->name);
    /* The view must stay inside the viewed tensor's bytes. */
    size_t need = byte_offset + sisa_tensor_span_bytes(t);
    size_t have = sisa_tensor_span_bytes(a);
    for (int i = 0; i < 4; i++) {
        if (stride[i] < 0) need = SIZE_MAX;
    }
    if (need > have) {
        char d[160];
        graph_fail(g, SISA_INVALID_ARG, "view of %s reaches byte %zu past its %zu bytes",
                   sisa_tensor_describe(a, d, sizeof d), need, have);
        free(t);
        return NULL;
    }
    return add_node(g, t);
}

sisa_tensor *sisa_reshape(sisa_graph *g, sisa_tensor *a, int64_t d0, int64_t d1, int64_t d2,
                          int64_t d3) {
    if (!g || g->status != SISA_OK || !a) return sisa_view(g, a, NULL, NULL, 0);
    const int64_t shape[4] = {d0, d1, d2, d3};
    char d[160];
    if (!sisa_tensor_is_contiguous(a)) {
        graph_fail(g, SISA_INVALID_ARG, "reshape of non-contiguous %s",
                   sisa_tensor_describe(a, d, sizeof d));
        return NULL;
    }
    if (d0 * d1 * d2 * d3 != sisa_tensor_nelements(a)) {
        graph_fail(g, SISA_INVALID_ARG, "reshape of %s to [%lld,%lld,%lld,%lld]: element counts differ",
                   sisa_tensor_describe(a, d, sizeof d), (long long)d0, (long long)d1,
                   (long long)d2, (long long)d3);
        return NULL;
    }
    sisa_tensor tmp = {.dtype = a->dtype};
    memcpy(tmp.shape, shape, sizeof shape);
    sisa_tensor_set_contiguous(&tmp);
    return sisa_view(g, a, shape, tmp.stride, 0);
}

sisa_tensor *sisa_permute(sisa_graph *g, sisa_tensor *a, int p0, int p1, int p2, int p3) {
    if (!g || g->status != SISA_OK || !a) return sisa_view(g, a, NULL, NULL, 0);
    const int p[4] = {p0, p1, p2, p3};
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        if (p[i] < 0 || p[i] > 3 || (seen & (1 << p[i]))) {
            graph_fail(g, SISA_INVALID_ARG, "permute(%d,%d,%d,%d) is not a permutation", p0, p1,
                       p2, p3);
            return NULL;
        }
        seen |= 1 << p[i];
    }
    int64_t shape[4], stride[4];
    for (int i = 0; i < 4; i++) {
        shape[i] = a->shape[p[i]];
        stride[i] = a->stride[p[i]];
    }
    return sisa_view(g, a, shape, stride, 0);
}

sisa_tensor *sisa_slice_row(sisa_graph *g, sisa_tensor *a, int64_t begin, int64_t len) {
    if (!g || g->status != SISA_OK || !a) return sisa_view(g, a, NULL, NULL, 0);
    if (begin < 0 || len <= 0 || begin + len > a->shape[3]) {
        graph_fail(g, SISA_INVALID_ARG, "row slice [%lld, %lld) of '%s' outside its %lld channels",
                   (long long)begin, (long long)(begin + len), a->name, (long long)a->shape[3]);
        return NULL;
    }
    int64_t shape[4] = {a->shape[0], a->shape[1], a->shape[2], len};
    return sisa_view(g, a, shape, a->stride, (size_t)(begin * a->stride[3]));
}

/* ---- op builders ---- */

#define SRC(...) ((sisa_tensor *const[SISA_MAX_SRC]){__VA_ARGS__})

static sisa_dtype act(const sisa_graph *g) { return g ? g->act_dtype : SISA_F32; }

sisa_tensor *sisa_cpy(sisa_graph *g, sisa_tensor *a, sisa_dtype dt) {
    if (!a) return sisa_graph_node(g, SISA_OP_CPY, dt, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    return sisa_graph_node(g, SISA_OP_CPY, dt, a->shape, SRC(a), NULL, NULL);
}

sisa_tensor *sisa_embed(sisa_graph *g, sisa_tensor *table, sisa_tensor *ids) {
    if (!table || !ids) return sisa_graph_node(g, SISA_OP_EMBED, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const int64_t shape[4] = {1, ids->shape[2], ids->shape[3], table->shape[3]};
    return sisa_graph_node(g, SISA_OP_EMBED, act(g), shape, SRC(table, ids), NULL, NULL);
}

sisa_tensor *sisa_rms_norm(sisa_graph *g, sisa_tensor *x, sisa_tensor *w, float eps) {
    if (!x || !w) return sisa_graph_node(g, SISA_OP_RMS_NORM, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const float fp[SISA_MAX_PARAMS] = {eps};
    return sisa_graph_node(g, SISA_OP_RMS_NORM, act(g), x->shape, SRC(x, w), fp, NULL);
}

sisa_tensor *sisa_rope(sisa_graph *g, sisa_tensor *x, float base, int32_t p0) {
    if (!x) return sisa_graph_node(g, SISA_OP_ROPE, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const float fp[SISA_MAX_PARAMS] = {base};
    const int32_t ip[SISA_MAX_PARAMS] = {p0};
    return sisa_graph_node(g, SISA_OP_ROPE, act(g), x->shape, SRC(x), fp, ip);
}

sisa_tensor *sisa_add(sisa_graph *g, sisa_tensor *a, sisa_tensor *b) {
    if (!a || !b) return sisa_graph_node(g, SISA_OP_ADD, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    return sisa_graph_node(g, SISA_OP_ADD, act(g), a->shape, SRC(a, b), NULL, NULL);
}

sisa_tensor *sisa_scale(sisa_graph *g, sisa_tensor *a, float s) {
    if (!a) return sisa_graph_node(g, SISA_OP_SCALE, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const float fp[SISA_MAX_PARAMS] = {s};
    return sisa_graph_node(g, SISA_OP_SCALE, act(g), a->shape, SRC(a), fp, NULL);
}

sisa_tensor *sisa_matmul(sisa_graph *g, sisa_tensor *a, sisa_tensor *b) {
    if (!a || !b) return sisa_graph_node(g, SISA_OP_MATMUL, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const int64_t shape[4] = {a->shape[0], a->shape[1], a->shape[2], b->shape[2]};
    return sisa_graph_node(g, SISA_OP_MATMUL, act(g), shape, SRC(a, b), NULL, NULL);
}

sisa_tensor *sisa_softmax(sisa_graph *g, sisa_tensor *a) {
    if (!a) return sisa_graph_node(g, SISA_OP_SOFTMAX, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    return sisa_graph_node(g, SISA_OP_SOFTMAX, act(g), a->shape, SRC(a), NULL, NULL);
}

sisa_tensor *sisa_argmax(sisa_graph *g, sisa_tensor *a) {
    if (!a) return sisa_graph_node(g, SISA_OP_ARGMAX, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const int64_t shape[4] = {a->shape[0], a->shape[1], a->shape[2], 1};
    return sisa_graph_node(g, SISA_OP_ARGMAX, SISA_I32, shape, SRC(a), NULL, NULL);
}

sisa_tensor *sisa_swiglu(sisa_graph *g, sisa_tensor *gate, sisa_tensor *up) {
    if (!gate || !up) return sisa_graph_node(g, SISA_OP_SWIGLU, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    return sisa_graph_node(g, SISA_OP_SWIGLU, act(g), gate->shape, SRC(gate, up), NULL, NULL);
}

sisa_tensor *sisa_ssm_decay(sisa_graph *g, sisa_tensor *a, sisa_tensor *bias, sisa_tensor *g0) {
    if (!a || !bias) return sisa_graph_node(g, SISA_OP_SSM_DECAY, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const int64_t shape[4] = {1, a->shape[1], a->shape[3], a->shape[2]};
    return sisa_graph_node(g, SISA_OP_SSM_DECAY, SISA_F32, shape, SRC(a, bias, g0), NULL, NULL);
}

sisa_tensor *sisa_ssm_channels(sisa_graph *g, sisa_tensor *Bs, sisa_tensor *Cs, sisa_tensor *theta,
                               sisa_tensor *gdecay, sisa_tensor *lambda_raw, sisa_tensor *phi0,
                               int mode, int32_t d_h, float clamp) {
    if (!Bs || !Cs || !theta || !gdecay || !lambda_raw)
        return sisa_graph_node(g, SISA_OP_SSM_CHANNELS, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    int64_t H = lambda_raw->shape[3];
    int64_t ds = Bs->shape[3] / (H > 0 ? H : 1);
    const int64_t shape[4] = {Bs->shape[1], H, Bs->shape[2], 2 * ds};
    const float fp[SISA_MAX_PARAMS] = {clamp};
    const int32_t ip[SISA_MAX_PARAMS] = {mode, d_h};
    return sisa_graph_node(g, SISA_OP_SSM_CHANNELS, act(g), shape,
                           SRC(Bs, Cs, theta, gdecay, lambda_raw, phi0), fp, ip);
}

sisa_tensor *sisa_augment(sisa_graph *g, sisa_tensor *a, sisa_tensor *b, int64_t width) {
    if (!a || !b) return sisa_graph_node(g, SISA_OP_AUGMENT, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const int64_t shape[4] = {a->shape[0], a->shape[1], a->shape[2], width};
    const int32_t ip[SISA_MAX_PARAMS] = {(int32_t)width};
    return sisa_graph_node(g, SISA_OP_AUGMENT, act(g), shape, SRC(a, b), NULL, ip);
}

sisa_tensor *sisa_sdpa(sisa_graph *g, sisa_tensor *q, sisa_tensor *k, sisa_tensor *v,
                       const sisa_sdpa_params *p) {
    if (!q || !k || !v || !p) return sisa_graph_node(g, SISA_OP_SDPA, 0, (int64_t[4]){1, 1, 1, 1}, SRC(NULL), NULL, NULL);
    const int64_t shape[4] = {q->shape[0], q->shape[2], q->shape[1], v->shape[3]};
    const float fp[SISA_MAX_PARAMS] = {p->scale};
    const int32_t ip[SISA_MAX_PARAMS] = {p->causal, p->p0, p->d_content};
    return sisa_graph_node(g, SISA_OP_SDPA, act(g), shape, SRC(q, k, v, p->gq, p->gk), fp, ip);
}
