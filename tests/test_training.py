"""Training on the synthetic set: the side-information model must beat popularity and id-only."""

import time

import pytest
import torch

from amsrm_core.batching import training_windows
from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from amsrm_core.runner import run_seed
from amsrm_core.splits import leave_one_out
from amsrm_core.training import trainer
from amsrm_core.training.trainer import TrainConfig, epoch_batches

ID_ONLY = {"use_item_fields": False, "use_behaviour": False, "use_user_fields": False}


@pytest.mark.slow
def test_amsrm_beats_popularity_and_id_only_on_synthetic():
    data = generate_synthetic(SyntheticConfig(n_users=400, n_items=1200, seed=7))
    split = leave_one_out(data)
    config = TrainConfig(epochs=12, patience=4, progress=False, threads=2)
    ndcg = {
        name: run_seed(model, split, overrides, config, seed=0).test["ndcg@10"]
        for name, model, overrides in [("popularity", "popularity", {}), ("id-only", "amsrm", ID_ONLY),
                                       ("amsrm", "amsrm", {})]
    }
    assert ndcg["amsrm"] > 1.5 * ndcg["popularity"], ndcg
    assert ndcg["amsrm"] > 1.5 * ndcg["id-only"], ndcg


def test_training_restores_the_best_validation_epoch(small_synthetic):
    split = leave_one_out(small_synthetic)
    run = run_seed("amsrm", split, {"max_len": 10}, TrainConfig(epochs=4, patience=10, progress=False), 0)
    best = max(h["valid"]["ndcg@10"] for h in run.train.history)
    assert run.valid["ndcg@10"] == pytest.approx(best)
    assert run.train.best_valid["ndcg@10"] == pytest.approx(best)


def test_the_learning_rate_decays_after_each_plateau_of_lr_decay_patience_epochs(small_synthetic):
    """With lr 1 the validation score soon stops improving: each run of 2 stale epochs cuts the rate."""
    split = leave_one_out(small_synthetic)
    config = TrainConfig(epochs=8, patience=8, lr=1.0, lr_decay_patience=2, lr_decay_factor=0.5,
                         progress=False)
    history = run_seed("amsrm", split, {"max_len": 10}, config, 0).train.history
    best, stale, lr = -1.0, 0, 1.0
    for h in history:  # the rule, replayed on the run's own validation scores; h["lr"]: the epoch's rate
        assert h["lr"] == pytest.approx(lr)
        if h["valid"]["ndcg@10"] > best:
            best, stale = h["valid"]["ndcg@10"], 0
        else:
            stale += 1
            lr *= 0.5 if stale % 2 == 0 else 1.0
    assert history[-1]["lr"] < 1.0, "the run never reached a plateau: the test proves nothing"


def test_bf16_training_runs_and_bad_precision_is_refused(small_synthetic):
    split = leave_one_out(small_synthetic)
    run = run_seed("amsrm", split, {"max_len": 10},
                   TrainConfig(epochs=2, patience=5, progress=False, precision="bf16"), 0)
    losses = [h["loss"] for h in run.train.history]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="precision"):
        run_seed("amsrm", split, {"max_len": 10}, TrainConfig(epochs=1, precision="fp8", progress=False), 0)


def test_length_buckets_cover_every_window_once_with_less_padding(small_synthetic):
    windows = training_windows(leave_one_out(small_synthetic), 30)
    lengths = (windows.item_seq != 0).sum(dim=1)

    def padded_width(batches):  # what the attention blocks compute over: batch size × longest window
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    plain = epoch_batches(windows, 16, torch.Generator().manual_seed(0))
    bucketed = epoch_batches(windows, 16, torch.Generator().manual_seed(0), by_length=True)
    again = epoch_batches(windows, 16, torch.Generator().manual_seed(0), by_length=True)
    for batches in (plain, bucketed):
        rows = torch.cat(batches)
        assert sorted(rows.tolist()) == list(range(len(windows)))  # each window exactly once
        assert max(len(b) for b in batches) <= 16
    assert all(torch.equal(a, b) for a, b in zip(bucketed, again, strict=True))  # seeded
    assert padded_width(bucketed) < 0.8 * padded_width(plain)
    run = run_seed("amsrm", leave_one_out(small_synthetic), {"max_len": 10},
                   TrainConfig(epochs=2, patience=5, bucket_by_length=True, progress=False), 0)
    losses = [h["loss"] for h in run.train.history]
    assert len(losses) == 2 and losses[-1] < losses[0]


def test_cpu_budget_clock_ignores_time_the_process_spends_waiting(small_synthetic, monkeypatch):
    """A run paused (or starved by other work) must not lose its CPU-time budget; a wall budget does."""
    split = leave_one_out(small_synthetic)
    real_evaluate = trainer.evaluate

    def slow_evaluate(*args, **kwargs):  # each epoch also waits 1.5 s without using the CPU
        time.sleep(1.5)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", slow_evaluate)
    epochs = {}
    for clock in ("wall", "cpu"):
        config = TrainConfig(epochs=2, patience=10, progress=False, threads=1, time_budget_s=1.2,
                             budget_clock=clock)
        epochs[clock] = run_seed("amsrm", split, {"max_len": 10}, config, 0).train.epochs_run
    assert epochs == {"wall": 1, "cpu": 2}
    with pytest.raises(ValueError, match="budget_clock"):
        run_seed("amsrm", split, {"max_len": 10},
                 TrainConfig(epochs=1, budget_clock="gpu", progress=False), 0)
