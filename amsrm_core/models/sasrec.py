"""SASRec: id-only causal self-attention over the behaviour sequence.

Paper: Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018
(reference code: pmixer/SASRec.pytorch, RecBole ``sasrec.py``).  Item embeddings
plus learned positions go through stacked causal self-attention blocks; the output
at every position is scored by inner product against the (shared) item embeddings;
trained on the next item at every position with binary cross-entropy and one
sampled negative per target.

Why this is a thin subclass of AMSRM and not a second transformer: AMSRM with every
side field switched off *is* SASRec with this project's choices (its docstring), so
one implementation serves both and the id-only baseline cannot drift from the model
it is the baseline for — any gain AMSRM shows over it comes from side information,
not from a different transformer.  ``SASRec`` only narrows the config to SASRec's
fields and builds AMSRM with ``use_item_fields = use_behaviour = use_user_fields =
False`` (no side-information parameters or buffers exist at all).

Where this version differs from the paper (all inherited from AMSRM):
- pre-layer-norm blocks and positions counted from the right (the latest event
  always has the same position), N(0, 0.1²) init, width 64 (paper 50);
- negatives for ``bce`` are uniform over the catalogue, not restricted to items the
  user has not seen (``training/losses.py``);
- registry ``"sasrec"`` trains with the paper's BCE, ``"sasrec-ce"`` with full
  softmax cross-entropy (SASRec+, Klenitskiy & Vasilev 2023), the stronger loss
  (docs/ANCHORS.md).  The two differ only in the config default of ``loss``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from amsrm_core.features import FeatureSchema
from amsrm_core.models.amsrm import AMSRM, AMSRMConfig


@dataclass
class SASRecConfig:
    max_len: int = 50  # the paper's n for sparse data sets (200 for ML-1M)
    d_model: int = 64  # item embedding and attention width (paper: 50)
    n_blocks: int = 2  # the paper's setting
    n_heads: int = 1  # the paper's setting; more heads did not help it
    dropout: float = 0.2  # the paper's ML-1M value; its 0.5 (sparse sets) hurts MovieLens (docs/ANCHORS.md)
    loss: str = "bce"  # the paper's BCE with one sampled negative; ce | sampled | bce | bpr
    n_negatives: int = 256  # only for loss="sampled"
    init_std: float = 0.1  # N(0, 0.1²) init, as AMSRM (PyTorch's N(0, 1) learns slowly with CE)


@dataclass
class SASRecCEConfig(SASRecConfig):
    loss: str = "ce"  # full softmax cross-entropy (SASRec+): the strong id-only reference


class SASRec(AMSRM):
    def __init__(self, config: SASRecConfig, schema: FeatureSchema,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        id_only = AMSRMConfig(**dataclasses.asdict(config), use_item_fields=False, use_behaviour=False,
                              use_user_fields=False)
        super().__init__(id_only, schema)  # id-only: side tables are not needed
        self.config = config  # what checkpoints and results record; AMSRM.forward reads only max_len
