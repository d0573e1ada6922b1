"""AttRec: short-term self-attention plus long-term metric learning, scored by distance.

Paper: Zhang, Tay, Yao & Sun, "Next Item Recommendation with Self-Attention"
(arXiv 1808.06414, 2018; reference code: cheungdaven/DeepRec ``AttRec.py``).
- Short term: the embeddings X of the latest L items; Q' = K' = ReLU((X + TE) W)
  with one shared W (the paper's W_Q = W_K) and a sinusoidal timing signal TE;
  s = softmax(Q'K'ᵀ / √d) with the diagonal masked; a = s X (the values are X
  itself, no projection); m = the mean of the L rows of a.
- Long term: a user embedding U_u and a second item embedding V (CML-style).
- Distance (lower = better): y_i = ω ‖U_u − V_i‖² + (1 − ω) ‖m − X_i‖², ω = 0.3.
- Loss: [y⁺ + γ − y⁻]₊ with margin γ = 0.5, each of the T = 3 next items paired with
  one sampled negative; U, V, X are kept inside the unit ball (norm clipping).

How it fits the shared interface: ``forward`` returns m at *every* position (B, T, d),
each from the L items ending there (causal and padding-invariant by construction);
``full_sort_predict`` returns −y for every item (higher = better, as the evaluator
ranks).  Windows and targets are built as Caser's (``caser.last_items`` /
``caser.next_targets``), with the same caveats at training-chunk boundaries.
Where this version differs from the paper:
- norm clipping is applied to the embeddings as they are used (x · min(1, 1/‖x‖)),
  not as a projection of the parameters after each step: train and evaluation see the
  same clipped vectors and the trainer needs no hook;
- a window shorter than L (zero-padded) attends only over its real items and m is
  their mean; a query with no other real item attends to itself;
- dropout on K' only, as the reference code (the paper only says it may be used);
- the hinge is averaged, not summed; L2 regularisation is ``TrainConfig.weight_decay``;
  negatives are uniform over the catalogue; Adam instead of Adagrad; width 64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amsrm_core.features import FeatureSchema
from amsrm_core.models.base import Recommender, init_weights
from amsrm_core.models.caser import last_items, next_targets
from amsrm_core.training.losses import margin_hinge, uniform_items


def timing_signal(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sinusoidal positions: TE(t, 2i) = sin(t / 10000^(2i/d)), TE(t, 2i+1) = cos(…)."""
    position = torch.arange(length, dtype=torch.float).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float) * (-math.log(10000.0) / dim))
    signal = torch.zeros(length, dim)
    signal[:, 0::2] = torch.sin(position * frequency)
    signal[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return signal


def clip_norm(x: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale every row with ‖x‖ > max_norm back onto the ball (0 = no clipping)."""
    if not max_norm:
        return x
    return x * (max_norm / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, d), (N, d) → (B, N) ‖a − b‖², without materialising the differences."""
    return (a.pow(2).sum(-1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(-1)).clamp(min=0.0)


@dataclass
class AttRecConfig:
    max_len: int = 50  # training chunk / evaluation window; only the last L items are read
    window: int = 5  # L, the paper's default
    n_targets: int = 3  # T next items per window in training (reference code: target_len=3)
    d_model: int = 64  # embedding width (paper tunes d; its code defaults to 100)
    omega: float = 0.3  # ω, weight of the long-term distance; 1 - ω goes to the short-term one
    margin: float = 0.5  # γ of the hinge loss
    max_norm: float = 1.0  # U, V, X clipped into this ball (the paper's norm clipping); 0 = off
    dropout: float = 0.3  # on K' (reference code)
    init_std: float = 0.1  # N(0, 0.1²), as the other models


class AttRec(Recommender):
    timing: torch.Tensor  # a buffer (register_buffer)

    def __init__(self, config: AttRecConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        d = config.d_model
        self.short_items = nn.Embedding(schema.n_items, d, padding_idx=0)  # X: inputs and short-term targets
        self.long_items = nn.Embedding(schema.n_items, d, padding_idx=0)  # V
        self.users = nn.Embedding(schema.n_users, d, padding_idx=0)  # U
        self.query_key = nn.Linear(d, d, bias=False)  # W_Q = W_K, shared as in the paper
        self.drop = nn.Dropout(config.dropout)
        self.register_buffer("timing", timing_signal(config.window, d), persistent=False)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.init_std)

    def _embed(self, table: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
        return clip_norm(table(index), self.config.max_norm)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        item_seq = batch["item_seq"]  # (B, T)
        L = self.config.window
        items = last_items(item_seq, L)  # (B, T, L)
        X = self._embed(self.short_items, items)  # (B, T, L, d)
        query = F.relu(self.query_key(X + self.timing))  # (B, T, L, d)
        key = self.drop(query)
        logits = query @ key.transpose(-1, -2) / math.sqrt(self.config.d_model)  # (B, T, L, L)
        real = (items != 0).unsqueeze(-2)  # (B, T, 1, L) keys that are items, not padding
        eye = torch.eye(L, dtype=torch.bool, device=item_seq.device)
        allowed = real & ~eye
        allowed = allowed | (eye & ~allowed.any(-1, keepdim=True))  # nothing else to attend to: itself
        a = logits.masked_fill(~allowed, -torch.inf).softmax(-1) @ X  # (B, T, L, d)
        rows = (items != 0).unsqueeze(-1).float()  # (B, T, L, 1) padding queries do not count
        return (a * rows).sum(2) / rows.sum(2).clamp(min=1.0)  # (B, T, d): m at every position

    def item_representations(self) -> torch.Tensor:
        return clip_norm(self.short_items.weight, self.config.max_norm)  # X, what m is compared with

    def _distance(self, user: torch.Tensor, m: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, d) users, (B, T, d) short-term m, (B, T, K) items → (B, T, K) distances y."""
        long = (self._embed(self.users, user)[:, None, None, :] - self._embed(self.long_items, items)).pow(2)
        short = (m.unsqueeze(2) - self._embed(self.short_items, items)).pow(2)
        omega = self.config.omega
        return omega * long.sum(-1) + (1 - omega) * short.sum(-1)

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.forward(batch)[:, -1, :]  # (B, d)
        user = self._embed(self.users, batch["user"])  # (B, d)
        long = squared_distance(user, clip_norm(self.long_items.weight, self.config.max_norm))
        short = squared_distance(m, self.item_representations())
        return -(self.config.omega * long + (1 - self.config.omega) * short)  # (B, n_items), higher = better

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.forward(batch)  # (B, T, d)
        targets = next_targets(batch["target"], self.config.n_targets)  # (B, T, n)
        negatives = uniform_items(targets.shape, self.schema.n_items, targets)  # one per target
        valid = (targets > 0) & (batch["target"] > 0).unsqueeze(-1)  # (B, T, n)
        positive = self._distance(batch["user"], m, targets)[valid]
        negative = self._distance(batch["user"], m, negatives)[valid]
        return margin_hinge(positive, negative, self.config.margin)
