"""Exact Top-K on large catalogues: µs per event of ``Scorer.recommend`` at 100k and 1M items, CPU.

The scorer's model and windows are real (a checkpoint, leave-one-out histories as in
bench/scoring_bench.py); only its frozen item representations are replaced by a synthetic
catalogue of N items with the same width and the same spread as the trained ones, so the part
that grows with the catalogue (the product with every item, the masking, ``torch.topk``) runs the
scorer's own code.  The trained catalogue is measured in the same run as the baseline.  One torch
thread (the worker's scorer), medians over ``--repeats``.

    python bench/catalogue_bench.py --checkpoint runs/stream-bench/model-beauty --dataset beauty

Writes docs/results/catalogue-bench.json.  The issue's bar: exact Top-K at 1M items should cost
at most 2 ms per event at batch 256; above it an approximate index is the next step.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from scoring_bench import per_event_us, real_windows  # this folder

from amsrm_core.data import load_dataset
from amsrm_core.results import git_commit, machine
from amsrm_core.scoring import Scorer
from streams.local.checkpoints import ensure_checkpoint

REPO = Path(__file__).resolve().parent.parent


def with_catalogue(scorer: Scorer, n_items: int, seed: int = 0) -> None:
    """Give ``scorer`` a synthetic catalogue of ``n_items`` (item 0 and 1 stay padding and unknown)."""
    trained = scorer._item_reps_t  # (H, n) float32, the CPU scorer's product operand
    assert trained is not None, "needs a CPU scorer with frozen item representations"
    rng = np.random.default_rng(seed)
    reps = rng.normal(trained.mean(), trained.std(), size=(trained.shape[0], n_items)).astype(np.float32)
    scorer._item_reps_t = np.ascontiguousarray(reps)
    scorer.item_ids = np.asarray([f"i{j}" for j in range(n_items)], dtype=object)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs/stream-bench/model-beauty")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--windows", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results/catalogue-bench.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # the stream benchmark's model (trained here the same way when it is missing)
    ensure_checkpoint(args.checkpoint, load_dataset(args.dataset), epochs=1)
    scorer = Scorer.from_checkpoint(args.checkpoint)
    windows = real_windows(args.dataset, scorer.max_len, args.windows)
    trained_items = len(scorer.item_ids)
    rows = []
    for n_items in [trained_items, *args.items]:
        if n_items != trained_items:
            with_catalogue(scorer, n_items)
        for batch in args.batches:
            us = per_event_us(scorer.recommend, windows, batch, args.repeats)
            rows.append({"items": n_items, "batch": batch, "us_per_event": round(us, 1),
                         "catalogue": "trained" if n_items == trained_items else "synthetic"})
            print(rows[-1], flush=True)
    hidden = scorer._item_reps_t.shape[0]  # type: ignore[union-attr]
    args.out.write_text(json.dumps({
        "commit": git_commit(), "machine": machine(), "load_average": os.getloadavg(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "checkpoint": str(args.checkpoint),
        "dataset": args.dataset, "hidden": hidden, "k": scorer.k, "torch_threads": 1,
        "windows": len(windows), "repeats": args.repeats, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
