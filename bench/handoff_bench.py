"""Scoring beside a busy event loop: the worker's scoring thread against its scoring process.

The worker's event loop is busy with Python (consuming, validating, tables, producing)
while micro-batches are scored.  This benchmark runs such a loop on its own: one task
does plain Python work in slices (yielding to the loop between slices, as a busy agent
does, with a 1 ms idle wait after every 20 slices), another scores micro-batches of real
Beauty windows one after another, either in a
thread (``asyncio.to_thread(scorer.recommend)``, ``AMSRM_SCORING_PROCESS=false``) or in the
child process (``ProcessScorer.recommend_async``, the default).  For each it reports the
median time from handing a batch over to having its Top-K lists (ms per batch) and how
much Python work the loop got done meanwhile, relative to the same loop with no scoring
at all (1.0 = scoring costs the loop nothing).  Medians over ``--repeats`` runs of
``--seconds`` each, one torch thread.

    python bench/handoff_bench.py --out docs/results/handoff-bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from scoring_bench import real_windows

from amsrm_core.results import git_commit, machine
from amsrm_core.scoring import Scorer, Window
from streams.worker.scoring_process import ProcessScorer

REPO = Path(__file__).resolve().parent.parent
SLICE = 2_000  # loop iterations of plain Python between yields (~0.1 ms), like one message's handling
BUSY_SLICES, IDLE_S = 20, 0.001  # then the loop idles 1 ms: busy most of the time, like a loaded worker


def busy_slice() -> None:
    total = 0
    for i in range(SLICE):
        total = (total + i * i) % 1_000_003


async def run(score, windows: list[Window], batch: int, seconds: float) -> dict[str, float]:
    """Slices of Python work done and batch round trips while ``score`` (or nothing) runs beside."""
    stop = time.perf_counter() + seconds
    slices, trips = 0, []

    async def work() -> None:
        nonlocal slices
        while time.perf_counter() < stop:
            for _ in range(BUSY_SLICES):
                busy_slice()
                slices += 1
                await asyncio.sleep(0)
            await asyncio.sleep(IDLE_S)  # the loop waits in select, as a worker between fetches does

    async def scoring() -> None:
        i = 0
        while time.perf_counter() < stop:
            chunk = windows[i:i + batch] if i + batch <= len(windows) else windows[:batch]
            i = (i + batch) % max(1, len(windows) - batch)
            started = time.perf_counter()
            await score(chunk)
            trips.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(work(), *([scoring()] if score else []))
    return {"slices_per_s": slices / seconds, "batch_ms": statistics.median(trips) if trips else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs/stream-bench/model-beauty")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results/handoff-bench.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    thread_scorer = Scorer.from_checkpoint(args.checkpoint)
    process_scorer = ProcessScorer(partial(Scorer.from_checkpoint, args.checkpoint), threads=1)
    windows = real_windows(args.dataset, thread_scorer.max_len, 2048)
    ways = {"none": None,
            "thread": lambda w: asyncio.to_thread(thread_scorer.recommend, w),
            "process": process_scorer.recommend_async}
    rows: dict = {}
    try:
        for batch in args.batches:
            for name, score in ways.items():
                runs = [asyncio.run(run(score, windows, batch, args.seconds)) for _ in range(args.repeats)]
                rows.setdefault(str(batch), {})[name] = {
                    "slices_per_s": round(statistics.median(r["slices_per_s"] for r in runs)),
                    "batch_ms": round(statistics.median(r["batch_ms"] for r in runs), 2), "runs": runs}
            alone = rows[str(batch)]["none"]["slices_per_s"]
            for name in ("thread", "process"):
                row = rows[str(batch)][name]
                row["loop_work_vs_no_scoring"] = round(row["slices_per_s"] / alone, 3)
                print(f"batch {batch}, {name}: {row['batch_ms']} ms per batch, loop work "
                      f"{row['loop_work_vs_no_scoring']} of no scoring", flush=True)
    finally:
        process_scorer.close()
    result = {"commit": git_commit(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": machine(), "load_average": os.getloadavg(), "checkpoint": str(args.checkpoint),
              "seconds": args.seconds, "repeats": args.repeats, "slice_iterations": SLICE,
              "busy_slices_per_idle": BUSY_SLICES, "idle_s": IDLE_S, "batches": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
