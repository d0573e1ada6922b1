"""Every use of a private Faust, mode or aiokafka API in the project, and the versions it was tested with.

Nothing else in the project touches a name with a leading underscore of these libraries, so an
upgrade is checked here (the version check below runs at import and refuses untested versions;
``AMSRM_UNTESTED_FAUST=1`` overrides it for someone testing a new release).  Each use says why the
public API does not do:

- ``Transport`` / ``consumer_urls``: Faust's aiokafka transport with two changes.  The consumer's
  fetch wait (Faust hard-codes ``fetch_max_wait_ms=1500``; the embedded broker holds a fetch for
  much of that time even when data is there) is set through aiokafka's ``_fetch_max_wait_ms``
  before the consumer starts, and the consumer's ``wait_first`` (mode's ``Service.wait_first``,
  reading mode's ``_stopped`` / ``_crashed`` flags) hands each fetched message over eagerly:

  Faust delivers each fetched message with ``wait_first(deliver(message), suspend_flow.wait())``:
  four tasks, an ``asyncio.wait`` and three cancellations per message, and at least one turn of the
  event loop before the next message can go.  Delivery almost never has to wait (it decodes and
  puts into a queue with room), so ``wait_first_eager`` runs the first step of the first coroutine
  at once and, if it finishes there, returns without any task; only when it has to wait does it
  fall back to the ordinary ``wait_first``, so a stop, crash or flow suspension still wins over a
  blocked delivery exactly as in Faust.  (Throughput with and without it: docs/BENCHMARKS.md.)
- ``current_event``: table writes outside ``async for event in stream`` must know their event
  (its partition and offset) so that Faust writes the changelog message and tracks the offset;
  Faust keeps it in the context variable ``faust.streams._current_event``.
- ``send_raw``: ``Producer.send`` positionally (topic, key, value, partition, timestamp, headers):
  the worker's outputs are already bytes, and ``Topic.send`` would build a ``FutureMessage`` and
  callbacks per message.  Under exactly-once it names the transactional producer Faust opened for
  the source event's partition (``transactional_id``; Faust's own ``TransactionManager.send`` picks
  the producer by the *output* topic's partition, which is only right for co-partitioned topics).
- ``Consumer._commit_tps`` (every offset commit passes through it), for two guarantees Faust does
  not give: (1) the producer buffer, which holds the table's changelog writes, is drained
  completely first (Faust's ``flush`` gives up after 0.1 s without a message sent, so a commit
  could pass events whose window changes were still buffered); (2) under exactly-once the commit
  waits for ``batch_gate``, which the agent holds from a micro-batch's first output to its acks, so
  a transaction never commits a half-processed batch's outputs without its offsets.
- ``FetchTunedConsumerThread.seek_to_committed`` (Faust calls it after every assignment, once the
  tables are recovered): aiokafka's ``seek_to_committed`` moves only partitions with a committed
  offset above 0, and leaves the others wherever the fetcher got to.  During recovery and
  rebalances Faust's streams *skip* the messages they are handed (flow control off, or an old
  generation) and rely on that seek to read them again, so on a partition the group had never
  committed the skipped messages were never read, and Faust's first commit there (no committed
  offset to compare with) passed them: events lost with their offsets committed.  Those
  partitions are now moved to where the group starts without a commit (``auto_offset_reset``).
- ``Consumer.ack`` / ``mark_finished``: Faust acks every message its streams *skip* (handed out while
  the flow is paused for a rebalance, or from an old generation) as if processed, and relies on a
  later seek to read them again; but a commit can come first (Faust commits while it waits for
  the agents during a rebalance), and then it passed events that produced nothing.  Here only a
  message the agent marked finished (its outputs are in the producer, or it was dead-lettered)
  moves the committed offset; any other final ack lets Faust stop waiting for the message without
  counting its offset, so no commit passes it and it is read again.
- ``Consumer.resume_partitions`` / ``perform_seek``: after recovery Faust resumes the stream
  partitions and only then seeks them to their committed offsets; what the fetcher handed out in
  between was processed, then read again after the seek (the repeats exactly-once showed), and
  Faust's gap tracking (``_add_gap``, meant for offsets without data such as transaction markers)
  counted the offsets between the seek position and a message fetched before it as done: committed,
  never processed.  Stream partitions are now resumed only once that seek has run.
- ``Consumer.pause_partitions`` / ``_getmany`` / ``_thread._consumer``: Faust "pauses" a partition
  only in its own set of active partitions; aiokafka keeps fetching it, and a fetch hands over (and
  moves the position past) whatever it drained, which Faust then drops for a partition it does not
  count as active. Faust also passes that live set to aiokafka's long-polling fetch, and aiokafka
  reads an empty set as "every partition". Traced on Kafka with a worker joining mid-stream:
  recovery paused the changelog partitions (the set became empty) while the stream partitions were
  being sought to their committed offsets; the waiting fetch drained them from there, Faust dropped
  the records, the next fetch started past them and the gap tracking committed them unprocessed.
  Every pause and resume is now mirrored into aiokafka's own ``pause`` / ``resume`` (a paused
  partition is not fetched and its buffered records are discarded without moving the position), and
  each fetch gets a snapshot of the set, never an empty one.
- ``committed_offset``: the consumer's ``_committed_offset``, where a crash would redeliver from:
  the windows keep the history those redelivered events need (streams.worker.state).
- ``ensure_buffer_room``: the producer buffer's ``max_messages`` (100), above which Faust stops
  handing events to agents; a micro-batch writes up to ``batch_max`` windows at once.
- ``open_databases``: the RocksDB store's ``_dbs`` (partition → database), for a key-count metric.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from importlib.metadata import version
from typing import Any

import aiokafka
from faust import streams as faust_streams
from faust.transport.consumer import TopicPartitionGroup, TransactionManager
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock
from mode.services import WaitResults
from mode.utils.futures import notify

from amsrm.errors import AmsrmError

# What these uses were tested with; pyproject.toml pins the same ranges.
TESTED = {"faust-streaming": ((0, 15), (0, 16)), "mode-streaming": ((0, 7), (0, 8)),
          "aiokafka": ((0, 14), (0, 15))}  # package: (lowest tested, first untested) major.minor
OVERRIDE_ENV = "AMSRM_UNTESTED_FAUST"
SCHEME = "amsrm-kafka"


class UntestedVersion(AmsrmError):
    """An installed faust-streaming / mode / aiokafka version these private-API uses were not tested with."""


def _major_minor(text: str) -> tuple[int, int]:
    major, minor, *_ = (int("".join(c for c in part if c.isdigit()) or 0) for part in [*text.split("."), "0"])
    return major, minor


def check_versions(installed: Mapping[str, str] | None = None) -> None:
    """Refuse versions outside ``TESTED`` (unless ``AMSRM_UNTESTED_FAUST=1``)."""
    if os.environ.get(OVERRIDE_ENV, "").lower() in ("1", "true", "yes"):
        return
    for package, (low, high) in TESTED.items():
        found = (installed or {}).get(package) or version(package)
        if not low <= _major_minor(found) < high:
            raise UntestedVersion(
                f"{package} {found} is untested with streams.faust_ext (tested: >={low[0]}.{low[1]},"
                f"<{high[0]}.{high[1]}); install a tested version or set {OVERRIDE_ENV}=1 to try it")


check_versions()


# --- the consumer: fetch wait and eager hand-off

class FetchTunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 1500  # set by consumer_urls from the settings

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher; the constructor took Faust's 1500
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Mapping[Any, int]:
        return await self.call_thread(seek_every_partition, self._ensure_consumer(),
                                      self.app.conf.consumer_auto_offset_reset)


async def seek_every_partition(consumer: aiokafka.AIOKafkaConsumer, reset: str) -> Mapping[Any, int]:
    """Every assigned partition to its committed offset, and those without one (or at 0) to the reset
    position (start or end of the log) instead of wherever the fetcher had got to; returns the
    committed offsets as aiokafka's ``seek_to_committed`` does."""
    committed = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if not offset or offset < 0]
    if uncommitted:
        seek = consumer.seek_to_end if reset == "latest" else consumer.seek_to_beginning
        await seek(*uncommitted)
    return committed


