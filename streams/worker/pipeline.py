"""Overlap scoring one micro-batch with reading and preparing the next, without weakening at-least-once.

Faust acknowledges a ``take_events`` batch as soon as the agent asks for the next
one.  To let the agent read on while the previous batch is still being scored, each
message's reference count is raised before it is handed over and lowered only once
its outputs have been sent: the consumer commits only offsets whose outputs are in
the producer (Faust flushes the producer before every commit).  Batches finish in
order, each waiting for the one before it.  A failure leaves its events unacked,
so they are redelivered after the agent restarts.
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
            await previous  # order: a failure before us fails us too, and nothing of ours is acked
        await work
        for event in events:
            event.ack()

    async def drain(self) -> None:
        while self._tasks:
            await self._tasks.popleft()
