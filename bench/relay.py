"""Two plain aiokafka hops, no Faust: the latency floor under the worker's event → recommendation path.

A process that consumes the events topic (in a group, as the worker does) and sends every value
unchanged to the recommendations topic with the project's producer settings, one send per record
without waiting for it.  bench/stream_bench.py offers events to it at each rate in the same run as
the worker, and a consumer there measures receipt − event timestamp, as it does for the worker.

    python bench/relay.py   # configured by AMSRM_* variables, as the worker is
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from amsrm.settings import StreamSettings
from producers.kafka import make_producer
from streams.clients.subscriber import make_consumer
from streams.local.worker_process import process_environment

GROUP = "relay-floor"


async def relay(settings: StreamSettings, stop: asyncio.Event) -> None:
    consumer = make_consumer(settings, settings.events_topic, from_beginning=True, group_id=GROUP)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    await producer.send(settings.recommendations_topic, record.value, key=record.key)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    stop = asyncio.Event()

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await relay(StreamSettings.load(), stop)

    asyncio.run(run())


class RelayProcess:
    """The relay as a child process, configured like a worker (its settings in the environment)."""

    def __init__(self, settings: StreamSettings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> RelayProcess:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen([sys.executable, str(Path(__file__))],
                                             env=process_environment(self.settings), stdout=log,
                                             stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


if __name__ == "__main__":
    main()
