"""A client nobody here wrote: confluent-kafka (librdkafka) on both ends of a real worker.

Events go in through a ``confluent_kafka.Producer`` configured as docs/STREAMING.md tells
librdkafka users to (``partitioner=murmur2_random``: the Java client's and aiokafka's partition for
a key); recommendations and dead letters come out through a ``confluent_kafka.Consumer``, headers
included.  What it checks is the topic contract of docs/STREAMING.md and docs/asyncapi.yaml:
recommendations keyed by the user id, one per valid event, decoding with ``amsrm.messages``;
dead letters with the original key and bytes and the ``amsrm-reason`` / ``amsrm-detail`` /
``amsrm-source`` (``topic/partition/offset``) headers, the source being where the producer's
delivery report says the event landed; every keyed output on the partition murmur2 gives its key
(docs/DEPLOY.md: a user's partition is ``murmur2(user id) mod P``).  It runs on the broker
fixture's engine (AMSRM_TEST_BROKER).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter

import confluent_kafka
import msgspec
import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from test_streams_integration import (  # noqa: F401 (checkpoint: a fixture)
    BAD,
    NOW_MS,
    TIMEOUT_S,
    checkpoint,
    events_of,
    new_settings,
)

from amsrm.messages import (
    DETAIL_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
    WORKER_HEADER,
    DeadLetterHeaders,
    Recommendation,
    WorkerHeaders,
)
from amsrm.settings import StreamSettings
from producers.events import encode
from streams.local.worker_process import WorkerProcess

log = logging.getLogger(__name__)

#: Headers a producer of its own may put on events; a forged amsrm-reason among them must not
#: reach the dead letter beside (or instead of) the worker's own.
OWN_HEADERS = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
               (REASON_HEADER, b"scoring_error")]
#: Beyond BAD (aiokafka's test cases): a tombstone (a null value under a key), which only a client
#: that tells null from empty bytes can send.
TOMBSTONE = (b"u-tombstone", None, "empty")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little") * m & mask
        k = (k ^ k >> 24) * m & mask
        h = (h * m & mask) ^ k
    tail = data[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = (h ^ tail[0]) * m & mask
    h = (h ^ h >> 13) * m & mask
    return h ^ h >> 15


def java_partition(key: bytes, partitions: int) -> int:
    """The Java client's default partition of a keyed record: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_the_java_clients_test_vectors():
    """Kafka's UtilsTest.testMurmur2 cases (signed Java ints)."""
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829,
             b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}
    assert {k: murmur2(k) - (1 << 32) * (murmur2(k) >> 31) for k in cases} == cases


