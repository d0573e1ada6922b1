"""Hypothesis strategies for malformed behaviour events, each drawn with the reason it must be refused for.

Every payload is a valid event with exactly one defect (or no event at all), so the reason code
streams.worker.validation gives is known in advance: the fuzz tests check the verdict, not only
that something was refused.  Shared by the unit property test and the broker test
(tests/test_fuzz.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from hypothesis import strategies as st

from amsrm.messages import (
    MAX_BEHAVIOUR_CHARS,
    MAX_FIELD_VALUES,
    MAX_FIELDS,
    MAX_ID_CHARS,
    MAX_VALUE_CHARS,
    REQUIRED,
)
from streams.worker.validation import RESERVED_KEY_PREFIX

IDS = ("event_id", "user_id", "item_id")
SIDE_FIELDS = ("user_fields", "item_fields")
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)  # orjson writes an infinity as null
NOT_A_STRING = st.one_of(INT64, FLOATS, st.booleans(), st.lists(INT64, max_size=3),
                         st.dictionaries(st.text(max_size=3), INT64, max_size=2))
NOT_AN_INTEGER = st.one_of(st.text(max_size=10), FLOATS, st.booleans(), st.lists(INT64, max_size=2))
NOT_SIDE_FIELDS = st.one_of(st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3),
                            st.dictionaries(st.just("genre"), INT64, min_size=1))
JSON_NOT_AN_OBJECT = st.recursive(st.none() | st.booleans() | INT64 | st.text(max_size=20),
                                  lambda inner: st.lists(inner, max_size=4), max_leaves=8)


def valid_event(serial: int, now_ms: int) -> dict:
    return {"event_id": f"fuzz-{serial}", "user_id": f"fuzz-user-{serial % 7}", "item_id": "1",
            "timestamp": now_ms, "behaviour": "click", "item_fields": {"category": "c"}}


def _changed(event: dict, **fields) -> bytes:
    return orjson.dumps({**event, **fields})


def _without(event: dict, name: str, null: bool) -> bytes:
    rest = {k: v for k, v in event.items() if k != name}
    return orjson.dumps({**rest, name: None} if null else rest)


@dataclass(frozen=True)
class Bounds:
    now_ms: int
    max_bytes: int
    min_time_ms: int
    max_skew_ms: int


def _oversized(draw, e: dict, b: Bounds) -> bytes:
    return _changed(e, pad="x" * draw(st.integers(b.max_bytes + 1, 3 * b.max_bytes)))


def _truncated(draw, e: dict, b: Bounds) -> bytes:
    whole = orjson.dumps(e)
    return whole[:draw(st.integers(1, len(whole) - 1))]


def _deep(draw, e: dict, b: Bounds) -> bytes:
    """Deeper than the JSON parser's recursion limit, still under max_bytes."""
    depth = draw(st.integers(1100, 4000))
    return b"[" * depth + b"]" * depth


def _long_id(draw, e: dict, b: Bounds) -> bytes:
    length = draw(st.integers(MAX_ID_CHARS + 1, 2 * MAX_ID_CHARS))
    return _changed(e, **{draw(st.sampled_from(IDS)): "i" * length})


def _too_many_fields(draw, e: dict, b: Bounds) -> bytes:
    count = draw(st.integers(MAX_FIELDS + 1, MAX_FIELDS + 20))
    return _changed(e, user_fields={f"f{i}": "v" for i in range(count)})


def _too_many_values(draw, e: dict, b: Bounds) -> bytes:
    count = draw(st.integers(MAX_FIELD_VALUES + 1, 2 * MAX_FIELD_VALUES))
    return _changed(e, item_fields={"tags": ["t"] * count})


def _bad_timestamp(draw, e: dict, b: Bounds) -> bytes:
    early = st.integers(-(2**53), b.min_time_ms - 1)
    late = st.integers(b.now_ms + b.max_skew_ms + 3_600_000, 2**53)  # an hour's margin for the worker's clock
    return _changed(e, timestamp=draw(early | late))


# kind → (the reason it must get, how to draw it from a valid event)
DEFECTS = {
    "empty": ("empty", lambda draw, e, b: b""),
    "oversized": ("oversized", _oversized),
    "bad_json": ("bad_json", lambda draw, e, b: draw(st.binary(min_size=1, max_size=200)
                                                     .filter(_not_json))),
    "truncated_json": ("bad_json", _truncated),
    "deep_nesting": ("bad_json", _deep),
    "not_an_object": ("not_an_object", lambda draw, e, b: orjson.dumps(draw(JSON_NOT_AN_OBJECT))),
    "missing_field": ("missing_field", lambda draw, e, b: _without(e, draw(st.sampled_from(REQUIRED)),
                                                                   False)),
    "null_field": ("missing_field", lambda draw, e, b: _without(e, draw(st.sampled_from(REQUIRED)), True)),
    "wrong_type_id": ("wrong_type", lambda draw, e, b: _changed(e, **{draw(st.sampled_from(IDS)):
                                                                      draw(NOT_A_STRING)})),
    "wrong_type_timestamp": ("wrong_type", lambda draw, e, b: _changed(e, timestamp=draw(NOT_AN_INTEGER))),
    "wrong_type_fields": ("wrong_type", lambda draw, e, b: _changed(e, **{draw(st.sampled_from(SIDE_FIELDS)):
                                                                          draw(NOT_SIDE_FIELDS)})),
    "too_many_values": ("wrong_type", _too_many_values),
    "empty_id": ("bad_value", lambda draw, e, b: _changed(e, **{draw(st.sampled_from(IDS)): ""})),
    "long_id": ("bad_value", _long_id),
    "reserved_user": ("bad_value", lambda draw, e, b: _changed(e, user_id=RESERVED_KEY_PREFIX
                                                               + draw(st.text()))),
    "long_behaviour": ("bad_value", lambda draw, e, b: _changed(e, behaviour="b"
                                                                * (MAX_BEHAVIOUR_CHARS + 1))),
    "too_many_fields": ("bad_value", _too_many_fields),
    "long_value": ("bad_value", lambda draw, e, b: _changed(e, item_fields={"genre": "g"
                                                                            * (MAX_VALUE_CHARS + 1)})),
    "bad_timestamp": ("bad_timestamp", _bad_timestamp),
}


@st.composite
def malformed(draw, bounds: Bounds) -> tuple[bytes, str]:
    """One payload and the reason code it must be dead-lettered with."""
    event = valid_event(draw(st.integers(0, 10**9)), bounds.now_ms)
    reason, make = DEFECTS[draw(st.sampled_from(sorted(DEFECTS)))]
    return make(draw, event, bounds), reason


def _not_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return False
