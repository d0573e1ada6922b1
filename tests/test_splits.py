import numpy as np
import pytest

from amsrm_core.batching import case_windows, history_mask_index, training_windows
from amsrm_core.splits import leave_one_out, temporal


def _item(data, token):
    return data.item_vocab.lookup(token)


def test_events_sorted_by_user_then_time(tiny_data):
    d = tiny_data
    for u in np.unique(d.users):
        assert np.all(np.diff(d.timestamps[d.users == u]) >= 0)
    c_items = d.items[d.users == d.user_vocab.lookup("c")]
    assert c_items.tolist() == [_item(d, "x"), _item(d, "z")]  # c's events came out of time order


def test_leave_one_out_positions(tiny_data):
    split = leave_one_out(tiny_data)
    d = tiny_data
    assert [d.items[p] for p in split.test_cases] == [_item(d, "w"), _item(d, "v")]
    assert [d.items[p] for p in split.valid_cases] == [_item(d, "z"), _item(d, "x")]
    assert split.info["users_not_evaluated"] == 1  # c has two events: training only
    assert split.describe()["train_events"] == 2 + 1 + 2


def test_leave_one_out_trains_only_on_earlier_events(small_synthetic):
    split = leave_one_out(small_synthetic)
    train = split.train_positions()
    held_out = np.concatenate([split.valid_cases, split.test_cases])
    assert not set(train) & set(held_out)
    for p in held_out:  # every held-out event is after all of its user's training events
        mine = train[split.user_start[train] == split.user_start[p]]
        assert mine.size == 0 or mine.max() < p


def test_temporal_split_has_no_future_in_training(small_synthetic):
    d = small_synthetic
    split = temporal(d)
    train = split.train_positions()
    evaluated = np.concatenate([split.valid_cases, split.test_cases])
    assert d.timestamps[train].max() < d.timestamps[evaluated].min()
    assert np.all(d.timestamps[split.test_cases] >= split.info["t_test"])
    assert np.all(evaluated > split.user_start[evaluated])  # every case has some history
    # the training tensors themselves hold no event at or after the cut
    windows = training_windows(split, 10)
    seen_items = set(windows.item_seq[windows.item_seq > 0].tolist()) | set(
        windows.target[windows.target > 0].tolist())
    assert seen_items <= set(d.items[train].tolist())
    assert (windows.target > 0).sum() == len(train) - np.count_nonzero(split.train_end > split.run_start)


def test_temporal_needs_a_clock(tiny_data):
    tiny_data.has_clock = False
    with pytest.raises(ValueError, match="no global clock"):
        temporal(tiny_data)


def test_case_windows_are_left_padded_and_truncated(tiny_data):
    d = tiny_data
    split = leave_one_out(d)
    w = case_windows(split, split.test_cases, max_len=2)
    a = [_item(d, t) for t in ("y", "z")]  # a's latest two before w
    b = [_item(d, t) for t in ("y", "x")]
    assert w.item_seq.tolist() == [a, b]
    w3 = case_windows(split, split.test_cases, max_len=4)
    assert w3.item_seq[1].tolist() == [0, 0, *b]
    assert w3.behaviour_seq[1, :2].tolist() == [0, 0]
    assert w.target.tolist() == [_item(d, "w"), _item(d, "v")]


def test_training_windows_predict_next_item_within_user(tiny_data):
    d = tiny_data
    split = leave_one_out(d)
    w = training_windows(split, max_len=3)
    pairs = {(tuple(i), tuple(t)) for i, t in zip(w.item_seq.tolist(), w.target.tolist(), strict=True)}
    x, y, z = (_item(d, t) for t in "xyz")
    # a trains on x→y; b's only training event has no target; c trains on x→z (too short to evaluate)
    assert pairs == {((0, 0, x), (0, 0, y)), ((0, 0, x), (0, 0, z))}


def test_history_mask_covers_the_full_history(tiny_data):
    d = tiny_data
    split = leave_one_out(d)
    rows, items = history_mask_index(split, split.test_cases)
    a_hist = sorted(items[rows == 0].tolist())
    assert a_hist == sorted(_item(d, t) for t in "xyz")
