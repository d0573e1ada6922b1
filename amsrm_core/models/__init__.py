"""Model registry: name → (model class, config class).  Explicit, no importlib magic."""

from __future__ import annotations

from amsrm_core.models.amsrm import AMSRM, AMSRMConfig
from amsrm_core.models.base import Recommender
from amsrm_core.models.popularity import Popularity, PopularityConfig

MODELS: dict[str, tuple[type[Recommender], type]] = {
    "amsrm": (AMSRM, AMSRMConfig),
    "popularity": (Popularity, PopularityConfig),
}

__all__ = ["MODELS", "Recommender"]
