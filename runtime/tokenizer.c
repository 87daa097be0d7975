/*
 * tokenizer.c — the public tokenizer API (sisa.h): load a Hugging Face tokenizer.json, encode
 * UTF-8 text to ids and decode ids to bytes, plus the UTF-8 helpers.
 *
 * Encoding follows Hugging Face's pipeline so that ids match theirs exactly:
 *   1. added tokens whose "normalized" is false are cut out of the raw text (leftmost-longest);
 *   2. each remaining segment is normalized (NFC or nothing), then added tokens whose
 *      "normalized" is true are cut out of it;
 *   3. what remains goes through the pre-tokenizer steps (Split regexes, then ByteLevel with its
 *      optional prefix space and GPT-2 split);
 *   4. each pre-token is BPE-merged over its bytes (tokenizer_bpe.c).
 * Regex splits run on one segment at a time, as theirs do, so a look-ahead never sees past an
 * added token. Input must be valid UTF-8 (as a Rust &str is); invalid input is refused with the
 * offset of the first bad byte rather than encoded some way the reference cannot reproduce.
 */
#include "tokenizer.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sisa_free(void *p) { free(p); }

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Expected length of a sequence led by b (0: not a lead byte), and the allowed range of its
 * second byte, which is where overlong forms, surrogates and > U+10FFFF are excluded. */
static int utf8_lead(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b < 0xF5) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* Bytes of s[0..n) that form a valid (possibly incomplete, when n is short) sequence start. */
static int utf8_prefix_ok(const uint8_t *s, size_t n, int len, uint8_t lo, uint8_t hi) {
    for (size_t k = 1; k < n && k < (size_t)len; k++) {
        uint8_t c = s[k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return 0;
    }
    return 1;
}

size_t sisa_utf8_valid_len(const char *str, size_t n) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint8_t lo, hi;
        int len = utf8_lead(s[i], &lo, &hi);
        if (len == 0 || n - i < (size_t)len || !utf8_prefix_ok(s + i, (size_t)len, len, lo, hi))
            return i;
        i += (size_t)len;
    }
    return n;
}

size_t sisa_utf8_complete_len(const char *bytes, size_t n) {
    const uint8_t *s = (const uint8_t *)bytes;
    /* Only the last lead byte can start an incomplete sequence; it is at most 3 bytes back. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t b = s[n - back];
        if (b >= 0x80 && b < 0xC0) continue;
        uint8_t lo, hi;
        int len = utf8_lead(b, &lo, &hi);
        if (len > 1 && back < (size_t)len && utf8_prefix_ok(s + n - back, back, len, lo, hi))
            return n - back;
        return n;
    }
    return n;
}

uint32_t sisa_utf8_decode(const char *str, size_t n, int *len) {
    const uint8_t *s = (const uint8_t *)str;
    uint8_t lo, hi;
    int l = utf8_lead(s[0], &lo, &hi);
    if (l == 0 || (size_t)l > n) {
        *len = 1;
        return 0xFFFD;
    }
    *len = l;
    if (l == 1) return s[0];
    uint32_t cp = s[0] & (0x7F >> l);
    for (int k = 1; k < l; k++) cp = cp << 6 | (s[k] & 0x3F);
    return cp;
}

int sisa_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- load / free ---------------------------------------------------------------------------- */

static sisa_status read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return sisa_err(SISA_BAD_FILE, "tokenizer %s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer %s: reading the file", path);
    if (err) {
        free(buf);
        return sisa_err(SISA_BAD_FILE, "tokenizer %s: read error", path);
    }
    *out = buf;
    *len = n;
    return SISA_OK;
}

void sisa_tokenizer_free(sisa_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].re);
    pcre2_code_free(t->re_word);
    pcre2_code_free(t->re_space);
    free(t->added_raw.tokens);
    free(t->added_norm.tokens);
    free(t->added);
    free(t->tokens);
    sisa_strmap_free(&t->vocab);
    sisa_strmap_free(&t->model_bytes);
    sisa_pairmap_free(&t->merges);
    tok_arena_free(&t->arena);
    free(t->path);
    free(t);
}

sisa_status sisa_tokenizer_load(const char *path, sisa_tokenizer **out) {
    if (!path || !out) return sisa_err(SISA_INVALID_ARG, "sisa_tokenizer_load: NULL argument");
    *out = NULL;
    sisa_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer %s: allocating", path);
    }
    t->unk_id = -1;
    char *json = NULL;
    size_t len = 0;
    sisa_status st = read_file(path, &json, &len);
    if (st == SISA_OK) {
        st = sisa_tok_parse(t, json, len);
        free(json);
    }
    if (st != SISA_OK) {
        sisa_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SISA_OK;
}

