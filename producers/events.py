"""A data set's events as raw-id event dicts, in time order, ready to encode.

Indices go back to raw ids through the data set's vocabularies, exactly what the
stream worker maps forward again with the checkpoint's vocabularies.  Time order is
global (timestamp, then position): a user's events keep their order, so the
stream sees every history as the offline split does.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson

from amsrm_core.schema import FieldTable, InteractionData
from amsrm_core.vocab import PAD


def time_order(data: InteractionData) -> np.ndarray:
    """Positions sorted by timestamp, ties by position (stable: per-user order is kept)."""
    return np.lexsort((np.arange(data.n_events), data.timestamps))


def _raw_fields(tables: dict[str, FieldTable], row: int) -> dict | None:
    out: dict[str, str | list[str]] = {}
    for name, table in tables.items():
        values = [table.vocab.tokens[v] for v in table.values[row] if v != PAD]
        if values:
            out[name] = values[0] if table.width == 1 else values
    return out or None


def dataset_events(data: InteractionData, side_fields: bool = True,
                   order: np.ndarray | None = None) -> Iterator[dict]:
    """Event dicts without a timestamp (the producer stamps the send time)."""
    users, items, behaviours = data.user_vocab.tokens, data.item_vocab.tokens, data.behaviour_vocab.tokens
    for p in time_order(data) if order is None else order:
        user, item, behaviour = int(data.users[p]), int(data.items[p]), int(data.behaviours[p])
        event = {"event_id": str(data.event_ids[p]), "user_id": users[user], "item_id": items[item],
                 "behaviour": behaviours[behaviour] if behaviour != PAD else None}
        if side_fields:
            event["user_fields"] = _raw_fields(data.user_fields, user)
            event["item_fields"] = _raw_fields(data.item_fields, item)
        yield event


def encode(event: dict, timestamp_ms: int) -> tuple[bytes, bytes]:
    """(key, value) as the events topic expects them: keyed by user id, orjson value."""
    return event["user_id"].encode(), orjson.dumps({**event, "timestamp": timestamp_ms})
