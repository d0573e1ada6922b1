"""Next-item losses, written once for every model that scores by inner product.

Each takes the hidden states at the positions that have a target, the model's
item side (``ItemSide``: ``all()`` representations, or ``rows(items)`` for a few, so
sampled losses never encode the rest of the catalogue) and the targets.  Reserved
indices (0 padding, 1 unknown) are never candidates.

- ``ce``: full softmax cross-entropy over the whole catalogue — far stronger than
  BCE with one negative (ANCHORS: ML-1M NDCG@10 0.134 → 0.182), the default.
- ``sampled``: softmax over the target and uniformly sampled shared negatives, for
  catalogues too large for a full softmax; accidental hits are removed.
- ``bce``: SASRec's original binary cross-entropy with one sampled negative.
- ``bpr``: Rendle et al.'s pairwise BPR, −log σ(s⁺ − s⁻), with one sampled negative.

Models that do not score by a plain inner product (Caser's item bias, AttRec's
distances) compute their positive and negative scores themselves and call the
score-level losses directly: ``bce_scores``, ``bpr`` and ``margin_hinge``.
Negatives are drawn uniformly from the non-reserved items (``uniform_items``); an
accidental hit (negative = positive) is rare on real catalogues and left in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

RESERVED = 2  # padding and unknown


class Items(Protocol):
    n_items: int

    def all(self) -> torch.Tensor: ...  # (n_items, H)

    def rows(self, items: torch.Tensor) -> torch.Tensor: ...  # (*items.shape, H)


def full_softmax(hidden: torch.Tensor, items: Items, targets: torch.Tensor, **_) -> torch.Tensor:
    logits = hidden @ items.all()[RESERVED:].T  # (N, I - 2)
    return F.cross_entropy(logits.float(), targets - RESERVED)  # fp32 softmax even under bf16 autocast


def uniform_items(shape: tuple[int, ...], n_items: int, like: torch.Tensor) -> torch.Tensor:
    """Item indices drawn uniformly from RESERVED … n_items - 1, on ``like``'s device."""
    return torch.randint(RESERVED, n_items, shape, device=like.device)


def sampled_softmax(
    hidden: torch.Tensor, items: Items, targets: torch.Tensor, n_negatives: int = 256, **_
) -> torch.Tensor:
    negatives = uniform_items((n_negatives,), items.n_items, targets)  # shared by the batch
    reps = items.rows(torch.cat([targets, negatives]))  # only these items are encoded
    positive = (hidden * reps[: len(targets)]).sum(-1, keepdim=True)  # (N, 1)
    negative = hidden @ reps[len(targets) :].T  # (N, K)
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def bce_scores(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits: positives labelled 1, negatives 0, mean over both."""
    return F.binary_cross_entropy_with_logits(
        torch.cat([positive, negative]), torch.cat([torch.ones_like(positive), torch.zeros_like(negative)])
    )


def bpr(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Pairwise BPR (Rendle et al. 2009): mean of −log σ(s⁺ − s⁻) over paired scores."""
    return -F.logsigmoid(positive - negative).mean()


def margin_hinge(positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """AttRec's margin loss on paired *distances* (lower = better): mean of [d⁺ + margin − d⁻]₊."""
    return F.relu(positive + margin - negative).mean()


def _one_negative_scores(hidden: torch.Tensor, items: Items,
                         targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner-product scores of each target and of one uniformly sampled negative, (N,) each."""
    negatives = uniform_items(targets.shape, items.n_items, targets)
    positive, negative = items.rows(torch.stack([targets, negatives]))  # (N, H) each
    return (hidden * positive).sum(-1), (hidden * negative).sum(-1)


def bce_one_negative(hidden: torch.Tensor, items: Items, targets: torch.Tensor, **_) -> torch.Tensor:
    return bce_scores(*_one_negative_scores(hidden, items, targets))


def bpr_one_negative(hidden: torch.Tensor, items: Items, targets: torch.Tensor, **_) -> torch.Tensor:
    return bpr(*_one_negative_scores(hidden, items, targets))


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ce": full_softmax,
    "sampled": sampled_softmax,
    "bce": bce_one_negative,
    "bpr": bpr_one_negative,
}
