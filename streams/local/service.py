"""A local process (a broker engine) as a context manager, sync or async, the same for every engine."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self


class LocalService:
    """``with`` / ``async with`` around ``start()`` and ``stop()``; async runs them in a thread, since
    both block on a subprocess."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)
