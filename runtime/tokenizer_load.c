/*
 * tokenizer_load.c — read a Hugging Face tokenizer.json into the in-memory tokenizer.
 *
 * Supported: a BPE model over GPT-2's byte-level alphabet (GPT-2, GPT-NeoX-20B / Pythia, and the
 * newer files that put a Split regex before ByteLevel), merges as "a b" strings or ["a", "b"]
 * pairs, added tokens with their lstrip / rstrip / single_word / normalized flags, an NFC or
 * absent normalizer, and ByteLevel / Split / Digits / Sequence pre-tokenizers. Anything else is
 * refused with a message naming the field, rather than loaded and encoded differently from
 * Hugging Face. The post_processor is ignored: encode() never adds BOS/EOS.
 */
#include "tokenizer.h"
#include "error.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The split pattern ByteLevel uses when use_regex is true; it is built into Hugging Face's
 * ByteLevel rather than written in tokenizer.json. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define FAIL(st, ...) sisa_err((st), "tokenizer %s: " __VA_ARGS__)

/* ---- small JSON accessors ------------------------------------------------------------------- */

/* Optional boolean field; absent or null gives def. */
static int get_bool(const cJSON *obj, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static const char *get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int is_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 2147483647.0) || floor(d) != d) return 0;
    *id = (int32_t)d;
    return 1;
}

static int valid_utf8(const char *s) {
    size_t n = strlen(s);
    return sisa_utf8_valid_len(s, n) == n;
}

/* ---- regexes -------------------------------------------------------------------------------- */

/* Hugging Face compiles patterns with Oniguruma, whose \s is Unicode White_Space (U+0085
 * included); PCRE2's \s under UCP is not the same set, so \s and \S are spelled out. */
static char *translate_pattern(const char *p) {
    size_t n = strlen(p);
    char *out = malloc(n * 9 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && (p[i + 1] == 's' || p[i + 1] == 'S')) {
            k += (size_t)sprintf(out + k, "\\%c{White_Space}", p[i + 1] == 's' ? 'p' : 'P');
            i++;
        } else if (p[i] == '\\' && p[i + 1]) {
            out[k++] = p[i++];
            out[k++] = p[i];
        } else {
            out[k++] = p[i];
        }
    }
    out[k] = '\0';
    return out;
}

static sisa_status compile_re(const sisa_tokenizer *t, const char *pattern, int literal,
                              pcre2_code **out) {
    char *src = literal ? NULL : translate_pattern(pattern);
    if (!literal && !src) return FAIL(SISA_OUT_OF_MEMORY, "pattern", t->path);
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);   /* UCP is refused with LITERAL */
    *out = pcre2_compile((PCRE2_SPTR)(literal ? pattern : src), PCRE2_ZERO_TERMINATED, opts, &code,
                         &off, NULL);
    free(src);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return FAIL(SISA_UNSUPPORTED, "pre_tokenizer pattern \"%s\" does not compile (PCRE2: %s)",
                    t->path, pattern, (const char *)msg);
    }
    /* JIT is a speed-up only; the interpreter gives the same matches where it is missing. */
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return SISA_OK;
}

/* ---- model ---------------------------------------------------------------------------------- */

static sisa_status check_bpe_options(sisa_tokenizer *t, const cJSON *model) {
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0.0)
        return FAIL(SISA_UNSUPPORTED, "model.dropout %g is not supported (encoding would be random)",
                    t->path, dropout->valuedouble);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = get_string(model, affixes[i]);
        if (s && *s)
            return FAIL(SISA_UNSUPPORTED, "model.%s \"%s\" is not supported by byte-level BPE",
                        t->path, affixes[i], s);
    }
    if (get_bool(model, "byte_fallback", 0))
        return FAIL(SISA_UNSUPPORTED, "model.byte_fallback is not supported with byte-level BPE",
                    t->path);
    t->fuse_unk = get_bool(model, "fuse_unk", 0);
    t->ignore_merges = get_bool(model, "ignore_merges", 0);
    return SISA_OK;
}

