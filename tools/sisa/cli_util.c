/* cli_util.c — small helpers shared by the CLI's subcommands. */
#include <stdio.h>
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
