/* cli_util.c — small helpers shared by the CLI's subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "sisa.h"

int cli_fail(const char *what) {
    fprintf(stderr, "sisa: %s: %s\n", what, sisa_last_error());
    return 1;
}

int cli_usage(const char *usage) {
    fprintf(stderr, "usage: %s\n", usage);
    return 2;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sisa: option %s needs a value\n", name);
        return NULL;
    }
    return argv[++*i];
}

int cli_parse_ids(const char *s, int32_t **out) {
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(sizeof *ids * cap);
    *out = NULL;
    while (ids && *s) {
        while (*s == ',' || *s == ' ') s++;
        if (!*s) break;
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX) break;
        if (n == cap) {
            int32_t *g = realloc(ids, sizeof *ids * (cap *= 2));
            if (!g) break;
            ids = g;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    if (!ids || *s) { /* stopped early: a bad number or no memory */
        free(ids);
        return -1;
    }
    *out = ids;
    return (int)n;
}
