"""Faust's aiokafka transport with one knob Faust does not expose, and a cheaper message hand-off.

The knob is the consumer's fetch wait.
Faust builds its consumer with ``fetch_max_wait_ms=1500``.  A real Kafka broker
answers a fetch as soon as data arrives, so that only bounds idle polling; the
embedded broker (Tansu) holds a fetch for much of that time even when data is
there, which puts ~1 s between an event and its recommendation at 1,000 events/s
(measured: docs/STREAMING.md).  The ``consumer_fetch_max_wait_ms`` setting sets it.

The hand-off: the consumer delivers each fetched message to the streams without
creating tasks when delivery does not have to wait (streams.faust_ext).

Selected by the ``amsrm-kafka://`` scheme that streams.worker.app gives Faust's consumer
URL; the broker URL in the settings stays ``kafka://``.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from streams.faust_ext import wait_first_eager

SCHEME = "amsrm-kafka"


class FetchTunedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        from streams.worker.app import settings  # the app exists by now; importing earlier would be circular

        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher; the constructor took Faust's 1500
        consumer._fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    _eager_dispatch: bool | None = None  # the setting, read at the first call (per message after that)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if self._eager_dispatch is None:
            from streams.worker.app import settings  # see FetchTunedConsumerThread

            self._eager_dispatch = settings.eager_dispatch
        if not self._eager_dispatch:
            return await super().wait_first(*coros, timeout=timeout)
        stopped = self._stopped.is_set() or self._crashed.is_set()
        return await wait_first_eager(super().wait_first, stopped, *coros, timeout=timeout)

    def _new_consumer_thread(self) -> FetchTunedConsumerThread:
        return FetchTunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def consumer_urls(broker_url: str) -> list[str]:
    """The broker URLs with this transport's scheme, registering it with Faust on first use."""
    TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return [f"{SCHEME}://{u.strip().split('://', 1)[-1]}" for u in broker_url.split(";") if u.strip()]