static sisa_status load_vocab(sisa_tokenizer *t, const cJSON *vocab) {
    if (!cJSON_IsObject(vocab)) return FAIL(SISA_BAD_FILE, "model.vocab is missing or not an object", t->path);
    size_t n = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) n++;
    if (sisa_strmap_init(&t->vocab, n + 64) != 0) return FAIL(SISA_OUT_OF_MEMORY, "vocab", t->path);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        if (!is_id(e, &id))
            return FAIL(SISA_BAD_FILE, "model.vocab[\"%s\"] is not a non-negative integer id",
                        t->path, e->string);
        if (!valid_utf8(e->string))
            return FAIL(SISA_BAD_FILE, "model.vocab token with id %d is not valid UTF-8", t->path, id);
        /* Keys must outlive the parsed JSON: they go to the arena. */
        size_t len = strlen(e->string);
        const char *key = tok_arena_strndup(&t->arena, e->string, len);
        if (!key || sisa_strmap_put(&t->vocab, key, len, id) != 0)
            return FAIL(SISA_OUT_OF_MEMORY, "vocab", t->path);
        if (id >= t->n_ids) t->n_ids = id + 1;
    }
    return SISA_OK;
}

static sisa_status merge_parts(sisa_tokenizer *t, const cJSON *m, size_t i, const char **a,
                               const char **b, char *buf, size_t bufsize) {
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *b = m->child->next->valuestring;
        return SISA_OK;
    }
    const char *s = cJSON_IsString(m) ? m->valuestring : NULL;
    const char *sp = s ? strchr(s, ' ') : NULL;
    if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
        return FAIL(SISA_BAD_FILE, "model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", t->path, i);
    size_t la = (size_t)(sp - s);
    if (la + 1 > bufsize) return FAIL(SISA_BAD_FILE, "model.merges[%zu] is too long", t->path, i);
    memcpy(buf, s, la);
    buf[la] = '\0';
    *a = buf;
    *b = sp + 1;
    return SISA_OK;
}

static sisa_status load_merges(sisa_tokenizer *t, const cJSON *merges) {
    if (!cJSON_IsArray(merges)) return FAIL(SISA_BAD_FILE, "model.merges is missing or not an array", t->path);
    if (sisa_pairmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges)) != 0)
        return FAIL(SISA_OUT_OF_MEMORY, "merges", t->path);
    char left[1024], joined[2048];
    size_t i = 0;
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        const char *a = NULL, *b = NULL;
        SISA_TRY(merge_parts(t, m, i, &a, &b, left, sizeof left));
        int32_t ia = sisa_strmap_get(&t->vocab, a, strlen(a));
        int32_t ib = sisa_strmap_get(&t->vocab, b, strlen(b));
        if (ia < 0 || ib < 0)
            return FAIL(SISA_BAD_FILE, "model.merges[%zu] (\"%s\" \"%s\") refers to a token not in the vocab",
                        t->path, i, a, b);
        int nj = snprintf(joined, sizeof joined, "%s%s", a, b);
        if (nj < 0 || (size_t)nj >= sizeof joined)
            return FAIL(SISA_BAD_FILE, "model.merges[%zu] is too long", t->path, i);
        int32_t id = sisa_strmap_get(&t->vocab, joined, (size_t)nj);
        if (id < 0)
            return FAIL(SISA_BAD_FILE, "model.merges[%zu] (\"%s\" \"%s\") makes \"%s\", which is not in the vocab",
                        t->path, i, a, b, joined);
        /* A repeated pair takes its later rank, as a Rust HashMap built from the list does. */
        if (sisa_pairmap_put(&t->merges, ia, ib, (int32_t)i, id) != 0)
            return FAIL(SISA_OUT_OF_MEMORY, "merges", t->path);
    }
    return SISA_OK;
}

