"""Store samples → events → an ``InteractionData`` encoded on the current model's vocabularies.

Each sample holds one event (its label) and the window of events before it, so the
events are the samples' own plus their windows' (which bring back each user's first
event), each event id once, the sample's own copy first.

Encoding starts from copies of the current model's vocabularies, which only grow
(append-only, 0 = padding, 1 = unknown): every index the model learned keeps its
meaning, new users, items and side values get the next free indices.  Side-field
tables start from the current model's tables (so entities absent from this window keep
their fields) and take the window's latest values.  Only the fields the current model
has are kept: a new field would change the architecture, which needs a full
``amsrm train``; likewise behaviour types are grown only for a model that reads them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from amsrm_core.features import COUNTS
from amsrm_core.retraining.store import first_occurrences
from amsrm_core.schema import FieldTable, InteractionData, LoadReport
from amsrm_core.vocab import PAD, UNKNOWN, Vocabulary

if TYPE_CHECKING:
    from amsrm_core.models.base import Recommender

log = logging.getLogger(__name__)

RawFields = dict[str, dict[str, list[str]]]  # field → entity id → values


@dataclass
class Events:
    """Raw events, one per event id; side fields as last seen (latest event time wins)."""

    event_ids: np.ndarray  # (E,) object
    users: np.ndarray  # (E,) object
    items: np.ndarray  # (E,) object
    behaviours: np.ndarray  # (E,) object, None where the event has none
    timestamps: np.ndarray  # (E,) int64 ms
    user_fields: RawFields = field(default_factory=dict)
    item_fields: RawFields = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_ids)


def _column(table: pa.Table | pa.StructArray, name: str) -> np.ndarray:
    values = table.column(name) if isinstance(table, pa.Table) else table.field(name)
    return np.asarray(values.to_pylist(), dtype=object if not pa.types.is_integer(values.type) else np.int64)


def _latest_fields(out: RawFields, entity_ids: np.ndarray, fields: list, times: np.ndarray) -> None:
    """Fold ``(name, values)`` pairs into ``out`` in time order, so the latest value wins."""
    for row in np.argsort(times, kind="stable"):
        for name, values in fields[row] or ():
            out.setdefault(name, {})[entity_ids[row]] = list(values)


def events_from_samples(table: pa.Table) -> Events:
    """Every event the samples contain: theirs and their windows', each event id once."""
    if table.num_rows == 0:
        empty = np.zeros(0, dtype=object)
        return Events(empty, empty, empty, empty, np.zeros(0, dtype=np.int64))
    window = table.column("window").combine_chunks()
    entries = pc.list_flatten(window)
    parents = pc.list_parent_indices(window).to_numpy()
    own_users = _column(table, "user_id")
    columns = {
        "event_ids": (_column(table, "event_id"), _column(entries, "event_id")),
        "users": (own_users, own_users[parents]),
        "items": (_column(table, "item_id"), _column(entries, "item_id")),
        "behaviours": (_column(table, "behaviour"), _column(entries, "behaviour")),
        "timestamps": (_column(table, "event_time_ms"), _column(entries, "timestamp")),
    }
    merged = {k: np.concatenate(v) for k, v in columns.items()}
    keep = first_occurrences(merged["event_ids"])
    events = Events(**{k: v[keep] for k, v in merged.items()})
    item_fields = table.column("item_fields").to_pylist() + entries.field("item_fields").to_pylist()
    _latest_fields(events.item_fields, merged["items"], item_fields, merged["timestamps"])
    _latest_fields(events.user_fields, own_users, table.column("user_fields").to_pylist(),
                   columns["timestamps"][0])
    return events


