"""Scoring benchmark: microseconds per event of ``Scorer.recommend`` at several batch sizes.

    python bench/scoring_bench.py --checkpoint runs/stream-bench/model-beauty --dataset beauty

Windows are real histories (the latest ``max_len`` events before each leave-one-out test
case), scored with one torch thread, as the stream worker does.  The baseline, measured in
the same run on the same windows, is the plain path: encode, then ``model.full_sort_predict``
on the whole batch (item representations recomputed, no grouping by length), masking and
Top-K; and the scorer without grouping by length (one group per batch, as on accelerators).
Medians over ``--repeats`` runs.  Also the product with the item representations
alone: the CPU scorer's (numpy's BLAS) against torch's, on random hidden states.

And the model's last hidden state by the whole forward pass against ``last_hidden`` (its last
block for the last position only), in the same run.

Then the stream worker's situation: the scorer in a thread next to a thread that keeps the
GIL busy with Python (as the worker's event loop does), traced (the default) and eager
(``Scorer(traced=False)``): eager torch operators each release the GIL and wait to get it
back.  Results to docs/results/scoring-bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch

from amsrm_core.data import load_dataset
from amsrm_core.results import git_commit, machine
from amsrm_core.scoring import Scorer, Window
from amsrm_core.splits import leave_one_out

REPO = Path(__file__).resolve().parent.parent


def real_windows(dataset: str, max_len: int, n: int) -> list[Window]:
    data = load_dataset(dataset)
    split = leave_one_out(data)
    items, users, behaviours = data.item_vocab.tokens, data.user_vocab.tokens, data.behaviour_vocab.tokens
    windows = []
    for p in split.test_cases[:n]:
        start = max(int(split.user_start[p]), int(p) - max_len)
        events = [(items[data.items[q]], behaviours[data.behaviours[q]] if data.behaviours[q] else None)
                  for q in range(start, int(p))]
        windows.append(Window(users[data.users[p]], events))
    return windows


def plain_recommend(scorer: Scorer, windows: list[Window]) -> None:
    """The baseline: one full_sort_predict over the padded batch, no scorer savings."""
    with torch.inference_mode():
        batch = {k: v.to(scorer.device) for k, v in scorer.encode(windows).items()}
        scores = scorer.model.full_sort_predict(batch).float().clone()
        scores[:, :2] = -torch.inf
        scores.scatter_(1, batch["item_seq"], -torch.inf)
        top = torch.topk(scores, scorer.k, dim=1)
        top.indices.cpu(), top.values.cpu()  # the results leave the device, as the worker's do


def per_event_us(fn, windows: list[Window], batch: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for lo in range(0, len(windows), batch):
            fn(windows[lo : lo + batch])
        times.append((time.perf_counter() - started) / len(windows) * 1e6)
    return statistics.median(times)


def item_product_us(scorer: Scorer, rows: int, repeats: int) -> dict[str, float]:
    """µs/event of the product hidden (rows, H) · item representations: the CPU scorer's (numpy's
    BLAS) against torch's, on the same random hidden states, 20 products per repeat."""
    reps = scorer._item_reps  # the scorer's frozen (n_items, H) matrix
    hidden = torch.randn(rows, reps.shape[1])
    paths = {"scorer": lambda: scorer._product(hidden), "torch": lambda: hidden @ reps.T}
    out = {}
    for name, product in paths.items():
        product()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(20):
                product()
            times.append((time.perf_counter() - started) / (20 * rows) * 1e6)
        out[name] = round(statistics.median(times), 1)
    return out