def set_fetch_paused(consumer: aiokafka.AIOKafkaConsumer, partitions: list[Any], paused: bool) -> None:
    """aiokafka's pause / resume for those of ``partitions`` still assigned (others raise there)."""
    assigned = consumer.assignment()
    mine = [tp for tp in partitions if tp in assigned]
    if mine:
        (consumer.pause if paused else consumer.resume)(*mine)


class Consumer(faust_aiokafka.Consumer):
    eager_dispatch = True  # set by consumer_urls from the settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held_for_seek: set[Any] = set()
        self.unfinished_released = 0  # skipped messages left for redelivery (a metric for tests and logs)

    def ack(self, message: Any) -> bool:
        """Faust's ack for messages the agent finished (and topics without acks); see the module doc."""
        if message.acked or not self.app.topics.acks_enabled_for(message.topic) or is_finished(message):
            return super().ack(message)
        return self._release_unfinished(message)

    def _release_unfinished(self, message: Any) -> bool:
        """Let Faust stop waiting for ``message`` without counting its offset as done."""
        with ack_lock:
            if message.acked:
                return False
            message.acked = True
            self._unacked_messages.discard(message)
            self.unfinished_released += 1
        notify(self._waiting_for_ack)
        return False

    def pause_partitions(self, tps: Any) -> None:
        """Pause in Faust's set and in aiokafka's fetcher alike (module doc)."""
        tpset = set(tps)
        super().pause_partitions(tpset)
        self._mirror_fetch_state(tpset, paused=True)

    def resume_partitions(self, tps: Any) -> None:
        """Changelog partitions now, stream partitions after the next ``perform_seek``."""
        tpset = set(tps)
        held = {tp for tp in tpset if self.app.topics.acks_enabled_for(tp.topic)}
        self._held_for_seek |= held
        self._resume_now(tpset - held)

    def _resume_now(self, tps: set[Any]) -> None:
        super().resume_partitions(tps)
        self._mirror_fetch_state(tps, paused=False)

    def _mirror_fetch_state(self, tps: set[Any], *, paused: bool) -> None:
        """Queue the same pause / resume on aiokafka, in its thread, in call order."""
        thread = self._thread
        consumer = getattr(thread, "_consumer", None)
        if tps and consumer is not None and not thread.thread_loop.is_closed():  # closed: stopping
            partitions = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
            thread.thread_loop.call_soon_threadsafe(set_fetch_paused, consumer, partitions, paused)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        if active_partitions is None:  # a client-only app: every partition
            return await super()._getmany(None, timeout)
        snapshot = set(active_partitions)  # a copy: aiokafka reads an empty set as "every partition"
        return await super()._getmany(snapshot, timeout) if snapshot else {}

    async def perform_seek(self) -> None:
        try:
            await super().perform_seek()
        finally:
            held, self._held_for_seek = self._held_for_seek, set()
            if held:
                self._resume_now(held)

    async def _commit_tps(self, tps: Any, start_new_transaction: bool) -> bool:
        async with batch_gate(self.app):
            await drain_buffer(self.app.producer)
            return await super()._commit_tps(tps, start_new_transaction)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if not self.eager_dispatch:
            return await super().wait_first(*coros, timeout=timeout)
        stopped = self._stopped.is_set() or self._crashed.is_set()
        return await wait_first_eager(super().wait_first, stopped, *coros, timeout=timeout)

    def _new_consumer_thread(self) -> FetchTunedConsumerThread:
        return FetchTunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def consumer_urls(broker_url: str, fetch_max_wait_ms: int, eager_dispatch: bool) -> list[str]:
    """The broker URLs with this transport's scheme (for ``faust.App(broker_consumer=...)``),
    registering the transport with Faust on first use; the broker URL setting stays ``kafka://``."""
    TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    FetchTunedConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    Consumer.eager_dispatch = eager_dispatch
    return [f"{SCHEME}://{u.strip().split('://', 1)[-1]}" for u in broker_url.split(";") if u.strip()]


