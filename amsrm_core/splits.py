"""Evaluation splits: leave-one-out by time, and a global temporal split.

Because events are sorted by (user, time), every user's events are one contiguous
run of positions.  A split is then just positions: for each user the exclusive end
of the events a model may train on, and the positions of the events to predict.
A case at position ``p`` predicts ``items[p]`` from that user's events before ``p``
(the history known at that moment), so both protocols share one evaluator.

- ``leave_one_out``: the main protocol of the published anchors.  Per user with at
  least 3 events the last event is the test case, the second-last the validation
  case, and the rest is training data.
- ``temporal``: what a streaming system faces.  Training uses only events before
  ``t_valid``; every later event with some history is a case (validation before
  ``t_test``, test after), predicted with all history up to that moment.  Unlike
  leave-one-out, no training event happens after any evaluated event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from amsrm.errors import ConfigError
from amsrm_core.schema import InteractionData


@dataclass
class Split:
    protocol: str
    data: InteractionData
    user_start: np.ndarray  # (E,) position of the first event of this event's user
    train_end: np.ndarray  # (R,) per user run: exclusive end of its training events
    run_start: np.ndarray  # (R,) per user run: first position
    valid_cases: np.ndarray  # positions of validation targets
    test_cases: np.ndarray  # positions of test targets
    info: dict

    def train_positions(self) -> np.ndarray:
        """Positions of every event a model may learn from."""
        parts = [np.arange(s, e) for s, e in zip(self.run_start, self.train_end, strict=True) if e > s]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def describe(self) -> dict:
        return {
            "protocol": self.protocol,
            "train_events": int((self.train_end - self.run_start).sum()),
            "valid_cases": len(self.valid_cases),
            "test_cases": len(self.test_cases),
            **self.info,
        }


def _user_runs(data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    """First position and length of each user's contiguous run of events."""
    if data.n_events and np.any(np.diff(data.users) < 0):
        # np.unique would still work, but a non-sorted input means a loader bypassed build_interactions
        raise ValueError("events must be sorted by user (use build_interactions)")
    change = np.flatnonzero(np.diff(data.users)) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [data.n_events]])).astype(np.int64)
    return starts, lengths


def leave_one_out(data: InteractionData, min_events: int = 3) -> Split:
    """Last event of each user for test, second-last for validation, the rest for training."""
    starts, lengths = _user_runs(data)
    evaluated = lengths >= min_events
    ends = starts + lengths
    train_end = np.where(evaluated, ends - 2, ends)
    return Split(
        protocol="loo",
        data=data,
        user_start=np.repeat(starts, lengths),
        train_end=train_end,
        run_start=starts,
        valid_cases=(ends - 2)[evaluated],
        test_cases=(ends - 1)[evaluated],
        info={"min_events": min_events, "users_not_evaluated": int((~evaluated).sum())},
    )


def temporal(
    data: InteractionData,
    valid_quantile: float = 0.8,
    test_quantile: float = 0.9,
    t_valid: int | None = None,
    t_test: int | None = None,
) -> Split:
    """Global time cut: train before ``t_valid``, validate in [t_valid, t_test), test after."""
    if not data.has_clock:
        raise ConfigError(f"{data.name} has no global clock (timestamps are positions): use leave-one-out")
    t_valid = int(np.quantile(data.timestamps, valid_quantile)) if t_valid is None else t_valid
    t_test = int(np.quantile(data.timestamps, test_quantile)) if t_test is None else t_test
    if t_test < t_valid:
        raise ConfigError("t_test must not be before t_valid")
    starts, lengths = _user_runs(data)
    user_start = np.repeat(starts, lengths)
    positions = np.arange(data.n_events)
    has_history = positions > user_start
    ts = data.timestamps
    # first position per run whose time is >= t_valid: training events end there
    before = (ts < t_valid).astype(np.int64)
    train_end = starts + np.add.reduceat(before, starts) if data.n_events else starts
    valid = np.flatnonzero((ts >= t_valid) & (ts < t_test) & has_history)
    test = np.flatnonzero((ts >= t_test) & has_history)
    cold = int(((ts >= t_valid) & ~has_history).sum())
    return Split(
        protocol="temporal",
        data=data,
        user_start=user_start,
        train_end=train_end,
        run_start=starts,
        valid_cases=valid,
        test_cases=test,
        info={"t_valid": t_valid, "t_test": t_test, "cold_start_events_not_evaluated": cold},
    )


SPLITS: dict[str, Callable[[InteractionData], Split]] = {"loo": leave_one_out, "temporal": temporal}
