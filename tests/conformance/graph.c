/*
 * graph.c — level 2, model graph node by node: a whole tiny model graph runs on the device; then
 * every node is recomputed by the oracle FROM THE DEVICE'S OWN VALUES OF ITS SOURCES and compared
 * with the device's result under that op's threshold. Errors therefore do not accumulate from
 * node to node, and the first node over its threshold is the first bad kernel: it is named.
 *
 * Two graphs (case key model=):
 *   runtime  the engine's own graph, sisa_model_build_graph of runtime/model.h, for a random
 *            model written by sisa_model_init_dir and loaded on cpu-ref as the weight source
 *            (needs the library to have model.h: CONFORM_HAVE_MODEL; otherwise the case is
 *            skipped with that reason). d_s = 0 gives the Transformer control.
 *   block    a SISA (or, with ds=0, Transformer) pre-norm model written here with the graph
 *            builders, independent of model loading.
 * Keys: model B T d H ds ff V L (head dim d/H).
 * The graph is placed by the harness (run.c): guard bytes around every node, weights copied to
 * the device, token ids drawn from the seed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conform_internal.h"

#ifdef CONFORM_HAVE_MODEL
#include "config.h"
#include "model.h"
#endif

typedef struct gcfg {
    int64_t B, T, d, H, dh, ds, ff, V, L;
} gcfg;

static sisa_status read_cfg(const conform_case *c, gcfg *k) {
    static const char *const keys[] = {"model", "B", "T", "d", "H", "ds", "ff", "V", "L", NULL};
    SISA_TRY(conform_case_check_keys(c, keys));
    k->B = conform_case_int(c, "B", 2);
    k->T = conform_case_int(c, "T", 17);
    k->d = conform_case_int(c, "d", 128);
    k->H = conform_case_int(c, "H", 2);
    k->ds = conform_case_int(c, "ds", 16);
    k->ff = conform_case_int(c, "ff", 256);
    k->V = conform_case_int(c, "V", 97);
    k->L = conform_case_int(c, "L", 1);
    if (k->B < 1 || k->T < 1 || k->d < 2 || k->H < 1 || k->d % k->H || (k->d / k->H) % 2 || k->ds < 0 ||
        k->ds % 2 || k->ff < 1 || k->V < 1 || k->L < 1 || k->L > 64 || k->B * k->T > 65536)
        return sisa_err(SISA_INVALID_ARG, "case '%s': bad model dimensions", c->str);
    k->dh = k->d / k->H;
    return SISA_OK;
}

/* ---- model=block: the pre-norm model of SISA.md 1 written with the builders ---- */

static sisa_tensor *weight(conform_built *b, const char *name, int64_t rows, int64_t cols, double mean,
                           double std) {
    return conform_input(b, name, b->g->act_dtype, (int64_t[4]){1, 1, rows, cols},
                         (conform_gen){GEN_NORMAL, mean, std});
}

