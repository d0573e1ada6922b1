"""The stream's messages, one typed model each: the one source of their JSON, limits and schemas.

- ``BehaviourEvent`` (in, on the events topic): the worker decodes and validates raw bytes into
  it (``streams.worker.validation``), the producers encode through it;
- ``Recommendation`` and ``LabelledSample`` (out): the worker encodes through them, the
  retraining collector reads samples;
- ``DeadLetterHeaders``: why and where from a dead letter came (its value is the raw bytes);
  ``WorkerHeaders``: which worker published a recommendation.

They are msgspec Structs: its typed decoder checks an event against the field types and the
limits below in one pass, and its encoder writes the JSON orjson wrote from hand-built dicts
(same keys in the same order, same values), at least as fast; ``bench/messages_bench.py``
measured it against pydantic and dataclasses (docs/results/messages-bench.json).  The one
difference in bytes: a float of magnitude 1e16 or more is written ``1e16`` where orjson wrote
``1e+16`` (the same JSON number; scores never get there).  Times are integer milliseconds
since the Unix epoch.  ``gc=False``: the messages hold only strings, numbers, lists and dicts,
never a reference cycle, so the garbage collector need not track them.

The JSON Schemas in docs/schemas/ and docs/asyncapi.yaml are generated from these models and
the settings (``amsrm schemas``: amsrm.schemas).  A neutral module: it imports nothing of the
project, so producers, streams and the core can all use it.
"""

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self, cast, get_args

import msgspec
from msgspec import Meta, Struct

# Bump the major version on a change that breaks a consumer (docs/asyncapi.yaml's info.version).
MESSAGES_VERSION = "1.0.0"

# --------------------------------------------------------------------------- limits of an event
MAX_ID_CHARS = 256
MAX_BEHAVIOUR_CHARS = 64
MAX_FIELDS = 32  # side fields per entity
MAX_FIELD_VALUES = 32  # values of one multi-valued field
MAX_VALUE_CHARS = 256  # of a side field's name and of each of its values

# Reason codes of dead letters: what validation rejects, then the worker's own (the last two).
DeadLetterReason = Literal["empty", "oversized", "bad_json", "not_an_object", "missing_field", "wrong_type",
                           "bad_value", "bad_timestamp",
                           "scoring_error",  # the scorer failed on this window alone
                           "processing_error"]  # handling this event raised on every try
DEAD_LETTER_REASONS: tuple[str, ...] = get_args(DeadLetterReason)
REJECTION_REASONS = DEAD_LETTER_REASONS[:-2]  # streams.worker.validation's


def about(description: str, *, examples: list[Any] | None = None, pattern: str | None = None) -> Meta:
    """A field's meaning (with examples, a pattern) for the schemas."""
    return Meta(description=description, examples=examples, pattern=pattern)


Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]
BehaviourName = Annotated[str, Meta(min_length=1, max_length=MAX_BEHAVIOUR_CHARS)]
FieldText = Annotated[str, Meta(max_length=MAX_VALUE_CHARS)]
SideFields = Annotated[
    dict[FieldText, FieldText | Annotated[list[FieldText], Meta(max_length=MAX_FIELD_VALUES)]],
    Meta(max_length=MAX_FIELDS)]  # name → a value or a list of values


