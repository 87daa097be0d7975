#!/bin/bash
# One GPU run (METHOD.md: everything in one call): CUDA smoke test vs the oracle, the backend's
# benchmarks, PyTorch references on the same GPU. Logs under $OUT. Binaries come prebuilt in
# build-gpu-cuda/ (carried), started after `source .devdeps/setup.sh`.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=build-gpu-cuda
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
echo "== smoke"; timeout 240 $B/test_cuda_smoke 2>&1 | tee "$OUT/smoke.log"; echo "smoke rc=${PIPESTATUS[0]}"
if [ -x $B/conform ]; then echo "== conform"; timeout 200 $B/conform --backend cuda 2>&1 | tee "$OUT/conform.log" | tail -30; fi
echo "== bench (sisa)"; timeout 150 $B/bench_cuda 20 2>&1 | tee "$OUT/bench_sisa.log"
echo "== bench (torch)"; PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench/cuda/bench_torch.py 2>&1 | tee "$OUT/bench_torch.log"
