/* commands.h — the `sisa` CLI's subcommands; each lives in its own cmd_*.c file. */
#ifndef SISA_COMMANDS_H
#define SISA_COMMANDS_H

#include <stdint.h>

int sisa_cmd_info(int argc, char **argv);
int sisa_cmd_init(int argc, char **argv);
int sisa_cmd_run(int argc, char **argv);
int sisa_cmd_conform(int argc, char **argv);
int sisa_cmd_bench(int argc, char **argv);
int sisa_cmd_generate(int argc, char **argv);
int sisa_cmd_tokenize(int argc, char **argv);

/* Shared helpers (cli_util.c). */
int cli_fail(const char *what);           /* print "sisa: what: <last error>" and return 1 */
int cli_usage(const char *usage);         /* print usage to stderr and return 2 */
/* Parse a list of token ids "1,2,3" (commas and/or spaces) into *out (malloc'ed, free()).
 * Returns the count, or -1 (with *out NULL) on a bad number or out of memory. */
int cli_parse_ids(const char *s, int32_t **out);
/* Parse "--name value" style options: returns the value for --name or NULL; *i is advanced. */
const char *cli_opt(int argc, char **argv, int *i, const char *name);
#endif