static sisa_status build_block_model(const gcfg *k, conform_built *b) {
    sisa_graph *g = b->g;
    const int64_t B = k->B, T = k->T, d = k->d, H = k->H, dh = k->dh, ds = k->ds;
    sisa_tensor *ids = conform_input(b, "tokens", SISA_I32, (int64_t[4]){1, 1, B, T},
                                     (conform_gen){GEN_IDS, (double)k->V, 0});
    sisa_tensor *E = weight(b, "embed", k->V, d, 0, 0.02);
    sisa_tensor *x = sisa_tensor_set_name(sisa_embed(g, E, ids), "embed");
    for (int64_t l = 0; l < k->L; l++) {
        char n[SISA_NAME_LEN];
#define NAME(t, what) sisa_tensor_set_name((t), "layers.%lld.%s", (long long)l, what)
#define W(what, r, c, mean, std) (snprintf(n, sizeof n, "layers.%lld.%s", (long long)l, what), weight(b, n, r, c, mean, std))
        sisa_tensor *xn = NAME(sisa_rms_norm(g, x, W("attn_norm", 1, d, 1.0, 0.05), 1e-6f), "xn");
        sisa_tensor *q = NAME(sisa_matmul(g, xn, W("W_Q", d, d, 0, 0.02)), "q_proj");
        sisa_tensor *kk = NAME(sisa_matmul(g, xn, W("W_K", d, d, 0, 0.02)), "k_proj");
        sisa_tensor *v = NAME(sisa_matmul(g, xn, W("W_V", d, d, 0, 0.02)), "v_proj");
        sisa_tensor *qr = NAME(sisa_rope(g, sisa_reshape(g, q, B, T, H, dh), 10000.0f, 0), "q_rope");
        sisa_tensor *kr = NAME(sisa_rope(g, sisa_reshape(g, kk, B, T, H, dh), 10000.0f, 0), "k_rope");
        sisa_tensor *Q = sisa_permute(g, qr, 0, 2, 1, 3), *K = sisa_permute(g, kr, 0, 2, 1, 3);
        sisa_tensor *V = sisa_permute(g, sisa_reshape(g, v, B, T, H, dh), 0, 2, 1, 3);
        if (ds > 0) {
            sisa_tensor *Bs = NAME(sisa_matmul(g, xn, W("W_B", H * ds, d, 0, 0.02)), "Bs");
            sisa_tensor *Cs = NAME(sisa_matmul(g, xn, W("W_C", H * ds, d, 0, 0.02)), "Cs");
            sisa_tensor *al = NAME(sisa_matmul(g, xn, W("alpha_proj", H, d, 0, 0.02)), "alpha_logits");
            sisa_tensor *th = NAME(sisa_matmul(g, xn, W("theta_proj", H * ds / 2, d, 0, 0.01)), "theta");
            sisa_tensor *gd = NAME(sisa_ssm_decay(g, al, W("alpha_bias", 1, H, -5.0, 0.1), NULL), "g");
            snprintf(n, sizeof n, "layers.%lld.lambda_raw", (long long)l);
            sisa_tensor *lr = conform_input(b, n, SISA_F32, (int64_t[4]){1, 1, 1, H},
                                            (conform_gen){GEN_NORMAL, -1.0, 0.1});
            sisa_tensor *ch = NAME(sisa_ssm_channels(g, Bs, Cs, th, gd, lr, NULL, SISA_SSM_AUGMENTED,
                                                     (int32_t)dh, 11.0f), "sCB");
            const int64_t W = (dh + ds + 15) / 16 * 16;
            Q = NAME(sisa_augment(g, Q, sisa_slice_row(g, ch, 0, ds), W), "Qhat_pad");
            K = NAME(sisa_augment(g, K, sisa_slice_row(g, ch, ds, ds), W), "Khat_pad");
        }
        sisa_sdpa_params p = {.scale = (float)(1.0 / sqrt((double)dh)), .causal = 1};
        sisa_tensor *y = NAME(sisa_sdpa(g, Q, K, V, &p), "attn");
        sisa_tensor *o = NAME(sisa_matmul(g, sisa_reshape(g, y, 1, B, T, d), W("W_O", d, d, 0, 0.02)), "o");
        sisa_tensor *h = NAME(sisa_add(g, x, o), "h");
        sisa_tensor *xn2 = NAME(sisa_rms_norm(g, h, W("ffn_norm", 1, d, 1.0, 0.05), 1e-6f), "xn2");
        sisa_tensor *gate = NAME(sisa_matmul(g, xn2, W("w_gate", k->ff, d, 0, 0.02)), "gate");
        sisa_tensor *up = NAME(sisa_matmul(g, xn2, W("w_up", k->ff, d, 0, 0.02)), "up");
        sisa_tensor *act = NAME(sisa_swiglu(g, gate, up), "swiglu");
        sisa_tensor *down = NAME(sisa_matmul(g, act, W("w_down", d, k->ff, 0, 0.02)), "down");
        x = NAME(sisa_add(g, h, down), "out");
#undef NAME
#undef W
    }
    sisa_tensor *xf = sisa_tensor_set_name(sisa_rms_norm(g, x, weight(b, "final_norm", 1, d, 1.0, 0.05), 1e-6f),
                                           "final_norm");
    sisa_tensor *logits = sisa_tensor_set_name(sisa_matmul(g, xf, E), "logits");
    b->out = sisa_tensor_set_name(sisa_argmax(g, logits), "argmax");
    return sisa_graph_status(g);
}

/* ---- model=runtime: the engine's own graph ---- */

#ifdef CONFORM_HAVE_MODEL
typedef struct runtime_model {
    sisa_model *m;
    sisa_model_graph *mg;
} runtime_model;

static void remove_dir(const char *dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    rmdir(dir);
}

