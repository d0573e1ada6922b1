"""Run the collector as a real subprocess (``python -m streams.collector.service``), as an operator does.

For the tests and local stacks: same environment-only configuration, log file,
readiness check, graceful stop and SIGKILL as a stream worker (streams.local.worker_process).
"""

from __future__ import annotations

import sys

from streams.collector.service import READY
from streams.local.worker_process import WorkerProcess


class CollectorProcess(WorkerProcess):
    ready_marker = READY

    def command(self) -> list[str]:
        return [sys.executable, "-m", "streams.collector.service"]

    @property
    def input_topic(self) -> str:
        return self.settings.collector_topic
