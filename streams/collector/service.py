"""``amsrm collect``: labelled samples into the training store, each exactly once.

Where the samples come from (``AMSRM_SAMPLES_SOURCE``):
- ``events`` (the default): the collector reads the events topic, as its own consumer group,
  and labels each event itself.  It judges every event with the worker's own rules
  (``streams.worker.validation``) and skips what the worker does not score: an invalid event (the
  worker dead-letters it) and one keyed by something other than its user id (the worker
  re-publishes it under the right key, and the collector labels that copy).  A sample is then the
  event alone, with an empty window: the retrain rebuilds each user's sequence from the events (by
  event time; it did so from the worker's samples too, whose windows it reads as events), so the
  worker publishes one message per event fewer, its largest.  Clock skew is judged against the
  record's Kafka timestamp instead of the clock of the moment, so a replay after a crash decides alike.
- ``worker``: the worker publishes one ``LabelledSample`` per event with a history, the exact window
  it scored plus the item that followed, to the samples topic, which the collector reads.

Why a kill at any moment loses and duplicates nothing:
1. Offsets are committed by hand (aiokafka, ``enable_auto_commit=False``) and only
   after the files holding every sample up to them are durable (``TrainingStore.write``:
   fsync, atomic rename): nothing is committed that is not on disk.
2. After a crash the records since the last commit are read again.  The file names
   record the source partition and offsets, so on assignment the ids of the files that
   may hold them are loaded, and the replayed samples are dropped.
3. An event id can come twice: a producer that retried, or a worker (at-least-once) that after its
   own crash publishes a sample or a re-keyed event again, under another offset, close behind the
   first.  A bounded memory of the latest ``collector_dedupe_ids`` event ids per partition (seeded
   from the newest files) drops those; the retrain's reader deduplicates once more.
A message that is not a sample is logged and skipped (and committed), never retried forever.

    amsrm collect                       # or: python -m streams.collector.service (starts faster)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from amsrm.logs import configure as configure_logging
from amsrm.settings import StreamSettings
from amsrm_core.retraining.store import SampleError, TrainingStore, event_row, sample_row
from streams.clients.subscriber import SeenEvents
from streams.worker.validation import Limits, Rejected, parse_event

log = logging.getLogger("streams.collector.service")  # also when run as __main__

READY = "collector consuming"
STATS_EVERY_S = 10.0


@dataclass
class CollectorStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0  # dropped: the event id is already in the store
    invalid: int = 0  # not a labelled sample (or an invalid event): skipped
    rekeyed: int = 0  # events under a key other than their user id: the worker re-publishes them
    files: int = 0
    commits: int = 0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.collector.flush()  # write and commit what we read while we still own it
        self.collector.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.collector.remember(assigned)


class Collector:
    def __init__(self, settings: StreamSettings, store: TrainingStore | None = None) -> None:
        self.settings = settings
        self.store = store or TrainingStore(settings.store_dir)
        self.topic = settings.collector_topic
        self.label = self._label_sample if settings.worker_publishes_samples else self._label_event
        self.limits = Limits.of(settings)
        self.stats = CollectorStats()
        self._buffer: dict[int, list[ConsumerRecord]] = {}
        self._buffered_since: float | None = None
        self._seen: dict[int, SeenEvents] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._writing = asyncio.Lock()

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The running consumer (None before ``run``): for metrics and health checks."""
        return self._consumer

    def _make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=s.collector_group, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
            isolation_level=s.isolation_level,  # no sample of an aborted transaction (exactly-once)
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000))

    async def run(self, stop: asyncio.Event) -> CollectorStats:
        """Consume until ``stop`` is set; then write and commit what is buffered."""
        consumer = self._consumer = self._make_consumer()
        consumer.subscribe([self.topic], listener=_Rebalance(self))
        await consumer.start()
        log.info("%s %s as group %s into %s", READY, self.topic, self.settings.collector_group,
                 self.store.root)
        last_report = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200,
                                                 max_records=self.settings.collector_flush_rows)
                for tp, records in batches.items():
                    self._buffer.setdefault(tp.partition, []).extend(records)
                    self._buffered_since = self._buffered_since or time.monotonic()
                if self._flush_due():
                    await self.flush()
                if time.monotonic() - last_report >= STATS_EVERY_S:
                    last_report = time.monotonic()
                    log.info("collected %s", self.stats)
            await self.flush()
        finally:
            await consumer.stop()
            log.info("collector stopped: %s", self.stats)
        return self.stats

    def _flush_due(self) -> bool:
        if self._buffered_since is None:
            return False
        rows = sum(len(r) for r in self._buffer.values())
        return rows >= self.settings.collector_flush_rows or \
            time.monotonic() - self._buffered_since >= self.settings.collector_flush_s

    async def remember(self, assigned: list[TopicPartition]) -> None:
        """Load the ids this collector may read again for each newly assigned partition."""
        assert self._consumer is not None
        for tp in assigned:
            committed = await self._consumer.committed(tp) or 0
            capacity = self.settings.collector_dedupe_ids
            ids = self.store.recent_ids(self.topic, tp.partition, committed, capacity)
            seen = SeenEvents(max(capacity, len(ids)))
            for event_id in ids:
                seen.first_time(event_id)
            self._seen[tp.partition] = seen
            log.debug("partition %d: committed %d, %d ids remembered", tp.partition, committed, len(ids))
        log.info("assigned %s partitions %s", self.topic, sorted(tp.partition for tp in assigned))

    def forget(self, revoked: list[TopicPartition]) -> None:
        """Drop the id memory of partitions given away (seeded again if they come back)."""
        for tp in revoked:
            self._seen.pop(tp.partition, None)

    async def flush(self) -> None:
        """Write the buffered samples durably, then commit the offsets they cover.

        Files are written in a thread, so heartbeats go on during a slow fsync; one flush
        writes at a time (a rebalance can flush while the loop does).  Two commits may land
        out of order; a commit that goes back only causes a replay, which is deduplicated.
        """
        offsets: dict[TopicPartition, int] = {}
        async with self._writing:
            buffer, self._buffer, self._buffered_since = self._buffer, {}, None
            owned = {tp.partition for tp in self._consumer.assignment()} if self._consumer else set(buffer)
            for partition, records in sorted(buffer.items()):
                if partition not in owned:  # revoked meanwhile: its new owner reads these again
                    continue
                await asyncio.to_thread(self._write, partition, records)
                offsets[TopicPartition(self.topic, partition)] = records[-1].offset + 1
        if offsets and self._consumer is not None:
            try:
                await self._consumer.commit(offsets)
                self.stats.commits += 1
            except KafkaError as e:  # e.g. after a rebalance: the files are durable, a replay is deduplicated
                log.warning("commit of %s failed (%s); those samples may be read again", offsets, e)

    def _write(self, partition: int, records: list[ConsumerRecord]) -> None:
        seen = self._seen.setdefault(partition, SeenEvents(self.settings.collector_dedupe_ids))
        now_ms = time.time_ns() // 1_000_000
        rows = []
        for record in records:
            self.stats.received += 1
            row = self.label(record, now_ms)
            if row is None:
                continue
            if seen.first_time(row["event_id"]):
                rows.append(row)
            else:
                self.stats.duplicates += 1
        if rows:
            files = self.store.write(rows, self.topic, partition, records[0].offset, records[-1].offset)
            self.stats.files += len(files)
            self.stats.written += len(rows)

    def _label_sample(self, record: ConsumerRecord, now_ms: int) -> dict | None:
        """A worker's ``LabelledSample`` as a store row; None (logged) for anything else."""
        try:
            return sample_row(orjson.loads(record.value or b""), record.partition, record.offset, now_ms)
        except (orjson.JSONDecodeError, SampleError) as e:
            self.stats.invalid += 1
            log.warning("skipping %s/%d/%d: %s", record.topic, record.partition, record.offset, e)
            return None

    def _label_event(self, record: ConsumerRecord, now_ms: int) -> dict | None:
        """An event as a store row, when the worker would score it under this key; else None."""
        clock = record.timestamp if record.timestamp > 0 else now_ms  # -1: a record without one
        event = parse_event(record.value, self.limits, clock)
        if isinstance(event, Rejected):  # the worker dead-letters it, with its reason
            self.stats.invalid += 1
            log.debug("skipping %s/%d/%d: %s", record.topic, record.partition, record.offset, event.reason)
            return None
        if record.key != event.user_id.encode():  # the worker re-publishes it under the right key
            self.stats.rekeyed += 1
            return None
        return event_row(event, record.partition, record.offset, now_ms)


async def collect(settings: StreamSettings, stop: asyncio.Event | None = None) -> CollectorStats:
    """Run a collector until ``stop`` is set, or until SIGINT / SIGTERM."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
            loop.add_signal_handler(sig, stop.set)
    from streams.collector.ops import serve_collector  # imports this module

    collector = Collector(settings)
    ops = serve_collector(collector)
    try:
        return await collector.run(stop)
    finally:
        ops.stop()


def main() -> None:
    settings = StreamSettings.load()
    configure_logging(settings)
    asyncio.run(collect(settings))


if __name__ == "__main__":
    main()
