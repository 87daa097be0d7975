/*
 * graph.h — building an op graph.
 *
 * A graph owns its tensors. Leaves (weights, inputs) and nodes are created through the builder
 * functions below, which check shapes and dtypes against the op definitions of ops.h. Nodes are
 * recorded in creation order, which is a valid execution order. A builder that meets a bad
 * argument records the first error in the graph and returns NULL; later builders given NULL
 * return NULL too, so a model can build its whole graph and check sisa_graph_status() once.
 */
#ifndef SISA_GRAPH_H
#define SISA_GRAPH_H

#include "ops.h"

typedef struct sisa_graph {
    sisa_tensor **nodes; /* computed tensors (op != NONE), in execution order, views included */
    int n_nodes, cap_nodes;
    sisa_tensor **leafs; /* op == NONE */
    int n_leafs, cap_leafs;
    sisa_status status;  /* first build error (message kept in err) */
    char err[512];
    sisa_dtype act_dtype; /* dtype of activations produced by builders (default F32) */
} sisa_graph;

sisa_graph *sisa_graph_new(void);
void sisa_graph_free(sisa_graph *g);
sisa_status sisa_graph_status(const sisa_graph *g); /* sets last error when not OK */

/* Leaves. shape is outermost-first, 4 entries (use 1s in front). */
sisa_tensor *sisa_graph_leaf(sisa_graph *g, const char *name, sisa_dtype dt, const int64_t shape[4],
                             int flags);
sisa_tensor *sisa_graph_input(sisa_graph *g, const char *name, sisa_dtype dt,
                              int64_t d0, int64_t d1, int64_t d2, int64_t d3);

/* Name a node (printf-style); returns t. */
sisa_tensor *sisa_tensor_set_name(sisa_tensor *t, const char *fmt, ...);
/* Mark a node as an output (kept alive to the end of the graph). */
sisa_tensor *sisa_tensor_set_output(sisa_tensor *t);

/* Views. */
sisa_tensor *sisa_view(sisa_graph *g, sisa_tensor *a, const int64_t shape[4],
                       const int64_t stride[4], size_t byte_offset);
sisa_tensor *sisa_reshape(sisa_graph *g, sisa_tensor *a, int64_t d0, int64_t d1, int64_t d2,
                          int64_t d3); /* a must be contiguous */
sisa_tensor *sisa_permute(sisa_graph *g, sisa_tensor *a, int p0, int p1, int p2, int p3);
/* Slice of the innermost dimension: channels [begin, begin + len). */
sisa_tensor *sisa_slice_row(sisa_graph *g, sisa_tensor *a, int64_t begin, int64_t len);

/* Ops (definitions in ops.h). dt = dtype of the result where it is not implied. */
sisa_tensor *sisa_cpy(sisa_graph *g, sisa_tensor *a, sisa_dtype dt);
sisa_tensor *sisa_embed(sisa_graph *g, sisa_tensor *table, sisa_tensor *ids);
sisa_tensor *sisa_rms_norm(sisa_graph *g, sisa_tensor *x, sisa_tensor *w, float eps);
sisa_tensor *sisa_rope(sisa_graph *g, sisa_tensor *x, float base, int32_t p0);
sisa_tensor *sisa_add(sisa_graph *g, sisa_tensor *a, sisa_tensor *b);
sisa_tensor *sisa_scale(sisa_graph *g, sisa_tensor *a, float s);
sisa_tensor *sisa_matmul(sisa_graph *g, sisa_tensor *a, sisa_tensor *b);
sisa_tensor *sisa_softmax(sisa_graph *g, sisa_tensor *a);
sisa_tensor *sisa_argmax(sisa_graph *g, sisa_tensor *a);
sisa_tensor *sisa_swiglu(sisa_graph *g, sisa_tensor *gate, sisa_tensor *up);
sisa_tensor *sisa_ssm_decay(sisa_graph *g, sisa_tensor *a, sisa_tensor *bias, sisa_tensor *g0);
sisa_tensor *sisa_ssm_channels(sisa_graph *g, sisa_tensor *Bs, sisa_tensor *Cs, sisa_tensor *theta,
                               sisa_tensor *gdecay, sisa_tensor *lambda_raw, sisa_tensor *phi0,
                               int mode, int32_t d_h, float clamp);
sisa_tensor *sisa_augment(sisa_graph *g, sisa_tensor *a, sisa_tensor *b, int64_t width);
typedef struct sisa_sdpa_params {
    float scale;
    int causal;
    int32_t p0;          /* absolute position of query 0 */
    sisa_tensor *gq, *gk; /* form B decay, both or neither */
    int32_t d_content;    /* form B: channels [0, d_content) are undecayed */
} sisa_sdpa_params;
sisa_tensor *sisa_sdpa(sisa_graph *g, sisa_tensor *q, sisa_tensor *k, sisa_tensor *v,
                       const sisa_sdpa_params *p);

/* Generic node creation (used by builders and by tests that need odd cases): validates with
 * sisa_node_check. dst_dtype and shape describe the (contiguous) result. */
sisa_tensor *sisa_graph_node(sisa_graph *g, int op, sisa_dtype dt, const int64_t shape[4],
                             sisa_tensor *const src[SISA_MAX_SRC], const float *fparams,
                             const int32_t *iparams);
/* Check a node against its op's definition (shapes, dtypes, params). OK or INVALID_ARG with a
 * message naming the node. Backends' kernels may assume a node that passed this check. */
sisa_status sisa_node_check(const sisa_tensor *node);

/* The storage root of a tensor (itself, or the tensor a chain of views aliases). */
sisa_tensor *sisa_tensor_base(sisa_tensor *t);

#endif