static sisa_status load_model(sisa_tokenizer *t, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return FAIL(SISA_BAD_FILE, "no \"model\" object", t->path);
    const char *type = get_string(model, "type");
    if (type && strcmp(type, "BPE") != 0)
        return FAIL(SISA_UNSUPPORTED, "model type \"%s\" is not supported (only BPE)", t->path, type);
    SISA_TRY(check_bpe_options(t, model));
    SISA_TRY(load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab")));
    SISA_TRY(load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges")));
    t->unk_id = -1;
    const char *unk = get_string(model, "unk_token");
    if (unk) {
        t->unk_id = sisa_strmap_get(&t->vocab, unk, strlen(unk));
        if (t->unk_id < 0) return FAIL(SISA_BAD_FILE, "model.unk_token \"%s\" is not in the vocab", t->path, unk);
    }
    return SISA_OK;
}

/* ---- added tokens --------------------------------------------------------------------------- */

static sisa_status parse_added(sisa_tokenizer *t, const cJSON *a, size_t i, sisa_added_token *o) {
    const char *content = get_string(a, "content");
    int32_t id;
    if (!cJSON_IsObject(a) || !content || !is_id(cJSON_GetObjectItemCaseSensitive(a, "id"), &id))
        return FAIL(SISA_BAD_FILE, "added_tokens[%zu] needs a string \"content\" and an integer \"id\"", t->path, i);
    if (!valid_utf8(content))
        return FAIL(SISA_BAD_FILE, "added_tokens[%zu] is not valid UTF-8", t->path, i);
    size_t len = strlen(content);
    /* Hugging Face gives a token already in the model vocab its model id; a file that says
     * otherwise would encode differently here and there, so it is refused. */
    int32_t model_id = sisa_strmap_get(&t->vocab, content, len);
    if (model_id >= 0 && model_id != id)
        return FAIL(SISA_BAD_FILE, "added_tokens[%zu] \"%s\" has id %d but the model vocab says %d",
                    t->path, i, content, id, model_id);
    o->special = (uint8_t)get_bool(a, "special", 0);
    o->normalized = (uint8_t)get_bool(a, "normalized", !o->special);
    o->lstrip = (uint8_t)get_bool(a, "lstrip", 0);
    o->rstrip = (uint8_t)get_bool(a, "rstrip", 0);
    o->single_word = (uint8_t)get_bool(a, "single_word", 0);
    o->id = id;
    o->content = tok_arena_strndup(&t->arena, content, len);
    o->len = (uint32_t)len;
    if (!o->content) return FAIL(SISA_OUT_OF_MEMORY, "added tokens", t->path);
    return SISA_OK;
}

static sisa_status load_added(sisa_tokenizer *t, const cJSON *root) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!list || cJSON_IsNull(list)) return SISA_OK;
    if (!cJSON_IsArray(list)) return FAIL(SISA_BAD_FILE, "added_tokens is not an array", t->path);
    size_t n = (size_t)cJSON_GetArraySize(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return FAIL(SISA_OUT_OF_MEMORY, "added tokens", t->path);
    size_t i = 0;
    for (const cJSON *a = list->child; a; a = a->next, i++) {
        sisa_added_token *o = &t->added[t->n_added];
        SISA_TRY(parse_added(t, a, i, o));
        t->n_added++;
        if (o->id >= t->n_ids) t->n_ids = o->id + 1;
    }
    return SISA_OK;
}

static int by_byte_then_longest(const void *pa, const void *pb) {
    const sisa_added_token *a = *(const sisa_added_token *const *)pa;
    const sisa_added_token *b = *(const sisa_added_token *const *)pb;
    uint8_t ca = (uint8_t)a->content[0], cb = (uint8_t)b->content[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static sisa_status build_added_set(sisa_tokenizer *t, sisa_added_set *set, int normalized) {
    set->tokens = calloc(t->n_added ? t->n_added : 1, sizeof *set->tokens);
    if (!set->tokens) return FAIL(SISA_OUT_OF_MEMORY, "added tokens", t->path);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len && t->added[i].normalized == normalized)
            set->tokens[set->count++] = &t->added[i];
    qsort(set->tokens, set->count, sizeof *set->tokens, by_byte_then_longest);
    size_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < set->count && (uint8_t)set->tokens[k]->content[0] < b) k++;
        set->start[b] = (uint32_t)k;
    }
    return SISA_OK;
}

