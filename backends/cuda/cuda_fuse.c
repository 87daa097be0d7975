/*
 * cuda_fuse.c — SSM_CHANNELS + its two AUGMENT consumers as one kernel (ssm_augment.cu), found in
 * the graph at compute time. The graph keeps one node per op (each with its one definition in
 * ops.h, each supported and selectable on its own); this only replaces three launches by one
 * when the pattern is exactly:
 *
 *   sCB = SSM_CHANNELS(...)                       node i
 *   Qhat = AUGMENT(a_c, row slice [0, d_s) of sCB)      (views only between i and the last AUGMENT)
 *   Khat = AUGMENT(a_b, row slice [d_s, 2 d_s) of sCB)
 *
 * with nothing else reading sCB, all three on this stream's device. The fused kernel runs at node
 * i, writes sCB (always: the op's output, which a harness may read) and Qhat/Khat from the values
 * it holds, and those AUGMENT nodes are then skipped. Why writing Qhat/Khat early is safe: the
 * allocator (alloc.c) places them where no tensor alive at node i is, except the sources that die
 * at i or at the first AUGMENT (Bs, Cs, theta, g, q, k), and only views (no storage, no work) lie
 * between. An output that overlaps one of those sources is not written early: its AUGMENT runs
 * as usual, after, from sCB (in the 152M prefill both fuse; in a small graph Khat may reuse q's
 * and Bs's memory). Under CUDA-graph capture too: the recording (cuda_graph.c) maps each node to
 * the kernels it launched (none for a skipped AUGMENT), and a decode step never updates these
 * nodes. SISA_CUDA_FUSE=0 turns it off; SISA_CUDA_TRACE=1 names what
 * fused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "error.h"

static const char *addr(const sisa_tensor *t) {
    return t && t->buffer ? (const char *)t->buffer->ctx + t->offset : NULL;
}

bool sc_overlap(const sisa_tensor *x, const sisa_tensor *y) {
    const char *a = addr(x), *b = addr(y);
    if (!a || !b) return false;
    const size_t na = sisa_tensor_span_bytes(x), nb = sisa_tensor_span_bytes(y);
    return a < b + nb && b < a + na;
}

/* Is v the row slice [c0, c0 + ds) of s (B,H,T,2ds), the layout sisa_slice_row makes? */
static bool row_slice(const sisa_tensor *v, const sisa_tensor *s, int64_t c0, int64_t ds) {
    if (v->op != SISA_OP_VIEW || v->view_src != s) return false;
    if (v->view_offset != (size_t)c0 * sisa_dtype_size(s->dtype) || v->dtype != s->dtype) return false;
    for (int d = 0; d < 4; d++)
        if (v->stride[d] != s->stride[d] || v->shape[d] != (d == 3 ? ds : s->shape[d])) return false;
    return true;
}

static bool fusing_off(void) {
    const char *e = getenv("SISA_CUDA_FUSE");
    return e && e[0] == '0';
}

/* May AUGMENT node x be written at node i (before it runs)? Its memory must hold nothing that the
 * fused kernel reads: neither SSM_CHANNELS's sources nor either AUGMENT's first source (q or k), nor
 * the other outputs. The allocator reuses those sources' memory once they are dead (e.g. Khat over
 * q and Bs in a small graph), and then that AUGMENT runs unfused, after, from sCB. */
static bool early_ok(const sisa_tensor *x, const sisa_tensor *n, const sisa_tensor *ac, const sisa_tensor *ab) {
    for (int k = 0; k < SISA_MAX_SRC; k++)
        if (sc_overlap(x, n->src[k])) return false;
    return !sc_overlap(x, ac->src[0]) && !sc_overlap(x, ab->src[0]) && !sc_overlap(x, n) &&
           !sc_overlap(ac, ab);
}

/* Find the pattern at SSM_CHANNELS node i; fill f (out_c/out_b p NULL where that AUGMENT must run
 * unfused) and the indices of the AUGMENT nodes the kernel writes (-1: not written). */
