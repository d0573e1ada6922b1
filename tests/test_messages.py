"""The message models, their generated schemas and AsyncAPI document, and the two validation paths."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsonschema
import msgspec
import orjson
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from amsrm import messages, schemas
from amsrm.messages import BehaviourEvent, DeadLetterHeaders, LabelledSample, Recommendation, SampleEntry
from amsrm.settings import StreamSettings
from streams.worker.validation import REASONS, Limits, Rejected, parse_by_hand, parse_event

REPO = Path(__file__).resolve().parents[1]
# The official AsyncAPI 3.0.0 JSON Schema: schemas/3.0.0-without-$id.json of the npm package
# @asyncapi/specs 6.11.1 (asyncapi/spec-json-schemas), Apache-2.0, AsyncAPI Initiative: see
# tests/asyncapi/README.md.
ASYNCAPI_SCHEMA = REPO / "tests" / "asyncapi" / "asyncapi-3.0.0.schema.json"
ASYNCAPI_SCHEMA_SHA256 = "abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f"
NOW = 1_790_000_000_000
LIMITS = Limits(max_bytes=8192, min_time_ms=946_684_800_000, max_skew_ms=86_400_000)
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "behaviour": "click",
        "user_fields": {"age": "25-34"}, "item_fields": {"category": "c1", "tags": ["a", "b"]},
        "timestamp": NOW}


def load_schema(name: str) -> dict:
    return orjson.loads((REPO / "docs" / "schemas" / name).read_bytes())


def asyncapi_document() -> dict:
    return yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())


# --------------------------------------------------------------------------- generated files
def test_generated_schemas_and_asyncapi_are_current():
    for path, text in schemas.outputs().items():
        assert path.exists(), f"{path} is missing: run `amsrm schemas`"
        if path.suffix == ".json":
            assert path.read_text() == text, f"{path} is stale: run `amsrm schemas`"
        else:  # compared as data: PyYAML's line breaking is no part of the contract
            committed = path.read_text()
            assert committed.splitlines()[0] == text.splitlines()[0]
            assert yaml.safe_load(committed) == schemas.asyncapi(), f"{path} is stale: run `amsrm schemas`"
    committed = sorted(p.name for p in (REPO / "docs" / "schemas").iterdir())
    assert committed == sorted(n for n, *_ in schemas.SCHEMAS)


def test_schemas_command_checks_and_writes(tmp_path, capsys):
    from amsrm.cli import main

    with pytest.raises(SystemExit) as stale:
        main(["schemas", "--docs", str(tmp_path), "--check"])
    assert stale.value.code == 1 and not list(tmp_path.iterdir())
    assert main(["schemas", "--docs", str(tmp_path)]) == 0
    assert main(["schemas", "--docs", str(tmp_path), "--check"]) == 0
    assert (tmp_path / "schemas" / "event.schema.json").read_text() == \
        (REPO / "docs" / "schemas" / "event.schema.json").read_text()
    assert "current" in capsys.readouterr().err


@pytest.mark.parametrize("name", [n for n, *_ in schemas.SCHEMAS])
def test_schemas_are_valid_and_their_examples_fit_the_models(name):
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)  # AsyncAPI's schema objects are a draft-07 superset
    model = next(m for n, m, *_ in schemas.SCHEMAS if n == name)
    assert schema["examples"]
    for example in schema["examples"]:
        jsonschema.Draft202012Validator(schema).validate(example)
        msgspec.convert(example, model)


def test_the_event_schema_holds_the_models_limits():
    props = load_schema("event.schema.json")["properties"]
    assert props["event_id"]["maxLength"] == messages.MAX_ID_CHARS and props["event_id"]["minLength"] == 1
    assert props["behaviour"]["anyOf"][0]["maxLength"] == messages.MAX_BEHAVIOUR_CHARS
    fields = props["item_fields"]["anyOf"][0]
    assert fields["maxProperties"] == messages.MAX_FIELDS
    assert fields["propertyNames"]["maxLength"] == messages.MAX_VALUE_CHARS
    assert fields["additionalProperties"]["anyOf"][1]["maxItems"] == messages.MAX_FIELD_VALUES
    assert str(StreamSettings().max_event_bytes) in load_schema("event.schema.json")["description"]
    headers = load_schema("dead-letter-headers.schema.json")
    worker_reasons = ("scoring_error", "processing_error")
    assert sorted(headers["properties"]["amsrm-reason"]["enum"]) == sorted((*REASONS, *worker_reasons))


# --------------------------------------------------------------------------- AsyncAPI
def test_asyncapi_document_is_valid_asyncapi_3():
    """The official AsyncAPI 3.0.0 JSON Schema accepts it, and every local $ref resolves."""
    official = orjson.loads(ASYNCAPI_SCHEMA.read_bytes())
    assert hashlib.sha256(ASYNCAPI_SCHEMA.read_bytes()).hexdigest() == ASYNCAPI_SCHEMA_SHA256
    document = asyncapi_document()
    jsonschema.Draft7Validator(official).validate(document)

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(document))
    assert found and all(r.startswith("#/") for r in found)
    for ref in found:
        target = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]


def test_the_official_schema_refuses_a_broken_document():
    official = orjson.loads(ASYNCAPI_SCHEMA.read_bytes())
    broken = asyncapi_document()
    broken["channels"]["events"]["bindings"]["kafka"]["partitions"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(official).validate(broken)
    del broken["info"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(official).validate(broken)


def test_asyncapi_topics_follow_the_settings_and_examples_fit_their_payloads():
    document, s = asyncapi_document(), StreamSettings()
    channels = document["channels"]
    expected = {"events": (s.events_topic, s.partitions),
                "windowsChangelog": (s.changelog_topic, s.partitions),
                "recommendations": (s.recommendations_topic, s.output_partitions),
                "samples": (s.samples_topic, s.output_partitions),
                "deadLetters": (s.dead_letters_topic, s.output_partitions)}
    found = {name: (c["address"], c["bindings"]["kafka"]["partitions"]) for name, c in channels.items()}
    assert found == expected
    assert document["info"]["version"] == messages.MESSAGES_VERSION
    registry = Registry().with_resource("urn:asyncapi", Resource.from_contents(document,
                                                                               default_specification=DRAFT7))

    def check(instance, schema):
        ref = schema["$ref"]
        jsonschema.Draft7Validator({"$ref": f"urn:asyncapi{ref}"}, registry=registry).validate(instance)

    messages_ = document["components"]["messages"]
    assert messages_["deadLetter"]["headers"] == {"$ref": "#/components/schemas/DeadLetterHeaders"}
    for message in messages_.values():
        for example in message.get("examples", []):
            if "$ref" in message["payload"]:
                check(example["payload"], message["payload"])
            if "headers" in example:
                check(example["headers"], message["headers"])


# --------------------------------------------------------------------------- encoding
def test_outputs_are_todays_json():
    """The bytes orjson wrote from the hand-built dicts before the models existed."""
    rec = Recommendation(user_id="u", event_id="e", items=["a", "b"], scores=[2.0199999809265137, -0.5],
                         model_version="m", event_time_ms=NOW, publish_time_ms=NOW + 1)
    assert messages.encode(rec) == orjson.dumps(
        {"user_id": "u", "event_id": "e", "items": ["a", "b"], "scores": [2.0199999809265137, -0.5],
         "model_version": "m", "event_time_ms": NOW, "publish_time_ms": NOW + 1, "fallback": None})
    entry = {"event_id": "e0", "item_id": "i0", "behaviour": None, "timestamp": NOW - 1,
             "item_fields": {"c": ["x", "é"]}}
    sample = LabelledSample(user_id="u", event_id="e", window=[SampleEntry(**entry)], user_fields=None,
                            next_item_id="i", next_behaviour="buy", event_time_ms=NOW)
    assert messages.encode(sample) == orjson.dumps(
        {"user_id": "u", "event_id": "e", "window": [entry], "user_fields": None, "next_item_id": "i",
         "next_behaviour": "buy", "event_time_ms": NOW, "next_item_fields": None})
    for score in (0.0, -0.0, 1e-7, 3.4e-5, 123456.789, 9.999999999999998e15, float("nan"), float("inf")):
        assert messages.encode([score]) == orjson.dumps([score])
    assert messages.encode([1e16]) == b"[1e16]"  # orjson: 1e+16, the same number (see amsrm.messages)


def test_dead_letter_headers_round_trip():
    headers = DeadLetterHeaders.of("bad_json", "unexpected character", "amsrm-events", 2, 41)
    raw = headers.kafka_headers()
    assert raw == [("amsrm-reason", b"bad_json"), ("amsrm-detail", b"unexpected character"),
                   ("amsrm-source", b"amsrm-events/2/41")]
    assert DeadLetterHeaders.from_kafka([*raw, ("other", b"x")]) == headers
    jsonschema.validate({k: v.decode() for k, v in raw}, load_schema("dead-letter-headers.schema.json"))
    with pytest.raises(msgspec.ValidationError):
        DeadLetterHeaders.from_kafka([("amsrm-reason", b"no-such-reason"), *raw[1:]])


# --------------------------------------------------------------------------- the two validation paths
def payloads() -> list[bytes]:
    """Malformed and borderline events: every field with every kind of wrong value, and raw oddities."""
    values = [None, "", "x", "x" * 64, "x" * 65, "x" * 256, "x" * 257, 0, -1, 1.5, True, [], ["x"], {},
              {"a": 1}, {"a": "x"}, {"a": ["x"] * 32}, {"a": ["x"] * 33}, {"a": [1]}, {"a": None},
              {"k" * 257: "v"}, {"a": "v" * 257}, {f"f{i}": "x" for i in range(32)},
              {f"f{i}": "x" for i in range(33)},
              NOW, NOW + 2 * 86_400_000, 2**63 - 1, -(2**63), "é" * 256, "é" * 257]
    out = [orjson.dumps(GOOD), orjson.dumps({k: v for k, v in GOOD.items() if k in messages.REQUIRED})]
    for field in GOOD:
        for value in values:
            out.append(orjson.dumps({**GOOD, field: value}))
        out.append(orjson.dumps({k: v for k, v in GOOD.items() if k != field}))
    good = orjson.dumps(GOOD)
    out += [b"", b"{", b"[]", b"null", b'"x"', b"\xff", good[:-1] + b', "x": 1}', good + b" x",
            b"\xef\xbb\xbf" + good, good.replace(b'"u1"', b'"\\ud800"'), good.replace(b'"u1"', b'"\xc3"'),
            good.replace(b'"e1"', b'"e1", "event_id": "e2"'),
            good.replace(str(NOW).encode(), b"1790000000000.0"),
            good.replace(str(NOW).encode(), b"99999999999999999999999"),
            good[:-1] + b', "deep": ' + b"[" * 1500 + b"]" * 1500 + b"}", b"x" * 9000]
    return out


def test_the_fast_path_and_the_checks_by_hand_agree():
    """What msgspec accepts the checks by hand accept as the same event, and the other way round."""
    verdicts = []
    for raw in payloads():
        by_hand = parse_by_hand(raw, LIMITS, NOW)
        try:
            fast = messages.decode_event(raw)
            fast = fast if LIMITS.min_time_ms <= fast.timestamp <= NOW + LIMITS.max_skew_ms else None
        except (msgspec.DecodeError, RecursionError):
            fast = None
        if isinstance(by_hand, Rejected):
            assert fast is None, (raw[:120], by_hand)
        else:
            assert fast == by_hand, raw[:120]
        assert parse_event(raw, LIMITS, NOW) == by_hand
        verdicts.append(by_hand.reason if isinstance(by_hand, Rejected) else "valid")
    assert set(verdicts) == {"valid", *REASONS}  # every reason was exercised


def test_a_valid_event_decodes_into_the_model():
    event = parse_event(orjson.dumps(GOOD), LIMITS, NOW)
    assert isinstance(event, BehaviourEvent) and msgspec.structs.asdict(event) == GOOD
    assert messages.encode(event) == orjson.dumps(GOOD)  # the producers' JSON, field order included
