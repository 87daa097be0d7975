#!/bin/bash
# Vulkan prefill check in one GPU call (< 5 min): correctness of the coopmat kernels by default and
# with their opt-in paths, then both timed in the same call:
#   default = uvec4 shared tiles (128-bit stores), bf16 range maxima at the top of each key block,
#             bf16 -> f16 through fp32 (measured on the H100 2026-12-07)
#   new     = SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1: range maxima one key block ahead (one
#             barrier per block) and bf16 -> f16 by integer exponent re-bias (opt-in: emulated
#             matrix units only so far)
#   ahead / cint = one of the two; old = SISA_VK_SHARED16=1 (the 16-bit shared stores of before)
#   shadow  = SISA_VK_SHADOW=1: f16 shadow of constant bf16 weights, converted once instead of in
#             the MATMUL loop (opt-in; checked bit for bit against the loop by
#             tests/test_vulkan_shadow first, on the real matrix units)
#   pre     = SISA_VK_SDPA_PREPASS=1: bf16 attention operands converted to f16 by a pre-pass before
#             the coopmat kernel (opt-in: emulated matrix units only so far); checked bit for bit
#             against the in-loop conversion by tests/test_vulkan_prepass on the real matrix units,
#             conform --op SDPA with it; timed in the prefill and the bf16 attention rows (the
#             pre-pass dispatches are inside bench_vulkan's timed command buffer)
# bench_vulkan attention and MATMUL rows (bf16 rows for the bf16-only switches) and the 152M
# prefill (bf16 weights and activations, B=8 T=2048) on Vulkan and CUDA (first: it brings the
# clocks up from idle). The most important steps run first; later ones are skipped when the call
# runs long (left()). SM clocks, power and throttle reasons are sampled during the whole call
# (clocks.csv): the clock idles at 345 MHz and a cold process's first rows run while it ramps
# (docs/VULKAN.md).
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/vk_prefill_check.sh [BUILDDIR]; logs in $OUT.
set -u
B=${1:-build-gpu}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=$B/tools/sisa
W=$OUT/vk-raw; mkdir -p "$W" # raw outputs (kept in $OUT if a time limit stops the script); all end up in $OUT/check.txt
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,clocks_throttle_reasons.active \
  --format=csv -lms 500 > "$OUT/clocks.csv" 2>&1 &
smi=$!
left() { [ $SECONDS -lt "$1" ]; } # skip optional steps once the call runs long

NEW="SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1"
echo "== correctness: default, then the opt-in paths ($NEW)"
for v in "" "$NEW"; do
  for op in SDPA MATMUL; do
    env $v timeout 60 $B/tests/conformance/conform --backend vulkan --op $op > "$W/conform-$op${v:+-new}.txt" 2>&1
    echo "${v:-default}: conform --op $op rc $?: $(tail -1 "$W/conform-$op${v:+-new}.txt")"
  done
  [ -n "${VK_QUICK:-}" ] && continue # VK_QUICK=1: the short form (no smoke test, no single cases, no profile)
  env $v timeout 90 $B/tests/test_vulkan_smoke > "$W/vulkan_smoke${v:+-new}.txt" 2>&1
  echo "${v:-default}: vulkan_smoke rc $?: $(tail -1 "$W/vulkan_smoke${v:+-new}.txt")"
done
timeout 60 $B/tests/test_vulkan_shadow > "$W/vulkan_shadow.txt" 2>&1
echo "f16 shadow vs bf16 loop (bits): test_vulkan_shadow rc $?: $(tail -1 "$W/vulkan_shadow.txt")"
PRE="SISA_VK_SDPA_PREPASS=1"
timeout 60 $B/tests/test_vulkan_prepass > "$W/vulkan_prepass.txt" 2>&1
echo "bf16 attention pre-pass vs in-loop conversion (bits): test_vulkan_prepass rc $?: $(tail -1 "$W/vulkan_prepass.txt")"
env $PRE timeout 60 $B/tests/conformance/conform --backend vulkan --op SDPA > "$W/conform-SDPA-pre.txt" 2>&1
echo "pre-pass: conform --op SDPA rc $?: $(tail -1 "$W/conform-SDPA-pre.txt")"
cases=("SDPA f16 B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1"
       "SDPA f16 B=1 H=12 Tq=17 Tk=17 dqk=80 dv=64 causal=1 form=B dc=64"
       "SDPA bf16 B=2 H=12 Tq=113 Tk=113 dqk=80 dv=64 causal=1")
