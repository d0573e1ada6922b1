"""The aiokafka producer every producer command uses, and the send loop that follows a schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from tqdm.auto import tqdm

from amsrm.settings import StreamSettings
from producers.events import encode


def make_producer(settings: StreamSettings) -> AIOKafkaProducer:
    """Batched, acks=all; keyed sends use the default murmur2 partitioner (same as Faust and Java)."""
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                            linger_ms=settings.producer_linger_ms,
                            max_request_size=settings.producer_max_request_size)


@dataclass
class SendStats:
    sent: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def send_scheduled(settings: StreamSettings, events: Iterable[dict], schedule: Iterable[float],
                         progress: bool = True, total: int | None = None,
                         on_sent: Callable[[dict, int], None] | None = None) -> SendStats:
    """Send each event at its scheduled offset, stamped with the wall-clock send time (ms)."""
    producer = make_producer(settings)
    await producer.start()
    stats, pending = SendStats(), list[asyncio.Future]()  # delivery futures of the sends in flight
    bar = tqdm(total=total, desc="events", unit="ev", disable=not progress, smoothing=0.1)
    started = time.monotonic()
    try:
        for event, due in zip(events, schedule, strict=False):
            delay = started + due - time.monotonic()
            if delay > 0:
                if pending:  # let batches go out while we wait anyway
                    await asyncio.gather(*pending)
                    pending.clear()
                await asyncio.sleep(delay)
            now_ms = time.time_ns() // 1_000_000
            key, value = encode(event, now_ms)
            pending.append(await producer.send(settings.events_topic, value, key=key))
            if on_sent is not None:
                on_sent(event, now_ms)
            stats.sent += 1
            bar.update()
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        stats.seconds = time.monotonic() - started
        bar.close()
        await producer.stop()
    return stats
