"""A local broker (Tansu or Apache Kafka), the topics and one worker subprocess: what the demo and
the benchmark run.

Everything is torn down on exit, worker first.  The worker's data directory is wiped on entry:
an owned broker starts empty (Tansu keeps nothing; Kafka starts on a fresh temporary data dir),
and local state from an earlier broker makes Faust fail with ConsistencyError (docs/BROKER.md).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import TracebackType
from typing import Self

from amsrm.settings import StreamSettings
from streams.clients.admin import create_topics
from streams.local.broker import BrokerEngine, engine_settings, make_broker
from streams.local.worker_process import WorkerProcess


class LocalStack:
    """``broker``: one already running (kept on exit), else a new ``engine`` broker owned by the stack."""

    def __init__(self, settings: StreamSettings, workdir: Path, broker: BrokerEngine | None = None,
                 recovery_safe: bool = False, ready_timeout_s: float = 120.0,
                 worker_cpus: set[int] | None = None, engine: str = "tansu") -> None:
        self.workdir = Path(workdir)
        self._own_broker = broker is None
        self.broker = broker or make_broker(engine, log_path=self.workdir / "broker.log")
        self.requested, self.recovery_safe = settings, recovery_safe
        self.ready_timeout_s, self.worker_cpus = ready_timeout_s, worker_cpus
        self.settings = settings
        self.worker: WorkerProcess | None = None

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self._own_broker:
                self.broker.start()
            self.settings = engine_settings(self.requested, self.broker, self.recovery_safe)
            shutil.rmtree(self.settings.data_dir, ignore_errors=True)
            asyncio.run(create_topics(self.settings))
            log = self.workdir / f"worker-{self.settings.app_id}.log"
            self.worker = WorkerProcess(self.settings, log, self.worker_cpus).start()
            self.worker.wait_ready(self.ready_timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self._own_broker:
            self.broker.stop()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
