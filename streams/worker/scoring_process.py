"""The scorer in a child process, so that scoring and the event loop stop taking turns on one GIL.

In a thread, the scorer gives the GIL up at every torch call and at numpy operations
that release it, and then waits for a busy event loop to hand it back (up to the
interpreter's 5 ms switch interval each time); its own Python bookkeeping takes the
GIL from the loop in turn.  Measured next to a busy Python thread (bench/scoring_bench.py,
``contended``): several times slower per event than alone, and worst for the small
micro-batches of low offered rates, where it sets the latency.  A child process has its
own interpreter and scores at its solo speed on another core.

The hand-off itself involves no thread of the worker either (a process pool's feeder and
manager threads would each wait for the GIL again): the event loop writes each batch of
windows to a pipe and reads the Top-K lists from another one with ``loop.add_reader``.
The child answers in order; a reader thread there takes requests off the pipe while the
previous batch is scored, so the loop's write does not wait for it.

``ProcessScorer`` has the parts of :class:`amsrm_core.scoring.Scorer` the worker uses
(``version``, ``max_len``, ``k``, ``recommend``) plus ``recommend_async`` and ``close``.
The child builds its scorer with ``load`` (a picklable, argument-free callable), so the
model is read from its files there and never pickled across.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import torch

from amsrm_core.scoring import Ranked, Scorer, Window
from streams.worker import heap

log = logging.getLogger(__name__)

START_TIMEOUT_S = 300.0  # loading a large model on a busy machine


class ScoringUnavailable(RuntimeError):
    """The scoring process died twice on one batch: the batch must be redelivered, not dead-lettered."""


class ChildDied(RuntimeError):
    """The scoring process exited; what it was scoring has no answer."""


class ScoringFailed(RuntimeError):
    """The scorer raised on this batch (in the child); the message is its exception."""


# --- the child


def _serve(requests: Connection, results: Connection, load: Callable[[], Scorer], threads: int,
           gc_tuning: bool) -> None:
    """The child's main: load the scorer, then answer each request in order until the pipe closes."""
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    try:
        scorer = load()
    except BaseException as e:
        results.send(("error", f"the scoring process could not load its model: {e!r}"))
        return
    heap.settle(gc_tuning)
    results.send(("ready", (scorer.version, scorer.max_len, scorer.k)))
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_receive, args=(requests, inbox), daemon=True).start()
    while (windows := inbox.get()) is not None:
        try:
            results.send(("ok", scorer.recommend(windows)))
        except Exception as e:
            results.send(("error", repr(e)))


def _receive(requests: Connection, inbox: queue.SimpleQueue) -> None:
    try:
        while True:
            inbox.put(requests.recv())
    except (EOFError, OSError):
        inbox.put(None)


def _exit_with_parent(parent: int) -> None:
    """A worker killed outright (SIGKILL, OOM) cannot stop its child: the child notices and exits."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


# --- the worker's side


class ProcessScorer:
    def __init__(self, load: Callable[[], Scorer], threads: int = 1, gc_tuning: bool = True) -> None:
        self._load, self._threads, self._gc_tuning = load, threads, gc_tuning
        self._pending: deque[asyncio.Future] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # the worker runs threads (and maybe CUDA): no fork
        child_requests, self._requests = context.Pipe(duplex=False)  # (read end, write end)
        self._results, child_results = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, name="amsrm-scoring", daemon=True,
                                        args=(child_requests, child_results, self._load, self._threads,
                                              self._gc_tuning))
        self._process.start()
        child_requests.close()
        child_results.close()
        if not self._results.poll(START_TIMEOUT_S):
            self._stop_process()
            raise RuntimeError(f"the scoring process did not load its model within {START_TIMEOUT_S:.0f}s")
        try:
            status, payload = self._results.recv()
        except EOFError:
            status, payload = "error", f"the scoring process exited with code {self._process.exitcode}"
        if status != "ready":
            self._stop_process()
            raise RuntimeError(payload)
        self.version, self.max_len, self.k = payload

    @property
    def child_pid(self) -> int | None:
        return self._process.pid

    # blocking use (tests, tools): one request at a time, no event loop involved

    def recommend(self, windows: Sequence[Window]) -> list[Ranked]:
        if self._pending:
            raise RuntimeError("recommend() while recommend_async() calls are in flight")
        self._requests.send(list(windows))
        try:
            return _answer(*self._results.recv())
        except EOFError as e:
            raise ChildDied(f"the scoring process exited with code {self._process.exitcode}") from e

    # the worker's use: many batches in flight, answers read on the event loop

    async def recommend_async(self, windows: Sequence[Window]) -> list[Ranked]:
        """Top-K of ``windows``; a dead child is replaced once and the batch sent again."""
        try:
            return await self._ask(windows)
        except ChildDied:
            log.error("the scoring process died; starting a new one and scoring the batch again")
            self._restart()
        try:
            return await self._ask(windows)
        except ChildDied as e:
            raise ScoringUnavailable("the scoring process died twice on one batch") from e

    async def _ask(self, windows: Sequence[Window]) -> list[Ranked]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first call, or after a restart
            self._loop = loop
            loop.add_reader(self._results.fileno(), self._on_results)
        future = loop.create_future()
        try:
            self._requests.send(list(windows))
        except (BrokenPipeError, OSError) as e:
            raise ChildDied("the scoring process is gone") from e
        self._pending.append(future)
        return _answer(*await future)

    def _on_results(self) -> None:
        try:
            while self._results.poll():
                answer = self._results.recv()
                future = self._pending.popleft()
                if not future.done():
                    future.set_result(answer)
        except (EOFError, OSError):
            self._fail_pending(ChildDied(f"the scoring process exited with code {self._process.exitcode}"))

    def _fail_pending(self, error: Exception) -> None:
        self._detach()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(error)

    def _detach(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._results.fileno())
        self._loop = None

    def _restart(self) -> None:
        self._fail_pending(ChildDied("the scoring process was restarted"))
        self._stop_process()
        self._start()

    def _stop_process(self) -> None:
        for connection in (self._requests, self._results):
            connection.close()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def close(self) -> None:
        """Stop the child (it exits when its request pipe closes)."""
        self._fail_pending(ChildDied("the scorer was closed"))
        self._stop_process()


def _answer(status: str, payload: Any) -> list[Ranked]:
    if status != "ok":
        raise ScoringFailed(payload)
    return payload


def registry_scorer(root: str, version: str, manifest_sha256: str, **options) -> Scorer:
    """A registry version's scorer, verified and loaded in the calling process (a child's ``load``)."""
    from amsrm_core.registry import ModelRegistry

    loaded = ModelRegistry(root).load(version, manifest_sha256, options.get("device", "cpu"))
    return Scorer(loaded.checkpoint, popularity=loaded.popularity, **options)
