"""Turn raw event bytes into a BehaviourEvent, or into a reason why not.

The worker consumes raw bytes and validates here, so a bad payload can never raise
inside the agent: it becomes a dead letter with a machine-readable reason code and
a human-readable detail.  The rules are the model ``amsrm.messages.BehaviourEvent`` (its
types and limits, also in docs/schemas/event.schema.json) plus two that JSON Schema cannot
express: a size limit (checked first, before any decoding), a plausible time range, and user ids
that Faust's RocksDB store keeps for itself (``RESERVED_KEY_PREFIX``: its ``__faust\0offset__``
key lives next to the windows, so such an id would read an offset as a window).

Two paths, one verdict.  msgspec's typed decoder checks a payload against the model in one
pass (the fast path, about ten times faster than decoding and checking by hand: see
bench/messages_bench.py); only what it refuses, or an out-of-range time, goes through the
checks by hand below, which name the reason (msgspec's errors are prose, not codes).  A test
feeds both paths the same malformed payloads to keep them agreeing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from amsrm.messages import (
    MAX_BEHAVIOUR_CHARS,
    MAX_FIELD_VALUES,
    MAX_FIELDS,
    MAX_ID_CHARS,
    MAX_VALUE_CHARS,
    REQUIRED,
    BehaviourEvent,
    decode_event,
)
from amsrm.messages import REJECTION_REASONS as REASONS
from amsrm.settings import StreamSettings

__all__ = ["MAX_BEHAVIOUR_CHARS", "MAX_FIELDS", "MAX_FIELD_VALUES", "MAX_ID_CHARS", "MAX_VALUE_CHARS",
           "REASONS", "REQUIRED", "RESERVED_KEY_PREFIX", "Limits", "Rejected", "parse_event"]


RESERVED_KEY_PREFIX = "__faust"  # faust.stores.rocksdb keeps b"__faust\0offset__" in every table database


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    min_time_ms: int
    max_skew_ms: int

    @classmethod
    def of(cls, settings: StreamSettings) -> Limits:
        return cls(settings.max_event_bytes, settings.min_event_time_ms, settings.max_clock_skew_ms)


@dataclass(frozen=True)
class Rejected:
    reason: str  # a code: see REASONS (the worker adds "scoring_error": amsrm.messages.DEAD_LETTER_REASONS)
    detail: str


def _ident(data: dict, name: str, limit: int, optional: bool = False) -> str | Rejected | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        return Rejected("wrong_type", f"{name} must be a string, got {type(value).__name__}")
    if not value or len(value) > limit:
        return Rejected("bad_value", f"{name} must have 1 to {limit} characters")
    return value


def _fields(data: dict, name: str) -> dict | Rejected | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        return Rejected("wrong_type", f"{name} must be an object, got {type(value).__name__}")
    if len(value) > MAX_FIELDS:
        return Rejected("bad_value", f"{name} has more than {MAX_FIELDS} fields")
    for key, v in value.items():
        values = v if isinstance(v, list) else [v]
        if len(values) > MAX_FIELD_VALUES or not all(isinstance(x, str) for x in values):
            return Rejected("wrong_type", f"{name}.{key} must be a string or ≤ {MAX_FIELD_VALUES} strings")
        if len(key) > MAX_VALUE_CHARS or any(len(x) > MAX_VALUE_CHARS for x in values):
            return Rejected("bad_value", f"{name}.{key} is longer than {MAX_VALUE_CHARS} characters")
    return value


def parse_event(raw: bytes | None, limits: Limits, now_ms: int) -> BehaviourEvent | Rejected:
    """Validate one payload; never raises."""
    if raw and len(raw) <= limits.max_bytes:
        try:
            event = decode_event(raw)
        except Exception:  # msgspec's DecodeError or ValidationError, a RecursionError: named below
            pass
        else:
            if (limits.min_time_ms <= event.timestamp <= now_ms + limits.max_skew_ms
                    and not event.user_id.startswith(RESERVED_KEY_PREFIX)):
                return event
    return parse_by_hand(raw, limits, now_ms)


def parse_by_hand(raw: bytes | None, limits: Limits, now_ms: int) -> BehaviourEvent | Rejected:
    """The same rules checked one by one, so that a rejection names its reason; never raises."""
    if raw is None or not raw:
        return Rejected("empty", "no payload")
    if len(raw) > limits.max_bytes:
        return Rejected("oversized", f"{len(raw)} bytes > {limits.max_bytes}")
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Rejected("bad_json", str(e)[:200])
    if not isinstance(data, dict):
        return Rejected("not_an_object", f"top level is {type(data).__name__}")
    missing = [name for name in REQUIRED if data.get(name) is None]
    if missing:
        return Rejected("missing_field", "missing " + ", ".join(missing))
    checked = {
        "event_id": _ident(data, "event_id", MAX_ID_CHARS),
        "user_id": _ident(data, "user_id", MAX_ID_CHARS),
        "item_id": _ident(data, "item_id", MAX_ID_CHARS),
        "behaviour": _ident(data, "behaviour", MAX_BEHAVIOUR_CHARS, optional=True),
        "user_fields": _fields(data, "user_fields"),
        "item_fields": _fields(data, "item_fields"),
    }
    for value in checked.values():
        if isinstance(value, Rejected):
            return value
    if checked["user_id"].startswith(RESERVED_KEY_PREFIX):  # type: ignore[union-attr]  # a str: checked
        return Rejected("bad_value", f"user_id must not start with {RESERVED_KEY_PREFIX!r} (reserved by "
                                     "the table store)")
    timestamp = data["timestamp"]
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return Rejected("wrong_type", f"timestamp must be an integer (ms), got {type(timestamp).__name__}")
    if not limits.min_time_ms <= timestamp <= now_ms + limits.max_skew_ms:
        return Rejected("bad_timestamp", f"{timestamp} ms is outside [{limits.min_time_ms}, now + "
                                         f"{limits.max_skew_ms}]")
    return BehaviourEvent(timestamp=timestamp, **checked)  # type: ignore[arg-type]  # each one checked above
