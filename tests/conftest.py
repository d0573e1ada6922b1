"""Shared fixtures: a small synthetic data set, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from amsrm_core.schema import InteractionData, build_interactions
from streams.local.broker import ENGINES, make_broker
from streams.local.kafka import kafka_version

torch.set_num_threads(2)  # CI machines have 2 cores; never oversubscribe them
# The real data sets: the code's default is ./data (or $AMSRM_DATA); the tests' is the shared folder
# beside the repository, as .ci/run sets it. Set here, so subprocesses (workers, CLI) inherit it too.
os.environ.setdefault("AMSRM_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))


#: The broker engine of every test that talks to a broker: Apache Kafka unless told otherwise.
#: `make test` runs the suite on Kafka, then the tests marked `broker` once more on Tansu.
TEST_BROKER_ENV = "AMSRM_TEST_BROKER"


def test_broker_engine() -> str:
    engine = os.environ.get(TEST_BROKER_ENV, "kafka")
    if engine not in ENGINES:
        raise pytest.UsageError(f"{TEST_BROKER_ENV} must be one of {ENGINES}, got {engine!r}")
    return engine


test_broker_engine.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def pytest_report_header(config: pytest.Config) -> str:
    engine = test_broker_engine()
    version = f"Apache Kafka {kafka_version()}, KRaft" if engine == "kafka" else "embedded Tansu"
    return f"broker engine: {engine} ({version}); {TEST_BROKER_ENV}=kafka|tansu chooses"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the broker fixture is marked `broker` (`pytest -m broker` selects them)."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One started broker of the chosen engine for the whole session; tests use unique topics."""
    engine = test_broker_engine()
    root = tmp_path_factory.mktemp(f"broker-{engine}")
    with make_broker(engine, log_path=root / f"{engine}.log", data_dir=root / "data") as started:
        yield started


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
