#!/bin/bash
# Vulkan prefill check in one GPU call (< 4 min): correctness of the kernels this branch changed
# (128-bit shared stores in sdpa_coopmat and matmul_coopmat), then old (SISA_VK_SHARED16=1: the
# 16-bit stores of before) against new in the same process lifetime of the machine:
# bench_vulkan attention and MATMUL rows, and the 152M prefill (bf16 weights and activations, B=8
# T=2048) on Vulkan and CUDA. The attention bench runs new, old, new so run-to-run noise shows;
# SM clocks, power and throttle reasons are sampled during the whole call (clocks.csv), because
# earlier calls showed timings that moved 3x with identical pipelines (docs/VULKAN.md).
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/vk_prefill_check.sh [BUILDDIR]; logs in $OUT.
set -u
B=${1:-build-gpu}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=$B/tools/sisa
W=$(mktemp -d) # raw outputs; everything ends up in $OUT/check.txt
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,clocks_throttle_reasons.active \
  --format=csv -lms 500 > "$OUT/clocks.csv" 2>&1 &
smi=$!
left() { [ $SECONDS -lt "$1" ]; } # skip optional steps once the call runs long

echo "== correctness (new kernels)"
for op in SDPA MATMUL; do
  timeout 60 $B/tests/conformance/conform --backend vulkan --op $op > "$W/conform-$op.txt" 2>&1
  echo "conform --op $op rc $?: $(tail -1 "$W/conform-$op.txt")"
done
cases=("SDPA f16 B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1"
       "SDPA f16 B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1 form=B dc=64"
       "SDPA bf16 B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1")
i=0
for c in "${cases[@]}"; do
  i=$((i + 1))
  SISA_VK_DEBUG=1 timeout 30 $B/tests/conformance/conform --backend vulkan --case "$c" > "$W/case$i.txt" 2>&1
  r=$?; echo "rc=$r | $(grep -E '^(pass|FAIL|fail|error)' "$W/case$i.txt" | head -1) | $(grep -o "pipeline 'sdpa[^)]*)" "$W/case$i.txt" | tr '\n' ' ')"
done
timeout 60 $B/tests/test_vulkan_smoke > "$W/vulkan_smoke.txt" 2>&1; echo "vulkan_smoke rc $?: $(tail -1 "$W/vulkan_smoke.txt")"

echo "== 152M prefill B=8 T=2048 bf16: vulkan new, vulkan old, cuda"
p() { local n=$1; shift; timeout 40 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --batch 8 --tokens 2048 --reps 3 "$@" > "$W/prefill-$n.txt" 2>&1; }
p 3cuda --backend cuda # first: it also brings the clocks up from idle (345 MHz seen) before the timings
p 1new --backend vulkan
SISA_VK_SHARED16=1 p 2old --backend vulkan
echo "== bench_vulkan --sdpa: new, old (SISA_VK_SHARED16=1), new"
bs() { timeout 45 $B/tools/bench_vulkan 15 --sdpa > "$W/sdpa-$1.txt" 2>&1; }
bs 1new; SISA_VK_SHARED16=1 bs 2old; left 170 && bs 3new
echo "== bench_vulkan --matmul --no-f32: new, old"
bm() { timeout 40 $B/tools/bench_vulkan 15 --matmul --no-f32 > "$W/mm-$1.txt" 2>&1; }
left 190 && bm 1new; left 205 && SISA_VK_SHARED16=1 bm 2old

kill "$smi" 2>/dev/null
for f in "$W"/*.txt; do echo "==== $(basename "$f")"; cat "$f"; done > "$OUT/check.txt"
cat "$W"/tl/*.txt >> "$OUT/check.txt" 2>/dev/null
awk -F, 'NR > 1 { n++; c = $2 + 0; s += c; if (n == 1 || c < lo) lo = c; if (c > hi) hi = c }
  END { if (n) printf "SM clock MHz during the call: mean %.0f, min %.0f, max %.0f (%d samples, clocks.csv)\n", s / n, lo, hi, n }' "$OUT/clocks.csv"

echo; echo "== summary: GPU-timestamp ms (median of 15); old = SISA_VK_SHARED16=1 (16-bit shared stores), same call"
python3 - "$W" <<'PY'
import glob, os, re, sys
w = sys.argv[1]
def rows(path):
    out = {}
    for line in open(path, errors="replace"):
        f = [x.strip() for x in line.split("|")]
        if len(f) > 6 and (f[1].startswith("SDPA") or f[1].startswith("MATMUL")):
            out.setdefault((f[1], f[2]), f[4])
    return out
for kind, runs in (("sdpa", ["1new", "2old", "3new"]), ("mm", ["1new", "2old"])):
    cols = [rows(os.path.join(w, f"{kind}-{r}.txt")) if os.path.exists(os.path.join(w, f"{kind}-{r}.txt")) else {} for r in runs]
    keys = [k for c in cols for k in c]
    seen = []
    [seen.append(k) for k in keys if k not in seen]
    print("| %-44s | %-4s | %s |" % ("case", "dtype", " | ".join("%9s" % r for r in runs)))
    for k in seen:
        print("| %-44s | %-4s | %s |" % (k[0], k[1], " | ".join("%9s" % c.get(k, "-") for c in cols)))
for r in ("1new", "2old", "3cuda"):
    p = os.path.join(w, f"prefill-{r}.txt")
    tok = "-"
    if os.path.exists(p):
        for line in open(p, errors="replace"):
            f = [x.strip() for x in line.split("|")]
            if len(f) > 7 and f[1].startswith("SISA"):
                tok = f[6]
    print(f"prefill {r}: {tok} tok/s")
PY
rm -rf "$W"
