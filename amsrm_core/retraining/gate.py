"""The promotion gate: candidate and current model, scored as they would serve, on the newest events.

Both models go through the Scorer, the one scoring path the workers use, with raw
ids: each model maps ids through its *own* vocabularies, so a target item the current
model has never seen is a miss for it (it could not have recommended it), and a
cold window gets the same popularity fallback as in serving.  A case is a held-out
event with at least one earlier event of its user; its window is the events before
it.  Ranks come from each model's Top-K list, so only metrics@K up to that K exist.

The candidate is promoted when ``candidate >= current - margin`` on the gate metric,
with at least ``min_cases`` cases; with no current version it is promoted as long as
there are cases to evaluate it on at all.  If the current model was trained on part of
the held-out slice (training windows overlap), the comparison favours the current
model: the gate errs towards keeping what serves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from amsrm.errors import ConfigError
from amsrm_core.metrics import KS, metrics_from_ranks
from amsrm_core.scoring import Scorer, Window
from amsrm_core.splits import Split

TOP_K = max(KS)
CHUNK = 512  # windows per Scorer call


@dataclass(frozen=True)
class Cases:
    windows: list[Window]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.targets)


def holdout_cases(split: Split, width: int) -> Cases:
    """Raw-id windows (the ``width`` events before each test case) and target items."""
    data = split.data
    items, users = data.item_vocab.tokens, data.user_vocab.tokens
    behaviours = [None, *data.behaviour_vocab.tokens[1:]]  # index 0 (PAD): the event has no behaviour
    windows, targets = [], []
    for p in split.test_cases.tolist():
        start = max(int(split.user_start[p]), p - width)
        events = [(items[data.items[q]], behaviours[data.behaviours[q]]) for q in range(start, p)]
        windows.append(Window(users[data.users[p]], events))
        targets.append(items[data.items[p]])
    return Cases(windows, targets)


def serving_metrics(scorer: Scorer, cases: Cases) -> dict[str, float]:
    """Every metric@K (K ≤ the scorer's K) of what ``scorer`` would have recommended."""
    ranks = np.full(len(cases), np.inf)
    for lo in range(0, len(cases), CHUNK):
        for i, ranked in enumerate(scorer.recommend(cases.windows[lo : lo + CHUNK]), lo):
            if cases.targets[i] in ranked.items:
                ranks[i] = ranked.items.index(cases.targets[i])
    return metrics_from_ranks(ranks, tuple(k for k in KS if k <= scorer.k))


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str
    candidate: float
    current: float | None
    margin: float
    cases: int

    def to_json(self) -> dict:
        return asdict(self)


def decide(candidate: dict[str, float], current: dict[str, float] | None, cases: int, metric: str,
           margin: float, min_cases: int) -> Decision:
    """Promote when the candidate is not worse than the current model by more than ``margin``."""
    if metric not in candidate:
        raise ConfigError(f"gate metric {metric!r} not computed; choose one of {sorted(candidate)}")
    ours, theirs = candidate[metric], None if current is None else current[metric]

    def decision(promote: bool, reason: str) -> Decision:
        return Decision(promote, reason, metric, ours, theirs, margin, cases)

    if theirs is None:
        return decision(True, "no current version")
    if cases < min_cases:
        return decision(False, f"only {cases} held-out cases, fewer than {min_cases}")
    if ours >= theirs - margin:
        return decision(True, f"{metric} {ours:.4f} >= current {theirs:.4f} - margin {margin:g}")
    return decision(False, f"{metric} {ours:.4f} < current {theirs:.4f} - margin {margin:g}")
