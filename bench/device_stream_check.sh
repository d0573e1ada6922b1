#!/usr/bin/env bash
# The stream worker on a lent GPU machine (16 cores), as one short script (docs/BENCHMARKS.md):
#  1. the scoring path on the GPU (bench/scoring_bench.py --device cuda);
#  2. the stream benchmark with every worker and its scoring process pinned to cores 0-1 and the
#     broker and load generator on cores 2-15, scoring on the CPU and on the GPU, same run.
#
#   OUT=runs/device AMSRM_DATA=.devdata bench/device_stream_check.sh
#
# Needs the Beauty checkpoint at runs/stream-bench/model-beauty (bench/stream_bench.py trains it)
# and, on a machine without network, the project's wheels in .whl (Python of that machine).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/device}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 --version;
  python3 -c 'import torch; print("torch", torch.__version__)'; } 2>&1 | tee "$OUT/machine.txt"
python3 -m pip check 2>&1 | grep -i -E "faust|aiokafka|mode|rocksdict|orjson|click|aiohttp|typing" | head

command -v taskset || { echo "no taskset"; exit 1; }
[ "${SCORING:-1}" = 1 ] && timeout 120 python3 bench/scoring_bench.py --device cuda --batches 16 64 256 1024 \
    --out "$OUT/scoring-bench-gpu.json" 2>&1 | grep -v Warning | tee "$OUT/scoring.log" | tail -8

timeout "${STREAM_TIMEOUT:-360}" taskset -c 2-15 python3 bench/stream_bench.py --worker-cpus 0 1 \
    --devices cpu cuda --no-baselines --rates ${RATES:-1000 2500 5000} --throughput-runs "${RUNS:-2}" \
    --seconds-per-rate "${SECONDS_PER_RATE:-6}" \
    --workdir runs/stream-bench \
    --out "$OUT/stream-bench-pinned.json" > "$OUT/stream.log" 2>&1
echo "stream bench exit $?"
grep -E "throughput, run|ev/s" "$OUT/stream.log" | cut -c1-400
grep -v " INFO " "$OUT/stream.log" | tail -40
