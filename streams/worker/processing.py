"""What the scoring agent does with one micro-batch of raw events.

Per event, in partition order: validate (bad → dead letter with a reason), update
the user's window (for an event redelivered after a crash, whose offset is not newer
than the window's, the window as it was before it, plus it), queue a labelled sample
(window before + this item).
Then one forward pass over every event's window through the shared Scorer, and one
recommendation per valid event.  Nothing valid is dropped: an event keyed by
something other than its user id is re-published with the right key (the Faust
repartition idiom) instead of being scored on the wrong partition, and a scoring
failure dead-letters only the windows that fail on their own.

Faust ties table reads and writes to the *current event* (it picks the partition's
RocksDB and changelog partition from it), and ``take_events`` leaves that set to
the last event buffered, which may be of another partition.  ``faust_ext.current_event`` sets it
to the event being handled: without it, users of different partitions in one
micro-batch would be written to the wrong changelog partition.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import msgspec
from faust.types import EventT

from amsrm.messages import DETAIL_HEADER as DETAIL_HEADER  # the header names, re-exported
from amsrm.messages import REASON_HEADER as REASON_HEADER
from amsrm.messages import SOURCE_HEADER as SOURCE_HEADER
from amsrm.messages import WORKER_HEADER as WORKER_HEADER
from amsrm.messages import (
    BehaviourEvent,
    DeadLetterHeaders,
    LabelledSample,
    Recommendation,
    WorkerHeaders,
    encode,
)
from amsrm.settings import StreamSettings
from amsrm_core.scoring import Ranked, Scorer, Window
from streams.faust_ext import current_event, send_raw, transactional_id
from streams.ops.metrics import BatchObserver
from streams.worker.scoring_process import ProcessScorer, ScoringUnavailable
from streams.worker.state import UserWindow
from streams.worker.validation import Limits, Rejected, parse_event

log = logging.getLogger(__name__)
T = TypeVar("T")


class Sendable(Protocol):
    async def send(self, *, key: bytes | None = None, value: bytes | None = None,
                   headers: Any = None, source: EventT | None = None) -> Any: ...


class ProducerSink:
    """Encoded bytes straight to the app's producer: what ``topic.send`` does, minus its per-message cost.

    ``topic.send`` builds a FutureMessage, serializes through the topic's codecs and
    attaches callbacks for every message; the worker already has the bytes.  ``send``
    returns as soon as the message is in the producer's buffer (it does not wait for
    the broker), which is all at-least-once needs: Faust flushes the producer before
    it commits an offset, and the pipeline releases an event only after this returns.
    Under exactly-once the message joins the transaction of ``source``'s partition, which
    commits it together with that partition's offsets and window changes.
    """

    def __init__(self, topic: Any) -> None:
        self.topic, self.app = topic, topic.app
        self.name = topic.get_topic_name()

    async def send(self, *, key: bytes | None = None, value: bytes | None = None,
                   headers: Any = None, source: EventT | None = None) -> Any:
        transaction = None
        if self.app.in_transaction:
            if source is None:
                raise ValueError("under exactly_once every output names its source event")
            transaction = transactional_id(self.app, source.message)
        return await send_raw(self.app.producer, self.name, key, value, headers, transaction)


@dataclass
class Outputs:
    """Where the processor publishes (encoded bytes): ProducerSinks in a worker, mocks in unit tests."""

    recommendations: Sendable
    samples: Sendable
    dead_letters: Sendable
    events: Sendable  # for re-keying events that arrived under the wrong key


@dataclass
class Counters:
    events: int = 0
    recommendations: int = 0
    fallbacks: int = 0
    dead_letters: int = 0
    rekeyed: int = 0
    redelivered: int = 0
    batches: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    prepare_s: float = 0.0  # validating and updating windows (event loop)
    score_s: float = 0.0  # waiting for the scorer (child process or thread), summed over batches
    score_wait_s: float = 0.0  # finish() awaiting the scores, per-window retries included
    publish_s: float = 0.0  # handing outputs to the producer (event loop)


@dataclass
class _Scored:
    """One valid event and the windows around it."""

    event: EventT
    record: BehaviourEvent
    before: UserWindow
    after: UserWindow


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class BatchProcessor:
    def __init__(self, settings: StreamSettings, scorer: Scorer | ProcessScorer,
                 table: MutableMapping[bytes, bytes], outputs: Outputs,
                 committed: Callable[[Any], int | None] = lambda message: None) -> None:
        """``committed(message)``: its partition's committed offset, from which a crash would
        redeliver (the windows keep the history that needs: streams.worker.state)."""
        self.settings, self.scorer, self.table, self.outputs = settings, scorer, table, outputs
        self.committed = committed
        self.window_length = settings.window_length or scorer.max_len
        self.limits = Limits.of(settings)
        self.publish_samples = settings.worker_publishes_samples
        self.counters = Counters()
        self.observer = BatchObserver()  # metrics hooks (streams.worker.ops sets the real one)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._worker_headers = WorkerHeaders(self.worker).kafka_headers()

    async def process(self, events: Sequence[EventT]) -> None:
        """One micro-batch end to end (the pipeline runs the two halves overlapped)."""
        await self.finish(await self.prepare(events))

    async def prepare(self, events: Sequence[EventT]) -> list[_Scored]:
        """In input order: validate, dead-letter, update windows.  Must run batch after batch."""
        started = time.perf_counter()
        self.counters.batches += 1
        self.observer.batch_read(len(events))
        scored = await self._update_windows(events)
        self.counters.prepare_s += time.perf_counter() - started
        return scored

    async def finish(self, scored: list[_Scored]) -> None:
        """Score the prepared windows (off the event loop, which keeps reading) and publish."""
        if not scored:
            return
        windows = [Window(s.record.user_id, s.after.recent(self.window_length).scoring_events())
                   for s in scored]
        started = time.perf_counter()
        ranked = await self._recommend(windows)
        scored_at = time.perf_counter()
        self.observer.scored(len(windows), scored_at - started)
        for s, r in zip(scored, ranked, strict=True):
            if r is None:
                await self.dead_letter(s.event, Rejected("scoring_error", "the scorer failed on this window"))
            else:
                await self._guarded(s.event, partial(self._publish, s, r))
        self.counters.score_wait_s += scored_at - started
        self.counters.publish_s += time.perf_counter() - scored_at

    async def _update_windows(self, events: Sequence[EventT]) -> list[_Scored]:
        scored: list[_Scored] = []
        latest: dict[bytes, tuple[EventT, UserWindow]] = {}  # this batch's writes, one per user
        clock = now_ms()
        for event in events:
            self.counters.events += 1
            admitted = await self._guarded(event, partial(self._admit, event, latest, clock))
            if admitted is not None:
                scored.append(admitted)
        for key, (event, window) in latest.items():
            with current_event(event):
                self.table[key] = window.to_bytes()
        return scored

    async def _admit(self, event: EventT, latest: dict[bytes, tuple[EventT, UserWindow]],
                     clock: int) -> _Scored | None:
        """Validate one event and extend its user's window (in ``latest``; written after the batch)."""
        message = event.message
        record = parse_event(message.value, self.limits, clock)
        if isinstance(record, Rejected):
            await self.dead_letter(event, record)
            return None
        key = record.user_id.encode()
        if message.key != key:
            self.counters.rekeyed += 1
            await self.outputs.events.send(key=key, value=message.value, headers=own_headers(message),
                                           source=event)
            return None
        if key in latest:
            window = latest[key][1]
        else:
            with current_event(event):
                window = UserWindow.from_bytes(self.table.get(key))
        before = window
        if message.offset <= window.last_offset:  # redelivered after a crash: already in the window
            self.counters.redelivered += 1
            before = window.before(message.offset)
        after = before.append(record, message.offset, self.window_length, self.committed(message))
        # written again even when redelivered: the change it made before the crash may never
        # have reached the changelog (or, under exactly-once, belonged to an aborted transaction)
        latest[key] = (event, after)
        return _Scored(event, record, before, after)

    async def _guarded(self, event: EventT, step: Callable[[], Awaitable[T]]) -> T | None:
        """``step`` for one event, tried up to ``poison_attempts`` times; an event that raises on every
        try is dead-lettered (processing_error) so that one poison event cannot sink its batch.

        What is not the event's fault is re-raised, leaving the batch unacked: no scorer at all, and
        a dead letter that cannot be sent (the producer itself is failing)."""
        error: Exception | None = None
        for attempt in range(1, max(self.settings.poison_attempts, 1) + 1):
            try:
                return await step()
            except ScoringUnavailable:
                raise
            except Exception as e:  # the event's own failure, as far as can be told
                error = e
                log.warning("handling %s/%d/%d failed (try %d of %d): %r", event.message.topic,
                            event.message.partition, event.message.offset, attempt,
                            self.settings.poison_attempts, e)
        await self.dead_letter(event, Rejected("processing_error", f"{type(error).__name__}: {error}"[:500]))
        return None

    async def _recommend(self, windows: list[Window]) -> list[Ranked | None]:
        """One batched pass; if it fails, each window alone, so one bad window cannot sink the rest."""
        try:
            return list(await self._score(windows))
        except ScoringUnavailable:
            raise  # no scorer at all: the batch must be redelivered, not dead-lettered
        except Exception:
            log.exception("scoring a batch of %d windows failed; retrying one by one", len(windows))
        out: list[Ranked | None] = []
        for window in windows:
            try:
                out.extend(await self._score([window]))
            except ScoringUnavailable:
                raise
            except Exception:
                log.exception("scoring the window of user %r failed", window.user_id)
                out.append(None)
        return out

    async def _score(self, windows: list[Window]) -> list[Ranked]:
        """In the scorer's child process, or in a thread; either way the event loop reads on meanwhile."""
        started = time.perf_counter()
        try:
            return await self.scorer.recommend_async(windows)
        finally:
            self.counters.score_s += time.perf_counter() - started

    async def _publish(self, s: _Scored, ranked: Ranked) -> None:
        """Encode once through the message models (amsrm.messages) and hand the bytes to the producer."""
        record, key = s.record, s.event.message.key
        recommendation = Recommendation(
            user_id=record.user_id, event_id=record.event_id, items=ranked.items, scores=ranked.scores,
            model_version=self.scorer.version, event_time_ms=record.timestamp, publish_time_ms=now_ms(),
            fallback=ranked.fallback)
        await self.outputs.recommendations.send(key=key, value=encode(recommendation),
                                                headers=self._worker_headers, source=s.event)
        self.counters.recommendations += 1
        self.observer.published(record.timestamp, recommendation.publish_time_ms)
        self.counters.fallbacks += ranked.fallback is not None
        if self.publish_samples and len(s.before):
            sample = LabelledSample(
                user_id=record.user_id, event_id=record.event_id,
                window=s.before.recent(self.window_length).public(),
                user_fields=s.before.user_fields, next_item_id=record.item_id,
                next_behaviour=record.behaviour, event_time_ms=record.timestamp,
                next_item_fields=record.item_fields)
            await self.outputs.samples.send(key=key, value=encode(sample), source=s.event)

    async def dead_letter(self, event: EventT, rejected: Rejected) -> None:
        """The raw bytes, key and headers unchanged (key and value cut to prefixes when they would
        not fit in one request: ``truncated`` says so); why and where from in headers of our own,
        which replace any of the same name the message carried."""
        message = event.message
        self.counters.dead_letters += 1
        self.counters.reasons[rejected.reason] = self.counters.reasons.get(rejected.reason, 0) + 1
        key, value = message.key, message.value or b""
        carried = [(n, v) for n, v in own_headers(message) if n not in DEAD_LETTER_HEADER_NAMES]
        fitted_key, fitted_value, fitted_headers = fit_dead_letter(key, value, carried,
                                                                   self.settings.producer_max_request_size)
        if len(fitted_headers) != len(carried):  # the original keeps them at its source
            log.warning("dead letter of %s/%s/%s without the event's headers: they would not fit a request",
                        message.topic, message.partition, message.offset)
        headers = DeadLetterHeaders.of(rejected.reason, rejected.detail, message.topic, message.partition,
                                       message.offset)
        if (fitted_key, fitted_value) != (key, value):
            headers = msgspec.structs.replace(headers, truncated=f"key={len(key or b'')} value={len(value)}")
        log.debug("dead letter %s: %s (%s)", headers.source, rejected.reason, rejected.detail)
        await self.outputs.dead_letters.send(key=fitted_key, value=fitted_value,
                                             headers=fitted_headers + headers.kafka_headers(), source=event)


