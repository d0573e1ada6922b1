"""Checkpoints that load without executing code: safetensors weights + a JSON manifest.

A checkpoint directory holds ``weights.safetensors`` (tensors only: nothing in it can
run code when read) and ``manifest.json`` (model name and config, feature schema,
vocabularies, metrics, training config, and the SHA-256 of the weights file).
Loading verifies the checksum before reading a single tensor, and refuses unknown
model names or config keys instead of guessing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import orjson
import torch
from safetensors.torch import load_file, save_file

from amsrm.errors import AmsrmError
from amsrm_core.features import FeatureSchema
from amsrm_core.models import MODELS, Recommender
from amsrm_core.schema import InteractionData
from amsrm_core.vocab import Vocabulary

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class CheckpointError(AmsrmError, ValueError):
    """A checkpoint is incomplete, corrupted, or not one this version can read."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def vocabularies_of(data: InteractionData) -> dict[str, dict]:
    vocabs = {"user": data.user_vocab, "item": data.item_vocab, "behaviour": data.behaviour_vocab}
    vocabs.update({f"item.{k}": f.vocab for k, f in data.item_fields.items()})
    vocabs.update({f"user.{k}": f.vocab for k, f in data.user_fields.items()})
    return {k: v.to_json() for k, v in vocabs.items()}


def model_name_of(model: Recommender) -> str:
    for name, (cls, config_cls) in MODELS.items():  # the config class tells sasrec from sasrec-ce
        if type(model) is cls and type(model.config) is config_cls:
            return name
    raise CheckpointError(f"{type(model).__name__} is not in the model registry")


def _write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, model: Recommender, data: InteractionData,
                    metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write weights then manifest (the manifest's checksum makes a half-written pair fail loudly)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, directory / WEIGHTS)
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": model_name_of(model),
        "config": dataclasses.asdict(model.config),
        "schema": model.schema.to_json(),
        "vocabularies": vocabularies_of(data),
        "metrics": metrics or {},
        "weights_sha256": sha256_of(directory / WEIGHTS),
        **(extra or {}),
    }
    _write_atomically(directory / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return directory


@dataclasses.dataclass
class LoadedCheckpoint:
    model: Recommender
    manifest: dict
    vocabularies: dict[str, Vocabulary]


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    directory = Path(directory)
    try:
        manifest = orjson.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError as e:
        raise CheckpointError(f"{directory}: no {MANIFEST}") from e
    except orjson.JSONDecodeError as e:
        raise CheckpointError(f"{directory / MANIFEST}: not valid JSON ({e})") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{directory}: format version {manifest.get('format_version')!r} "
                              f"is not {FORMAT_VERSION}")
    weights = directory / WEIGHTS
    if not weights.exists():
        raise CheckpointError(f"{directory}: no {WEIGHTS}")
    actual = sha256_of(weights)
    if actual != manifest.get("weights_sha256"):
        raise CheckpointError(f"{weights}: checksum {actual} does not match the manifest")
    if manifest.get("model") not in MODELS:
        raise CheckpointError(f"{directory}: unknown model {manifest.get('model')!r}")
    model_cls, config_cls = MODELS[manifest["model"]]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(manifest["config"]) - known
    if unknown:
        raise CheckpointError(f"{directory}: config keys {sorted(unknown)} unknown to {config_cls.__name__}")
    model = model_cls(config_cls(**manifest["config"]), FeatureSchema.from_json(manifest["schema"]))
    model.load_state_dict(load_file(str(weights)))  # tensors only: no pickle, no code
    model.to(device).eval()
    vocabs = {k: Vocabulary.from_json(v) for k, v in manifest["vocabularies"].items()}
    return LoadedCheckpoint(model, manifest, vocabs)
