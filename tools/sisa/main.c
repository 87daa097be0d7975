/*
 * main.c — the `sisa` command line: one subcommand per file (commands.h).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "sisa.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"info", sisa_cmd_info, "backends, devices and their properties; why a backend is absent"},
    {"init", sisa_cmd_init, "write a randomly initialised model directory"},
    {"run", sisa_cmd_run, "forward a token sequence, print the top next tokens and the clamp report"},
    {"conform", sisa_cmd_conform, "the cross-backend conformance suite"},
    {"bench", sisa_cmd_bench, "op and model benchmarks"},
    {"generate", sisa_cmd_generate, "generate text from a prompt (KV-cache decoding, sampling)"},
    {"tokenize", sisa_cmd_tokenize, "text -> token ids, or --decode ids -> text"},
};

static void usage(FILE *f) {
    fprintf(f, "sisa %s — SISA language model engine\n\nusage: sisa <command> [options]\n\n",
            sisa_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`sisa <command> --help` for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sisa %s\n", sisa_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "sisa: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
