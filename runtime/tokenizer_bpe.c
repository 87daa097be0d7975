/*
 * tokenizer_bpe.c — the BPE model of the tokenizer: hash maps, the byte-level alphabet and the
 * merge loop for one pre-token.
 *
 * The merge loop reproduces Hugging Face's (tokenizers/src/models/bpe/word.rs, read as a
 * specification): a priority queue of candidate pairs ordered by (merge rank, position), where a
 * popped entry is applied only if the pair now at that position still yields the same token.
 * Applying all occurrences of the best pair at once (the GPT-2 reference code) gives the same
 * result for well-formed vocabularies but not for every file, and the queue is O(n log n) on
 * long pre-tokens (a paragraph of CJK is one pre-token), where rescanning would be quadratic.
 * A per-call cache keeps repeated words from being merged again.
 */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------------------------- */

struct tok_arena_block {
    tok_arena_block *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

void *tok_arena_alloc(tok_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    tok_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *tok_arena_strndup(tok_arena *a, const char *s, size_t n) {
    char *p = tok_arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void tok_arena_free(tok_arena *a) {
    tok_arena_block *b = a->head;
    while (b) {
        tok_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- hash maps: open addressing, linear probing, load <= 1/2 ------------------------------- */

uint32_t sisa_tok_hash(const char *s, size_t n) {
    /* FNV-1a: token strings are short, so a simple byte hash is as fast as anything. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static size_t table_cap(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    return cap;
}

int sisa_strmap_init(sisa_strmap *m, size_t expected) {
    m->cap = table_cap(expected);
    m->count = 0;
    m->slots = calloc(m->cap, sizeof *m->slots);
    return m->slots ? 0 : -1;
}

void sisa_strmap_free(sisa_strmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static sisa_strmap_slot *strmap_find(const sisa_strmap *m, const char *key, size_t len,
                                     uint32_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        sisa_strmap_slot *s = &m->slots[i];
        if (!s->key) return s;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static int strmap_grow(sisa_strmap *m) {
    sisa_strmap bigger = {calloc(m->cap * 2, sizeof *m->slots), m->cap * 2, m->count};
    if (!bigger.slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        const sisa_strmap_slot *s = &m->slots[i];
        if (s->key) *strmap_find(&bigger, s->key, s->len, s->hash) = *s;
    }
    free(m->slots);
    *m = bigger;
    return 0;
}

int sisa_strmap_put(sisa_strmap *m, const char *key, size_t len, int32_t value) {
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) != 0) return -1;
    uint32_t h = sisa_tok_hash(key, len);
    sisa_strmap_slot *s = strmap_find(m, key, len, h);
    if (!s->key) {
        s->key = key;
        s->len = (uint32_t)len;
        s->hash = h;
        m->count++;
    }
    s->value = value;
    return 0;
}

int32_t sisa_strmap_get(const sisa_strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    const sisa_strmap_slot *s = strmap_find(m, key, len, sisa_tok_hash(key, len));
    return s->key ? s->value : -1;
}

#define PAIR_EMPTY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static size_t pair_slot(uint64_t key, size_t mask) {
    /* Fibonacci-style mixing: ids are small and dense, so the raw key would cluster. */
    uint64_t x = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29)) & mask;
}

int sisa_pairmap_init(sisa_pairmap *m, size_t expected) {
    m->cap = table_cap(expected);
    m->count = 0;
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = PAIR_EMPTY;
    return 0;
}

void sisa_pairmap_free(sisa_pairmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

int sisa_pairmap_put(sisa_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->cap) {
        sisa_pairmap bigger;
        if (sisa_pairmap_init(&bigger, m->cap) != 0) return -1;
        for (size_t i = 0; i < m->cap; i++) {
            const sisa_pairmap_slot *s = &m->slots[i];
            if (s->key == PAIR_EMPTY) continue;
            size_t mask = bigger.cap - 1, j = pair_slot(s->key, mask);
            while (bigger.slots[j].key != PAIR_EMPTY) j = (j + 1) & mask;
            bigger.slots[j] = *s;
        }
        bigger.count = m->count;
        free(m->slots);
        *m = bigger;
    }
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1, j = pair_slot(key, mask);
    while (m->slots[j].key != PAIR_EMPTY && m->slots[j].key != key) j = (j + 1) & mask;
    if (m->slots[j].key == PAIR_EMPTY) m->count++;
    m->slots[j] = (sisa_pairmap_slot){key, rank, id};
    return 0;
}

int sisa_pairmap_get(const sisa_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!m->slots) return 0;
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t j = pair_slot(key, mask);; j = (j + 1) & mask) {
        const sisa_pairmap_slot *s = &m->slots[j];
        if (s->key == PAIR_EMPTY) return 0;
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return 1;
        }
    }
}

