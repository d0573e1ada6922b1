"""streams.worker.pipeline: when a batch's offsets become committable, relative to Faust's own ack.

Faust's ``take_events`` acks a batch when the agent asks for the next one.  At depth > 1 the
pipeline must keep a batch unacked past that ack until its outputs are sent (at-least-once); at
depth 1 its own acks must be the final ones, made before ``submit`` returns (exactly-once commits
right after, and must find the batch's offsets acked together with its outputs).
"""

from __future__ import annotations

import asyncio
import contextlib

from faust.types.tuples import Message

from streams.worker.pipeline import Pipeline


class FakeEvent:
    """A real Faust message delivered to one stream (refcount 1), acked as Faust's Event does."""

    def __init__(self, offset: int) -> None:
        self.message = Message("events", 0, offset, 0.0, 0, None, b"u", b"{}", None)
        self.message.incref()

    def ack(self) -> bool:
        return self.message.ack(None)


async def test_depth_1_acks_the_batch_finally_before_submit_returns():
    events = [FakeEvent(i) for i in range(3)]
    await Pipeline(1).submit(events, asyncio.sleep(0.01))
    assert all(e.message.acked for e in events)
    assert not any(e.ack() for e in events)  # Faust's later ack: nothing left to do


async def test_deeper_pipelines_keep_a_batch_unacked_past_fausts_ack_until_it_finishes():
    release = asyncio.Event()
    events = [FakeEvent(i) for i in range(3)]
    pipeline = Pipeline(2)
    await pipeline.submit(events, release.wait())
    assert not any(e.ack() for e in events)  # take_events acks as the agent reads on
    assert not any(e.message.acked for e in events)
    release.set()
    await pipeline.drain()
    assert all(e.message.acked for e in events)


async def test_a_failed_batch_stays_unacked_at_depth_1_even_after_fausts_ack():
    async def fail() -> None:
        raise RuntimeError("scoring failed")

    events = [FakeEvent(0)]
    with contextlib.suppress(RuntimeError):
        await Pipeline(1).submit(events, fail())
    assert not events[0].ack()  # take_events acks in its finally when the agent crashes
    assert not events[0].message.acked


async def test_a_failed_batch_and_the_ones_after_it_stay_unacked():
    async def fail() -> None:
        raise RuntimeError("scoring failed")

    first, second = [FakeEvent(0)], [FakeEvent(1)]
    pipeline = Pipeline(3)
    await pipeline.submit(first, fail())
    await pipeline.submit(second, asyncio.sleep(0))
    for e in first + second:
        e.ack()  # Faust's own
    for _ in range(2):  # both batches fail: the second because the first did
        with contextlib.suppress(RuntimeError):
            await pipeline.drain()
    assert not any(e.message.acked for e in first + second)
