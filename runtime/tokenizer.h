/*
 * tokenizer.h — internals of the Hugging Face tokenizer.json byte-level BPE tokenizer.
 *
 * The public API is in sisa.h; this header is shared by runtime/tokenizer*.c and the tests. It
 * holds the UTF-8 helpers the streaming decoder needs (a token can end in the middle of a
 * character, so a generation loop must hold back an incomplete tail), the NFC normalizer that
 * GPT-NeoX's tokenizer.json asks for, and the in-memory form of a loaded tokenizer.
 */
#ifndef SISA_TOKENIZER_H
#define SISA_TOKENIZER_H

#include "sisa.h"

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Streaming decode helper: of the bytes produced so far, how many form complete characters. Only a
 * tail that is the start of a valid multi-byte sequence still missing bytes is held back (at most
 * 3 bytes). Invalid bytes count as complete: they can never become valid, so holding them back
 * would stall the stream. */
size_t sisa_utf8_complete_len(const char *bytes, size_t n);

/* Length of the longest valid UTF-8 prefix of s (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF). Equals n when all of s is valid. */
size_t sisa_utf8_valid_len(const char *s, size_t n);

/* Decode the character at s[0..n) (valid UTF-8 assumed); stores its byte length in *len. */
uint32_t sisa_utf8_decode(const char *s, size_t n, int *len);
/* Encode cp into out (at least 4 bytes); returns the byte count. */
int sisa_utf8_encode(uint32_t cp, char *out);

/* ---- NFC (runtime/tokenizer_nfc.c, tables in runtime/tokenizer_nfc_data.c) ----------------- */

typedef struct sisa_nfc_ccc_range { uint32_t first, last, ccc; } sisa_nfc_ccc_range;
typedef struct sisa_nfc_decomp { uint32_t cp, a, b; } sisa_nfc_decomp;   /* b == 0: singleton */
typedef struct sisa_nfc_comp { uint32_t a, b, cp; } sisa_nfc_comp;       /* primary composites */

extern const char sisa_nfc_unicode_version[];
extern const sisa_nfc_ccc_range sisa_nfc_ccc[];
extern const size_t sisa_nfc_ccc_count;
extern const sisa_nfc_decomp sisa_nfc_decomps[];
extern const size_t sisa_nfc_decomp_count;
extern const sisa_nfc_comp sisa_nfc_comps[];
extern const size_t sisa_nfc_comp_count;

/* NFC of valid UTF-8 s[0..n). *out is malloc'ed (NUL-terminated). */
sisa_status sisa_nfc(const char *s, size_t n, char **out, size_t *out_len);

/* ---- hash maps ------------------------------------------------------------------------------ */

/* Byte string -> int32. Keys are borrowed (they live in the tokenizer's arena). */
typedef struct sisa_strmap_slot {
    const char *key;
    uint32_t len;
    uint32_t hash;
    int32_t value;
} sisa_strmap_slot;

typedef struct sisa_strmap {
    sisa_strmap_slot *slots;
    size_t cap, count;
} sisa_strmap;

/* (left id, right id) -> merge rank and the id of the merged token. */
typedef struct sisa_pairmap_slot {
    uint64_t key;
    int32_t rank, id;
} sisa_pairmap_slot;

typedef struct sisa_pairmap {
    sisa_pairmap_slot *slots;
    size_t cap, count;
} sisa_pairmap;

uint32_t sisa_tok_hash(const char *s, size_t n);
int sisa_strmap_init(sisa_strmap *m, size_t expected);
void sisa_strmap_free(sisa_strmap *m);
/* Insert or overwrite. Returns 0, or -1 when out of memory. */
int sisa_strmap_put(sisa_strmap *m, const char *key, size_t len, int32_t value);
/* Value of key, or -1. */
int32_t sisa_strmap_get(const sisa_strmap *m, const char *key, size_t len);

