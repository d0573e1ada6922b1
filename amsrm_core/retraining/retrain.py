"""One retraining run: training store → warm-started candidate → promotion gate → registry.

Reads in order: options; data (the store's samples in a time window → events →
encoded on the current model's vocabularies, grown for new ids); model (the current
one grown to the new vocabularies, or a fresh one when nothing is current yet);
training (a temporal split: train on the older events, early-stop on the next slice,
hold out the newest ``holdout`` fraction; at most ``max_epochs`` and about ``budget_s``
seconds); gate (candidate and current model scored like serving on the held-out
slice); registry (the candidate is always published as a version, so a rejected one
can be inspected or promoted by hand; the pointer moves only when the gate passes);
report (a JSON-able dict, also stored in the version's manifest and the history).

    amsrm retrain                 # once: for cron or a Kubernetes CronJob
    amsrm retrain --every 1h      # a long-running scheduler
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amsrm.errors import ConfigError
from amsrm_core.checkpoint import LoadedCheckpoint, save_checkpoint
from amsrm_core.registry import LoadedVersion, ModelRegistry
from amsrm_core.retraining.dataset import Base, encode_events, events_from_samples
from amsrm_core.retraining.gate import TOP_K, decide, holdout_cases, serving_metrics
from amsrm_core.retraining.grow import grow_model, grown_rows
from amsrm_core.retraining.store import HOUR_MS, TrainingStore
from amsrm_core.runner import build_model
from amsrm_core.schema import InteractionData
from amsrm_core.scoring import Scorer, save_popularity
from amsrm_core.splits import Split, temporal
from amsrm_core.training.trainer import TrainConfig, train

log = logging.getLogger(__name__)

REPORTED = ("ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20")
# what a retrain takes from the current version's train_config unless RetrainOptions set it: the recipe
# it was trained with (its model config, fusion included, comes with its weights: grow.grow_model)
RECIPE = ("lr", "batch_size", "weight_decay", "precision", "bucket_by_length", "lr_decay_patience",
          "lr_decay_factor")
DEFAULT_RECIPE = {"lr": 1e-3, "batch_size": 128}


@dataclass
class RetrainOptions:
    window_h: float = 168.0  # hours of samples, up to the newest, to train and evaluate on
    until_ms: int | None = None  # end of the window; default: just after the newest sample
    budget_s: float = 600.0  # training time budget (checked after each epoch)
    max_epochs: int = 20
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    lr: float | None = None  # None: the current version's (its train_config), else DEFAULT_RECIPE's
    batch_size: int | None = None  # likewise
    holdout: float = 0.1  # newest fraction of events: the gate's cases (the same again before it: validation)
    gate_metric: str = "ndcg@10"
    gate_margin: float = 0.0  # promote when candidate >= current - margin
    gate_min_cases: int = 50
    exclude_window: bool = True  # score the gate as the workers serve
    model: str = "amsrm"  # architecture when no version is current yet (otherwise the current one's)
    threads: int = 1  # torch CPU threads
    device: str = "cpu"
    seed: int = 0


def vocabularies(data: InteractionData) -> dict:
    return {"user": data.user_vocab, "item": data.item_vocab, "behaviour": data.behaviour_vocab}


def retrain(store: TrainingStore, registry: ModelRegistry, options: RetrainOptions) -> dict:
    """One run; returns the report (``status``: promoted, rejected, no_data or too_little_data)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        return _retrain(store, registry, options)
    finally:
        torch.set_num_threads(previous_threads)  # the caller's setting (tests, a long-running scheduler)


