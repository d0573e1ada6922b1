"""The scoring agent without a broker: Faust's test context, memory store, mocked output topics."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from unittest.mock import AsyncMock

import jsonschema
import msgspec
import orjson
import pytest
from faust.exceptions import AlreadyConfiguredWarning

from amsrm.messages import LabelledSample, Recommendation
from amsrm_core.scoring import FALLBACK_POPULARITY, Scorer
from streams.local.checkpoints import ensure_checkpoint
from streams.worker import agents
from streams.worker.app import app
from streams.worker.processing import DEAD_LETTER_HEADER_NAMES, DETAIL_HEADER, REASON_HEADER
from streams.worker.state import UserWindow
from streams.worker.tables import windows_table

NOW = 1_790_000_000_000
SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
RECOMMENDATION_KEYS = ["user_id", "event_id", "items", "scores", "model_version", "event_time_ms",
                       "publish_time_ms", "fallback"]
SAMPLE_KEYS = ["user_id", "event_id", "window", "user_fields", "next_item_id", "next_behaviour",
               "event_time_ms", "next_item_fields"]
SAMPLE_ENTRY_KEYS = ["event_id", "item_id", "behaviour", "timestamp", "item_fields"]


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(orjson.loads((SCHEMAS / f"{name}.schema.json").read_bytes()))


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, small_synthetic) -> Scorer:
    path = ensure_checkpoint(tmp_path_factory.mktemp("agent-ckpt"), small_synthetic, epochs=1,
                             overrides={"max_len": 5})
    return Scorer.from_checkpoint(path, k=5)


@pytest.fixture
def outputs(monkeypatch, scorer):
    """Memory store, a fresh table, the test scorer, and every outgoing topic replaced by a mock."""
    app.finalize()
    with warnings.catch_warnings():  # the store is read lazily, so switching it here is safe
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.conf.store = "memory://"
    app.flow_control.resume()
    windows_table.data.reset_state()
    monkeypatch.setattr(agents, "load_scorer", lambda settings: scorer)
    mocks = {name: AsyncMock() for name in
             ("recommendations_topic", "samples_topic", "dead_letters_topic", "events_topic")}
    for name, mock in mocks.items():
        monkeypatch.setattr(agents, name, mock)
    monkeypatch.setattr(agents, "sink", lambda topic: topic)  # the mocks see the encoded sends
    # the worker's own samples show the windows it scored (by default the collector labels the events)
    monkeypatch.setattr(agents, "settings", agents.settings.replace(samples_source="worker"))
    return mocks


def event(user: str, item: str, n: int, **extra) -> tuple[bytes, bytes]:
    body = {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "behaviour": "click",
            "timestamp": NOW + n, **extra}
    return user.encode(), orjson.dumps(body)


async def sent(mock: AsyncMock, count: int, timeout_s: float = 5.0) -> list:
    """The values sent to a mocked topic once there are ``count`` of them (each names its source event,
    which exactly-once needs to pick the transaction)."""
    async with asyncio.timeout(timeout_s):
        while mock.send.await_count < count:
            await asyncio.sleep(0.01)
    calls = [dict(call.kwargs) for call in mock.send.await_args_list]
    assert all(call.pop("source", None) is not None for call in calls)
    return calls


async def put_history(agent, user: str, items: list[str]) -> None:
    for n, item in enumerate(items):
        key, value = event(user, item, n)
        await agent.put(value, key=key, wait=False)


async def test_events_update_windows_and_publish(outputs, small_synthetic):
    items = small_synthetic.item_vocab.tokens[2:9]
    async with agents.recommend.test_context() as agent:
        await put_history(agent, "u3", items)
        recs = await sent(outputs["recommendations_topic"], len(items))
        samples = await sent(outputs["samples_topic"], len(items) - 1)
    values = [msgspec.json.decode(r["value"], type=Recommendation) for r in recs]  # they follow the model
    assert [v.event_id for v in values] == [f"u3-{n}" for n in range(len(items))]
    last = values[-1]
    assert last.fallback is None and len(last.items) == 5
    assert not set(last.items) & set(items[-5:])  # the scored window (max_len 5) is excluded
    # the JSON subscribers read: these keys in this order, and exactly the bytes orjson writes for them
    assert all(list(orjson.loads(r["value"])) == RECOMMENDATION_KEYS for r in recs)
    assert all(orjson.dumps(orjson.loads(r["value"])) == r["value"] for r in recs + samples)
    assert list(Recommendation.__struct_fields__) == RECOMMENDATION_KEYS
    decoded = [orjson.loads(s["value"]) for s in samples]
    assert all(list(d) == SAMPLE_KEYS and list(d["window"][0]) == SAMPLE_ENTRY_KEYS for d in decoded)
    assert list(LabelledSample.__struct_fields__) == SAMPLE_KEYS
    for name, sends in (("recommendation", recs), ("labelled-sample", samples)):  # the documented schemas
        validator = schema_validator(name)
        for send in sends:
            validator.validate(orjson.loads(send["value"]))
    assert [e["item_id"] for e in decoded[-1]["window"]] == items[-6:-1]  # bounded to n = 5
    assert decoded[-1]["next_item_id"] == items[-1]


async def test_by_default_the_worker_publishes_no_samples(outputs, small_synthetic, monkeypatch):
    """The default samples source is the events topic (the collector labels them): no sample here."""
    monkeypatch.setattr(agents, "settings", agents.settings.replace(samples_source="events"))
    items = small_synthetic.item_vocab.tokens[2:6]
    async with agents.recommend.test_context() as agent:
        await put_history(agent, "u5", items)
        await sent(outputs["recommendations_topic"], len(items))
    assert outputs["samples_topic"].send.await_count == 0


async def test_table_keeps_the_last_n_events_and_what_a_redelivery_needs(outputs, small_synthetic):
    """Nothing committed yet: a crash would redeliver from offset 0, so every entry is kept; the
    last n are what is scored."""
    items = small_synthetic.item_vocab.tokens[2:10]
    async with agents.recommend.test_context() as agent:
        await put_history(agent, "u4", items)
        await sent(outputs["recommendations_topic"], len(items))
    window = UserWindow.from_bytes(windows_table.data[b"u4"])
    assert [e.item_id for e in window.recent(5).entries] == items[-5:]
    assert [e.offset for e in window.entries] == list(range(8))


async def test_cold_user_gets_popularity(outputs):
    async with agents.recommend.test_context() as agent:
        key, value = event("brand-new-user", "brand-new-item", 0)
        await agent.put(value, key=key, wait=False)
        (rec,) = await sent(outputs["recommendations_topic"], 1)
    value = orjson.loads(rec["value"])
    assert value["fallback"] == FALLBACK_POPULARITY
    assert value["user_id"] == "brand-new-user" and len(value["items"]) == 5


async def test_bad_events_become_dead_letters_and_the_agent_goes_on(outputs, small_synthetic):
    item = small_synthetic.item_vocab.tokens[2]
    bad = [b"{not json", orjson.dumps({"user_id": "u5"}), b"x" * 10_000,
           orjson.dumps({"event_id": "e", "user_id": "u5", "item_id": 7, "timestamp": NOW}),
           orjson.dumps({"event_id": "e", "user_id": "u5", "item_id": "i", "timestamp": 5})]
    async with agents.recommend.test_context() as agent:
        for value in bad:
            await agent.put(value, key=b"u5", wait=False)
        key, value = event("u5", item, 0)
        await agent.put(value, key=key, wait=False)
        dead = await sent(outputs["dead_letters_topic"], len(bad))
        (rec,) = await sent(outputs["recommendations_topic"], 1)
    reasons = [dict(d["headers"])[REASON_HEADER].decode() for d in dead]
    headers = schema_validator("dead-letter-headers")
    for d in dead:
        headers.validate({name: value.decode() for name, value in d["headers"]})
    assert reasons == ["bad_json", "missing_field", "oversized", "wrong_type", "bad_timestamp"]
    assert [d["value"] for d in dead] == bad  # the raw bytes, unchanged
    assert orjson.loads(rec["value"])["event_id"] == "u5-0"


async def test_wrongly_keyed_event_is_rekeyed_not_scored(outputs, small_synthetic):
    _, value = event("u6", small_synthetic.item_vocab.tokens[2], 0)
    async with agents.recommend.test_context() as agent:
        await agent.put(value, key=b"someone-else", headers=[("trace-id", b"t-6")], wait=False)
        (forwarded,) = await sent(outputs["events_topic"], 1)
    assert forwarded == {"key": b"u6", "value": value, "headers": [("trace-id", b"t-6")]}  # headers kept
    assert outputs["recommendations_topic"].send.await_count == 0


async def test_a_dead_letter_keeps_the_headers_of_the_event_and_ours_win_a_name_clash(outputs):
    async with agents.recommend.test_context() as agent:
        await agent.put(b"{not json", key=b"u5", wait=False,
                        headers=[("trace-id", b"t-5"), (REASON_HEADER, b"forged"), ("binary", b"\xff\x00")])
        (dead,) = await sent(outputs["dead_letters_topic"], 1)
    assert dead["headers"][:2] == [("trace-id", b"t-5"), ("binary", b"\xff\x00")]
    assert [v for n, v in dead["headers"] if n == REASON_HEADER] == [b"bad_json"]


async def test_headers_that_would_not_fit_a_request_are_left_at_the_source(outputs):
    """Carried headers over half a request are dropped from the dead letter (ours stay), so it still
    fits; the event's value keeps the room."""
    limit = agents.settings.producer_max_request_size
    async with agents.recommend.test_context() as agent:
        await agent.put(b"{not json", key=b"u5", wait=False, headers=[("blob", b"x" * (limit // 2 + 1))])
        (dead,) = await sent(outputs["dead_letters_topic"], 1)
    assert {n for n, _ in dead["headers"]} <= DEAD_LETTER_HEADER_NAMES  # ours only: "blob" was left out
    assert dict(dead["headers"])[REASON_HEADER] == b"bad_json"
    assert dead["value"] == b"{not json"


async def test_an_event_that_raises_on_every_try_is_dead_lettered_and_its_batch_goes_on(
        outputs, small_synthetic, monkeypatch):
    """A poison event (here: its user's stored window cannot be read) is tried poison_attempts times,
    then dead-lettered with the error; the valid events around it are recommended."""
    from streams.worker import processing

    real = processing.UserWindow.from_bytes
    tries = []

    def from_bytes(raw):
        if raw is not None and b"poison" in raw:
            tries.append(raw)
            raise ValueError("corrupt window")
        return real(raw)

    monkeypatch.setattr(processing.UserWindow, "from_bytes", staticmethod(from_bytes))
    item = small_synthetic.item_vocab.tokens[2]
    windows_table.data[b"u7"] = b"poison"
    async with agents.recommend.test_context() as agent:
        for user in ("u8", "u7", "u9"):
            key, value = event(user, item, 0)
            await agent.put(value, key=key, wait=False)
        (dead,) = await sent(outputs["dead_letters_topic"], 1)
        recs = await sent(outputs["recommendations_topic"], 2)
    assert len(tries) == agents.settings.poison_attempts
    assert dict(dead["headers"])[REASON_HEADER].decode() == "processing_error"
    assert b"corrupt window" in dict(dead["headers"])[DETAIL_HEADER]
    assert sorted(orjson.loads(r["value"])["event_id"] for r in recs) == ["u8-0", "u9-0"]


async def test_a_dead_letter_too_large_to_send_carries_a_prefix_and_says_so(outputs):
    from amsrm.messages import SOURCE_HEADER, TRUNCATED_HEADER

    limit = agents.settings.producer_max_request_size
    huge = b"x" * (limit + 500_000)
    async with agents.recommend.test_context() as agent:
        await agent.put(huge, key=b"k" * 5000, wait=False)
        (dead,) = await sent(outputs["dead_letters_topic"], 1)
    headers = {name: value.decode() for name, value in dead["headers"]}
    schema_validator("dead-letter-headers").validate(headers)
    assert headers[REASON_HEADER] == "oversized"
    assert headers[TRUNCATED_HEADER] == f"key=5000 value={len(huge)}"
    assert headers[SOURCE_HEADER].count("/") == 2
    assert huge.startswith(dead["value"]) and dead["key"] == b"k" * 1024
    assert len(dead["key"]) + len(dead["value"]) + 4096 <= limit


async def test_a_user_id_of_fausts_own_store_key_is_refused_not_crashing(outputs, small_synthetic):
    item = small_synthetic.item_vocab.tokens[2]
    async with agents.recommend.test_context() as agent:
        for user in ("__faust\u0000offset__", "u10"):
            key, value = event(user, item, 0)
            await agent.put(value, key=key, wait=False)
        (dead,) = await sent(outputs["dead_letters_topic"], 1)
        (rec,) = await sent(outputs["recommendations_topic"], 1)
    assert dict(dead["headers"])[REASON_HEADER].decode() == "bad_value"
    assert orjson.loads(rec["value"])["event_id"] == "u10-0"
