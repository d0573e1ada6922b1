"""One training + evaluation run per seed, and the multi-seed summary.

Shared by the CLI, the benchmark script and tests, so every number in docs comes
through the same path: load data → split → build model → train (validation picks
the epoch) → evaluate the best weights on the test cases.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import torch

from amsrm.errors import ConfigError
from amsrm_core.evaluate import evaluate
from amsrm_core.features import FeatureSchema, feature_tables
from amsrm_core.models import MODELS, Recommender
from amsrm_core.results import aggregate
from amsrm_core.schema import InteractionData
from amsrm_core.splits import SPLITS, Split
from amsrm_core.training.trainer import TrainConfig, TrainResult, resolve_device, train


def parse_overrides(config_cls: type, pairs: list[str]) -> dict[str, Any]:
    """``["d_model=128", "use_behaviour=false"]`` → typed values for a config dataclass."""
    hints = get_type_hints(config_cls)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(config_cls))
            raise ConfigError(f"bad override {pair!r}: expected key=value with key one of: {valid}")
        kind = hints[key]
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{key} takes true or false, got {raw!r}")
            out[key] = raw.lower() in ("true", "1", "yes")
        else:
            try:
                out[key] = kind(raw)
            except ValueError:
                raise ConfigError(f"bad override {pair!r}: {key} takes {getattr(kind, '__name__', kind)}, "
                                  f"got {raw!r}") from None
    return out


def build_model(name: str, data: InteractionData, overrides: dict[str, Any] | None = None) -> Recommender:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    model_cls, config_cls = MODELS[name]
    return model_cls(config_cls(**(overrides or {})), FeatureSchema.from_data(data), feature_tables(data))


@dataclass
class SeedRun:
    seed: int
    model: Recommender
    train: TrainResult
    valid: dict[str, float]
    test: dict[str, float]
    wall_seconds: float


def run_seed(model_name: str, split: Split, overrides: dict[str, Any], train_config: TrainConfig,
             seed: int) -> SeedRun:
    started = time.perf_counter()
    config = dataclasses.replace(train_config, seed=seed)
    torch.manual_seed(seed)  # model initialisation depends on the seed too
    model = build_model(model_name, split.data, overrides)
    result = train(model, split, config)
    options: dict[str, Any] = dict(batch_size=config.eval_batch_size, mask_history=config.mask_history,
                                   device=resolve_device(config.device))
    valid = evaluate(model, split, "valid", model.config.max_len, **options)
    test = evaluate(model, split, "test", model.config.max_len, **options)
    return SeedRun(seed, model, result, valid, test, time.perf_counter() - started)


@dataclass
class Experiment:
    model_name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    train_config: TrainConfig = field(default_factory=TrainConfig)

    def summary(self, runs: list[SeedRun]) -> dict:
        """The results-file entry: config, seeds, test metrics aggregated, per-seed details."""
        model = runs[0].model
        return {
            "config": dataclasses.asdict(model.config),
            "train": {k: v for k, v in dataclasses.asdict(self.train_config).items()
                      if k not in ("seed", "progress")},
            "seeds": [r.seed for r in runs],
            "metrics": aggregate([r.test for r in runs]),
            "valid_metrics": aggregate([r.valid for r in runs]),
            "runs": [{"seed": r.seed, **r.train.record(), "train_seconds": round(r.train.train_seconds, 2),
                      "seconds_to_best": round(r.train.seconds_to_best, 2),
                      "wall_seconds": round(r.wall_seconds, 2)} for r in runs],
        }


def make_split(data: InteractionData, protocol: str) -> Split:
    if protocol not in SPLITS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {sorted(SPLITS)}")
    return SPLITS[protocol](data)
