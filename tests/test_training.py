"""Training on the synthetic set: the side-information model must beat popularity and id-only."""

import pytest

from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from amsrm_core.runner import run_seed
from amsrm_core.splits import leave_one_out
from amsrm_core.training.trainer import TrainConfig

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


def test_bf16_training_runs_and_bad_precision_is_refused(small_synthetic):
    split = leave_one_out(small_synthetic)
    run = run_seed("amsrm", split, {"max_len": 10},
                   TrainConfig(epochs=2, patience=5, progress=False, precision="bf16"), 0)
    losses = [h["loss"] for h in run.train.history]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="precision"):
        run_seed("amsrm", split, {"max_len": 10}, TrainConfig(epochs=1, precision="fp8", progress=False), 0)
