#!/bin/bash
# A shorter gpu_all.sh for a call with little device time left: conformance of every GPU backend
# (all cases), the Vulkan coopmat attention check (vk_sdpa_check.sh), the CUDA tests that decode
# and golden need, 152M prefill on CUDA with bf16 and f32 activations, PyTorch eager on the same
# GPU, and batch-1 decode on CUDA.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_check.sh [BUILDDIR]; logs in $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu}
S=$B/tools/sisa
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
echo "== Vulkan coopmat attention"
bash tools/bench/vk_sdpa_check.sh "$B" 2>&1 | tee "$OUT/vk_sdpa_check.txt"
for be in cuda opencl; do
  echo "== conform --backend $be"
  timeout 120 $B/tests/conformance/conform --backend $be > "$OUT/conform-$be.txt" 2>&1; echo "rc $?"
  tail -1 "$OUT/conform-$be.txt"; grep -E "^(FAIL|fail|error)" "$OUT/conform-$be.txt" | head -5
done
echo "== CUDA tests"
timeout 120 python3 tools/run_tests.py "$B" --only cuda_smoke decode golden compute_dtype --log "$OUT/tl" 2>&1 | tail -6
bench() { timeout 90 $S bench "$@" 2>&1 | tee -a "$OUT/bench.txt" | grep -E '^\| (SISA|Transformer)'; }
echo "== 152M prefill B=8 T=2048 on CUDA: bf16 activations; f32 activations widened, then the old fallback"
bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend cuda --batch 8 --tokens 2048 --reps 5
bench --config sisa-152m-ds16 --dtype bf16 --compute f32 --backend cuda --batch 8 --tokens 2048 --reps 3
SISA_CUDA_NO_WIDEN=1 bench --config sisa-152m-ds16 --dtype bf16 --compute f32 --backend cuda --batch 8 --tokens 2048 --reps 1
PYTHONUNBUFFERED=1 timeout 150 python3 tools/bench/torch_prefill.py --scale 152m --batch 8 --tokens 2048 2>&1 | tee "$OUT/torch.txt" | grep '^| [ST]'
echo "== decode: batch 1, 152M SISA d_s=16, 512-token prompt, 128 new tokens (CUDA)"
$S init --config sisa-152m-ds16 --dtype bf16 -o /tmp/m152 >/dev/null
ids=$(python3 -c "print(','.join(str((i*7919)%50277) for i in range(512)))")
timeout 60 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 128 --temp 0 --no-eos > /dev/null 2> "$OUT/decode-cuda.txt"
echo "cuda: $(tail -1 "$OUT/decode-cuda.txt")"
