"""The scoring agent: micro-batches of raw events → windows → one forward pass → recommendations.

The agent only wires Faust to streams.worker.processing.BatchProcessor, which only calls
the shared amsrm_core.scoring.Scorer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

import torch

from amsrm.errors import ConfigError
from amsrm.settings import StreamSettings
from amsrm_core.candidates import IndexOptions
from amsrm_core.registry import LoadedVersion, ModelRegistry
from amsrm_core.retraining.watch import ModelWatcher, serve_current
from amsrm_core.scoring import Scorer, release
from streams.faust_ext import batch_gate, committed_offset, ensure_buffer_room
from streams.worker import heap
from streams.worker.app import app, settings
from streams.worker.health import CrashBudget, exit_worker
from streams.worker.ops import attach, ops
from streams.worker.pipeline import Pipeline
from streams.worker.processing import BatchProcessor, Outputs, ProducerSink
from streams.worker.scoring_process import ProcessScorer, registry_scorer
from streams.worker.tables import windows_table
from streams.worker.topics import dead_letters_topic, events_topic, recommendations_topic, samples_topic

log = logging.getLogger(__name__)

STATS_EVERY_S = 10.0


def scorer_options(settings: StreamSettings) -> dict:
    index = IndexOptions(settings.topk_index, settings.topk_index_probes, settings.torch_threads)
    return {"k": settings.top_k, "exclude_window": settings.exclude_window, "device": settings.device,
            "index": index}


def start_scorer(settings: StreamSettings, load: Callable[[], Scorer]) -> Scorer | ProcessScorer:
    """``load()``'s scorer, in a child process unless ``AMSRM_SCORING_PROCESS=false``
    (streams.worker.scoring_process)."""
    if settings.scoring_process:
        return ProcessScorer(load, settings.torch_threads, settings.gc_tuning)
    return load()


def load_scorer(settings: StreamSettings) -> Scorer | ProcessScorer:
    """The worker's scorer (a function so unit tests can substitute one)."""
    torch.set_num_threads(settings.torch_threads)
    load = partial(Scorer.from_checkpoint, settings.model_path, **scorer_options(settings))
    scorer = start_scorer(settings, load)
    log.info("scoring with %s from %s on %s (K=%d, window %d, %s)", scorer.version, settings.model_path,
             settings.device, scorer.k, settings.window_length or scorer.max_len,
             "child process" if settings.scoring_process else "thread")
    return scorer


def load_model(settings: StreamSettings) -> tuple[Scorer | ProcessScorer, ModelWatcher | None]:
    """A fixed checkpoint (``AMSRM_MODEL_SOURCE=path``), or the registry's current version and a
    watcher that loads each promoted one off the hot path (``registry``; docs/RETRAINING.md)."""
    if settings.model_source == "path":
        return load_scorer(settings), None
    if settings.model_source != "registry":
        raise ConfigError(f"AMSRM_MODEL_SOURCE must be path or registry, got {settings.model_source!r}")
    torch.set_num_threads(settings.torch_threads)

    def build(loaded: LoadedVersion) -> Scorer | ProcessScorer:
        if settings.scoring_process:  # the child loads and verifies the version again, from its files
            return start_scorer(settings, partial(registry_scorer, settings.registry_dir, loaded.version,
                                                  loaded.manifest_sha256, **scorer_options(settings)))
        return Scorer(loaded.checkpoint, popularity=loaded.popularity, **scorer_options(settings))

    # a ProcessScorer answers every call a Scorer does; the core cannot name it (it lives above the core)
    return serve_current(ModelRegistry(settings.registry_dir), build, settings.model_poll_s)  # type: ignore[arg-type]


def sink(topic) -> ProducerSink:
    """How the agent publishes to ``topic`` (a function so unit tests can capture the sends)."""
    return ProducerSink(topic)


crashes = CrashBudget(settings.agent_crash_limit, settings.agent_crash_window_s)


@app.agent(events_topic, name="recommend")
async def recommend(stream) -> None:
    """The scoring agent; one that cannot load its model, or keeps crashing, ends the worker."""
    try:
        scorer, watcher = load_model(settings)
    except Exception as e:
        exit_worker(f"the model cannot be loaded: {e!r}", ops.fail)
        raise
    try:
        await score_stream(stream, scorer, watcher)
    except Exception as e:
        if crashes.spend():
            exit_worker(f"the agent crashed {crashes.limit} times within {crashes.window_s:g}s, last: {e!r}",
                        ops.fail)
        raise


async def score_stream(stream, scorer: Scorer | ProcessScorer, watcher: ModelWatcher | None) -> None:
    topics = (recommendations_topic, samples_topic, dead_letters_topic, events_topic)
    processor = BatchProcessor(settings, scorer, windows_table, Outputs(*map(sink, topics)),
                               partial(committed_offset, app))
    attach(processor)  # metrics hooks and readiness (streams.worker.ops)
    # exactly-once commits only between micro-batches (faust_ext.batch_gate), so batches do not overlap
    pipeline = Pipeline(1 if app.in_transaction else settings.pipeline_depth)
    # Table writes queue their changelog messages in Faust's producer buffer, and above its
    # max_messages (100) Faust stops handing events to the agent until it drains: a micro-batch
    # writes up to batch_max windows at once, so let one batch (and the one in flight) fit.
    ensure_buffer_room(app.producer, 2 * settings.batch_max)
    last_report = time.monotonic()
    if watcher is not None:
        watcher.start()
    try:
        async for events in stream.take_events(settings.batch_max, within=settings.batch_latency_ms / 1000):
            if watcher is not None and (promoted := watcher.take()) is not None:
                await pipeline.drain()  # batches in flight finish with the model that started them
                release(processor.scorer)
                processor.scorer = promoted
                heap.refresh(settings.gc_tuning)  # the replaced model may have been frozen
            async with batch_gate(app):  # a no-op under at-least-once
                await pipeline.submit(events, processor.finish(await processor.prepare(events)))
            if time.monotonic() - last_report >= STATS_EVERY_S:
                last_report = time.monotonic()
                log.info("processed %s", processor.counters)
    finally:
        if watcher is not None:
            await watcher.stop()
        release(processor.scorer)

