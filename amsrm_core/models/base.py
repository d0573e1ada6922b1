"""The interface every recommender implements, and the helpers they share.

Batch tensors (all int64):
- ``item_seq``      (B, T) item indices, left-padded with 0, latest event last;
- ``behaviour_seq`` (B, T) behaviour index of each event (0 = padding / none);
- ``user``          (B,)   user index (1 = unknown user);
- ``target``        (B, T) next item at every position for training (0 = no target),
                    or (B,) the item to predict for evaluation.

Methods (RecBole's four, adapted to side information):
- ``forward(batch)``            → (B, T, H) hidden state per position (causal);
- ``item_representations()``    → (n_items, H) what hidden states are scored against;
- ``represent_items(items)``     → (*items.shape, H) the same rows for some items only (sampled losses);
- ``calculate_loss(batch)``     → scalar training loss;
- ``full_sort_predict(batch)``  → (B, n_items) scores of every item after the last position;
- ``predict(batch)``            → (B,) score of ``batch["target"]``.
"""

from __future__ import annotations

import torch
from torch import nn

from amsrm_core.training.losses import LOSSES


class Recommender(nn.Module):
    """Base class: inner-product scoring of the last hidden state against every item."""

    def __init__(self, config, schema, tables: dict[str, torch.Tensor] | None = None) -> None:
        """Keep the typed config and feature schema; read the loss settings every model shares.

        ``tables`` (the feature tables, features.py) is part of every model's constructor, as the
        registry calls it; models with side information register them, the base ignores them.
        """
        super().__init__()
        self.config, self.schema = config, schema
        self.loss_name: str = getattr(config, "loss", "ce")
        self.loss_options: dict = {"n_negatives": getattr(config, "n_negatives", 256)}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def item_representations(self) -> torch.Tensor:
        raise NotImplementedError

    def represent_items(self, items: torch.Tensor) -> torch.Tensor:
        """Rows of ``item_representations()`` for ``items``; models override it to skip the rest."""
        return self.item_representations()[items]

    @property
    def trainable(self) -> bool:
        """Whether gradient training applies (count-based baselines say no)."""
        return any(p.requires_grad for p in self.parameters())

    def fit_statistics(self, train_items: torch.Tensor) -> None:
        """Hook for models that learn from counts of the training items; no-op by default."""

    def calculate_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.forward(batch)  # (B, T, H)
        has_target = batch["target"] > 0
        loss = LOSSES[self.loss_name]
        return loss(hidden[has_target], ItemSide(self), batch["target"][has_target], **self.loss_options)

    def last_hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, H): the output at the last position, the one every prediction uses (left padding keeps
        the latest event last). Offline evaluation and the stream scorer both call this, so a model
        that computes it more cheaply than ``forward`` keeps them equal."""
        return self.forward(batch)[:, -1, :]

    def full_sort_predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.last_hidden(batch) @ self.item_representations().T

    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.full_sort_predict(batch).gather(1, batch["target"].unsqueeze(1)).squeeze(1)


class ItemSide:
    """What a loss may ask of the item side: every item's representation, or a few items' only.

    Full softmax needs them all; sampled losses need the targets and negatives only, which
    is most of the saving of sampling on a large catalogue (no forward or backward through
    the other items' side-information encoders).
    """

    def __init__(self, model: Recommender) -> None:
        self.model, self.n_items = model, model.schema.n_items

    def all(self) -> torch.Tensor:
        return self.model.item_representations()

    def rows(self, items: torch.Tensor) -> torch.Tensor:
        return self.model.represent_items(items)


def attention_mask(item_seq: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) boolean: query t may attend key s ≤ t that is not padding.

    A padding query attends to itself only, so no row is empty (which would give NaN);
    its output is never used.
    """
    T = item_seq.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=item_seq.device).tril()
    keys = (item_seq != 0)[:, None, None, :]  # (B, 1, 1, T)
    eye = torch.eye(T, dtype=torch.bool, device=item_seq.device)
    return (causal & keys) | eye


def init_weights(module: nn.Module, std: float) -> None:
    """N(0, std²) for embeddings and linear weights, zero biases, unit layer norms.

    A small std matters with inner-product scoring and CE: PyTorch's default N(0, 1)
    embeddings start with huge logits and learn slowly (docs/ANCHORS.md).
    """
    if isinstance(module, nn.Embedding | nn.Linear):
        nn.init.normal_(module.weight, 0.0, std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
