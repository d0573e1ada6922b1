"""Most-popular baseline: every user gets the items most frequent in training.

The floor any sequential model must clear; counts come from training targets
only, so nothing after the split leaks in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amsrm_core.features import FeatureSchema
from amsrm_core.models.base import Recommender


@dataclass
class PopularityConfig:
    max_len: int = 30  # only sets the evaluation window; the model ignores the sequence


class Popularity(Recommender):
    counts: torch.Tensor  # a buffer (register_buffer)

    def __init__(self, config: PopularityConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        self.register_buffer("counts", torch.zeros(schema.n_items))

    def fit_statistics(self, train_items: torch.Tensor) -> None:
        # assigned in place: the buffer stays on the model's device (a new tensor would be on the CPU)
        self.counts.copy_(torch.bincount(train_items, minlength=self.schema.n_items).float())

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(batch["item_seq"].shape[0], -1)
