"""Overlap scoring one micro-batch with reading and preparing the next, without weakening at-least-once.

Faust acknowledges a ``take_events`` batch as soon as the agent asks for the next
one.  To let the agent read on while the previous batch is still being scored, each
message's reference count is raised before it is handed over and lowered only once
its outputs have been sent: the consumer commits only offsets whose outputs are in
the producer (Faust flushes the producer before every commit).  Batches finish in
order, each waiting for the one before it.  A failure leaves its events unacked, so
no commit passes them and they are redelivered when the worker restarts.

The extra reference is what keeps a failed batch from ever being committed: Faust's
``take_events`` acks the batch in a ``finally`` when the agent asks for the next batch *or
crashes*, so without it a batch that raised would count as done and a commit would pass it.

At depth 1 a batch has finished when ``submit`` returns, and the pipeline releases Faust's
reference too, so that its acks are the final ones: exactly-once relies on that, since its commit
may run as soon as the agent leaves ``faust_ext.batch_gate``, before ``take_events`` acks the batch.
A commit there would close a transaction holding the batch's outputs without its offsets: after a
crash the batch would be redelivered and published a second time, visibly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from faust.types import EventT

from streams.faust_ext import mark_finished


class Pipeline:
    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("the pipeline depth must be at least 1")
        self.depth = depth
        self._tasks: deque[asyncio.Task] = deque()

    async def submit(self, events: Sequence[EventT], work: Coroutine[Any, Any, None]) -> None:
        """Start ``work`` for ``events`` after the batches before it; wait while ``depth`` are in flight."""
        for event in events:  # ours: only a batch that finished releases it
            event.message.incref()
        previous = self._tasks[-1] if self._tasks else None
        self._tasks.append(asyncio.create_task(self._run(previous, work, events, releases=self._releases)))
        while len(self._tasks) >= self.depth:
            await self._tasks.popleft()

    @property
    def _releases(self) -> int:
        """References a finished batch releases: its own, and at depth 1 Faust's as well."""
        return 2 if self.depth == 1 else 1

    @staticmethod
    async def _run(previous: asyncio.Task | None, work: Coroutine[Any, Any, None],
                   events: Sequence[EventT], releases: int) -> None:
        if previous is not None:
            try:
                await previous  # order: a failure before us fails us too, and nothing of ours is acked
            except BaseException:
                work.close()  # never started
                raise
        await work
        for event in events:
            mark_finished(event.message)
            for _ in range(releases):
                event.ack()

    async def drain(self) -> None:
        while self._tasks:
            await self._tasks.popleft()
