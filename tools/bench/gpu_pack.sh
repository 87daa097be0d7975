#!/bin/bash
# Copy a GPU build (default build-gpu) into a slim folder for the device tool's carry (64 MiB in
# all): the executables, libsisa.so and what the tests read at run time, without the static
# library, object files and generated shader headers (a full all-backend build is ~77 MB).
# Usage: bash tools/bench/gpu_pack.sh [BUILDDIR] [DEST]  -> DEST (default BUILDDIR-run)
set -euo pipefail
src=${1:-build-gpu}
dst=${2:-$src-run}
mkdir -p "$dst"; dst=$(cd "$dst" && pwd)
rm -rf "$dst"
mkdir -p "$dst"
(cd "$src" && find . -type f ! -name '*.a' ! -name '*.o' ! -name '*.spv.h' ! -name '*.ninja' \
     ! -path './meson-*' ! -path '*.p/*' -print0) |
  (cd "$src" && xargs -0 cp --parents -t "$dst")
du -sh "$dst"
