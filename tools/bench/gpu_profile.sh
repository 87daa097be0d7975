#!/bin/bash
# Where the time goes on the GPU machine: the carried build's tests (every backend present) and
# a per-op profile of the 152M prefill on CUDA (bf16 activations) and Vulkan/OpenCL (f32).
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_profile.sh [BUILDDIR]; logs in $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu}
S=$B/tools/sisa
timeout 300 python3 tools/run_tests.py "$B" --log /tmp/testlogs --skip tokenizer_hf 2>&1 | tee "$OUT/tests.txt"
tar czf "$OUT/testlogs.tgz" -C /tmp testlogs
for be in "cuda --compute bf16" "cuda" "vulkan" "opencl"; do
  echo "== $be"
  timeout 100 $S bench --config sisa-152m-ds16 --dtype bf16 --backend $be --batch 8 --tokens 2048 --reps 3 --profile 2>&1 | tee -a "$OUT/profile.txt"
done