@dataclass
class Base:
    """What the data must stay compatible with: the current model's vocabularies and field tables."""

    vocabularies: Mapping[str, Vocabulary]
    tables: Mapping[str, np.ndarray]  # "item.<field>" / "user.<field>" (+ "__count") → (rows, width)
    item_fields: list[str]
    user_fields: list[str]

    @classmethod
    def of_model(cls, model: Recommender, vocabularies: Mapping[str, Vocabulary]) -> Base:
        """The model's field tables are its ``item_<field>`` / ``user_<field>`` buffers (features.py)."""
        state = model.state_dict()
        schema = model.schema
        tables = {f"{prefix}.{name}{suffix}": state[f"{prefix}_{name}{suffix}"].cpu().numpy()
                  for prefix, names in (("item", schema.item_fields), ("user", schema.user_fields))
                  for name in names for suffix in ("", COUNTS) if f"{prefix}_{name}{suffix}" in state}
        return cls(vocabularies, tables, list(schema.item_fields), list(schema.user_fields))


def _copy(vocab: Vocabulary | None, name: str) -> Vocabulary:
    return Vocabulary(name) if vocab is None else Vocabulary.from_json(vocab.to_json())


def encode_events(name: str, events: Events, base: Base | None = None) -> InteractionData:
    """``events`` as an InteractionData whose vocabularies extend ``base``'s (sorted by user, time)."""
    vocabs = dict(base.vocabularies) if base else {}
    user_vocab, item_vocab = _copy(vocabs.get("user"), "user"), _copy(vocabs.get("item"), "item")
    behaviour_vocab = _copy(vocabs.get("behaviour"), "behaviour")
    grow_behaviours = base is None or len(behaviour_vocab) > 2
    users, items = user_vocab.encode_many(events.users), item_vocab.encode_many(events.items)
    encode_behaviour = behaviour_vocab.add if grow_behaviours else behaviour_vocab.lookup
    behaviours = np.fromiter((PAD if b is None else encode_behaviour(b) for b in events.behaviours),
                             dtype=np.int64, count=len(events))
    ts = events.timestamps.astype(np.int64)
    order = np.lexsort((np.arange(len(events)), ts, users))
    tables = {}
    for prefix, entity_vocab, raw in (("item", item_vocab, events.item_fields),
                                      ("user", user_vocab, events.user_fields)):
        names = (base.item_fields if prefix == "item" else base.user_fields) if base else sorted(raw)
        ignored = sorted(set(raw) - set(names))
        if ignored:
            log.warning("%s fields %s are unknown to the current model and ignored (a new field needs a "
                        "full `amsrm train`)", prefix, ignored)
        tables[prefix] = {
            f: _field_table(f, entity_vocab, raw.get(f, {}), _copy(vocabs.get(f"{prefix}.{f}"), f),
                            base.tables.get(f"{prefix}.{f}") if base else None,
                            base.tables.get(f"{prefix}.{f}{COUNTS}") if base else None)
            for f in names}
    return InteractionData(
        name=name, users=users[order], items=items[order], timestamps=ts[order], behaviours=behaviours[order],
        event_ids=events.event_ids[order], user_vocab=user_vocab, item_vocab=item_vocab,
        behaviour_vocab=behaviour_vocab, user_fields=tables["user"], item_fields=tables["item"],
        report=LoadReport(rows_read=len(events)))


def _field_table(name: str, entity_vocab: Vocabulary, raw: Mapping[str, list[str]], vocab: Vocabulary,
                 old: np.ndarray | None, old_counts: np.ndarray | None = None) -> FieldTable:
    """The old rows kept, the window's values written over them, new entities appended; a value
    listed twice for one entity counts once and its repeats go to the counts, as when loading
    (``schema.FieldOptions``); old rows keep their counts (1 per value where the model kept none)."""
    encoded = {row: Counter(vocab.add(v) for v in values) for entity, values in raw.items()
               if (row := entity_vocab.lookup(entity)) > UNKNOWN}  # row 1 (unknown) stays empty
    old_rows, old_width = old.shape if old is not None else (0, 1)
    width = max([old_width, 1, *(len(v) for v in encoded.values())])
    values = np.zeros((len(entity_vocab), width), dtype=np.int64)
    counts = np.zeros_like(values)
    if old is not None:
        values[:old_rows, :old_width] = old
        counts[:old_rows, :old_width] = (old != 0) if old_counts is None else old_counts
    for row, listed in encoded.items():
        values[row], counts[row] = 0, 0
        values[row, : len(listed)], counts[row, : len(listed)] = list(listed), list(listed.values())
    return FieldTable(name, vocab, values, counts)
