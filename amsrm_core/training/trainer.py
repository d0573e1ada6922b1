"""Training loop: Adam, next-item loss, early stopping on validation NDCG@10.

Reads top to bottom: config, data tensors, optimiser, loop (train epoch → validate →
keep the best weights), restore the best.  Test metrics are never looked at here:
model selection uses the validation cases only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from amsrm.errors import ConfigError
from amsrm_core.batching import WindowTensors, training_windows
from amsrm_core.evaluate import evaluate
from amsrm_core.models.base import Recommender
from amsrm_core.splits import Split

SELECTION_METRIC = "ndcg@10"


BUDGET_CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
PRECISIONS = ("fp32", "bf16")


def _setting(default: Any, doc: str, choices: tuple[str, ...] | None = None) -> Any:
    """A TrainConfig field whose doc (and fixed set of values) the command-line flags show."""
    return field(default=default, metadata={"doc": doc, "choices": choices})


@dataclass
class TrainConfig:
    """How to train; each field's ``doc`` is the help of its ``amsrm train`` flag (one source)."""

    epochs: int = _setting(200, "most epochs; early stopping usually ends sooner")
    batch_size: int = _setting(128, "training windows per batch")
    lr: float = _setting(1e-3, "Adam learning rate")
    weight_decay: float = _setting(0.0, "Adam weight decay")
    patience: int = _setting(10, "epochs without a better validation NDCG@10 before stopping")
    lr_decay_patience: int = _setting(0, "multiply the learning rate by lr_decay_factor after this many "
                                      "epochs without a better validation NDCG@10, and again after as many "
                                      "more; 0 = a constant rate")
    lr_decay_factor: float = _setting(0.3, "see lr_decay_patience")
    seed: int = _setting(0, "seed of initialisation, shuffling and negative sampling")
    threads: int = _setting(0, "torch CPU threads; 0 = leave torch's default. Set it when sharing cores")
    device: str = _setting("auto", "auto, cpu, cuda or cuda:N (auto = cuda when there is one)")
    precision: str = _setting("fp32", "fp32, or bf16 autocast (fp32 weights): faster when the catalogue "
                              "dominates", PRECISIONS)
    time_budget_s: float = _setting(0.0, "stop after this much training time, in seconds (0 = no limit)")
    budget_clock: str = _setting("wall", "what time_budget_s counts: wall time, or the CPU time of this "
                                 "process (all its threads), which keeps a cap equal between runs that share "
                                 "cores with other work or are paused", tuple(BUDGET_CLOCKS))
    eval_batch_size: int = _setting(512, "users per batch when evaluating")
    mask_history: bool = _setting(True, "rank only items the user has not interacted with")
    bucket_by_length: bool = _setting(False, "batches of similar window lengths: less padding, faster "
                                      "epochs; on Beauty with full CE it learned less per second too")
    progress: bool = _setting(True, "show a progress bar per run")


def config_doc(name: str) -> str:
    """The doc of TrainConfig field ``name`` (help text of the flags that set it)."""
    return TRAIN_FIELDS[name].metadata["doc"]


def config_choices(name: str) -> tuple[str, ...] | None:
    """The values TrainConfig field ``name`` may take, where that is a fixed set."""
    return TRAIN_FIELDS[name].metadata["choices"]


TRAIN_FIELDS = {f.name: f for f in fields(TrainConfig)}


STOP_REASONS = ("patience", "time_budget", "epochs", "not_trainable")


@dataclass
class TrainResult:
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    train_seconds: float = 0.0  # training + validation wall time
    seconds_to_best: float = 0.0
    stop_reason: str = ""  # one of STOP_REASONS: why training ended where it did
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, valid, seconds, elapsed_s

    def record(self, metrics: tuple[str, ...] = ("precision@10", "recall@10", "ndcg@10", "mrr@10")
               ) -> dict:
        """What results files and checkpoint manifests keep of the run: the stop reason, and per
        epoch the training loss, these validation metrics and the seconds (``amsrm results curve``)."""
        curve = [{"epoch": h["epoch"], "loss": round(h["loss"], 6), "seconds": round(h["seconds"], 3),
                  "valid": {m: round(h["valid"][m], 6) for m in metrics if m in h["valid"]},
                  **({"lr": h["lr"]} if "lr" in h else {})} for h in self.history]
        return {"best_epoch": self.best_epoch, "epochs_run": self.epochs_run, "stop_reason": self.stop_reason,
                "curve": curve}