def _retrain(store: TrainingStore, registry: ModelRegistry, options: RetrainOptions) -> dict:
    started = time.perf_counter()
    # ---- data
    newest = store.newest_event_ms()
    if newest is None:
        log.info("the training store %s is empty: nothing to retrain on", store.root)
        return {"status": "no_data", "store": str(store.root)}
    until = options.until_ms or newest + 1
    since = until - int(options.window_h * HOUR_MS)
    samples = store.read(since, until)
    events = events_from_samples(samples)
    pointer = registry.current()
    current = registry.load(pointer.version, pointer.manifest_sha256) if pointer else None
    base = Base.of_model(current.checkpoint.model, current.checkpoint.vocabularies) if current else None
    data = encode_events("training-store", events, base)
    window = {"since_ms": since, "until_ms": until, "samples": samples.num_rows, "events": data.n_events,
              "users": data.n_users, "items": data.n_items}
    log.info("read %d samples → %d events of %d users on %d items from %s", samples.num_rows, data.n_events,
             data.n_users, data.n_items, store.root)
    split = temporal(data, valid_quantile=1 - 2 * options.holdout, test_quantile=1 - options.holdout) \
        if data.n_events else None
    if split is None or not len(split.valid_cases) or not len(split.test_cases):
        log.info("too little data for a validation and a held-out slice: no retrain")
        return {"status": "too_little_data", "window": window}
    # ---- model
    torch.manual_seed(options.seed)
    model_name = current.checkpoint.manifest["model"] if current else options.model
    if current:
        model = grow_model(current.checkpoint.model, model_name, data)
        growth = grown_rows(current.checkpoint.model, model)
        log.info("warm start from %s (%s); grown: %s", current.version, model_name, growth or "nothing")
    else:
        model, growth = build_model(model_name, data), {}
        log.info("no current version: training a new %s", model_name)
    # ---- training
    config = TrainConfig(epochs=options.max_epochs, patience=options.patience, seed=options.seed,
                         threads=options.threads, device=options.device, time_budget_s=options.budget_s,
                         progress=False, **recipe_of(current, options))
    result = train(model, split, config, on_epoch=_log_epoch)
    log.info("trained %d epochs in %.1fs (best: %d)", result.epochs_run, result.train_seconds,
             result.best_epoch)
    # ---- gate
    popularity = np.bincount(data.items[split.train_positions()], minlength=len(data.item_vocab))
    candidate_metrics, current_metrics, n_cases = _gate_metrics(model, model_name, data, split, popularity,
                                                                current, options)
    decision = decide(candidate_metrics, current_metrics, n_cases, options.gate_metric, options.gate_margin,
                      options.gate_min_cases)
    log.info("gate on %d held-out cases: %s (%s)", n_cases, "promote" if decision.promote else "reject",
             decision.reason)
    # ---- registry
    report: dict[str, Any] = {
        "status": "promoted" if decision.promote else "rejected",
        "parent": pointer.version if pointer else None,
        "window": {**window, "holdout_from_ms": int(split.info["t_test"]),
                   "new_users": len(data.user_vocab) - len(base.vocabularies["user"]) if base else None,
                   "new_items": len(data.item_vocab) - len(base.vocabularies["item"]) if base else None},
        "grown": {k: list(v) for k, v in growth.items()},
        "train": {"epochs": result.epochs_run, "best_epoch": result.best_epoch,
                  "seconds": round(result.train_seconds, 2), "budget_s": options.budget_s,
                  "options": asdict(options)},
        "gate": decision.to_json(),
        "metrics": {"candidate": _subset(candidate_metrics),
                    "current": _subset(current_metrics) if current_metrics else None},
    }

    def write(folder: Path) -> None:
        # no dataset: the training store's window is no data set load_dataset can load again
        save_checkpoint(folder, model, data, {"holdout": candidate_metrics, "valid": result.best_valid},
                        extra={"seed": options.seed}, protocol="temporal", train_config=config,
                        training=result.record())
        save_popularity(folder, data, split.train_positions())

    version = registry.publish(write, {"parent": report["parent"], "training_window": report["window"],
                                       "report": report})
    report["version"] = version
    if decision.promote:
        registry.promote(version, decision.reason, metrics=report["metrics"])
        log.info("promoted %s: it is the current version now", version)
    else:
        registry.record({"event": "reject", "version": version, "reason": decision.reason,
                         "metrics": report["metrics"]})
        log.info("published %s, not promoted: current stays %s", version, report["parent"])
    after = registry.current()
    report["current"] = after.version if after else None
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


def recipe_of(current: LoadedVersion | None, options: RetrainOptions) -> dict[str, Any]:
    """The training recipe of the current version (``RECIPE`` keys of its manifest's train_config),
    with what ``options`` sets on top; without one, ``DEFAULT_RECIPE``."""
    saved = (current.checkpoint.manifest.get("train_config") or {}) if current else {}
    recipe = {**DEFAULT_RECIPE, **{k: saved[k] for k in RECIPE if k in saved}}
    recipe.update({k: v for k in ("lr", "batch_size") if (v := getattr(options, k)) is not None})
    return recipe


def _gate_metrics(model, model_name: str, data: InteractionData, split: Split, popularity: np.ndarray,
                  current: LoadedVersion | None, options: RetrainOptions
                  ) -> tuple[dict[str, float], dict[str, float] | None, int]:
    """Candidate and current model through the Scorer on the held-out cases."""
    widths = [model.config.max_len] + ([current.checkpoint.model.config.max_len] if current else [])
    cases = holdout_cases(split, max(widths))
    scoring: dict[str, Any] = {"k": TOP_K, "exclude_window": options.exclude_window, "device": options.device}
    candidate = Scorer(LoadedCheckpoint(model, {"model": model_name}, vocabularies(data)),
                       popularity=popularity.astype(np.float32), **scoring)
    current_metrics = None
    if current is not None:
        serving = Scorer(current.checkpoint, popularity=current.popularity, **scoring)
        current_metrics = serving_metrics(serving, cases)
    return serving_metrics(candidate, cases), current_metrics, len(cases)


def _log_epoch(epoch: int, model, valid: dict, elapsed: float) -> None:
    log.info("epoch %d: valid ndcg@10 %.4f recall@10 %.4f (%.1fs)", epoch, valid["ndcg@10"],
             valid["recall@10"], elapsed)


def _subset(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(metrics[k], 5) for k in REPORTED if k in metrics}


# ---------------------------------------------------------------------- schedule
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1d`` (or plain seconds) → seconds."""
    text = text.strip().lower()
    try:
        seconds = float(text[:-1]) * _UNITS[text[-1]] if text and text[-1] in _UNITS else float(text)
    except ValueError as e:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h, 1d)") from e
    if seconds <= 0:
        raise ConfigError(f"a duration must be positive, got {text!r}")
    return seconds


def run_every(interval_s: float, run_once: Callable[[], object], stop: threading.Event) -> int:
    """``run_once`` at a fixed rate until ``stop``; a failing run is logged and the next one still runs."""
    runs = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            run_once()
        except Exception:
            log.exception("retrain failed; next attempt in %.0fs", interval_s)
        runs += 1
        wait = max(0.0, started + interval_s - time.monotonic())
        log.info("next retrain in %.0fs", wait)
        stop.wait(wait)
    return runs
