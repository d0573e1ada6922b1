"""The consumer's eager hand-off (streams.faust_ext) against mode's real ``Service.wait_first``."""

from __future__ import annotations

import asyncio

import pytest
from mode import Service

from streams.faust_ext import RestOf, wait_first_eager


class Eager(Service):
    """A mode service whose wait_first takes the eager path, as streams.faust_ext.Consumer's does."""

    fallbacks = 0

    async def wait_first(self, *coros, timeout=None):
        async def counted(*args, **kwargs):
            self.fallbacks += 1
            return await Service.wait_first(self, *args, **kwargs)

        return await wait_first_eager(counted, False, *coros, timeout=timeout)


async def test_a_delivery_that_does_not_wait_finishes_in_place_without_tasks():
    service, suspended = Eager(), asyncio.Event()
    delivered = []

    async def deliver(value):
        delivered.append(value)
        return value * 2

    tasks_before = len(asyncio.all_tasks())
    other = suspended.wait()
    result = await service.wait_first(deliver(21), other)
    assert delivered == [21] and result.results == [42] and not result.stopped
    assert service.fallbacks == 0 and len(asyncio.all_tasks()) == tasks_before
    assert other.cr_frame is None  # the never-awaited coroutine was closed (no "never awaited" warning)


async def test_a_delivery_that_waits_finishes_through_the_ordinary_wait_first():
    service, room, suspended = Eager(), asyncio.Event(), asyncio.Event()
    steps = []

    async def deliver():
        steps.append("started")
        await room.wait()  # a full queue
        steps.append("put")
        await asyncio.sleep(0)
        return "done"

    asyncio.get_running_loop().call_later(0.01, room.set)
    result = await service.wait_first(deliver(), suspended.wait())
    assert steps == ["started", "put"] and result.results == ["done"] and service.fallbacks == 1


async def test_a_suspension_still_wins_over_a_blocked_delivery_which_is_cancelled():
    service, never, suspended = Eager(), asyncio.Event(), asyncio.Event()
    cleaned_up = asyncio.Event()

    async def deliver():
        try:
            await never.wait()
        finally:
            cleaned_up.set()

    asyncio.get_running_loop().call_later(0.01, suspended.set)
    result = await service.wait_first(deliver(), suspended.wait())
    assert len(result.done) == 1 and result.done[0] is not deliver
    await asyncio.wait_for(cleaned_up.wait(), 1)  # the blocked delivery was cancelled inside its own frame


async def test_errors_surface_from_either_path():
    service = Eager()

    async def fails_now():
        raise ValueError("bad message")

    async def fails_later():
        await asyncio.sleep(0.001)
        raise KeyError("later")

    with pytest.raises(ValueError, match="bad message"):
        await service.wait_first(fails_now(), asyncio.Event().wait())
    with pytest.raises(KeyError, match="later"):
        await service.wait_first(fails_later(), asyncio.Event().wait())


async def test_rest_of_passes_results_and_thrown_exceptions_on_like_yield_from():
    gate = asyncio.get_running_loop().create_future()

    async def body():
        got = await gate
        return got + 1

    coro = body()
    blocked_on = coro.send(None)
    task = asyncio.ensure_future(RestOf(coro, blocked_on))
    gate.set_result(1)
    assert await task == 2

    gate2 = asyncio.get_running_loop().create_future()

    async def cancelled_body():
        try:
            await gate2
        except asyncio.CancelledError:
            return "saw the cancellation"

    coro = cancelled_body()
    task = asyncio.ensure_future(RestOf(coro, coro.send(None)))
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "saw the cancellation"


async def test_a_stopping_service_never_runs_anything_eagerly():
    calls = []

    async def fallback(*waitables, timeout=None):
        calls.append(waitables)
        for w in waitables:
            w.close()

    async def deliver():
        raise AssertionError("must not run eagerly")

    await wait_first_eager(fallback, True, deliver())
    assert len(calls) == 1
