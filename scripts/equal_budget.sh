# Shell functions for training several models at equal wall-clock budgets on one machine, sourced by
# scripts/compare_cyclegan.sh and scripts/compare_msgan.sh. Each model gets BUDGET_S seconds: a short
# calibration run measures its it/s, and its --iters is set so that its whole schedule (the decay to
# lr 0 included) fits the budget. Expects WORK, DATA and BUDGET_S; sets RESULTS (created) and COMMON,
# the options every model shares: 64 px crops of the 128 px images (as the bundled model), batch 1,
# THREADS threads (default 2: the machine's 2 cores). Resumable: a model whose .iters file exists is not calibrated again, and a
# run with a latest.pt is resumed.
CALIBRATION_STEPS=60
COMMON=(--img-size 64 --load-size 128 --batch-size 1 --workers 1 --threads "${THREADS:-2}" --seed 0)
RESULTS="$WORK/results"
mkdir -p "$RESULTS"

mean_it_per_s() {  # a calibration run's mean it/s, its first 10 steps (warm-up) left out
  awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == "it_per_s") c = i; next}
           NR > 11 {s += $c; n++} END {printf "%.4f", s / n}' "$1/log.csv"
}

train_for_budget() {  # NAME ARGS...: calibrate, then train BUDGET_S seconds' worth of iterations
  local name="$1"; shift
  local run="$WORK/$name"
  if [ ! -f "$WORK/$name.iters" ]; then
    rm -rf "$WORK/${name}_calibration"
    nicegan train "$DATA" --out "$WORK/${name}_calibration" "$@" "${COMMON[@]}" --iters "$CALIBRATION_STEPS" \
        --log-every 1 --n-samples 0 --save-every "$CALIBRATION_STEPS" --snapshot-every 0
    awk -v r="$(mean_it_per_s "$WORK/${name}_calibration")" -v b="$BUDGET_S" 'BEGIN {printf "%d\n", r * b}' \
        > "$WORK/$name.iters"
  fi
  local resume=(); [ -f "$run/latest.pt" ] && resume=(--resume)
  nicegan train "$DATA" --out "$run" "$@" "${COMMON[@]}" --iters "$(cat "$WORK/$name.iters")" --save-every 250 \
      --sample-every 1000 --snapshot-every 0 "${resume[@]}"
  tail -n 1 "$run/log.csv" > "$RESULTS/${name}_last_log_row.csv"   # elapsed_s: the wall time it took
}
