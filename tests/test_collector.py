"""The training store and the collector: atomic files by event hour, deduplication, crash safety.

Both sources of samples (``AMSRM_SAMPLES_SOURCE``): the worker's labelled samples, and the
events themselves, labelled by the collector with the worker's validation.  The last tests kill
a real collector process (SIGKILL) on a real broker mid-stream and check that after a restart the
store holds every sample exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from types import SimpleNamespace

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import TopicPartition
from test_retrain import T0_MS, events_of, labelled_samples, rows_of
from test_streams_integration import FAST_FAILOVER, TIMEOUT_S, new_settings, produce

from amsrm.errors import ConfigError
from amsrm.settings import StreamSettings
from amsrm_core.retraining.dataset import events_from_samples
from amsrm_core.retraining.store import (
    HOUR_MS,
    SCHEMA,
    SampleError,
    TrainingStore,
    hour_dir,
    sample_row,
)
from producers.events import dataset_events, encode
from streams.collector.service import Collector
from streams.local.collector_process import CollectorProcess


@pytest.fixture(scope="module")
def samples(small_synthetic) -> list[dict]:
    return labelled_samples(small_synthetic)[:1500]


def stored_ids(store: TrainingStore) -> list[str]:
    """Every event id in every complete file, duplicates included (no reader-side deduplication)."""
    tables = [pq.read_table(f.path, columns=["event_id"]) for f in store.files()]
    return [i for table in tables for i in table["event_id"].to_pylist()]


def test_files_are_partitioned_by_event_hour_and_read_back_once(tmp_path, samples):
    store = TrainingStore(tmp_path)
    rows = rows_of(samples)
    late = dict(rows[0], event_id="late", event_time_ms=T0_MS + 5 * HOUR_MS)
    written = store.write([*rows[:100], late], "samples", 3, 40, 140)
    assert [p.parent.relative_to(tmp_path).as_posix() for p in written] == \
        [hour_dir(T0_MS), hour_dir(T0_MS + 5 * HOUR_MS)]
    assert all(p.name.startswith("samples-p0003-000000000040-000000000140-") for p in written)
    (written[0].parent / f".{written[0].name}.tmp").write_bytes(b"half a file")  # a crash mid-write
    store.write(rows[50:200], "samples", 3, 141, 290)  # overlaps: the reader keeps each event once
    table = store.read()
    # hour by hour, file by file (offsets in the name), each event id once
    assert table.column("event_id").to_pylist() == [r["event_id"] for r in rows[:200]] + ["late"]
    assert store.read(since_ms=T0_MS + HOUR_MS).column("event_id").to_pylist() == ["late"]
    assert store.newest_event_ms() == T0_MS + 5 * HOUR_MS
    assert len(store.files(partition=3)) == 3 and not store.files(partition=2)
    recent = store.recent_ids("samples", 3, from_offset=141, at_least=0)
    assert recent == [r["event_id"] for r in rows[50:200]]
    first = table.to_pylist()[0]
    assert first["window"] and first["user_fields"] and isinstance(first["item_fields"], list)


def test_a_message_that_is_not_a_sample_is_refused():
    with pytest.raises(SampleError):
        sample_row({"event_id": "e1"}, 0, 0, 0)
    with pytest.raises(SampleError):
        sample_row([1, 2], 0, 0, 0)


class FakeConsumer:
    """What the collector asks of aiokafka: committed offsets, the assignment, commits."""

    def __init__(self, topic: str, partitions: list[int], committed: dict[int, int]) -> None:
        self.tps = {TopicPartition(topic, p) for p in partitions}
        self.offsets, self.commits = committed, []

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.offsets.get(tp.partition)

    def assignment(self) -> set[TopicPartition]:
        return self.tps

    async def commit(self, offsets: dict) -> None:
        self.commits.append(offsets)
        self.offsets.update({tp.partition: o for tp, o in offsets.items()})


def records(samples: list[dict], first_offset: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic="samples", partition=0, offset=first_offset + i, value=orjson.dumps(s))
            for i, s in enumerate(samples)]


def stream_events(data, count: int) -> list[tuple[bytes, bytes]]:
    """What a replay producer sends: (key, value) per event, one a second from T0_MS."""
    return [encode(e, T0_MS + 1000 * i) for i, e in enumerate(dataset_events(data))][:count]


def event_records(messages: list[tuple[bytes | None, bytes]], first_offset: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic="events", partition=0, offset=first_offset + i, key=key, value=value,
                            timestamp=T0_MS + 1000 * (first_offset + i))
            for i, (key, value) in enumerate(messages)]


async def started(settings: StreamSettings, topic: str) -> tuple[Collector, FakeConsumer]:
    collector = Collector(settings)
    collector._consumer = consumer = FakeConsumer(topic, [0], {})
    await collector.remember([TopicPartition(topic, 0)])
    return collector, consumer


async def test_a_crash_between_writing_and_committing_duplicates_nothing(tmp_path, samples):
    settings = StreamSettings.load({}, samples_topic="samples", store_dir=str(tmp_path),
                                   collector_dedupe_ids=10, samples_source="worker")
    stream = records(samples[:300])
    stream += records(samples[250:260], first_offset=300)  # the worker's redelivery: same ids, new offsets
    stream.append(SimpleNamespace(topic="samples", partition=0, offset=310, value=b"{not a sample"))
    crashed = Collector(settings)
    crashed._consumer = FakeConsumer("samples", [0], {})
    await crashed.remember([TopicPartition("samples", 0)])
    crashed._write(0, stream[:200])  # durable, then killed before the commit: offset 0 is still committed
    restarted = Collector(settings)
    restarted._consumer = consumer = FakeConsumer("samples", [0], {})
    await restarted.remember([TopicPartition("samples", 0)])
    restarted._buffer = {0: stream}  # everything from the committed offset again
    await restarted.flush()
    ids = stored_ids(TrainingStore(tmp_path))
    assert Counter(ids) == Counter(s["event_id"] for s in samples[:300])  # each exactly once
    assert restarted.stats.duplicates == 210 and restarted.stats.invalid == 1
    assert consumer.offsets == {0: 311}  # committed only after the files


def test_samples_labelled_from_the_events_hold_what_the_workers_samples_do(small_synthetic, tmp_path):
    """The retrain reads events out of the store: from the events themselves it gets the same ones,
    with the same fields, as from the worker's samples of the same stream."""
    settings = StreamSettings.load({}, store_dir=str(tmp_path))
    collector = Collector(settings)
    assert collector.topic == settings.events_topic  # the default source
    rows = [collector._label_event(r, T0_MS) for r in event_records(stream_events(small_synthetic, 2000))]
    from_events = events_from_samples(pa.Table.from_pylist(rows, SCHEMA))
    from_samples = events_of(labelled_samples(small_synthetic)[:2000 - small_synthetic.n_users])
    order = np.argsort(from_events.event_ids)
    sample_order = np.argsort(from_samples.event_ids)
    shared = np.isin(from_events.event_ids[order], from_samples.event_ids)
    assert shared.mean() > 0.9  # the samples stop a little earlier: they start only at a user's 2nd event
    for name in ("event_ids", "users", "items", "behaviours", "timestamps"):
        ours = getattr(from_events, name)[order][shared]
        theirs = getattr(from_samples, name)[sample_order][np.isin(from_samples.event_ids[sample_order],
                                                                   from_events.event_ids)]
        assert list(ours) == list(theirs), name
    for name, by_item in from_samples.item_fields.items():
        assert all(from_events.item_fields[name][item] == values for item, values in by_item.items())
    assert all(row["window"] == [] for row in rows)


