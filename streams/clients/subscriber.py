"""Reading the output topics: what a downstream service does with recommendations.

``amsrm subscribe`` prints recommendations as they arrive (one user, or all),
skipping duplicates by event id: the worker is at-least-once, so a consumer that
must act once per event deduplicates on the triggering event id.  ``read_until``
is the same consumer for the demo, the benchmark and the tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TextIO

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from amsrm.settings import StreamSettings


def make_consumer(settings: StreamSettings, *topics: str, from_beginning: bool = False,
                  group_id: str | None = None) -> AIOKafkaConsumer:
    """Reads committed transactions only when the worker is exactly-once (settings.isolation_level)."""
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=settings.bootstrap_servers, group_id=group_id,
        isolation_level=settings.isolation_level,
        auto_offset_reset="earliest" if from_beginning else "latest", enable_auto_commit=group_id is not None,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000))


Done = Callable[[list[ConsumerRecord]], bool]


async def read_until(settings: StreamSettings, topics: list[str], done: Done, timeout_s: float,
                     from_beginning: bool = True,
                     on_message: Callable[[ConsumerRecord], None] | None = None,
                     on_ready: Callable[[], None] | None = None) -> list[ConsumerRecord]:
    """Every message of ``topics`` until ``done(messages)`` or the timeout (then returns what it has).

    ``on_ready`` is called once every partition has its starting position: with
    ``from_beginning=False``, what is published after that call is read, and nothing older.
    """
    consumer = make_consumer(settings, *topics, from_beginning=from_beginning)
    await consumer.start()
    messages: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        if on_ready is not None:
            while not consumer.assignment() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            for tp in consumer.assignment():
                await consumer.position(tp)
            on_ready()
        while not done(messages) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    messages.append(record)
                    if on_message is not None:
                        on_message(record)
    finally:
        await consumer.stop()
    return messages


class SeenEvents:
    """A bounded memory of event ids already acted on (duplicates come close together)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity, self._ids = capacity, OrderedDict[str, None]()

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def format_recommendation(rec: dict, received_ms: int) -> str:
    items = " ".join(f"{i}({s:.2f})" for i, s in zip(rec["items"], rec["scores"], strict=True))
    fallback = f" [{rec['fallback']}]" if rec.get("fallback") else ""
    latency = received_ms - rec["event_time_ms"]
    return f"{rec['user_id']:>12} after {rec['event_id']}: {items}{fallback}  ({latency} ms)"


async def subscribe(settings: StreamSettings, user: str | None = None, from_beginning: bool = False,
                    limit: int | None = None, out: TextIO | None = None) -> int:
    """Print recommendations (for ``user`` only, if given) until ``limit`` or cancellation."""
    consumer = make_consumer(settings, settings.recommendations_topic, from_beginning=from_beginning)
    await consumer.start()
    seen, shown = SeenEvents(), 0
    try:
        async for record in consumer:
            if user is not None and record.key != user.encode():
                continue
            rec = orjson.loads(record.value)
            if not seen.first_time(rec["event_id"]):
                continue
            print(format_recommendation(rec, time.time_ns() // 1_000_000), file=out, flush=True)
            shown += 1
            if limit is not None and shown >= limit:
                break
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
    return shown
