"""The model registry: versions appear whole, loading verifies every checksum, pointer, history, rollback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from amsrm.cli import main
from amsrm_core.checkpoint import MANIFEST, WEIGHTS, CheckpointError, save_checkpoint
from amsrm_core.registry import HISTORY, POINTER, ModelRegistry, RegistryError
from amsrm_core.runner import build_model, make_split
from amsrm_core.scoring import POPULARITY_FILE, save_popularity


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, small_synthetic) -> list[Path]:
    """Three small untrained checkpoints (different seeds, so different weights)."""
    out = []
    positions = make_split(small_synthetic, "loo").train_positions()
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model("amsrm", small_synthetic, {"max_len": 4, "d_model": 16, "n_blocks": 1})
        folder = save_checkpoint(tmp_path_factory.mktemp(f"ckpt{seed}"), model, small_synthetic)
        save_popularity(folder, small_synthetic, positions)
        out.append(folder)
    return out


@pytest.fixture
def registry(tmp_path, checkpoints) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    for folder in checkpoints:
        registry.add_checkpoint(folder, {"note": folder.name})
    return registry


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def test_versions_are_numbered_complete_and_read_only(registry, checkpoints):
    assert registry.versions() == ["v0001", "v0002", "v0003"]
    assert registry.current() is None
    folder = registry.path("v0002")
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, POPULARITY_FILE, WEIGHTS])
    assert all(not (p.stat().st_mode & 0o222) for p in folder.iterdir())
    block = registry.manifest("v0002")["registry"]
    assert block["version"] == "v0002" and block["note"] == checkpoints[1].name
    assert set(block["files"]) == {POPULARITY_FILE}
    assert not list((registry.root / "versions").glob(".staging-*"))
    loaded = registry.load("v0002")
    assert loaded.popularity is not None and loaded.checkpoint.manifest["registry"]["version"] == "v0002"


def test_promote_switches_the_pointer_and_records_history(registry):
    registry.promote("v0001", "first")
    pointer = registry.promote("v0003", "better")
    assert registry.current() == pointer and pointer.version == "v0003"
    assert registry.load().version == "v0003"  # through the pointer
    assert [(e["event"], e["version"], e["previous"]) for e in registry.history()] == \
        [("promote", "v0001", None), ("promote", "v0003", "v0001")]
    assert not list(registry.root.glob(".*.tmp"))  # the pointer was replaced, no temp file left


@pytest.mark.parametrize("target", [WEIGHTS, POPULARITY_FILE])
def test_a_tampered_version_is_refused_and_the_pointer_stays(registry, target):
    registry.promote("v0001", "first")
    path = writable(registry.path("v0002") / target)
    payload = bytearray(path.read_bytes())
    payload[-1] ^= 1
    path.write_bytes(bytes(payload))
    with pytest.raises(CheckpointError, match="checksum"):
        registry.load("v0002")
    with pytest.raises(CheckpointError):
        registry.promote("v0002", "should not happen")
    assert registry.current().version == "v0001"


def test_a_manifest_edited_after_promotion_is_refused(registry):
    registry.promote("v0002", "ok")
    path = writable(registry.path("v0002") / MANIFEST)
    manifest = orjson.loads(path.read_bytes())
    manifest["metrics"] = {"valid": {"ndcg@10": 0.99}}  # weights untouched, manifest changed
    path.write_bytes(orjson.dumps(manifest))
    with pytest.raises(RegistryError, match="not the one recorded"):
        registry.load()


def test_a_folder_renamed_to_another_version_is_refused(registry):
    os.rename(registry.path("v0003"), registry.root / "versions" / "v0009")
    with pytest.raises(RegistryError, match="says version 'v0003'"):
        registry.load("v0009")
    with pytest.raises(RegistryError, match="not a version name"):
        registry.load("../v0001")


def test_rollback_walks_back_through_served_versions(registry):
    for version in ("v0001", "v0002", "v0003"):
        registry.promote(version, "next")
    assert registry.rollback().version == "v0002"
    assert registry.rollback().version == "v0001"
    with pytest.raises(RegistryError, match="no version served before"):
        registry.rollback()
    assert registry.rollback(to="v0003").version == "v0003"
    assert registry.served() == ["v0001", "v0003"]
    assert registry.rollback().version == "v0001"
    assert [e["event"] for e in registry.history()][-4:] == ["rollback"] * 4


def test_the_registry_commands(registry, checkpoints, capsys):
    root = ["registry", "--registry", str(registry.root)]
    assert main([*root, "add", str(checkpoints[0]), "--promote"]) == 0
    assert main([*root, "promote", "v0002"]) == 0
    assert main([*root, "rollback"]) == 0
    capsys.readouterr()
    assert main([*root, "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line[2:].split()[0] for line in listing] == ["v0001", "v0002", "v0003", "v0004"]
    assert listing[3].startswith("* v0004")  # rolled back from v0002 to the one served before
    assert main([*root, "history"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main([*root, "promote", "v0042"]) == 2  # a clean error, not a traceback


def test_history_survives_as_appended_lines(registry):
    registry.promote("v0001", "a")
    registry.record({"event": "reject", "version": "v0002", "reason": "worse"})
    lines = (registry.root / HISTORY).read_bytes().splitlines()
    assert [orjson.loads(line)["event"] for line in lines] == ["promote", "reject"]
    assert orjson.loads((registry.root / POINTER).read_bytes())["version"] == "v0001"
    assert np.isfinite(registry.load().popularity).all()