async def test_events_are_labelled_with_the_workers_rules_each_once(small_synthetic, tmp_path):
    settings = StreamSettings.load({}, store_dir=str(tmp_path), collector_dedupe_ids=10)
    messages = stream_events(small_synthetic, 300)
    wrong_key = (b"someone-else", messages[5][1])  # the worker re-publishes it under its user id
    stream = event_records([*messages, wrong_key, (b"u1", b"{broken"), (b"u1", b"")])
    stream += event_records(messages[250:260], first_offset=len(stream))  # a producer's retries
    crashed, _ = await started(settings, "events")
    crashed._write(0, stream[:200])  # durable, then killed before the commit
    restarted, consumer = await started(settings, "events")
    restarted._buffer = {0: stream}
    await restarted.flush()
    ids = stored_ids(TrainingStore(tmp_path))
    assert Counter(ids) == Counter(orjson.loads(v)["event_id"] for _, v in messages)  # each exactly once
    assert (restarted.stats.duplicates, restarted.stats.invalid, restarted.stats.rekeyed) == (210, 2, 1)
    assert consumer.offsets == {0: len(stream)}
    future = (messages[0][0], orjson.dumps({**orjson.loads(messages[0][1]), "event_id": "late",
                                            "timestamp": T0_MS + settings.max_clock_skew_ms + 1}))
    assert restarted._label_event(event_records([future])[0], T0_MS * 2) is None  # by the record's time


