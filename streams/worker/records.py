"""Message schemas: the behaviour event (in) and what the worker publishes (out).

All are JSON encoded with orjson (Faust's json codec uses it), without Faust's
``__faust`` metadata, so any consumer can read them.  Times are integer
milliseconds since the Unix epoch.  The input schema is also documented as JSON
Schema in docs/event.schema.json; the worker validates raw bytes itself
(streams.worker.validation) so that a malformed payload becomes a dead letter instead of
an exception inside the agent.
"""

import faust


class BehaviourEvent(faust.Record, serializer="json", include_metadata=False):
    """One user action, keyed by ``user_id`` on the events topic."""

    event_id: str  # unique per event; the idempotency key downstream
    user_id: str
    item_id: str
    timestamp: int  # event time, ms since epoch
    behaviour: str | None = None  # click, buy, ...; None when the source has no behaviour types
    user_fields: dict | None = None  # optional side fields: name → value or list of values
    item_fields: dict | None = None


class Recommendation(faust.Record, serializer="json", include_metadata=False):
    """Top-K for a user right after one of their events, keyed by ``user_id``."""

    user_id: str
    event_id: str  # the event that triggered it: downstream deduplicates on this
    items: list[str]  # best first
    scores: list[float]  # same order as items
    model_version: str  # model name and the first 12 hex digits of its weights' SHA-256
    event_time_ms: int  # the triggering event's timestamp
    publish_time_ms: int  # when the worker published it
    fallback: str | None = None  # "popularity" when the user had no usable history


class LabelledSample(faust.Record, serializer="json", include_metadata=False):
    """A training example for the retraining collector: the window before an event, and its item."""

    user_id: str
    event_id: str
    window: list[dict]  # up to n events before this one, oldest first (see streams.worker.state.WindowEntry)
    user_fields: dict | None
    next_item_id: str
    next_behaviour: str | None
    event_time_ms: int
    next_item_fields: dict | None = None  # side fields of next_item_id (the training store keeps them)
