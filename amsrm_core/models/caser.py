"""Caser: convolutional sequence embedding of the last L items, plus a user embedding.

Paper: Tang & Wang, "Personalized Top-N Sequential Recommendation via Convolutional
Sequence Embedding", WSDM 2018 (reference code: graytowne/caser_pytorch).  The
embeddings of the latest L items form an L × d "image".  Horizontal filters of every
height h = 1 … L (n_h of each) slide over it, each followed by ReLU and max-pooling
over time (union-level and point-level sequential patterns); n_v vertical L × 1
filters take weighted sums of the L embeddings.  Both are concatenated, dropped out
(0.5), mapped to d by a ReLU layer (z), concatenated with the user embedding P_u,
and scored against an output item embedding with an item bias:
y_i = [z ; P_u] · W'_i + b'_i.  Training: each window of L items predicts the next T
items (T = 3), binary cross-entropy with sampled negatives (3 per window, as the
reference code).

How it fits the shared interface:
- ``forward`` returns the hidden state [z ; P_u] at *every* position (B, T, 2d),
  each computed from the L items ending at that position, so it is causal and
  padding-invariant by construction; ``item_representations`` is W' and
  ``full_sort_predict`` adds the item bias b' (which is why it is overridden).
- The training instances come from the shared training windows
  (``batching.training_windows``: next item at every position): every position with
  a next item is a window of its latest L inputs, and its T targets are the targets
  at that position and the T - 1 after it (``next_targets``).  This is the paper's
  sliding window, except that (a) a chunk's first L - 1 positions see fewer than L
  items (the window does not reach into the previous chunk; short windows are
  zero-padded, as the reference code pads short sequences) and (b) a chunk's last
  T - 1 windows have fewer than T targets.  Use a large ``max_len`` to make both rare.
- Negatives are uniform over the catalogue (the paper excludes the user's items);
  the paper's L2 term is ``TrainConfig.weight_decay``; width 64 (paper 50).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amsrm_core.features import FeatureSchema
from amsrm_core.models.base import Recommender, init_weights
from amsrm_core.training.losses import bce_scores, uniform_items


def last_items(item_seq: torch.Tensor, length: int) -> torch.Tensor:
    """(B, T) → (B, T, length): the ``length`` items ending at each position, 0-padded on the left."""
    return F.pad(item_seq, (length - 1, 0)).unfold(1, length, 1)


def next_targets(target: torch.Tensor, n: int) -> torch.Tensor:
    """(B, T) next-item targets → (B, T, n): the targets at each position and the n - 1 after it.

    ``target[:, t]`` is the item after input position t, so ``target[:, t : t + n]`` are
    the n items after the window ending at t; 0 (no target) past the end of the row.
    """
    return F.pad(target, (0, n - 1)).unfold(1, n, 1)


@dataclass
class CaserConfig:
    max_len: int = 50  # training chunk / evaluation window; only the last L items are read
    window: int = 5  # L, the paper's default
    n_targets: int = 3  # T, items predicted per window in training (the paper's default)
    d_model: int = 64  # embedding width d (paper: 50)
    n_horizontal: int = 16  # n_h filters per height h = 1 … L (reference code default)
    n_vertical: int = 4  # n_v vertical filters (reference code default)
    dropout: float = 0.5  # on the concatenated convolution features, the paper's default
    n_negatives: int = 3  # sampled negatives per window (reference code default)
    init_std: float = 0.1  # N(0, 0.1²) for embeddings and linear layers, as the other models


class Caser(Recommender):
    def __init__(self, config: CaserConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        d, L = config.d_model, config.window
        self.item_id = nn.Embedding(schema.n_items, d, padding_idx=0)
        self.user_id = nn.Embedding(schema.n_users, d, padding_idx=0)
        self.horizontal = nn.ModuleList(nn.Conv2d(1, config.n_horizontal, (h, d)) for h in range(1, L + 1))
        self.vertical = nn.Conv2d(1, config.n_vertical, (L, 1))
        self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.n_vertical * d + config.n_horizontal * L, d)
        self.out_items = nn.Embedding(schema.n_items, 2 * d, padding_idx=0)  # W'
        self.out_bias = nn.Embedding(schema.n_items, 1, padding_idx=0)  # b'
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.init_std)  # convolutions keep PyTorch's default (reference code)
        if module is self.out_bias:
            nn.init.zeros_(module.weight)  # the reference code starts b' at zero

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        item_seq = batch["item_seq"]
        B, T = item_seq.shape
        L, d = self.config.window, self.config.d_model
        x = self.item_id(last_items(item_seq, L)).view(B * T, 1, L, d)  # one L × d image per position
        vertical = self.vertical(x).view(B * T, -1)  # (B·T, n_v·d), no activation (reference code)
        horizontal = [F.relu(conv(x)).squeeze(3).amax(dim=2) for conv in self.horizontal]  # L × (B·T, n_h)
        z = F.relu(self.fc(self.drop(torch.cat([vertical, *horizontal], dim=1)))).view(B, T, d)
        user = self.user_id(batch["user"]).unsqueeze(1).expand(B, T, d)
        return torch.cat([z, user], dim=-1)  # (B, T, 2d)

    def item_representations(self) -> torch.Tensor:
        return self.out_items.weight  # (n_items, 2d)

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        last = self.forward(batch)[:, -1, :]  # (B, 2d)
        return last @ self.out_items.weight.T + self.out_bias.weight.T  # (B, n_items)

    def _scores(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, T, 2d) hidden, (B, T, K) items → (B, T, K) scores y = h · W'_i + b'_i."""
        return (hidden.unsqueeze(2) * self.out_items(items)).sum(-1) + self.out_bias(items).squeeze(-1)

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.forward(batch)  # (B, T, 2d)
        targets = next_targets(batch["target"], self.config.n_targets)  # (B, T, n)
        window = batch["target"] > 0  # (B, T): positions that are a training window
        negatives = uniform_items((*window.shape, self.config.n_negatives), self.schema.n_items, targets)
        positive = self._scores(hidden, targets)[(targets > 0) & window.unsqueeze(-1)]
        negative = self._scores(hidden, negatives)[window]  # (N, K)
        return bce_scores(positive, negative.flatten())
