"""The resumable run store: one small JSON file per finished training run.

A run is identified by its *spec*: experiment, data set (name, protocol and a
fingerprint of the split), model, the full model config (every field, defaults
included), the training settings that change results, and the seed.  The key is
a stable hash of the spec (sorted-key JSON → SHA-256), so a rerun with the same
command finds every finished run and trains only what is missing; changing any
setting that matters gives new keys instead of silently reusing stale numbers.
Files are written atomically (temporary file, then rename), so an interrupted
experiment never leaves a half-written run behind.

Layout: ``<root>/<experiment>/<dataset>/<model>-seed<seed>-<key>.json``, each
holding ``{"key", "spec", "label", "valid", "test", "train", "wall_seconds",
"extra", "curve", "finished"}`` (``curve``: loss and validation NDCG@10 per epoch).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import orjson

from amsrm_core.files import write_atomically


def run_key(spec: dict) -> str:
    """Stable 16-hex-digit hash of a spec: independent of key order, process and machine."""
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


class RunStore:
    """Finished runs under ``root``; counts what this process trained and what it reused."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.trained = 0  # runs computed and written by this process
        self.reused = 0  # runs found finished

    def path(self, spec: dict) -> Path:
        name = f"{_slug(spec['model'])}-seed{spec['seed']}-{run_key(spec)}.json"
        return self.root / _slug(spec["experiment"]) / _slug(spec["dataset"]) / name

    def get(self, spec: dict) -> dict | None:
        """The finished run of ``spec``, or None (an unreadable file counts as not finished)."""
        path = self.path(spec)
        try:
            record = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        self.reused += 1
        return record

    def has(self, spec: dict) -> bool:
        return self.path(spec).exists()

    def put(self, spec: dict, record: dict) -> dict:
        """Store a finished run; returns the record as stored (with key, spec and finish time)."""
        path = self.path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**record, "key": run_key(spec), "spec": spec,
                  "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        write_atomically(path, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        self.trained += 1
        return record
