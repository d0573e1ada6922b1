"""A data set's events as raw-id event dicts, in replay order, ready to encode.

Indices go back to raw ids through the data set's vocabularies, exactly what the
stream worker maps forward again with the checkpoint's vocabularies.  Time order is
global (timestamp, then position); a data set without a clock is interleaved by
users instead (``replay_order``).  Either way a user's events keep their order, so
the stream sees every history as the offline split does.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from amsrm.messages import BehaviourEvent
from amsrm.messages import encode as encode_message
from amsrm_core.schema import FieldTable, InteractionData
from amsrm_core.vocab import PAD


def time_order(data: InteractionData) -> np.ndarray:
    """Positions sorted by timestamp, ties by position (stable: per-user order is kept)."""
    return np.lexsort((np.arange(data.n_events), data.timestamps))


def replay_order(data: InteractionData, block_events: int = 20_000, seed: int = 0) -> np.ndarray:
    """The order a replay sends events in: time order if the data set has a clock.

    Without one (Amazon S3-Rec: timestamps are positions within each user), time order
    sends every user's first event, then every second one, …: the first ``n_users``
    events would all meet empty windows.  Instead, users in a seeded random order are
    taken in blocks of about ``block_events`` events, and within a block their whole
    histories are interleaved at random, each in its own order, so windows grow as they
    would in a live stream and any slice of ``block_events`` holds whole histories.
    """
    if data.has_clock:
        return time_order(data)
    rng = np.random.default_rng(seed)
    by_user = np.lexsort((np.arange(data.n_events), data.timestamps, data.users))  # user, then time
    users, starts, counts = np.unique(data.users[by_user], return_index=True, return_counts=True)
    shuffled = rng.permutation(len(users))
    block = np.cumsum(counts[shuffled]) // max(1, block_events)  # the block of each user
    block_of_user = np.empty(len(users), dtype=np.int64)
    block_of_user[shuffled] = block
    rank = np.arange(data.n_events) - np.repeat(starts, counts)  # position within the user's history
    # spread each history evenly over its block, with jitter: event j of m at (j + u) / m, u ~ U(0, 1)
    spread = (rank + rng.random(data.n_events)) / np.repeat(counts, counts)
    user_blocks = np.repeat(block_of_user, counts)
    return by_user[np.lexsort((spread, user_blocks))]


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
        event: dict[str, object] = {"event_id": str(data.event_ids[p]), "user_id": users[user],
                                    "item_id": items[item],
                                    "behaviour": behaviours[behaviour] if behaviour != PAD else None}
        if side_fields:
            event["user_fields"] = _raw_fields(data.user_fields, user)
            event["item_fields"] = _raw_fields(data.item_fields, item)
        yield event


def encode(event: dict, timestamp_ms: int) -> tuple[bytes, bytes]:
    """(key, value) as the events topic expects them: keyed by user id, the event model's JSON."""
    return event["user_id"].encode(), encode_message(BehaviourEvent(**event, timestamp=timestamp_ms))