DEAD_LETTER_HEADER_NAMES = frozenset(DeadLetterHeaders.__struct_encode_fields__)
Headers = list[tuple[str, bytes]]  # Kafka headers: (name, value) pairs


def own_headers(message: Any) -> Headers:
    """A consumed message's Kafka headers as (name, bytes) pairs (Faust hands a sequence or a
    mapping, or None): what a re-keyed event and a dead letter carry on, so nothing of it is lost."""
    headers = message.headers or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), bytes(value or b"")) for name, value in pairs]


DEAD_LETTER_HEADROOM = 4096  # record and header overhead left free in a request (headers are < 1 KiB)
DEAD_LETTER_MAX_KEY = 1024  # a longer key is not a user id: keep its prefix


def fit_dead_letter(key: bytes | None, value: bytes, carried: Headers, max_request_size: int
                    ) -> tuple[bytes | None, bytes, Headers]:
    """Key, value and the event's own headers, cut so that the dead letter fits in one producer
    request: the key to a prefix, the headers dropped whole if they would take over half of it,
    the value to what room is left."""
    if key is not None and len(key) > DEAD_LETTER_MAX_KEY:
        key = key[:DEAD_LETTER_MAX_KEY]
    carried_bytes = sum(len(n) + len(v) for n, v in carried)
    if carried_bytes > max_request_size // 2:
        carried, carried_bytes = [], 0
    room = max_request_size - DEAD_LETTER_HEADROOM - len(key or b"") - carried_bytes
    return key, value[:max(room, 0)], carried
