"""Retraining without a broker: samples → events, vocabulary growth, warm start, the promotion gate.

The samples are what a worker publishes when a data set is replayed in time order
(``labelled_samples``); the first model is trained on the first part of the stream, so
the rest brings new users and items.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
import torch

from amsrm.cli import main
from amsrm_core.checkpoint import load_checkpoint, save_checkpoint, vocabularies_of
from amsrm_core.features import feature_tables
from amsrm_core.registry import ModelRegistry
from amsrm_core.retraining.dataset import Base, Events, encode_events, events_from_samples
from amsrm_core.retraining.gate import decide
from amsrm_core.retraining.grow import GrowthError, grow_model
from amsrm_core.retraining.retrain import RetrainOptions, parse_duration, recipe_of, retrain, run_every
from amsrm_core.retraining.store import SCHEMA, TrainingStore, sample_row
from amsrm_core.runner import build_model
from amsrm_core.schema import InteractionData, build_interactions
from amsrm_core.scoring import save_popularity
from amsrm_core.training.trainer import TrainConfig
from amsrm_core.vocab import Vocabulary
from producers.events import dataset_events
from streams.local.checkpoints import ensure_checkpoint

MAX_LEN = 4
T0_MS = 1_790_000_000_000
SPLIT_AT = 0.5  # the first model sees the first half of the stream


def labelled_samples(data: InteractionData, n: int = MAX_LEN, t0_ms: int = T0_MS) -> list[dict]:
    """What a worker publishes for ``data`` replayed in time order, one event a second."""
    history: dict[str, list[dict]] = defaultdict(list)
    user_fields: dict[str, dict | None] = {}
    samples = []
    for i, event in enumerate(dataset_events(data)):
        user, timestamp = event["user_id"], t0_ms + 1000 * i
        before = history[user][-n:]
        if before:
            samples.append({"user_id": user, "event_id": event["event_id"], "window": before,
                            "user_fields": user_fields.get(user), "next_item_id": event["item_id"],
                            "next_behaviour": event["behaviour"], "event_time_ms": timestamp,
                            "next_item_fields": event["item_fields"]})
        history[user].append({"event_id": event["event_id"], "item_id": event["item_id"],
                              "behaviour": event["behaviour"], "timestamp": timestamp,
                              "item_fields": event["item_fields"]})
        user_fields[user] = event["user_fields"] or user_fields.get(user)
    return samples


def rows_of(samples: list[dict]) -> list[dict]:
    return [sample_row(s, 0, offset, T0_MS) for offset, s in enumerate(samples)]


def events_of(samples: list[dict]) -> Events:
    return events_from_samples(pa.Table.from_pylist(rows_of(samples), SCHEMA))


def fill_store(root: Path, samples: list[dict], partition: int = 0) -> TrainingStore:
    store = TrainingStore(root)
    rows = rows_of(samples)
    store.write(rows, "samples", partition, 0, len(rows) - 1)
    return store


@pytest.fixture(scope="module")
def stream(small_synthetic) -> list[dict]:
    return labelled_samples(small_synthetic)


@pytest.fixture(scope="module")
def first_half(stream) -> InteractionData:
    """The data the first model is trained on: the events of the first half of the stream."""
    cut = int(len(stream) * SPLIT_AT)
    return encode_events("first-half", events_of(stream[:cut]))


@pytest.fixture(scope="module")
def first_model(tmp_path_factory, first_half) -> Path:
    return ensure_checkpoint(tmp_path_factory.mktemp("v1"), first_half, epochs=3,
                             overrides={"max_len": MAX_LEN})


@pytest.fixture
def registry(tmp_path, first_model) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(registry.add_checkpoint(first_model), "bootstrap")
    return registry


def later_store(tmp_path: Path, stream: list[dict]) -> TrainingStore:
    return fill_store(tmp_path / "store", stream[int(len(stream) * SPLIT_AT) :])


def options(**changes) -> RetrainOptions:
    quick = RetrainOptions(max_epochs=3, patience=3, budget_s=60, gate_min_cases=20)
    return dataclasses.replace(quick, **changes)


def test_samples_give_back_every_event_once(small_synthetic, stream):
    events = events_of(stream)
    counts = np.bincount(small_synthetic.users)
    # every event of a user with two or more events: the first ones come back from the windows
    assert len(events) == small_synthetic.n_events - int((counts == 1).sum())
    assert len(set(events.event_ids.tolist())) == len(events)
    data = encode_events("all", events)
    assert data.n_items == small_synthetic.n_items
    u = data.user_vocab.tokens[int(data.users[0])]
    assert data.user_fields["gender"].vocab.tokens[data.user_fields["gender"].values[data.users[0], 0]] == \
        small_synthetic.user_fields["gender"].vocab.tokens[
            small_synthetic.user_fields["gender"].values[small_synthetic.user_vocab.lookup(u), 0]]


def test_encoding_on_a_base_keeps_every_index(first_half, stream):
    tables = {k: v.numpy() for k, v in feature_tables(first_half).items()}
    vocabs = {k: Vocabulary.from_json(v) for k, v in vocabularies_of(first_half).items()}
    base = Base(vocabs, tables, list(first_half.item_fields), list(first_half.user_fields))
    grown = encode_events("rest", events_of(stream[len(stream) // 2 :]), base)
    for name in ("user", "item", "behaviour"):
        old, new = vocabs[name].tokens, getattr(grown, f"{name}_vocab").tokens
        assert new[: len(old)] == old  # append-only: learned indices keep their meaning
    assert len(grown.item_vocab) > len(vocabs["item"]) and len(grown.user_vocab) > len(vocabs["user"])
    old_category = first_half.item_fields["category"].values
    assert np.array_equal(grown.item_fields["category"].values[: len(old_category)], old_category)
    assert len(vocabs["item"]) == len(first_half.item_vocab)  # the base was copied, not grown


def test_grown_model_keeps_what_it_learned(first_model, first_half, stream):
    current = load_checkpoint(first_model)
    base = Base.of_model(current.model, current.vocabularies)
    data = encode_events("all", events_of(stream), base)
    grown = grow_model(current.model, "amsrm", data)
    old_items = current.model.item_id.weight
    assert grown.item_id.weight.shape[0] == len(data.item_vocab) > old_items.shape[0]
    assert torch.equal(grown.item_id.weight[: old_items.shape[0]], old_items)
    assert torch.equal(grown.blocks[0].attn.query.weight, current.model.blocks[0].attn.query.weight)
    # same representations for every known item: the learned model is inside the grown one
    n = old_items.shape[0]
    with torch.no_grad():
        assert torch.allclose(grown.eval().item_representations()[:n], current.model.item_representations())
    no_fields = dataclasses.replace(current.model.schema, item_fields={}, user_fields={})
    with pytest.raises(GrowthError):  # the data has side fields this model has no weights for
        grow_model(type(current.model)(current.model.config, no_fields), "amsrm", data)


def test_retrain_grows_and_promotes(tmp_path, registry, stream, caplog):
    store = later_store(tmp_path, stream)
    with caplog.at_level("INFO", logger="amsrm_core.retraining"):
        report = retrain(store, registry, options())
    assert report["status"] == "promoted" and report["current"] == report["version"] == "v0002"
    assert report["window"]["new_items"] > 0 and report["window"]["new_users"] > 0
    assert report["grown"]["item_id.weight"][1] > report["grown"]["item_id.weight"][0]
    assert report["gate"]["candidate"] >= report["gate"]["current"]
    block = registry.manifest("v0002")["registry"]
    assert block["parent"] == "v0001" and block["training_window"]["samples"] == report["window"]["samples"]
    assert [e["event"] for e in registry.history()] == ["promote", "promote"]
    assert registry.load().version == "v0002"
    assert any("epoch 1" in r.message for r in caplog.records)  # progress is logged


def test_retrain_keeps_the_current_versions_fusion_and_recipe(tmp_path, first_half, stream):
    """A version trained with another fusion and recipe is retrained with them, options on top."""
    torch.manual_seed(0)
    model = build_model("amsrm", first_half, {"max_len": MAX_LEN, "fusion": "attention"})
    recipe = TrainConfig(lr=3e-3, batch_size=64, weight_decay=1e-4, bucket_by_length=True)
    folder = save_checkpoint(tmp_path / "v1", model, first_half, train_config=recipe)
    save_popularity(folder, first_half, np.arange(first_half.n_events))
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(registry.add_checkpoint(folder), "bootstrap")
    report = retrain(later_store(tmp_path, stream), registry, options(max_epochs=1, batch_size=256))
    manifest = registry.manifest(report["version"])
    assert manifest["config"]["fusion"] == "attention"
    trained = manifest["train_config"]
    assert (trained["lr"], trained["weight_decay"], trained["bucket_by_length"]) == (3e-3, 1e-4, True)
    assert trained["batch_size"] == 256  # what the options set wins
    assert recipe_of(None, options())["lr"] == 1e-3  # nothing current: the defaults


def test_gate_refuses_a_worse_candidate(tmp_path, registry, stream):
    store = later_store(tmp_path, stream)
    report = retrain(store, registry, options(lr=5.0, max_epochs=1))  # a learning rate that wrecks the model
    assert report["status"] == "rejected", report["gate"]
    assert report["gate"]["candidate"] < report["gate"]["current"]
    assert registry.current().version == "v0001" and report["current"] == "v0001"
    assert registry.history()[-1]["event"] == "reject" and registry.history()[-1]["version"] == "v0002"
    assert registry.versions() == ["v0001", "v0002"]  # kept for inspection, not served


def test_gate_rules():
    assert decide({"ndcg@10": 0.2}, None, 0, "ndcg@10", 0.0, 50).promote  # nothing current: promote
    assert not decide({"ndcg@10": 0.2}, {"ndcg@10": 0.1}, 10, "ndcg@10", 0.0, 50).promote  # too few cases
    assert decide({"ndcg@10": 0.095}, {"ndcg@10": 0.1}, 99, "ndcg@10", 0.01, 50).promote  # within the margin
    assert not decide({"ndcg@10": 0.08}, {"ndcg@10": 0.1}, 99, "ndcg@10", 0.01, 50).promote
    with pytest.raises(ValueError, match="gate metric"):
        decide({"ndcg@10": 0.2}, None, 99, "auc", 0.0, 50)


def test_empty_store_and_durations(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    assert retrain(TrainingStore(tmp_path / "none"), registry, options())["status"] == "no_data"
    assert [parse_duration(t) for t in ("90s", "30m", "1h", "1d", "15")] == [90, 1800, 3600, 86400, 15]
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_the_retrain_command_prints_and_writes_its_report(tmp_path, registry, stream, capsys):
    later_store(tmp_path, stream)
    report_path = tmp_path / "report.json"
    argv = ["retrain", "--store", str(tmp_path / "store"), "--registry", str(registry.root),
            "--max-epochs", "1", "--margin", "1.0", "--report", str(report_path)]
    assert main(argv) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == orjson.loads(report_path.read_bytes()) and printed["status"] == "promoted"
    assert printed["train"]["epochs"] == 1 and registry.current().version == printed["version"]


def test_a_schedule_keeps_running_after_a_failed_run():
    stop, calls = threading.Event(), []

    def once() -> None:
        calls.append(1)
        if len(calls) == 3:
            stop.set()
        raise RuntimeError("store unreachable")  # logged; the next run still happens

    assert run_every(0.01, once, stop) == 3


def test_retraining_keeps_and_updates_the_counts_of_a_count_weighted_model():
    """field_weights="count": a retrain's grown model keeps the old rows' counts, takes an event's
    repeats as the counts of the values it lists, and gives new entities theirs."""
    tags = {"x": ["t1", "t1", "t2"], "y": ["t2"], "z": ["t3"]}
    data = build_interactions("tags", ["a", "a", "b", "b"], ["x", "y", "z", "x"], [1, 2, 3, 4],
                              item_features={"tag": tags})
    model = build_model("amsrm", data, {"max_len": MAX_LEN, "field_weights": "count"})
    vocabs = {"item": data.item_vocab, "user": data.user_vocab, "behaviour": data.behaviour_vocab,
              "item.tag": data.item_fields["tag"].vocab}
    base = Base.of_model(model, vocabs)
    assert "item.tag__count" in base.tables
    columns = (["e1", "e2"], ["c", "c"], ["y", "n"], [None, None])
    events = Events(*(np.array(v, dtype=object) for v in columns), np.array([5, 6], dtype=np.int64),
                    item_fields={"tag": {"y": ["t2", "t3", "t2"], "n": ["t4"]}})
    grown = grow_model(model, "amsrm", encode_events("more", events, base))
    values, counts = grown.item_tag, grown.item_tag__count
    vocab = grown.schema.n_items
    assert vocab == len(data.item_vocab) + 1
    tag_vocab = data.item_fields["tag"].vocab  # base copies it; t4 is appended after it
    row = {item: data.item_vocab.lookup(item) for item in "xyz"}
    assert counts[row["x"]].tolist()[:2] == [2, 1] and values[row["x"], 0] == tag_vocab.lookup("t1")
    assert counts[row["y"]].tolist()[:2] == [2, 1] and values[row["y"], 1] == tag_vocab.lookup("t3")
    assert counts[row["z"]].tolist()[:1] == [1]
    assert counts[vocab - 1].tolist()[:1] == [1] and int(values[vocab - 1, 0]) == len(tag_vocab)