int sisa_pairmap_init(sisa_pairmap *m, size_t expected);
void sisa_pairmap_free(sisa_pairmap *m);
int sisa_pairmap_put(sisa_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
/* Returns 1 and fills rank/id when (a, b) is a merge, else 0. */
int sisa_pairmap_get(const sisa_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);

/* ---- the loaded tokenizer ------------------------------------------------------------------- */

/* Append-only arena: pointers into it stay valid until the tokenizer is freed. */
typedef struct tok_arena_block tok_arena_block;
typedef struct tok_arena {
    tok_arena_block *head;
} tok_arena;

void *tok_arena_alloc(tok_arena *a, size_t n);
char *tok_arena_strndup(tok_arena *a, const char *s, size_t n);
void tok_arena_free(tok_arena *a);

typedef struct sisa_tok_entry {
    const char *str;      /* the token as written in tokenizer.json (NULL: no token has this id) */
    const char *bytes;    /* what decode emits for it */
    uint32_t str_len, bytes_len;
} sisa_tok_entry;

typedef struct sisa_added_token {
    const char *content;  /* matched text (NFC-normalized when normalized and NFC is on) */
    uint32_t len;
    int32_t id;
    uint8_t special, normalized, lstrip, rstrip, single_word;
} sisa_added_token;

/* Added tokens matched leftmost-longest, bucketed by first byte (each bucket longest first). */
typedef struct sisa_added_set {
    const sisa_added_token **tokens;   /* ordered by first byte, then length descending */
    uint32_t start[257];               /* bucket b is tokens[start[b] .. start[b+1]) */
    size_t count;
} sisa_added_set;

typedef enum sisa_split_behavior {
    SISA_SPLIT_ISOLATED,
    SISA_SPLIT_REMOVED,
    SISA_SPLIT_MERGED_PREV,
    SISA_SPLIT_MERGED_NEXT,
    SISA_SPLIT_CONTIGUOUS,
} sisa_split_behavior;

/* One pre-tokenizer step. ByteLevel becomes an optional prefix space followed by a split with
 * the GPT-2 pattern (when use_regex); Split and Digits become a split with their pattern. */
typedef struct sisa_pretok_step {
    int byte_level;             /* the ByteLevel step (always the last one) */
    int prefix_space;           /* prepend ' ' to each piece that does not start with one */
    pcre2_code *re;             /* NULL: no split */
    sisa_split_behavior behavior;
    int invert;
} sisa_pretok_step;

#define SISA_TOK_MAX_STEPS 16

struct sisa_tokenizer {
    char *path;
    tok_arena arena;
    int32_t n_ids;               /* max id + 1 over the model vocab and the added tokens */
    sisa_tok_entry *tokens;      /* [n_ids] */
    sisa_strmap vocab;           /* token string -> id: model vocab then added tokens */
    sisa_strmap model_bytes;     /* raw bytes -> id for model tokens (ignore_merges) */
    sisa_pairmap merges;
    int32_t byte_id[256];        /* model id of each single byte's symbol, -1 if absent */
    int32_t unk_id;              /* -1 if none */
    int fuse_unk, ignore_merges;

    sisa_added_token *added;
    size_t n_added;
    sisa_added_set added_raw;    /* normalized == false: matched on the input as given */
    sisa_added_set added_norm;   /* normalized == true: matched after the normalizer */
    pcre2_code *re_word;         /* one character of \w, for single_word added tokens */
    pcre2_code *re_space;        /* one character of \s, for lstrip / rstrip */

    int nfc;                     /* normalizer: 0 none, 1 NFC */
    sisa_pretok_step steps[SISA_TOK_MAX_STEPS];
    int n_steps;
};

/* Loading (runtime/tokenizer_load.c). */
sisa_status sisa_tok_parse(sisa_tokenizer *t, const char *json, size_t len);

/* The BPE model on one pre-token (runtime/tokenizer_bpe.c): appends ids to *ids. */
typedef struct sisa_idvec {
    int32_t *v;
    size_t n, cap;
} sisa_idvec;

int sisa_idvec_push(sisa_idvec *v, int32_t id);

typedef struct sisa_bpe_scratch sisa_bpe_scratch;
sisa_bpe_scratch *sisa_bpe_scratch_new(void);
void sisa_bpe_scratch_free(sisa_bpe_scratch *s);
/* Encode raw bytes word[0..n) (one pre-token), appending to out. Returns 0 or -1 (no memory). */
int sisa_bpe_word(const sisa_tokenizer *t, sisa_bpe_scratch *s, const char *word, size_t n,
                  sisa_idvec *out);

/* The byte <-> character map of GPT-2's byte-level alphabet. */
uint32_t sisa_byte_to_char(uint8_t b);
/* Byte of a byte-level character, or -1 when c is not in the alphabet. */
int sisa_char_to_byte(uint32_t c);

#endif
