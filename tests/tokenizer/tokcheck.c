/*
 * tokcheck.c — the C side of the comparison with Hugging Face's tokenizers (run by check.mjs).
 *
 * Encodes every document of a corpus file (u32 length + UTF-8 bytes, repeated) with the SISA
 * tokenizer, writes the ids in the format ref_encode.mjs writes (u32 count + i32 ids, repeated)
 * and checks that decoding gives the text back: exactly, or its NFC form for tokenizers that
 * normalize. It reports the encode throughput, since encoding a few MB must take seconds.
 *
 * Usage: tokcheck TOKENIZER.json CORPUS.bin OUT.ids exact|nfc|none
 */
#include "sisa.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int write_u32(FILE *f, uint32_t v) { return fwrite(&v, 4, 1, f) == 1 ? 0 : -1; }

/* The text decode must give back for doc: the doc, or its NFC form. */
static int expected_text(const char *mode, const char *doc, size_t n, char **out, size_t *out_n) {
    if (strcmp(mode, "nfc") == 0) return sisa_nfc(doc, n, out, out_n) == SISA_OK ? 0 : -1;
    *out = malloc(n + 1);
    if (!*out) return -1;
    memcpy(*out, doc, n);
    *out_n = n;
    return 0;
}

static int roundtrip(const sisa_tokenizer *t, const char *mode, const char *doc, size_t n,
                     const int32_t *ids, size_t n_ids, size_t index) {
    if (strcmp(mode, "none") == 0) return 0;
    char *text = NULL, *want = NULL;
    size_t len = 0, want_len = 0;
    int bad = sisa_tokenizer_decode(t, ids, n_ids, &text, &len) != SISA_OK ||
              expected_text(mode, doc, n, &want, &want_len) != 0 || len != want_len ||
              memcmp(text, want, len) != 0;
    if (bad) fprintf(stderr, "document %zu: decode(encode(x)) != x (%zu bytes back, %zu wanted)\n", index, len, want_len);
    sisa_free(text);
    free(want);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s TOKENIZER.json CORPUS.bin OUT.ids exact|nfc|none\n", argv[0]);
        return 2;
    }
    double t0 = now();
    sisa_tokenizer *t;
    if (sisa_tokenizer_load(argv[1], &t) != SISA_OK) {
        fprintf(stderr, "%s\n", sisa_last_error());
        return 1;
    }
    double t_load = now() - t0;
    size_t len;
    char *corpus = slurp(argv[2], &len);
    FILE *out = fopen(argv[3], "wb");
    if (!corpus || !out) {
        fprintf(stderr, "cannot read %s or write %s\n", argv[2], argv[3]);
        return 1;
    }
    size_t docs = 0, total_ids = 0, bytes = 0, bad = 0;
    double t_enc = 0;
    for (size_t o = 0; o + 4 <= len; docs++) {
        uint32_t n;
        memcpy(&n, corpus + o, 4);
        const char *doc = corpus + o + 4;
        o += 4 + (size_t)n;
        int32_t *ids;
        size_t n_ids;
        double s = now();
        if (sisa_tokenizer_encode(t, doc, n, &ids, &n_ids) != SISA_OK) {
            fprintf(stderr, "document %zu: %s\n", docs, sisa_last_error());
            return 1;
        }
        t_enc += now() - s;
        if (write_u32(out, (uint32_t)n_ids) != 0 || fwrite(ids, 4, n_ids, out) != n_ids) return 1;
        bad += (size_t)roundtrip(t, argv[4], doc, n, ids, n_ids, docs);
        total_ids += n_ids;
        bytes += n;
        sisa_free(ids);
    }
    fclose(out);
    free(corpus);
    sisa_tokenizer_free(t);
    printf("C tokenizer: load %.2f s; %zu documents, %.2f MB, %zu ids, encode %.2f s (%.1f MB/s); "
           "round trip (%s): %zu failures\n",
           t_load, docs, (double)bytes / 1e6, total_ids, t_enc, (double)bytes / 1e6 / t_enc, argv[4], bad);
    return bad ? 1 : 0;
}
