#!/bin/bash
# setup.sh — install the npm packages of the tokenizer cross-check (tests/tokenizer/check.mjs)
# into tests/tokenizer/node_modules, exactly as pinned by package-lock.json.
#
# CI calls it before the meson tests: bash tests/tokenizer/setup.sh
# Without it (or without node) the tokenizer_hf test skips with exit code 77 and says why.
# Needs node >= 18 and the npm registry; the packages are about 70 MB unpacked (most of it the
# prebuilt native binaries of the `tokenizers` Rust binding).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "tests/tokenizer/setup.sh: node/npm not found; the tokenizer cross-check will skip" >&2
    exit 1
fi

installed=node_modules/.package-lock.json
if [ -f "$installed" ] && [ "$installed" -nt package-lock.json ] &&
   [ -f node_modules/tokenizers/package.json ] && [ -f node_modules/@huggingface/tokenizers/package.json ] &&
   [ -f node_modules/gpt-3-encoder/package.json ]; then
    echo "tests/tokenizer/setup.sh: node_modules is up to date"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
node -e "require('tokenizers')" || {
    echo "tests/tokenizer/setup.sh: the tokenizers native binding does not load on this machine" >&2
    exit 1
}
echo "tests/tokenizer/setup.sh: installed $(ls node_modules | tr '\n' ' ')"
