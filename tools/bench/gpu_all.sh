#!/bin/bash
# One call on the GPU machine (METHOD.md: few, full calls): the test suite on every GPU backend of
# a carried build (CUDA, Vulkan, OpenCL), then the model benchmarks — the engine's 152M prefill on
# each backend and PyTorch eager bf16 on the same GPU in the same run — and batch-1 decode.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_all.sh [BUILDDIR]; logs in $OUT.
# SISA_GPU_SKIP_TESTS="name ..." leaves tests out (tokenizer_hf always: no node there).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu}
S=$B/tools/sisa
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
$S info > "$OUT/info.txt"

echo "== tests (every backend present)"
timeout 400 python3 tools/run_tests.py "$B" --log /tmp/testlogs --skip tokenizer_hf ${SISA_GPU_SKIP_TESTS:-} 2>&1 | tee "$OUT/tests.txt"
tar czf "$OUT/testlogs.tgz" -C /tmp testlogs

bench() { timeout 120 $S bench "$@" 2>&1 | tee -a "$OUT/bench.txt" | grep -E '^\| (SISA|Transformer)'; }
echo "== prefill, B=8, T=2048: engine (compute only; logits stay on the device), then PyTorch"
for m in sisa-152m-ds16 transformer-152m; do
  bench --config $m --dtype bf16 --compute bf16 --backend cuda --batch 8 --tokens 2048 --reps 5
done
echo "-- CUDA with f32 activations (the default --compute): bf16 weights widened for cuBLASLt, then the old tiled fallback"
bench --config sisa-152m-ds16 --dtype bf16 --compute f32 --backend cuda --batch 8 --tokens 2048 --reps 3
SISA_CUDA_NO_WIDEN=1 bench --config sisa-152m-ds16 --dtype bf16 --compute f32 --backend cuda --batch 8 --tokens 2048 --reps 1
PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench/torch_prefill.py --scale 152m --ds 16 0 --batch 8 --tokens 2048 2>&1 | tee "$OUT/torch.txt" | grep '^| [ST]'
for be in vulkan opencl; do
  for act in bf16 f32; do
    bench --config sisa-152m-ds16 --dtype bf16 --compute $act --backend $be --batch 8 --tokens 2048 --reps 3
  done
done
echo "== per-op profile, CUDA bf16"
timeout 120 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend cuda --batch 8 --tokens 2048 --reps 2 --profile > "$OUT/profile.txt" 2>&1
grep -A 14 "per-op" "$OUT/profile.txt"
echo "== decode: batch 1, 152M SISA d_s=16, 512-token prompt, 128 new tokens"
$S init --config sisa-152m-ds16 --dtype bf16 -o /tmp/m152 >/dev/null
ids=$(python3 -c "print(','.join(str((i*7919)%50277) for i in range(512)))")
for be in cuda vulkan opencl; do
  timeout 120 $S generate -m /tmp/m152 --backend $be --tokens "$ids" -n 128 --temp 0 --no-eos > /dev/null 2> "$OUT/decode-$be.txt"
  echo "$be: $(tail -1 "$OUT/decode-$be.txt")"
done
echo "== summary"
tail -1 "$OUT/tests.txt"; grep -E "^(FAIL|SKIP)" "$OUT/tests.txt" || true
