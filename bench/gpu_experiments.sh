#!/usr/bin/env bash
# The GPU runs behind docs/RESULTS.md's comparison tables and the GPU row of docs/BENCHMARKS.md.
#
#   OUT=runs/gpu AMSRM_DATA=/path/to/data bench/gpu_experiments.sh
#
# One machine with one GPU and ~16 cores.  In order:
#  1. the scoring benchmark on the GPU (needs the checkpoint runs/stream-bench/model-beauty);
#  2. `amsrm experiment compare --tune` on Beauty and ML-100K, one process per model, each
#     training `JOBS` runs at once (spawned processes sharing the GPU); every run's training is
#     capped at BUDGET seconds (the same cap for every model), early stopping as usual;
#  3. ML-100K's sequence-length and ablation experiments once its comparison is done.
# Finished runs land in the resumable run store ($RUNS), packed with the logs into $OUT/runs.tgz
# every minute and at the end; unpack it at the repository root and rerun the same commands with
# --device cpu to rebuild tables and figures (nothing retrains: the device is not part of a run's key).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
RUNS=${RUNS:-runs/experiments}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-120}
JOBS=${JOBS:-4}
DEADLINE=${DEADLINE:-480}      # seconds for all experiments; unfinished runs resume on a rerun
SCORING=${SCORING:-1}
LARGE=${LARGE:-beauty}
SMALL=${SMALL:-ml-100k}
EXTRA=${EXTRA:-}               # extra experiment flags (smoke tests: tiny synthetic data)
MODELS=${MODELS:-amsrm sasrec-ce sasrec gru4rec caser attrec bpr popularity}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOGS=${LOGS:-runs/gpu-logs}
mkdir -p "$OUT" "$RUNS" "$LOGS"
PY=${PY:-python3}

pack() { tar czf "$OUT/runs.tgz.part" "$RUNS" "$LOGS" && mv "$OUT/runs.tgz.part" "$OUT/runs.tgz"; }
END=$((SECONDS + DEADLINE))
experiment() {  # experiment KIND DATASET LOG ARGS…, stopped at the common deadline
  local kind=$1 dataset=$2 log=$3 left=$((END - SECONDS)); shift 3
  [ "$left" -gt 10 ] || return 0
  timeout "$left" "$PY" -m amsrm experiment "$kind" --datasets "$dataset" --seeds 0 1 2 \
    --device "$DEVICE" --threads 1 --time-budget-s "$BUDGET" --no-progress --runs-dir "$RUNS" \
    --out-dir "$LOGS/docs" $EXTRA "$@" >"$LOGS/$log" 2>&1
}

(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) >"$OUT/machine.txt"
"$PY" -c 'import torch, platform; print(torch.__version__, platform.processor(), torch.get_num_threads())' \
  >>"$OUT/machine.txt"
if [ "$SCORING" = 1 ]; then
  "$PY" bench/scoring_bench.py --device "$DEVICE" --batches 16 64 256 1024 \
    --out "$OUT/scoring-bench-gpu.json" >"$LOGS/scoring.log" 2>&1
fi
(while sleep 60; do pack; done) &
packer=$!
pids=()
for model in $MODELS; do
  experiment compare "$LARGE" "compare-$LARGE-$model.log" --models "$model" --tune --jobs "$JOBS" &
  pids+=($!)
done
(
  for model in $MODELS; do
    experiment compare "$SMALL" "compare-$SMALL-$model.log" --models "$model" --tune --jobs "$JOBS"
  done
  experiment seqlen "$SMALL" "seqlen-$SMALL.log" --jobs 8
  experiment ablation "$SMALL" "ablation-$SMALL.log" --jobs 8
) &
pids+=($!)
wait "${pids[@]}"
kill "$packer" 2>/dev/null
pack
echo "finished runs: $(find "$RUNS" -name '*.json' | wc -l)"
