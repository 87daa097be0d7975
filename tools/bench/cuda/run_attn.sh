#!/bin/bash
# One GPU call for issue 5's attention and fusion goals (METHOD.md: everything in one call):
# the CUDA tests (default = fused SSM_CHANNELS+AUGMENT, d_qk padded to 32; conformance again with
# SISA_CUDA_TRACE=1 to count what fused, golden again with the cuDNN engine timed), the SDPA table
# (bench_cuda with SISA_CUDA_TRACE=1: each cuDNN candidate's time on stderr) and PyTorch's SDPA
# backends on the same tensors, then the 152M prefill before/after each change, the per-op
# profile before/after and PyTorch eager. Usage (after `source .devdeps/setup.sh`):
# bash tools/bench/cuda/run_attn.sh [BUILDDIR]; logs in $OUT (8 files at most come back).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu-attn}
S=$B/tools/sisa
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv

echo "== tests"
timeout 330 python3 tools/run_tests.py "$B" --log /tmp/testlogs --only conform-cuda cuda_smoke golden decode compute_dtype 2>&1 | tee "$OUT/tests.txt"
SISA_CUDA_CUDNN_TUNE=1 timeout 120 $B/tests/test_golden tests/golden > /tmp/testlogs/golden-tuned.log 2>&1; echo "golden (cuDNN engine timed on every shape) rc=$?" | tee -a "$OUT/tests.txt"
SISA_CUDA_TRACE=1 timeout 120 $B/tests/conformance/conform --backend cuda > /tmp/testlogs/conform-trace.log 2>&1; echo "conform-cuda (traced) rc=$?" | tee -a "$OUT/tests.txt"
echo "fusions in conform: $(grep -c 'fused with AUGMENT .* and ' /tmp/testlogs/conform-trace.log) both, $(grep 'fused with' /tmp/testlogs/conform-trace.log | grep -vc ' and ') one" | tee -a "$OUT/tests.txt"
tar czf "$OUT/testlogs.tgz" -C /tmp testlogs

echo "== SDPA and SSM/AUGMENT (engine)"
SISA_CUDA_TRACE=1 timeout 200 $B/tests/bench_cuda 20 > "$OUT/bench_sisa.log" 2> "$OUT/bench_trace.log"
cat "$OUT/bench_sisa.log"
echo "== SDPA (PyTorch)"
timeout 120 python3 tools/bench/cuda/bench_torch.py 2>&1 | tee "$OUT/bench_torch.log"

echo "== 152M prefill B=8 T=2048 bf16"
pf() { # label, env...
  local label=$1; shift
  echo "-- $label" >> "$OUT/prefill.txt"
  env "$@" timeout 90 $S bench --config ${CFG:-sisa-152m-ds16} --dtype bf16 --compute bf16 --backend cuda \
    --batch 8 --tokens 2048 --reps 5 >> "$OUT/prefill.txt" 2>&1
  echo "$label: $(grep -E '^\| (SISA|Transformer)' "$OUT/prefill.txt" | tail -1)"
}
pf "SISA before (pad 16, unfused)" SISA_CUDA_QK_ALIGN=16 SISA_CUDA_FUSE=0
pf "SISA pad 32, unfused" SISA_CUDA_FUSE=0
pf "SISA pad 16, fused" SISA_CUDA_QK_ALIGN=16
pf "SISA after (pad 32, fused)"
pf "SISA after, cuDNN engine timed" SISA_CUDA_CUDNN_TUNE=1
pf "SISA after, traced" SISA_CUDA_TRACE=1
CFG=transformer-152m pf "Transformer"
echo "fusions in the traced prefill: $(grep -c 'fused with AUGMENT .* and ' "$OUT/prefill.txt") both, $(grep 'fused with' "$OUT/prefill.txt" | grep -vc ' and ') one"
timeout 150 python3 tools/bench/torch_prefill.py --scale 152m --ds 16 0 --batch 8 --tokens 2048 2>&1 | grep '^| [ST]'

echo "== per-op profile (4 forwards each)"
SISA_CUDA_QK_ALIGN=16 SISA_CUDA_FUSE=0 SISA_CUDA_CUDNN_TUNE=0 timeout 90 $S bench --config sisa-152m-ds16 --dtype bf16 \
  --compute bf16 --backend cuda --batch 8 --tokens 2048 --reps 2 --profile > /tmp/profile_before.txt 2>&1
timeout 90 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend cuda --batch 8 --tokens 2048 \
  --reps 2 --profile > /tmp/profile_after.txt 2>&1
cat /tmp/profile_before.txt /tmp/profile_after.txt > "$OUT/profile.txt"
echo "-- before"; grep -A 14 "per-op" /tmp/profile_before.txt
echo "-- after"; grep -A 14 "per-op" /tmp/profile_after.txt

echo "== summary"
grep -E "^(OK|FAIL|SKIP)|passed|rc=" "$OUT/tests.txt"
grep -E "chosen|fused with" "$OUT/bench_trace.log" | sort | uniq -c | head -20
