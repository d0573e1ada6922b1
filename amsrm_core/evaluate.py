"""Model-independent evaluation: full ranking of every item for every case.

The evaluator only calls ``model.full_sort_predict``; it sets the reserved
indices (padding, unknown) and, by default, every item already in the user's
history to -inf, then ranks the target (see :mod:`amsrm_core.metrics`).
"""

from __future__ import annotations

import numpy as np
import torch

from amsrm_core.batching import case_windows, history_mask_index
from amsrm_core.metrics import KS, metrics_from_ranks, target_ranks
from amsrm_core.models.base import Recommender
from amsrm_core.splits import Split
from amsrm_core.vocab import UNKNOWN


@torch.no_grad()
def case_ranks(
    model: Recommender,
    split: Split,
    cases: np.ndarray,
    max_len: int,
    batch_size: int = 512,
    mask_history: bool = True,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """0-based rank of each case's target over the full catalogue.

    Cases are batched in order of history length, so each batch is trimmed to windows of
    similar width (most histories are shorter than n); ranks come back in case order.
    """
    model.eval()
    windows = case_windows(split, cases, max_len)
    by_length = torch.argsort((windows.item_seq != 0).sum(dim=1), stable=True)
    ranks = np.zeros(len(windows), dtype=np.int64)
    for lo in range(0, len(windows), batch_size):
        rows = by_length[lo : lo + batch_size]
        batch = {k: v.to(device) for k, v in windows.batch(rows).items()}
        scores = model.full_sort_predict(batch).float().clone()  # (B, n_items); we write into it
        scores[:, : UNKNOWN + 1] = -torch.inf
        if mask_history:
            r, items = history_mask_index(split, cases[rows.numpy()])
            scores[torch.from_numpy(r).to(device), torch.from_numpy(items).to(device)] = -torch.inf
        ranks[rows.numpy()] = target_ranks(scores, batch["target"]).cpu().numpy()
    return ranks


def evaluate(
    model: Recommender,
    split: Split,
    part: str,
    max_len: int,
    ks: tuple[int, ...] = KS,
    **options,
) -> dict[str, float]:
    """Every metric@K on the ``valid`` or ``test`` cases of a split."""
    cases = {"valid": split.valid_cases, "test": split.test_cases}[part]
    return metrics_from_ranks(case_ranks(model, split, cases, max_len, **options), ks)
