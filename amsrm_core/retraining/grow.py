"""Warm start on grown vocabularies: the current model's weights in a model sized for the new data.

Vocabularies only append (amsrm_core.vocab), so a learned row keeps its index and the
grown model is the old one with extra rows: every tensor whose first dimension is a
vocabulary size (item and user embeddings, side-value embeddings, output tables) gets
the old rows copied into its leading rows, and the new rows keep the model's own
initialisation.  Every other tensor must keep its shape.  Integer buffers are the
side-field tables, which are data and come from the new ``InteractionData`` (already
merged with the old tables by ``dataset.encode_events``).  Anything else — a new
field, another config — is not a growth and is refused: that needs a full ``amsrm train``.
"""

from __future__ import annotations

import dataclasses

from amsrm.errors import AmsrmError
from amsrm_core.features import FeatureSchema, feature_tables
from amsrm_core.models import MODELS, Recommender
from amsrm_core.schema import InteractionData


class GrowthError(AmsrmError, ValueError):
    """The new data needs a different architecture, not just bigger vocabularies."""


def grow_model(old: Recommender, model_name: str, data: InteractionData) -> Recommender:
    """A model for ``data``'s vocabularies holding every weight ``old`` learned."""
    model_cls, _ = MODELS[model_name]
    new = model_cls(dataclasses.replace(old.config), FeatureSchema.from_data(data), feature_tables(data))
    old_state, new_state = old.state_dict(), new.state_dict()
    if set(old_state) != set(new_state):
        missing, added = sorted(set(old_state) - set(new_state)), sorted(set(new_state) - set(old_state))
        raise GrowthError(f"the weights differ, not only in size: missing {missing}, new {added}")
    merged = {}
    for key, fresh in new_state.items():
        learned = old_state[key].to(fresh.device)
        if not fresh.is_floating_point():  # field tables: data, already merged
            merged[key] = fresh
        elif learned.shape == fresh.shape:
            merged[key] = learned
        elif learned.shape[1:] == fresh.shape[1:] and learned.shape[0] <= fresh.shape[0]:
            grown = fresh.clone()
            grown[: learned.shape[0]] = learned
            merged[key] = grown
        else:
            shapes = f"{tuple(learned.shape)} → {tuple(fresh.shape)}"
            raise GrowthError(f"{key}: {shapes} is not a vocabulary growth")
    new.load_state_dict(merged)
    return new


def grown_rows(old: Recommender, new: Recommender) -> dict[str, tuple[int, int]]:
    """Weights and field tables that grew: name → (old rows, new rows), for the report."""
    old_state = old.state_dict()
    return {k: (int(old_state[k].shape[0]), int(v.shape[0])) for k, v in new.state_dict().items()
            if v.shape != old_state[k].shape}

