"""Worker lifecycle hooks shared by every agent module (autodiscovered with each of them)."""

from __future__ import annotations

import logging

from streams.worker import heap
from streams.worker.app import app, settings

log = logging.getLogger(__name__)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust types receivers with a signal= keyword
async def log_assignment(sender, assigned, **kwargs) -> None:
    """One line per rebalance naming this worker's input partitions (tests and operators read it)."""
    partitions = sorted(tp.partition for tp in assigned if tp.topic == settings.events_topic)
    log.info("assigned %s partitions %s", settings.events_topic, partitions)


@app.task
async def settle_heap() -> None:
    """Once the worker has started: freeze what start-up left alive and collect young garbage less
    often, so full collections stop pausing the event loop (streams.worker.heap, ``AMSRM_GC_TUNING``)."""
    heap.settle(settings.gc_tuning)
