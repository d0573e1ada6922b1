"""Train (or reuse) the small model the demo, the benchmark and the tests score with.

One function so that all three get the same recipe: build the registry model,
train a few epochs on a leave-one-out split with one torch thread, save the
checkpoint and the popularity vector the scorer's cold-user fallback reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import torch

from amsrm_core.checkpoint import MANIFEST, save_checkpoint
from amsrm_core.runner import build_model, make_split
from amsrm_core.schema import InteractionData
from amsrm_core.scoring import POPULARITY_FILE, save_popularity
from amsrm_core.training.trainer import TrainConfig, train

log = logging.getLogger(__name__)


def ensure_checkpoint(directory: str | Path, data: InteractionData, epochs: int = 2, model: str = "amsrm",
                      overrides: dict[str, Any] | None = None, seed: int = 0, progress: bool = False,
                      threads: int = 1) -> Path:
    """Reuse ``directory`` if it holds a checkpoint of this data set, else train and save one there.

    Trains with ``threads`` torch threads and restores the caller's setting afterwards.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if manifest_path.exists() and (directory / POPULARITY_FILE).exists():
        manifest = orjson.loads(manifest_path.read_bytes())
        if manifest.get("dataset") == data.name and manifest["vocabularies"]["item"]["tokens"] == \
                data.item_vocab.tokens:
            log.info("reusing checkpoint %s", directory)
            return directory
    split = make_split(data, "loo")
    torch.manual_seed(seed)
    net = build_model(model, data, overrides)
    config = TrainConfig(epochs=epochs, patience=epochs, seed=seed, threads=threads, device="cpu",
                         progress=progress)
    previous_threads = torch.get_num_threads()
    try:
        result = train(net, split, config)
    finally:
        torch.set_num_threads(previous_threads)
    log.info("trained %s on %s: %d epochs, valid %s", model, data.name, result.epochs_run,
             {k: round(v, 4) for k, v in result.best_valid.items() if k.endswith("@10")})
    save_checkpoint(directory, net, data, {"valid": result.best_valid},
                    extra={"dataset": data.name, "protocol": "loo", "seed": seed}, training=result.record())
    save_popularity(directory, data, split.train_positions())
    return directory
