#!/bin/bash
# Vulkan coopmat MATMUL: the 152M shapes (bench_vulkan --matmul) for the default tiles and a list
# of alternatives (SISA_VK_MM_TILES=BM,BN,BK,WM,WN[,stages]; a config the device cannot hold
# prints an error row), then the 152M prefill with bf16 activations on Vulkan and CUDA in the
# same call, with the per-op profile. One call on the GPU machine (METHOD.md).
# Usage (after `source .devdeps/setup.sh`): bash tools/bench/vk_matmul_sweep.sh BUILDDIR; logs in $OUT.
# SISA_SWEEP_TILES="cfg ..." replaces the list. bf16 rows varied up to 3x between two calls (docs/VULKAN.md):
# the SM clock, power and throttle reasons are logged before each config.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
B=${1:-build-gpu}
S=$B/tools/sisa
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
TILES=${SISA_SWEEP_TILES:-"128,128,32,64,32,2 128,128,32,64,64 128,128,32,64,64,2 128,256,32,64,64 256,128,32,64,64 128,128,64,64,32 128,128,64,64,64 64,128,32,32,64,2"}
echo "== coopmat MATMUL, default tiles (128,128,32,64,32, 1 stage)" | tee "$OUT/sweep.txt"
timeout 120 "$B/tools/bench_vulkan" 5 --matmul --no-f32 2>&1 | tee -a "$OUT/sweep.txt" | grep '^| MATMUL'
clk() { nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader | tee -a "$OUT/sweep.txt"; }
clk
for t in $TILES; do
  echo "== SISA_VK_MM_TILES=$t" | tee -a "$OUT/sweep.txt"
  clk
  SISA_VK_MM_TILES=$t timeout 120 "$B/tools/bench_vulkan" 5 --matmul --no-f32 2>&1 | tee -a "$OUT/sweep.txt" | grep '^| MATMUL'
done
echo "== 152M prefill B=8 T=2048, bf16 weights and activations: vulkan, then cuda"
for be in vulkan cuda; do
  timeout 120 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend $be --batch 8 --tokens 2048 --reps 3 2>&1 |
    tee -a "$OUT/prefill.txt" | grep -E '^\| SISA'
done
timeout 120 $S bench --config sisa-152m-ds16 --dtype bf16 --compute bf16 --backend vulkan --batch 8 --tokens 2048 --reps 2 \
  --profile > "$OUT/profile-vulkan.txt" 2>&1
grep -A 14 "per-op" "$OUT/profile-vulkan.txt"
