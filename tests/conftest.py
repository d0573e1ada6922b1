"""Shared fixtures: a small synthetic data set, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from amsrm_core.schema import InteractionData, build_interactions

torch.set_num_threads(2)  # CI machines have 2 cores; never oversubscribe them
# The real data sets: the code's default is ./data (or $AMSRM_DATA); the tests' is the shared folder
# beside the repository, as .ci/run sets it. Set here, so subprocesses (workers, CLI) inherit it too.
os.environ.setdefault("AMSRM_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def small_synthetic() -> InteractionData:
    return generate_synthetic(SyntheticConfig(n_users=300, n_items=600, min_events=8, max_events=30, seed=1))


@pytest.fixture
def tiny_data() -> InteractionData:
    """Three users with hand-checkable histories (timestamps out of file order on purpose)."""
    rows = [  # user, item, time, behaviour
        ("a", "x", 10, "click"), ("a", "y", 20, "buy"), ("a", "z", 30, "click"), ("a", "w", 40, "like"),
        ("b", "y", 5, "click"), ("b", "x", 15, "click"), ("b", "v", 25, "buy"),
        ("c", "z", 50, "click"), ("c", "x", 35, "share"),
    ]
    users, items, times, behaviours = zip(*rows, strict=True)
    categories = {"x": "c1", "y": "c1", "z": "c2", "w": "c2", "v": "c3"}
    return build_interactions("tiny", users, items, times, behaviours,
                              item_features={"category": categories},
                              user_features={"gender": {"a": "F", "b": "M"}})
