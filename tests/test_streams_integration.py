"""The worker, run as subprocesses (``python -m streams worker``), against a real broker.

One broker for the whole session (conftest's ``broker``: Apache Kafka, or Tansu with
AMSRM_TEST_BROKER=tansu), unique topics and app ids per test.
Checks: a recommendation for every valid event, dead letters with reasons, offline/online
parity, window recovery after a crash and after losing local state, two workers splitting
the partitions.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import test_broker_engine
from rocksdict import AccessType, Options, Rdict
from test_scoring import offline_top_k

from amsrm.settings import StreamSettings
from amsrm_core.checkpoint import load_checkpoint
from amsrm_core.runner import make_split
from producers.events import dataset_events, encode, time_order
from producers.kafka import make_producer
from streams.clients.admin import create_topics
from streams.clients.subscriber import read_until
from streams.local.broker import BrokerEngine, engine_settings
from streams.local.checkpoints import ensure_checkpoint
from streams.local.worker_process import WorkerError, WorkerProcess, wait_for_split
from streams.worker.processing import REASON_HEADER, WORKER_HEADER
from streams.worker.state import UserWindow

pytestmark = pytest.mark.slow

MAX_LEN = 4  # short windows, so truncation is exercised by short synthetic histories
TIMEOUT_S = 90.0
NOW_MS = 1_790_000_000_000
#: For tests that kill a process and start its successor in the same group: on Kafka the dead member
#: holds its partitions for the session timeout (Kafka's default 45 s); users who want faster
#: fail-over set it the same way (Kafka's floor is group.min.session.timeout.ms, 6 s).
FAST_FAILOVER = {"session_timeout_s": 8.0, "heartbeat_interval_s": 1.0}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_synthetic) -> Path:
    return ensure_checkpoint(tmp_path_factory.mktemp("stream-ckpt"), small_synthetic, epochs=1,
                             overrides={"max_len": MAX_LEN})


def new_settings(broker: BrokerEngine, tmp_path: Path, checkpoint: Path, recovery_safe: bool = False,
                 **changes) -> StreamSettings:
    tag = f"t{uuid.uuid4().hex[:8]}"
    options = dict(app_id=tag, events_topic=f"{tag}-events", recommendations_topic=f"{tag}-recs",
                   samples_topic=f"{tag}-samples", dead_letters_topic=f"{tag}-dead", partitions=4,
                   output_partitions=2, data_dir=str(tmp_path / f"{tag}-data"), model_path=str(checkpoint),
                   table_standby_replicas=0, commit_interval_s=0.5, batch_max=64,
                   ops_port=0,  # tests that scrape the endpoint pick a free port
                   samples_source="worker")  # the worker's samples show the windows it scored
    base = StreamSettings.load({}, **{**options, **changes})
    settings = engine_settings(base, broker, recovery_safe)
    asyncio.run(create_topics(settings))
    return settings


def events_of(data, count: int, offset: int = 0) -> list[dict]:
    return list(dataset_events(data, order=time_order(data)[offset:offset + count]))


def produce(settings: StreamSettings, messages: list[tuple]) -> None:
    """Each message (key, value) or (key, value, headers) to the events topic."""
    async def send() -> None:
        producer = make_producer(settings)
        await producer.start()
        try:
            for key, value, *headers in messages:
                await producer.send(settings.events_topic, value, key=key, headers=(headers or [None])[0])
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def read(settings: StreamSettings, topic: str, done) -> list:
    return asyncio.run(read_until(settings, [topic], done, TIMEOUT_S))


def ids_cover(expected: set[str]):
    return lambda messages: expected <= {orjson.loads(m.value)["event_id"] for m in messages}


def recomputed_windows(events: list[dict], n: int) -> dict[str, list[list[str]]]:
    """Per event id: the item ids of the last ``n`` events of its user before it (input order)."""
    history: dict[str, list[str]] = defaultdict(list)
    before = {}
    for e in events:
        before[e["event_id"]] = history[e["user_id"]][-n:]
        history[e["user_id"]].append(e["item_id"])
    return before


BAD = [
    (b"u-bad", b"{not json", "bad_json"),
    (b"u-bad", b"[1, 2, 3]", "not_an_object"),
    (b"u-bad", orjson.dumps({"event_id": "b1", "user_id": "u-bad", "timestamp": NOW_MS}), "missing_field"),
    (b"u-bad", orjson.dumps({"event_id": "b2", "user_id": "u-bad", "item_id": 3, "timestamp": NOW_MS}),
     "wrong_type"),
    (b"u-bad", orjson.dumps({"event_id": "b3", "user_id": "u-bad", "item_id": "i1", "timestamp": 17}),
     "bad_timestamp"),
    (b"u-bad", b'{"event_id": "' + b"x" * 9000 + b'"}', "oversized"),
    (None, b"", "empty"),
]


@pytest.fixture(scope="module")
def single_run(broker, checkpoint, small_synthetic, tmp_path_factory):
    """One worker, 1,200 replayed events with malformed ones in between; everything it published."""
    settings = new_settings(broker, tmp_path_factory.mktemp("single"), checkpoint)
    events = events_of(small_synthetic, 1200)
    valid = [encode(e, NOW_MS + i) for i, e in enumerate(events)]
    messages = list(valid)
    for i, (key, value, _) in enumerate(BAD):
        messages.insert(100 * (i + 1), (key, value, [("trace-id", f"bad-{i}".encode())]))
    rekeyed = {**events[0], "event_id": "rekeyed-0", "user_id": "only-rekeyed-user"}
    messages.append((b"wrong-key", encode(rekeyed, NOW_MS)[1], [("trace-id", b"rekeyed")]))
    expected = {e["event_id"] for e in events} | {"rekeyed-0"}
    with WorkerProcess(settings, tmp_path_factory.mktemp("logs") / "worker.log") as worker:
        worker.wait_ready(TIMEOUT_S)
        produce(settings, messages)
        recs = read(settings, settings.recommendations_topic, ids_cover(expected))
        dead = read(settings, settings.dead_letters_topic, lambda m: len(m) >= len(BAD))
        samples = read(settings, settings.samples_topic, lambda m: len(m) >= len(events) - 300)
    return settings, events, recs, dead, samples


def test_one_recommendation_per_valid_event(single_run):
    settings, events, recs, _, _ = single_run
    ids = [orjson.loads(m.value)["event_id"] for m in recs]
    assert sorted(ids) == sorted([e["event_id"] for e in events] + ["rekeyed-0"])  # no loss, no duplicate
    for m in recs:
        rec = orjson.loads(m.value)
        assert m.key == rec["user_id"].encode() and len(rec["items"]) == settings.top_k
        assert rec["publish_time_ms"] >= rec["event_time_ms"] and rec["model_version"].startswith("amsrm-")
        assert dict(m.headers)[WORKER_HEADER]


def test_malformed_events_are_dead_lettered_with_reasons(single_run):
    settings, _, _, dead, _ = single_run
    got = {(m.value, dict(m.headers)[REASON_HEADER].decode(), dict(m.headers)["trace-id"]) for m in dead}
    assert got == {(value, reason, f"bad-{i}".encode()) for i, (_, value, reason) in enumerate(BAD)}
    user = b"only-rekeyed-user"
    (rekeyed,) = [m for m in read(settings, settings.events_topic, lambda ms: any(m.key == user for m in ms))
                  if m.key == user]
    assert dict(rekeyed.headers)["trace-id"] == b"rekeyed"  # a re-keyed event keeps its headers


def test_stream_top_k_equals_offline_top_k(single_run, checkpoint, small_synthetic):
    """The published Top-K for each event = the offline model's Top-K for the same history."""
    settings, _, recs, _, _ = single_run
    data = small_synthetic
    split = make_split(data, "loo")
    position = {eid: p for p, eid in enumerate(data.event_ids)}
    published = {}
    for m in recs:
        rec = orjson.loads(m.value)
        p = position.get(rec["event_id"])
        # the offline case after p predicts from the same events: p must not be its user's last
        if p is not None and p + 1 < data.n_events and data.users[p + 1] == data.users[p]:
            published[p + 1] = rec
    cases = np.array(sorted(published))
    model = load_checkpoint(checkpoint).model
    values, indices = offline_top_k(model, split, cases, settings.top_k)
    tokens = data.item_vocab.tokens
    for row, case in enumerate(cases):
        rec = published[int(case)]
        expected = [tokens[i] for i in indices[row].tolist()]
        np.testing.assert_allclose(rec["scores"], values[row].numpy(), rtol=1e-4, atol=1e-4)
        mismatched = [k for k, (a, b) in enumerate(zip(rec["items"], expected, strict=True)) if a != b]
        # only an exact tie (within float noise of a differently shaped batch) may swap places
        assert all(abs(rec["scores"][k] - float(values[row, k])) < 1e-4 for k in mismatched)
    assert len(cases) > 800


