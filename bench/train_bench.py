"""Training benchmark: time per epoch, time to best validation, peak memory, time-to-quality.

    python bench/train_bench.py --datasets ml-100k beauty --seeds 0 1 2 --threads 2

Each (data set, seed) runs in its own process so peak memory (max RSS) is that run's
alone.  Time-to-quality is the training wall time (training + validation passes, data
loading excluded) until *test* NDCG@10 first reaches the RecBole SASRec floor measured
on the same machine kind (docs/ANCHORS.md).  The test probe after each epoch is outside the
timed region and is never used to choose anything.  Results: medians over seeds, written
to docs/results/train-bench.json; the machine must be otherwise idle.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

# RecBole 1.2.1 SASRec on this machine kind (docs/ANCHORS.md): test NDCG@10 floor and its wall time.
RECBOLE_FLOOR = {"ml-100k": {"ndcg@10": 0.0548, "wall_s": 547.0},
                 "beauty": {"ndcg@10": 0.0270, "wall_s": 2 * 189.0 + 21.0}}
ROOT = Path(__file__).resolve().parent.parent


def one_run(dataset: str, seed: int, args: argparse.Namespace) -> dict:
    from amsrm_core.data import load_dataset
    from amsrm_core.evaluate import evaluate
    from amsrm_core.models.amsrm import AMSRMConfig
    from amsrm_core.runner import build_model, parse_overrides
    from amsrm_core.splits import leave_one_out
    from amsrm_core.training.trainer import TrainConfig, train

    threads = args.threads
    torch.set_num_threads(threads)
    data = load_dataset(dataset)
    split = leave_one_out(data)
    torch.manual_seed(seed)
    model = build_model("amsrm", data, parse_overrides(AMSRMConfig, args.set))
    floor = RECBOLE_FLOOR[dataset]["ndcg@10"]
    reached: dict[str, float] = {}

    def probe(epoch: int, m, valid: dict, elapsed: float) -> None:
        if "seconds" not in reached:
            ndcg = evaluate(m, split, "test", m.config.max_len)["ndcg@10"]
            if ndcg >= floor:
                reached.update(seconds=elapsed, epoch=epoch, ndcg=ndcg)
        m.train()

    config = TrainConfig(epochs=args.epochs, patience=args.patience, seed=seed, threads=threads, lr=args.lr,
                         batch_size=args.batch_size, precision=args.precision,
                         time_budget_s=args.time_budget_s, bucket_by_length=args.bucket_by_length,
                         eval_batch_size=args.eval_batch_size, progress=False)
    result = train(model, split, config, on_epoch=probe)
    epoch_times = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(
        [{"elapsed_s": 0.0}, *result.history], result.history, strict=False)]
    return {
        "dataset": dataset, "seed": seed, "threads": threads,
        "config": dataclasses.asdict(model.config), "train": dataclasses.asdict(config),
        "stopped_by_time_budget": bool(args.time_budget_s and result.train_seconds >= args.time_budget_s),
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "seconds_per_epoch": statistics.median(epoch_times),
        "seconds_to_best": result.seconds_to_best, "train_seconds": result.train_seconds,
        "best_valid_ndcg@10": result.best_valid["ndcg@10"],
        "test_ndcg@10": evaluate(model, split, "test", model.config.max_len)["ndcg@10"],
        "seconds_to_recbole_floor": reached.get("seconds"), "epoch_at_floor": reached.get("epoch"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--time-budget-s", type=float, default=0.0, help="cap each run's training time")
    parser.add_argument("--eval-batch-size", type=int, default=512, help="cases per validation batch")
    parser.add_argument("--bucket-by-length", action="store_true", help="batches of similar window lengths")
    parser.add_argument("--set", action="append", default=[], help="AMSRM config override key=value")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/train-bench.json")
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one[0], int(args.one[1]), args)))
        return

    from amsrm_core.results import git_commit, machine

    passthrough = ["--threads", str(args.threads), "--epochs", str(args.epochs),
                   "--patience", str(args.patience), "--lr", str(args.lr),
                   "--batch-size", str(args.batch_size), "--precision", args.precision,
                   "--time-budget-s", str(args.time_budget_s), *[a for s in args.set for a in ("--set", s)],
                   "--eval-batch-size", str(args.eval_batch_size),
                   *(["--bucket-by-length"] if args.bucket_by_length else [])]
    summary = {"commit": git_commit(), "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               "command": " ".join(["python bench/train_bench.py", *sys.argv[1:]]),
               "load_average_at_start": os.getloadavg(), "datasets": {}}
    for dataset in args.datasets:
        runs = []
        for seed in args.seeds:
            cmd = [sys.executable, __file__, "--one", dataset, str(seed), *passthrough]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{dataset} seed {seed}: {runs[-1]}", flush=True)
        floors = [r["seconds_to_recbole_floor"] for r in runs]
        median_floor = statistics.median(floors) if None not in floors else None
        recbole = RECBOLE_FLOOR[dataset]
        fraction = None if median_floor is None else median_floor / recbole["wall_s"]
        summary["datasets"][dataset] = {
            "runs": runs,
            "median": {k: statistics.median(r[k] for r in runs) for k in (
                "seconds_per_epoch", "seconds_to_best", "peak_rss_mb", "test_ndcg@10")},
            "median_seconds_to_recbole_floor": median_floor,
            "recbole_floor": recbole,
            "fraction_of_recbole_wall_time": fraction,
        }
        print(json.dumps(summary["datasets"][dataset]["median"]), median_floor, flush=True)
    summary["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, sort_keys=True))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