class RestOf:
    """Awaitable for the rest of ``coro``, whose first step already ran and yielded ``blocked_on``.

    Re-yields ``blocked_on`` to whichever task awaits this (asyncio waits on it as it
    would have for ``coro``), then forwards every resumption and thrown exception
    (a cancellation) to ``coro`` until it returns: the semantics of ``yield from``.
    """

    __slots__ = ("blocked_on", "coro")

    def __init__(self, coro: Coroutine[Any, Any, Any], blocked_on: Any) -> None:
        self.coro, self.blocked_on = coro, blocked_on

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self.blocked_on
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                self.coro.close()
                raise
            except BaseException as exc:  # a cancellation (or anything thrown) is for coro to handle
                try:
                    pending = self.coro.throw(exc)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    pending = self.coro.send(sent)
                except StopIteration as finished:
                    return finished.value


async def wait_first_eager(wait_first: Callable[..., Awaitable[WaitResults]], stopped: bool,
                           *waitables: Any, timeout: float | None = None) -> WaitResults:
    """``wait_first(*waitables)``, but finished in place when the first is a coroutine that does not wait.

    ``stopped``: whether the service is stopping or crashed (then nothing runs eagerly).
    """
    first, others = waitables[0], waitables[1:]
    if stopped or not isinstance(first, Coroutine):
        return await wait_first(*waitables, timeout=timeout)
    try:
        blocked_on = first.send(None)
    except StopIteration as finished:
        _close(others)
        return WaitResults([first], [finished.value], False)
    except BaseException:
        _close(others)
        raise
    return await wait_first(RestOf(first, blocked_on), *others, timeout=timeout)


