"""GRU4Rec: a GRU over the behaviour sequence, next item at every position (the sanity row).

Paper: Hidasi, Karatzoglou, Baltrunas & Tikk, "Session-based Recommendations with
Recurrent Neural Networks", ICLR 2016; this is the RecBole ``gru4rec.py`` variant
that docs/ANCHORS.md measured: item embedding → dropout → GRU → linear to the embedding
width, scored by inner product against the same item embeddings, full softmax
cross-entropy.  Where it differs from the paper: whole user histories instead of
sessions with session-parallel mini-batches, CE instead of TOP1/BPR ranking losses
(Hidasi & Karatzoglou's 2018 follow-up also found softmax-type losses best), tied
input/output item embeddings, N(0, 0.1²) init for embeddings and the output layer.

Left padding: batches are left-padded, and a GRU's state changes even on zero
inputs (its biases), so the rows are rotated to right padding before the GRU and
back after it.  Each real event's state then depends only on the events before it —
causal, and independent of how much padding the batch has; padding positions output 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from amsrm_core.features import FeatureSchema
from amsrm_core.models.base import Recommender, init_weights


def rotate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, T, …) → row b rotated left by shift[b] along time: out[b, t] = x[b, (t + shift[b]) % T]."""
    T = x.shape[1]
    index = (torch.arange(T, device=x.device) + shift[:, None]) % T  # (B, T)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


@dataclass
class GRU4RecConfig:
    max_len: int = 50  # as RecBole's runs in docs/ANCHORS.md
    d_model: int = 64  # item embedding width (RecBole's embedding_size)
    d_hidden: int = 128  # GRU state width (RecBole's hidden_size default)
    n_layers: int = 1  # RecBole's default
    dropout: float = 0.3  # on the input embeddings (RecBole's dropout_prob)
    loss: str = "ce"  # full softmax: the sanity row is trained like SASRec-CE
    n_negatives: int = 256  # only for loss="sampled"
    init_std: float = 0.1  # N(0, 0.1²) for embeddings and linear layers, as the other models


class GRU4Rec(Recommender):
    def __init__(self, config: GRU4RecConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        self.item_id = nn.Embedding(schema.n_items, config.d_model, padding_idx=0)
        self.drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.d_model, config.d_hidden, config.n_layers, batch_first=True, bias=True)
        self.out = nn.Linear(config.d_hidden, config.d_model)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.init_std)
        if isinstance(module, nn.GRU):  # Xavier weights, zero biases (RecBole)
            for name, weight in module.named_parameters():
                (nn.init.xavier_uniform_ if name.startswith("weight") else nn.init.zeros_)(weight)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        item_seq = batch["item_seq"]  # (B, T)
        padding = item_seq.shape[1] - (item_seq != 0).sum(1)  # (B,)
        x = self.drop(self.item_id(rotate(item_seq, padding)))  # (B, T, d), right-padded
        states, _ = self.gru(x)  # (B, T, h)
        hidden = self.out(rotate(states, -padding))  # (B, T, d), left-padded again
        return hidden * (item_seq != 0).unsqueeze(-1)  # padding slots saw the whole row: zero them

    def item_representations(self) -> torch.Tensor:
        return self.item_id.weight  # (n_items, d)
