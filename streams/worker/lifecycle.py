"""Worker lifecycle hooks shared by every agent module (autodiscovered with each of them)."""

from __future__ import annotations

import logging

from streams.worker import heap
from streams.worker.app import app, settings
from streams.worker.health import exit_worker
from streams.worker.ops import ops

log = logging.getLogger(__name__)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust types receivers with a signal= keyword
async def log_assignment(sender, assigned, **kwargs) -> None:
    """One line per rebalance naming this worker's input partitions (tests and operators read it)."""
    partitions = sorted(tp.partition for tp in assigned if tp.topic == settings.events_topic)
    log.info("assigned %s partitions %s", settings.events_topic, partitions)
    check_partition_count(app.consumer.topic_partitions(settings.events_topic))


def check_partition_count(found: int | None) -> None:
    """The window table has ``AMSRM_PARTITIONS`` partitions, one per events partition: with another
    count, events and their windows are not co-partitioned and the agent fails on every batch."""
    if found is not None and found != settings.partitions:
        exit_worker(f"{settings.events_topic} has {found} partitions but AMSRM_PARTITIONS is "
                    f"{settings.partitions}: set it to the topic's count (a new AMSRM_APP_ID if the "
                    "table already exists) or recreate the topic", ops.fail)


@app.task
async def settle_heap() -> None:
    """Once the worker has started: freeze what start-up left alive and collect young garbage less
    often, so full collections stop pausing the event loop (streams.worker.heap, ``AMSRM_GC_TUNING``)."""
    heap.settle(settings.gc_tuning)
