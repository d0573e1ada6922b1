"""The training store and the collector: atomic files by event hour, deduplication, crash safety.

The last test kills a real collector process (SIGKILL) on the embedded broker mid-stream
and checks that after a restart the store holds every sample exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from types import SimpleNamespace

import orjson
import pyarrow.parquet as pq
import pytest
from aiokafka import TopicPartition
from test_retrain import T0_MS, labelled_samples, rows_of
from test_streams_integration import FAST_FAILOVER, TIMEOUT_S, new_settings, produce

from amsrm.settings import StreamSettings
from amsrm_core.retraining.store import HOUR_MS, SampleError, TrainingStore, hour_dir, sample_row
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


async def test_a_crash_between_writing_and_committing_duplicates_nothing(tmp_path, samples):
    settings = StreamSettings.load({}, samples_topic="samples", store_dir=str(tmp_path),
                                   collector_dedupe_ids=10)
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


def test_collector_killed_mid_stream_keeps_every_sample_once(broker, tmp_path, samples):
    group = f"collector-{uuid.uuid4().hex[:6]}"
    settings = new_settings(broker, tmp_path, tmp_path, output_partitions=2, collector_group=group,
                            store_dir=str(tmp_path / "store"), collector_flush_rows=40, collector_flush_s=0.2,
                            **FAST_FAILOVER)
    to_samples = settings.replace(events_topic=settings.samples_topic)
    messages = [(s["user_id"].encode(), orjson.dumps(s)) for s in samples]
    messages += messages[700:760]  # redelivered by an at-least-once worker: same event ids, later offsets
    store, expected = TrainingStore(settings.store_dir), Counter(s["event_id"] for s in samples)
    first = CollectorProcess(settings, tmp_path / "collector-0.log").start()
    try:
        first.wait_ready(TIMEOUT_S)
        produce(to_samples, messages[:900])
        wait_for(lambda: len(stored_ids(store)) >= 200)
    finally:
        first.kill()  # SIGKILL: no flush, no commit, maybe half a file
    killed_at = len(stored_ids(store))
    produce(to_samples, messages[900:])
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