static sisa_status build_runtime_model(const gcfg *k, const conform_case *c, uint64_t seed,
                                       runtime_model *rm, conform_built *b) {
    sisa_config cfg;
    sisa_config_defaults(&cfg);
    cfg.vocab_size = k->V;
    cfg.d_model = k->d;
    cfg.n_heads = k->H;
    cfg.head_dim = k->dh;
    cfg.n_layers = k->L;
    cfg.d_ssm = k->ds;
    cfg.d_ff = k->ff;
    cfg.max_seq_len = k->T;
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/sisa-conform-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) return sisa_err(SISA_BAD_FILE, "harness: cannot create a temporary directory %s", dir);
    sisa_dtype_public pdt = c->dtype == SISA_F16 ? SISA_DTYPE_F16 : c->dtype == SISA_BF16 ? SISA_DTYPE_BF16
                                                                                        : SISA_DTYPE_F32;
    sisa_status st = sisa_model_init_dir(&cfg, seed, pdt, dir);
    sisa_load_options lo = {.backend = "cpu-ref", .max_batch = (int)k->B, .max_tokens = (int)k->T};
    if (st == SISA_OK) st = sisa_model_load(dir, &lo, &rm->m);
    remove_dir(dir);
    if (st != SISA_OK) return sisa_err_prefix(st, "harness: random model %s", c->str);
    SISA_TRY(sisa_model_build_graph(rm->m, (int)k->B, (int)k->T, true, &rm->mg));
    b->g = rm->mg->graph;
    b->g->act_dtype = c->dtype;
    b->out = rm->mg->logits;
    b->gen[rm->mg->tokens->index] = (conform_gen){GEN_IDS, (double)k->V, 0};
    return SISA_OK;
}

static void free_runtime_model(runtime_model *rm) {
    sisa_model_graph_free(rm->mg); /* frees the graph the built struct points at */
    sisa_model_free(rm->m);
    memset(rm, 0, sizeof *rm);
}
#endif

sisa_status conform_build_graph_case(const conform_case *c, conform_built *b) {
    gcfg k;
    SISA_TRY(read_cfg(c, &k));
    if (strcmp(conform_case_str(c, "model", "block"), "block") != 0)
        return sisa_err(SISA_INVALID_ARG, "case '%s': only model=block builds through conform_build_case", c->str);
    return build_block_model(&k, b);
}

/* ---- running a graph node by node ---- */

static bool low_precision(const sisa_graph *g) {
    for (int i = 0; i < g->n_leafs; i++)
        if (g->leafs[i]->dtype == SISA_F16 || g->leafs[i]->dtype == SISA_BF16) return true;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->dtype == SISA_F16 || g->nodes[i]->dtype == SISA_BF16) return true;
    return false;
}