def test_labelled_samples_carry_the_window_before_each_event(single_run):
    _, events, _, _, samples = single_run
    before = recomputed_windows(events, MAX_LEN)
    item_of = {e["event_id"]: e["item_id"] for e in events}
    assert len(samples) == len(events) - len(no_sample(events, set(item_of)))
    for m in samples:
        sample = orjson.loads(m.value)
        assert [e["item_id"] for e in sample["window"]] == before[sample["event_id"]]
        assert sample["next_item_id"] == item_of[sample["event_id"]]


def table_contents(data_dir: Path, partitions: set[int] | None = None) -> dict[bytes, UserWindow]:
    """Every window in a stopped worker's RocksDB files (of ``partitions`` only, if given)."""
    out = {}
    for path in sorted((data_dir / "v1" / "tables").glob("windows-*.db")):
        if partitions is not None and int(path.stem.rsplit("-", 1)[1]) not in partitions:
            continue
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            out.update({k: UserWindow.from_bytes(v) for k, v in db.items() if not k.startswith(b"__faust")})
        finally:
            db.close()
    return out


def test_restart_recovers_every_window(broker, checkpoint, small_synthetic, tmp_path):
    """Crash (SIGKILL) with local state kept, then a restart with local state wiped."""
    # no commit before the crash: every event of the first worker is redelivered to the second
    settings = new_settings(broker, tmp_path, checkpoint, recovery_safe=True, commit_interval_s=60.0,
                            **FAST_FAILOVER)
    events = events_of(small_synthetic, 900)
    parts = [events[:300], events[300:600], events[600:]]
    log_dir, data_dir = tmp_path / "logs", Path(settings.data_dir)
    seen: set[str] = set()
    for i, part in enumerate(parts):
        if i == 2:
            shutil.rmtree(data_dir)  # the third worker must rebuild every window from the changelog
        worker = WorkerProcess(settings, log_dir / f"worker-{i}.log").start()
        try:
            worker.wait_ready(TIMEOUT_S)
            produce(settings, [encode(e, NOW_MS) for e in part])
            seen |= {e["event_id"] for e in part}
            recs = read(settings, settings.recommendations_topic, ids_cover(seen))
        finally:
            worker.kill() if i == 0 else worker.stop()
    ids = [orjson.loads(m.value)["event_id"] for m in recs]
    assert set(ids) == seen
    redelivered = {eid for eid in ids if ids.count(eid) > 1}
    assert redelivered == {e["event_id"] for e in parts[0]}  # exactly the crashed worker's events repeat
    # windows after each restart: the samples of events the restarted workers saw first
    before = recomputed_windows(events, MAX_LEN)
    later = {e["event_id"] for e in parts[1] + parts[2]}
    with_sample = later - no_sample(events, later)
    samples = read(settings, settings.samples_topic, ids_cover(with_sample))
    checked = set()
    for m in samples:
        sample = orjson.loads(m.value)
        if sample["event_id"] in later:
            assert [e["item_id"] for e in sample["window"]] == before[sample["event_id"]]
            checked.add(sample["event_id"])
    assert checked == with_sample
    # and the final table state equals the recomputation from the input
    final: dict[str, list[str]] = defaultdict(list)
    for e in events:
        final[e["user_id"]] = [*final[e["user_id"]], e["item_id"]][-MAX_LEN:]
    table = table_contents(data_dir)
    recent = {k.decode(): [e.item_id for e in w.recent(MAX_LEN).entries] for k, w in table.items()}
    assert recent == dict(final)


