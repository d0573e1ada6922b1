"""Approximate Top-K probe: HNSW and IVF indexes (faiss, usearch) against exact Top-K, synthetic catalogues.

The catalogue: N synthetic items of the Beauty model's width, Gaussian (bench/catalogue_bench.py's)
or clustered around the trained items (``synthetic_catalogue``); the queries are the model's last
hidden states for 512 real leave-one-out windows, as the scorer computes them.  The indexes: HNSW
on the inner product (faiss, usearch), HNSW in L2 on the catalogue augmented so that the nearest
neighbour is the largest inner product (``augmented``), and IVF-flat (faiss, inner product).  For
each: the build time (2 threads), then per search width (ef, or nprobe for IVF) the µs per event
of one search of K + window + 2 candidates (1 thread, batch of 512) and recall@10 of the masked
result against the exact masked Top-10.  The two catalogues bracket what a real one does to an
index: Gaussian items have no structure, clustered ones much.

    pip install -e '.[ann-probe]'
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

from amsrm_core.candidates import CONNECTIVITY, EXPANSION_ADD  # the option's graph settings
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


IVF_LISTS = 1024  # about sqrt(1M) lists: each probe scans ~0.1 % of a 1M catalogue


def augmented(reps: np.ndarray) -> np.ndarray:
    """Maximum inner product as nearest neighbour in L2: each item gets a last coordinate
    sqrt(M² − |x|²) (M the largest norm), each query a 0, so |q − x|² = |q|² + M² − 2 q·x."""
    norms = np.linalg.norm(reps, axis=1)
    extra = np.sqrt(np.maximum(norms.max() ** 2 - norms ** 2, 0.0))[:, None]
    return np.ascontiguousarray(np.hstack([reps, extra]).astype(np.float32))


class Search:
    """One built index: ``search(queries, wanted, value)`` → (B, wanted) item indices, with
    ``settings`` the (name, value) pairs its search is measured at."""

    def __init__(self, build, run, setting: str, values: list[int]) -> None:
        self.build_s, self._index = timed(build)
        self._run = run
        self.settings = [(setting, v) for v in values]

    def __call__(self, queries: np.ndarray, wanted: int, value: int) -> np.ndarray:
        return self._run(self._index, queries, wanted, value)


def faiss_hnsw(vectors: np.ndarray, metric: int):
    def build():
        faiss.omp_set_num_threads(2)
        index = faiss.IndexHNSWFlat(vectors.shape[1], CONNECTIVITY, metric)
        index.hnsw.efConstruction = EXPANSION_ADD
        index.add(vectors)
        faiss.omp_set_num_threads(1)
        return index
    return build


def faiss_hnsw_search(index, queries: np.ndarray, wanted: int, ef: int) -> np.ndarray:
    index.hnsw.efSearch = ef
    if queries.shape[1] < index.d:  # the augmented catalogue: queries get a 0
        queries = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
    return index.search(queries, wanted)[1]


def faiss_ivf(reps: np.ndarray):
    def build():
        faiss.omp_set_num_threads(2)
        quantizer = faiss.IndexFlatIP(reps.shape[1])
        index = faiss.IndexIVFFlat(quantizer, reps.shape[1], IVF_LISTS, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        index.train(reps[rng.choice(len(reps), min(len(reps), 64 * IVF_LISTS), replace=False)])
        index.add(reps)
        faiss.omp_set_num_threads(1)
        return index
    return build


def faiss_ivf_search(index, queries: np.ndarray, wanted: int, nprobe: int) -> np.ndarray:
    index.nprobe = nprobe
    return index.search(queries, wanted)[1]


def usearch_hnsw(reps: np.ndarray):
    def build():
        graph = Index(ndim=reps.shape[1], metric="ip", connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD)
        graph.add(np.arange(len(reps)), reps, threads=2)
        return graph
    return build


def usearch_search(graph, queries: np.ndarray, wanted: int, ef: int) -> np.ndarray:
    graph.expansion_search = ef
    return graph.search(queries, wanted, threads=1).keys


def indexes(reps: np.ndarray, args: argparse.Namespace):
    """(library, Search) per index kind, each built when reached and dropped after."""
    yield "faiss-hnsw", Search(faiss_hnsw(reps, faiss.METRIC_INNER_PRODUCT), faiss_hnsw_search, "ef",
                               args.efs)
    yield "faiss-hnsw-l2-augmented", Search(faiss_hnsw(augmented(reps), faiss.METRIC_L2), faiss_hnsw_search,
                                            "ef", args.efs)
    yield "usearch-hnsw", Search(usearch_hnsw(reps), usearch_search, "ef", args.efs)
    yield "faiss-ivf-flat", Search(faiss_ivf(reps), faiss_ivf_search, "nprobe", args.nprobes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs/stream-bench/model-beauty")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--efs", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--nprobes", type=int, nargs="+", default=[8, 16, 32, 64])
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
        context = {"catalogue": kind, "items": n_items}
        for library, search in indexes(reps, args):
            for setting, value in search.settings:
                seconds, found = timed(search, hidden, wanted, value)
                rows.append({"library": library, **context, "build_s": round(search.build_s, 1),
                             setting: value, "us_per_event": round(seconds / len(hidden) * 1e6, 1),
                             "recall_at_10": round(recall(masked_top_k(found, item_seq), exact), 4)})
                print(rows[-1], flush=True)
    args.out.write_text(json.dumps({
        "commit": git_commit(), "machine": machine(), "load_average": os.getloadavg(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "checkpoint": str(args.checkpoint),
        "versions": {"faiss": faiss.__version__, "usearch": usearch.__version__},
        "queries": len(hidden), "k": K,
        "hnsw": {"connectivity": CONNECTIVITY, "expansion_add": EXPANSION_ADD},
        "ivf": {"lists": IVF_LISTS},
        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
