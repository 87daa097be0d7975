/*
 * tokenizer_nfc.c — Unicode Normalization Form C, for tokenizer.json files whose normalizer is
 * NFC (GPT-NeoX-20B and Pythia).
 *
 * The library carries its own small implementation (tables generated into tokenizer_nfc_data.c)
 * rather than depending on ICU. The algorithm is UAX #15's: full canonical decomposition,
 * canonical ordering of combining marks, then canonical composition. Text that is all ASCII,
 * by far the common case, is copied unchanged.
 */
#include "tokenizer.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

enum {
    HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
    HANGUL_LN = 19, HANGUL_VN = 21, HANGUL_TN = 28, HANGUL_NN = HANGUL_VN * HANGUL_TN,
    HANGUL_SN = HANGUL_LN * HANGUL_NN,
};

static uint32_t ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = sisa_nfc_ccc_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < sisa_nfc_ccc[mid].first) hi = mid;
        else if (cp > sisa_nfc_ccc[mid].last) lo = mid + 1;
        else return sisa_nfc_ccc[mid].ccc;
    }
    return 0;
}

static const sisa_nfc_decomp *decomp_of(uint32_t cp) {
    if (cp < 0xC0) return NULL;
    size_t lo = 0, hi = sisa_nfc_decomp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < sisa_nfc_decomps[mid].cp) hi = mid;
        else if (cp > sisa_nfc_decomps[mid].cp) lo = mid + 1;
        else return &sisa_nfc_decomps[mid];
    }
    return NULL;
}

/* Primary composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LN && b >= HANGUL_V && b < HANGUL_V + HANGUL_VN)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VN + (b - HANGUL_V)) * HANGUL_TN;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SN && (a - HANGUL_S) % HANGUL_TN == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_TN)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = sisa_nfc_comp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const sisa_nfc_comp *c = &sisa_nfc_comps[mid];
        if (a < c->a || (a == c->a && b < c->b)) hi = mid;
        else if (a > c->a || b > c->b) lo = mid + 1;
        else return c->cp;
    }
    return 0;
}

typedef struct cpbuf {
    uint32_t *v;
    size_t n, cap;
} cpbuf;

static int cp_push(cpbuf *b, uint32_t cp) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        uint32_t *p = realloc(b->v, cap * sizeof *p);
        if (!p) return -1;
        b->v = p;
        b->cap = cap;
    }
    b->v[b->n++] = cp;
    return 0;
}

/* Full canonical decomposition; canonical mappings nest only a few levels deep. */
static int decompose(cpbuf *b, uint32_t cp) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SN) {
        uint32_t s = cp - HANGUL_S, t = s % HANGUL_TN;
        if (cp_push(b, HANGUL_L + s / HANGUL_NN) || cp_push(b, HANGUL_V + (s % HANGUL_NN) / HANGUL_TN))
            return -1;
        return t ? cp_push(b, HANGUL_T + t) : 0;
    }
    const sisa_nfc_decomp *d = decomp_of(cp);
    if (!d) return cp_push(b, cp);
    if (decompose(b, d->a) != 0) return -1;
    return d->b ? decompose(b, d->b) : 0;
}

/* Stable sort of each run of non-starters by combining class (runs are short: insertion). */
static void canonical_order(uint32_t *v, size_t n) {
    for (size_t i = 1; i < n; i++) {
        uint32_t c = ccc_of(v[i]);
        if (c == 0) continue;
        size_t j = i;
        uint32_t x = v[i];
        while (j > 0) {
            uint32_t pc = ccc_of(v[j - 1]);
            if (pc <= c) break;
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* Canonical composition in place; returns the new length. A mark composes with the last
 * starter unless something between them blocks it (a starter, or a mark of class >= its own). */
static size_t canonical_compose(uint32_t *v, size_t n) {
    if (n == 0) return 0;
    size_t starter = 0, out = 1;
    uint32_t last_class = ccc_of(v[0]) ? 256 : 0;
    int have_starter = last_class == 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t ch = v[i], cls = ccc_of(ch);
        uint32_t comp = have_starter ? compose(v[starter], ch) : 0;
        if (comp && (last_class < cls || last_class == 0)) {
            v[starter] = comp;
            continue;
        }
        if (cls == 0) {
            starter = out;
            have_starter = 1;
        }
        last_class = cls;
        v[out++] = ch;
    }
    return out;
}

sisa_status sisa_nfc(const char *s, size_t n, char **out, size_t *out_len) {
    size_t i = 0;
    while (i < n && (uint8_t)s[i] < 0x80) i++;
    if (i == n) {
        *out = malloc(n + 1);
        if (!*out) return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer: NFC of %zu bytes", n);
        memcpy(*out, s, n);
        (*out)[n] = '\0';
        *out_len = n;
        return SISA_OK;
    }
    cpbuf b = {0};
    for (i = 0; i < n;) {
        int len;
        uint32_t cp = sisa_utf8_decode(s + i, n - i, &len);
        i += (size_t)len;
        if (decompose(&b, cp) != 0) {
            free(b.v);
            return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer: NFC of %zu bytes", n);
        }
    }
    canonical_order(b.v, b.n);
    size_t m = canonical_compose(b.v, b.n);
    char *o = malloc(m * 4 + 1);
    if (!o) {
        free(b.v);
        return sisa_err(SISA_OUT_OF_MEMORY, "tokenizer: NFC of %zu bytes", n);
    }
    size_t k = 0;
    for (size_t j = 0; j < m; j++) k += (size_t)sisa_utf8_encode(b.v[j], o + k);
    o[k] = '\0';
    free(b.v);
    *out = o;
    *out_len = k;
    return SISA_OK;
}
