#!/bin/bash
# One device run for the OpenCL tensor-core path (docs/OPENCL.md, "Tensor cores"): bf16 MATMUL and
# SDPA rows of bench_opencl vs PyTorch bf16, the 152M prefill with bf16 activations (and the f32
# path for comparison) plus its per-op profile, conformance and the model tests on NVIDIA's
# OpenCL. Logs under $OUT; a summary last.
# Build here: meson setup build-gpu-cl2 -Dopencl=enabled -Dcuda=disabled -Dvulkan=disabled;
#   ninja -C build-gpu-cl2
# Run with the device tool, carry [".devdeps", "build-gpu-cl2"]:
#   source .devdeps/setup.sh && bash backends/opencl/bench/run_mma.sh
# STEPS="bench model conform torch tests" picks steps (default: all).
B=${B:-build-gpu-cl2}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export XDG_CACHE_HOME=/tmp/sisa-cache POCL_CACHE_DIR=/tmp/pocl-cache PYTHONUNBUFFERED=1
export SISA_CL_DEVICE=${SISA_CL_DEVICE:-NVIDIA}
STEPS=${STEPS:-bench model conform torch tests}
S=$B/tools/sisa
step() { echo "== $1 ($(date +%T), t=${SECONDS}s)" | tee -a "$OUT/summary.txt"; }
has() { [[ " $STEPS " == *" $1 "* ]]; }
step info
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv; $S info; } > "$OUT/info.txt" 2>&1
grep -iE "H100|opencl|NVIDIA" "$OUT/info.txt" | head -6 >> "$OUT/summary.txt"
if has bench; then
  step "bench_opencl --dtype bf16"
  SISA_CL_VERBOSE=1 timeout 150 $B/tools/bench_opencl --dtype bf16 > "$OUT/bench.txt" 2> "$OUT/bench_builds.txt"
  echo "bench rc=$?" >> "$OUT/summary.txt"; cat "$OUT/bench.txt" >> "$OUT/summary.txt"
  grep -iE "error|fail|ptxas|warning" "$OUT/bench_builds.txt" | head -20 >> "$OUT/summary.txt"
fi
if has model; then
  step "model prefill"
  for args in "--compute bf16" ""; do
    timeout 120 $S bench --config sisa-152m-ds16 --dtype bf16 $args --backend opencl --batch 8 --tokens 2048 --reps 3 >> "$OUT/model.txt" 2>&1
    echo "sisa bench $args rc=$?" >> "$OUT/summary.txt"
  done
  timeout 120 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend opencl --batch 8 --tokens 2048 --reps 2 --profile > "$OUT/profile.txt" 2>&1
  echo "profile rc=$?" >> "$OUT/summary.txt"
  grep -E "^\| |tok" "$OUT/model.txt" >> "$OUT/summary.txt"; grep -A 16 "per-op" "$OUT/profile.txt" >> "$OUT/summary.txt"
fi
if has conform; then
  step conform
  timeout 200 $B/tests/conformance/conform --backend opencl --quiet --json "$OUT/conform.json" > "$OUT/conform.txt" 2>&1
  echo "conform rc=$?" >> "$OUT/summary.txt"; grep -E "summary|^(FAIL|fail|ERROR|error)" "$OUT/conform.txt" | head -30 >> "$OUT/summary.txt"
fi
if has torch; then
  step torch
  PY=/opt/torch/.venv/bin/python; [ -x $PY ] || PY=python3
  timeout 120 $PY backends/opencl/bench/torch_ref.py --dtype bf16 > "$OUT/torch.txt" 2>&1
  echo "torch rc=$?" >> "$OUT/summary.txt"; cat "$OUT/torch.txt" >> "$OUT/summary.txt"
fi
if has tests; then
  step tests
  timeout 300 python3 tools/run_tests.py "$B" --only opencl_smoke golden decode compute_dtype model_gpu_backends --log /tmp/testlogs > "$OUT/tests.txt" 2>&1
  echo "tests rc=$?" >> "$OUT/summary.txt"; cat "$OUT/tests.txt" >> "$OUT/summary.txt"
  tar czf "$OUT/testlogs.tgz" -C /tmp testlogs 2>/dev/null
fi
step done
cat "$OUT/summary.txt"