# --------------------------------------------------------------------------- the event (in)
class BehaviourEvent(Struct, kw_only=True, frozen=True, gc=False):
    """One user action on the events topic, keyed by its user_id (UTF-8 bytes).

    The Kafka message key must be the user id: the worker's per-user window table is
    co-partitioned with the topic, and an event under another key is re-published under its user
    id before it is processed.  A payload that breaks a rule goes, unchanged, to the dead-letter
    topic with the reason in the amsrm-reason header.  Properties not listed here are accepted
    and ignored.
    """

    event_id: Annotated[Id, about("Unique id of this event. Recommendations and labelled samples carry it; "
                                  "consumers deduplicate on it (the worker is at-least-once).")]
    user_id: Annotated[Id, about("Raw user id, as in the training data. Unknown users are scored from their "
                                 "window alone; a user with no known item in the window gets the popularity "
                                 "fallback.")]
    item_id: Annotated[Id, about("Raw item id, as in the training data. Unknown items are kept in the window "
                                 "(as the model's unknown index) and never recommended.")]
    behaviour: Annotated[BehaviourName, about("Behaviour type (click, like, share, buy, cart, …). Null or "
                                              "absent when the source has no behaviour types.")] | None = None
    user_fields: Annotated[SideFields, about(
        "Optional user side information: field name → a value or a list of values. Stored in the window and "
        "published with labelled samples.", examples=[{"gender": "F", "age_band": "25-34"}])] | None = None
    item_fields: Annotated[SideFields, about(
        "Optional item side information: field name → a value or a list of values. Stored in the window and "
        "published with labelled samples.", examples=[{"category": "c3", "tags": ["a", "b"]}])] | None = None
    timestamp: Annotated[int, about("Event time in integer milliseconds since the Unix epoch.")]


REQUIRED = tuple(f.name for f in msgspec.structs.fields(BehaviourEvent) if f.required)

EVENT_EXAMPLES = [
    {"event_id": "synthetic-17", "user_id": "u0", "item_id": "i1043", "behaviour": "click",
     "user_fields": {"gender": "F", "age_band": "25-34"}, "item_fields": {"category": "c7", "brand": "b21"},
     "timestamp": 1795735043036},
    {"event_id": "beauty-9", "user_id": "A1YJEY40YUW4SE", "item_id": "B004756YJA",
     "timestamp": 1795735043037},
]


# --------------------------------------------------------------------------- what the worker publishes
class Recommendation(Struct, frozen=True, gc=False):
    """Top-K for a user right after one of their events, keyed by its user_id (UTF-8 bytes)."""

    user_id: Annotated[Id, about("The user, as in the event.")]
    event_id: Annotated[Id, about("The event that triggered it: downstream deduplicates on it.")]
    items: Annotated[list[str], about("Raw item ids, best first.")]
    scores: Annotated[list[float], about("The scores of items, in the same order.")]
    model_version: Annotated[str, about("The model's name and the first 12 hex digits of its weights' "
                                        "SHA-256.")]
    event_time_ms: Annotated[int, about("The triggering event's timestamp (ms since the epoch).")]
    publish_time_ms: Annotated[int, about("When the worker published it (ms since the epoch).")]
    fallback: Annotated[str, about("The source other than the model, if any: \"popularity\" when the user "
                                   "had no usable history.")] | None = None


RECOMMENDATION_EXAMPLES = [{
    "user_id": "u230", "event_id": "synthetic-4217", "items": ["i154", "i253", "i266"],
    "scores": [2.02, 1.96, 1.93], "model_version": "amsrm-8f57dc6348b3", "event_time_ms": 1795735043036,
    "publish_time_ms": 1795735043051, "fallback": None}]


class SampleEntry(Struct, frozen=True, gc=False):
    """One event of a labelled sample's window, as it arrived."""

    event_id: Id
    item_id: Id
    behaviour: BehaviourName | None
    timestamp: Annotated[int, about("Event time (ms since the epoch).")]
    item_fields: SideFields | None = None


class LabelledSample(Struct, frozen=True, gc=False):
    """A training example for the retraining collector, keyed by its user_id (UTF-8 bytes): the
    window before an event, and the event's item."""

    user_id: Id
    event_id: Annotated[Id, about("The event whose item is the label: the deduplication key.")]
    window: Annotated[list[SampleEntry], about("The up to n events before this one, oldest first.")]
    user_fields: Annotated[SideFields, about("The user's latest known side fields.")] | None
    next_item_id: Annotated[Id, about("The label: this event's item.")]
    next_behaviour: Annotated[BehaviourName, about("This event's behaviour.")] | None
    event_time_ms: Annotated[int, about("This event's timestamp (ms since the epoch).")]
    next_item_fields: Annotated[SideFields, about("The side fields of next_item_id (null from workers "
                                                  "that do not publish them).")] | None = None


