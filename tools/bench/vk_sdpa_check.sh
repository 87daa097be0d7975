#!/bin/bash
# The Vulkan coopmat attention kernel on a GPU in one call (docs/VULKAN.md, "Coopmat attention"):
# three SDPA conformance cases per kernel variant (0 = the kernel; 192 = both products emulated,
# the reference that isolates the matrix-unit operations; see shaders/sdpa_coopmat.comp), then
# with the kernel: the whole conformance suite, the smoke and golden tests, bench_vulkan --sdpa,
# and 152M prefill with bf16 activations on Vulkan (coopmat / scalar attention) and CUDA.
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/vk_sdpa_check.sh BUILDDIR; logs in $OUT.
set -u
B=${1:-build-gpu}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cases=("SDPA f16 B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1"
       "SDPA f16 B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1 form=B dc=64"
       "SDPA bf16 B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1")
for v in ${SISA_VK_SDPA_VARIANTS:-0 192}; do
  nf=0
  for c in "${cases[@]}"; do
    SISA_VK_DEBUG=1 SISA_VK_SDPA_VARIANT=$v timeout 40 $B/tests/conformance/conform --backend vulkan --case "$c" > "$OUT/conf-v$v.txt" 2>&1
    r=$?; line=$(grep -E "^(pass|FAIL|fail|error)" "$OUT/conf-v$v.txt" | head -1)
    k=$(grep -o "pipeline 'sdpa[^)]*)" "$OUT/conf-v$v.txt" | tr '\n' ' ')
    echo "variant $v rc=$r | $line | $k"; [ $r -ne 0 ] && nf=$((nf + 1))
  done
  echo "variant $v: $nf failing case(s)"
done
unset SISA_VK_SDPA_VARIANT
echo "== conform --backend vulkan"
timeout 90 $B/tests/conformance/conform --backend vulkan > "$OUT/conform.txt" 2>&1; echo "rc $?"
tail -2 "$OUT/conform.txt"; grep -E "^(FAIL|fail|error)" "$OUT/conform.txt" | head -5
echo "== smoke, golden"
timeout 90 python3 tools/run_tests.py $B --only vulkan_smoke golden --log "$OUT/tl" 2>&1 | tail -3
echo "== bench_vulkan --sdpa"
timeout 60 $B/tools/bench_vulkan 5 --sdpa 2>&1 | tee "$OUT/bench_sdpa.txt" | grep -E "SDPA|kernel"
echo "== 152M prefill B=8 T=2048, bf16 activations"
S=$B/tools/sisa
p() { timeout 45 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --batch 8 --tokens 2048 --reps 3 "$@" 2>&1 | tee -a "$OUT/prefill.txt" | grep -E '^\| SISA'; }
p --backend vulkan
SISA_VK_NO_COOPMAT_SDPA=1 p --backend vulkan
p --backend cuda
