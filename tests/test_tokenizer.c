/*
 * test_tokenizer.c — unit tests of the tokenizer that need no node: known ids on a small
 * committed tokenizer.json (tests/tokenizer/fixture.json), round trips, every refused input and
 * file, the streaming UTF-8 helper and NFC.
 *
 * The expected ids were produced by Hugging Face's tokenizers 0.23.2 (Rust binding) on the same
 * fixture (`node tests/tokenizer/make_fixture.mjs --ids`), not by this code.
 *
 * Usage: test_tokenizer FIXTURE.json SCRATCH_DIR
 */
#include "sisa.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static const char *fixture, *scratch;

/* ---- known ids ------------------------------------------------------------------------------ */

typedef struct known {
    const char *text;
    size_t len;
    int32_t ids[12];
    size_t n;
} known;

#define S(s) s, sizeof s - 1
static const known KNOWN[] = {
    {S("hello world"), {259, 264}, 2},
    {S("hello  world\n"), {259, 32, 264, 10}, 4},
    {S("Hello"), {72, 101, 257, 111}, 4},
    {S("\xe4\xb8\xad\xe6\x96\x87"), {271, 230, 150, 135}, 4},
    {S("it's 123 1234"), {105, 116, 267, 32, 269, 32, 269, 52}, 8},
    {S("a<|endoftext|>b"), {97, 273, 98}, 3},
    {S(""), {0}, 0},
    {S("  \t\n\n"), {265, 9, 272}, 3},
    {S("\xf0\x9f\x91\x8d ok"), {240, 159, 145, 141, 32, 111, 107}, 7},
    {S("x<pad><|endoftext|> <pad>"), {120, 274, 273, 32, 274}, 5},
    /* not from the reference: byte 0 is an ordinary character ('Ā', id 0) */
    {S("a\0b"), {97, 0, 98}, 3},
};

static void test_known(const sisa_tokenizer *t) {
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++) {
        const known *k = &KNOWN[i];
        int32_t *ids = NULL;
        size_t n = 0;
        sisa_status st = sisa_tokenizer_encode(t, k->text, k->len, &ids, &n);
        CHECK(st == SISA_OK, "encode #%zu: %s", i, sisa_last_error());
        CHECK(ids != NULL, "encode #%zu returned NULL ids", i);
        int same = st == SISA_OK && n == k->n && (n == 0 || memcmp(ids, k->ids, n * sizeof *ids) == 0);
        CHECK(same, "encode #%zu (\"%s\"): got %zu ids", i, k->text, n);
        char *text = NULL;
        size_t len = 0;
        st = sisa_tokenizer_decode(t, ids, n, &text, &len);
        CHECK(st == SISA_OK && len == k->len && memcmp(text, k->text, len) == 0 && text[len] == '\0',
              "decode(encode(#%zu)) differs", i);
        sisa_free(ids);
        sisa_free(text);
    }
}

static void test_vocab(const sisa_tokenizer *t) {
    CHECK(sisa_tokenizer_vocab_size(t) == 275, "vocab size %lld", (long long)sisa_tokenizer_vocab_size(t));
    CHECK(sisa_tokenizer_token_id(t, "<|endoftext|>") == 273, "eot id");
    CHECK(sisa_tokenizer_token_id(t, "<pad>") == 274, "pad id");
    CHECK(sisa_tokenizer_token_id(t, "\xc4\xa0world") == 264, "id of 'Ġworld'");
    CHECK(sisa_tokenizer_token_id(t, "nope") == -1, "unknown token");
    CHECK(sisa_tokenizer_token_id(t, NULL) == -1, "NULL token");
    int32_t eot = 273;
    char *text = NULL;
    size_t len = 0;
    CHECK(sisa_tokenizer_decode(t, &eot, 1, &text, &len) == SISA_OK && strcmp(text, "<|endoftext|>") == 0,
          "decode of <|endoftext|>");
    sisa_free(text);
}

/* ---- refused inputs ------------------------------------------------------------------------- */

static void expect_bad_input(const sisa_tokenizer *t, const char *s, size_t n, const char *offset) {
    int32_t *ids = (int32_t *)&ids;   /* must be reset to NULL on failure */
    size_t count = 99;
    sisa_status st = sisa_tokenizer_encode(t, s, n, &ids, &count);
    CHECK(st == SISA_INVALID_ARG, "invalid UTF-8 accepted (status %s)", sisa_status_name(st));
    CHECK(ids == NULL && count == 0, "outputs not reset on failure");
    CHECK(strstr(sisa_last_error(), "not valid UTF-8") && strstr(sisa_last_error(), offset),
          "message: %s", sisa_last_error());
}