def test_an_unknown_samples_source_is_refused():
    with pytest.raises(ConfigError, match="AMSRM_SAMPLES_SOURCE"):
        StreamSettings.load({"AMSRM_SAMPLES_SOURCE": "Worker"})


def test_collector_killed_mid_stream_keeps_every_sample_once(broker, tmp_path, samples):
    group = f"collector-{uuid.uuid4().hex[:6]}"
    settings = new_settings(broker, tmp_path, tmp_path, output_partitions=2, collector_group=group,
                            store_dir=str(tmp_path / "store"), collector_flush_rows=40, collector_flush_s=0.2,
                            samples_source="worker", **FAST_FAILOVER)
    messages = [(s["user_id"].encode(), orjson.dumps(s)) for s in samples]
    messages += messages[700:760]  # redelivered by an at-least-once worker: same event ids, later offsets
    kill_and_restart(settings.replace(events_topic=settings.samples_topic), settings, tmp_path, messages,
                     Counter(s["event_id"] for s in samples))


def test_collector_of_events_killed_mid_stream_keeps_every_valid_event_once(broker, tmp_path,
                                                                            small_synthetic):
    group = f"collector-{uuid.uuid4().hex[:6]}"
    settings = new_settings(broker, tmp_path, tmp_path, collector_group=group, samples_source="events",
                            store_dir=str(tmp_path / "store"), collector_flush_rows=40, collector_flush_s=0.2,
                            **FAST_FAILOVER)
    now = time.time_ns() // 1_000_000
    events = [encode(e, now - 1000 * (1500 - i)) for i, e in enumerate(dataset_events(small_synthetic))]
    events = events[:1500]
    messages = [*events[:800], (b"not-the-user", events[3][1]), (events[4][0], b"{not json"),
                *events[700:760], *events[800:]]  # a mis-keyed event, a bad one, a producer's retries
    kill_and_restart(settings, settings, tmp_path, messages,
                     Counter(orjson.loads(value)["event_id"] for _, value in events))


def kill_and_restart(to_input: StreamSettings, settings: StreamSettings, tmp_path, messages: list,
                     expected: Counter) -> None:
    """Produce ``messages`` to ``to_input``'s events topic, SIGKILL the collector mid-stream, restart it:
    the store must hold exactly ``expected``."""
    store = TrainingStore(settings.store_dir)
    first = CollectorProcess(settings, tmp_path / "collector-0.log").start()
    try:
        first.wait_ready(TIMEOUT_S)
        produce(to_input, messages[:900])
        wait_for(lambda: len(stored_ids(store)) >= 200)
    finally:
        first.kill()  # SIGKILL: no flush, no commit, maybe half a file
    killed_at = len(stored_ids(store))
    produce(to_input, messages[900:])
    with CollectorProcess(settings, tmp_path / "collector-1.log") as second:
        second.wait_ready(TIMEOUT_S)
        wait_for(lambda: set(stored_ids(store)) >= set(expected))
    ids = stored_ids(store)
    assert Counter(ids) == expected, f"killed after {killed_at} rows"
    assert 0 < killed_at < len(expected)
    assert "collector stopped" in second.log_text()  # the second one stopped gracefully


def wait_for(condition, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)

