#!/bin/bash
# One GPU run (METHOD.md: everything in one call): CUDA smoke test vs the oracle, the backend's
# benchmarks, PyTorch references on the same GPU. Logs under $OUT. Binaries come prebuilt in
# build-gpu-cuda2/ (carried; SISA_CUDA_BUILD overrides), started after `source .devdeps/setup.sh`.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${SISA_CUDA_BUILD:-build-gpu-cuda2}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
echo "== smoke"; timeout 150 stdbuf -oL $B/tests/test_cuda_smoke 2>&1 | tee "$OUT/smoke.log"; echo "smoke rc=${PIPESTATUS[0]}"
echo "== smoke, 8-warp own kernel"; SISA_CUDA_FA_WARPS=8 timeout 100 stdbuf -oL $B/tests/test_cuda_smoke > "$OUT/smoke8.log" 2>&1; echo "smoke8 rc=$?"
echo "== bench (sisa)"; SISA_CUDA_TRACE=1 timeout 120 $B/tests/bench_cuda 20 2>&1 | tee "$OUT/bench_sisa.log"
echo "== bench (torch)"; PYTHONUNBUFFERED=1 timeout 100 python3 tools/bench/cuda/bench_torch.py 2>&1 | tee "$OUT/bench_torch.log"
echo "== summary"; grep -E "cuda smoke cases|FAIL" "$OUT/smoke.log" "$OUT/smoke8.log" | head -20; grep -E "ms|cuda: SDPA" "$OUT/bench_sisa.log"; grep -E "SDPA" "$OUT/bench_torch.log"
