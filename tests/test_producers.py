"""Producers without a broker: event conversion, pacing, the synthetic live stream."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import orjson
import pytest

from amsrm.settings import StreamSettings
from amsrm_core.data.synthetic import SyntheticConfig
from producers.events import dataset_events, encode, replay_order, time_order
from producers.pacing import rate_schedule, rate_ticks, speed_schedule
from producers.replay import replay_schedule
from producers.synthetic import synthetic_stream
from streams.worker.validation import Limits, parse_event


def test_events_come_back_as_raw_ids_in_time_order(tiny_data):
    events = list(dataset_events(tiny_data))
    assert [(e["user_id"], e["item_id"]) for e in events] == [
        ("b", "y"), ("a", "x"), ("b", "x"), ("a", "y"), ("b", "v"), ("a", "z"), ("c", "x"), ("a", "w"),
        ("c", "z")]
    first_a = events[1]
    assert first_a["behaviour"] == "click" and first_a["item_fields"] == {"category": "c1"}
    assert first_a["user_fields"] == {"gender": "F"}
    assert events[-1]["user_fields"] is None  # user c has no side fields


def test_time_order_keeps_each_users_order(small_synthetic):
    order = time_order(small_synthetic)
    assert np.all(np.diff(small_synthetic.timestamps[order]) >= 0)
    for user in np.unique(small_synthetic.users)[:20]:
        positions = order[small_synthetic.users[order] == user]
        assert np.all(np.diff(positions) > 0)


def test_replay_order_is_time_order_with_a_clock(small_synthetic):
    assert np.array_equal(replay_order(small_synthetic), time_order(small_synthetic))


def test_replay_order_without_a_clock_interleaves_whole_histories(small_synthetic):
    # positions as timestamps, as Amazon S3-Rec data: time order would send every first event first
    counts = np.unique(small_synthetic.users, return_counts=True)[1]
    positions = np.concatenate([np.arange(n) for n in counts])
    clockless = dataclasses.replace(small_synthetic, timestamps=positions, has_clock=False)
    order = replay_order(clockless, block_events=1000, seed=3)
    assert sorted(order.tolist()) == list(range(clockless.n_events))
    users = clockless.users[order]
    for user in np.unique(users):
        assert np.all(np.diff(positions[order[users == user]]) > 0)  # each history in its own order
    index = np.arange(len(order))
    spans = [np.ptp(index[users == user]) for user in np.unique(users)]
    assert max(spans) < 1000 + 30  # a whole history within one block (≤ block_events + one history)
    assert np.mean(users[1:] == users[:-1]) < 0.2  # and interleaved with the block's other users
    assert not np.array_equal(order, replay_order(clockless, block_events=1000, seed=4))


def test_encoded_events_are_valid_and_keyed_by_user(small_synthetic):
    settings = StreamSettings.load({})
    limits = Limits(settings.max_event_bytes, settings.min_event_time_ms, settings.max_clock_skew_ms)
    now = 1_790_000_000_000
    for event in itertools.islice(dataset_events(small_synthetic), 200):
        key, value = encode(event, now)
        parsed = parse_event(value, limits, now)
        assert key == event["user_id"].encode() and parsed.event_id == event["event_id"]
        assert orjson.loads(value)["timestamp"] == now


def test_pacing_schedules():
    assert rate_schedule(4, 2.0).tolist() == [0.0, 0.5, 1.0, 1.5]
    assert list(itertools.islice(rate_ticks(4.0), 3)) == [0.0, 0.25, 0.5]
    assert list(itertools.islice(rate_ticks(0), 2)) == [0.0, 0.0]
    assert speed_schedule([100, 110, 5000, 5010], speed=10, max_gap_s=2.0).tolist() == [0.0, 1.0, 3.0, 4.0]
    with pytest.raises(ValueError):
        rate_schedule(3, 0)


def test_replay_needs_exactly_one_pace(small_synthetic, tiny_data):
    order = time_order(small_synthetic)
    with pytest.raises(ValueError, match="either"):
        replay_schedule(small_synthetic, order, rate=None, speed=None)
    with pytest.raises(ValueError, match="either"):
        replay_schedule(small_synthetic, order, rate=10, speed=10)
    assert len(replay_schedule(small_synthetic, order, rate=None, speed=3600)) == len(order)


def test_synthetic_stream_runs_past_one_data_set():
    config = SyntheticConfig(n_users=5, n_items=50, min_events=3, max_events=4, seed=3)
    events = list(itertools.islice(synthetic_stream(config), 60))
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids) and len({i.rsplit("-r", 1)[1] for i in ids}) >= 3  # several rounds
    assert {e["item_id"] for e in events} <= {f"i{i}" for i in range(50)}
