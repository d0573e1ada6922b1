"""When each event is due: a fixed rate, or the data set's own time gaps sped up.

A schedule is the offset in seconds from the start at which the i-th event should
be sent; the sender sends everything due and sleeps until the next one, so the
offered rate does not drift with how long sending takes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from amsrm.errors import ConfigError


def rate_schedule(n: int, events_per_s: float) -> np.ndarray:
    if events_per_s <= 0:
        raise ConfigError("the rate must be positive")
    return np.arange(n, dtype=np.float64) / events_per_s


def speed_schedule(timestamps_s: Sequence[int] | np.ndarray, speed: float, max_gap_s: float) -> np.ndarray:
    """Original gaps divided by ``speed``, each gap capped at ``max_gap_s`` (data sets idle for days)."""
    if speed <= 0:
        raise ConfigError("the speed factor must be positive")
    ts = np.asarray(timestamps_s, dtype=np.float64)
    gaps = np.minimum(np.diff(ts, prepend=ts[:1]) / speed, max_gap_s)
    return np.cumsum(gaps)


def rate_ticks(events_per_s: float) -> Iterator[float]:
    """An endless rate schedule; 0 means as fast as the producer goes."""
    if events_per_s < 0:
        raise ConfigError("the rate must not be negative")
    return (i / events_per_s for i in itertools.count()) if events_per_s else itertools.repeat(0.0)