int64_t sisa_tokenizer_vocab_size(const sisa_tokenizer *t) { return t ? t->n_ids : 0; }

int32_t sisa_tokenizer_token_id(const sisa_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    return sisa_strmap_get(&t->vocab, token, strlen(token));
}

/* ---- encode --------------------------------------------------------------------------------- */

typedef struct split_event {
    size_t start, end;
    int is_match;
} split_event;

typedef struct event_vec {
    split_event *v;
    size_t n, cap;
} event_vec;

typedef struct enc_state {
    const sisa_tokenizer *t;
    sisa_idvec ids;
    sisa_bpe_scratch *bpe;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    pcre2_match_data *md[SISA_TOK_MAX_STEPS];
    pcre2_match_data *md_flag;
    event_vec ev[SISA_TOK_MAX_STEPS];
    char *pfx[SISA_TOK_MAX_STEPS];   /* " " + piece, for prefix_space */
    size_t pfx_cap[SISA_TOK_MAX_STEPS];
} enc_state;

static sisa_status oom(const enc_state *st) {
    return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer %s: encoding", st->t->path);
}

static int ev_push(event_vec *e, size_t start, size_t end, int is_match) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 256;
        split_event *p = realloc(e->v, cap * sizeof *p);
        if (!p) return -1;
        e->v = p;
        e->cap = cap;
    }
    e->v[e->n++] = (split_event){start, end, is_match};
    return 0;
}

static sisa_status regex_failed(const enc_state *st, int rc) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return sisa_err(SISA_INTERNAL, "tokenizer %s: pre-tokenizer regex failed: %s", st->t->path,
                    (const char *)msg);
}

/* Matches of re in s as (gap, match) events, iterated the way Rust's onig crate does: an empty
 * match right where the previous match ended is skipped by advancing one character. */
static sisa_status find_events(enc_state *st, int step, const char *s, size_t n, event_vec *e) {
    const sisa_pretok_step *ps = &st->t->steps[step];
    if (!st->md[step] && !(st->md[step] = pcre2_match_data_create_from_pattern(ps->re, NULL)))
        return oom(st);
    size_t pos = 0, prev = 0, last_match_end = (size_t)-1;
    while (pos <= n) {
        int rc = pcre2_match(ps->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, st->md[step], st->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return regex_failed(st, rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md[step]);
        size_t ms = ov[0], me = ov[1];
        if (ms == me && me == last_match_end) {
            if (pos >= n) break;
            int len;
            sisa_utf8_decode(s + pos, n - pos, &len);
            pos += (size_t)len;
            continue;
        }
        if (prev != ms && ev_push(e, prev, ms, 0) != 0) return oom(st);
        if (ev_push(e, ms, me, 1) != 0) return oom(st);
        prev = pos = last_match_end = me;
    }
    if (prev != n && ev_push(e, prev, n, 0) != 0) return oom(st);
    if (ps->invert)
        for (size_t i = 0; i < e->n; i++) e->v[i].is_match = !e->v[i].is_match;
    return SISA_OK;
}

/* Rewrites the events in place into the pieces to keep, following the Split behavior; a piece
 * to drop gets is_match = 2. */
static void apply_behavior(sisa_split_behavior b, event_vec *e) {
    size_t k = 0;
    int prev_match = 0;
    switch (b) {
    case SISA_SPLIT_ISOLATED:
        for (size_t i = 0; i < e->n; i++) e->v[i].is_match = 0;
        return;
    case SISA_SPLIT_REMOVED:
        for (size_t i = 0; i < e->n; i++) e->v[i].is_match = e->v[i].is_match ? 2 : 0;
        return;
    case SISA_SPLIT_CONTIGUOUS:
    case SISA_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < e->n; i++) {
            split_event cur = e->v[i];
            int join = b == SISA_SPLIT_CONTIGUOUS ? cur.is_match == prev_match
                                                  : cur.is_match && !prev_match;
            if (join && k > 0) e->v[k - 1].end = cur.end;
            else e->v[k++] = cur;
            prev_match = cur.is_match;
        }
        break;
    case SISA_SPLIT_MERGED_NEXT:
        /* Walk from the right, joining a match to the piece after it, then slide to the front. */
        k = e->n;
        for (size_t i = e->n; i-- > 0;) {
            split_event cur = e->v[i];
            if (cur.is_match && !prev_match && k < e->n) e->v[k].start = cur.start;
            else e->v[--k] = cur;
            prev_match = cur.is_match;
        }
        memmove(e->v, e->v + k, (e->n - k) * sizeof *e->v);
        k = e->n - k;
        break;
    }
    e->n = k;
    for (size_t i = 0; i < k; i++) e->v[i].is_match = 0;
}

