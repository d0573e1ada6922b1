"""Checkpoints that load without executing code: safetensors weights + a JSON manifest.

A checkpoint directory holds ``weights.safetensors`` (tensors only: nothing in it can
run code when read) and ``manifest.json`` (model name and config, feature schema,
vocabularies, metrics, the SHA-256 of the weights file, and what it was trained on:
``dataset`` (the name ``load_dataset`` takes, or null), ``data_name``, ``protocol`` and
``train_config``, the TrainConfig as a dict; null where the writer did not know them).
Manifests from before these fields load too: ``trained_on`` says what is missing.
Loading verifies the checksum before reading a single tensor, and refuses unknown
model names or config keys instead of guessing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import torch
from safetensors.torch import load_file, save_file

from amsrm.errors import AmsrmError
from amsrm_core.features import FeatureSchema
from amsrm_core.files import write_atomically
from amsrm_core.models import MODELS, Recommender
from amsrm_core.schema import InteractionData
from amsrm_core.vocab import Vocabulary

if TYPE_CHECKING:
    from amsrm_core.training.trainer import TrainConfig

WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# first-class manifest fields about the training run (null when unknown; absent in older manifests)
RUN_FIELDS = ("dataset", "data_name", "protocol", "train_config", "training")


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


def save_checkpoint(directory: str | Path, model: Recommender, data: InteractionData,
                    metrics: dict | None = None, extra: dict | None = None, *,
                    dataset: str | None = None, protocol: str | None = None,
                    train_config: TrainConfig | dict | None = None, training: dict | None = None) -> Path:
    """Write weights then manifest (the manifest's checksum makes a half-written pair fail loudly).

    ``dataset`` is the name to load the data again with (``load_dataset(dataset)``), ``protocol``
    the split, ``train_config`` a TrainConfig (or its dict), ``training`` the run's record
    (``TrainResult.record()``: stop reason, per-epoch curve).  ``extra`` adds other keys; a
    ``dataset`` or ``protocol`` in it stands for the keyword when the keyword is not given.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    run = {"dataset": extra.pop("dataset", None) if dataset is None else dataset,
           "data_name": data.name,
           "protocol": extra.pop("protocol", None) if protocol is None else protocol,
           "train_config": train_config if train_config is None or isinstance(train_config, dict)
           else dataclasses.asdict(train_config),
           "training": training}
    clash = set(extra) & set(RUN_FIELDS)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} are manifest fields: pass them as keywords")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomically(directory / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": model_name_of(model),
        "config": dataclasses.asdict(model.config),
        "schema": model.schema.to_json(),
        "vocabularies": vocabularies_of(data),
        "metrics": metrics or {},
        "weights_sha256": sha256_of(directory / WEIGHTS),
        **run,
        **extra,
    }
    write_atomically(directory / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
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


def trained_on(manifest: dict, where: str | Path, dataset: str | None = None,
               protocol: str | None = None) -> tuple[str, str]:
    """The data set and protocol to evaluate a checkpoint on: as given, else from its manifest."""
    dataset = dataset or manifest.get("dataset")
    protocol = protocol or manifest.get("protocol")
    if not dataset or not protocol:
        missing = " and ".join(flag for flag, value in (("--dataset", dataset), ("--protocol", protocol))
                               if not value)
        raise CheckpointError(f"{where}: the manifest does not say which data set or protocol it was trained "
                              f"on (written by an older version, or by retraining): pass {missing}")
    return dataset, protocol
