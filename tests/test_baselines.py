"""Every registered model behind the shared interface: trains, ranks all items, is causal, takes unknowns."""

import math

import pytest
import torch

from amsrm_core.batching import case_windows
from amsrm_core.evaluate import evaluate
from amsrm_core.models import MODELS, Recommender
from amsrm_core.models.caser import last_items, next_targets
from amsrm_core.runner import build_model
from amsrm_core.splits import leave_one_out
from amsrm_core.training.trainer import TrainConfig, train
from amsrm_core.vocab import UNKNOWN

NAMES = sorted(MODELS)
ORDERLESS = {"popularity", "bpr"}  # ignore the sequence: no position may change
MAX_LEN = 10  # small windows keep the whole file fast on one core


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(data, name, seed=0):
    torch.manual_seed(seed)
    return build_model(name, data, {"max_len": MAX_LEN}).eval()


def _batch(data, rows=16):
    split = leave_one_out(data)
    return case_windows(split, split.test_cases[:rows], MAX_LEN).batch(slice(None))


def _has_forward(model) -> bool:
    return type(model).forward is not Recommender.forward  # the base's forward raises


@pytest.mark.parametrize("name", NAMES)
def test_training_lowers_the_loss(small_synthetic, name):
    split = leave_one_out(small_synthetic)
    model = _model(small_synthetic, name)
    result = train(model, split, TrainConfig(epochs=3, patience=3, batch_size=32, lr=3e-3, progress=False,
                                             threads=1))
    if not model.trainable:
        assert result.history == [] and result.best_valid  # count-based: evaluated, not trained
        return
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_full_sort_predict_scores_every_item(small_synthetic, name):
    split = leave_one_out(small_synthetic)
    model = _model(small_synthetic, name)
    batch = _batch(small_synthetic)
    scores = model.full_sort_predict(batch)
    assert scores.shape == (batch["item_seq"].shape[0], len(small_synthetic.item_vocab))
    assert torch.isfinite(scores).all()
    assert model.predict(batch).shape == (batch["item_seq"].shape[0],)
    metrics = evaluate(model, split, "test", MAX_LEN)
    assert metrics and all(0.0 <= v <= 1.0 for v in metrics.values()), metrics


@pytest.mark.parametrize("name", NAMES)
def test_causality_future_items_do_not_change_the_past(small_synthetic, name):
    model = _model(small_synthetic, name)
    if not _has_forward(model):
        pytest.skip(f"{name} has no hidden states")
    batch = _batch(small_synthetic)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["item_seq"][:, -1] = (changed["item_seq"][:, -1] % 50) + 2
    with torch.no_grad():
        a, b = model(batch), model(changed)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    if name not in ORDERLESS:
        assert not torch.allclose(a[:, -1], b[:, -1])


@pytest.mark.parametrize("name", NAMES)
def test_more_left_padding_changes_nothing(small_synthetic, name):
    model = _model(small_synthetic, name)
    batch = _batch(small_synthetic)
    short = dict(batch, item_seq=batch["item_seq"][:, 4:], behaviour_seq=batch["behaviour_seq"][:, 4:])
    pad = torch.zeros(batch["item_seq"].shape[0], 4, dtype=torch.long)
    padded = dict(short, item_seq=torch.cat([pad, short["item_seq"]], 1),
                  behaviour_seq=torch.cat([pad, short["behaviour_seq"]], 1))
    with torch.no_grad():  # the same events behind 4 more padding columns: the same scores
        assert torch.allclose(model.full_sort_predict(short), model.full_sort_predict(padded), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_items_and_users_do_not_crash(small_synthetic, name):
    model = _model(small_synthetic, name)
    batch = _batch(small_synthetic)
    batch["item_seq"][batch["item_seq"] > 0] = UNKNOWN
    batch["user"][:] = UNKNOWN
    assert torch.isfinite(model.full_sort_predict(batch)).all()


def test_window_helpers_give_the_last_items_and_the_next_targets():
    item_seq = torch.tensor([[0, 0, 5, 6, 7]])
    target = torch.tensor([[0, 0, 6, 7, 8]])  # the item after each input position
    assert last_items(item_seq, 2).tolist() == [[[0, 0], [0, 0], [0, 5], [5, 6], [6, 7]]]
    assert next_targets(target, 3).tolist() == [[[0, 0, 6], [0, 6, 7], [6, 7, 8], [7, 8, 0], [8, 0, 0]]]
