"""Settings, event validation and window state: the pure parts of the streaming path."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from amsrm.messages import BehaviourEvent
from amsrm.settings import StreamSettings, describe, env_name
from streams.local.measure import Measurement
from streams.worker.state import UserWindow
from streams.worker.validation import Limits, Rejected, parse_event

NOW = 1_790_000_000_000
LIMITS = Limits(max_bytes=2048, min_time_ms=946_684_800_000, max_skew_ms=86_400_000)
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "timestamp": NOW, "behaviour": "click",
        "item_fields": {"category": "c1", "tags": ["a", "b"]}, "user_fields": {"age": "25-34"}}


def test_every_setting_has_env_var_default_and_meaning():
    rows = describe()
    assert len(rows) == len(dataclasses.fields(StreamSettings))
    for env, kind, default, doc in rows:
        assert env.startswith("AMSRM_") and kind in ("str", "int", "float", "bool") and doc
        assert default != ""


def test_settings_from_file_then_env_then_overrides(tmp_path):
    config = tmp_path / "stream.toml"
    config.write_text('top_k = 5\nbroker_url = "kafka://file:9092"\nexclude_window = false\n')
    env = {"AMSRM_CONFIG": str(config), "AMSRM_TOP_K": "7", "AMSRM_BATCH_LATENCY_MS": "2.5"}
    settings = StreamSettings.load(env, partitions=8)
    assert (settings.top_k, settings.broker_url, settings.exclude_window) == (7, "kafka://file:9092", False)
    assert (settings.batch_latency_ms, settings.partitions) == (2.5, 8)


def test_settings_round_trip_through_the_environment():
    settings = StreamSettings.load({}, top_k=3, exclude_window=False, broker_url="kafka://a:1;kafka://b:2")
    assert StreamSettings.load(settings.to_env()) == settings
    assert settings.bootstrap_servers == "a:1,b:2"
    assert env_name("top_k") == "AMSRM_TOP_K"


@pytest.mark.parametrize("env, message", [({"AMSRM_TOP_K": "ten"}, "AMSRM_TOP_K takes a int"),
                                          ({"AMSRM_EXCLUDE_WINDOW": "maybe"}, "true or false")])
def test_bad_setting_values_say_which_variable(env, message):
    with pytest.raises(ValueError, match=message):
        StreamSettings.load(env)


def test_unknown_keys_in_the_config_file_are_refused(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("topk = 5\n")
    with pytest.raises(ValueError, match="unknown settings"):
        StreamSettings.load({"AMSRM_CONFIG": str(config)})


def test_a_valid_event_parses():
    event = parse_event(orjson.dumps(GOOD), LIMITS, NOW)
    assert isinstance(event, BehaviourEvent)
    assert (event.user_id, event.item_id, event.behaviour, event.timestamp) == ("u1", "i1", "click", NOW)
    assert event.item_fields == {"category": "c1", "tags": ["a", "b"]}
    minimal = {k: GOOD[k] for k in ("event_id", "user_id", "item_id", "timestamp")}
    assert parse_event(orjson.dumps({**minimal, "extra": [1]}), LIMITS, NOW).behaviour is None


@pytest.mark.parametrize("payload, reason", [
    (None, "empty"),
    (b"", "empty"),
    (b"\xff\xfe", "bad_json"),
    (b'{"event_id": "e"', "bad_json"),
    (b'"a string"', "not_an_object"),
    (orjson.dumps({**GOOD, "item_id": None}), "missing_field"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "timestamp"}), "missing_field"),
    (orjson.dumps({**GOOD, "user_id": 42}), "wrong_type"),
    (orjson.dumps({**GOOD, "user_id": ""}), "bad_value"),
    (orjson.dumps({**GOOD, "user_id": "u" * 300}), "bad_value"),
    (orjson.dumps({**GOOD, "behaviour": 3}), "wrong_type"),
    (orjson.dumps({**GOOD, "timestamp": "2026-01-01"}), "wrong_type"),
    (orjson.dumps({**GOOD, "timestamp": 1.5e12}), "wrong_type"),
    (orjson.dumps({**GOOD, "timestamp": True}), "wrong_type"),
    (orjson.dumps({**GOOD, "timestamp": 1_700}), "bad_timestamp"),
    (orjson.dumps({**GOOD, "timestamp": NOW + 2 * 86_400_000}), "bad_timestamp"),
    (orjson.dumps({**GOOD, "item_fields": ["c1"]}), "wrong_type"),
    (orjson.dumps({**GOOD, "item_fields": {"category": 1}}), "wrong_type"),
    (orjson.dumps({**GOOD, "user_fields": {f"f{i}": "x" for i in range(40)}}), "bad_value"),
    (orjson.dumps({**GOOD, "event_id": "e" * 3000}), "oversized"),
    (orjson.dumps({**GOOD, "user_id": "__faust\u0000offset__"}), "bad_value"),  # Faust's own store key
    (orjson.dumps({**GOOD, "user_id": "__faust"}), "bad_value"),
])
def test_malformed_events_are_rejected_with_a_reason(payload, reason):
    result = parse_event(payload, LIMITS, NOW)
    assert isinstance(result, Rejected) and result.reason == reason and result.detail


def entry_event(n: int) -> BehaviourEvent:
    return BehaviourEvent(event_id=f"e{n}", user_id="u", item_id=f"i{n}", timestamp=NOW + n,
                          behaviour="click", user_fields={"age": str(n)} if n % 2 else None)


def test_window_is_bounded_and_round_trips():
    window = UserWindow()
    for n in range(7):
        window = window.append(entry_event(n), offset=10 + n, length=3)
    assert [e.item_id for e in window.entries] == ["i4", "i5", "i6"]
    assert window.user_fields == {"age": "5"}  # the latest event that carried user fields
    assert UserWindow.from_bytes(window.to_bytes()) == window
    assert UserWindow.from_bytes(None) == UserWindow()


def test_window_before_a_redelivered_offset():
    window = UserWindow()
    for n in range(4):
        window = window.append(entry_event(n), offset=100 + n, length=10)
    assert window.last_offset == 103
    assert [e.item_id for e in window.before(102).entries] == ["i0", "i1"]


def test_a_window_keeps_the_history_a_redelivery_from_the_committed_offset_needs():
    """Three events per window, committed up to offset 105: everything from 105 on may come again,
    each needing the three before it, so 102.. stay; once committed further, they go."""
    window = UserWindow()
    for n in range(10):
        window = window.append(entry_event(n), offset=100 + n, length=3, keep_from=105)
    assert [e.offset for e in window.entries] == list(range(102, 110))
    assert [e.item_id for e in window.before(105).recent(3).entries] == ["i2", "i3", "i4"]
    assert [e.offset for e in window.recent(3).entries] == [107, 108, 109]
    later = window.append(entry_event(10), offset=110, length=3, keep_from=111)
    assert [e.offset for e in later.entries] == [108, 109, 110]


def test_documented_schema_matches_the_validator():
    from pathlib import Path

    from streams.worker import validation

    schema = orjson.loads((Path(__file__).parents[1] / "docs" / "schemas" / "event.schema.json").read_bytes())
    assert tuple(schema["required"]) == validation.REQUIRED
    props = schema["properties"]
    assert props["event_id"]["maxLength"] == props["user_id"]["maxLength"] == validation.MAX_ID_CHARS
    assert props["behaviour"]["anyOf"][0]["maxLength"] == validation.MAX_BEHAVIOUR_CHARS
    for name in ("user_fields", "item_fields"):
        fields = props[name]["anyOf"][0]
        assert fields["maxProperties"] == validation.MAX_FIELDS
        assert fields["propertyNames"]["maxLength"] == validation.MAX_VALUE_CHARS
        assert fields["additionalProperties"]["anyOf"][1]["maxItems"] == validation.MAX_FIELD_VALUES
    for example in schema["examples"]:
        assert isinstance(parse_event(orjson.dumps(example), LIMITS, example["timestamp"]), BehaviourEvent)


def test_latency_percentiles_per_slice_show_a_drift():
    measurement = Measurement(latencies_ms=[5.0] * 100 + [50.0] * 100 + [500.0] * 50)
    slices = measurement.percentiles_per_slice(100)
    assert [s["p50"] for s in slices] == [5.0, 50.0]  # the incomplete last slice is left out
    assert measurement.percentiles_per_slice(1000) == []


def test_the_worker_cli_passes_the_event_loop_setting_to_faust_unless_told_otherwise():
    from streams.__main__ import with_event_loop

    assert with_event_loop(["streams", "worker"], "uvloop") == ["streams", "--loop", "uvloop", "worker"]
    given = ["streams", "-L", "asyncio", "worker"]
    assert with_event_loop(given, "uvloop") == given
    assert with_event_loop(["streams", "worker"], "asyncio") == ["streams", "worker"]
    with pytest.raises(SystemExit, match="AMSRM_EVENT_LOOP"):
        with_event_loop(["streams", "worker"], "trio")
