"""Machine-readable results: ``docs/results/<dataset>.json``, one entry per model.

Shape (docs and later checks read it):
``{"dataset", "protocol", "split", "models": {name: {"config", "seeds", "metrics":
{"ndcg@10": {"mean", "std", "runs"}, …}}}, "commit", "date", "machine"}``.
``std`` is the sample standard deviation over seeds (ddof=1; 0 for one seed).
Writing merges into an existing file, so models can be run one at a time.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import orjson
import torch

from amsrm.errors import ConfigError
from amsrm_core.files import write_atomically


def aggregate(runs: list[dict[str, float]]) -> dict[str, dict]:
    """Per metric: mean, sample std and the individual runs, in seed order."""
    out = {}
    for key in runs[0]:
        values = [float(r[key]) for r in runs]
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        out[key] = {"mean": float(np.mean(values)), "std": std, "runs": values}
    return out


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def machine() -> str:
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{platform.machine()} {platform.processor() or platform.system()}, "
            f"{os.cpu_count()} cores{gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads")


def write_results(path: str | Path, dataset: str, protocol: str, split: dict, model_key: str,
                  entry: dict, provenance: dict | None = None) -> dict:
    """Merge one model's entry into the file; ``provenance`` keeps the commit/machine of the runs."""
    path = Path(path)
    document = orjson.loads(path.read_bytes()) if path.exists() else {"models": {}}
    if document.get("protocol", protocol) != protocol:
        raise ConfigError(f"{path} holds {document['protocol']} results; write {protocol} elsewhere")
    document.update(dataset=dataset, protocol=protocol, split=split, commit=git_commit(),
                    date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), machine=machine())
    document.update(provenance or {})
    document["models"][model_key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return document


def merge_results(paths: list[str | Path], out: str | Path) -> dict:
    """Combine results files of the same data set and protocol run with different seeds.

    Lets seeds run as parallel processes (each writing its own file) and still give
    one entry per model with mean ± std over all seeds.  Seeds must not repeat.
    """
    documents = [orjson.loads(Path(p).read_bytes()) for p in paths]
    first = documents[0]
    for doc in documents[1:]:
        if (doc["dataset"], doc["protocol"]) != (first["dataset"], first["protocol"]):
            raise ConfigError("can only merge results of one data set and protocol")
    merged_models: dict[str, list[dict]] = {}
    for doc in documents:
        for key, entry in doc["models"].items():
            merged_models.setdefault(key, []).append(entry)
    merged = {}
    for key, entries in merged_models.items():
        seeds = [s for e in entries for s in e["seeds"]]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"model {key}: seeds {seeds} repeat")
        per_seed_test = [{m: v["runs"][i] for m, v in e["metrics"].items()}
                         for e in entries for i in range(len(e["seeds"]))]
        per_seed_valid = [{m: v["runs"][i] for m, v in e["valid_metrics"].items()}
                          for e in entries for i in range(len(e["seeds"]))]
        merged[key] = dict(entries[0], seeds=seeds, metrics=aggregate(per_seed_test),
                           valid_metrics=aggregate(per_seed_valid),
                           runs=[r for e in entries for r in e["runs"]])
    commits = sorted({doc["commit"] for doc in documents})
    provenance = {"commit": commits[0] if len(commits) == 1 else " + ".join(commits),
                  "machine": first["machine"], "date": max(doc["date"] for doc in documents)}
    result = None
    for key, entry in merged.items():
        result = write_results(out, first["dataset"], first["protocol"], first["split"], key, entry,
                               provenance)
    return result or {}
