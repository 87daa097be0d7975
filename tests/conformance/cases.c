/*
 * cases.c — the op x dtype x shape case list, and the case-string grammar.
 *
 * Shapes are SISA's real ones (d_h 64, d_s 16/32/64/128, H 12, d 768) at sequence lengths that
 * keep the default suite within ~2 minutes on 2 cores (the fp64 oracle is the slow part), plus
 * the odd ones that catch indexing bugs: T = 1, 17, 113; d_s = 2, 16, 128; d_qk != d_v both
 * ways; K = 67; vocab 97; non-contiguous inputs (permuted, transposed, sliced rows); SDPA
 * chunked prefill (p0 > 0, Tq < Tk) and decode (Tq = 1, Tk = 37, form B) with the KV slots past
 * the last visible position filled with NaN. The T = 512 shapes run by default in f32 (the
 * real published head and model widths at a real length); their f16/bf16 versions, T = 2048,
 * the d_ff down-projection and the full vocabulary are marked full_only (`--full`). The default
 * suite takes ~20 s on 2 cores with the CPU fast path; --full ~2 minutes.
 *
 * Every case is a string "<KIND> <dtype> key=value ..." (conform.h); the list below is written in
 * that grammar so that what is printed with a failure is exactly what reproduces it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "conform_internal.h"

/* ---- grammar ---- */

static bool parse_dtype(const char *s, sisa_dtype *out) {
    for (int t = 0; t < SISA_DTYPE_COUNT; t++)
        if (strcmp(s, sisa_dtype_name((sisa_dtype)t)) == 0) {
            *out = (sisa_dtype)t;
            return true;
        }
    return false;
}

static int parse_kind(const char *s, int *level) {
    if (strcmp(s, "IDENTITY") == 0) {
        *level = CONFORM_LEVEL_IDENTITY;
        return -1;
    }
    if (strcmp(s, "GRAPH") == 0) {
        *level = CONFORM_LEVEL_GRAPH;
        return -1;
    }
    *level = CONFORM_LEVEL_OPS;
    for (int op = SISA_OP_CPY; op < SISA_OP_COUNT; op++)
        if (strcmp(s, sisa_op_name(op)) == 0) return op;
    return -2;
}

sisa_status conform_case_parse(const char *s, conform_case *c) {
    memset(c, 0, sizeof *c);
    c->op = -1;
    if (!s || strlen(s) >= CONFORM_CASE_LEN)
        return sisa_err(SISA_INVALID_ARG, "case string missing or longer than %d characters",
                        CONFORM_CASE_LEN - 1);
    char buf[CONFORM_CASE_LEN];
    snprintf(buf, sizeof buf, "%s", s);
    int n_tok = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save), n_tok++) {
        if (n_tok == 0) {
            c->op = parse_kind(tok, &c->level);
            if (c->op == -2)
                return sisa_err(SISA_INVALID_ARG,
                                "case '%s': '%s' is neither an op name of ops.h nor IDENTITY/GRAPH",
                                s, tok);
        } else if (n_tok == 1) {
            if (!parse_dtype(tok, &c->dtype) || c->dtype == SISA_I32 || c->dtype == SISA_F64)
                return sisa_err(SISA_INVALID_ARG, "case '%s': dtype '%s' is not f32, f16 or bf16",
                                s, tok);
        } else {
            char *eq = strchr(tok, '=');
            if (!eq || eq == tok || !eq[1])
                return sisa_err(SISA_INVALID_ARG, "case '%s': '%s' is not key=value", s, tok);
            *eq = '\0';
            if (c->n_kv == CONFORM_MAX_KV || strlen(tok) >= CONFORM_KEY_LEN ||
                strlen(eq + 1) >= CONFORM_VAL_LEN)
                return sisa_err(SISA_INVALID_ARG, "case '%s': too many or too long parameters", s);
            for (int i = 0; i < c->n_kv; i++)
                if (strcmp(c->key[i], tok) == 0)
                    return sisa_err(SISA_INVALID_ARG, "case '%s': key '%s' given twice", s, tok);
            snprintf(c->key[c->n_kv], CONFORM_KEY_LEN, "%s", tok);
            snprintf(c->val[c->n_kv], CONFORM_VAL_LEN, "%s", eq + 1);
            c->n_kv++;
        }
    }
    if (n_tok < 2) return sisa_err(SISA_INVALID_ARG, "case '%s': expected '<KIND> <dtype> key=value ...'", s);
    /* canonical text: single spaces */
    size_t len = (size_t)snprintf(c->str, sizeof c->str, "%s %s",
                                  c->level == CONFORM_LEVEL_OPS ? sisa_op_name(c->op)
                                  : c->level == CONFORM_LEVEL_IDENTITY ? "IDENTITY" : "GRAPH",
                                  sisa_dtype_name(c->dtype));
    for (int i = 0; i < c->n_kv && len < sizeof c->str; i++)
        len += (size_t)snprintf(c->str + len, sizeof c->str - len, " %s=%s", c->key[i], c->val[i]);
    return SISA_OK;
}