def produce_with_librdkafka(settings: StreamSettings, messages: list[tuple[bytes | None, bytes | None, list]]
                            ) -> list[Message]:
    """Each (key, value, headers) to the events topic; their delivery reports, in the same order."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random",
                         "acks": "all", "linger.ms": 5, "client.id": "amsrm-confluent-test"})
    reports: list[Message | None] = [None] * len(messages)

    def on_delivery(i: int):
        def report(error: KafkaError | None, message: Message) -> None:
            assert error is None, f"message {i} not delivered: {error}"
            reports[i] = message
        return report

    for i, (key, value, headers) in enumerate(messages):
        producer.produce(settings.events_topic, value, key, headers=headers or None,
                         on_delivery=on_delivery(i))
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0, "librdkafka could not deliver every event"
    assert all(r is not None for r in reports)
    return reports  # type: ignore[return-value]


def consume_with_librdkafka(settings: StreamSettings, done) -> dict[str, list[Message]]:
    """The recommendations and dead-letter topics from the start, until ``done(by_topic)`` or TIMEOUT_S."""
    topics = [settings.recommendations_topic, settings.dead_letters_topic]
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                         "group.id": f"{settings.app_id}-confluent-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": int(settings.session_timeout_s * 1000),
                         "heartbeat.interval.ms": int(settings.heartbeat_interval_s * 1000)})
    by_topic: dict[str, list[Message]] = {t: [] for t in topics}
    consumer.subscribe(topics)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not done(by_topic) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            by_topic[message.topic()].append(message)
    finally:
        consumer.close()
    return by_topic


@pytest.mark.slow
def test_librdkafka_producer_and_consumer_see_the_documented_contract(broker, checkpoint,  # noqa: F811
                                                                      small_synthetic, tmp_path):
    settings = new_settings(broker, tmp_path, checkpoint)
    log.info("librdkafka %s (confluent-kafka %s) against %s", confluent_kafka.libversion()[0],
             confluent_kafka.version(), settings.broker_url)
    events = events_of(small_synthetic, 40)
    valid = []
    for i, e in enumerate(events):  # every third with a header of its own
        key, value = encode(e, NOW_MS + i)
        own = [("traceparent", f"00-{i:032x}-{i:016x}-01".encode())] if i % 3 == 0 else []
        valid.append((key, value, own))
    rekeyed = {**events[0], "event_id": "rekeyed-0", "user_id": "only-rekeyed-user"}
    valid.append((b"wrong-key", encode(rekeyed, NOW_MS)[1], []))  # the worker re-publishes it under its user
    bad = [(key, value, OWN_HEADERS if i % 2 == 0 else [], reason)
           for i, (key, value, reason) in enumerate([*BAD, TOMBSTONE])]
    messages = [m for pair in zip(valid, bad, strict=False) for m in pair] + valid[len(bad):]
    expected = {orjson.loads(value)["event_id"]: (key, value) for key, value, _ in valid}
    expected_key = {eid: orjson.loads(value)["user_id"].encode() for eid, (_, value) in expected.items()}

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(TIMEOUT_S)
        reports = produce_with_librdkafka(settings, [(k, v, h) for k, v, h, *_ in messages])
        got = consume_with_librdkafka(settings, lambda by_topic: (
            len(by_topic[settings.dead_letters_topic]) >= len(bad)
            and set(expected) <= {orjson.loads(m.value())["event_id"]
                                  for m in by_topic[settings.recommendations_topic]}))
    recs, dead = got[settings.recommendations_topic], got[settings.dead_letters_topic]

    # librdkafka, configured as documented, put every keyed event where Java and aiokafka would
    for (key, *_), report in zip(messages, reports, strict=True):
        assert report.topic() == settings.events_topic
        if key is not None:
            assert report.partition() == java_partition(key, settings.partitions), key

    # recommendations: exactly one per valid event, keyed by its user, on murmur2's partition for that key
    decode = msgspec.json.Decoder(Recommendation).decode
    ids = [decode(m.value()).event_id for m in recs]
    assert sorted(ids) == sorted(expected), Counter(ids).most_common(3)
    for m in recs:
        rec = decode(m.value())
        _, event_value = expected[rec.event_id]
        event = orjson.loads(event_value)
        assert m.key() == expected_key[rec.event_id] == rec.user_id.encode()
        assert (rec.user_id, rec.event_time_ms) == (event["user_id"], event["timestamp"])
        assert len(rec.items) == len(rec.scores) == settings.top_k
        assert rec.scores == sorted(rec.scores, reverse=True) and rec.model_version.startswith("amsrm-")
        assert m.partition() == java_partition(m.key(), settings.output_partitions)
        headers = m.headers()
        assert [name for name, _ in headers].count(WORKER_HEADER) == 1, headers
        assert WorkerHeaders.from_kafka(headers).worker

    # dead letters: one per malformed event, found by where its source header says it was read
    sent_bad = {f"{r.topic()}/{r.partition()}/{r.offset()}": m for m, r in zip(messages, reports, strict=True)
                if len(m) == 4}
    by_source = {}
    for m in dead:
        headers = m.headers() or []
        names = Counter(name for name, _ in headers)
        assert all(names[h] == 1 for h in (REASON_HEADER, DETAIL_HEADER, SOURCE_HEADER)), headers
        parsed = DeadLetterHeaders.from_kafka(headers)  # the reason code and the source's pattern checked
        assert parsed.source not in by_source, f"two dead letters for {parsed.source}"
        by_source[parsed.source] = (m, parsed)
    assert set(by_source) == set(sent_bad)
    for source, (key, value, own_headers, reason) in sent_bad.items():
        m, parsed = by_source[source]
        assert (parsed.reason, bool(parsed.detail)) == (reason, True), (source, value, parsed)
        assert m.key() == key
        # asyncapi.yaml: "the rejected message's value, byte for byte (empty if it had none)"
        assert m.value() == (b"" if value is None else value), (reason, m.value())
        if key is not None:
            assert m.partition() == java_partition(key, settings.output_partitions)
        log.info("dead letter %s (%s): own headers %s -> headers %s", source, reason,
                 [n for n, _ in own_headers], [n for n, _ in m.headers() or []])