SAMPLE_EXAMPLES = [{
    "user_id": "u230", "event_id": "synthetic-4217",
    "window": [{"event_id": "synthetic-4101", "item_id": "i154", "behaviour": "click",
                "timestamp": 1795735041210, "item_fields": {"category": "c3", "brand": "b21"}},
               {"event_id": "synthetic-4188", "item_id": "i87", "behaviour": "buy",
                "timestamp": 1795735042540, "item_fields": None}],
    "user_fields": {"gender": "F", "age_band": "25-34"}, "next_item_id": "i1043", "next_behaviour": "click",
    "event_time_ms": 1795735043036, "next_item_fields": {"category": "c7", "tags": ["a", "b"]}}]


# --------------------------------------------------------------------------- Kafka headers
class _Headers(Struct, frozen=True, gc=False):
    """Kafka headers as a model: the fields are renamed to the header names; values are UTF-8."""

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """(name, UTF-8 value) pairs, as aiokafka and Faust take them."""
        return [(name, getattr(self, field).encode()) for field, name in
                zip(self.__struct_fields__, self.__struct_encode_fields__, strict=True)]

    @classmethod
    def from_kafka(cls, headers: Iterable[tuple[str, bytes]]) -> Self:
        """From a consumer record's (name, bytes) headers; other headers are ignored."""
        return msgspec.convert({name: value.decode() for name, value in headers}, cls)


class DeadLetterHeaders(_Headers, frozen=True, rename={"reason": "amsrm-reason", "detail": "amsrm-detail",
                                                         "source": "amsrm-source",
                                                         "truncated": "amsrm-truncated"}):
    """The headers of a dead letter, whose key and value are the rejected message's, unchanged
    (or, with ``truncated``, their prefixes); they follow the headers the message carried, kept as
    they came (one named like these is replaced by ours)."""

    reason: Annotated[DeadLetterReason, about(
        "Machine-readable reason code: what validation rejected, scoring_error for a window the scorer "
        "failed on, or processing_error for an event whose handling raised on every try.")]
    detail: Annotated[str, about("Human-readable explanation.")]
    source: Annotated[str, about("Where the message was read: topic/partition/offset.",
                                 pattern=r"^[A-Za-z0-9._-]+/[0-9]+/[0-9]+$")]
    truncated: Annotated[str, about(
        "Only on a dead letter too large to send whole: the original key and value sizes in bytes "
        "('key=K value=V'); its key and value are then prefixes of the original, which stays at source.",
        pattern=r"^key=[0-9]+ value=[0-9]+$")] = ""

    @classmethod
    def of(cls, reason: str, detail: str, topic: str, partition: int, offset: int) -> Self:
        return cls(cast(DeadLetterReason, reason), detail, f"{topic}/{partition}/{offset}")  # not checked

    def kafka_headers(self) -> list[tuple[str, bytes]]:  # the generic one, unrolled (about 4× faster)
        headers = [(REASON_HEADER, self.reason.encode()), (DETAIL_HEADER, self.detail.encode()),
                   (SOURCE_HEADER, self.source.encode())]
        if self.truncated:
            headers.append((TRUNCATED_HEADER, self.truncated.encode()))
        return headers


class WorkerHeaders(_Headers, frozen=True, rename={"worker": "amsrm-worker"}):
    """The headers of a recommendation."""

    worker: Annotated[str, about("The worker that published it: host:pid.")]


DEAD_LETTER_HEADERS_EXAMPLES = [{"amsrm-reason": "missing_field", "amsrm-detail": "missing item_id",
                                 "amsrm-source": "amsrm-events/3/18231"}]
WORKER_HEADERS_EXAMPLES = [{"amsrm-worker": "amsrm-worker-0:7"}]

REASON_HEADER, DETAIL_HEADER, SOURCE_HEADER, TRUNCATED_HEADER = DeadLetterHeaders.__struct_encode_fields__
(WORKER_HEADER,) = WorkerHeaders.__struct_encode_fields__

# --------------------------------------------------------------------------- coding
encode = msgspec.json.Encoder().encode  # any of the models → JSON bytes
decode_event = msgspec.json.Decoder(BehaviourEvent).decode  # raises msgspec.DecodeError (ValidationError)
decode_sample = msgspec.json.Decoder(LabelledSample).decode