/* ---- GPT-2's byte-level alphabet ------------------------------------------------------------ */

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes are given the code points
 * from U+0100 on, in byte order, so that every byte has a visible, non-space character. */
static int byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t sisa_byte_to_char(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++) n += !byte_is_printable(x);
    return 256 + n;
}

int sisa_char_to_byte(uint32_t c) {
    if (c < 256) return byte_is_printable(c) ? (int)c : -1;
    if (c >= 256 + 68) return -1;
    uint32_t n = c - 256;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_is_printable(x) && n-- == 0) return (int)x;
    return -1;
}

/* ---- id vectors ----------------------------------------------------------------------------- */

int sisa_idvec_push(sisa_idvec *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

/* ---- the merge loop ------------------------------------------------------------------------- */

typedef struct symbol {
    int32_t id;
    int32_t prev, next;   /* neighbours in the word, -1 at the ends */
    uint32_t len;         /* bytes covered; 0 once merged into its left neighbour */
} symbol;

typedef struct merge {
    int32_t rank, pos, id;
} merge;

#define CACHE_MAX_WORD 256
#define CACHE_MAX_ENTRIES 65536

typedef struct cache_entry {
    uint32_t start, count;   /* ids in cache_ids */
} cache_entry;

struct sisa_bpe_scratch {
    symbol *sym;
    size_t sym_cap;
    merge *heap;
    size_t heap_n, heap_cap;
    /* cache of words already merged in this call */
    sisa_strmap cache;
    tok_arena cache_keys;
    cache_entry *entries;
    size_t n_entries, entries_cap;
    sisa_idvec cache_ids;
};

sisa_bpe_scratch *sisa_bpe_scratch_new(void) {
    sisa_bpe_scratch *s = calloc(1, sizeof *s);
    if (s && sisa_strmap_init(&s->cache, 1024) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void sisa_bpe_scratch_free(sisa_bpe_scratch *s) {
    if (!s) return;
    free(s->sym);
    free(s->heap);
    sisa_strmap_free(&s->cache);
    tok_arena_free(&s->cache_keys);
    free(s->entries);
    free(s->cache_ids.v);
    free(s);
}

static int merge_less(const merge *a, const merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(sisa_bpe_scratch *s, merge m) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        merge *p = realloc(s->heap, cap * sizeof *p);
        if (!p) return -1;
        s->heap = p;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0 && merge_less(&m, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = m;
    return 0;
}

static merge heap_pop(sisa_bpe_scratch *s) {
    merge top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!merge_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static int add_symbol(sisa_bpe_scratch *s, size_t *n, int32_t id, uint32_t len) {
    if (*n == s->sym_cap) {
        size_t cap = s->sym_cap ? s->sym_cap * 2 : 64;
        symbol *p = realloc(s->sym, cap * sizeof *p);
        if (!p) return -1;
        s->sym = p;
        s->sym_cap = cap;
    }
    s->sym[*n] = (symbol){id, (int32_t)*n - 1, (int32_t)*n + 1, len};
    (*n)++;
    return 0;
}

/* The initial symbols: one per byte (each byte is one character of the byte-level string).
 * A byte missing from the vocabulary becomes the unknown token (fused with a preceding unknown
 * when fuse_unk), or is dropped when there is none — as Hugging Face does. */
static int initial_symbols(const sisa_tokenizer *t, sisa_bpe_scratch *s, const char *word,
                           size_t n, size_t *n_sym) {
    *n_sym = 0;
    int32_t unk_len = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)word[i];
        int32_t id = t->byte_id[b];
        if (id >= 0) {
            if (unk_len && add_symbol(s, n_sym, t->unk_id, (uint32_t)unk_len) != 0) return -1;
            unk_len = 0;
            if (add_symbol(s, n_sym, id, 1) != 0) return -1;
        } else if (t->unk_id >= 0) {
            if (unk_len && !t->fuse_unk) {
                if (add_symbol(s, n_sym, t->unk_id, (uint32_t)unk_len) != 0) return -1;
                unk_len = 0;
            }
            unk_len++;
        }
    }
    if (unk_len && add_symbol(s, n_sym, t->unk_id, (uint32_t)unk_len) != 0) return -1;
    if (*n_sym) s->sym[*n_sym - 1].next = -1;
    return 0;
}

static int push_pair(const sisa_tokenizer *t, sisa_bpe_scratch *s, int32_t pos) {
    int32_t rank, id, next = s->sym[pos].next;
    if (next < 0 || !sisa_pairmap_get(&t->merges, s->sym[pos].id, s->sym[next].id, &rank, &id))
        return 0;
    return heap_push(s, (merge){rank, pos, id});
}

static int merge_all(const sisa_tokenizer *t, sisa_bpe_scratch *s, size_t n_sym) {
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n_sym; i++)
        if (push_pair(t, s, (int32_t)i) != 0) return -1;
    while (s->heap_n) {
        merge top = heap_pop(s);
        symbol *left = &s->sym[top.pos];
        if (left->len == 0 || left->next < 0) continue;
        symbol *right = &s->sym[left->next];
        int32_t rank, id;
        /* Stale entry: the pair at this position changed since it was queued. */
        if (!sisa_pairmap_get(&t->merges, left->id, right->id, &rank, &id) || id != top.id)
            continue;
        left->id = top.id;
        left->len += right->len;
        left->next = right->next;
        right->len = 0;
        if (left->next >= 0) s->sym[left->next].prev = top.pos;
        if (left->prev >= 0 && push_pair(t, s, left->prev) != 0) return -1;
        if (push_pair(t, s, top.pos) != 0) return -1;
    }
    return 0;
}

static int cache_store(sisa_bpe_scratch *s, const char *word, size_t n, const int32_t *ids,
                       size_t count) {
    if (n > CACHE_MAX_WORD || s->n_entries >= CACHE_MAX_ENTRIES) return 0;
    if (s->n_entries == s->entries_cap) {
        size_t cap = s->entries_cap ? s->entries_cap * 2 : 1024;
        cache_entry *p = realloc(s->entries, cap * sizeof *p);
        if (!p) return -1;
        s->entries = p;
        s->entries_cap = cap;
    }
    const char *key = tok_arena_strndup(&s->cache_keys, word, n);
    if (!key) return -1;
    uint32_t start = (uint32_t)s->cache_ids.n;
    for (size_t i = 0; i < count; i++)
        if (sisa_idvec_push(&s->cache_ids, ids[i]) != 0) return -1;
    s->entries[s->n_entries] = (cache_entry){start, (uint32_t)count};
    if (sisa_strmap_put(&s->cache, key, n, (int32_t)s->n_entries) != 0) return -1;
    s->n_entries++;
    return 0;
}

int sisa_bpe_word(const sisa_tokenizer *t, sisa_bpe_scratch *s, const char *word, size_t n,
                  sisa_idvec *out) {
    if (n == 0) return 0;
    int32_t hit = n <= CACHE_MAX_WORD ? sisa_strmap_get(&s->cache, word, n) : -1;
    if (hit >= 0) {
        const cache_entry *e = &s->entries[hit];
        for (uint32_t i = 0; i < e->count; i++)
            if (sisa_idvec_push(out, s->cache_ids.v[e->start + i]) != 0) return -1;
        return 0;
    }
    if (t->ignore_merges) {
        int32_t id = sisa_strmap_get(&t->model_bytes, word, n);
        if (id >= 0) return sisa_idvec_push(out, id);
    }
    size_t n_sym, first = out->n;
    if (initial_symbols(t, s, word, n, &n_sym) != 0 || merge_all(t, s, n_sym) != 0) return -1;
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = s->sym[i].next)
        if (sisa_idvec_push(out, s->sym[i].id) != 0) return -1;
    return cache_store(s, word, n, out->v + first, out->n - first);
}