/* Normalized added tokens are matched against normalized text, so their content is normalized
 * too (NFC leaves every token of GPT-NeoX as it is, but a file may differ). */
static sisa_status normalize_added(sisa_tokenizer *t) {
    for (size_t i = 0; t->nfc && i < t->n_added; i++) {
        sisa_added_token *a = &t->added[i];
        if (!a->normalized) continue;
        char *s;
        size_t n;
        SISA_TRY(sisa_nfc(a->content, a->len, &s, &n));
        a->content = tok_arena_strndup(&t->arena, s, n);
        a->len = (uint32_t)n;
        free(s);
        if (!a->content) return FAIL(SISA_OUT_OF_MEMORY, "added tokens", t->path);
    }
    return SISA_OK;
}

/* ---- normalizer, pre-tokenizer, decoder ----------------------------------------------------- */

static sisa_status load_normalizer(sisa_tokenizer *t, const cJSON *n, int depth) {
    if (!n || cJSON_IsNull(n)) return SISA_OK;
    const char *type = get_string(n, "type");
    if (type && strcmp(type, "NFC") == 0) {
        t->nfc = 1;
        return SISA_OK;
    }
    if (type && strcmp(type, "Sequence") == 0 && depth < 4) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) return FAIL(SISA_BAD_FILE, "normalizer Sequence has no \"normalizers\" array", t->path);
        for (const cJSON *e = list->child; e; e = e->next) SISA_TRY(load_normalizer(t, e, depth + 1));
        return SISA_OK;
    }
    return FAIL(SISA_UNSUPPORTED, "normalizer \"%s\" is not supported (only NFC or none)", t->path,
                type ? type : "(no type)");
}

static sisa_status add_step(sisa_tokenizer *t, sisa_pretok_step **out) {
    if (t->n_steps == SISA_TOK_MAX_STEPS)
        return FAIL(SISA_UNSUPPORTED, "pre_tokenizer has more than %d steps", t->path, SISA_TOK_MAX_STEPS);
    if (t->n_steps && t->steps[t->n_steps - 1].byte_level)
        return FAIL(SISA_UNSUPPORTED, "pre_tokenizer: a step after ByteLevel is not supported", t->path);
    *out = &t->steps[t->n_steps++];
    memset(*out, 0, sizeof **out);
    return SISA_OK;
}

static sisa_status parse_behavior(sisa_tokenizer *t, const char *b, sisa_split_behavior *out) {
    static const struct { const char *name; sisa_split_behavior v; } names[] = {
        {"Isolated", SISA_SPLIT_ISOLATED},          {"Removed", SISA_SPLIT_REMOVED},
        {"MergedWithPrevious", SISA_SPLIT_MERGED_PREV}, {"MergedWithNext", SISA_SPLIT_MERGED_NEXT},
        {"Contiguous", SISA_SPLIT_CONTIGUOUS},
    };
    for (size_t i = 0; b && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(b, names[i].name) == 0) {
            *out = names[i].v;
            return SISA_OK;
        }
    return FAIL(SISA_UNSUPPORTED, "pre_tokenizer Split behavior \"%s\" is not supported", t->path,
                b ? b : "(missing)");
}

static sisa_status load_split(sisa_tokenizer *t, const cJSON *p) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const char *re = get_string(pat, "Regex"), *lit = get_string(pat, "String");
    if (!re && !lit) return FAIL(SISA_BAD_FILE, "pre_tokenizer Split needs pattern {\"Regex\": ...} or {\"String\": ...}", t->path);
    sisa_pretok_step *s = NULL;
    SISA_TRY(add_step(t, &s));
    SISA_TRY(parse_behavior(t, get_string(p, "behavior"), &s->behavior));
    s->invert = get_bool(p, "invert", 0);
    return compile_re(t, re ? re : lit, re == NULL, &s->re);
}