EpochCallback = Callable[[int, Recommender, dict, float], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


BUCKET_POOL = 64  # batches whose windows are sorted by length together


def epoch_batches(windows: WindowTensors, batch_size: int, generator: torch.Generator,
                  by_length: bool = False) -> list[torch.Tensor]:
    """One epoch's batches of window rows, in random order, every window exactly once.

    ``by_length``: windows are shuffled, sorted by length within pools of ``BUCKET_POOL``
    batches, cut into batches, and the batches shuffled.  Each batch is trimmed to its longest
    window (``WindowTensors.batch``), so on data where most histories are short (Beauty: 9
    events on average, n = 30) the attention blocks skip most of the padding; batches still
    mix users at random within a length range.
    """
    order = torch.randperm(len(windows), generator=generator)
    if not by_length:
        return list(order.split(batch_size))
    lengths = (windows.item_seq != 0).sum(dim=1)
    pools = order.split(batch_size * BUCKET_POOL)
    batches = [b for pool in pools for b in pool[torch.argsort(lengths[pool], stable=True)].split(batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train(
    model: Recommender,
    split: Split,
    config: TrainConfig,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``model`` on ``split``'s training events; returns with the best weights loaded.

    ``on_epoch(epoch, model, valid_metrics, elapsed_s)`` runs after each validation,
    outside the timed region (benchmarks use it to probe quality over time).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    max_len = model.config.max_len
    windows = training_windows(split, max_len)
    model.to(device)
    model.fit_statistics(torch.from_numpy(split.data.items[split.train_positions()]))
    result = TrainResult()
    eval_options: dict[str, Any] = dict(batch_size=config.eval_batch_size, mask_history=config.mask_history,
                                        device=device)
    if not model.trainable:
        result.best_valid = evaluate(model, split, "valid", max_len, **eval_options)
        result.stop_reason = "not_trainable"
        return result

    if config.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    # foreach: one multi-tensor update instead of a Python loop over parameters (the CPU default)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 foreach=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    generator = torch.Generator().manual_seed(config.seed)
    if config.budget_clock not in BUDGET_CLOCKS:
        raise ConfigError(f"budget_clock must be one of {sorted(BUDGET_CLOCKS)}, got {config.budget_clock!r}")
    budget_clock = BUDGET_CLOCKS[config.budget_clock]
    best_score, best_state, stale, elapsed, budget_used = -1.0, None, 0, 0.0, 0.0
    result.stop_reason = "epochs"
    bar = tqdm(range(1, config.epochs + 1), desc="epochs", disable=not config.progress, leave=False)
    for epoch in bar:
        started, budget_started = time.perf_counter(), budget_clock()
        model.train()
        total, batches = 0.0, 0
        for rows in epoch_batches(windows, config.batch_size, generator, config.bucket_by_length):
            batch = {k: v.to(device) for k, v in windows.batch(rows).items()}
            with autocast:
                loss = model.calculate_loss(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, batches = total + loss.item(), batches + 1
        valid = evaluate(model, split, "valid", max_len, **eval_options)
        seconds = time.perf_counter() - started
        elapsed += seconds
        budget_used += budget_clock() - budget_started
        score = valid[SELECTION_METRIC]
        lr = optimiser.param_groups[0]["lr"]  # this epoch's rate (a plateau below may cut the next one's)
        result.history.append({"epoch": epoch, "loss": total / max(batches, 1), "valid": valid,
                               "seconds": seconds, "elapsed_s": elapsed, "lr": lr})
        if score > best_score:
            best_score, stale = score, 0
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch, result.best_valid, result.seconds_to_best = epoch, valid, elapsed
        else:
            stale += 1
            if config.lr_decay_patience and stale % config.lr_decay_patience == 0:
                for group in optimiser.param_groups:  # a plateau: smaller steps from here on
                    group["lr"] *= config.lr_decay_factor
        bar.set_postfix(loss=f"{total / max(batches, 1):.3f}", valid_ndcg10=f"{score:.4f}",
                        best=f"{best_score:.4f}@{result.best_epoch}")
        if on_epoch is not None:
            on_epoch(epoch, model, valid, elapsed)
        result.epochs_run = epoch
        if stale >= config.patience:
            result.stop_reason = "patience"
            break
        if config.time_budget_s and budget_used >= config.time_budget_s:
            result.stop_reason = "time_budget"
            break
    result.train_seconds = elapsed
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
