/*
 * cuda_fuse_gemv.c — a GEMV-selected MATMUL (gemv.cu) with the node before and/or after it as
 * ONE kernel, found in the graph at compute time. A decode step is ~230 small launches whose cost
 * is mostly the launches; these patterns are 5 of them per layer:
 *
 *   node i   RMS_NORM(x, w) or SWIGLU(gate, up)        -> the GEMV's prologue makes its rows
 *   node i+1 MATMUL(node i, W)   (GEMV-selected)
 *   node i+2 ADD(res, node i+1) or ADD(node i+1, res)  -> the GEMV's epilogue writes res + product
 *
 * (or just MATMUL + ADD). Each fused-away node must be read by nothing else and not be a graph
 * output (it is never written), all must sit on this device, and the fused kernel's output must
 * not overlap anything it reads (the allocator reuses memory of tensors that die in the chain;
 * then the nodes run one by one as usual). The values equal the unfused nodes': the prologue
 * rounds to the dtype its node stores, the epilogue rounds the product to the MATMUL's dtype before
 * the add. The skipped nodes are remembered in the stream and passed over when reached.
 * SISA_CUDA_FUSE_GEMV=0 turns it off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

/* Is node x read by no node of g other than `reader`, and not a graph output? */
static bool only_reader(const sisa_graph *g, const sisa_tensor *x, const sisa_tensor *reader) {
    if (x->flags & SISA_TENSOR_OUTPUT) return false;
    for (int j = 0; j < g->n_nodes; j++) {
        const sisa_tensor *m = g->nodes[j];
        if (m == reader || m->op == SISA_OP_VIEW) {
            if (m->op == SISA_OP_VIEW && sisa_tensor_base((sisa_tensor *)m) == x && (m->flags & SISA_TENSOR_OUTPUT))
                return false;
            continue;
        }
        for (int k = 0; k < SISA_MAX_SRC; k++)
            if (m->src[k] && sisa_tensor_base(m->src[k]) == x) return false;
    }
    return true;
}

static bool same_shape(const sisa_tensor *a, const sisa_tensor *b) {
    for (int d = 0; d < 4; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static bool skipped(sc_stream *s, const sisa_tensor *n) {
    for (int k = 0; k < 2; k++)
        if (s->gemv_skip[k] == n) {
            s->gemv_skip[k] = NULL;
            return true;
        }
    return false;
}

bool sc_gemv_b_const(const sc_stream *s, const sisa_graph *g, const sisa_tensor *b) {
    if (!s->capturing || !b) return false;
    for (int j = 0; j < g->n_nodes; j++) {
        const sisa_tensor *m = g->nodes[j];
        if (m->op != SISA_OP_VIEW && m->op != SISA_OP_NONE && sc_overlap(m, b)) return false;
    }
    return true;
}

bool sc_gemv_fuse_node(sc_stream *s, sisa_graph *g, int i, sisa_status *st) {
    *st = SISA_OK;
    if (i == 0) s->gemv_skip[0] = s->gemv_skip[1] = NULL; /* a new run of the graph */
    sisa_tensor *n = g->nodes[i];
    if (skipped(s, n)) return true;
    const char *e = getenv("SISA_CUDA_FUSE_GEMV");
    if (e && e[0] == '0') return false;
    int mi = -1, pro = SC_GEMV_PRO_NONE;
    if ((n->op == SISA_OP_RMS_NORM || n->op == SISA_OP_SWIGLU) && i + 1 < g->n_nodes) {
        mi = i + 1;
        pro = n->op == SISA_OP_RMS_NORM ? SC_GEMV_PRO_RMS_NORM : SC_GEMV_PRO_SWIGLU;
    } else if (n->op == SISA_OP_MATMUL) {
        mi = i;
    } else {
        return false;
    }
    sisa_tensor *mm = g->nodes[mi];
    if (mm->op != SISA_OP_MATMUL || mm->device != n->device) return false;
    if (pro && mm->src[0] != n) return false;
    if (sc_select(s->dev, mm, NULL) != SC_K_GEMV) return false;
    if (pro && !only_reader(g, n, mm)) return false;
    /* the ADD after it */
    sisa_tensor *add = mi + 1 < g->n_nodes ? g->nodes[mi + 1] : NULL, *res = NULL;
    if (add && add->op == SISA_OP_ADD && add->device == n->device && same_shape(add, mm) &&
        only_reader(g, mm, add)) {
        if (add->src[1] == mm && add->src[0] != mm) res = add->src[0];
        else if (add->src[0] == mm && add->src[1] != mm) res = add->src[1];
        if (res && !same_shape(res, mm)) res = NULL;
    }
    if (!res) add = NULL;
    if (!pro && !add) return false; /* nothing to fuse: the plain GEMV */
    /* the fused kernel's output must not overlap what it reads */
    const sisa_tensor *out = add ? add : mm;
    const sisa_tensor *in[4] = {pro ? n->src[0] : mm->src[0], pro ? n->src[1] : NULL, mm->src[1], res};
    for (int k = 0; k < 4; k++)
        if (in[k] && sc_overlap(out, in[k])) return false;
    sc_gemv_fused f;
    memset(&f, 0, sizeof f);
    char reason[SISA_REASON_LEN] = "";
    if (!sc_node_from(mm, &f.mm, reason)) return false;
    f.pro = pro;
    if (pro) {
        sc_node pn;
        if (!sc_node_from(n, &pn, reason)) return false;
        f.px = pn.src[0];
        f.pw = pn.src[1];
        f.pro_dt = (int)n->dtype;
        f.eps = n->fparams[0];
    }
    if (add) {
        sc_node an;
        if (!sc_node_from(add, &an, reason)) return false;
        f.epi = SC_GEMV_EPI_ADD;
        f.out = an.dst;
        f.res = an.src[add->src[0] == res ? 0 : 1];
    }
    if (getenv("SISA_CUDA_TRACE"))
        fprintf(stderr, "cuda: fused %s%s'%s'%s%s\n", pro ? sisa_op_name(n->op) : "", pro ? " + " : "",
                mm->name, add ? " + ADD " : "", add ? add->name : "");
    s->gemv_skip[0] = pro ? mm : NULL;
    s->gemv_skip[1] = add;
    const int b_const = sc_gemv_b_const(s, g, mm->src[1]);
    /* (a task of the persistent kernel while one is recorded: cuda_mega.c) */
    cudaError_t ce = s->mega ? sc_mega_add_gemv(s, &f, b_const)
                             : sc_launch_gemv_fused(&f, s->dev->prop.multiProcessorCount, b_const, s->stream);
    if (ce != cudaSuccess) *st = sc_cuda_err(ce, "fused GEMV launch");
    return true;
}