static const char *find(const conform_case *c, const char *key) {
    for (int i = 0; i < c->n_kv; i++)
        if (strcmp(c->key[i], key) == 0) return c->val[i];
    return NULL;
}

bool conform_case_has(const conform_case *c, const char *key) { return find(c, key) != NULL; }

int64_t conform_case_int(const conform_case *c, const char *key, int64_t def) {
    const char *v = find(c, key);
    return v ? strtoll(v, NULL, 10) : def;
}

double conform_case_num(const conform_case *c, const char *key, double def) {
    const char *v = find(c, key);
    return v ? strtod(v, NULL) : def;
}

const char *conform_case_str(const conform_case *c, const char *key, const char *def) {
    const char *v = find(c, key);
    return v ? v : def;
}

sisa_status conform_case_check_keys(const conform_case *c, const char *const *known) {
    for (int i = 0; i < c->n_kv; i++) {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            if (strcmp(*k, c->key[i]) == 0) ok = true;
        if (!ok) {
            char list[256] = "";
            for (const char *const *k = known; *k; k++) {
                strncat(list, *k, sizeof list - strlen(list) - 2);
                strncat(list, " ", sizeof list - strlen(list) - 1);
            }
            return sisa_err(SISA_INVALID_ARG, "case '%s': unknown key '%s' (known: %s)", c->str,
                            c->key[i], list);
        }
        /* values must be numbers or words; catch "T=" typos like "T=1 7" early */
        const char *v = c->val[i];
        for (; *v; v++)
            if (!isalnum((unsigned char)*v) && !strchr(".-+x_", *v))
                return sisa_err(SISA_INVALID_ARG, "case '%s': value '%s' of '%s' has a '%c'",
                                c->str, c->val[i], c->key[i], *v);
    }
    return SISA_OK;
}

/* ---- the list ---- */

typedef struct list {
    conform_case *v;
    int n, cap;
    bool oom;
} list;

