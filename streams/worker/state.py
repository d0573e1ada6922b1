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

    def to_list(self) -> list:
        return [self.event_id, self.item_id, self.behaviour, self.timestamp, self.offset, self.item_fields]

    def public(self) -> SampleEntry:
        """The entry as published in labelled samples (offsets are internal)."""
        return SampleEntry(self.event_id, self.item_id, self.behaviour, self.timestamp, self.item_fields)


@dataclass(frozen=True, slots=True)
class UserWindow:
    entries: tuple[WindowEntry, ...] = ()
    user_fields: dict | None = None  # the latest event's user side fields

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> UserWindow:
        if raw is None:
            return cls()
        data = orjson.loads(raw)
        return cls(tuple(WindowEntry(*e) for e in data["e"]), data.get("u"))

    def to_bytes(self) -> bytes:
        return orjson.dumps({"e": [e.to_list() for e in self.entries], "u": self.user_fields})

    @property
    def last_offset(self) -> int:
        return self.entries[-1].offset if self.entries else -1

    def before(self, offset: int) -> UserWindow:
        """The window as it was when the event at ``offset`` arrived (for redelivered events)."""
        return UserWindow(tuple(e for e in self.entries if e.offset < offset), self.user_fields)

    def append(self, event: BehaviourEvent, offset: int, length: int, keep_from: int | None = None
               ) -> UserWindow:
        """Plus the event at ``offset``; keeps the last ``length`` entries, and with ``keep_from`` (the
        partition's committed offset) also those a redelivery from there needs."""
        entry = WindowEntry(event.event_id, event.item_id, event.behaviour, event.timestamp, offset,
                            event.item_fields)
        user_fields = event.user_fields if event.user_fields is not None else self.user_fields
        entries = (*self.entries, entry)
        first_uncommitted = len(entries) if keep_from is None else next(
            (i for i, e in enumerate(entries) if e.offset >= keep_from), len(entries))
        start = max(0, first_uncommitted - length, len(entries) - length * MAX_HISTORY_FACTOR)
        return UserWindow(entries[start:], user_fields)

    def recent(self, length: int) -> UserWindow:
        """The last ``length`` entries: what is scored and published."""
        return UserWindow(self.entries[-length:], self.user_fields) if len(self.entries) > length else self

    def public(self) -> list[SampleEntry]:
        """The entries as published in labelled samples."""
        return [e.public() for e in self.entries]

    def scoring_events(self) -> list[tuple[str, str | None]]:
        return [(e.item_id, e.behaviour) for e in self.entries]
