#!/bin/bash
# run_check.sh — meson test wrapper for check.mjs: skips (exit 77) with the reason when node or
# the npm packages are missing, so machines without them still pass the suite.
# Usage: run_check.sh TOKCHECK_EXE WORKDIR [megabytes]
here=$(cd "${0%/*}" && pwd)
if ! command -v node >/dev/null; then
    echo "SKIP: node is not installed (the tokenizer cross-check needs node and tests/tokenizer/setup.sh)"
    exit 77
fi
exec node "$here/check.mjs" "$@"
