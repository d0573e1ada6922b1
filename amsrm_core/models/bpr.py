"""BPR-MF: matrix factorisation trained with Bayesian personalised ranking.

Paper: Rendle, Freudenthaler, Gantner & Schmidt-Thieme, "BPR: Bayesian Personalized
Ranking from Implicit Feedback", UAI 2009.  A user and an item embedding; the score
is their inner product, x_ui = ⟨w_u, h_i⟩; trained pairwise: −log σ(x_ui − x_uj) for
an observed item i and an unobserved item j.  No sequence: the converged BPR row of
docs/ANCHORS.md is the floor every sequential model must clear.

How it fits the shared interface: ``forward`` returns the user embedding at every
position (B, T, d), so the base class's ``calculate_loss`` applies the shared ``bpr``
loss (``training/losses.py``) to every training target in the batch with one
uniformly sampled negative each, and ``full_sort_predict`` scores every item by
⟨w_u, h_i⟩.  Where this differs from the paper:
- positives are the shared training windows' targets, i.e. each training event once
  per epoch except each user's very first event (it is never a next item), instead
  of bootstrap-sampled (u, i, j) triples;
- j is uniform over the catalogue, not restricted to items u has not seen;
- the paper's L2 regularisation is ``TrainConfig.weight_decay``; N(0, 0.1²) init.
Learning rate: the shared trainer takes few steps per epoch (a batch is 128 windows
of up to ``max_len`` targets), and BPR starts on a plateau (x_ui − x_uj ≈ 0); at lr
1e-3 early stopping can end it before it learns.  lr 1e-2 trains it in seconds on the
synthetic set (test N@10 ≈ .11, against ≈ .014 at 1e-3 with patience 15).
An unknown user (index 1) keeps its initial embedding: its scores are finite noise,
and the stream worker should fall back to popularity for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from amsrm_core.features import FeatureSchema
from amsrm_core.models.base import Recommender, init_weights


@dataclass
class BPRConfig:
    max_len: int = 50  # only sets the training chunks and evaluation window; the model ignores the sequence
    d_model: int = 64  # embedding width, as RecBole's BPR row in docs/ANCHORS.md
    loss: str = "bpr"  # the paper's pairwise loss; any loss of training/losses.py also works
    n_negatives: int = 256  # only for loss="sampled"
    init_std: float = 0.1  # N(0, 0.1²), as the other models


class BPR(Recommender):
    def __init__(self, config: BPRConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(config, schema)
        self.user_id = nn.Embedding(schema.n_users, config.d_model, padding_idx=0)
        self.item_id = nn.Embedding(schema.n_items, config.d_model, padding_idx=0)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        init_weights(module, self.config.init_std)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        B, T = batch["item_seq"].shape
        return self.user_id(batch["user"]).unsqueeze(1).expand(B, T, -1)  # (B, T, d): same at every position

    def item_representations(self) -> torch.Tensor:
        return self.item_id.weight  # (n_items, d)
