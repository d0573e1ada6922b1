"""Hand fetched messages to the streams without an event-loop turn per message.

Faust's consumer delivers each fetched message with
``wait_first(deliver(message), suspend_flow.wait())``: four tasks, an
``asyncio.wait`` and three cancellations per message, and at least one full turn
of the event loop before the next message can go, so on a busy worker the last
messages of a fetch wait behind every other task that is ready.  (Throughput with
and without it: docs/BENCHMARKS.md, "Streaming".)
Delivery almost never has to wait (it decodes and puts into a queue with room),
so ``wait_first_eager`` runs the first step of the first coroutine at once and, if
it finishes there, returns without any task.  Only when it has to wait does it fall
back to the ordinary ``wait_first`` for the rest of it, so a stop, crash or flow
suspension still wins over a blocked delivery exactly as in Faust.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from mode.services import WaitResults


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
