/*
 * model.h — the SISA / Transformer model inside the library: weights on a device, the op graph
 * of SISA.md §1 for a given (batch, T), and running it.
 *
 * The public API (sisa.h: sisa_model_load / _forward / _init_dir) is built on the functions
 * below; the conformance suite and the golden-file test use them directly to build the same
 * graph on several backends and compare it node by node.
 *
 * Node names (what a comparison reports as "the first bad node"); i is the layer:
 *   tokens                         I32 (1,1,B,T) input
 *   embed                          (1,B,T,d)
 *   layers.i.xn                    (1,B,T,d)   RMSNorm_attn(x)                   [golden: xn]
 *   layers.i.q_proj/k_proj/v_proj  (1,B,T,d)   xn·Wᵀ
 *   layers.i.q_rope, k_rope        (B,T,H,d_h) after RoPE
 *   layers.i.q, layers.i.k, .v     (B,H,T,d_h) views of the above                [golden: q, k]
 *   layers.i.Bs, Cs                (1,B,T,H·d_s)                                 (sisa)
 *   layers.i.alpha_logits          (1,B,T,H)   xn·w_alphaᵀ (bias added in SSM_DECAY)
 *   layers.i.theta                 (1,B,T,H·d_s/2)
 *   layers.i.g                     F32 (1,B,H,T) prefix sum of log alpha         [golden: g]
 *   layers.i.sCB                   (B,H,T,2·d_s) SSM_CHANNELS: [s·Cbar | s·Bbar]
 *   layers.i.sCbar, sBbar          (B,H,T,d_s) views of sCB (golden Cbar/Bbar have no s)
 *   layers.i.Qhat_pad, Khat_pad    (B,H,T,W)   AUGMENT, W = d_h + d_s rounded up to 16 (or to
 *                                              the device's augment_align, backend.h)
 *   layers.i.Qhat, Khat            (B,H,T,d_h+d_s) views without the zero padding [golden]
 *   layers.i.attn                  (B,T,H,d_h) SDPA output
 *   layers.i.Y                     (B,H,T,d_h) view of attn                       [golden: Y]
 *   layers.i.attn_concat           (1,B,T,d)   view of attn (concat_heads)
 *   layers.i.o                     (1,B,T,d)   attn_concat·W_Oᵀ
 *   layers.i.h                     (1,B,T,d)   x + o
 *   layers.i.xn2                   (1,B,T,d)   RMSNorm_ffn(h)
 *   layers.i.gate, up, swiglu      (1,B,T,d_ff)
 *   layers.i.down                  (1,B,T,d)
 *   layers.i.out                   (1,B,T,d)   h + down                         [golden: out]
 *   final_norm                     (1,B,T,d)
 *   logits                         (1,B,T,V)                                    [golden: logits]
 * For the Transformer (d_s = 0) the SSM nodes are absent and SDPA reads q, k directly.
 * A name marked [golden] has the shape of the golden tensor of docs/FORMAT.md up to leading 1s,
 * element for element in the same order (sisa_tensor_read_f64 reads views in that order).
 */
#ifndef SISA_MODEL_H
#define SISA_MODEL_H

#include "config.h"
#include "safetensors.h"
#include "sched.h"

/* ---- the tensors of a model (SISA.md §5, docs/FORMAT.md) ---- */

typedef enum sisa_weight_init {
    SISA_INIT_NORMAL_002 = 0, /* N(0, 0.02): every projection and the embedding */
    SISA_INIT_NORMAL_001,     /* N(0, 0.01): theta_proj.weight */
    SISA_INIT_ONES,           /* norms */
    SISA_INIT_ALPHA_BIAS,     /* -5: alpha_proj.bias (half-life ~100 tokens) */
    SISA_INIT_LAMBDA_RAW,     /* -1: lambda_raw (lambda = softplus(-1) ~ 0.313) */
} sisa_weight_init;

typedef struct sisa_weight_spec {
    char name[SISA_NAME_LEN];
    int n_dims;         /* as stored in the file: 2 for matrices [out, in], 1 for vectors */
    int64_t shape[2];
    bool f32_only;      /* lambda_raw */
    sisa_weight_init init;
} sisa_weight_spec;

/* Every tensor a model of this configuration has, in a fixed order (embed, layers, final_norm).
 * *out is malloc'ed (free()). */
