#!/bin/bash
# The README's first command: install, build, and run the main job on the default device —
# the conformance suite on every backend present, then a forward pass of a small SISA model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
build/tools/sisa info
build/tools/sisa conform
model=build/models/small
[ -f "$model/config.json" ] || build/tools/sisa init --config small -o "$model" --seed 1
build/tools/sisa run -m "$model" --tokens "1,2,3,4,5,6,7,8" --top-k 5
