"""When the worker must stop itself: an agent that keeps crashing, or a model that cannot load.

Faust's supervisor restarts a crashed agent in place, and the worker keeps its partitions while
the agent crash-loops: it looks alive and does nothing.  A restarted agent also never sees the
batch it crashed on again (the consumer reads on from where it was; the pipeline keeps that batch
unacked, so no commit passes it, but only a new process reads it again).  So a worker whose agent
crashes ``agent_crash_limit`` times within ``agent_crash_window_s``, or cannot load its model at
all, fails its liveness probe and exits with ``EXIT_AGENT_FAILED``: the orchestrator restarts it,
the group hands its partitions on meanwhile, and the uncommitted events are read again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

EXIT_AGENT_FAILED = 70  # EX_SOFTWARE: an internal error, restart me
EXIT_GRACE_S = 1.0  # lets /livez answer 503 and the log reach its handler before the exit


class CrashBudget:
    """At most ``limit`` crashes within ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = max(limit, 1), window_s
        self._times: deque[float] = deque()

    def spend(self, now: float | None = None) -> bool:
        """Record a crash; True when this one exhausts the budget."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        return len(self._times) >= self.limit


def exit_worker(reason: str, mark_dead: Callable[[str], None], code: int = EXIT_AGENT_FAILED,
                grace_s: float = EXIT_GRACE_S) -> None:
    """Fail liveness (``mark_dead(reason)``) now and end the process ``grace_s`` later, whatever the
    event loop is doing.  No clean shutdown: like a kill, it commits nothing more, which is safe
    (every committed offset's outputs are in the broker) and under exactly-once required (a clean
    stop would commit the open transactions of a batch that failed half-way)."""
    log.critical("stopping the worker (exit %d): %s", code, reason)
    mark_dead(reason)
    timer = threading.Timer(grace_s, os._exit, (code,))
    timer.daemon = True
    timer.start()
