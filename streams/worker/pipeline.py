"""Overlap scoring one micro-batch with reading and preparing the next, without weakening at-least-once.

Faust acknowledges a ``take_events`` batch as soon as the agent asks for the next
one.  To let the agent read on while the previous batch is still being scored, each
message's reference count is raised before it is handed over and lowered only once
its outputs have been sent: the consumer commits only offsets whose outputs are in
the producer (Faust flushes the producer before every commit).  Batches finish in
order, each waiting for the one before it.  A failure leaves its events unacked,
so they are redelivered after the agent restarts.

At depth 1 a batch has finished when ``submit`` returns, so no extra reference is taken and
the acks in here are the final ones: exactly-once relies on that, since its commit may run as
soon as the agent leaves ``faust_ext.batch_gate``, before Faust's own acks of the batch (which
``take_events`` makes only when the agent asks for the next one).  A commit there would close a
transaction holding the batch's outputs without its offsets: after a crash the batch would be
redelivered and published a second time, visibly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from faust.types import EventT


class Pipeline:
    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("the pipeline depth must be at least 1")
        self.depth = depth
        self._tasks: deque[asyncio.Task] = deque()

    async def submit(self, events: Sequence[EventT], work: Coroutine[Any, Any, None]) -> None:
        """Start ``work`` for ``events`` after the batches before it; wait while ``depth`` are in flight."""
        if self.depth > 1:  # Faust acks the batch before it finishes: hold it unacked until then
            for event in events:
                event.message.incref()
        previous = self._tasks[-1] if self._tasks else None
        self._tasks.append(asyncio.create_task(self._run(previous, work, events)))
        while len(self._tasks) >= self.depth:
            await self._tasks.popleft()

    @staticmethod
    async def _run(previous: asyncio.Task | None, work: Coroutine[Any, Any, None],
                   events: Sequence[EventT]) -> None:
        if previous is not None:
            try:
                await previous  # order: a failure before us fails us too, and nothing of ours is acked
            except BaseException:
                work.close()  # never started
                raise
        await work
        for event in events:
            event.ack()

    async def drain(self) -> None:
        while self._tasks:
            await self._tasks.popleft()
