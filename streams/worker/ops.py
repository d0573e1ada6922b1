"""The stream worker's metrics and health endpoint (streams.ops.server), wired into the Faust app.

Autodiscovered with every agent module (streams.worker.app.AGENT_MODULES).  The server starts
when the worker initialises, before the consumer joins its group, so that the liveness
probe answers during a long table recovery; the scoring agent hands over its
processor with ``attach`` once its model is loaded.

Readiness = the model is loaded (``attach`` was called), the worker holds an assignment
and no table recovery is running.  A worker with more peers than partitions gets an
empty assignment and is ready (it is a standby member of the group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from streams.ops.metrics import WorkerMetrics
from streams.ops.server import OpsServer
from streams.worker.app import app, settings
from streams.worker.processing import BatchProcessor

log = logging.getLogger(__name__)

ops = OpsServer(settings, "worker")
metrics = WorkerMetrics(ops.registry, settings.model_source)
_state: dict = {"assigned": False, "model": settings.agent != "recommend"}  # passthrough has no model


def attach(processor: BatchProcessor) -> None:
    """Called by the scoring agent once its model is loaded: metrics hooks, model version, loop."""
    ops.bind_loop(asyncio.get_running_loop())
    processor.observer = metrics
    metrics.counters.source = processor.counters
    _state["model"] = True
    _state["processor"] = processor


def _recovered() -> bool:
    if not _state["assigned"]:  # Faust's recovery service is not set up before the first assignment
        return False
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # TableManagerT lacks it
    return recovery.completed.is_set() and not recovery.in_recovery


async def _refresh() -> None:
    """Loop-side gauges; Faust's consumer, store and recovery are only touched once assigned."""
    if (processor := _state.get("processor")) is not None:
        metrics.model.version = processor.scorer.version  # hot swaps replace processor.scorer
    metrics.ready.set(int(all(check() for check in ops.checks.values())))
    if not _state["assigned"]:
        return
    consumer = app.consumer
    await metrics.refresh_lag(settings.events_topic, consumer.assignment(), consumer.highwater,
                              consumer.position)
    if settings.agent == "recommend":  # the passthrough benchmark agent has no table
        from streams.worker.tables import windows_table

        metrics.refresh_table(windows_table.name, windows_table.data)
    metrics.in_recovery.set(int(app.tables.recovery.in_recovery))  # type: ignore[attr-defined]


ops.add_check("model_loaded", lambda: _state["model"])
ops.add_check("partitions_assigned", lambda: _state["assigned"])
ops.add_check("tables_recovered", _recovered)
ops.add_refresher(_refresh)


@app.on_worker_init.connect  # type: ignore[arg-type]  # see lifecycle.py
def start_ops_server(sender, **kwargs) -> None:
    """Sent once by the CLI before the loop runs and once from the worker's loop: start once."""
    ops.start()
    with contextlib.suppress(RuntimeError):  # RuntimeError: not in the loop yet
        ops.bind_loop(asyncio.get_running_loop())


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # see lifecycle.py
async def note_assignment(sender, assigned, **kwargs) -> None:
    _state["assigned"] = True
