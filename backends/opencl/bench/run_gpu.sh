#!/bin/bash
# One device run for the OpenCL backend (docs/BENCHMARKS.md, ## OpenCL): clinfo, smoke test,
# conformance, bench (+ SDPA tile sweep), PyTorch reference. Logs under $OUT; a summary last.
# Build here first: meson setup build-gpu-cl -Dopencl=enabled -Dvulkan=disabled -Dcuda=disabled
#   ninja -C build-gpu-cl tests/test_opencl_smoke tools/bench_opencl tests/conformance/conform
# then run with the device tool, carry [".devdeps", "build-gpu-cl"]:
#   source .devdeps/setup.sh && bash backends/opencl/bench/run_gpu.sh
B=${B:-build-gpu-cl}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export XDG_CACHE_HOME=/tmp/sisa-cache POCL_CACHE_DIR=/tmp/pocl-cache
export SISA_CL_DEVICE=${SISA_CL_DEVICE:-NVIDIA}
lim() { local l=$(( $1 - SECONDS )); [ $l -lt 10 ] && l=10; echo $l; }
step() { echo "== $1 ($(date +%T), t=${SECONDS}s)" | tee -a "$OUT/summary.txt"; }
step clinfo
{ clinfo -l; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; } > "$OUT/clinfo.txt" 2>&1
cat "$OUT/clinfo.txt" >> "$OUT/summary.txt"
step smoke
SISA_CL_VERBOSE=1 timeout 90 $B/tests/test_opencl_smoke > "$OUT/smoke.txt" 2> "$OUT/smoke_builds.txt"
echo "smoke rc=$?" >> "$OUT/summary.txt"; grep -E "^(ok|FAIL|SKIP)|passed|device 0" "$OUT/smoke.txt" >> "$OUT/summary.txt"
step conform
left=130
timeout $left $B/tests/conformance/conform --backend opencl --quiet --json "$OUT/conform.json" > "$OUT/conform.txt" 2>&1
echo "conform rc=$? (limit ${left}s)" >> "$OUT/summary.txt"; grep -E "summary|^(FAIL|ERROR)" "$OUT/conform.txt" | head -40 >> "$OUT/summary.txt"
step bench
timeout $(lim 240) $B/tools/bench_opencl ${BENCH_ARGS:---sweep} > "$OUT/bench.txt" 2>&1
echo "bench rc=$?" >> "$OUT/summary.txt"; cat "$OUT/bench.txt" >> "$OUT/summary.txt"
step torch
PY=/opt/torch/.venv/bin/python; [ -x $PY ] || PY=python3
timeout $(lim 285) $PY backends/opencl/bench/torch_ref.py > "$OUT/torch.txt" 2>&1
echo "torch rc=$?" >> "$OUT/summary.txt"; cat "$OUT/torch.txt" >> "$OUT/summary.txt"
step done
cat "$OUT/summary.txt"
