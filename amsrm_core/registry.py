"""The model registry: immutable, verified versions, an atomically switched pointer, a history.

Layout::

    <root>/versions/v0001/   weights.safetensors, manifest.json, popularity.npy
    <root>/current.json      {"version": "v0003", "manifest_sha256": "…", "at_ms": …, "reason": "…"}
    <root>/history.jsonl     one line per promotion, rollback and rejected candidate

Why it is built this way:
- A version is a checkpoint (amsrm_core.checkpoint: safetensors weights, which cannot
  carry code, and a manifest with the model config, vocabularies, metrics and the
  weights' SHA-256) whose manifest gains a ``registry`` block: version name, parent,
  training-data window, the retrain report and the SHA-256 of every other file.  It is
  assembled in a hidden staging folder and renamed into place, so it appears whole,
  and its files are made read-only: a version never changes.
- The pointer names a version *and* the SHA-256 of its manifest, which names the
  checksums of all other files: loading through the pointer verifies the whole chain
  and refuses anything else (a half-copied folder, a manifest edited by hand, another
  folder under the same name).  ``promote`` loads a version fully before pointing at it.
- The pointer is one small file replaced atomically (temp file, fsync, rename): a
  reader sees the old version or the new one, never a mix.  Workers poll it
  (amsrm_core.retraining.watch).
- ``history.jsonl`` is append-only: the audit trail, and what ``rollback`` reads (it goes
  back the way promotions came, one version per rollback).

Run one retrain at a time per registry (the cron line and the CronJob do): two
promotions racing each other leave the pointer at whichever wrote last.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson
import torch

from amsrm_core.checkpoint import (
    MANIFEST,
    WEIGHTS,
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    sha256_of,
)
from amsrm_core.files import write_atomically
from amsrm_core.scoring import POPULARITY_FILE

VERSIONS = "versions"
POINTER = "current.json"
HISTORY = "history.jsonl"
_VERSION = re.compile(r"^v(\d{4,})$")


class RegistryError(CheckpointError):
    """A version is missing, fails verification, or an operation on the registry is not possible."""


@dataclass(frozen=True)
class Pointer:
    version: str
    manifest_sha256: str
    at_ms: int
    reason: str


@dataclass
class LoadedVersion:
    version: str
    manifest_sha256: str
    checkpoint: LoadedCheckpoint
    popularity: np.ndarray | None  # training-event counts for the cold-user fallback, if saved


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def version_number(name: str) -> int:
    match = _VERSION.match(name)
    if match is None:
        raise RegistryError(f"{name!r} is not a version name (v0001, v0002, …)")
    return int(match.group(1))


class ModelRegistry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ versions
    def versions(self) -> list[str]:
        """Version names, oldest first."""
        folder = self.root / VERSIONS
        names = [p.name for p in folder.iterdir() if _VERSION.match(p.name)] if folder.exists() else []
        return sorted(names, key=version_number)

    def path(self, version: str) -> Path:
        version_number(version)  # refuses paths such as "../x"
        return self.root / VERSIONS / version

    def publish(self, write: Callable[[Path], object], info: dict) -> str:
        """A new version: ``write(folder)`` saves a checkpoint there (save_checkpoint, popularity);
        ``info`` (parent, training window, report, …) goes into the manifest's registry block."""
        versions = self.root / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        staging = versions / f".staging-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            write(staging)
            manifest = orjson.loads((staging / MANIFEST).read_bytes())
            files = {p.name: sha256_of(p) for p in sorted(staging.iterdir())
                     if p.is_file() and p.name not in (MANIFEST, WEIGHTS)}
            for _ in range(100):  # another publisher may take the next name first
                number = version_number(self.versions()[-1]) + 1 if self.versions() else 1
                version = f"v{number:04d}"
                manifest["registry"] = {"version": version, "created_at_ms": now_ms(), "files": files, **info}
                write_atomically(staging / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
                try:
                    os.rename(staging, versions / version)  # fails when the name is taken
                except OSError:
                    continue
                for p in (versions / version).iterdir():
                    p.chmod(0o444)  # a version never changes
                return version
            raise RegistryError(f"{versions}: could not allocate a version name")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def add_checkpoint(self, directory: str | Path, info: dict | None = None) -> str:
        """Import a checkpoint folder (e.g. from ``amsrm train``), verified first."""
        directory = Path(directory)
        load_checkpoint(directory)  # refuse a broken checkpoint before copying it

        def copy(target: Path) -> None:
            for name in (WEIGHTS, MANIFEST, POPULARITY_FILE):
                if (directory / name).exists():
                    shutil.copyfile(directory / name, target / name)

        return self.publish(copy, {"source": str(directory), **(info or {})})

    def manifest(self, version: str) -> dict:
        try:
            return orjson.loads((self.path(version) / MANIFEST).read_bytes())
        except FileNotFoundError as e:
            raise RegistryError(f"no version {version} in {self.root}") from e

    def load(self, version: str | None = None, expected_manifest_sha256: str | None = None,
             device: str | torch.device = "cpu") -> LoadedVersion:
        """Load ``version`` (default: the current one) after verifying every checksum."""
        if version is None:
            pointer = self.current()
            if pointer is None:
                raise RegistryError(f"{self.root}: no current version (promote one first)")
            version, expected_manifest_sha256 = pointer.version, pointer.manifest_sha256
        folder = self.path(version)
        try:
            raw = (folder / MANIFEST).read_bytes()
        except FileNotFoundError as e:
            raise RegistryError(f"no version {version} in {self.root}") from e
        digest = hashlib.sha256(raw).hexdigest()
        if expected_manifest_sha256 is not None and digest != expected_manifest_sha256:
            raise RegistryError(f"{folder / MANIFEST}: checksum {digest} is not the one recorded "
                                f"({expected_manifest_sha256})")
        block = orjson.loads(raw).get("registry") or {}
        if block.get("version") != version:
            raise RegistryError(f"{folder}: manifest says version {block.get('version')!r}, not {version}")
        blobs = {}
        for name, expected in block.get("files", {}).items():
            try:
                blobs[name] = (folder / name).read_bytes()
            except FileNotFoundError as e:
                raise RegistryError(f"{folder}: {name} is missing") from e
            if hashlib.sha256(blobs[name]).hexdigest() != expected:
                raise RegistryError(f"{folder / name}: checksum does not match the manifest")
        checkpoint = load_checkpoint(folder, device)  # verifies the weights against the manifest
        popularity = None
        if POPULARITY_FILE in blobs:
            popularity = np.load(io.BytesIO(blobs[POPULARITY_FILE]), allow_pickle=False).astype(np.float32)
        return LoadedVersion(version, digest, checkpoint, popularity)

    # ------------------------------------------------------------------ pointer and history
    def current(self) -> Pointer | None:
        try:
            return Pointer(**orjson.loads((self.root / POINTER).read_bytes()))
        except FileNotFoundError:
            return None

    def promote(self, version: str, reason: str, event: str = "promote", **details: object) -> Pointer:
        """Point ``current`` at ``version`` after loading it fully; the old one stays if it fails."""
        loaded = self.load(version, device="cpu")
        previous = self.current()
        pointer = Pointer(version, loaded.manifest_sha256, now_ms(), reason)
        write_atomically(self.root / POINTER, orjson.dumps(asdict(pointer)))
        self.record({"event": event, "version": version, "previous": previous.version if previous else None,
                     "reason": reason, "manifest_sha256": loaded.manifest_sha256, **details})
        return pointer

    def rollback(self, to: str | None = None, reason: str = "rollback") -> Pointer:
        """Back to ``to``, or to the version that served before the current one (repeatable, like "back")."""
        if to is None:
            stack = self.served()
            if len(stack) < 2:
                raise RegistryError("no version served before the current one: name one with --to")
            to = stack[-2]
        return self.promote(to, reason, event="rollback")

    def served(self) -> list[str]:
        """The versions that served, as a stack: a promotion pushes, a rollback pops back to its target."""
        stack: list[str] = []
        for entry in self.history():
            version = entry["version"]
            if entry["event"] == "rollback" and version in stack:
                del stack[stack.index(version) + 1 :]
            elif entry["event"] in ("promote", "rollback") and (not stack or stack[-1] != version):
                stack.append(version)
        return stack

    def record(self, entry: dict) -> None:
        """Append one line to the history (one write, fsynced)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps({"at_ms": now_ms(), **entry}) + b"\n"
        with open(self.root / HISTORY, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def history(self) -> list[dict]:
        path = self.root / HISTORY
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