sisa_status sisa_model_weight_specs(const sisa_config *cfg, sisa_weight_spec **out, int *n);

/* A weight on the model's device. shape is 4-D as the graph uses it: (1,1,out,in) or (1,1,1,n). */
typedef struct sisa_weight {
    char name[SISA_NAME_LEN];
    sisa_dtype dtype;      /* storage dtype on the device */
    sisa_dtype file_dtype; /* dtype in model.safetensors (differs when converted at load) */
    int64_t shape[4];
    int64_t file_rows, file_cols; /* shape in the file; shape[2..3] may be larger (zero padding) */
    sisa_buffer *buffer;
    size_t offset;
} sisa_weight;

struct sisa_model {
    sisa_config cfg;
    char *dir;
    sisa_device *dev;
    sisa_sched *sched;
    sisa_weight *weights;
    int n_weights;
    sisa_buffer **wbufs; /* device buffers holding the weights (owned) */
    int n_wbufs;
    sisa_st_file *st;     /* kept mapped while weights alias the mapping (CPU devices) */
    sisa_buffer *map_buf; /* the mapping as a read-only buffer, or NULL */
    int n_mapped;         /* weights read in place from the mapping */
    int n_converted;      /* weights converted to f32 because the device lacks their dtype */
    int max_batch, max_tokens;
    sisa_dtype act_dtype; /* storage of matmul inputs/outputs (load option compute_dtype) */
    struct sisa_model_graph *cache; /* graph of the last forward (rebuilt when (B, T) changes) */
};

const sisa_weight *sisa_model_weight(const sisa_model *m, const char *name);
/* A leaf for weight `name` in g (created once per graph, PARAM, storage set). NULL + graph error
 * when the model has no such weight. */
sisa_tensor *sisa_model_weight_leaf(const sisa_model *m, sisa_graph *g, const char *name);
/* The same for the weight "layers.<layer>.<suffix>" (both graph builders, full-sequence and decode). */
sisa_tensor *sisa_model_layer_weight(const sisa_model *m, sisa_graph *g, int layer, const char *suffix);

/* sisa_model_load on a device opened (and possibly adjusted) by the caller, which the model takes
 * over: it is freed with the model, or at once when the load fails. opts->backend and ->device
 * are ignored. Tests use it to load one directory on a device whose limits they set. */
sisa_status sisa_model_load_device(const char *dir, sisa_device *dev, const sisa_load_options *opts,
                                   sisa_model **out);

/* ---- the graph ---- */

typedef struct sisa_model_graph {
    sisa_graph *graph;
    int batch, T;
    bool keep_all;
    sisa_tensor *tokens; /* input, I32 (1,1,B,T) */
    sisa_tensor *logits; /* output, (1,B,T,V) */
    sisa_tensor **g;     /* per layer: SSM_DECAY output (outputs); NULL entries for a Transformer */
    int n_layers;
} sisa_model_graph;

/* Build the form-(A) graph of SISA.md §1 for (batch, T). keep_all marks every node as an output
 * so that nothing is overwritten and every intermediate can be read after the run (comparisons);
 * otherwise only logits and the g tensors survive. */
sisa_status sisa_model_build_graph(const sisa_model *m, int batch, int T, bool keep_all,
                                   sisa_model_graph **out);
void sisa_model_graph_free(sisa_model_graph *mg);
/* Node or leaf of that name (the last one created with it), or NULL. */
sisa_tensor *sisa_model_graph_find(const sisa_model_graph *mg, const char *name);
/* Every id in [0, vocab)? batch >= 1, T in [1, max_tokens]? Messages name the offending id. */
sisa_status sisa_model_check_input(const sisa_model *m, const int32_t *tokens, int batch, int T);
/* Place, assign storage, write the tokens, compute and wait. */
sisa_status sisa_model_graph_run(sisa_model *m, sisa_model_graph *mg, const int32_t *tokens);
/* After a run: the clamp report from the g tensors. */
sisa_status sisa_model_graph_clamp_report(const sisa_model *m, const sisa_model_graph *mg,
                                          sisa_clamp_report *r);

/* The device and scheduler the model was loaded on. */
static inline sisa_device *sisa_model_device(const sisa_model *m) { return m->dev; }
static inline sisa_sched *sisa_model_sched(const sisa_model *m) { return m->sched; }

#endif