static sisa_status pretokenize(enc_state *st, int step, const char *s, size_t n);

static const char *with_prefix_space(enc_state *st, int step, const char *s, size_t *n) {
    if (st->pfx_cap[step] < *n + 1) {
        size_t cap = (*n + 1) * 2;
        char *p = realloc(st->pfx[step], cap);
        if (!p) return NULL;
        st->pfx[step] = p;
        st->pfx_cap[step] = cap;
    }
    st->pfx[step][0] = ' ';
    memcpy(st->pfx[step] + 1, s, *n);
    (*n)++;
    return st->pfx[step];
}

static sisa_status pretokenize(enc_state *st, int step, const char *s, size_t n) {
    const sisa_tokenizer *t = st->t;
    if (n == 0) return SISA_OK;   /* empty pieces are dropped, as Hugging Face does */
    if (step == t->n_steps)
        return sisa_bpe_word(t, st->bpe, s, n, &st->ids) == 0 ? SISA_OK : oom(st);
    const sisa_pretok_step *ps = &t->steps[step];
    if (ps->prefix_space && s[0] != ' ' && !(s = with_prefix_space(st, step, s, &n))) return oom(st);
    if (!ps->re) return pretokenize(st, step + 1, s, n);
    event_vec *e = &st->ev[step];
    e->n = 0;
    SISA_TRY(find_events(st, step, s, n, e));
    apply_behavior(ps->behavior, e);
    /* Deeper steps use their own event vectors, so e stays intact across the calls. */
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].is_match != 2)
            SISA_TRY(pretokenize(st, step + 1, s + e->v[i].start, e->v[i].end - e->v[i].start));
    return SISA_OK;
}

/* ---- added tokens --------------------------------------------------------------------------- */

static int char_is(enc_state *st, const pcre2_code *re, const char *c, size_t n) {
    if (n == 0) return 0;
    int len;
    sisa_utf8_decode(c, n, &len);
    int rc = pcre2_match(re, (PCRE2_SPTR)c, (size_t)len, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                         st->md_flag, NULL);
    return rc > 0;
}

