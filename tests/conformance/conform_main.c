/*
 * conform_main.c — the meson conformance tests' executable: `sisa conform` without the rest of
 * the CLI (tests/meson.build runs it once per backend name; exit 77 = backend absent = skipped).
 */
#include "conform.h"

int main(int argc, char **argv) { return sisa_cmd_conform(argc, argv); }
