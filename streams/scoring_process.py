"""The scorer in a child process, so that scoring and the event loop stop taking turns on one GIL.

In a thread, the scorer gives the GIL up at every torch call and at numpy operations
that release it, and then waits for a busy event loop to hand it back (up to the
interpreter's 5 ms switch interval each time); its own Python bookkeeping takes the
GIL from the loop in turn.  Measured next to a busy Python thread (bench/scoring_bench.py,
``contended``): several times slower per event than alone, and worst for the small
micro-batches of low offered rates, where it sets the latency.  A child process has its
own interpreter: it scores at its solo speed on another core, and the event loop only
pickles the windows over and the Top-K lists back.

``ProcessScorer`` has the parts of :class:`amsrm_core.scoring.Scorer` the worker uses
(``recommend``, ``version``, ``max_len``, ``k``) plus ``close``.  The child builds its
scorer with ``load`` (a picklable, argument-free callable), so the model is read from
its files there, never pickled across.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import torch

from amsrm_core.scoring import Ranked, Scorer, Window

log = logging.getLogger(__name__)

_scorer: Scorer | None = None  # the child's scorer


class ScoringUnavailable(RuntimeError):
    """The scoring process died twice on one batch: the batch must be redelivered, not dead-lettered."""


def _start_child(load: Callable[[], Scorer], threads: int) -> None:
    global _scorer
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(threads)
    _scorer = load()


def _exit_with_parent(parent: int) -> None:
    """A worker killed outright (SIGKILL, OOM) cannot stop its child: the child notices and exits."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _describe() -> tuple[str, int, int]:
    assert _scorer is not None, "the pool's initializer loads the scorer"
    return _scorer.version, _scorer.max_len, _scorer.k


def _recommend(windows: Sequence[Window]) -> list[Ranked]:
    assert _scorer is not None, "the pool's initializer loads the scorer"
    return _scorer.recommend(windows)


class ProcessScorer:
    def __init__(self, load: Callable[[], Scorer], threads: int = 1) -> None:
        self._load, self._threads = load, threads
        self._pool = self._new_pool()
        try:  # the child loads the model in its initializer; a failure there breaks the pool
            self.version, self.max_len, self.k = self._pool.submit(_describe).result()
        except BaseException as e:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(f"the scoring process could not load its model: {e!r}") from e

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs threads (Faust's consumer, the scoring call) and maybe CUDA
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_child, initargs=(self._load, self._threads))

    def recommend(self, windows: Sequence[Window]) -> list[Ranked]:
        """Blocking, like ``Scorer.recommend``; a dead child is replaced once and the batch retried."""
        batch = list(windows)
        try:
            return self._pool.submit(_recommend, batch).result()
        except BrokenProcessPool:
            log.error("the scoring process died; starting a new one and scoring the batch again")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        try:
            return self._pool.submit(_recommend, batch).result()
        except BrokenProcessPool as e:
            raise ScoringUnavailable("the scoring process died twice on one batch") from e

    def child_pid(self) -> int:
        """The scoring process's pid (for logs, and the test that kills it)."""
        return self._pool.submit(os.getpid).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def registry_scorer(root: str, version: str, manifest_sha256: str, **options) -> Scorer:
    """A registry version's scorer, verified and loaded in the calling process (a child's ``load``)."""
    from amsrm_core.registry import ModelRegistry

    loaded = ModelRegistry(root).load(version, manifest_sha256, options.get("device", "cpu"))
    return Scorer(loaded.checkpoint, popularity=loaded.popularity, **options)