static bool find(sisa_graph *g, int i, sc_ssm_augment *f, int *jc, int *jb) {
    sisa_tensor *n = g->nodes[i];
    const int64_t H = n->src[4] ? n->src[4]->shape[3] : 0;
    if (H < 1 || !n->src[0] || n->src[0]->shape[3] % H) return false;
    const int64_t ds = n->src[0]->shape[3] / H;
    *jc = *jb = -1;
    for (int j = 0; j < g->n_nodes; j++) {
        sisa_tensor *m = g->nodes[j];
        if (j == i || m->op == SISA_OP_VIEW) continue; /* views: no work */
        for (int k = 0; k < SISA_MAX_SRC; k++) {
            if (!m->src[k] || sisa_tensor_base(m->src[k]) != n) continue;
            if (m->op != SISA_OP_AUGMENT || k != 1 || j < i || m->device != n->device) return false;
            if (row_slice(m->src[1], n, 0, ds) && *jc < 0) *jc = j;
            else if (row_slice(m->src[1], n, ds, ds) && *jb < 0) *jb = j;
            else return false;
        }
    }
    if (*jc < 0 || *jb < 0) return false;
    const int last = *jc > *jb ? *jc : *jb;
    for (int j = i + 1; j < last; j++)
        if (j != *jc && j != *jb && g->nodes[j]->op != SISA_OP_VIEW && g->nodes[j]->op != SISA_OP_NONE)
            return false;
    sisa_tensor *ac = g->nodes[*jc], *ab = g->nodes[*jb];
    if (ac->dtype != n->dtype || ab->dtype != n->dtype) return false; /* one rounding, as unfused */
    sc_node nc, nb;
    memset(f, 0, sizeof *f);
    if (!sc_node_from(n, &f->ssm, NULL) || !sc_node_from(ac, &nc, NULL) || !sc_node_from(ab, &nb, NULL))
        return false;
    f->a_c = nc.src[0];
    f->a_b = nb.src[0];
    if (early_ok(ac, n, ac, ab)) f->out_c = nc.dst;
    else *jc = -1;
    if (early_ok(ab, n, ac, ab)) f->out_b = nb.dst;
    else *jb = -1;
    return (*jc >= 0 || *jb >= 0) && sc_ssm_augment_takes(f) != 0;
}

bool sc_fuse_node(sc_stream *s, sisa_graph *g, int i, int first, sisa_status *st) {
    *st = SISA_OK;
    sisa_tensor *n = g->nodes[i];
    if (i == first && first == 0) s->fuse_skip[0] = s->fuse_skip[1] = NULL; /* a fresh compute */
    if (n->op == SISA_OP_AUGMENT) {
        for (int k = 0; k < 2; k++)
            if (s->fuse_skip[k] == n) {
                s->fuse_skip[k] = NULL;
                return true; /* already written by the fused kernel */
            }
        return false;
    }
    if (n->op != SISA_OP_SSM_CHANNELS || fusing_off()) return false;
    sc_ssm_augment f;
    int jc, jb;
    if (!find(g, i, &f, &jc, &jb)) return false;
    /* (a task of the persistent kernel while one is recorded: cuda_mega.c) */
    cudaError_t e = s->mega ? sc_mega_add_ssm_augment(s, &f) : sc_launch_ssm_augment(&f, s->stream);
    if (e != cudaSuccess) {
        *st = sc_cuda_err(e, "kernel launch (SSM_CHANNELS fused with AUGMENT)");
        return true;
    }
    s->fuse_skip[0] = jc >= 0 ? g->nodes[jc] : NULL;
    s->fuse_skip[1] = jb >= 0 ? g->nodes[jb] : NULL;
    if (getenv("SISA_CUDA_TRACE"))
        fprintf(stderr, "cuda: SSM_CHANNELS '%s' fused with AUGMENT %s%s%s\n", n->name,
                jc >= 0 ? g->nodes[jc]->name : "", jc >= 0 && jb >= 0 ? " and " : "",
                jb >= 0 ? g->nodes[jb]->name : "");
    return true;
}
