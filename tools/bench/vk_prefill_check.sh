#!/bin/bash
# Vulkan prefill check in one GPU call (< 4 min): correctness of the kernels this branch changed
# (128-bit shared stores in sdpa_coopmat and matmul_coopmat; bf16 attention's range maxima reduced
# one key block ahead; bf16 -> f16 by integer exponent re-bias in both coopmat kernels), then the
# switches that bring each old path back, timed against the new one in the same call:
#   rtop = SISA_VK_SDPA_RANGE_TOP=1 (bf16 attention: range maxima at the top of each block, two barriers)
#   cvtf = SISA_VK_CVT_FLOAT=1 (bf16 -> f16 through fp32 for every value)
#   old  = SISA_VK_SHARED16=1 (16-bit shared stores)
#   base = all three (the coopmat kernels as before 2026-12-07)
# bench_vulkan attention and MATMUL rows (the bf16-only switches on bf16 rows only) and the 152M
# prefill (bf16 weights and activations, B=8 T=2048) on Vulkan (new, base, rtop) and CUDA. The
# most important steps run first; later ones are skipped when the call runs long (left()).
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

bs() { local r=$1; shift; timeout 45 $B/tools/bench_vulkan 15 --sdpa "$@" > "$W/sdpa-$r.txt" 2>&1; }
bm() { local r=$1; shift; timeout 45 $B/tools/bench_vulkan 15 --matmul --no-f32 "$@" > "$W/mm-$r.txt" 2>&1; }
p() { local r=$1; shift; timeout 40 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --batch 8 --tokens 2048 --reps 3 "$@" > "$W/prefill-$r.txt" 2>&1; }
echo "== 152M prefill B=8 T=2048 bf16: cuda, vulkan new, vulkan base"
p 4cuda --backend cuda # first: it also brings the clocks up from idle (345 MHz seen) before the timings
p 1new --backend vulkan
SISA_VK_SHARED16=1 SISA_VK_SDPA_RANGE_TOP=1 SISA_VK_CVT_FLOAT=1 p 2base --backend vulkan
echo "== bench_vulkan --sdpa: new; bf16 rows: rtop, cvtf"
bs 1new; SISA_VK_SDPA_RANGE_TOP=1 bs 2rtop --bf16; left 175 && SISA_VK_CVT_FLOAT=1 bs 3cvtf --bf16
echo "== bench_vulkan --matmul --no-f32: new; bf16 rows: cvtf"
left 165 && bm 1new; left 185 && SISA_VK_CVT_FLOAT=1 bm 2cvtf --bf16
echo "== optional: prefill rtop; attention old (SHARED16) and new again (noise); matmul old"
left 190 && SISA_VK_SDPA_RANGE_TOP=1 p 3rtop --backend vulkan
left 190 && SISA_VK_SHARED16=1 bs 4old
left 190 && bs 5new
left 190 && SISA_VK_SHARED16=1 bm 3old
kill "$smi" 2>/dev/null
for f in "$W"/*.txt; do echo "==== $(basename "$f")"; cat "$f"; done > "$OUT/check.txt"
cat "$W"/tl/*.txt >> "$OUT/check.txt" 2>/dev/null
awk -F, 'NR > 1 { n++; c = $2 + 0; s += c; if (n == 1 || c < lo) lo = c; if (c > hi) hi = c }
  END { if (n) printf "SM clock MHz during the call: mean %.0f, min %.0f, max %.0f (%d samples, clocks.csv)\n", s / n, lo, hi, n }' "$OUT/clocks.csv"

echo; echo "== summary: GPU-timestamp ms (median of 15; attention 5), same call; rtop = SISA_VK_SDPA_RANGE_TOP=1, cvtf = SISA_VK_CVT_FLOAT=1, old = SISA_VK_SHARED16=1, base = all three (header)"
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
for kind, runs in (("sdpa", ["1new", "2rtop", "3cvtf", "4old", "5new"]), ("mm", ["1new", "2cvtf", "3old"])):
    cols = [rows(os.path.join(w, f"{kind}-{r}.txt")) if os.path.exists(os.path.join(w, f"{kind}-{r}.txt")) else {} for r in runs]
    keys = [k for c in cols for k in c]
    seen = []
    [seen.append(k) for k in keys if k not in seen]
    print("| %-44s | %-4s | %s |" % ("case", "dtype", " | ".join("%9s" % r for r in runs)))
    for k in seen:
        print("| %-44s | %-4s | %s |" % (k[0], k[1], " | ".join("%9s" % c.get(k, "-") for c in cols)))
for r in ("1new", "2base", "3rtop", "4cuda"):
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
