"""Events of 0.9, 1.0, 1.1 and 1.6 MiB on Apache Kafka: dead-lettered as oversized, nothing else lost.

The events topic is created with ``max.message.bytes`` raised so that the broker accepts them (a
producer somewhere upstream may have been configured so); the worker keeps its defaults: the size
limit ``max_event_bytes`` is checked before anything is decoded, and a dead letter that cannot carry
the original bytes in one request of ``producer_max_request_size`` carries a prefix, an
``amsrm-truncated`` header and the topic/partition/offset where the original stays.  Sent alone,
then inside a burst of valid events.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
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

from amsrm.messages import REASON_HEADER, SOURCE_HEADER, TRUNCATED_HEADER
from amsrm.settings import StreamSettings
from producers.events import encode
from streams.local.kafka import KafkaBroker
from streams.local.worker_process import WorkerProcess

pytestmark = pytest.mark.slow

MIB = 1 << 20
SIZES_MIB = (0.9, 1.0, 1.1, 1.6)
TOPIC_LIMIT = 2 * MIB


def big_event(serial: int, size: int) -> tuple[bytes, bytes]:
    head = {"event_id": f"big-{serial}", "user_id": f"big-user-{serial}", "item_id": "1", "timestamp": NOW_MS}
    filler = size - len(orjson.dumps({**head, "pad": ""}))
    return f"big-user-{serial}".encode(), orjson.dumps({**head, "pad": "x" * filler})


async def raise_topic_limit(settings: StreamSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, settings.events_topic,
                                                  {"max.message.bytes": str(TOPIC_LIMIT)})])
    finally:
        await admin.close()


def send_large(settings: StreamSettings, messages: list[tuple[bytes, bytes]]) -> None:
    """The shared test producer, with a request size that takes 1.6 MiB events."""
    produce(settings.replace(producer_max_request_size=4 * MIB), messages)


def test_oversized_events_alone_and_in_batches_are_dead_lettered_and_lose_nothing(
        broker, checkpoint, small_synthetic, tmp_path):  # noqa: F811
    if not isinstance(broker, KafkaBroker):
        pytest.skip("needs a per-topic max.message.bytes (Apache Kafka)")
    settings = new_settings(broker, tmp_path, checkpoint)
    asyncio.run(raise_topic_limit(settings))
    alone = [big_event(i, int(mib * MIB)) for i, mib in enumerate(SIZES_MIB)]
    batched = [big_event(10 + i, int(mib * MIB)) for i, mib in enumerate(SIZES_MIB)]
    events = events_of(small_synthetic, 400)
    burst = [encode(e, NOW_MS) for e in events]
    for i, message in enumerate(batched):
        burst.insert(60 * (i + 1), message)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(TIMEOUT_S)
        for n, message in enumerate(alone, start=1):
            send_large(settings, [message])
            read(settings, settings.dead_letters_topic, lambda m, n=n: len(m) >= n)
        send_large(settings, burst)
        recs = read(settings, settings.recommendations_topic, ids_cover({e["event_id"] for e in events}))
        dead = read(settings, settings.dead_letters_topic, lambda m: len(m) >= len(alone) + len(batched))
        assert worker.exit_code() is None, "the worker stopped"
    assert sorted(orjson.loads(m.value)["event_id"] for m in recs) == sorted(e["event_id"] for e in events)
    assert len(dead) == len(alone) + len(batched)
    originals = {key: value for key, value in alone + batched}
    for m in dead:
        headers = dict(m.headers)
        original = originals[m.key]
        assert headers[REASON_HEADER] == b"oversized"
        assert headers[SOURCE_HEADER].startswith(f"{settings.events_topic}/".encode())
        if len(original) + 4096 <= settings.producer_max_request_size:
            assert m.value == original and TRUNCATED_HEADER not in headers
        else:
            assert original.startswith(m.value) and 0 < len(m.value) < len(original)
            assert headers[TRUNCATED_HEADER] == f"key={len(m.key)} value={len(original)}".encode()