def last_hidden_us(scorer: Scorer, windows: list[Window], batch: int, repeats: int) -> dict[str, float]:
    """µs/event of the model's last hidden state, eager, on padded batches: the whole forward pass
    (every position through every block) against ``last_hidden`` (the last block for the last
    position only), the previous and the current path of the scorer."""
    batches = [scorer.encode(windows[lo:lo + batch]) for lo in range(0, len(windows), batch)]
    paths = {"all_positions": lambda b: scorer.model.forward(b)[:, -1, :],
             "last_position_only": scorer.model.last_hidden}
    out = {}
    with torch.inference_mode():
        for name, path in paths.items():
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                for encoded in batches:
                    path(encoded)
                times.append((time.perf_counter() - started) / len(windows) * 1e6)
            out[name] = round(statistics.median(times), 1)
    return out


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def contended_us(scorer: Scorer, windows: list[Window], batch: int, repeats: int) -> float:
    """µs/event of ``scorer.recommend`` in a thread while this thread runs Python without pause."""
    stop, result = threading.Event(), {}
    worker = threading.Thread(target=lambda: (result.setdefault("us", per_event_us(
        scorer.recommend, windows, batch, repeats)), stop.set()))
    worker.start()
    spins = 0
    while not stop.is_set():  # plain bytecode, like an event loop's callbacks
        for i in range(1000):
            spins = (spins + i) % 1_000_003
    worker.join()
    return result["us"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs/stream-bench/model-beauty")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--windows", type=int, default=2048)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="torch device of the scorer: cpu, cuda, cuda:N")
    parser.add_argument("--contended-batch", type=int, default=128)
    parser.add_argument("--contended-windows", type=int, default=512)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results/scoring-bench.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scorer = Scorer.from_checkpoint(args.checkpoint, device=args.device)
    windows = real_windows(args.dataset, scorer.max_len, args.windows)
    per_event_us(scorer.recommend, windows[:256], 64, 1)  # warm-up
    one_group = Scorer.from_checkpoint(args.checkpoint, device=args.device, group_by_length=False)
    rows = {}
    for b in args.batches:
        scorer_us = per_event_us(scorer.recommend, windows, b, args.repeats)
        plain_us = per_event_us(lambda w: plain_recommend(scorer, w), windows, b, args.repeats)
        one_group_us = per_event_us(one_group.recommend, windows, b, args.repeats)
        rows[str(b)] = {"scorer_us_per_event": round(scorer_us, 1), "plain_us_per_event": round(plain_us, 1),
                        "one_group_us_per_event": round(one_group_us, 1),
                        "speedup": round(plain_us / scorer_us, 2)}
        print(f"batch {b}: scorer {scorer_us:.1f} µs/event, plain {plain_us:.1f}, one length group "
              f"{one_group_us:.1f}", flush=True)
    last_hidden = {str(b): last_hidden_us(scorer, windows, b, args.repeats) for b in args.batches}
    print(f"last hidden state, µs/event (all positions vs last only): {last_hidden}", flush=True)
    products = {}
    if scorer._item_reps is not None:
        products = {str(b): item_product_us(scorer, b, args.repeats) for b in args.batches}
        print(f"item product, µs/event (scorer vs torch): {products}", flush=True)
    eager = Scorer.from_checkpoint(args.checkpoint, device=args.device, traced=False)
    few, b = windows[:args.contended_windows], args.contended_batch
    contended = {"batch": b, "windows": len(few),
                 "traced_us_per_event": round(contended_us(scorer, few, b, args.repeats), 1),
                 "eager_us_per_event": round(contended_us(eager, few, b, args.repeats), 1),
                 "traced_alone_us_per_event": round(per_event_us(scorer.recommend, few, b, args.repeats), 1),
                 "eager_alone_us_per_event": round(per_event_us(eager.recommend, few, b, args.repeats), 1)}
    print(f"next to a busy Python thread, batch {b}: {contended}", flush=True)
    result = {"commit": git_commit(), "date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "load_average": os.getloadavg(), "checkpoint": str(args.checkpoint), "dataset": args.dataset,
              "windows": len(windows), "repeats": args.repeats, "torch_threads": 1, "batches": rows,
              "device": args.device, "device_name": device_name(scorer.device), "contended": contended,
              "item_product_us_per_event": products, "last_hidden_us_per_event": last_hidden}
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