static sisa_status load_pretok(sisa_tokenizer *t, const cJSON *p, int depth) {
    const char *type = get_string(p, "type");
    sisa_pretok_step *s = NULL;
    if (type && strcmp(type, "ByteLevel") == 0) {
        SISA_TRY(add_step(t, &s));
        s->byte_level = 1;
        /* Hugging Face's defaults when a field is absent. */
        s->prefix_space = get_bool(p, "add_prefix_space", 1);
        s->behavior = SISA_SPLIT_ISOLATED;
        return get_bool(p, "use_regex", 1) ? compile_re(t, gpt2_pattern, 0, &s->re) : SISA_OK;
    }
    if (type && strcmp(type, "Split") == 0) return load_split(t, p);
    if (type && strcmp(type, "Digits") == 0) {
        SISA_TRY(add_step(t, &s));
        s->behavior = get_bool(p, "individual_digits", 0) ? SISA_SPLIT_ISOLATED : SISA_SPLIT_CONTIGUOUS;
        return compile_re(t, "\\p{N}", 0, &s->re);
    }
    if (type && strcmp(type, "Sequence") == 0 && depth < 4) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list)) return FAIL(SISA_BAD_FILE, "pre_tokenizer Sequence has no \"pretokenizers\" array", t->path);
        for (const cJSON *e = list->child; e; e = e->next) SISA_TRY(load_pretok(t, e, depth + 1));
        return SISA_OK;
    }
    return FAIL(SISA_UNSUPPORTED, "pre_tokenizer \"%s\" is not supported (ByteLevel, Split, Digits, Sequence)",
                t->path, type ? type : "(no type)");
}

static sisa_status load_pretokenizer(sisa_tokenizer *t, const cJSON *root) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (p && !cJSON_IsNull(p)) SISA_TRY(load_pretok(t, p, 0));
    if (t->n_steps == 0 || !t->steps[t->n_steps - 1].byte_level)
        return FAIL(SISA_UNSUPPORTED, "pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)",
                    t->path);
    return SISA_OK;
}

static sisa_status check_decoder(sisa_tokenizer *t, const cJSON *d, int depth) {
    if (!d || cJSON_IsNull(d)) return SISA_OK;
    const char *type = get_string(d, "type");
    if (type && strcmp(type, "ByteLevel") == 0) return SISA_OK;
    if (type && strcmp(type, "Sequence") == 0 && depth < 4) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        for (const cJSON *e = cJSON_IsArray(list) ? list->child : NULL; e; e = e->next)
            SISA_TRY(check_decoder(t, e, depth + 1));
        return SISA_OK;
    }
    return FAIL(SISA_UNSUPPORTED, "decoder \"%s\" is not supported (only ByteLevel)", t->path,
                type ? type : "(no type)");
}

/* ---- id table ------------------------------------------------------------------------------- */

/* What decode emits for a token: its byte-level characters mapped back to bytes, or — for a
 * token that is not written in that alphabet, like some special tokens — its own UTF-8, which
 * is what Hugging Face's ByteLevel decoder does. *byte_level tells which. */
static const char *token_bytes(sisa_tokenizer *t, const char *s, size_t n, uint32_t *out_len,
                               int *byte_level) {
    char *b = tok_arena_alloc(&t->arena, n + 1);
    if (!b) return NULL;
    size_t k = 0;
    *byte_level = 1;
    for (size_t i = 0; i < n;) {
        int len, byte = sisa_char_to_byte(sisa_utf8_decode(s + i, n - i, &len));
        if (byte < 0) {
            memcpy(b, s, n);
            *out_len = (uint32_t)n;
            *byte_level = 0;
            return b;
        }
        b[k++] = (char)byte;
        i += (size_t)len;
    }
    *out_len = (uint32_t)k;
    return b;
}

