#!/bin/bash
# One call on the GPU machine (METHOD.md: few, full calls): the whole test suite on every GPU
# backend of a carried build (CUDA, Vulkan, OpenCL), then the model benchmarks — the engine's
# prefill on each backend and PyTorch eager bf16 on the same GPU in the same run, and decode.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_all.sh [BUILDDIR]; logs in $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu}
S=$B/tools/sisa
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
$S info | tee "$OUT/info.txt"

echo "== tests (every backend present)"
# tokenizer_hf needs node + npm packages (absent there): it skips with its reason
timeout 330 python3 tools/run_tests.py "$B" --log "$OUT/tests" --skip tokenizer_hf 2>&1 | tee "$OUT/tests.txt"

bench() { # name, then sisa bench args
  local name=$1; shift
  timeout 120 $S bench "$@" 2>&1 | tee -a "$OUT/bench.txt" | grep -E '^\| (SISA|Transformer)|sisa' | sed "s/^/$name /"
}
echo "== prefill: engine (B=8, T=2048)"
for m in sisa-152m-ds16 transformer-152m; do
  bench cuda-bf16 --config $m --dtype bf16 --compute bf16 --backend cuda --batch 8 --tokens 2048 --reps 5
done
for m in sisa-152m-ds16 transformer-152m; do
  bench vulkan-f32 --config $m --dtype bf16 --backend vulkan --batch 8 --tokens 2048 --reps 3
  bench opencl-f32 --config $m --dtype bf16 --backend opencl --batch 8 --tokens 2048 --reps 3
  bench cuda-f32 --config $m --dtype bf16 --backend cuda --batch 8 --tokens 2048 --reps 3
done
bench vulkan-bf16 --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend vulkan --batch 8 --tokens 2048 --reps 3
echo "== prefill: PyTorch eager bf16, same GPU, same run"
PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench/torch_prefill.py --scale 152m --ds 16 0 --batch 8 --tokens 2048 2>&1 | tee "$OUT/torch.txt"

echo "== decode: batch 1, 152M SISA d_s=16"
$S init --config sisa-152m-ds16 --dtype bf16 -o /tmp/m152 >/dev/null
ids=$(python3 -c "print(','.join(str((i*7919)%50277) for i in range(512)))")
for be in cuda vulkan opencl; do
  timeout 120 $S generate -m /tmp/m152 --backend $be --tokens "$ids" -n 128 --temp 0 --no-eos > /dev/null 2> "$OUT/decode-$be.txt"
  echo "$be: $(tail -1 "$OUT/decode-$be.txt")"
done
echo "== summary"
tail -1 "$OUT/tests.txt"; grep -E "^(OK|FAIL|SKIP)" "$OUT/tests.txt" | grep -v "^OK" || true
cat "$OUT/torch.txt" | grep '^|'
