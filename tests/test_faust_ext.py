"""streams.faust_ext: refuses faust-streaming / mode / aiokafka versions its private-API uses were not tested
with, and no other module uses those private names; the seek that re-reads what Faust skipped."""

import asyncio
import uuid

import pytest

from streams import faust_ext
from streams.faust_ext import UntestedVersion, check_versions

TESTED_NOW = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}


def test_the_installed_versions_pass():
    check_versions()  # what import already did; fails if pyproject's pins and TESTED drift apart


@pytest.mark.parametrize(("package", "found"), [("faust-streaming", "0.16.0"), ("faust-streaming", "0.14.9"),
                                                ("aiokafka", "0.15.0"), ("mode-streaming", "1.0")])
def test_an_untested_version_is_refused_with_its_name(monkeypatch, package, found):
    monkeypatch.delenv(faust_ext.OVERRIDE_ENV, raising=False)
    with pytest.raises(UntestedVersion, match=f"{package} {found}"):
        check_versions({**TESTED_NOW, package: found})


def test_the_override_lets_an_untested_version_through(monkeypatch):
    monkeypatch.setenv(faust_ext.OVERRIDE_ENV, "1")
    check_versions({**TESTED_NOW, "faust-streaming": "0.16.0"})


def test_no_module_outside_faust_ext_touches_the_private_names_it_wraps():
    from pathlib import Path

    wrapped = ("._current_event", "._fetch_max_wait_ms", "buffer.max_messages", "._dbs", "._stopped",
               "._crashed", "_create_worker_consumer", "_new_consumer_thread", "._unacked_messages",
               "._waiting_for_ack", "ack_lock", "._committed_offset")
    root = Path(__file__).resolve().parents[1]
    packages = ("amsrm", "amsrm_core", "streams", "producers")
    offenders = [f"{path.relative_to(root)}: {name}" for package in packages
                 for path in (root / package).rglob("*.py") if path.name != "faust_ext.py"
                 for name in wrapped if name in path.read_text()]
    assert offenders == []


