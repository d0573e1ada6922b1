"""Top-K ranking metrics over the full catalogue (no sampled negatives).

Each evaluation case has exactly one relevant item (the next event), so with
``rank`` = 0-based position of the target in the ranked list:
- HR@K = Recall@K = 1 if rank < K;   Precision@K = HR@K / K;
- NDCG@K = 1 / log2(rank + 2) if rank < K (the ideal DCG is 1);
- MRR@K = 1 / (rank + 1) if rank < K.

Ties are counted *against* the target (every other item with an equal score ranks
ahead of it), so a model that scores everything alike gets nothing, and no tie
breaking by item index can flatter a model.
"""

from __future__ import annotations

import numpy as np
import torch

KS = (5, 10, 15, 20)
METRICS = ("precision", "recall", "ndcg", "hr", "mrr")


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each row's target among all columns (ties pessimistic).

    scores: (B, N) with excluded items at -inf; targets: (B,) column indices.
    A target whose own score is -inf (e.g. masked as already seen) ranks last.
    """
    target_scores = scores.gather(1, targets.unsqueeze(1))  # (B, 1)
    ahead = (scores >= target_scores).sum(dim=1) - 1  # every tie but the target itself
    missing = torch.isneginf(target_scores.squeeze(1))
    return torch.where(missing, torch.full_like(ahead, scores.shape[1]), ahead)


def metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Mean of every metric@K over the cases; keys like ``ndcg@10``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no evaluation cases")
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"precision@{k}"] = float(hit.mean() / k)
        out[f"recall@{k}"] = float(hit.mean())
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out