def no_sample(events: list[dict], ids: set[str]) -> set[str]:
    """Events that publish no sample: a user's first event has an empty window before it."""
    first: dict[str, str] = {}
    for e in events:
        first.setdefault(e["user_id"], e["event_id"])
    return set(first.values()) & ids


def test_two_workers_split_partitions(broker, checkpoint, small_synthetic, tmp_path):
    settings = new_settings(broker, tmp_path, checkpoint)
    events = events_of(small_synthetic, 800)
    workers = [WorkerProcess(settings, tmp_path / f"worker-{i}.log") for i in range(2)]
    try:
        for w in workers:
            w.start()
        split_assignment(workers, settings.partitions)
        produce(settings, [encode(e, NOW_MS) for e in events])
        recs = read(settings, settings.recommendations_topic, ids_cover({e["event_id"] for e in events}))
    finally:
        for w in workers:
            w.stop()
    by_event = defaultdict(list)
    for m in recs:
        by_event[orjson.loads(m.value)["event_id"]].append(dict(m.headers)[WORKER_HEADER])
    assert set(by_event) == {e["event_id"] for e in events}
    assert all(len(v) == 1 for v in by_event.values())  # no rebalance after the split: exactly once
    producers = {w for v in by_event.values() for w in v}
    assert len(producers) == 2  # both workers published


