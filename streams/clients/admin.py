"""Create the project's topics with explicit partition counts (any Kafka-protocol broker).

Pre-creating every topic matters: the embedded broker auto-creates unknown topics
with 4 partitions, and a table's changelog must have exactly as many partitions as
the input topic it is co-partitioned with (docs/BROKER.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from amsrm.errors import ConfigError
from amsrm.settings import StreamSettings

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: StreamSettings) -> list[TopicSpec]:
    """Every topic a worker reads or writes, the changelog included."""
    out = settings.output_partitions
    return [
        TopicSpec(settings.events_topic, settings.partitions),
        TopicSpec(settings.changelog_topic, settings.partitions, {"cleanup.policy": "compact"}),
        TopicSpec(settings.recommendations_topic, out),
        TopicSpec(settings.samples_topic, out),
        TopicSpec(settings.dead_letters_topic, out),
    ]


async def create_topics(settings: StreamSettings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create missing topics; returns the names created.  Existing ones are checked, not altered."""
    specs = topic_specs(settings) if specs is None else specs
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        replicas = settings.replication_factor
        response = await admin.create_topics(
            [NewTopic(s.name, s.partitions, replicas, topic_configs=s.config) for s in specs])
        created = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                raise for_code(code)(f"creating topic {name}: {rest[0] if rest else ''}")
        existing = await partition_counts(admin, [s.name for s in specs])
        for s in specs:
            if existing.get(s.name) != s.partitions:
                raise ConfigError(f"topic {s.name} has {existing.get(s.name)} partitions, settings say "
                                 f"{s.partitions}: co-partitioning would break")
        log.info("topics ready: %s (created %s)", [s.name for s in specs], created)
        return created
    finally:
        await admin.close()


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 10.0
                           ) -> dict[str, int]:
    """Topic → partitions, waiting while a just-created topic's metadata has not reached the broker
    that answers (Kafka creates topics asynchronously: a describe right after may show none)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        if all(counts.get(name) for name in names) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)
