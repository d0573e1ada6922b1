"""Approximate Top-K probe: HNSW indexes (faiss, usearch) against exact Top-K on a synthetic catalogue.

The catalogue: N synthetic items of the Beauty model's width, Gaussian (bench/catalogue_bench.py's)
or clustered around the trained items (``synthetic_catalogue``); the queries are the model's last
hidden states for 512 real leave-one-out windows, as the scorer computes them.  For each library:
the index build time (2 threads), then per search width (ef) the µs per event of one search of
K + window + 2 candidates (1 thread, batch of 512) and recall@10 of the masked result against the
exact masked Top-10.  The two catalogues bracket what a real one does to a graph index: Gaussian
items have no structure, clustered ones much.

    pip install -e '.[ann]'
    python bench/ann_probe.py --items 100000 1000000   # → docs/results/ann-probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import faiss
import numpy as np
import torch
import usearch
from scoring_bench import real_windows  # this folder
from usearch.index import Index

from amsrm_core.results import git_commit, machine
from amsrm_core.scoring import Scorer

REPO = Path(__file__).resolve().parent.parent
K = 10


CATALOGUES = ("gaussian", "clustered")


def synthetic_catalogue(trained: np.ndarray, n_items: int, kind: str) -> np.ndarray:
    """(n_items, H) float32. gaussian: independent items with the trained representations' mean and
    spread (no structure: the hard case for a graph index); clustered: each item a trained item's
    representation plus noise of a third of their spread (a catalogue of many near neighbours)."""
    rng = np.random.default_rng(0)
    H = trained.shape[0]
    if kind == "gaussian":
        return rng.normal(trained.mean(), trained.std(), size=(n_items, H)).astype(np.float32)
    centres = trained.T[rng.integers(2, trained.shape[1], size=n_items)]
    return (centres + rng.normal(0.0, trained.std() / 3, size=(n_items, H))).astype(np.float32)


def masked_top_k(candidates: np.ndarray, item_seq: np.ndarray) -> list[list[int]]:
    """The first K candidates of each row that are neither padding, unknown nor in its window."""
    out = []
    for row, found in zip(item_seq, candidates, strict=True):
        excluded = {*row.tolist(), 0, 1, -1}
        out.append([int(c) for c in found if c not in excluded][:K])
    return out


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / K for f, e in zip(found, exact, strict=True)]))


def timed(call, *args, **kwargs):
    """(seconds, result) of ``call(*args, **kwargs)``."""
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs/stream-bench/model-beauty")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--efs", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--catalogues", nargs="+", choices=CATALOGUES, default=list(CATALOGUES))
    parser.add_argument("--out", type=Path, default=REPO / "docs/results/ann-probe.json")
    args = parser.parse_args()
    scorer = Scorer.from_checkpoint(args.checkpoint)
    windows = real_windows(args.dataset, scorer.max_len, 512)
    with torch.inference_mode():
        batch = scorer.encode(windows)
        hidden = np.ascontiguousarray(scorer.model.last_hidden(batch).float().numpy())
    item_seq = batch["item_seq"].numpy()
    trained = scorer._item_reps_t  # (H, n) float32
    assert trained is not None
    rows = []
    for n_items, kind in [(n, kind) for n in args.items for kind in args.catalogues]:
        reps = synthetic_catalogue(trained, n_items, kind)
        scores = hidden @ reps.T
        scores[:, :2] = -np.inf
        np.put_along_axis(scores, item_seq, -np.inf, axis=1)
        exact = np.argpartition(-scores, K, axis=1)[:, :K]  # recall compares sets
        del scores
        wanted = K + item_seq.shape[1] + 2
        faiss.omp_set_num_threads(2)
        index = faiss.IndexHNSWFlat(reps.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        build_s, _ = timed(index.add, reps)
        faiss.omp_set_num_threads(1)
        for ef in args.efs:
            index.hnsw.efSearch = ef
            seconds, (_, found) = timed(index.search, hidden, wanted)
            rows.append({"library": "faiss-hnsw", "catalogue": kind, "items": n_items,
                         "build_s": round(build_s, 1), "ef": ef,
                         "us_per_event": round(seconds / len(hidden) * 1e6, 1),
                         "recall_at_10": round(recall(masked_top_k(found, item_seq), exact), 4)})
            print(rows[-1], flush=True)
        del index
        graph = Index(ndim=reps.shape[1], metric="ip", connectivity=32, expansion_add=64)
        build_s, _ = timed(graph.add, np.arange(n_items), reps, threads=2)
        for ef in args.efs:
            graph.expansion_search = ef
            seconds, matches = timed(graph.search, hidden, wanted, threads=1)
            rows.append({"library": "usearch-hnsw", "catalogue": kind, "items": n_items,
                         "build_s": round(build_s, 1), "ef": ef,
                         "us_per_event": round(seconds / len(hidden) * 1e6, 1),
                         "recall_at_10": round(recall(masked_top_k(matches.keys, item_seq), exact), 4)})
            print(rows[-1], flush=True)
    args.out.write_text(json.dumps({
        "commit": git_commit(), "machine": machine(), "load_average": os.getloadavg(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "checkpoint": str(args.checkpoint),
        "versions": {"faiss": faiss.__version__, "usearch": usearch.__version__},
        "queries": len(hidden), "k": K, "hnsw": {"connectivity": 32, "expansion_add": 64},
        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
