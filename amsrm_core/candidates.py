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

KINDS = ("exact", "ivf", "hnsw")


@dataclass(frozen=True)
class IndexOptions:
    """``kind``: exact (no index), ivf (faiss IVF-flat on the inner product) or hnsw (faiss HNSW
    in L2 on the augmented catalogue).  ``probes``: IVF lists scanned, or the HNSW search width."""

    kind: str = "exact"
    probes: int = 32
    threads: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"the Top-K index must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.probes < 1:
            raise ConfigError(f"the Top-K index's probes must be >= 1, got {self.probes}")


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


def ivf_lists(n_items: int) -> int:
    """About 4·sqrt(n) lists (faiss's guideline), at least 1 and at most n/39 (each list trained on ≥ 39)."""
    return int(max(1, min(4 * np.sqrt(n_items), n_items // 39)))


class IvfIndex:
    """IVF-flat on the inner product: ``probes`` of the lists nearest each query are scanned exactly."""

    def __init__(self, item_reps: np.ndarray, options: IndexOptions) -> None:
        faiss = _faiss()
        self._faiss = faiss
        n, dim = item_reps.shape
        lists = ivf_lists(n)
        quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)
        self.index.train(item_reps[np.sort(sample)])
        self.index.add(item_reps)
        self.index.nprobe = min(options.probes, lists)
        self.threads = options.threads

    def search(self, hidden: np.ndarray, wanted: int) -> np.ndarray:
        self._faiss.omp_set_num_threads(self.threads)
        return self.index.search(hidden, wanted)[1]


class HnswIndex:
    """HNSW in L2 over items given a last coordinate sqrt(M² − |x|²) (M the largest norm) and
    queries a 0: then |q − x|² = |q|² + M² − 2 q·x, so the nearest item is the largest inner product
    (a graph index on the raw inner product, which is not a metric, finds far fewer of them)."""

    def __init__(self, item_reps: np.ndarray, options: IndexOptions) -> None:
        faiss = _faiss()
        self._faiss = faiss
        self.index = faiss.IndexHNSWFlat(item_reps.shape[1] + 1, 32, faiss.METRIC_L2)
        self.index.hnsw.efConstruction = 64
        self.index.add(augmented(item_reps))
        self.index.hnsw.efSearch = options.probes
        self.threads = options.threads

    def search(self, hidden: np.ndarray, wanted: int) -> np.ndarray:
        self._faiss.omp_set_num_threads(self.threads)
        self.index.hnsw.efSearch = max(self.index.hnsw.efSearch, wanted)  # HNSW returns at most ef
        queries = np.hstack([hidden, np.zeros((len(hidden), 1), np.float32)])
        return self.index.search(queries, wanted)[1]


def augmented(item_reps: np.ndarray) -> np.ndarray:
    """(n, H + 1): the maximum inner product search as a nearest neighbour one (``HnswIndex``)."""
    norms = np.linalg.norm(item_reps, axis=1)
    extra = np.sqrt(np.maximum(norms.max() ** 2 - norms ** 2, 0.0))[:, None]
    return np.ascontiguousarray(np.hstack([item_reps, extra]), dtype=np.float32)


def build_index(item_reps: np.ndarray, options: IndexOptions) -> CandidateIndex | None:
    """The index ``options`` ask for over (n_items, H) float32 representations; None for exact."""
    item_reps = np.ascontiguousarray(item_reps, dtype=np.float32)
    if options.kind == "ivf":
        return IvfIndex(item_reps, options)
    if options.kind == "hnsw":
        return HnswIndex(item_reps, options)
    return None


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