static void nodewise(conform_dev *cd, const conform_options *o, conform_built *b, uint64_t seed,
                     const conform_case *c, conform_result *r) {
    sisa_graph *g = b->g;
    FILE *out = o->out ? o->out : stdout;
    r->required = !low_precision(g);
    const char *need = NULL;
    for (int i = 0; i < g->n_leafs + g->n_nodes && !need; i++) {
        const sisa_tensor *t = i < g->n_leafs ? g->leafs[i] : g->nodes[i - g->n_leafs];
        if (t->dtype == SISA_F16 && !cd->dev->info.has_f16) need = "f16";
        if (t->dtype == SISA_BF16 && !cd->dev->info.has_bf16) need = "bf16";
    }
    if (need) {
        conform_set(r, CONFORM_SKIP, "dtype", "device reports no %s", need);
        return;
    }
    conform_exec x;
    if (conform_exec_place(&x, cd, g) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "alloc", "%s", sisa_last_error());
        conform_exec_free(&x);
        return;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const sisa_tensor *n = g->nodes[i];
        char reason[SISA_REASON_LEN] = "";
        if (n->op == SISA_OP_VIEW || cd->dev->iface->supports_op(cd->dev, n, reason)) continue;
        conform_set(r, CONFORM_UNSUPPORTED, "supports_op", "unsupported: node %d '%s' (op %s %s): %s", i,
                    n->name, sisa_op_name(n->op), sisa_dtype_name(n->dtype), reason);
        conform_exec_free(&x);
        return;
    }
    if (o->mode != CONFORM_MODE_TEST) {
        conform_exec_free(&x);
        return;
    }
    char msg[400];
    if (conform_exec_fill(&x, b, conform_case_seed(seed, c->str)) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "upload", "%s", sisa_last_error());
    } else {
        double t0 = conform_now_ms();
        if (conform_exec_run(&x) != SISA_OK) {
            conform_set(r, CONFORM_ERROR, "run", "%s", sisa_last_error());
            conform_exec_free(&x);
            return;
        }
        r->ms = conform_now_ms() - t0;
        int bad = conform_exec_check(&x, msg, sizeof msg);
        if (bad) {
            conform_set(r, CONFORM_FAIL, bad == 1 ? "guard" : "input", "%s", msg);
            conform_exec_free(&x);
            return;
        }
        int n_checked = 0, worst_i = -1;
        double worst_ratio = -1.0;
        conform_result nr;
        for (int i = 0; i < g->n_nodes; i++) {
            sisa_tensor *n = g->nodes[i];
            if (n->op == SISA_OP_VIEW) continue;
            const conform_threshold *th = conform_threshold_find(sisa_op_name(n->op), n->dtype);
            double *dev = NULL, *ref = malloc((size_t)sisa_tensor_nelements(n) * sizeof(double));
            memset(&nr, 0, sizeof nr);
            nr.verdict = CONFORM_PASS;
            if (!ref) conform_set(&nr, CONFORM_ERROR, "alloc", "harness: out of host memory");
            else if (conform_read(n, &dev) != SISA_OK) conform_set(&nr, CONFORM_ERROR, "read", "%s", sisa_last_error());
            else if (conform_oracle(n, ref) != SISA_OK) conform_set(&nr, CONFORM_ERROR, "oracle", "%s", sisa_last_error());
            else conform_compare(n, dev, ref, th, &nr);
            free(dev);
            free(ref);
            n_checked++;
            if (o->verbose)
                fprintf(out, "    node %3d %-28s %-12s %-4s norm %.3g (threshold %.3g) %s\n", i, n->name,
                        sisa_op_name(n->op), sisa_dtype_name(n->dtype), nr.norm_err, nr.threshold,
                        nr.verdict == CONFORM_PASS ? "ok" : "FAIL");
            if (nr.verdict != CONFORM_PASS) {
                r->norm_err = nr.norm_err;
                r->max_err = nr.max_err;
                r->threshold = nr.threshold;
                r->threshold_reason = nr.threshold_reason;
                conform_set(r, nr.verdict, nr.check, "first bad node %d '%s' (op %s %s): %s", i, n->name,
                            sisa_op_name(n->op), sisa_dtype_name(n->dtype), nr.detail);
                conform_exec_free(&x);
                return;
            }
            double ratio = th && th->tol > 0 ? nr.norm_err / th->tol : 0.0;
            if (ratio > worst_ratio) {
                worst_ratio = ratio;
                worst_i = i;
                r->norm_err = nr.norm_err;
                r->max_err = nr.max_err;
                r->threshold = nr.threshold;
                r->threshold_reason = nr.threshold_reason;
            }
        }
        if (worst_i >= 0)
            snprintf(r->detail, sizeof r->detail,
                     "%d nodes within their thresholds; closest: node %d '%s' (op %s) at %.2f of its threshold",
                     n_checked, worst_i, g->nodes[worst_i]->name, sisa_op_name(g->nodes[worst_i]->op), worst_ratio);
    }
    conform_exec_free(&x);
}

sisa_status conform_run_graph(conform_dev *cd, const conform_options *o, const conform_case *c,
                              uint64_t seed, conform_result *r) {
    conform_result_init(r, cd, c, seed);
    r->op = -1;
    gcfg k;
    if (read_cfg(c, &k) != SISA_OK) {
        conform_set(r, CONFORM_ERROR, "case", "%s", sisa_last_error());
        return SISA_OK;
    }
    const char *model = conform_case_str(c, "model", "block");
    conform_built b;
    memset(&b, 0, sizeof b);
    if (strcmp(model, "block") == 0) {
        if (conform_build_case(c, &b) != SISA_OK) {
            conform_set(r, CONFORM_ERROR, "case", "%s", sisa_last_error());
            return SISA_OK;
        }
        nodewise(cd, o, &b, seed, c, r);
        conform_built_free(&b);
        return SISA_OK;
    }
    if (strcmp(model, "runtime") != 0) {
        conform_set(r, CONFORM_ERROR, "case", "case '%s': model=%s is not runtime or block", c->str, model);
        return SISA_OK;
    }
#ifdef CONFORM_HAVE_MODEL
    runtime_model rm = {0};
    if (build_runtime_model(&k, c, seed, &rm, &b) != SISA_OK)
        conform_set(r, CONFORM_ERROR, "model", "%s", sisa_last_error());
    else
        nodewise(cd, o, &b, seed, c, r);
    free_runtime_model(&rm);
#else
    conform_set(r, CONFORM_SKIP, "model",
                "this build has no runtime/model.h graph builder (CONFORM_HAVE_MODEL unset)");
#endif
    return SISA_OK;
}
