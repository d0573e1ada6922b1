"""The one atomic, durable writer (amsrm_core.files) and the writers that go through it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amsrm_core.experiments.store import RunStore
from amsrm_core.files import write_atomically
from amsrm_core.results import write_results


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths that os.fsync was called on, in order."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the synced files")
    paths: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def _durable(synced: list[str], path: Path) -> None:
    """The bytes were synced under a hidden temp name beside ``path``, then its folder, after the rename."""
    temp = [i for i, p in enumerate(synced) if Path(p).parent == path.parent
            and Path(p).name.startswith(f".{path.name}.") and p.endswith(".tmp")]
    folder = [i for i, p in enumerate(synced) if Path(p) == path.parent]
    assert temp and folder and temp[0] < folder[-1], synced
    assert not list(path.parent.glob(".*.tmp"))  # no temp file left


def test_bytes_replace_the_file_durably(tmp_path: Path, synced: list[str]) -> None:
    target = tmp_path / "pointer.json"
    target.write_bytes(b"old")
    assert write_atomically(target, b"new") == target
    assert target.read_bytes() == b"new"
    _durable(synced, target)


def test_a_writer_function_gets_the_temp_path_and_extra_folders_are_synced(tmp_path: Path,
                                                                          synced: list[str]) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    target = tmp_path / "a" / "b" / "part.bin"
    seen = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"payload")

    write_atomically(target, write, sync_dirs=[tmp_path / "a", tmp_path])
    assert target.read_bytes() == b"payload"
    assert seen[0].parent == target.parent and seen[0] != target
    _durable(synced, target)
    assert str(tmp_path / "a") in synced and str(tmp_path) in synced


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_bytes(b"complete")

    def half(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half)
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_run_store_and_results_files_are_written_durably(tmp_path: Path, synced: list[str]) -> None:
    spec = {"experiment": "compare", "dataset": "synthetic", "model": "amsrm", "seed": 0}
    RunStore(tmp_path / "runs").put(spec, {"test": {"ndcg@10": 0.1}})
    _durable(synced, RunStore(tmp_path / "runs").path(spec))
    synced.clear()
    results = tmp_path / "results.json"
    write_results(results, "synthetic", "loo-full", {}, "amsrm", {"metrics": {}})
    _durable(synced, results)
