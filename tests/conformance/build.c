/*
 * build.c — a level-2 case string turned into a graph: input leaves (each with the distribution
 * its values are drawn from), views for the non-contiguous layouts, and the one node under test,
 * made with the graph builders of graph.h so it is exactly what the model would build.
 *
 * Keys each kind reads (anything else is an error) and their defaults:
 *   every op      layout=contig|perm|tperm|slice (the float inputs' layout; see conform_input_layout)
 *   CPY           s=shape to=dtype range=normal|wide
 *   EMBED         V D B T oob=0 (ids drawn from [-oob, V + oob))
 *   RMS_NORM      s                      (eps 1e-6, weight ~ N(1, 0.1))
 *   ROPE          s=BxTxHxD p0=0 base=10000
 *   ADD           s bs=shape of the second operand (broadcast), default s
 *   SCALE         s k=0.125
 *   MATMUL        A0=1 A1=1 M N K B0=1 B1=1 bt=dtype bw=0|1  (b is B0xB1xNxK of dtype bt, default the
 *                 case's: f32 a with bt=bf16/f16 is the model's f32 activations x 16-bit weights;
 *                 bw=1: b's leaf is also marked a weight (SISA_TENSOR_PARAM), as a model's are, so a
 *                 backend's path for constant weights runs: Vulkan's f16 shadow of bf16 weights)
 *   SOFTMAX       s mask=none|causal
 *   ARGMAX        s special=0|1          (1: a tie in row 1, a NaN in row 2)
 *   SWIGLU        s
 *   SSM_DECAY     B T H bias=-5 g0=0|1
 *   SSM_CHANNELS  B H T ds mode=A|B decay=-5 phi0=0|1 dh=64 clamp=11
 *   AUGMENT       B H T Da Db W
 *   SDPA          B H Tq Tk dqk dv causal=1 p0=0 form=A|B dc=64 decay=-5 poison=0|1 scale=1/8
 * A shape is written AxBxCxD (fewer parts get leading 1s).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conform_internal.h"

static const conform_gen N01 = {GEN_NORMAL, 0.0, 1.0};

static sisa_status parse_shape(const conform_case *c, const char *key, const char *def,
                               int64_t out[4]) {
    const char *s = conform_case_str(c, key, def);
    if (!s) return sisa_err(SISA_INVALID_ARG, "case '%s': key '%s' is required", c->str, key);
    int64_t v[4];
    int n = 0;
    const char *p = s;
    while (*p && n < 4) {
        char *end;
        v[n++] = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        if (*p == 'x') p++;
        else break;
    }
    if (*p || n == 0)
        return sisa_err(SISA_INVALID_ARG, "case '%s': %s=%s is not a shape like 1x2x17x64", c->str,
                        key, s);
    for (int i = 0; i < 4; i++) out[i] = i < 4 - n ? 1 : v[i - (4 - n)];
    for (int i = 0; i < 4; i++)
        if (out[i] <= 0 || out[i] > (1 << 24))
            return sisa_err(SISA_INVALID_ARG, "case '%s': %s=%s has a bad dimension", c->str, key, s);
    return SISA_OK;
}

static sisa_status need_int(const conform_case *c, const char *key, int64_t def, int64_t lo,
                            int64_t hi, int64_t *out) {
    if (def < 0 && !conform_case_has(c, key))
        return sisa_err(SISA_INVALID_ARG, "case '%s': key '%s' is required", c->str, key);
    *out = conform_case_int(c, key, def);
    if (*out < lo || *out > hi)
        return sisa_err(SISA_INVALID_ARG, "case '%s': %s=%lld outside [%lld, %lld]", c->str, key,
                        (long long)*out, (long long)lo, (long long)hi);
    return SISA_OK;
}

#define INT(var, key, def, lo, hi)                                                                 \
    int64_t var = 0;                                                                               \
    SISA_TRY(need_int(c, key, def, lo, hi, &var))
#define BIG (1 << 24)

sisa_tensor *conform_input(conform_built *b, const char *name, sisa_dtype dt, const int64_t shape[4],
                           conform_gen gen) {
    sisa_tensor *t = sisa_graph_input(b->g, name, dt, shape[0], shape[1], shape[2], shape[3]);
    if (!t) return NULL;
    if (t->index >= CONFORM_MAX_LEAFS) {
        b->g->status = SISA_INVALID_ARG;
        snprintf(b->g->err, sizeof b->g->err, "harness: more than %d inputs", CONFORM_MAX_LEAFS);
        return NULL;
    }
    b->gen[t->index] = gen;
    return t;
}

sisa_tensor *conform_input_layout(conform_built *b, const char *name, sisa_dtype dt,
                                  const int64_t s[4], const char *layout, conform_gen gen) {
    if (!layout || strcmp(layout, "contig") == 0) return conform_input(b, name, dt, s, gen);
    char base_name[SISA_NAME_LEN];
    snprintf(base_name, sizeof base_name, "%s.%s", name, layout);
    if (strcmp(layout, "perm") == 0 && s[1] > 1 && s[2] > 1) {
        /* stored with dims 1 and 2 swapped, e.g. (B,T,H,D) seen as (B,H,T,D): rows contiguous */
        const int64_t bs[4] = {s[0], s[2], s[1], s[3]};
        sisa_tensor *base = conform_input(b, base_name, dt, bs, gen);
        return sisa_tensor_set_name(sisa_permute(b->g, base, 0, 2, 1, 3), "%s", name);
    }
    if (strcmp(layout, "perm") == 0 && s[0] > 1 && s[1] > 1) {
        const int64_t bs[4] = {s[1], s[0], s[2], s[3]};
        sisa_tensor *base = conform_input(b, base_name, dt, bs, gen);
        return sisa_tensor_set_name(sisa_permute(b->g, base, 1, 0, 2, 3), "%s", name);
    }
    if (strcmp(layout, "perm") == 0 || strcmp(layout, "tperm") == 0) {
        /* innermost two dims swapped: a row is strided */
        const int64_t bs[4] = {s[0], s[1], s[3], s[2]};
        sisa_tensor *base = conform_input(b, base_name, dt, bs, gen);
        return sisa_tensor_set_name(sisa_permute(b->g, base, 0, 1, 3, 2), "%s", name);
    }
    if (strcmp(layout, "slice") == 0) {
        /* channels [5, 5 + n) of rows of n + 11: an odd element offset and a padded row stride */
        const int64_t bs[4] = {s[0], s[1], s[2], s[3] + 11};
        sisa_tensor *base = conform_input(b, base_name, dt, bs, gen);
        return sisa_tensor_set_name(sisa_slice_row(b->g, base, 5, s[3]), "%s", name);
    }
    b->g->status = SISA_INVALID_ARG;
    snprintf(b->g->err, sizeof b->g->err, "layout '%s' is not contig, perm, tperm or slice", layout);
    return NULL;
}

