"""Hyper-parameter search grids for ``amsrm experiment compare --tune``.

Same budget for every model: each trainable model gets exactly four configs,
the learning rate {1e-3, 3e-3} crossed with one parameter of its own, with the
same epochs, patience and time budget.  Each grid holds the model's defaults
(lr 1e-3 and its default value), so tuning can only keep or improve a model's
validation score, never lose the untuned configuration.

| model | second axis | values |
|---|---|---|
| amsrm, sasrec, sasrec-ce | dropout | 0.2 (default), 0.4 |
| gru4rec | dropout on inputs | 0.3 (default), 0.1 |
| caser | dropout on conv features | 0.5 (default), 0.3 |
| attrec | ω, weight of the long-term term | 0.3 (default), 0.5 |
| bpr | width d_model | 64 (default), 128 |
| popularity | — (nothing to tune: one config) | |

Selection (:func:`select_best`): the config with the highest mean *validation*
NDCG@10 over the tuning seeds (by default the first of ``--seeds``) wins; ties go
to the earlier config (the defaults come first).  Test metrics are never read.
The winner then runs on every seed (its tuning run is reused from the run store),
and the results entry records the grid, each config's validation NDCG@10 and the
winner under ``"tuning"``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from amsrm_core.training.trainer import SELECTION_METRIC, TrainConfig

LEARNING_RATES = (1e-3, 3e-3)
_TRANSFORMER = {"lr": LEARNING_RATES, "dropout": (0.2, 0.4)}
GRIDS: dict[str, dict[str, tuple]] = {
    "amsrm": _TRANSFORMER,
    "sasrec": _TRANSFORMER,
    "sasrec-ce": _TRANSFORMER,
    "gru4rec": {"lr": LEARNING_RATES, "dropout": (0.3, 0.1)},
    "caser": {"lr": LEARNING_RATES, "dropout": (0.5, 0.3)},
    "attrec": {"lr": LEARNING_RATES, "omega": (0.3, 0.5)},
    "bpr": {"lr": LEARNING_RATES, "d_model": (64, 128)},
    "popularity": {},
}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def grid_points(model: str) -> list[dict[str, Any]]:
    """Every config of ``model``'s grid, defaults first: ``[{"lr": 0.001, "dropout": 0.2}, …]``."""
    axes = GRIDS[model]
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def split_point(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A grid point → (model config overrides, TrainConfig overrides)."""
    train = {k: v for k, v in point.items() if k in _TRAIN_FIELDS}
    return {k: v for k, v in point.items() if k not in _TRAIN_FIELDS}, train


def point_label(point: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items()) or "default"


def select_best(candidates: Sequence[Sequence[dict]]) -> int:
    """Index of the winning candidate; each candidate is the list of its finished run records.

    Reads ``record["valid"][SELECTION_METRIC]`` only — the selection never sees test metrics.
    """
    scores = [float(np.mean([r["valid"][SELECTION_METRIC] for r in runs])) for runs in candidates]
    return int(np.argmax(scores))  # first maximum: earlier configs (the defaults) win ties
