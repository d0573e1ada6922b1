"""The metrics and health endpoint of a real worker and collector on the embedded broker.

Both run as the image runs them (``amsrm worker``, ``amsrm collect``).  The worker gets
events, some malformed; its /metrics is scraped over HTTP before and after and the
counters, histograms, lag and table gauges must move; /livez and /readyz answer.  The
collector's endpoint likewise.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from test_collector import wait_for
from test_streams_integration import (  # noqa: F401 (checkpoint: a fixture)
    BAD,
    NOW_MS,
    TIMEOUT_S,
    checkpoint,
    events_of,
    ids_cover,
    new_settings,
    produce,
    read,
)

from producers.events import encode
from streams.local.broker import free_port
from streams.local.collector_process import CollectorProcess
from streams.local.worker_process import WorkerProcess
from streams.ops.metrics import ProcessMetrics
from streams.ops.server import http_get

pytestmark = pytest.mark.slow


class AmsrmWorker(WorkerProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-m", "amsrm", "worker"]  # = the image's `amsrm worker`


class AmsrmCollector(CollectorProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-m", "amsrm", "collect"]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value."""
    status, body = http_get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lags(samples: dict) -> dict[str, float]:
    """Partition → value of amsrm_consumer_lag."""
    return {dict(labels)["partition"]: v for (name, labels), v in samples.items()
            if name == "amsrm_consumer_lag"}


class TP(NamedTuple):
    topic: str
    partition: int


async def test_lag_is_each_assigned_partitions_backlog() -> None:
    """Log end minus position per partition of the topic; none until both are known."""
    registry = CollectorRegistry()
    metrics = ProcessMetrics(registry)
    ends = {TP("events", 0): 120, TP("events", 1): 40, TP("events", 2): None, TP("events", 3): 9,
            TP("other", 0): 999}
    positions = {TP("events", 0): 100, TP("events", 1): 40, TP("events", 2): 7, TP("events", 3): None,
                 TP("other", 0): 0}

    async def position(tp: TP) -> int | None:
        return positions[tp]

    def samples() -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in registry.collect() for s in family.samples}

    await metrics.refresh_lag("events", list(ends), ends.get, position)
    assert lags(samples()) == {"0": 20.0, "1": 0.0}  # 20 behind, caught up; 2 and 3 not known yet
    assert value(samples(), "amsrm_assigned_partitions", topic="events") == 4
    positions[TP("events", 0)] = 120
    await metrics.refresh_lag("events", list(ends), ends.get, position)
    assert lags(samples()) == {"0": 0.0, "1": 0.0}


def test_worker_metrics_move_and_probes_answer(broker, checkpoint, small_synthetic, tmp_path):  # noqa: F811
    port = free_port()
    settings = new_settings(broker, tmp_path, checkpoint, ops_port=port, ops_host="127.0.0.1",
                            log_format="json")
    events = events_of(small_synthetic, 300)
    with AmsrmWorker(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(TIMEOUT_S)
        wait_for(lambda: http_get(port, "/readyz")[0] == 200)
        assert http_get(port, "/livez") == (200, b'{"component":"worker","status":"ok","detail":"ok"}\n')
        before = scrape(port)
        assert value(before, "amsrm_events_in_total") == 0 and value(before, "amsrm_ready") == 1
        produce(settings, [encode(e, NOW_MS + i) for i, e in enumerate(events)] + [(k, v) for k, v, _ in BAD])
        read(settings, settings.recommendations_topic, ids_cover({e["event_id"] for e in events}))
        wait_for(lambda: value(scrape(port), "amsrm_dead_letters_total", reason="bad_json") == 1)
        after = scrape(port)
        wait_for(lambda: set(lags(scrape(port)).values()) == {0.0})  # the position reaches the log end
        drained = lags(scrape(port))
        assert http_get(port, "/nothing")[0] == 404
    assert value(after, "amsrm_events_in_total") == len(events) + len(BAD)
    assert value(after, "amsrm_recommendations_total") == len(events)
    for _, _, reason in BAD:
        assert value(after, "amsrm_dead_letters_total", reason=reason) == 1
    batches = value(after, "amsrm_batch_events_count")
    assert batches >= 1 and value(after, "amsrm_batch_events_sum") == len(events) + len(BAD)
    assert value(after, "amsrm_batch_scoring_seconds_count") >= 1
    assert value(after, "amsrm_event_to_recommendation_seconds_count") == len(events)
    users = {e["user_id"] for e in events}
    keys = sum(v for (name, _), v in after.items() if name == "amsrm_table_keys")
    assert keys >= len(users)  # RocksDB's estimate, plus Faust's offset key per partition
    assert len(lags(after)) == settings.partitions
    assert drained == {str(p): 0.0 for p in range(settings.partitions)}  # every produced event consumed
    versions = [dict(labels)["version"] for (name, labels) in after if name == "amsrm_model_info"]
    assert len(versions) == 1 and versions[0].startswith("amsrm-")
    assert '"logger"' in worker.log_text()  # AMSRM_LOG_FORMAT=json reached Faust's logging


def test_collector_metrics_and_probes(broker, checkpoint, tmp_path):  # noqa: F811
    port = free_port()
    settings = new_settings(broker, tmp_path, checkpoint, ops_port=port, ops_host="127.0.0.1",
                            store_dir=str(tmp_path / "store"), collector_flush_s=0.2)
    sample = {"user_id": "u1", "event_id": "e2", "window": [
        {"event_id": "e1", "item_id": "i1", "behaviour": None, "timestamp": NOW_MS, "item_fields": {}}],
        "user_fields": {}, "next_item_id": "i2", "next_behaviour": None, "event_time_ms": NOW_MS + 1,
        "next_item_fields": {}}
    with AmsrmCollector(settings, tmp_path / "collector.log") as collector:
        collector.wait_ready(TIMEOUT_S)
        wait_for(lambda: http_get(port, "/readyz")[0] == 200)
        assert http_get(port, "/livez")[0] == 200
        produce(settings.replace(events_topic=settings.samples_topic), [(b"u1", orjson.dumps(sample))])
        wait_for(lambda: value(scrape(port), "amsrm_collector_written_total") == 1)
        assert value(scrape(port), "amsrm_assigned_partitions", topic=settings.samples_topic) == 2
