#!/bin/bash
# The shortest useful GPU call (~3 minutes) for when device time is nearly spent: the persistent
# decode kernel (SISA_CUDA_MEGA) and the Vulkan f16 weight shadow checked and timed against the
# defaults in the same run. Every line is printed as it finishes (a call stopped by its limit
# still shows what ran). Longer forms: gpu_session.sh, vk_prefill_check.sh.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/gpu_quick.sh [BUILDDIR]
set -u
B=${1:-build-gpu}
S=$B/tools/sisa
FINAL=${OUT:-/tmp/out}; OUT=/tmp/gpu-quick; mkdir -p "$FINAL" "$OUT" # raw logs, packed into $FINAL/quick-logs.tgz
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader
$S init --config sisa-152m-ds16 --dtype bf16 -o /tmp/m152 >/dev/null
ids=$(python3 -c "print(','.join(str((i*7919)%50277) for i in range(512)))")
gen() { local n=$1; shift
  env "$@" SISA_DECODE_TIMING=1 timeout 30 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 128 --temp 0 --no-eos > "$OUT/ids-$n.txt" 2> "$OUT/g-$n.txt"
  echo "decode $n rc $?: $(grep -o 'decode [0-9.]* s ([0-9.]* tok/s)' "$OUT/g-$n.txt") ids $(md5sum < "$OUT/ids-$n.txt" | cut -c1-8) | $(grep -o 'split per step in us:.*' "$OUT/g-$n.txt" | cut -c23-) $(grep -i -m1 'error\|persistent' "$OUT/g-$n.txt" | cut -c1-200)"; }
echo "== decode (SISA-152M d_s=16 bf16, 512-token prompt, 128 greedy tokens): CUDA graph vs persistent kernel"
gen new
gen mega SISA_CUDA_MEGA=require
gen new-again
gen mega-again SISA_CUDA_MEGA=require
for v in "" SISA_CUDA_MEGA=require; do
  echo "replay ${v:-graph}: $(env $v SISA_CUDA_PROFILE=1 timeout 20 $S generate -m /tmp/m152 --backend cuda --tokens "$ids" -n 32 --temp 0 --no-eos 2>&1 >/dev/null | grep -o 'replays, .*')"
done
echo "== test_decode cuda (every step path, the persistent kernel's too, against the forward)"
timeout 60 $B/tests/test_decode cuda > "$OUT/test_decode.txt" 2>&1; echo "rc $?: $(grep -c -i fail "$OUT/test_decode.txt") lines with FAIL; $(tail -1 "$OUT/test_decode.txt")"
echo "== Vulkan f16 shadow of bf16 weights"
timeout 40 $B/tests/test_vulkan_shadow > "$OUT/shadow.txt" 2>&1; echo "test_vulkan_shadow rc $?: $(tail -1 "$OUT/shadow.txt")"
timeout 40 $B/tests/conformance/conform --backend vulkan --op MATMUL > "$OUT/conform-mm.txt" 2>&1; echo "conform vulkan MATMUL rc $?: $(tail -1 "$OUT/conform-mm.txt")"
p() { local r=$1; shift
  env "$@" timeout 35 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --batch 8 --tokens 2048 --reps 3 --backend ${BE:-vulkan} > "$OUT/prefill-$r.txt" 2>&1
  echo "prefill $r rc $?: $(grep -E '^\| *SISA' "$OUT/prefill-$r.txt" | head -1 | cut -c1-150)"; }
echo "== 152M prefill B=8 T=2048 bf16 (CUDA first: clocks up)"
BE=cuda p cuda
p shadow SISA_VK_SHADOW=1
p noshadow
p new SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1
p shadow-again SISA_VK_SHADOW=1
echo "done at ${SECONDS}s"
tar czf "$FINAL/quick-logs.tgz" -C "$OUT" .