static void test_bad_inputs(const sisa_tokenizer *t) {
    expect_bad_input(t, S("ab\xff"), "offset 2");
    expect_bad_input(t, S("abc\xc3"), "offset 3");              /* truncated sequence */
    expect_bad_input(t, S("\xed\xa0\x80"), "offset 0");         /* surrogate */
    expect_bad_input(t, S("x\xc0\x80"), "offset 1");            /* overlong NUL */
    expect_bad_input(t, S("\xf4\x90\x80\x80"), "offset 0");     /* above U+10FFFF */
    int32_t ids[2] = {275, 1};
    char *text = NULL;
    size_t len = 0;
    CHECK(sisa_tokenizer_decode(t, ids, 2, &text, &len) == SISA_INVALID_ARG && text == NULL,
          "out-of-range id decoded");
    CHECK(strstr(sisa_last_error(), "id 275") && strstr(sisa_last_error(), "fixture.json"),
          "message: %s", sisa_last_error());
    ids[0] = -1;
    CHECK(sisa_tokenizer_decode(t, ids, 2, &text, &len) == SISA_INVALID_ARG, "negative id decoded");
    CHECK(sisa_tokenizer_encode(NULL, "a", 1, (int32_t **)&text, &len) == SISA_INVALID_ARG, "NULL tokenizer");
}

/* ---- refused files -------------------------------------------------------------------------- */

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[len] = '\0';
    *n = (size_t)len;
    return b;
}

/* The fixture with the first occurrence of `from` replaced by `to`, cut to `keep` bytes
 * (0: all), written to scratch/name. */
static const char *variant(const char *name, const char *from, const char *to, size_t keep) {
    static char path[4096];
    size_t n;
    char *src = read_all(fixture, &n);
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    FILE *f = fopen(path, "wb");
    if (!src || !f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    char *at = from ? strstr(src, from) : NULL;
    if (from && !at) {
        fprintf(stderr, "fixture lacks \"%s\"\n", from);
        exit(1);
    }
    if (at) {
        fwrite(src, 1, (size_t)(at - src), f);
        fputs(to, f);
        fputs(at + strlen(from), f);
    } else {
        fwrite(src, 1, keep ? keep : n, f);
    }
    fclose(f);
    free(src);
    return path;
}

static void expect_load_error(const char *path, sisa_status want, const char *words) {
    sisa_tokenizer *t = (sisa_tokenizer *)&t;
    sisa_status st = sisa_tokenizer_load(path, &t);
    CHECK(st == want, "%s: status %s, wanted %s (%s)", path, sisa_status_name(st), sisa_status_name(want),
          sisa_last_error());
    CHECK(t == NULL, "%s: *out not NULL on failure", path);
    CHECK(strstr(sisa_last_error(), path) && strstr(sisa_last_error(), words), "%s: message \"%s\" lacks \"%s\"",
          path, sisa_last_error(), words);
    if (st == SISA_OK) sisa_tokenizer_free(t);
}

static void test_bad_files(void) {
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/does-not-exist.json", scratch);
    expect_load_error(missing, SISA_BAD_FILE, "cannot open");
    expect_load_error(variant("empty.json", NULL, NULL, 1), SISA_BAD_FILE, "invalid or truncated JSON");
    expect_load_error(variant("truncated.json", NULL, NULL, 2000), SISA_BAD_FILE, "invalid or truncated JSON");
    expect_load_error(variant("wordpiece.json", "\"type\": \"BPE\"", "\"type\": \"WordPiece\"", 0),
                      SISA_UNSUPPORTED, "model type \"WordPiece\"");
    expect_load_error(variant("nomodel.json", "\"model\"", "\"modelx\"", 0), SISA_BAD_FILE, "no \"model\"");
    expect_load_error(variant("badmerge.json", "\"hell o\"", "\"hell q\"", 0), SISA_BAD_FILE,
                      "model.merges[3] (\"hell\" \"q\") makes \"hellq\", which is not in the vocab");
    expect_load_error(variant("badmerge2.json", "\"hell o\"", "\"hellx o\"", 0), SISA_BAD_FILE,
                      "refers to a token not in the vocab");
    expect_load_error(variant("badmerge3.json", "\"hell o\"", "\"hello\"", 0), SISA_BAD_FILE,
                      "model.merges[3] is neither");
    expect_load_error(variant("lower.json", "\"normalizer\": null", "\"normalizer\": {\"type\": \"Lowercase\"}", 0),
                      SISA_UNSUPPORTED, "normalizer \"Lowercase\"");
    expect_load_error(variant("ws.json", "\"type\": \"ByteLevel\",\n  \"add_prefix_space\": false,\n  \"trim_offsets\": true,\n  \"use_regex\": true\n },\n \"post",
                              "\"type\": \"Whitespace\"},\n \"post", 0),
                      SISA_UNSUPPORTED, "pre_tokenizer \"Whitespace\"");
    expect_load_error(variant("badre.json", "\"type\": \"ByteLevel\",\n  \"add_prefix_space\": false,\n  \"trim_offsets\": true,\n  \"use_regex\": true\n },\n \"post",
                              "\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                              "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]},\n \"post", 0),
                      SISA_UNSUPPORTED, "does not compile");
    expect_load_error(variant("badid.json", "\"id\": 273", "\"id\": 12", 0), SISA_BAD_FILE,
                      "\"<|endoftext|>\" has id 12, which the model vocab gives to");
    expect_load_error(variant("badid2.json", "\"content\": \"<pad>\"", "\"content\": \"he\"", 0), SISA_BAD_FILE,
                      "\"he\" has id 274 but the model vocab says 256");
    expect_load_error(variant("dropout.json", "\"dropout\": null", "\"dropout\": 0.1", 0), SISA_UNSUPPORTED,
                      "dropout");
    expect_load_error(variant("notobj.json", "{", "[", 0), SISA_BAD_FILE, "JSON");
}

