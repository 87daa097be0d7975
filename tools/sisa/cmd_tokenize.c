/* cmd_tokenize.c — `sisa tokenize`: text -> token ids, or --decode ids -> text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sisa.h"

static const char *USAGE =
    "sisa tokenize (-m DIR | --tokenizer FILE) \"text\"\n"
    "sisa tokenize (-m DIR | --tokenizer FILE) --decode \"1,2,3\"";

int sisa_cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *dec = NULL, *text = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_opt(argc, argv, &i, "-m"))) dir = v;
        else if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) file = v;
        else if ((v = cli_opt(argc, argv, &i, "--decode"))) dec = v;
        else if (argv[i][0] != '-' && !text) text = argv[i];
        else return cli_usage(USAGE);
    }
    if (!dir == !file || !dec == !text) return cli_usage(USAGE);
    char path[4096];
    if (dir) snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    else snprintf(path, sizeof path, "%s", file);
    sisa_tokenizer *t = NULL;
    if (sisa_tokenizer_load(path, &t) != SISA_OK) return cli_fail("tokenize: load");
    int rc = 0;
    if (text) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (sisa_tokenizer_encode(t, text, strlen(text), &ids, &n) != SISA_OK) {
            rc = cli_fail("tokenize");
        } else {
            for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
            printf("\n");
        }
        sisa_free(ids);
    } else {
        int32_t *ids = NULL;
        int k = cli_parse_ids(dec, &ids);
        size_t n = k > 0 ? (size_t)k : 0;
        if (k < 0) {
            fprintf(stderr, "sisa tokenize: --decode wants comma-separated ids, got '%s'\n", dec);
            rc = 2;
        }
        char *out = NULL;
        size_t len = 0;
        if (rc == 0) {
            if (sisa_tokenizer_decode(t, ids, n, &out, &len) != SISA_OK) rc = cli_fail("tokenize --decode");
            else {
                fwrite(out, 1, len, stdout);
                printf("\n");
            }
        }
        sisa_free(out);
        free(ids);
    }
    sisa_tokenizer_free(t);
    return rc;
}
