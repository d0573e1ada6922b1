"""AMSRM's structural guarantees: shapes, causality, padding invariance, determinism, unknown ids."""

import pytest
import torch

from amsrm_core.batching import case_windows, training_windows
from amsrm_core.features import FeatureSchema, feature_tables
from amsrm_core.models.amsrm import AMSRM, AMSRMConfig
from amsrm_core.splits import leave_one_out
from amsrm_core.vocab import UNKNOWN


def _model(data, seed=0, **overrides) -> AMSRM:
    torch.manual_seed(seed)
    model = AMSRM(AMSRMConfig(max_len=10, **overrides), FeatureSchema.from_data(data), feature_tables(data))
    return model.eval()


def _batch(data, rows=8, width=10):
    split = leave_one_out(data)
    return case_windows(split, split.test_cases[:rows], width).batch(slice(None))


def test_shapes(small_synthetic):
    model = _model(small_synthetic)
    batch = _batch(small_synthetic)
    B, T = batch["item_seq"].shape
    assert model(batch).shape == (B, T, 64)
    assert model.full_sort_predict(batch).shape == (B, len(small_synthetic.item_vocab))
    assert model.predict(batch).shape == (B,)
    windows = training_windows(leave_one_out(small_synthetic), 10)
    loss = model.calculate_loss(windows.batch(slice(0, 16)))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_side_information_is_actually_used(small_synthetic):
    """All fields on: changing a user's fields or an event's behaviour changes the output."""
    model = _model(small_synthetic)
    with torch.no_grad():  # make the side blocks non-zero, as after training
        model.splice_proj.weight.normal_(0, 0.1)
        model.item_proj.weight.normal_(0, 0.1)
    batch = _batch(small_synthetic)
    base = model(batch)
    other = dict(batch, behaviour_seq=torch.where(batch["item_seq"] > 0, 2, 0))
    assert not torch.allclose(model(other), base)
    other_user = dict(batch, user=torch.full_like(batch["user"], UNKNOWN))
    assert not torch.allclose(model(other_user), base)


def test_causality_future_items_do_not_change_the_past(small_synthetic):
    model = _model(small_synthetic)
    batch = _batch(small_synthetic)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["item_seq"][:, -1] = (changed["item_seq"][:, -1] % 50) + 2
    changed["behaviour_seq"][:, -1] = 3
    with torch.no_grad():
        a, b = model(batch), model(changed)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_padding_invariance(small_synthetic):
    """More left padding (a wider window than the history) changes nothing at real positions."""
    model = _model(small_synthetic)
    batch = _batch(small_synthetic, width=4)
    pad = torch.zeros(batch["item_seq"].shape[0], 6, dtype=torch.long)
    padded = dict(batch, item_seq=torch.cat([pad, batch["item_seq"]], 1),
                  behaviour_seq=torch.cat([pad, batch["behaviour_seq"]], 1))
    with torch.no_grad():
        a, b = model(batch), model(padded)
    assert torch.allclose(a, b[:, 6:], atol=1e-5)
    assert torch.allclose(model.full_sort_predict(batch), model.full_sort_predict(padded), atol=1e-5)


def test_determinism_under_a_seed(small_synthetic):
    batch = _batch(small_synthetic)
    a = _model(small_synthetic, seed=3).full_sort_predict(batch)
    b = _model(small_synthetic, seed=3).full_sort_predict(batch)
    c = _model(small_synthetic, seed=4).full_sort_predict(batch)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_unknown_items_and_users_do_not_crash(small_synthetic):
    model = _model(small_synthetic)
    batch = _batch(small_synthetic)
    batch["item_seq"][batch["item_seq"] > 0] = UNKNOWN
    batch["user"][:] = UNKNOWN
    assert torch.isfinite(model.full_sort_predict(batch)).all()


def test_every_variant_starts_as_the_id_only_model(small_synthetic):
    """Identical init: the side-information blocks start at zero (see the model's docstring)."""
    batch = _batch(small_synthetic)
    full = _model(small_synthetic, seed=5)
    off = {"use_item_fields": False, "use_behaviour": False, "use_user_fields": False}
    id_only = _model(small_synthetic, seed=5, **off)
    id_only.item_id.weight.data.copy_(full.item_id.weight.data)
    id_only.position.weight.data.copy_(full.position.weight.data)
    id_only.blocks.load_state_dict(full.blocks.state_dict())
    assert torch.allclose(full(batch), id_only(batch), atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_every_loss_trains(small_synthetic, loss):
    model = _model(small_synthetic, loss=loss, n_negatives=32).train()
    windows = training_windows(leave_one_out(small_synthetic), 10)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = windows.batch(slice(0, 64))
    first = model.calculate_loss(batch).item()
    for _ in range(30):
        optimiser.zero_grad()
        model.calculate_loss(batch).backward()
        optimiser.step()
    assert model.calculate_loss(batch).item() < first


def test_count_weights_pool_by_log_counts_and_equal_the_plain_mean_without_repeats(small_synthetic):
    """field_weights="count": a value listed c times weighs log(1 + c); with every value listed once
    (the synthetic data) the model is exactly the default one."""
    batch = _batch(small_synthetic)
    counted, plain = _model(small_synthetic, field_weights="count"), _model(small_synthetic)
    with torch.no_grad():
        assert torch.equal(counted.full_sort_predict(batch), plain.full_sort_predict(batch))
    embedding = counted.item_fields["category"]
    values, counts = torch.tensor([[3, 5, 0]]), torch.tensor([[1, 7, 0]])
    w = torch.log1p(torch.tensor([1.0, 7.0]))
    expected = (w[0] * embedding.embedding.weight[3] + w[1] * embedding.embedding.weight[5]) / w.sum()
    torch.testing.assert_close(embedding(values, counts)[0], expected)
    torch.testing.assert_close(embedding(values)[0], embedding.embedding.weight[[3, 5]].mean(0))
    assert torch.equal(embedding(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3)), torch.zeros(1, 16))
    with pytest.raises(ValueError, match="field_weights"):
        _model(small_synthetic, field_weights="tfidf")