/* The same file with ["a", "b"] merges loads and encodes the same. */
static void test_array_merges(void) {
    const char *path = variant("pairs.json", "\"hell o\"", "[\"hell\", \"o\"]", 0);
    sisa_tokenizer *t;
    sisa_status st = sisa_tokenizer_load(path, &t);
    CHECK(st == SISA_OK, "%s", sisa_last_error());
    if (st != SISA_OK) return;
    int32_t *ids;
    size_t n;
    CHECK(sisa_tokenizer_encode(t, S("hello world"), &ids, &n) == SISA_OK && n == 2 && ids[0] == 259,
          "array-form merge");
    sisa_free(ids);
    sisa_tokenizer_free(t);
}

/* ---- long inputs ---------------------------------------------------------------------------- */

static void test_long(const sisa_tokenizer *t) {
    /* One pre-token of 300k bytes (CJK without spaces) and a 100k whitespace run: the merge
     * loop and the regex must cope without quadratic time or stack overflow. */
    size_t n = 300000;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i += 3) memcpy(s + i, "\xe4\xb8\xad", 3);
    int32_t *ids;
    size_t count;
    CHECK(sisa_tokenizer_encode(t, s, n, &ids, &count) == SISA_OK && count == n / 3 && ids[0] == 271,
          "long CJK run: %zu ids", count);
    sisa_free(ids);
    memset(s, ' ', 100000);
    s[100000] = 'x';
    CHECK(sisa_tokenizer_encode(t, s, 100001, &ids, &count) == SISA_OK, "long space run: %s", sisa_last_error());
    char *text;
    size_t len;
    CHECK(sisa_tokenizer_decode(t, ids, count, &text, &len) == SISA_OK && len == 100001 && memcmp(text, s, len) == 0,
          "long space run round trip");
    sisa_free(ids);
    sisa_free(text);
    free(s);
}

/* ---- UTF-8 and NFC helpers ------------------------------------------------------------------ */

static void test_utf8_complete(void) {
    static const struct { const char *s; size_t n, want; } cases[] = {
        {S("abc"), 3},
        {S("ab\xc3"), 2},                 /* first byte of é */
        {S("ab\xc3\xa9"), 4},
        {S("\xe4\xb8"), 0},               /* 2 of the 3 bytes of 中 */
        {S("\xf0\x9f\x91"), 0},           /* 3 of the 4 bytes of 👍 */
        {S("\xf0\x9f\x91\x8d"), 4},
        {S("a\xff"), 2},                  /* invalid: never completes, so not held back */
        {S("a\xe0\x80"), 3},              /* overlong start: invalid */
        {S("a\xed\xa0"), 3},              /* surrogate start: invalid */
        {S("\x80\x80"), 2},               /* stray continuation bytes */
        {S(""), 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = sisa_utf8_complete_len(cases[i].s, cases[i].n);
        CHECK(got == cases[i].want, "utf8_complete_len case %zu: %zu, wanted %zu", i, got, cases[i].want);
    }
}

static void test_nfc(void) {
    static const struct { const char *in, *out; } cases[] = {
        {"plain ascii", "plain ascii"},
        {"e\xcc\x81", "\xc3\xa9"},                                /* e + acute -> é */
        {"a\xcc\x82\xcc\xa3", "\xe1\xba\xad"},                    /* a + circumflex + dot below -> ậ */
        {"a\xcc\xa3\xcc\x82", "\xe1\xba\xad"},                    /* same marks, other order */
        {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"}, /* Hangul L V T -> 각 */
        {"\xe2\x84\xab", "\xc3\x85"},                             /* Angstrom sign -> Å */
        {"\xcc\x81" "a", "\xcc\x81" "a"},                         /* leading mark stays */
        {"\xef\xac\x81", "\xef\xac\x81"},                         /* ﬁ: compatibility only */
        {"\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc"},             /* excluded from composition */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        size_t n;
        CHECK(sisa_nfc(cases[i].in, strlen(cases[i].in), &out, &n) == SISA_OK &&
                  n == strlen(cases[i].out) && memcmp(out, cases[i].out, n) == 0,
              "NFC case %zu", i);
        free(out);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURE.json SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    fixture = argv[1];
    scratch = argv[2];
    mkdir(scratch, 0777);
    sisa_tokenizer *t;
    if (sisa_tokenizer_load(fixture, &t) != SISA_OK) {
        fprintf(stderr, "FAIL: %s\n", sisa_last_error());
        return 1;
    }
    test_vocab(t);
    test_known(t);
    test_bad_inputs(t);
    test_long(t);
    sisa_tokenizer_free(t);
    test_bad_files();
    test_array_merges();
    test_utf8_complete();
    test_nfc();
    sisa_tokenizer_free(NULL);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("tokenizer unit tests passed\n");
    return failures ? 1 : 0;
}
