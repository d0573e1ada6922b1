"""Garbage collection in a stream worker draining a backlog, with and without ``AMSRM_GC_TUNING``.

    flock /tmp/amsrm-cpu.lock python bench/gc_bench.py      # ~3 min; Amazon Beauty, 20,000 events

Each run: a fresh embedded broker and topics, 20,000 Beauty events preloaded, a fresh scoring
worker started with ``bench/gc_probe`` on its ``PYTHONPATH`` (it records every collection of
the worker and of its scoring process: count, seconds and the longest pause per generation,
from start-up to the end of the drain), and the drain's throughput.  The settings alternate
run by run.  Writes docs/results/gc-bench.json (docs/STREAMING.md, "Performance").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from stream_bench import EventSource, Plan, Variant, throughput_run  # this folder

from amsrm.settings import StreamSettings
from amsrm_core.checkpoint import load_checkpoint
from amsrm_core.data import load_dataset
from amsrm_core.results import git_commit, machine
from streams.local.checkpoints import ensure_checkpoint

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "gc_probe"


def probed_run(variant: Variant, source: EventSource, plan: Plan, workdir: Path, model: Path) -> dict:
    """One drain with the probe loaded into the worker and its scoring process."""
    with tempfile.TemporaryDirectory() as probe_dir:
        os.environ.update(AMSRM_GC_PROBE_DIR=probe_dir, PYTHONPATH=f"{PROBE}{os.pathsep}{REPO}")
        try:
            result = throughput_run(variant, source, plan, workdir, model, backlog_latency=False)
            time.sleep(1.5)  # the probe writes once a second; the worker is gone, its last file stays
        finally:
            del os.environ["AMSRM_GC_PROBE_DIR"], os.environ["PYTHONPATH"]
        processes = [json.loads(p.read_text()) for p in Path(probe_dir).glob("*.json")]
    workers = [p for p in processes if "streams" in " ".join(p["argv"])]
    result["gc"] = {f"process_{i}": p for i, p in enumerate(workers)}
    result["gc_seconds"] = round(sum(g["seconds"] for p in workers for g in p["by_generation"].values()), 3)
    result["longest_pause_ms"] = round(1000 * max(g["longest_s"] for p in workers
                                                  for g in p["by_generation"].values()), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3, help="runs per setting (alternating)")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "stream-bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "gc-bench.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = load_dataset("beauty")
    model = ensure_checkpoint(args.workdir / f"model-{data.name}", data, epochs=1)
    plan = Plan(args.events, 1, [], 0.0, 0, window_length=load_checkpoint(model).model.config.max_len)
    base = StreamSettings.load({}).replace(partitions=16, output_partitions=16)
    variants = [Variant(f"gc_tuning={on}", "recommend", base.replace(gc_tuning=on)) for on in (True, False)]
    source, runs = EventSource(data), {v.name: [] for v in variants}
    for _ in range(args.runs):
        for v in variants:
            runs[v.name].append(probed_run(v, source, plan, args.workdir, model))
            logging.info("%s: %s", v.name, {k: runs[v.name][-1][k] for k in
                                             ("events_per_s", "gc_seconds", "longest_pause_ms")})
    summary = {name: {key: statistics.median(r[key] for r in rs)
                      for key in ("events_per_s", "gc_seconds", "longest_pause_ms")}
               for name, rs in runs.items()}
    result = {"summary_medians": summary, "runs": runs, "events": args.events, "dataset": data.name,
              "machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "commit": git_commit()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