void conform_built_free(conform_built *b) {
    sisa_graph_free(b->g);
    memset(b, 0, sizeof *b);
}

static sisa_status dtype_key(const conform_case *c, const char *key, sisa_dtype def, sisa_dtype *out) {
    const char *s = conform_case_str(c, key, NULL);
    *out = def;
    if (!s) return SISA_OK;
    for (int t = 0; t < SISA_DTYPE_COUNT; t++)
        if (strcmp(s, sisa_dtype_name((sisa_dtype)t)) == 0 && t != SISA_I32 && t != SISA_F64) {
            *out = (sisa_dtype)t;
            return SISA_OK;
        }
    return sisa_err(SISA_INVALID_ARG, "case '%s': %s=%s is not f32, f16 or bf16", c->str, key, s);
}

/* ---- one builder per op ---- */

static sisa_status build_op(const conform_case *c, conform_built *b) {
    sisa_graph *g = b->g;
    const sisa_dtype dt = c->dtype;
    const char *layout = conform_case_str(c, "layout", "contig");
    int64_t s[4];
    sisa_tensor *out = NULL;

    switch (c->op) {
    case SISA_OP_CPY: {
        static const char *const keys[] = {"s", "to", "layout", "range", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        sisa_dtype to;
        SISA_TRY(dtype_key(c, "to", dt, &to));
        const char *range = conform_case_str(c, "range", "normal");
        conform_gen gen = strcmp(range, "wide") == 0 ? (conform_gen){GEN_WIDE, 0, 0} : N01;
        out = sisa_cpy(g, conform_input_layout(b, "x", dt, s, layout, gen), to);
        break;
    }
    case SISA_OP_EMBED: {
        static const char *const keys[] = {"V", "D", "B", "T", "oob", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        INT(V, "V", -1, 1, BIG);
        INT(D, "D", -1, 1, 65536);
        INT(Bn, "B", 1, 1, 4096);
        INT(T, "T", -1, 1, BIG);
        INT(oob, "oob", 0, 0, 1000); /* ids up to oob outside [0, V): rows of zeros (ops.h) */
        sisa_tensor *table = conform_input(b, "table", dt, (int64_t[4]){1, 1, V, D}, N01);
        sisa_tensor *ids = conform_input(b, "ids", SISA_I32, (int64_t[4]){1, 1, Bn, T},
                                         (conform_gen){GEN_IDS, (double)V, (double)oob});
        out = sisa_embed(g, table, ids);
        break;
    }
    case SISA_OP_RMS_NORM: {
        static const char *const keys[] = {"s", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        sisa_tensor *x = conform_input_layout(b, "x", dt, s, layout, N01);
        sisa_tensor *w = conform_input(b, "w", dt, (int64_t[4]){1, 1, 1, s[3]},
                                       (conform_gen){GEN_NORMAL, 1.0, 0.1});
        out = sisa_rms_norm(g, x, w, 1e-6f);
        break;
    }
    case SISA_OP_ROPE: {
        static const char *const keys[] = {"s", "p0", "base", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        INT(p0, "p0", 0, 0, BIG);
        double base = conform_case_num(c, "base", 10000.0);
        out = sisa_rope(g, conform_input_layout(b, "x", dt, s, layout, N01), (float)base, (int32_t)p0);
        break;
    }
    case SISA_OP_ADD: {
        static const char *const keys[] = {"s", "bs", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        int64_t bs[4];
        SISA_TRY(parse_shape(c, "bs", conform_case_str(c, "s", NULL), bs));
        sisa_tensor *x = conform_input_layout(b, "a", dt, s, layout, N01);
        sisa_tensor *y = conform_input_layout(b, "b", dt, bs, layout, N01);
        out = sisa_add(g, x, y);
        break;
    }
    case SISA_OP_SCALE: {
        static const char *const keys[] = {"s", "k", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        double k = conform_case_num(c, "k", 0.125);
        out = sisa_scale(g, conform_input_layout(b, "x", dt, s, layout, N01), (float)k);
        break;
    }
    case SISA_OP_MATMUL: {
        static const char *const keys[] = {"A0", "A1", "M", "N", "K", "B0", "B1", "bt", "bw", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        INT(A0, "A0", 1, 1, 4096);
        INT(A1, "A1", 1, 1, 4096);
        INT(M, "M", -1, 1, BIG);
        INT(N, "N", -1, 1, BIG);
        INT(K, "K", -1, 1, BIG);
        INT(B0, "B0", 1, 1, 4096);
        INT(B1, "B1", 1, 1, 4096);
        INT(bw, "bw", 0, 0, 1);
        sisa_dtype bt;
        SISA_TRY(dtype_key(c, "bt", dt, &bt));
        sisa_tensor *a = conform_input_layout(b, "a", dt, (int64_t[4]){A0, A1, M, K}, layout, N01);
        sisa_tensor *w = conform_input_layout(b, "b", bt, (int64_t[4]){B0, B1, N, K}, layout, N01);
        if (w && bw) sisa_tensor_base(w)->flags |= SISA_TENSOR_PARAM; /* still generated: an input too */
        out = sisa_matmul(g, a, w);
        b->flops = 2.0 * (double)(A0 * A1) * (double)M * (double)N * (double)K;
        break;
    }
    case SISA_OP_SOFTMAX: {
        static const char *const keys[] = {"s", "mask", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        const char *mask = conform_case_str(c, "mask", "none");
        bool causal = strcmp(mask, "causal") == 0;
        if (!causal && strcmp(mask, "none") != 0)
            return sisa_err(SISA_INVALID_ARG, "case '%s': mask=%s is not none or causal", c->str, mask);
        if (causal && strcmp(layout, "contig") != 0)
            return sisa_err(SISA_INVALID_ARG, "case '%s': mask=causal needs layout=contig", c->str);
        conform_gen gen = causal ? (conform_gen){GEN_MASKED, 3.0, 0} : (conform_gen){GEN_NORMAL, 0, 3.0};
        out = sisa_softmax(g, conform_input_layout(b, "x", dt, s, layout, gen));
        break;
    }
    case SISA_OP_ARGMAX: {
        static const char *const keys[] = {"s", "special", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        bool special = conform_case_int(c, "special", 0) != 0;
        if (special && (strcmp(layout, "contig") != 0 || s[0] * s[1] * s[2] < 3))
            return sisa_err(SISA_INVALID_ARG, "case '%s': special=1 needs layout=contig and >= 3 rows",
                            c->str);
        conform_gen gen = special ? (conform_gen){GEN_ARGMAX, 0, 0} : N01;
        out = sisa_argmax(g, conform_input_layout(b, "x", dt, s, layout, gen));
        break;
    }
    case SISA_OP_SWIGLU: {
        static const char *const keys[] = {"s", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        SISA_TRY(parse_shape(c, "s", NULL, s));
        sisa_tensor *gate = conform_input_layout(b, "gate", dt, s, layout, (conform_gen){GEN_NORMAL, 0, 2});
        sisa_tensor *up = conform_input_layout(b, "up", dt, s, layout, N01);
        out = sisa_swiglu(g, gate, up);
        break;
    }
    case SISA_OP_SSM_DECAY: {
        static const char *const keys[] = {"B", "T", "H", "bias", "g0", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        INT(Bn, "B", 1, 1, 4096);
        INT(T, "T", -1, 1, BIG);
        INT(H, "H", -1, 1, 4096);
        double bias = conform_case_num(c, "bias", -5.0);
        sisa_tensor *a = conform_input_layout(b, "alpha_logits", dt, (int64_t[4]){1, Bn, T, H}, layout, N01);
        sisa_tensor *ba = conform_input(b, "b_alpha", dt, (int64_t[4]){1, 1, 1, H},
                                        (conform_gen){GEN_NORMAL, bias, 0.5});
        sisa_tensor *g0 = conform_case_int(c, "g0", 0)
                              ? conform_input(b, "g0", SISA_F32, (int64_t[4]){1, 1, Bn, H},
                                              (conform_gen){GEN_NORMAL, -3.0, 1.0})
                              : NULL;
        out = sisa_ssm_decay(g, a, ba, g0);
        break;
    }
    case SISA_OP_SSM_CHANNELS: {
        static const char *const keys[] = {"B", "H", "T", "ds", "mode", "decay", "phi0", "dh",
                                           "clamp", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        INT(Bn, "B", 1, 1, 4096);
        INT(H, "H", -1, 1, 4096);
        INT(T, "T", -1, 1, BIG);
        INT(ds, "ds", -1, 2, 4096);
        INT(dh, "dh", 64, 1, 4096);
        const char *mode = conform_case_str(c, "mode", "A");
        int m = strcmp(mode, "A") == 0 ? SISA_SSM_AUGMENTED : strcmp(mode, "B") == 0 ? SISA_SSM_FACTORED : -1;
        if (m < 0) return sisa_err(SISA_INVALID_ARG, "case '%s': mode=%s is not A or B", c->str, mode);
        double decay = conform_case_num(c, "decay", -5.0), clamp = conform_case_num(c, "clamp", 11.0);
        int64_t shp[4] = {1, Bn, T, H * ds};
        sisa_tensor *Bs = conform_input_layout(b, "Bs", dt, shp, layout, N01);
        sisa_tensor *Cs = conform_input_layout(b, "Cs", dt, shp, layout, N01);
        sisa_tensor *th = conform_input_layout(b, "theta", dt, (int64_t[4]){1, Bn, T, H * ds / 2},
                                               layout, (conform_gen){GEN_NORMAL, 0, 0.3});
        sisa_tensor *gd = conform_input(b, "g", SISA_F32, (int64_t[4]){1, Bn, H, T},
                                        (conform_gen){GEN_DECAY, decay, 1.0});
        sisa_tensor *lr = conform_input(b, "lambda_raw", SISA_F32, (int64_t[4]){1, 1, 1, H},
                                        (conform_gen){GEN_NORMAL, -1.0, 0.5});
        sisa_tensor *p0 = conform_case_int(c, "phi0", 0)
                              ? conform_input(b, "phi0", SISA_F32, (int64_t[4]){1, 1, Bn, H * ds / 2},
                                              (conform_gen){GEN_NORMAL, 0, 3.0})
                              : NULL;
        out = sisa_ssm_channels(g, Bs, Cs, th, gd, lr, p0, m, (int32_t)dh, (float)clamp);
        break;
    }
    case SISA_OP_AUGMENT: {
        static const char *const keys[] = {"B", "H", "T", "Da", "Db", "W", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        INT(Bn, "B", 1, 1, 4096);
        INT(H, "H", -1, 1, 4096);
        INT(T, "T", -1, 1, BIG);
        INT(Da, "Da", -1, 1, 65536);
        INT(Db, "Db", -1, 1, 65536);
        INT(W, "W", Da + Db, 1, 1 << 20);
        sisa_tensor *x = conform_input_layout(b, "a", dt, (int64_t[4]){Bn, H, T, Da}, layout, N01);
        sisa_tensor *y = conform_input_layout(b, "b", dt, (int64_t[4]){Bn, H, T, Db}, layout, N01);
        out = sisa_augment(g, x, y, W);
        break;
    }
    case SISA_OP_SDPA: {
        static const char *const keys[] = {"B", "H", "Tq", "Tk", "dqk", "dv", "causal", "p0", "form",
                                           "dc", "decay", "poison", "scale", "layout", NULL};
        SISA_TRY(conform_case_check_keys(c, keys));
        INT(Bn, "B", 1, 1, 4096);
        INT(H, "H", -1, 1, 4096);
        INT(Tq, "Tq", -1, 1, BIG);
        INT(Tk, "Tk", -1, 1, BIG);
        INT(dqk, "dqk", -1, 1, 65536);
        INT(dv, "dv", -1, 1, 65536);
        INT(causal, "causal", 1, 0, 1);
        INT(p0, "p0", 0, 0, BIG);
        INT(poison, "poison", 0, 0, 1);
        const char *form = conform_case_str(c, "form", "A");
        bool formB = strcmp(form, "B") == 0;
        INT(dc, "dc", formB ? 64 : 0, 0, dqk); /* form B only: channels [0, dc) are undecayed */
        if (!formB && strcmp(form, "A") != 0)
            return sisa_err(SISA_INVALID_ARG, "case '%s': form=%s is not A or B", c->str, form);
        if ((formB || poison) && p0 + Tq > Tk)
            return sisa_err(SISA_INVALID_ARG, "case '%s': form=B and poison=1 need p0 + Tq <= Tk", c->str);
        if (poison && (!causal || strcmp(layout, "contig") != 0))
            return sisa_err(SISA_INVALID_ARG, "case '%s': poison=1 needs causal=1 layout=contig", c->str);
        /* keys past p0 + Tq - 1 are never visible: with poison=1 they hold NaN */
        conform_gen kv = poison ? (conform_gen){GEN_POISON_TAIL, (double)(p0 + Tq), 0} : N01;
        sisa_tensor *q = conform_input_layout(b, "Q", dt, (int64_t[4]){Bn, H, Tq, dqk}, layout, N01);
        sisa_tensor *k = conform_input_layout(b, "K", dt, (int64_t[4]){Bn, H, Tk, dqk}, layout, kv);
        sisa_tensor *v = conform_input_layout(b, "V", dt, (int64_t[4]){Bn, H, Tk, dv}, layout, kv);
        sisa_sdpa_params p = {.scale = (float)conform_case_num(c, "scale", 0.125),
                              .causal = (int)causal, .p0 = (int32_t)p0};
        if (formB) {
            sisa_tensor *gk = conform_input(b, "gk", SISA_F32, (int64_t[4]){1, Bn, H, Tk},
                                            (conform_gen){GEN_DECAY, conform_case_num(c, "decay", -5.0), 1.0});
            if (!gk) return sisa_graph_status(g);
            p.gk = gk;
            p.gq = conform_input(b, "gq", SISA_F32, (int64_t[4]){1, Bn, H, Tq},
                                 (conform_gen){GEN_COPY_COLS, (double)gk->index, (double)p0});
            p.d_content = (int32_t)dc;
        }
        out = sisa_sdpa(g, q, k, v, &p);
        double pairs = (double)Tq * (double)Tk;
        if (causal && p0 == 0 && Tq == Tk) pairs = (double)Tq * (double)(Tq + 1) / 2.0;
        b->flops = 2.0 * (double)(Bn * H) * pairs * (double)(dqk + dv);
        break;
    }
    default:
        return sisa_err(SISA_INVALID_ARG, "case '%s': op %s has no case builder", c->str,
                        sisa_op_name(c->op));
    }
    SISA_TRY(sisa_graph_status(g));
    b->out = sisa_tensor_set_output(out);
    return SISA_OK;
}

sisa_status conform_build_case(const conform_case *c, conform_built *b) {
    memset(b, 0, sizeof *b);
    b->g = sisa_graph_new();
    if (!b->g) return sisa_err(SISA_OUT_OF_MEMORY, "harness: out of host memory for a graph");
    b->g->act_dtype = c->dtype;
    sisa_status st;
    if (c->level == CONFORM_LEVEL_OPS) st = build_op(c, b);
    else if (c->level == CONFORM_LEVEL_GRAPH) st = conform_build_graph_case(c, b);
    else st = sisa_err(SISA_INVALID_ARG, "case '%s' is not a graph case", c->str);
    if (st == SISA_OK && !b->out) st = sisa_err(SISA_INTERNAL, "case '%s': no output node", c->str);
    if (st != SISA_OK) {
        sisa_graph_free(b->g);
        b->g = NULL;
    }
    return st;
}