async def test_partitions_the_group_never_committed_are_read_again_from_the_start(broker):
    """What Faust's seek after recovery relies on: messages its streams skipped while recovering
    are read again.  aiokafka's own seek_to_committed leaves an uncommitted partition where the
    fetcher got to (shown first); seek_every_partition moves it back to the start."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"seek-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=topic,
                                enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=4)
    await consumer.start()
    try:
        offsets: list[int] = []
        while len(offsets) < 4:
            batch = await consumer.getmany(timeout_ms=1000, max_records=4)
            offsets += [m.offset for records in batch.values() for m in records]
        tp = TopicPartition(topic, 0)  # the embedded broker auto-creates the topic with 4 partitions
        await consumer.seek_to_committed()
        assert await consumer.position(tp) == 4  # aiokafka: left where the fetcher was
        await faust_ext.seek_every_partition(consumer, "earliest")
        assert await consumer.position(tp) == 0
    finally:
        await consumer.stop()


@pytest.fixture
def bare_consumer(monkeypatch):
    """Faust's consumer with this module's transport, never started; only the topic "events" is acked."""
    import faust

    app = faust.App(f"t-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                    broker_consumer=faust_ext.consumer_urls("kafka://127.0.0.1:1", 10, True))
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: topic == "events")
    consumer = app.consumer
    consumer._active_partitions = set()
    yield consumer
    consumer._thread.thread_loop.close()  # the consumer thread's own loop, never run


def events_message(offset: int):
    from faust.types import TP
    from faust.types.tuples import ConsumerMessage

    return ConsumerMessage("events", 0, offset, 0.0, 0, [], b"k", b"v", None, tp=TP("events", 0))


def test_an_ack_moves_the_committed_offset_only_for_messages_the_agent_finished(bare_consumer):
    """Faust acks the messages its streams skip (flow paused, old generation) as if processed: a
    commit then passed them.  Only a message marked finished counts; a skipped one is let go."""
    consumer = bare_consumer
    done, skipped, later = events_message(0), events_message(1), events_message(2)
    for m in (done, skipped, later):
        consumer.track_message(m)
    faust_ext.mark_finished(done)
    faust_ext.mark_finished(later)
    assert consumer.ack(done) and not consumer.ack(skipped) and consumer.ack(later)
    assert consumer._new_offset(done.tp) == 1  # stops before the skipped message
    assert not consumer._unacked_messages  # and nothing waits for it (a rebalance would hang)
    assert consumer.unfinished_released == 1


async def test_stream_partitions_resume_only_once_seeked_to_their_committed_offsets(bare_consumer,
                                                                                    monkeypatch):
    """Faust resumes the stream partitions, then seeks them: what the fetcher hands out in between
    was read again after the seek, and its offsets counted as a gap (committed, never processed)."""
    from faust.transport.consumer import Consumer as FaustConsumer
    from faust.types import TP

    consumer = bare_consumer
    active_during_seek: list[set] = []

    async def seek(self) -> None:
        active_during_seek.append(set(self._get_active_partitions()))

    monkeypatch.setattr(FaustConsumer, "perform_seek", seek)
    events, changelog = TP("events", 0), TP("changelog", 0)
    consumer.resume_partitions({events, changelog})
    assert consumer._get_active_partitions() == {changelog}
    await consumer.perform_seek()
    assert active_during_seek == [{changelog}]
    assert consumer._get_active_partitions() == {events, changelog}


async def test_a_partition_faust_pauses_is_paused_in_aiokafka_so_no_fetch_moves_it(bare_consumer, broker,
                                                                                   monkeypatch):
    """Faust's pause only filters what it hands on: aiokafka went on fetching the partition, a fetch
    that drained it moved its position, and Faust dropped the records (a worker joining mid-stream
    committed past them).  Mirrored, a paused partition's position stays where it was, even for
    aiokafka's "every partition" fetch (an empty set), and the resume reads from there."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"pause-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for i in range(6):
            for partition in (0, 1):
                await producer.send_and_wait(topic, str(i).encode(), partition=partition)
    finally:
        await producer.stop()
    paused, running = TopicPartition(topic, 0), TopicPartition(topic, 1)
    aio = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                           auto_offset_reset="earliest")
    await aio.start()
    try:
        aio.assign([paused, running])
        with monkeypatch.context() as patch:  # undone before the fixture closes the thread's own loop
            patch.setattr(bare_consumer._thread, "_consumer", aio)
            patch.setattr(bare_consumer._thread, "thread_loop", asyncio.get_running_loop())  # aiokafka's here
            await paused_partition_stays_put(bare_consumer, aio, paused, running)
    finally:
        await aio.stop()


async def paused_partition_stays_put(consumer, aio, paused, running) -> None:
    loop = asyncio.get_running_loop()
    consumer.pause_partitions({paused})
    await asyncio.sleep(0)  # the mirrored pause runs on aiokafka's loop
    drained: dict = {}
    deadline = loop.time() + 10
    while sum(len(r) for r in drained.values()) < 6 and loop.time() < deadline:
        for tp, records in (await aio._fetcher.fetched_records(set(), timeout=1.0)).items():
            drained.setdefault(tp, []).extend(records)
    assert [r.offset for r in drained[running]] == list(range(6)) and paused not in drained
    assert await aio.position(paused) == 0
    consumer.resume_partitions({paused})  # not a stream topic here: resumed at once
    await asyncio.sleep(0)
    batch = await aio.getmany(paused, timeout_ms=5000)
    assert [r.offset for r in batch[paused]][:1] == [0]


async def test_a_fetch_gets_a_snapshot_of_the_active_partitions_and_never_an_empty_set(bare_consumer,
                                                                                       monkeypatch):
    """aiokafka reads an empty set as "every partition", and Faust's live set can empty while a
    fetch waits: each fetch gets its own copy, and none at all when it is empty."""
    from faust.types import TP

    asked: list = []

    async def getmany(active_partitions, timeout):
        asked.append(active_partitions)
        return {}

    monkeypatch.setattr(bare_consumer._thread, "getmany", getmany)
    live = {TP("events", 0)}
    await bare_consumer._getmany(live, 1.0)
    assert asked == [live] and asked[0] is not live
    assert await bare_consumer._getmany(set(), 1.0) == {} and len(asked) == 1
