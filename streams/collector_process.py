"""Run the collector as a real subprocess (``python -m streams.collector``), as an operator does.

For the tests and local stacks: same environment-only configuration, log file,
readiness check, graceful stop and SIGKILL as a stream worker (streams.process).
"""

from __future__ import annotations

import sys

from streams.collector import READY
from streams.process import WorkerProcess


class CollectorProcess(WorkerProcess):
    ready_marker = READY

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streams.collector"]

    @property
    def input_topic(self) -> str:
        return self.settings.samples_topic
