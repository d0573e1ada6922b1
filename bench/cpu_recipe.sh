#!/usr/bin/env bash
# The CPU training recipe of docs/BENCHMARKS.md ("Beauty at full quality on the CPU") and the runs
# behind it, on the 2-core development machine, one run at a time (each with both cores).
#
#   AMSRM_DATA=/path/to/data bench/cpu_recipe.sh screen NAME [FLAGS…]  # seed 0, 150 s, the recipe + FLAGS
#       (the screens of docs/BENCHMARKS.md: "bf16 --precision bf16", "bucket --bucket-by-length", …)
#   AMSRM_DATA=/path/to/data bench/cpu_recipe.sh beauty   # the recipe, seeds 0 1 2, 600 s cap each
#   AMSRM_DATA=/path/to/data bench/cpu_recipe.sh ml-100k  # the same recipe on ML-100K, seeds 0 1 2
#   AMSRM_DATA=/path/to/data bench/cpu_recipe.sh fusion DATASET FUSION  # another fusion, the same recipe
#   AMSRM_DATA=/path/to/data bench/cpu_recipe.sh id-only DATASET        # SASRec-CE: AMSRM without side info
#   SUFFIX=-converged BUDGET=3000 bench/cpu_recipe.sh beauty  # trained to patience: rows keyed recipe-converged
#
# Every run holds the CPU lock that docs/BENCHMARKS.md uses, so nothing else is timed meanwhile.
# Results land in docs/results/cpu-recipe/ (one file per run, merged per row); the choices were made
# on validation NDCG@10 only (the screen's files keep the curves: `amsrm results curve FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/results/cpu-recipe}
PY=${PY:-.venv/bin/python}
LOCK=${LOCK:-/tmp/amsrm-cpu.lock}
BUDGET=${BUDGET:-600}  # training seconds per run, checked after each epoch (580 keeps every epoch inside 600)
SUFFIX=${SUFFIX:-}    # appended to every row key, so a longer budget keeps its own files
PRECISION=${PRECISION:-fp32}  # bf16 autocast was slower per epoch on this machine (screen)
mkdir -p "$OUT"
# The recipe: what the GPU tuning grid chose on validation for Beauty (lr 3e-3, dropout 0.4, full CE,
# batch 128); EXTRA adds flags to every run (the screens' winners).
read -r -a EXTRA <<< "${EXTRA:-}"
RECIPE=(--lr 0.003 --batch-size 128 --set dropout=0.4 --threads 2 --no-progress "${EXTRA[@]}")

run() {  # run DATASET KEY SEED BUDGET ARGS…: one seed, its own results file
  local dataset=$1 key=$2$SUFFIX seed=$3 budget=$4; shift 4
  flock "$LOCK" "$PY" -m amsrm train --dataset "$dataset" --seeds "$seed" --key "$key" \
    --time-budget-s "$budget" --results "$OUT/$dataset-$key-seed$seed.json" "$@"
}

merge() {  # merge DATASET KEY: the seeds' files into one entry (mean ± std)
  "$PY" -m amsrm results merge "$OUT/$1-$2$SUFFIX"-seed?.json --out "$OUT/$1.json"
}

case ${1:-} in
  screen)
    name=$2; shift 2
    run beauty "screen-$name" 0 "${SCREEN_S:-150}" "${RECIPE[@]}" --patience 100 "$@" ;;
  beauty|ml-100k|taobao)
    patience=10; [ "$1" = ml-100k ] && patience=15
    for seed in 0 1 2; do
      run "$1" recipe "$seed" "$BUDGET" "${RECIPE[@]}" --precision "$PRECISION" --patience "$patience"
    done
    merge "$1" recipe ;;
  fusion)
    dataset=$2 fusion=$3 patience=10; [ "$dataset" = ml-100k ] && patience=15
    for seed in 0 1 2; do
      run "$dataset" "recipe-$fusion" "$seed" "$BUDGET" "${RECIPE[@]}" --precision "$PRECISION" \
        --patience "$patience" --set fusion="$fusion"
    done
    merge "$dataset" "recipe-$fusion" ;;
  id-only)
    dataset=$2 patience=10; [ "$dataset" = ml-100k ] && patience=15
    for seed in 0 1 2; do
      run "$dataset" recipe-id-only "$seed" "$BUDGET" "${RECIPE[@]}" --precision "$PRECISION" \
        --patience "$patience" --set use_item_fields=false --set use_behaviour=false --set use_user_fields=false
    done
    merge "$dataset" recipe-id-only ;;
  *) echo "usage: $0 screen NAME [FLAGS…] | beauty | ml-100k | fusion DATASET FUSION | id-only DATASET" >&2; exit 2 ;;
esac
