#!/bin/bash
# One GPU call for this session's decode and Vulkan work, in priority order, under ~9.5 minutes
# (steps past their time are skipped and say so): CUDA decode correctness (test_decode with the
# persistent decode kernel's paths, the few-row MATMUL and SDPA conformance, the smoke test with
# the grid-barrier self-test), batch-1 decode tokens/s of SISA-152M d_s=16 (bf16 weights,
# 512-token prompt, 128 greedy tokens) for the CUDA-graph replay, the persistent decode kernel
# (SISA_CUDA_MEGA=1, docs/CUDA.md) and the previous kernels in the same run, the replay device
# time of each, the decode attention bench, a per-node profile, then
# tools/bench/vk_prefill_check.sh, then the trigger-first build (SC_PDL_TRIGGER_FIRST) if given.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_session.sh BUILD [TF_BUILD]
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
FINAL=$OUT; OUT=${SESSION_LOGS:-$(mktemp -d)} # logs here, packed into $FINAL/session-logs.tgz at the end (8 files
# come back); SESSION_LOGS=DIR keeps them where a caller can pack them if a time limit stops this script
mkdir -p "$OUT"
B=${1:-build-gpu}; TF=${2:-}
S=$B/tools/sisa
left() { [ $SECONDS -lt "$1" ]; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader
echo "== CUDA tests"
t() { local n=$1 lim=$2; shift 2; timeout "$lim" "$@" > "$OUT/t-$n.txt" 2>&1; echo "$n: rc $? | $(tail -1 "$OUT/t-$n.txt" | cut -c1-150)"; }
t decode 180 $B/tests/test_decode cuda
t conform-mm-sdpa 90 sh -c "$B/tests/conformance/conform --backend cuda --op MATMUL && $B/tests/conformance/conform --backend cuda --op SDPA"
[ -z "${NO_SMOKE:-}" ] && t smoke 120 $B/tests/test_cuda_smoke
grep -hE "^FAIL|FAIL " "$OUT"/t-*.txt | head -8
echo "== decode tok/s (SISA_DECODE_TIMING=1)"
$S init --config sisa-152m-ds16 --dtype bf16 -o /tmp/m152 >/dev/null
ids=$(python3 -c "print(','.join(str((i*7919)%50277) for i in range(512)))")
gen() { local n=$1 bin=$2; shift 2
  env "$@" SISA_DECODE_TIMING=1 timeout 40 $bin generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 128 --temp 0 --no-eos > "$OUT/ids.txt" 2> "$OUT/g-$n.txt"
  echo "$n: $(grep -o 'decode [0-9.]* s ([0-9.]* tok/s)' "$OUT/g-$n.txt") ids $(md5sum < "$OUT/ids.txt" | cut -c1-8) | $(grep -o 'split per step in us:.*' "$OUT/g-$n.txt" | cut -c23-)"; }
# GENS: "name:ENV=V,ENV=V name2:..." (default below); prev = the previous session's kernels;
# mega = the persistent decode kernel (1 block/SM), mega-bps2 its 128-register variant (2/SM),
# mega-nopf without the L2 prefetch at barriers, mega-every with a barrier after every task
GENS=${GENS:-"new mega:SISA_CUDA_MEGA=1 mega-bps2:SISA_CUDA_MEGA=1,SISA_CUDA_MEGA_BPS=2 mega-nopf:SISA_CUDA_MEGA=1,SISA_CUDA_MEGA_PREFETCH_MB=0 mega-every:SISA_CUDA_MEGA=1,SISA_CUDA_MEGA_PHASES=0 prev:SISA_CUDA_GEMV=old,SISA_CUDA_DECODE_ATTN=old cluster:SISA_CUDA_DECODE_ATTN=cluster"}
# the persistent kernel must finish a short run before its variants are timed (a hang costs 20 s, not 6 x 40)
if ! SISA_CUDA_MEGA=require timeout 20 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 8 --temp 0 --no-eos > "$OUT/mega-gate.txt" 2>&1; then
  echo "persistent kernel gate FAILED (rc $?): $(tail -3 "$OUT/mega-gate.txt" | cut -c1-300)"; GENS=$(echo "$GENS" | tr ' ' '\n' | grep -v MEGA | tr '\n' ' '); NOMEGA=1
fi
[ -z "${NOMEGA:-}" ] && echo "persistent kernel: $(SISA_CUDA_MEGA=1 SISA_CUDA_TRACE=1 timeout 20 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 4 --temp 0 --no-eos 2>&1 >/dev/null | grep -E "persistent kernel|no persistent kernel" | sort | uniq -c | cut -c1-400)"
AGAIN="new-again"; [ -z "${NOMEGA:-}" ] && AGAIN="$AGAIN mega-again:SISA_CUDA_MEGA=1"
for g in $GENS $AGAIN; do
  e=${g#*:}; [ "$e" = "$g" ] && e=""
  gen "${g%%:*}" $S ${e//,/ }
done
[ -n "$TF" ] && gen trigger-first $TF/tools/sisa
echo "== replay device time per step (SISA_CUDA_PROFILE=1; the persistent kernel's includes its task copy)"
REPLAYS=${REPLAYS:-"new SISA_CUDA_MEGA=1 SISA_CUDA_MEGA=1,SISA_CUDA_MEGA_BPS=2 SISA_CUDA_MEGA=1,SISA_CUDA_MEGA_PREFETCH_MB=0 SISA_CUDA_MEGA=1,SISA_CUDA_MEGA_PHASES=0 SISA_CUDA_GEMV=old,SISA_CUDA_DECODE_ATTN=old"}
[ -n "${NOMEGA:-}" ] && REPLAYS=$(echo "$REPLAYS" | tr ' ' '\n' | grep -v MEGA | tr '\n' ' ')
for v in $REPLAYS; do
  [ "$v" = new ] && v=""; v=${v//,/ }
  echo "${v:-new}: $(env $v SISA_CUDA_PROFILE=1 timeout 60 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 32 --temp 0 --no-eos 2>&1 >/dev/null | grep -o 'replays, .*')"
done
if [ -z "${NO_NODEPROF:-}" ]; then
echo "== per-node device times (no graph, each node alone), new kernels"
SISA_CUDA_PDL=0 SISA_CUDA_PROFILE=1 SISA_CUDA_NO_GRAPH=1 timeout 60 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 32 --temp 0 --no-eos 2>&1 >/dev/null | grep "cuda profile" > "$OUT/profile.txt"
grep -A14 "us/run" "$OUT/profile.txt" | tail -15 | cut -c15-100
echo "== bench_cuda decode (attention kernels alone)"
left 300 && timeout 60 $B/tests/bench_cuda 30 decode 2>&1 | tee "$OUT/bench_decode.txt" | grep -vE "^\s*$" | tail -14
fi
if [ -n "$TF" ] && left 360; then
  echo "== trigger-first build: test_decode"; t tf-decode 90 $TF/tests/test_decode cuda
fi
echo "== Vulkan (vk_prefill_check.sh) at ${SECONDS}s"
[ -z "${NO_VK:-}" ] && left ${VK_BY:-330} && OUT=$OUT bash tools/bench/vk_prefill_check.sh $B
echo "done at ${SECONDS}s"
tar czf "$FINAL/session-logs.tgz" -C "$OUT" .