def _close(waitables: tuple[Any, ...]) -> None:
    """Close the coroutines the caller created for wait_first that will not be awaited now."""
    for waitable in waitables:
        if isinstance(waitable, Coroutine):
            waitable.close()


_finished: weakref.WeakSet[Any] = weakref.WeakSet()  # messages outlive their offsets' commit by little


def mark_finished(message: Any) -> None:
    """Say that the agent is done with ``message`` (its outputs are in the producer, or it was
    dead-lettered): only then may its acknowledgement move the committed offset."""
    _finished.add(message)


def is_finished(message: Any) -> bool:
    return message in _finished


# --- the producer, tables and stores

@contextmanager
def current_event(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event while touching tables outside the stream's iteration."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


async def send_raw(producer: Any, topic: str, key: bytes | None, value: bytes | None, headers: Any,
                   transactional_id: str | None = None) -> Any:
    """Put already encoded bytes into the producer (the transactional one of ``transactional_id``
    under exactly-once); returns once accumulated for sending (not acked)."""
    return await producer.send(topic, key, value, None, None, headers, transactional_id=transactional_id)


def committed_offset(app: Any, message: Any) -> int:
    """The consumer's committed offset of ``message``'s partition: where a crash would redeliver
    from (0 before the first commit, and Faust keeps 0 as None)."""
    return app.consumer._committed_offset.get(message.tp) or 0


def transactional_id(app: Any, message: Any) -> str:
    """The id of the transactional producer Faust keeps for ``message``'s source partition."""
    group = app.assignor.group_for_topic(message.topic)
    return TransactionManager.transactional_id_format.format(
        group_id=app.conf.id, tpg=TopicPartitionGroup(message.topic, message.partition, group))


_gates: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def batch_gate(app: Any) -> AbstractAsyncContextManager[Any]:
    """Held by the agent around one micro-batch and by every offset commit: under exactly-once a
    commit runs only between batches; under at-least-once it never waits."""
    if not app.in_transaction:
        return nullcontext()
    if app not in _gates:
        _gates[app] = asyncio.Lock()
    return _gates[app]


async def drain_buffer(producer: Any) -> None:
    """Wait until Faust's producer buffer is empty (its ``flush`` stops after 0.1 s without a send)."""
    while producer.buffer.size:
        await producer.buffer.flush()


def ensure_buffer_room(producer: Any, messages: int) -> None:
    """Let ``messages`` changelog messages wait in Faust's producer buffer before it stalls agents."""
    producer.buffer.max_messages = max(producer.buffer.max_messages, messages)


def open_databases(store: Any) -> Mapping[int, Any] | None:
    """Partition → open RocksDB database of a ``rocksdb://`` table store; None for other stores."""
    return getattr(store, "_dbs", None)
