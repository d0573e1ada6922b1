"""``amsrm produce replay``: a data set's events in replay order (time order if it has a clock),
at a fixed rate or sped up."""

from __future__ import annotations

import numpy as np

from amsrm.errors import ConfigError
from amsrm.settings import StreamSettings
from amsrm_core.schema import InteractionData
from producers.events import dataset_events, replay_order
from producers.kafka import SendStats, send_scheduled
from producers.pacing import rate_schedule, speed_schedule


def replay_schedule(data: InteractionData, order: np.ndarray, rate: float | None, speed: float | None,
                    max_gap_s: float = 1.0) -> np.ndarray:
    """Exactly one of ``rate`` (events/s) or ``speed`` (× the data set's clock)."""
    if (rate is None) == (speed is None):
        raise ConfigError("give either a rate (events/s) or a speed factor")
    if speed is not None:
        if not data.has_clock:
            raise ConfigError(f"{data.name} has no clock (timestamps are positions): replay it at a rate")
        return speed_schedule(data.timestamps[order], speed, max_gap_s)
    return rate_schedule(len(order), rate)  # type: ignore[arg-type]  # checked above


async def replay(settings: StreamSettings, data: InteractionData, rate: float | None = None,
                 speed: float | None = None, limit: int | None = None, side_fields: bool = True,
                 progress: bool = True, max_gap_s: float = 1.0) -> SendStats:
    order = replay_order(data)[:limit]
    schedule = replay_schedule(data, order, rate, speed, max_gap_s)
    events = dataset_events(data, side_fields, order)
    return await send_scheduled(settings, events, schedule, progress=progress, total=len(order))
