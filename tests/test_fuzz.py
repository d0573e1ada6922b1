"""Generated malformed events (tests/fuzz_events.py): each refused with its reason, nothing valid lost.

The property test runs validation alone on many drawn payloads.  The broker test sends a worker
more than 500 drawn malformed events interleaved with valid ones and checks that every malformed one
is dead-lettered once with its reason and original bytes, every valid one recommended, and that
the worker is still running at the end.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from fuzz_events import Bounds, malformed
from hypothesis import HealthCheck, Phase, given, settings
from test_streams_integration import (  # noqa: F401 (checkpoint: a fixture)
    NOW_MS,
    TIMEOUT_S,
    checkpoint,
    events_of,
    ids_cover,
    new_settings,
    produce,
    read,
)

from amsrm.settings import StreamSettings
from producers.events import encode
from streams.local.worker_process import WorkerProcess
from streams.worker.processing import REASON_HEADER, now_ms
from streams.worker.validation import Limits, Rejected, parse_event

DEFAULTS = StreamSettings.load({})
LIMITS = Limits.of(DEFAULTS)
NOW = now_ms()  # the worker checks event times against its own clock
PAYLOADS = malformed(Bounds(NOW, LIMITS.max_bytes, LIMITS.min_time_ms, LIMITS.max_skew_ms))
MALFORMED_IN_STREAM = 600


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(PAYLOADS)
def test_every_drawn_malformed_payload_is_refused_with_its_reason(drawn):
    raw, reason = drawn
    verdict = parse_event(raw, LIMITS, NOW)
    assert isinstance(verdict, Rejected) and verdict.reason == reason, (raw[:120], verdict)


def drawn(count: int) -> list[tuple[bytes, str]]:
    """``count`` payloads as Hypothesis generates them for a test (seeded by the test's name): a
    varied corpus, where a list drawn as one example would start from the simplest one."""
    found: list[tuple[bytes, str]] = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(PAYLOADS)
    def collect(payload: tuple[bytes, str]) -> None:
        found.append(payload)

    collect()
    return found


@pytest.mark.slow
@pytest.mark.broker
def test_a_worker_dead_letters_every_malformed_event_and_recommends_every_valid_one(
        broker, checkpoint, small_synthetic, tmp_path_factory):  # noqa: F811
    malformed_events = drawn(MALFORMED_IN_STREAM)
    kinds = Counter(reason for _, reason in malformed_events)
    assert len(malformed_events) >= 500 and len(kinds) == 8, f"the draw must cover every reason: {kinds}"
    stream_settings = new_settings(broker, tmp_path_factory.mktemp("fuzz"), checkpoint)
    events = events_of(small_synthetic, 1500)
    messages = [encode(e, NOW_MS) for e in events]
    keys = [f"fuzz-{i}".encode() for i in range(len(malformed_events))]
    for i, (key, (raw, _)) in enumerate(zip(keys, malformed_events, strict=True)):
        messages.insert(2 * i + 1, (key, raw))  # malformed and valid alternate for the first 1,200
    with WorkerProcess(stream_settings, tmp_path_factory.mktemp("logs") / "worker.log") as worker:
        worker.wait_ready(TIMEOUT_S)
        produce(stream_settings, messages)
        recs = read(stream_settings, stream_settings.recommendations_topic,
                    ids_cover({e["event_id"] for e in events}))
        dead = read(stream_settings, stream_settings.dead_letters_topic, lambda m: len(m) >= len(keys))
        assert worker.exit_code() is None, "the worker stopped"
    assert Counter(orjson.loads(m.value)["event_id"] for m in recs) == Counter(e["event_id"] for e in events)
    got = Counter((m.key, m.value, dict(m.headers)[REASON_HEADER].decode()) for m in dead)
    sent = Counter((key, raw, reason) for key, (raw, reason) in zip(keys, malformed_events, strict=True))
    assert got == sent, f"{len(dead)} dead letters for {len(keys)} malformed events"