i=0
for c in "${cases[@]}"; do
  [ -n "${VK_QUICK:-}" ] && break
  i=$((i + 1))
  SISA_VK_DEBUG=1 timeout 30 $B/tests/conformance/conform --backend vulkan --case "$c" > "$W/case$i.txt" 2>&1
  r=$?; echo "rc=$r | $(grep -E '^(pass|FAIL|fail|error)' "$W/case$i.txt" | head -1) | $(grep -o "pipeline 'sdpa[^)]*)" "$W/case$i.txt" | tr '\n' ' ')"
done

bs() { local r=$1; shift; timeout 45 $B/tools/bench_vulkan 15 --sdpa "$@" > "$W/sdpa-$r.txt" 2>&1
  grep -E '^\| *SDPA' "$W/sdpa-$r.txt" | cut -c1-110 | sed "s/^/$r /"; }
bm() { local r=$1; shift; timeout 45 $B/tools/bench_vulkan 15 --matmul --no-f32 "$@" > "$W/mm-$r.txt" 2>&1; }
p() { local r=$1; shift; timeout 40 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --batch 8 --tokens 2048 --reps 3 "$@" > "$W/prefill-$r.txt" 2>&1
  echo "prefill $r rc $?: $(grep -E '^\| *SISA' "$W/prefill-$r.txt" | head -1 | cut -c1-150)"; }
echo "== 152M prefill B=8 T=2048 bf16: cuda, vulkan default, vulkan shadow, vulkan new, vulkan pre"
p 4cuda --backend cuda
p 1dflt --backend vulkan
SISA_VK_SHADOW=1 p 3shadow --backend vulkan
SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1 p 2new --backend vulkan
SISA_VK_SDPA_PREPASS=1 p 7pre --backend vulkan
echo "== per-op profile of the vulkan prefill (--profile --reps 2): default, new"
[ -z "${VK_QUICK:-}" ] && left 150 && p 5prof --backend vulkan --profile --reps 2
[ -z "${VK_QUICK:-}" ] && left 165 && SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1 p 6profnew --backend vulkan --profile --reps 2
echo "== bench_vulkan --sdpa: default; bf16 rows: new, pre, ahead, cint"
bs 1dflt; SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1 bs 2new --bf16; SISA_VK_SDPA_PREPASS=1 bs 7pre --bf16
left 175 && SISA_VK_SDPA_RANGE_AHEAD=1 bs 3ahead --bf16; left 185 && SISA_VK_CVT_INT=1 bs 4cint --bf16
echo "== bench_vulkan --matmul --no-f32: default; bf16 rows: shadow, cint"
left 190 && bm 1dflt; left 198 && SISA_VK_SHADOW=1 bm 4shadow --bf16
left 205 && SISA_VK_CVT_INT=1 bm 2cint --bf16
echo "== optional: attention old (SHARED16) and default again (noise); matmul old"
left 210 && SISA_VK_SHARED16=1 bs 5old
left 213 && bs 6dflt
left 216 && SISA_VK_SHARED16=1 bm 3old
kill "$smi" 2>/dev/null
for f in "$W"/*.txt; do echo "==== $(basename "$f")"; cat "$f"; done > "$OUT/check.txt"
cat "$W"/tl/*.txt >> "$OUT/check.txt" 2>/dev/null
awk -F, 'NR > 1 { n++; c = $2 + 0; s += c; if (n == 1 || c < lo) lo = c; if (c > hi) hi = c }
  END { if (n) printf "SM clock MHz during the call: mean %.0f, min %.0f, max %.0f (%d samples, clocks.csv)\n", s / n, lo, hi, n }' "$OUT/clocks.csv"

echo; echo "== summary: GPU-timestamp ms (median of 15), same call; new = SISA_VK_SDPA_RANGE_AHEAD=1 SISA_VK_CVT_INT=1, ahead / cint = one of them, old = SISA_VK_SHARED16=1, shadow = SISA_VK_SHADOW=1, pre = SISA_VK_SDPA_PREPASS=1 (header)"
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
for kind, runs in (("sdpa", ["1dflt", "2new", "7pre", "3ahead", "4cint", "5old", "6dflt"]), ("mm", ["1dflt", "4shadow", "2cint", "3old"])):
    cols = [rows(os.path.join(w, f"{kind}-{r}.txt")) if os.path.exists(os.path.join(w, f"{kind}-{r}.txt")) else {} for r in runs]
    keys = [k for c in cols for k in c]
    seen = []
    [seen.append(k) for k in keys if k not in seen]
    print("| %-44s | %-4s | %s |" % ("case", "dtype", " | ".join("%9s" % r for r in runs)))
    for k in seen:
        print("| %-44s | %-4s | %s |" % (k[0], k[1], " | ".join("%9s" % c.get(k, "-") for c in cols)))
for r in ("1dflt", "3shadow", "2new", "7pre", "4cuda"):
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
