"""The scoring agent: micro-batches of raw events → windows → one forward pass → recommendations.

The agent only wires Faust to streams.processing.BatchProcessor, which only calls
the shared amsrm_core.scoring.Scorer.
"""

from __future__ import annotations

import logging
import time

import torch

from amsrm_core.scoring import Scorer
from streams.app import app, settings
from streams.pipeline import Pipeline
from streams.processing import BatchProcessor, Outputs
from streams.settings import StreamSettings
from streams.tables import windows_table
from streams.topics import dead_letters_topic, events_topic, recommendations_topic, samples_topic

log = logging.getLogger(__name__)

STATS_EVERY_S = 10.0


def load_scorer(settings: StreamSettings) -> Scorer:
    """The worker's scorer (a function so unit tests can substitute one)."""
    torch.set_num_threads(settings.torch_threads)
    scorer = Scorer.from_checkpoint(settings.model_path, k=settings.top_k,
                                    exclude_window=settings.exclude_window, device=settings.device)
    log.info("scoring with %s from %s on %s (K=%d, window %d)", scorer.version, settings.model_path,
             settings.device, scorer.k, settings.window_length or scorer.max_len)
    return scorer


@app.agent(events_topic, name="recommend")
async def recommend(stream) -> None:
    processor = BatchProcessor(
        settings, load_scorer(settings), windows_table,
        Outputs(recommendations_topic, samples_topic, dead_letters_topic, events_topic))
    pipeline = Pipeline(settings.pipeline_depth)
    last_report = time.monotonic()
    async for events in stream.take_events(settings.batch_max, within=settings.batch_latency_ms / 1000):
        await pipeline.submit(events, processor.finish(await processor.prepare(events)))
        if time.monotonic() - last_report >= STATS_EVERY_S:
            last_report = time.monotonic()
            log.info("processed %s", processor.counters)