static size_t prev_char(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

/* Leftmost-longest match of an added token at or after pos; returns the token or NULL. */
static const sisa_added_token *next_added(const sisa_added_set *set, const char *s, size_t n,
                                          size_t pos, size_t *at) {
    for (size_t i = pos; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        for (uint32_t k = set->start[b]; k < set->start[b + 1]; k++) {
            const sisa_added_token *a = set->tokens[k];
            if (a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) {
                *at = i;
                return a;
            }
        }
    }
    return NULL;
}

/* Where a matched added token's span really is, after single_word / lstrip / rstrip; returns 0
 * when single_word rejects the match. */
static int added_span(enc_state *st, const sisa_added_token *a, const char *s, size_t n,
                      size_t done, size_t *start, size_t *stop) {
    const sisa_tokenizer *t = st->t;
    if (a->single_word) {
        int word_before = *start > 0 && char_is(st, t->re_word, s + prev_char(s, *start), n);
        int word_after = *stop < n && char_is(st, t->re_word, s + *stop, n - *stop);
        if (word_before || word_after) return 0;
    }
    if (a->lstrip) {
        size_t i = *start;
        while (i > done && char_is(st, t->re_space, s + prev_char(s, i), n)) i = prev_char(s, i);
        *start = i;
    }
    if (a->rstrip)
        while (*stop < n && char_is(st, t->re_space, s + *stop, n - *stop)) {
            int len;
            sisa_utf8_decode(s + *stop, n - *stop, &len);
            *stop += (size_t)len;
        }
    return 1;
}

typedef sisa_status (*segment_fn)(enc_state *st, const char *s, size_t n);

/* Cut the tokens of set out of s: their ids go out directly, the text between them to next.
 * The search resumes after each match as found (before rstrip), like Aho-Corasick's iterator;
 * a match that would overlap text already consumed by rstrip is skipped. */
static sisa_status split_added(enc_state *st, const sisa_added_set *set, const char *s, size_t n,
                               segment_fn next) {
    size_t done = 0, pos = 0, at;
    const sisa_added_token *a;
    while (set->count && (a = next_added(set, s, n, pos, &at)) != NULL) {
        size_t start = at, stop = at + a->len;
        pos = stop;
        if (start < done || !added_span(st, a, s, n, done, &start, &stop)) continue;
        SISA_TRY(next(st, s + done, start - done));
        if (sisa_idvec_push(&st->ids, a->id) != 0) return oom(st);
        done = stop;
    }
    return next(st, s + done, n - done);
}

static sisa_status pretokenize_segment(enc_state *st, const char *s, size_t n) {
    return pretokenize(st, 0, s, n);
}

static sisa_status normalize_segment(enc_state *st, const char *s, size_t n) {
    if (n == 0) return SISA_OK;
    if (!st->t->nfc) return split_added(st, &st->t->added_norm, s, n, pretokenize_segment);
    char *norm;
    size_t nn;
    SISA_TRY(sisa_nfc(s, n, &norm, &nn));
    sisa_status r = split_added(st, &st->t->added_norm, norm, nn, pretokenize_segment);
    free(norm);
    return r;
}

static sisa_status enc_state_init(enc_state *st, const sisa_tokenizer *t) {
    memset(st, 0, sizeof *st);
    st->t = t;
    st->bpe = sisa_bpe_scratch_new();
    st->mctx = pcre2_match_context_create(NULL);
    st->jit = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    st->md_flag = pcre2_match_data_create(4, NULL);
    if (!st->bpe || !st->mctx || !st->jit || !st->md_flag) return oom(st);
    pcre2_jit_stack_assign(st->mctx, NULL, st->jit);
    return SISA_OK;
}

static void enc_state_free(enc_state *st) {
    sisa_bpe_scratch_free(st->bpe);
    pcre2_match_context_free(st->mctx);
    pcre2_jit_stack_free(st->jit);
    pcre2_match_data_free(st->md_flag);
    for (int i = 0; i < SISA_TOK_MAX_STEPS; i++) {
        pcre2_match_data_free(st->md[i]);
        free(st->ev[i].v);
        free(st->pfx[i]);
    }
    free(st->ids.v);
}

sisa_status sisa_tokenizer_encode(const sisa_tokenizer *t, const char *text, size_t len,
                                  int32_t **ids, size_t *n_ids) {
    if (!t || !ids || !n_ids || (!text && len))
        return sisa_err(SISA_INVALID_ARG, "sisa_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    size_t valid = sisa_utf8_valid_len(text, len);
    if (valid != len)
        return sisa_err(SISA_INVALID_ARG, "tokenizer %s: input is not valid UTF-8 (byte 0x%02X at offset %zu of %zu)",
                        t->path, (uint8_t)text[valid], valid, len);
    enc_state st;
    sisa_status r = enc_state_init(&st, t);
    if (r == SISA_OK && len) r = split_added(&st, &t->added_raw, text, len, normalize_segment);
    /* Never hand back NULL on success, so callers can tell "no ids" from "no allocation". */
    if (r == SISA_OK && !st.ids.v && sisa_idvec_push(&st.ids, 0) == 0) st.ids.n = 0;
    if (r == SISA_OK && !st.ids.v) r = oom(&st);
    if (r == SISA_OK) {
        *ids = st.ids.v;
        *n_ids = st.ids.n;
        st.ids.v = NULL;
    }
    enc_state_free(&st);
    return r;
}

/* ---- decode --------------------------------------------------------------------------------- */

sisa_status sisa_tokenizer_decode(const sisa_tokenizer *t, const int32_t *ids, size_t n_ids,
                                  char **text, size_t *len) {
    if (!t || !text || !len || (!ids && n_ids))
        return sisa_err(SISA_INVALID_ARG, "sisa_tokenizer_decode: NULL argument");
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids)
            return sisa_err(SISA_INVALID_ARG, "tokenizer %s: id %d at position %zu is outside the vocabulary [0, %d)",
                            t->path, ids[i], i, t->n_ids);
        total += t->tokens[ids[i]].bytes_len;   /* an id no token has adds nothing */
    }
    char *out = malloc(total + 1);
    if (!out) return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer %s: decoding %zu ids", t->path, n_ids);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const sisa_tok_entry *e = &t->tokens[ids[i]];
        if (e->bytes_len) memcpy(out + k, e->bytes, e->bytes_len);
        k += e->bytes_len;
    }
    out[k] = '\0';
    *text = out;
    *len = k;
    return SISA_OK;
}
