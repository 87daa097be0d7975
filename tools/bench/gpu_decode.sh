#!/bin/bash
# Decode on the GPU machine in one call (METHOD.md): the decode-related tests on CUDA, then batch-1
# decode of SISA-152M d_s=16 (bf16 weights, 512-token prompt, 128 greedy tokens — gpu_all.sh's
# command line) on CUDA with each decode path switched on/off, with the
# host-timed per-step split (SISA_DECODE_TIMING=1); the default and the previous GEMV kernel
# (SISA_CUDA_GEMV=old) run twice (first and last) to show the drift; DECODE_EXTRA="A=1,B=2 C=3"
# adds variants; kernel nodes per recorded step; per-node device times of a step
# (SISA_CUDA_PROFILE=1) and the replay's device time. Logs in $OUT.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_decode.sh [BUILDDIR] [--no-tests]
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu}
S=$B/tools/sisa
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "${2:-}" != "--no-tests" ]; then
  echo "== tests (CUDA)"
  t() { local n=$1; shift; timeout "$@" > "$OUT/test-$n.txt" 2>&1; echo "$n: rc $? | $(tail -1 "$OUT/test-$n.txt")"; }
  t decode 300 $B/tests/test_decode cuda
  t cuda_smoke 120 $B/tests/test_cuda_smoke
  t golden 120 $B/tests/test_golden tests/golden cuda
  t conform 200 $B/tests/conformance/conform --backend cuda
  t decode-early 300 env SISA_CUDA_GEMV_EARLY=1 $B/tests/test_decode cuda
  t conform-gemv-early 200 env SISA_CUDA_GEMV_EARLY=1 $B/tests/conformance/conform --backend cuda --op MATMUL
  grep -E "FAIL" "$OUT"/test-*.txt | head -20
  tar czf "$OUT/tests.tgz" -C "$OUT" $(cd "$OUT" && ls test-*.txt) && rm -f "$OUT"/test-*.txt
fi
echo "== decode: batch 1, SISA-152M d_s=16 bf16, 512-token prompt, 128 new tokens, greedy"
$S init --config sisa-152m-ds16 --dtype bf16 -o /tmp/m152 >/dev/null
ids=$(python3 -c "print(','.join(str((i*7919)%50277) for i in range(512)))")
gen() { # name backend env...
  local n=$1 be=$2; shift 2
  env "$@" SISA_DECODE_TIMING=1 timeout 120 $S generate -m /tmp/m152 --backend $be --tokens "$ids" \
      -n 128 --temp 0 --no-eos > "$OUT/ids-$n.txt" 2> "$OUT/decode-$n.txt"
  echo "$n: $(grep -o 'decode [0-9.]* s ([0-9.]* tok/s)' "$OUT/decode-$n.txt") ids-md5 $(md5sum < "$OUT/ids-$n.txt" | cut -c1-8)"
  grep "^decode steps" "$OUT/decode-$n.txt" | tail -1
}
# Each variant: NAME BACKEND [ENV=VALUE ...]; the default and the previous kernel (SISA_CUDA_GEMV=old) run
# first and last to show the drift within the call.
gen cuda cuda
gen cuda-gemv-old cuda SISA_CUDA_GEMV=old
gen cuda-noprefetch cuda SISA_CUDA_GEMV_PREFETCH=0
gen cuda-early cuda SISA_CUDA_GEMV_EARLY=1
gen cuda-bps1 cuda SISA_CUDA_GEMV_BPS=1
gen cuda-bps4 cuda SISA_CUDA_GEMV_BPS=4
gen cuda-nopdl cuda SISA_CUDA_PDL=0
gen cuda-nograph cuda SISA_CUDA_NO_GRAPH=1
gen cuda-nofusegemv cuda SISA_CUDA_FUSE_GEMV=0
for v in ${DECODE_EXTRA:-}; do gen "cuda-$v" cuda "${v//,/ }"; done
gen cuda-again cuda
gen cuda-gemv-old-again cuda SISA_CUDA_GEMV=old
echo "== kernel nodes per recorded step (SISA_CUDA_TRACE)"
for v in "" SISA_CUDA_GEMV=old; do
  echo "${v:-default}: $(env $v SISA_CUDA_TRACE=1 timeout 60 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 4 --temp 0 --no-eos 2>&1 >/dev/null | grep -o 'CUDA graph of [0-9]* kernel nodes, [0-9]* other' | tail -1)"
done
echo "== per-node device time of a step (SISA_CUDA_PROFILE=1, no CUDA graph: each node waited for alone) and replay time"
for v in "" SISA_CUDA_GEMV=old; do
  echo "-- ${v:-default}"
  env $v SISA_CUDA_PDL=0 SISA_CUDA_PROFILE=1 SISA_CUDA_NO_GRAPH=1 timeout 120 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 32 --temp 0 --no-eos 2>&1 >/dev/null | grep "cuda profile" > "$OUT/profile-nodes${v:+-old}.txt"
  grep -A16 "us/run" "$OUT/profile-nodes${v:+-old}.txt" | tail -17 | cut -c15-110
done
for v in "" SISA_CUDA_GEMV=old SISA_CUDA_GEMV_EARLY=1 SISA_CUDA_PDL=0; do
  echo "${v:-default}: $(env $v SISA_CUDA_PROFILE=1 timeout 120 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 32 --temp 0 --no-eos 2>&1 >/dev/null | grep 'CUDA-graph replays')"
done
echo "== fused launches per decode (SISA_CUDA_TRACE, 4 new tokens)"
SISA_CUDA_TRACE=1 timeout 60 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 4 --temp 0 --no-eos 2>&1 >/dev/null | grep -o "fused [A-Z_]*\|SSM_CHANNELS '[^']*' fused" | sed "s/'.*'//" | sort | uniq -c
