"""Hot swap: workers follow the registry's pointer; the whole retraining loop on the embedded broker.

The end-to-end test streams events through a worker serving from the registry and a
collector, retrains on what the collector stored, and checks that the worker switches to
the promoted version between micro-batches without losing or repeating a recommendation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import orjson
from test_collector import wait_for
from test_registry import checkpoints  # noqa: F401 (a fixture)
from test_retrain import first_half, first_model, stream  # noqa: F401 (fixtures)
from test_streams_integration import (
    NOW_MS,
    TIMEOUT_S,
    events_of,
    ids_cover,
    new_settings,
    produce,
    read,
)

from amsrm_core.registry import ModelRegistry
from amsrm_core.retraining.retrain import RetrainOptions, retrain
from amsrm_core.retraining.store import TrainingStore
from amsrm_core.retraining.watch import serve_current
from amsrm_core.scoring import Scorer
from producers.events import encode
from streams.local.collector_process import CollectorProcess
from streams.local.worker_process import WorkerProcess


def build(loaded) -> Scorer:
    return Scorer(loaded.checkpoint, k=5, popularity=loaded.popularity)


def version_of(registry: ModelRegistry, version: str) -> str:
    """What recommendations scored by ``version`` carry (model name and weights hash, as Scorer.version)."""
    manifest = registry.manifest(version)
    return f"{manifest['model']}-{manifest['weights_sha256'][:12]}"


async def test_watcher_follows_promotions_and_refuses_a_broken_version(tmp_path, checkpoints, caplog):  # noqa: F811
    registry = ModelRegistry(tmp_path / "registry")
    for folder in checkpoints:
        registry.add_checkpoint(folder)
    registry.promote("v0001", "bootstrap")
    scorer, watcher = serve_current(registry, build, poll_s=0.05)
    assert scorer.version == version_of(registry, "v0001")
    await watcher.poll()
    assert watcher.take() is None  # nothing new
    registry.promote("v0002", "better")
    await watcher.poll()
    swapped = watcher.take()
    assert swapped.version == version_of(registry, "v0002") and watcher.take() is None
    registry.promote("v0003", "next")
    weights = registry.path("v0003") / "weights.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")  # broken after promotion (disk, copy, …)
    with caplog.at_level("ERROR"):
        await watcher.poll()
        await watcher.poll()  # the same pointer is not retried
    assert watcher.take() is None and watcher.serving.version == "v0002"
    refusals = [r for r in caplog.records if "refusing model version v0003" in r.message]
    assert len(refusals) == 1 and "still serving v0002" in refusals[0].message
    watcher.start()  # the background poll picks up the next change (a rollback)
    try:
        registry.rollback(to="v0001")
        async with asyncio.timeout(10):
            while (swapped := watcher.take()) is None:
                await asyncio.sleep(0.02)
    finally:
        await watcher.stop()
    assert swapped.version == version_of(registry, "v0001")


def test_stream_collect_retrain_and_swap_without_losing_an_event(broker, tmp_path, first_model,  # noqa: F811
                                                                 small_synthetic):
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(registry.add_checkpoint(first_model), "bootstrap")
    group = f"collector-{uuid.uuid4().hex[:6]}"
    settings = new_settings(broker, tmp_path, first_model, model_source="registry", model_poll_s=0.3,
                            registry_dir=str(registry.root), store_dir=str(tmp_path / "store"),
                            collector_group=group, collector_flush_rows=200, collector_flush_s=0.3,
                            samples_source="events")  # the default: the collector labels the events
    later = events_of(small_synthetic, 1800, offset=small_synthetic.n_events // 2)  # v1 never saw these
    phases = {"before": later[:1200], "during": later[1200:1600], "after": later[1600:]}
    times = {e["event_id"]: NOW_MS + 1000 * i for i, e in enumerate(later)}
    store = TrainingStore(settings.store_dir)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    collector = CollectorProcess(settings, tmp_path / "collector.log")
    with worker, collector:
        worker.wait_ready(TIMEOUT_S)
        collector.wait_ready(TIMEOUT_S)
        send(settings, phases["before"], times)
        read(settings, settings.recommendations_topic, ids_cover({e["event_id"] for e in phases["before"]}))
        wait_for(lambda: set(store.read().column("event_id").to_pylist()) >= {e["event_id"] for e in
                                                                              phases["before"]})
        # the e2e test checks the plumbing; the gate's judgement has its own tests (test_retrain)
        report = retrain(store, registry, RetrainOptions(max_epochs=2, budget_s=30, gate_margin=1.0,
                                                         gate_min_cases=1, holdout=0.1))
        assert report["status"] == "promoted" and report["version"] == "v0002", report
        send(settings, phases["during"], times, pause_s=0.05)  # arriving while the worker loads v0002
        wait_for(lambda: "loaded model version v0002" in worker.log_text())
        send(settings, phases["after"], times)  # the worker swaps before the next micro-batch
        recs = read(settings, settings.recommendations_topic, ids_cover(set(times)))
    by_event = defaultdict(list)
    for m in recs:
        rec = orjson.loads(m.value)
        by_event[rec["event_id"]].append(rec["model_version"])
    assert sorted(by_event) == sorted(times)  # none lost
    assert all(len(v) == 1 for v in by_event.values())  # none twice
    old, new = version_of(registry, "v0001"), version_of(registry, "v0002")
    assert {by_event[e["event_id"]][0] for e in phases["before"]} == {old}
    assert {by_event[e["event_id"]][0] for e in phases["after"]} == {new}
    served: dict[str, list[str]] = defaultdict(list)  # per user, in event order: old … old new … new
    for e in later:
        served[e["user_id"]].append(by_event[e["event_id"]][0])
    assert all(v == sorted(v, key=[old, new].index) for v in served.values())
    assert report["window"]["new_items"] > 0 and "switching from v0001 to v0002" in worker.log_text()


def send(settings, events: list[dict], times: dict[str, int], pause_s: float = 0.0) -> None:
    """Produce events with their fixed event times; with a pause, in groups of 50 (to span the swap)."""
    step = 50 if pause_s else len(events)
    for i in range(0, len(events), step):
        produce(settings, [encode(e, times[e["event_id"]]) for e in events[i : i + step]])
        time.sleep(pause_s)


async def test_a_scorer_loaded_but_never_taken_is_released(tmp_path, checkpoints):  # noqa: F811
    """Two promotions before the agent switches, or a stop: the unused scorer's process is freed."""
    registry = ModelRegistry(tmp_path / "registry")
    for folder in checkpoints:
        registry.add_checkpoint(folder)
    registry.promote("v0001", "bootstrap")
    built: list = []

    class Closable:
        def __init__(self, loaded) -> None:
            self.version, self.closed = loaded.checkpoint.manifest["weights_sha256"], False
            built.append(self)

        def close(self) -> None:
            self.closed = True

    _, watcher = serve_current(registry, Closable, poll_s=0.05)
    for version in ("v0002", "v0003"):
        registry.promote(version, "next")
        await watcher.poll()
    assert [b.closed for b in built] == [False, True, False]  # serving, replaced before taken, ready
    await watcher.stop()
    assert built[2].closed