/* s must live in the arena. */
static sisa_status set_entry(sisa_tokenizer *t, const char *s, size_t n, int32_t id, int from_model) {
    sisa_tok_entry *e = &t->tokens[id];
    if (from_model && e->str)
        return FAIL(SISA_BAD_FILE, "model.vocab gives id %d to both \"%s\" and \"%s\"", t->path, id, e->str, s);
    int byte_level;
    e->str = s;
    e->str_len = (uint32_t)n;
    e->bytes = token_bytes(t, s, n, &e->bytes_len, &byte_level);
    if (!e->bytes) return FAIL(SISA_OUT_OF_MEMORY, "token table", t->path);
    /* ignore_merges looks a whole pre-token up among the model's tokens; only tokens written in
     * the byte-level alphabet can ever equal one. */
    if (from_model && t->ignore_merges && byte_level &&
        sisa_strmap_put(&t->model_bytes, e->bytes, e->bytes_len, id) != 0)
        return FAIL(SISA_OUT_OF_MEMORY, "token table", t->path);
    return SISA_OK;
}

static sisa_status build_id_table(sisa_tokenizer *t) {
    t->tokens = calloc((size_t)t->n_ids + 1, sizeof *t->tokens);
    if (!t->tokens) return FAIL(SISA_OUT_OF_MEMORY, "token table of %d ids", t->path, t->n_ids);
    if (t->ignore_merges && sisa_strmap_init(&t->model_bytes, t->vocab.count) != 0)
        return FAIL(SISA_OUT_OF_MEMORY, "token table", t->path);
    /* The map holds the model vocab only until the added tokens go in below. */
    for (size_t i = 0; i < t->vocab.cap; i++) {
        const sisa_strmap_slot *sl = &t->vocab.slots[i];
        if (sl->key) SISA_TRY(set_entry(t, sl->key, sl->len, sl->value, 1));
    }
    for (int b = 0; b < 256; b++) {
        char c[4];
        int n = sisa_utf8_encode(sisa_byte_to_char((uint8_t)b), c);
        t->byte_id[b] = sisa_strmap_get(&t->vocab, c, (size_t)n);
    }
    for (size_t i = 0; i < t->n_added; i++) {
        const sisa_added_token *a = &t->added[i];
        const sisa_tok_entry *e = &t->tokens[a->id];
        if (e->str && (e->str_len != a->len || memcmp(e->str, a->content, a->len) != 0))
            return FAIL(SISA_BAD_FILE, "added_tokens[%zu] \"%s\" has id %d, which the model vocab gives to \"%s\"",
                        t->path, i, a->content, a->id, e->str);
        /* a->content is still the file's text here: normalize_added runs later. */
        SISA_TRY(set_entry(t, a->content, a->len, a->id, 0));
        if (sisa_strmap_put(&t->vocab, a->content, a->len, a->id) != 0)
            return FAIL(SISA_OUT_OF_MEMORY, "vocab", t->path);
    }
    return SISA_OK;
}

/* Helpers for added-token flags: one character of \w (as Rust's regex defines it) or of \s. */
static sisa_status compile_flag_res(sisa_tokenizer *t) {
    SISA_TRY(compile_re(t, "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", 0, &t->re_word));
    return compile_re(t, "\\s", 0, &t->re_space);
}

sisa_status sisa_tok_parse(sisa_tokenizer *t, const char *json, size_t len) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : len;
        return FAIL(SISA_BAD_FILE, "invalid or truncated JSON near byte %zu of %zu", t->path, off, len);
    }
    sisa_status st = SISA_OK;
    if (!cJSON_IsObject(root)) st = FAIL(SISA_BAD_FILE, "top level is not a JSON object", t->path);
    if (st == SISA_OK) st = load_model(t, root);
    if (st == SISA_OK) st = load_added(t, root);
    if (st == SISA_OK) st = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0);
    if (st == SISA_OK) st = load_pretokenizer(t, root);
    if (st == SISA_OK) st = check_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0);
    if (st == SISA_OK) st = build_id_table(t);
    if (st == SISA_OK) st = normalize_added(t);
    if (st == SISA_OK) st = build_added_set(t, &t->added_raw, 0);
    if (st == SISA_OK) st = build_added_set(t, &t->added_norm, 1);
    if (st == SISA_OK) st = compile_flag_res(t);
    cJSON_Delete(root);
    return st;
}
