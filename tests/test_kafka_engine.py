"""The Apache Kafka engine (streams.local.kafka): a real KRaft broker from Maven Central's jars.

CI machines have Java 17 and Maven; a machine without them gets one clear line, which the last test
checks.  The first start on a machine resolves the jars (minutes); later starts reuse the cache.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from amsrm.settings import StreamSettings
from streams.clients.admin import create_topics
from streams.local.broker import engine_settings, make_broker
from streams.local.kafka import KafkaBroker, KafkaUnavailable, java_executable

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("java") is None or shutil.which("mvn") is None,
                                 reason="needs Java 17 and Maven (CI has both)")]


async def _round_trip(bootstrap: str, topic: str, n: int) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, f"m{i}".encode(), key=f"u{i % 7}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    return await _read_all(bootstrap, topic, n)


async def _read_all(bootstrap: str, topic: str, n: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id="kafka-engine-test", enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=1000)
            values += [r.value for records in batch.values() for r in records]
            if len(values) >= n:
                break
    finally:
        await consumer.stop()
    return values


def test_topics_messages_and_offsets_survive_a_restart_on_the_same_data_dir(tmp_path):
    broker = make_broker("kafka", data_dir=tmp_path / "kafka", log_path=tmp_path / "kafka.log")
    assert isinstance(broker, KafkaBroker)
    settings = StreamSettings().replace(events_topic="engine-events", partitions=3)
    with broker:
        assert broker.version.startswith("4.")
        settings = engine_settings(settings, broker)
        assert settings.broker_url == broker.url
        assert settings.producer_max_batch_size == StreamSettings().producer_max_batch_size  # no work-arounds
        created = asyncio.run(create_topics(settings))
        assert "engine-events" in created
        sent = asyncio.run(_round_trip(broker.bootstrap, "engine-events", 200))
        assert sorted(sent) == sorted(f"m{i}".encode() for i in range(200))
    with broker:  # same data dir: no format, everything still there
        again = asyncio.run(_read_all(broker.bootstrap, "engine-events", 200))
        assert len(again) == 200
        assert asyncio.run(create_topics(settings)) == []  # the topics exist with the right partitions


def test_missing_java_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    with pytest.raises(KafkaUnavailable, match="Java 17\\+ not found on PATH: install OpenJDK 17"):
        java_executable()
