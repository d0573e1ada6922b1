"""A local process (a broker engine) as a context manager, sync or async, the same for every engine."""

from __future__ import annotations

import asyncio
import subprocess
from types import TracebackType
from typing import Self


class LocalService:
    """A broker in a subprocess: its address, its process, and ``with`` / ``async with`` around
    ``start()`` and ``stop()`` (async runs them in a thread, since both block on the subprocess)."""

    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The ``broker_url`` setting that points at this broker."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

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
