"""Where one CPU training step of AMSRM spends its time, and what dropout's mask costs.

    AMSRM_DATA=/path/to/data flock /tmp/amsrm-cpu.lock python bench/train_step_profile.py [--dataset beauty]

Why: on Beauty an epoch of the CPU recipe costs 18 s with the item fields and 14.5 s without;
this says which operators take the time (torch profiler, one thread, the recipe's batch 128 and
dropout 0.4, after 5 warm-up steps), then times dropout's ``bernoulli_`` mask against a
``rand_like(x) < p`` mask of the same distribution (medians of 5 repeats of 200 masks).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from amsrm_core.batching import training_windows
from amsrm_core.data import load_dataset
from amsrm_core.runner import build_model, make_split
from amsrm_core.training.trainer import epoch_batches

WARMUP, STEPS = 5, 35


def profile_steps(dataset: str, fusion: str) -> None:
    data = load_dataset(dataset)
    windows = training_windows(make_split(data, "loo"), 30)
    torch.manual_seed(0)
    model = build_model("amsrm", data, {"dropout": 0.4, "fusion": fusion}).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3, foreach=True)
    batches = epoch_batches(windows, 128, torch.Generator().manual_seed(0))[:WARMUP + STEPS]

    def step(rows: torch.Tensor) -> None:
        loss = model.calculate_loss(windows.batch(rows))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    for rows in batches[:WARMUP]:
        step(rows)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for rows in batches[WARMUP:]:
            step(rows)
        elapsed = time.perf_counter() - started
    print(f"{dataset}, fusion {fusion}: {elapsed / STEPS * 1e3:.1f} ms per step (under the profiler)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def mask_costs(shape: tuple[int, ...] = (128, 30, 64), p: float = 0.4) -> None:
    x = torch.randn(shape)
    masks = {"bernoulli_ (F.dropout's)": lambda: torch.empty_like(x).bernoulli_(1 - p),
             "rand_like(x) >= p": lambda: torch.rand_like(x) >= p}
    for name, make in masks.items():
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200):
                make()
            runs.append((time.perf_counter() - started) / 200 * 1e3)
        print(f"dropout mask {shape}, {name}: {statistics.median(runs):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--fusion", default="concat")
    args = parser.parse_args()
    torch.set_num_threads(1)
    profile_steps(args.dataset, args.fusion)
    mask_costs()


if __name__ == "__main__":
    main()
