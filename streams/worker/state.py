"""The per-user window kept in the table: the last n events with their side fields, and the ones
before them that a redelivery after a crash still needs.

Stored as compact orjson bytes (the table's values are raw bytes), one list per
event.  Each entry remembers the input offset it came from: the input topic and
the table are co-partitioned and a user's events always land in one partition, so
offsets grow per user, and an event redelivered after a crash (at-least-once) is
recognised as already applied instead of being appended twice.

After a crash every event since the partition's last committed offset comes again, and each one
must be scored (and its sample labelled) with the n events that preceded it.  So the stored
window keeps, besides the last n entries, every entry from the committed offset on and the n
before the first of them (``append``'s ``keep_from``): a user with more than n events between two
commits would otherwise have lost the history of the first ones (``recent(n)`` is what is scored
and published).  ``MAX_HISTORY_FACTOR`` bounds it for a partition whose commits stall.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from amsrm.messages import BehaviourEvent, SampleEntry

MAX_HISTORY_FACTOR = 16  # at most this many windows' worth of entries per user


@dataclass(frozen=True, slots=True)
class WindowEntry:
    event_id: str
    item_id: str
    behaviour: str | None
    timestamp: int
    offset: int  # input topic offset (same partition for every event of a user)
    item_fields: dict | None = None


Row = list  # [event_id, item_id, behaviour, timestamp, offset, item_fields]: a WindowEntry's fields
EVENT_ID, ITEM_ID, BEHAVIOUR, TIMESTAMP, OFFSET, ITEM_FIELDS = range(6)


class UserWindow:
    """A user's entries as the stored rows themselves (orjson's lists, oldest first).

    Every event reads its user's window, appends to it and writes it back; building a
    ``WindowEntry`` per stored entry and a list per entry again to encode it cost more than the
    JSON itself, so the hot path works on the decoded rows and encodes them as they are (the
    stored bytes are unchanged).  ``entries`` builds the objects for code that wants them.
    """

    __slots__ = ("rows", "user_fields")

    def __init__(self, rows: tuple[Row, ...] = (), user_fields: dict | None = None) -> None:
        self.rows = rows
        self.user_fields = user_fields  # the latest event's user side fields

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> UserWindow:
        if raw is None:
            return cls()
        data = orjson.loads(raw)
        return cls(tuple(data["e"]), data.get("u"))

    def to_bytes(self) -> bytes:
        return orjson.dumps({"e": self.rows, "u": self.user_fields})

    @property
    def entries(self) -> tuple[WindowEntry, ...]:
        return tuple(WindowEntry(*row) for row in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, UserWindow) and list(self.rows) == list(other.rows)
                and self.user_fields == other.user_fields)

    def __repr__(self) -> str:
        return f"UserWindow({len(self.rows)} entries, user_fields={self.user_fields!r})"

    @property
    def last_offset(self) -> int:
        return self.rows[-1][OFFSET] if self.rows else -1

    def before(self, offset: int) -> UserWindow:
        """The window as it was when the event at ``offset`` arrived (for redelivered events)."""
        return UserWindow(tuple(r for r in self.rows if r[OFFSET] < offset), self.user_fields)

    def append(self, event: BehaviourEvent, offset: int, length: int, keep_from: int | None = None
               ) -> UserWindow:
        """Plus the event at ``offset``; keeps the last ``length`` entries, and with ``keep_from`` (the
        partition's committed offset) also those a redelivery from there needs."""
        row = [event.event_id, event.item_id, event.behaviour, event.timestamp, offset, event.item_fields]
        user_fields = event.user_fields if event.user_fields is not None else self.user_fields
        rows = (*self.rows, row)
        first_uncommitted = len(rows) if keep_from is None else next(
            (i for i, r in enumerate(rows) if r[OFFSET] >= keep_from), len(rows))
        start = max(0, first_uncommitted - length, len(rows) - length * MAX_HISTORY_FACTOR)
        return UserWindow(rows[start:], user_fields)

    def recent(self, length: int) -> UserWindow:
        """The last ``length`` entries: what is scored and published."""
        return UserWindow(self.rows[-length:], self.user_fields) if len(self.rows) > length else self

    def public(self) -> list[SampleEntry]:
        """The entries as published in labelled samples."""
        return [SampleEntry(r[EVENT_ID], r[ITEM_ID], r[BEHAVIOUR], r[TIMESTAMP], r[ITEM_FIELDS])
                for r in self.rows]

    def scoring_events(self) -> list[tuple[str, str | None]]:
        return [(r[ITEM_ID], r[BEHAVIOUR]) for r in self.rows]
