"""The one canonical interaction schema every loader produces.

An ``InteractionData`` holds events as parallel numpy columns (user, item,
timestamp, behaviour, event id) already encoded to dense indices, plus the
side-information tables of users and items.  Loaders only parse files; all
encoding happens in :func:`build_interactions`, so every data set ends up with
the same layout, the same reserved indices and the same event order
(user, then timestamp, ties kept in file order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amsrm.errors import AmsrmError
from amsrm_core.vocab import PAD, Vocabulary

# Behaviour names used by the bundled loaders and the synthetic data; any other string works too.
BEHAVIOUR_TYPES = ("click", "like", "share", "buy", "cart")


class DataFormatError(AmsrmError, ValueError):
    """A data file does not match its documented format; says where and what was expected."""

    def __init__(self, path: object, line: int | None, expected: str, got: object = None) -> None:
        where = f"{path}" if line is None else f"{path}:{line}"
        message = f"{where}: expected {expected}"
        if got is not None:
            message += f", got {got!r}"
        super().__init__(message)
        self.path, self.line, self.expected, self.got = path, line, expected, got


@dataclass
class FieldTable:
    """One categorical side-information field, a row per user or item index.

    ``values[row]`` holds up to ``width`` distinct value indices, 0-padded; single-valued
    fields have width 1.  Rows 0 (padding) and 1 (unknown id) are all zero.  ``counts[row]``
    says how often each value was listed for that entity (tag data repeat a tag per user who
    gave it): AMSRM pools the distinct values, or weighs them by it (``field_weights="count"``).
    """

    name: str
    vocab: Vocabulary
    values: np.ndarray  # (n_rows, width) int64
    counts: np.ndarray | None = None  # (n_rows, width) int64, 0 where values is 0; None: all 1

    @property
    def width(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class FieldOptions:
    """How multi-valued side fields become rows, for every loader.

    Why: a public tag data set lists a tag once per user who applied it.  Kept as they came,
    item rows were up to 625 entries wide where 110 were distinct, mean pooling weighted tags by
    repetition, and AMSRM ran four times slower than SASRec-CE.  So a value counts once per
    entity (how often it was listed goes to ``FieldTable.counts``); a row keeps at most
    ``max_width`` values, an entity's most frequent first (then the most widespread, then the
    first listed); a value on fewer than ``min_count`` entities is dropped, as it says no more
    than the entity's own id.
    """

    max_width: int = 64  # no bundled data set comes near it (docs/DATA.md); tag data do
    min_count: int = 1  # keep every value; raise it for long-tailed tags

    def __post_init__(self) -> None:
        if self.max_width < 1 or self.min_count < 1:
            raise ValueError(f"field options need max_width >= 1 and min_count >= 1, got {self}")


DEFAULT_FIELDS = FieldOptions()


@dataclass
class LoadReport:
    """What a loader read and what it left out, with reasons: nothing is dropped silently."""

    rows_read: int = 0
    filtered: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.filtered[reason] = self.filtered.get(reason, 0) + count


@dataclass
class InteractionData:
    """Events sorted by (user, timestamp, file order), with side-information tables."""

    name: str
    users: np.ndarray  # (E,) dense user index ≥ 2
    items: np.ndarray  # (E,) dense item index ≥ 2
    timestamps: np.ndarray  # (E,) int64; seconds, or position when the data has no clock
    behaviours: np.ndarray  # (E,) dense behaviour index; 0 where the data set has none
    event_ids: np.ndarray  # (E,) str event ids (generated when the source has none)
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    behaviour_vocab: Vocabulary
    user_fields: dict[str, FieldTable]
    item_fields: dict[str, FieldTable]
    report: LoadReport = field(default_factory=LoadReport)
    has_clock: bool = True  # False when timestamps are only per-user positions (Amazon S3-Rec)

    @property
    def n_events(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_users(self) -> int:
        """Users that have events (vocabulary size minus the reserved indices)."""
        return len(np.unique(self.users))

    @property
    def n_items(self) -> int:
        return len(np.unique(self.items))

    @property
    def has_behaviour(self) -> bool:
        return bool(np.any(self.behaviours != PAD))

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "events": self.n_events,
            "behaviours": self.behaviour_vocab.tokens[2:],
            "user_fields": {k: len(f.vocab) - 2 for k, f in self.user_fields.items()},
            "item_fields": {k: len(f.vocab) - 2 for k, f in self.item_fields.items()},
            "filtered": dict(self.report.filtered),
        }


RawFeatures = Mapping[str, Mapping[Any, Sequence[object] | object]]
"""field name → raw entity id (as in the id column: str, int, …) → value (single) or values (multi-valued)."""


def build_field_table(name: str, entity_vocab: Vocabulary, raw: Mapping[str, object],
                      options: FieldOptions = DEFAULT_FIELDS, report: LoadReport | None = None,
                      kind: str = "") -> FieldTable:
    """Encode one field for every entity in ``entity_vocab`` (``FieldOptions`` says how); missing
    entities get no values.  What the options leave out is counted in ``report`` (as ``kind.name``)."""
    listed: dict[int, Counter[str]] = {}  # row → value → times listed, in first-listed order
    for raw_id, value in raw.items():
        row = entity_vocab.lookup(raw_id)
        if row == 1:  # an entity with features but no events: nothing to attach them to
            continue
        values = value if isinstance(value, list | tuple) else [value]
        listed[row] = Counter(str(v) for v in values if v is not None and str(v) != "")
    spread = Counter(v for counts in listed.values() for v in counts)  # entities per value
    report, what = report or LoadReport(), f"{kind}.{name}" if kind else name
    report.drop(f"{what}: repeated values merged", sum(c.total() - len(c) for c in listed.values()))
    vocab = Vocabulary(name)
    kept: dict[int, list[tuple[int, int]]] = {}
    for row, counts in listed.items():
        common = [v for v in counts if spread[v] >= options.min_count]
        report.drop(f"{what}: values on fewer than {options.min_count} entities", len(counts) - len(common))
        if len(common) > options.max_width:
            report.drop(f"{what}: values beyond {options.max_width} per entity",
                        len(common) - options.max_width)
            chosen = set(sorted(common, key=lambda v: (-counts[v], -spread[v]))[:options.max_width])
            common = [v for v in common if v in chosen]  # sorted() is stable: first listed wins ties
        kept[row] = [(vocab.add(v), counts[v]) for v in common]
    width = max((len(v) for v in kept.values()), default=1) or 1
    indices = np.zeros((len(entity_vocab), width), dtype=np.int64)
    repeats = np.zeros_like(indices)
    for row, pairs in kept.items():
        if pairs:
            indices[row, : len(pairs)], repeats[row, : len(pairs)] = zip(*pairs, strict=True)
    return FieldTable(name, vocab, indices, repeats)


def build_interactions(
    name: str,
    users: Sequence[object],
    items: Sequence[object],
    timestamps: Sequence[int] | np.ndarray,
    behaviours: Sequence[object] | None = None,
    event_ids: Sequence[object] | None = None,
    user_features: RawFeatures | None = None,
    item_features: RawFeatures | None = None,
    report: LoadReport | None = None,
    has_clock: bool = True,
    fields: FieldOptions | None = None,
) -> InteractionData:
    """Encode raw columns into an :class:`InteractionData`, sorted by user and time.

    Ties in timestamp keep the order of the input rows (a stable sort), which
    is the documented tie rule for every loader.
    """
    n = len(users)
    if not (len(items) == n == len(timestamps)):
        raise ValueError("users, items and timestamps must have the same length")
    user_vocab = Vocabulary("user")
    item_vocab = Vocabulary("item")
    behaviour_vocab = Vocabulary("behaviour")
    user_idx = user_vocab.encode_many(users)
    item_idx = item_vocab.encode_many(items)
    ts = np.asarray(timestamps, dtype=np.int64)
    beh = (
        behaviour_vocab.encode_many(behaviours)
        if behaviours is not None
        else np.zeros(n, dtype=np.int64)
    )
    if event_ids is None:
        ids = np.array([f"{name}-{i}" for i in range(n)], dtype=object)
    else:
        ids = np.asarray([str(e) for e in event_ids], dtype=object)
    order = np.lexsort((np.arange(n), ts, user_idx))  # primary key last: user, time, file order
    report, fields = report or LoadReport(rows_read=n), fields or DEFAULT_FIELDS
    return InteractionData(
        name=name,
        users=user_idx[order],
        items=item_idx[order],
        timestamps=ts[order],
        behaviours=beh[order],
        event_ids=ids[order],
        user_vocab=user_vocab,
        item_vocab=item_vocab,
        behaviour_vocab=behaviour_vocab,
        user_fields={k: build_field_table(k, user_vocab, v, fields, report, "user")
                     for k, v in (user_features or {}).items()},
        item_fields={k: build_field_table(k, item_vocab, v, fields, report, "item")
                     for k, v in (item_features or {}).items()},
        report=report,
        has_clock=has_clock,
    )
