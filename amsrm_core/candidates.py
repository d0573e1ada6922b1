"""Approximate Top-K for large catalogues: an index proposes candidates, the scorer ranks them exactly.

The exact path multiplies every hidden state by the whole (n_items, H) item matrix: at a million
items that is ~4.6 ms per event on one core (docs/BENCHMARKS.md, "Large catalogues").  An index
over the same frozen item representations returns, per hidden state, ``wanted`` items with the
largest inner products (approximately); the scorer then computes those items' scores exactly,
masks padding, unknown and window items, and keeps the best K.  So every returned score is the
model's own, and only an item the index missed can be missing from a list (recall against the
exact Top-K is measured by bench/ann_probe.py).

The index is built from the scorer's item representations when the scorer is built, so a hot swap
(a new scorer for a new model version, built off the hot path) brings its own index.  faiss is an
optional dependency (``pip install 'amsrm[ann]'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from amsrm.errors import ConfigError

KINDS = ("exact", "hnsw")
CONNECTIVITY, EXPANSION_ADD = 32, 64  # HNSW's M and efConstruction, as bench/ann_probe.py measured


@dataclass(frozen=True)
class IndexOptions:
    """``kind``: exact (no index) or hnsw (faiss HNSW on the inner product).  ``probes``: the
    search width (efSearch); ``threads``: faiss's threads per search."""

    kind: str = "exact"
    probes: int = 128
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"the Top-K index must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.probes < 1:
            raise ConfigError(f"the Top-K index's search width must be >= 1, got {self.probes}")


class CandidateIndex(Protocol):
    def search(self, hidden: np.ndarray, wanted: int) -> np.ndarray:
        """(B, wanted) item indices (−1 where the index found fewer), best first, for (B, H) states."""
        ...


def _faiss():
    try:
        import faiss
    except ImportError as e:  # an optional dependency: say how to get it
        raise ConfigError("an approximate Top-K index needs faiss: pip install 'amsrm[ann]'") from e
    return faiss


class HnswIndex:
    """faiss HNSW on the inner product: a graph searched ``probes`` candidates wide (efSearch).
    bench/ann_probe.py chose it: against IVF-flat and HNSW in L2 on a catalogue augmented so that
    the nearest item is the largest inner product, it had the best recall at each cost."""

    def __init__(self, item_reps: np.ndarray, options: IndexOptions) -> None:
        faiss = _faiss()
        self._faiss = faiss
        faiss.omp_set_num_threads(max(1, options.threads))
        self.index = faiss.IndexHNSWFlat(item_reps.shape[1], CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EXPANSION_ADD
        self.index.add(item_reps)
        self.probes, self.threads = options.probes, options.threads

    def search(self, hidden: np.ndarray, wanted: int) -> np.ndarray:
        self._faiss.omp_set_num_threads(self.threads)
        self.index.hnsw.efSearch = max(self.probes, wanted)  # HNSW returns at most efSearch items
        return self.index.search(np.ascontiguousarray(hidden, dtype=np.float32), wanted)[1]


def build_index(item_reps: np.ndarray, options: IndexOptions) -> CandidateIndex | None:
    """The index ``options`` ask for over (n_items, H) float32 representations; None for exact."""
    item_reps = np.ascontiguousarray(item_reps, dtype=np.float32)
    return HnswIndex(item_reps, options) if options.kind == "hnsw" else None


def rank_candidates(hidden: np.ndarray, item_reps: np.ndarray, candidates: np.ndarray,
                    excluded: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's candidates by their exact inner product, with −1 (not found) and
    every item of ``excluded`` (B, W) at −inf; (values, indices), as ``torch.topk`` returns them."""
    found = candidates >= 0
    safe = np.where(found, candidates, 0)
    scores = np.einsum("bh,bch->bc", hidden, item_reps[safe])
    drop = ~found | (safe[:, :, None] == excluded[:, None, :]).any(axis=2)
    scores[drop] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(safe, order, axis=1)
