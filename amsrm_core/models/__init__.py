"""Model registry: name → (model class, config class).  Explicit, no importlib magic."""

from __future__ import annotations

from amsrm_core.models.amsrm import AMSRM, AMSRMConfig
from amsrm_core.models.attrec import AttRec, AttRecConfig
from amsrm_core.models.base import Recommender
from amsrm_core.models.bpr import BPR, BPRConfig
from amsrm_core.models.caser import Caser, CaserConfig
from amsrm_core.models.gru4rec import GRU4Rec, GRU4RecConfig
from amsrm_core.models.popularity import Popularity, PopularityConfig
from amsrm_core.models.sasrec import SASRec, SASRecCEConfig, SASRecConfig

MODELS: dict[str, tuple[type[Recommender], type]] = {
    "amsrm": (AMSRM, AMSRMConfig),
    "popularity": (Popularity, PopularityConfig),
    "sasrec": (SASRec, SASRecConfig),  # the paper's BCE with one sampled negative
    "sasrec-ce": (SASRec, SASRecCEConfig),  # same model, full softmax CE
    "caser": (Caser, CaserConfig),
    "bpr": (BPR, BPRConfig),
    "attrec": (AttRec, AttRecConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
}

__all__ = ["MODELS", "Recommender"]