static void add(list *l, bool full_only, const char *fmt, ...) SISA_PRINTF(3, 4);
static void add(list *l, bool full_only, const char *fmt, ...) {
    if (l->oom) return;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 256;
        conform_case *nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            l->oom = true;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    char s[CONFORM_CASE_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    conform_case *c = &l->v[l->n];
    if (conform_case_parse(s, c) != SISA_OK) {
        /* a typo in the list: kept, so that running it reports the parse error as a failure */
        memset(c, 0, sizeof *c);
        snprintf(c->str, sizeof c->str, "%s", s);
        c->level = -1;
        c->op = -1;
    }
    c->full_only = full_only;
    l->n++;
}

static const char *const DT[3] = {"f32", "f16", "bf16"};

static void ops_cases(list *l) {
    for (int i = 0; i < 3; i++) {
        const char *d = DT[i];
        const bool f32 = i == 0;

        /* CPY: plain, strided -> contiguous, conversions (wide range: subnormals, overflow) */
        add(l, false, "CPY %s s=1x2x17x64 to=%s", d, d);
        add(l, false, "CPY %s s=2x17x12x64 to=%s layout=perm", d, d);
        add(l, false, "CPY %s s=1x1x1x64 to=%s layout=slice", d, d);
        add(l, !f32, "CPY %s s=1x1x512x768 to=%s", d, d);
        for (int j = 0; j < 3; j++)
            if (j != i) add(l, false, "CPY %s s=1x1x113x64 to=%s range=wide", d, DT[j]);

        add(l, false, "EMBED %s V=1000 D=768 B=2 T=17", d);
        add(l, false, "EMBED %s V=97 D=64 B=1 T=1", d);
        add(l, false, "EMBED %s V=97 D=64 B=2 T=33 oob=5", d);
        add(l, true, "EMBED %s V=50277 D=768 B=1 T=512", d);

        add(l, false, "RMS_NORM %s s=1x1x17x768", d);
        add(l, false, "RMS_NORM %s s=1x2x113x768", d);
        add(l, false, "RMS_NORM %s s=1x1x1x768", d);
        add(l, false, "RMS_NORM %s s=1x1x17x64 layout=slice", d);
        add(l, false, "RMS_NORM %s s=1x1x17x768 layout=perm", d);
        add(l, !f32, "RMS_NORM %s s=1x1x512x768", d);

        add(l, false, "ROPE %s s=1x17x12x64 p0=0", d);
        add(l, false, "ROPE %s s=2x113x12x64 p0=0", d);
        add(l, false, "ROPE %s s=1x1x12x64 p0=36", d);
        add(l, false, "ROPE %s s=1x17x12x16 p0=3", d);
        add(l, false, "ROPE %s s=1x17x12x64 p0=5 layout=perm", d);
        add(l, false, "ROPE %s s=1x17x2x64 p0=0 layout=slice", d);
        add(l, false, "ROPE %s s=1x512x12x64 p0=0", d);
        add(l, false, "ROPE %s s=1x1x12x64 p0=2047", d);
        add(l, true, "ROPE %s s=1x2048x12x64 p0=0", d);

        add(l, false, "ADD %s s=1x1x17x768", d);
        add(l, false, "ADD %s s=1x1x17x768 bs=1x1x1x768", d);
        add(l, false, "ADD %s s=2x12x17x17 bs=2x1x17x1", d);
        add(l, false, "ADD %s s=1x1x1x768 layout=slice", d);
        add(l, false, "ADD %s s=1x17x12x64 layout=perm", d);

        add(l, false, "SCALE %s s=2x12x17x17 k=0.125", d);
        add(l, false, "SCALE %s s=1x1x1x64 k=-3", d);
        add(l, false, "SCALE %s s=1x12x17x64 k=0.5 layout=tperm", d);

        add(l, false, "MATMUL %s M=17 N=768 K=768", d);
        add(l, false, "MATMUL %s M=1 N=768 K=768", d);
        add(l, false, "MATMUL %s M=113 N=64 K=768", d);
        add(l, false, "MATMUL %s A1=12 M=17 N=17 K=80 B1=12", d);
        add(l, false, "MATMUL %s A0=2 A1=3 M=17 N=33 K=67", d);
        add(l, false, "MATMUL %s M=17 N=97 K=768", d);
        add(l, false, "MATMUL %s M=17 N=64 K=128 layout=tperm", d);
        add(l, false, "MATMUL %s M=17 N=256 K=768 layout=slice", d);
        add(l, false, "MATMUL %s A1=12 M=17 N=17 K=64 B1=12 layout=perm", d);
        add(l, !f32, "MATMUL %s M=512 N=768 K=768", d);
        add(l, true, "MATMUL %s M=512 N=2908 K=768", d);
        add(l, true, "MATMUL %s M=512 N=768 K=2908", d);
        add(l, true, "MATMUL %s M=17 N=50277 K=768", d);
        if (i == 2) { /* b a weight (bw=1): Vulkan's coopmat kernel reads it through its f16 shadow */
            add(l, false, "MATMUL bf16 M=17 N=768 K=768 bw=1");
            add(l, false, "MATMUL bf16 A1=12 M=17 N=17 K=80 B1=12 bw=1");
            add(l, false, "MATMUL bf16 M=113 N=97 K=67 bw=1");
            add(l, false, "MATMUL bf16 M=17 N=64 K=128 layout=tperm bw=1");
            add(l, false, "MATMUL bf16 M=17 N=256 K=768 layout=slice bw=1");
            add(l, true, "MATMUL bf16 M=512 N=2908 K=768 bw=1");
            add(l, true, "MATMUL bf16 M=17 N=50277 K=768 bw=1");
        }
        if (f32) { /* f32 activations x 16-bit weights (the default compute of a bf16 checkpoint) */
            add(l, false, "MATMUL f32 M=17 N=768 K=768 bt=bf16");
            add(l, false, "MATMUL f32 M=2 N=97 K=768 bt=f16");
            add(l, false, "MATMUL f32 A1=12 M=17 N=17 K=80 B1=12 bt=bf16");
            add(l, false, "MATMUL f32 M=17 N=64 K=128 bt=bf16 layout=tperm");
            add(l, true, "MATMUL f32 M=512 N=2908 K=768 bt=bf16");
            /* decode-shaped few-row products (CUDA's streaming GEMV: K split into segments, a
             * partial last segment, 2-4 rows, a K of one 16-byte vector) */
            add(l, false, "MATMUL f32 M=1 N=768 K=2944 bt=bf16");
            add(l, false, "MATMUL f32 M=4 N=300 K=1000 bt=bf16");
            add(l, false, "MATMUL f32 A0=3 M=1 N=5 K=8 bt=f16");
        }

        add(l, false, "SOFTMAX %s s=1x12x17x17 mask=causal", d);
        add(l, false, "SOFTMAX %s s=1x1x113x113 mask=causal", d);
        add(l, false, "SOFTMAX %s s=1x1x17x1000", d);
        add(l, false, "SOFTMAX %s s=1x1x1x37", d);
        add(l, false, "SOFTMAX %s s=1x1x17x100 layout=slice", d);
        add(l, !f32, "SOFTMAX %s s=1x12x512x512 mask=causal", d);

        add(l, false, "ARGMAX %s s=1x1x17x1000", d);
        add(l, false, "ARGMAX %s s=1x1x5x97 special=1", d);
        add(l, false, "ARGMAX %s s=1x1x2x50277", d);
        add(l, false, "ARGMAX %s s=1x1x3x64 layout=slice", d);

        add(l, false, "SWIGLU %s s=1x1x17x2908", d);
        add(l, false, "SWIGLU %s s=1x2x1x256", d);
        add(l, false, "SWIGLU %s s=1x1x17x256 layout=slice", d);
        add(l, !f32, "SWIGLU %s s=1x1x512x2908", d);

        add(l, false, "SSM_DECAY %s B=1 T=17 H=12 bias=-5", d);
        add(l, false, "SSM_DECAY %s B=2 T=113 H=12 bias=-5 g0=1", d);
        add(l, false, "SSM_DECAY %s B=1 T=1 H=12 bias=-5 g0=1", d);
        add(l, false, "SSM_DECAY %s B=1 T=17 H=12 bias=2", d);
        add(l, false, "SSM_DECAY %s B=1 T=512 H=12 bias=-5", d);
        add(l, true, "SSM_DECAY %s B=1 T=2048 H=12 bias=-5", d);

        add(l, false, "SSM_CHANNELS %s B=1 H=12 T=17 ds=16 mode=A decay=-5", d);
        add(l, false, "SSM_CHANNELS %s B=2 H=12 T=113 ds=32 mode=A decay=-5", d);
        add(l, false, "SSM_CHANNELS %s B=1 H=12 T=17 ds=2 mode=A decay=-5", d);
        add(l, false, "SSM_CHANNELS %s B=1 H=12 T=17 ds=128 mode=A decay=-5", d);
        add(l, false, "SSM_CHANNELS %s B=1 H=12 T=1 ds=64 mode=A decay=-5", d);
        add(l, false, "SSM_CHANNELS %s B=1 H=12 T=17 ds=16 mode=B decay=-5", d);
        add(l, false, "SSM_CHANNELS %s B=2 H=12 T=1 ds=16 mode=B decay=-5 phi0=1", d);
        /* clamp active: exp(+-11) * s does not fit f16 (SISA.md 3): no f16 case */
        if (strcmp(d, "f16") != 0) {
            add(l, false, "SSM_CHANNELS %s B=1 H=4 T=33 ds=16 mode=A decay=2", d);
            add(l, false, "SSM_CHANNELS %s B=1 H=4 T=33 ds=16 mode=B decay=2", d);
        }
        add(l, !f32, "SSM_CHANNELS %s B=1 H=12 T=512 ds=16 mode=A decay=-5", d);
        add(l, true, "SSM_CHANNELS %s B=1 H=12 T=2048 ds=128 mode=A decay=-5", d);

        add(l, false, "AUGMENT %s B=1 H=12 T=17 Da=64 Db=16 W=80", d);
        add(l, false, "AUGMENT %s B=1 H=12 T=17 Da=64 Db=2 W=80", d);
        add(l, false, "AUGMENT %s B=2 H=12 T=1 Da=64 Db=128 W=192", d);
        add(l, false, "AUGMENT %s B=1 H=12 T=17 Da=64 Db=16 W=80 layout=slice", d);
        add(l, false, "AUGMENT %s B=1 H=12 T=17 Da=64 Db=32 W=96 layout=perm", d);

        add(l, false, "SDPA %s B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1", d);
        add(l, false, "SDPA %s B=1 H=2 Tq=17 Tk=17 dqk=32 dv=64 causal=1", d);
        add(l, false, "SDPA %s B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1", d);
        add(l, false, "SDPA %s B=1 H=12 Tq=17 Tk=17 dqk=64 dv=64 causal=0", d);
        add(l, false, "SDPA %s B=1 H=12 Tq=1 Tk=1 dqk=192 dv=64 causal=1", d);
        add(l, false, "SDPA %s B=1 H=12 Tq=17 Tk=37 dqk=80 dv=64 causal=1 p0=20", d);
        add(l, false, "SDPA %s B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1 form=B dc=64", d);
        add(l, false, "SDPA %s B=2 H=12 Tq=1 Tk=37 dqk=80 dv=64 causal=1 p0=36 form=B dc=64", d);
        add(l, false, "SDPA %s B=1 H=12 Tq=1 Tk=64 dqk=80 dv=64 causal=1 p0=36 form=B dc=64 poison=1", d);
        add(l, false, "SDPA %s B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1 layout=perm", d);
        add(l, false, "SDPA %s B=1 H=4 Tq=17 Tk=17 dqk=80 dv=64 causal=1 layout=slice", d);
        add(l, !f32, "SDPA %s B=1 H=12 Tq=512 Tk=512 dqk=80 dv=64 causal=1", d);
        add(l, !f32, "SDPA %s B=1 H=12 Tq=512 Tk=512 dqk=80 dv=64 causal=1 form=B dc=64", d);
        add(l, true, "SDPA %s B=1 H=12 Tq=2048 Tk=2048 dqk=192 dv=64 causal=1", d);
    }
}

static void level1_cases(list *l) {
    add(l, false, "IDENTITY f32 B=1 H=4 T=113 ds=16 decay=-5");
    add(l, false, "IDENTITY f32 B=2 H=2 T=33 ds=2 decay=-5");
    add(l, false, "IDENTITY f32 B=1 H=4 T=64 ds=128 decay=-5");
    add(l, false, "IDENTITY f32 B=1 H=4 T=17 ds=16 decay=2");
    add(l, false, "IDENTITY f32 B=1 H=2 T=40 ds=32 decay=1");
    add(l, true, "IDENTITY f32 B=1 H=12 T=512 ds=16 decay=-5");
    add(l, false, "IDENTITY f32 B=1 H=12 T=512 ds=64 decay=0");
    add(l, true, "IDENTITY f32 B=1 H=12 T=2048 ds=128 decay=-5");
}

static void graph_cases(list *l) {
    /* the engine's own model graph (runtime/model.h), SISA and the Transformer control */
    for (int i = 0; i < 3; i++) {
        add(l, false, "GRAPH %s model=runtime B=2 T=17 d=128 H=2 ds=16 ff=256 V=97 L=2", DT[i]);
        add(l, false, "GRAPH %s model=runtime B=2 T=17 d=128 H=2 ds=0 ff=256 V=97 L=2", DT[i]);
    }
    add(l, false, "GRAPH f32 model=runtime B=1 T=1 d=128 H=2 ds=2 ff=256 V=97 L=1");
    add(l, true, "GRAPH f32 model=runtime B=1 T=113 d=768 H=12 ds=16 ff=2908 V=1000 L=1");
    /* the same structure written by the harness itself (independent of model loading) */
    add(l, false, "GRAPH f32 model=block B=2 T=17 d=128 H=2 ds=16 ff=256 V=97 L=2");
    add(l, false, "GRAPH f32 model=block B=2 T=17 d=128 H=2 ds=0 ff=256 V=97 L=1");
}

int conform_case_list(conform_case **out) {
    list l = {0};
    level1_cases(&l);
    ops_cases(&l);
    graph_cases(&l);
    if (l.oom) {
        free(l.v);
        *out = NULL;
        return -1;
    }
    *out = l.v;
    return l.n;
}
