"""``processing_guarantee=exactly_once`` on Apache Kafka: a worker killed (SIGKILL) mid-stream.

A reader with ``isolation.level=read_committed`` must see every event's recommendation (and dead
letter, and labelled sample) exactly once and nothing else, and no window change in the table's
changelog without the recommendation of the event that made it.  The restarted worker keeps
its local RocksDB, which may hold window changes of the aborted transaction: they must not leak
into what it publishes.
Needs Apache Kafka (the embedded broker has no transactions): skipped when AMSRM_TEST_BROKER=tansu.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from test_streams_integration import (  # noqa: F401 (checkpoint: a fixture)
    BAD,
    FAST_FAILOVER,
    MAX_LEN,
    NOW_MS,
    checkpoint,
    events_of,
    ids_cover,
    new_settings,
    produce,
    read,
    recomputed_windows,
)

from amsrm.settings import StreamSettings
from producers.events import encode
from streams.local.kafka import KafkaBroker
from streams.local.worker_process import WorkerProcess
from streams.worker.processing import REASON_HEADER, WORKER_HEADER
from streams.worker.state import UserWindow

pytestmark = pytest.mark.slow


@pytest.fixture
def kafka(broker):
    if not isinstance(broker, KafkaBroker):
        pytest.skip("exactly-once needs Apache Kafka's transactions (AMSRM_TEST_BROKER=kafka)")
    return broker


def event_ids(messages) -> list[str]:
    return [orjson.loads(m.value)["event_id"] for m in messages]


def assert_each(seen: list[str], expected: set[str]) -> list[str]:
    """Every expected id seen, nothing else; returns the ids seen more than once."""
    counts = Counter(seen)
    missing = sorted(expected - counts.keys())
    extra = sorted(counts.keys() - expected)
    assert not (missing or extra), f"{len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}"
    return sorted(e for e, n in counts.items() if n > 1)


async def group_progress(settings: StreamSettings) -> dict[int, tuple[int | None, int]]:
    """Per events partition: the worker group's committed offset and the partition's end offset."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(settings.events_topic, p) for p in range(settings.partitions)]
        committed = await admin.list_consumer_group_offsets(settings.app_id, partitions=tps)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (committed[tp].offset if tp in committed else None, ends[tp]) for tp in tps}
    finally:
        await consumer.stop()
        await admin.close()


def uncommitted(settings: StreamSettings) -> StreamSettings:
    """The same topics read as an at-least-once reader would: aborted transactions included."""
    return settings.replace(processing_guarantee="at_least_once")


def test_kill_9_mid_stream_publishes_each_output_exactly_once(kafka, checkpoint, small_synthetic,  # noqa: F811
                                                              tmp_path):
    settings = new_settings(kafka, tmp_path, checkpoint, processing_guarantee="exactly_once",
                            commit_interval_s=0.5, **FAST_FAILOVER)
    events = events_of(small_synthetic, 4000)
    first_part, second_part = events[:3200], events[3200:]
    with_bad = [encode(e, NOW_MS) for e in first_part]
    for i, (key, value, _) in enumerate(BAD):
        with_bad.insert(300 * (i + 1), (key, value))
    logs = tmp_path / "logs"
    first = WorkerProcess(settings, logs / "worker-0.log").start()
    try:
        first.wait_ready()
        produce(settings, with_bad)
        # as soon as outputs appear, committed or not: the worker is then well inside the stream
        read(uncommitted(settings), settings.recommendations_topic, lambda m: len(m) >= 300)
    finally:
        first.kill()  # SIGKILL with a transaction open: its outputs must never become visible
    with WorkerProcess(settings, logs / "worker-1.log") as second:  # same data dir: RocksDB kept
        second.wait_ready()
        produce(settings, [encode(e, NOW_MS) for e in second_part])
        expected = {e["event_id"] for e in events}
        recs = read(settings, settings.recommendations_topic, ids_cover(expected))
    # every recommendation once, nothing else; the crash did abort published outputs
    if not expected <= set(event_ids(recs)):
        print("committed vs end offsets of the events topic:", asyncio.run(group_progress(settings)))
        print("missing per output partition:", Counter(
            m.partition for m in read(uncommitted(settings), settings.recommendations_topic, lambda m: False)
            if orjson.loads(m.value)["event_id"] not in set(event_ids(recs))))
    repeats = [e for e, n in Counter(event_ids(recs)).items() if n > 1][:3]
    for m in recs:
        if orjson.loads(m.value)["event_id"] in repeats:
            print("repeated:", orjson.loads(m.value)["event_id"], dict(m.headers)[WORKER_HEADER], m.partition,
                  m.offset)
    repeated = assert_each(event_ids(recs), expected)
    assert not repeated, f"{len(repeated)} recommendations seen twice by read_committed, e.g. {repeated[:3]}"
    everything = read(uncommitted(settings), settings.recommendations_topic, lambda m: len(m) > len(recs))
    assert len(everything) > len(recs), "the kill hit no open transaction: the test proved nothing"
    dead = read(settings, settings.dead_letters_topic, lambda m: len(m) >= len(BAD))
    assert sorted(dict(m.headers)[REASON_HEADER].decode() for m in dead) == sorted(r for *_, r in BAD)
    # each labelled sample once, with the window before its event in input order
    before = recomputed_windows(events, MAX_LEN)
    with_window = {eid for eid, window in before.items() if window}
    samples = read(settings, settings.samples_topic, ids_cover(with_window))
    repeated = assert_each(event_ids(samples), with_window)
    assert not repeated, f"{len(repeated)} samples seen twice by read_committed, e.g. {repeated[:3]}"
    for m in samples:
        sample = orjson.loads(m.value)
        assert [e["item_id"] for e in sample["window"]] == before[sample["event_id"]]
    assert_changelog_matches(settings, events, set(event_ids(recs)))


def assert_changelog_matches(settings: StreamSettings, events: list[dict], recommended: set[str]) -> None:
    """Committed window changes: each one's newest event was recommended, and the last per user is
    the window recomputed from the input."""
    final: dict[str, list[str]] = defaultdict(list)
    for e in events:
        final[e["user_id"]] = [*final[e["user_id"]], e["item_id"]][-MAX_LEN:]

    def last_windows(changes) -> dict[str, list[str]]:
        return {m.key.decode(): [e.item_id for e in UserWindow.from_bytes(m.value).recent(MAX_LEN).entries]
                for m in changes}

    changes = read(settings, settings.changelog_topic, lambda m: last_windows(m) == final)
    for m in changes:
        assert UserWindow.from_bytes(m.value).entries[-1].event_id in recommended
    assert last_windows(changes) == dict(final)


def test_the_embedded_broker_refuses_exactly_once(tmp_path: Path):
    from amsrm.errors import ConfigError
    from streams.local.broker import EmbeddedBroker, engine_settings

    with pytest.raises(ConfigError, match="no transactions"):
        engine_settings(StreamSettings(processing_guarantee="exactly_once"), EmbeddedBroker())