def split_assignment(workers: list[WorkerProcess], partitions: int) -> None:
    """Wait until the workers hold disjoint, non-empty partition sets covering the topic."""
    try:
        wait_for_split(workers, partitions, TIMEOUT_S)
    except WorkerError as e:
        pytest.fail(str(e))


def test_cli_topics_produce_and_subscribe(broker, monkeypatch, capsys, tmp_path):
    from amsrm.cli import main

    tag = f"cli{uuid.uuid4().hex[:6]}"
    for name in ("EVENTS_TOPIC", "RECOMMENDATIONS_TOPIC", "SAMPLES_TOPIC", "DEAD_LETTERS_TOPIC", "APP_ID"):
        monkeypatch.setenv(f"AMSRM_{name}", f"{tag}-{name.lower()}")
    monkeypatch.setenv("AMSRM_CONSUMER_FETCH_MAX_WAIT_MS", "10")
    url = ["--broker-url", broker.url]
    assert main(["topics", *url]) == 0
    assert main(["produce", "replay", "--dataset", "synthetic", "--limit", "40", "--rate", "2000", *url]) == 0
    settings = StreamSettings.load().replace(broker_url=broker.url)
    events = read(settings, settings.events_topic, lambda m: len(m) >= 40)
    assert len(events) == 40 and all(m.key == orjson.loads(m.value)["user_id"].encode() for m in events)
    recs = [{"user_id": u, "event_id": e, "items": ["i1"], "scores": [1.0], "model_version": "m",
             "event_time_ms": NOW_MS, "publish_time_ms": NOW_MS, "fallback": None}
            for u, e in (("a", "e1"), ("a", "e1"), ("b", "e2"), ("a", "e3"))]
    produce(settings.replace(events_topic=settings.recommendations_topic),
            [(r["user_id"].encode(), orjson.dumps(r)) for r in recs])
    capsys.readouterr()
    assert main(["subscribe", "--user", "a", "--from-beginning", "--limit", "2", *url]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the duplicate of e1 is skipped, user b filtered out
    assert [line.split()[2].rstrip(":") for line in lines] == ["e1", "e3"]


@pytest.mark.broker  # the demo starts its own broker of the engine under test
def test_demo_runs_end_to_end(tmp_path):
    from streams.local.demo import DemoOptions, run_demo

    options = DemoOptions(events=300, rate=400, epochs=1, workdir=tmp_path, engine=test_broker_engine())
    summary = run_demo(options, StreamSettings.load({}))
    assert summary["recommendations"] == 300 and summary["dead_letters"] == 0
    assert summary["latency_ms"]["p50"] > 0


def test_a_reader_started_at_the_end_gets_what_follows_its_ready_call_and_nothing_older(broker, tmp_path,
                                                                                     checkpoint):
    """What the benchmark's latency phases rely on: they must not first replay earlier phases' outputs.

    The embedded broker reports a partition's end as its last *batch's* first offset + 1 (docs/BROKER.md),
    so such a reader may see part of the newest batch written before it was ready, never older ones.
    """
    settings = new_settings(broker, tmp_path, checkpoint)
    older, last_batch = [[(b"u", orjson.dumps({"n": i})) for i in range(j, j + 10)] for j in (0, 10)]
    new = [(b"u", orjson.dumps({"n": i})) for i in range(20, 25)]
    produce(settings, older)
    produce(settings, last_batch)

    async def scenario() -> list:
        ready = asyncio.Event()
        seen = lambda messages: {orjson.loads(m.value)["n"] for m in messages} >= set(range(20, 25))  # noqa: E731
        reader = asyncio.create_task(read_until(settings, [settings.events_topic], seen, TIMEOUT_S,
                                                from_beginning=False, on_ready=ready.set))
        await asyncio.wait_for(ready.wait(), TIMEOUT_S)
        await asyncio.to_thread(produce, settings, new)
        return await reader

    got = {orjson.loads(m.value)["n"] for m in asyncio.run(scenario())}
    assert got >= set(range(20, 25)) and not got & set(range(10))
