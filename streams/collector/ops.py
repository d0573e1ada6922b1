"""The collector's metrics and health endpoint (streams.ops.server, streams.ops.metrics).

Readiness = the collector's consumer has received a partition assignment (and still
holds one).  Liveness = its event loop answers.
"""

from __future__ import annotations

import asyncio

from streams.collector.service import Collector
from streams.ops.metrics import CollectorMetrics
from streams.ops.server import OpsServer


def serve_collector(collector: Collector) -> OpsServer:
    """Start the endpoint for ``collector``; call from the loop the collector runs in."""
    ops = OpsServer(collector.settings, "collector")
    metrics = CollectorMetrics(ops.registry)
    metrics.stats.source = collector.stats

    def assigned() -> bool:
        consumer = collector.consumer
        return consumer is not None and bool(consumer.assignment())

    async def refresh() -> None:
        consumer = collector.consumer
        if consumer is not None:
            await metrics.refresh_lag(collector.topic, consumer.assignment(), consumer.highwater,
                                      consumer.position)
        metrics.ready.set(int(assigned()))

    ops.add_check("partitions_assigned", assigned)
    ops.add_refresher(refresh)
    ops.bind_loop(asyncio.get_running_loop())
    ops.start()
    return ops
