"""Run a stream worker as a real subprocess, configured only through AMSRM_* environment variables.

Used by the demo, the benchmark and the integration tests, so all three start
workers the way an operator does (``python -m streams worker``).  Each worker runs
without Faust's web server: two workers on one host would otherwise collide on
port 6066 (docs/BROKER.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from amsrm.errors import AmsrmError
from amsrm.settings import StreamSettings

READY = "[^Worker]: Ready"
ASSIGNED = re.compile(r"assigned (\S+) partitions \[([0-9, ]*)\]")


class WorkerError(AmsrmError, RuntimeError):
    """A worker exited early or did not get ready in time."""


def process_environment(settings: StreamSettings) -> dict[str, str]:
    """A child process's environment: this one's, with ``settings`` as AMSRM_* variables."""
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    env.pop("AMSRM_CONFIG", None)  # the settings object is already resolved
    return env


class WorkerProcess:
    """``python -m streams worker`` with ``settings`` in its environment and its log in a file."""

    ready_marker = READY  # the log line that says the process consumes (subclasses: other processes)

    def __init__(self, settings: StreamSettings, log_path: Path, cpus: set[int] | None = None) -> None:
        self.settings, self.log_path = settings, Path(log_path)
        self.cpus = cpus  # pin the worker (and its scoring process) to these cores, like a container limit
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def exit_code(self) -> int | None:
        """The process's exit status once it has ended on its own; None while it runs."""
        return self._process.poll() if self._process else None

    def start(self) -> Self:
        env = process_environment(self.settings)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        cpus = self.cpus
        pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
        self._process = subprocess.Popen(self.command(), env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=pin)
        return self

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streams", "worker", "-l", self.settings.log_level, "--without-web"]

    @property
    def input_topic(self) -> str:
        """The topic whose assignment ``assignment()`` reports."""
        return self.settings.events_topic

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assignment(self) -> list[int] | None:
        """This worker's input partitions after its latest rebalance, or None before the first."""
        found = [m for m in ASSIGNED.finditer(self.log_text()) if m.group(1) == self.input_topic]
        if not found:
            return None
        return [int(p) for p in found[-1].group(2).replace(" ", "").split(",") if p]

    def wait_ready(self, timeout_s: float = 60.0) -> list[int]:
        """Block until the worker has partitions and Faust says Ready (tables recovered, consuming)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            assigned = self.assignment()
            if assigned and self.ready_marker in self.log_text():
                return assigned
            time.sleep(0.1)
        raise WorkerError(f"worker not ready within {timeout_s}s; log {self.log_path}")

    def _check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            tail = self.log_text()[-3000:]
            raise WorkerError(f"worker exited (code {self._process and self._process.returncode}):\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM: Faust commits and flushes), SIGKILL if it hangs."""
        return self._end(signal.SIGTERM, timeout_s)

    def kill(self) -> int | None:
        """A crash: no commit, no flush (what at-least-once redelivery is for); its children die too."""
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: signal.Signals, timeout_s: float) -> int | None:
        process, self._process = self._process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            code = process.returncode
            with contextlib.suppress(ProcessLookupError):  # what it left running (its scoring process)
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_for_split(workers: list[WorkerProcess], partitions: int, timeout_s: float = 60.0) -> None:
    """Block until the workers of one group hold disjoint, non-empty partition sets covering the
    topic after their latest rebalance, and each says Ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assigned = [w.assignment() for w in workers]
        if all(assigned) and sorted(p for a in assigned for p in a or []) == list(range(partitions)):
            for w in workers:
                w.wait_ready(max(1.0, deadline - time.monotonic()))
            return
        time.sleep(0.2)
    raise WorkerError(f"partitions never split within {timeout_s}s: {[w.assignment() for w in workers]}")
