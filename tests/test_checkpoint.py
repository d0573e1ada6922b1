import dataclasses
import json
import os

import pytest
import torch

from amsrm_core.checkpoint import (
    MANIFEST,
    RUN_FIELDS,
    WEIGHTS,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    trained_on,
)
from amsrm_core.runner import build_model
from amsrm_core.training.trainer import TrainConfig


def _saved(tmp_path, data):
    torch.manual_seed(0)
    model = build_model("amsrm", data, {"max_len": 12, "d_model": 32}).eval()
    save_checkpoint(tmp_path, model, data, metrics={"test": {"ndcg@10": 0.5}})
    return model


def test_round_trip_gives_identical_scores(tmp_path, tiny_data):
    model = _saved(tmp_path, tiny_data)
    loaded = load_checkpoint(tmp_path)
    batch = {"item_seq": torch.tensor([[0, 2, 3]]), "behaviour_seq": torch.tensor([[0, 2, 3]]),
             "user": torch.tensor([2])}
    assert torch.equal(model.full_sort_predict(batch), loaded.model.full_sort_predict(batch))
    assert loaded.vocabularies["item"].tokens == tiny_data.item_vocab.tokens
    assert loaded.manifest["config"]["d_model"] == 32
    assert loaded.manifest["metrics"]["test"]["ndcg@10"] == 0.5


def test_weights_file_holds_no_pickle(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)
    head = (tmp_path / WEIGHTS).read_bytes()[:2]
    assert head != b"\x80\x04" and head != b"PK"  # neither a pickle nor torch's zip-of-pickles


def test_tampered_weights_are_refused(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)
    weights = tmp_path / WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path)


def test_unknown_model_or_config_is_refused(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps(dict(manifest, model="evil")))
    with pytest.raises(CheckpointError, match="unknown model"):
        load_checkpoint(tmp_path)
    manifest["config"]["__class__"] = "os.system"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="config keys"):
        load_checkpoint(tmp_path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        load_checkpoint(tmp_path)


def test_manifest_records_data_set_protocol_and_train_config(tmp_path, tiny_data):
    torch.manual_seed(0)
    model = build_model("amsrm", tiny_data, {"max_len": 12, "d_model": 32})
    config = TrainConfig(epochs=7, lr=3e-3, precision="bf16", seed=4)
    save_checkpoint(tmp_path, model, tiny_data, extra={"seed": 4}, dataset="ml-100k", protocol="temporal",
                    train_config=config)
    manifest = load_checkpoint(tmp_path).manifest
    assert [manifest[k] for k in ("dataset", "data_name", "protocol")] == ["ml-100k", "tiny", "temporal"]
    assert manifest["train_config"] == dataclasses.asdict(config) and manifest["seed"] == 4
    assert trained_on(manifest, tmp_path) == ("ml-100k", "temporal")
    assert trained_on(manifest, tmp_path, "beauty", "loo") == ("beauty", "loo")  # explicit wins


def test_manifest_fields_are_null_when_unknown_and_old_manifests_still_load(tmp_path, tiny_data):
    _saved(tmp_path, tiny_data)  # no dataset, protocol or train config given
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert {k: manifest[k] for k in RUN_FIELDS} == {"dataset": None, "data_name": "tiny", "protocol": None,
                                                    "train_config": None, "training": None}
    (tmp_path / MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if k not in RUN_FIELDS}))
    loaded = load_checkpoint(tmp_path)  # a manifest from before the fields existed
    with pytest.raises(CheckpointError, match="pass --dataset and --protocol"):
        trained_on(loaded.manifest, tmp_path)
    with pytest.raises(CheckpointError, match="pass --protocol"):
        trained_on(loaded.manifest, tmp_path, dataset="ml-100k")
    assert trained_on(loaded.manifest, tmp_path, "ml-100k", "loo") == ("ml-100k", "loo")


def test_legacy_extra_keys_become_the_fields_and_cannot_contradict_them(tmp_path, tiny_data):
    model = build_model("amsrm", tiny_data, {"max_len": 12, "d_model": 32})
    save_checkpoint(tmp_path, model, tiny_data, extra={"dataset": "ml-100k", "protocol": "loo", "seed": 1})
    manifest = load_checkpoint(tmp_path).manifest
    assert (manifest["dataset"], manifest["protocol"], manifest["seed"]) == ("ml-100k", "loo", 1)
    with pytest.raises(ValueError, match="manifest fields"):
        save_checkpoint(tmp_path, model, tiny_data, extra={"dataset": "x"}, dataset="ml-100k")


def test_checkpoint_files_are_written_durably(tmp_path, tiny_data, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))  # the name of what was synced
        real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the synced files")
    monkeypatch.setattr(os, "fsync", fsync)
    _saved(tmp_path, tiny_data)
    names = synced
    # each file's bytes (under its temp name) before the rename, and the folder after it
    assert any(n.startswith(f".{WEIGHTS}.") for n in names)
    assert any(n.startswith(f".{MANIFEST}.") for n in names)
    assert names.count(tmp_path.name) >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, WEIGHTS]  # no temp file left
