"""``amsrm produce synthetic``: the synthetic generator as an endless live stream at a rate.

Each round generates one synthetic data set (next seed) and streams it in time
order; users and items keep their raw ids across rounds (same catalogue, so a
model trained on the synthetic data knows them), event ids are unique per round.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

from amsrm.settings import StreamSettings
from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from producers.events import dataset_events
from producers.kafka import SendStats, send_scheduled
from producers.pacing import rate_ticks


def synthetic_stream(config: SyntheticConfig, side_fields: bool = True) -> Iterator[dict]:
    for round_ in itertools.count():
        data = generate_synthetic(dataclasses.replace(config, seed=config.seed + round_))
        for event in dataset_events(data, side_fields):
            yield {**event, "event_id": f"{event['event_id']}-r{round_}"}


async def produce_synthetic(settings: StreamSettings, rate: float, events: int | None = None,
                            config: SyntheticConfig | None = None, progress: bool = True) -> SendStats:
    stream = synthetic_stream(config or SyntheticConfig())
    if events is not None:
        stream = itertools.islice(stream, events)
    return await send_scheduled(settings, stream, rate_ticks(rate), progress=progress, total=events)
