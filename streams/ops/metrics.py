"""Prometheus metrics of the stream worker and the collector (served by streams.ops.server).

Counts (events in, recommendations out, dead letters by reason, …) are read at scrape
time from the counters the processes already keep for their log lines
(``processing.Counters``, ``collector.CollectorStats``), so the log and the metrics can
never disagree and the hot path does no extra bookkeeping for them.  Per-batch and
per-event distributions (micro-batch size, scoring time, event → recommendation
latency) are observed through ``BatchObserver`` hooks in streams.worker.processing.

Metric names are listed in docs/DEPLOY.md ("Metrics").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "amsrm"
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SCORING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BatchObserver:
    """What streams.worker.processing reports per micro-batch; this base class ignores it (unit tests)."""

    def batch_read(self, events: int) -> None:
        """A micro-batch of ``events`` raw events was taken from the events topic."""

    def scored(self, windows: int, seconds: float) -> None:
        """One forward pass over ``windows`` windows took ``seconds``."""

    def published(self, event_time_ms: int, publish_time_ms: int) -> None:
        """A recommendation for an event stamped ``event_time_ms`` was handed to the producer."""


class _StatsCollector(Collector):
    """Counters read from a stats dataclass at scrape time; the source may be replaced (agent restart)."""

    def __init__(self, families: Callable[[Any], Iterable[Metric]]) -> None:
        self.source: Any = None
        self._families = families

    def collect(self) -> Iterator[Metric]:
        if self.source is not None:
            yield from self._families(self.source)


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def worker_counter_families(counters: Any) -> Iterator[Metric]:
    """``processing.Counters`` as Prometheus counters."""
    yield _counter("events_in", "raw events read from the events topic", counters.events)
    yield _counter("recommendations", "recommendations published (events out)", counters.recommendations)
    yield _counter("fallback_recommendations", "recommendations from the popularity fallback",
                   counters.fallbacks)
    dead = CounterMetricFamily(f"{PREFIX}_dead_letters", "events sent to the dead-letter topic",
                               labels=["reason"])
    for reason, count in sorted(counters.reasons.items()):
        dead.add_metric([reason], count)
    yield dead
    yield _counter("rekeyed_events", "events re-published under their user id", counters.rekeyed)
    yield _counter("redelivered_events", "events seen again after a crash (at-least-once)",
                   counters.redelivered)
    yield _counter("batches", "micro-batches processed", counters.batches)
    stages = CounterMetricFamily(f"{PREFIX}_stage_seconds", "time spent per processing stage",
                                 labels=["stage"])
    for stage in ("prepare", "score", "publish"):
        stages.add_metric([stage], getattr(counters, f"{stage}_s"))
    yield stages


def collector_counter_families(stats: Any) -> Iterator[Metric]:
    """``collector.CollectorStats`` as Prometheus counters."""
    docs = {"received": "messages read (events or the worker's samples: AMSRM_SAMPLES_SOURCE)",
            "written": "samples written to the store", "duplicates": "samples dropped as already stored",
            "invalid": "messages that are neither a sample nor a valid event",
            "rekeyed": "events skipped under a key other than their user id (the worker re-keys them)",
            "files": "Parquet files written", "commits": "offset commits after durable writes"}
    for f in dataclasses.fields(stats):
        yield _counter(f"collector_{f.name}", docs.get(f.name, f.name), getattr(stats, f.name))


class _ModelInfo(Collector):
    def __init__(self, source: str) -> None:
        self.source, self.version = source, None

    def collect(self) -> Iterator[Metric]:
        if self.version is not None:
            info = InfoMetricFamily(f"{PREFIX}_model", "the model version this worker scores with")
            info.add_metric([], {"version": self.version, "source": self.source})
            yield info


class ProcessMetrics:
    """Gauges both long-running processes share: consumer lag, assignment, readiness."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(f"{PREFIX}_consumer_lag", "log end offset minus the consumer's position",
                         ["topic", "partition"], registry=registry)
        self.assigned = Gauge(f"{PREFIX}_assigned_partitions", "input partitions assigned to this process",
                              ["topic"], registry=registry)
        self.ready = Gauge(f"{PREFIX}_ready", "1 when the readiness probe passes", registry=registry)

    async def refresh_lag(self, topic: str, partitions: Iterable[Any], highwater: Callable[[Any], Any],
                          position: Callable[[Any], Awaitable[int | None]]) -> None:
        """Lag of each assigned partition of ``topic`` (``highwater`` None until the first fetch)."""
        self.lag.clear()
        mine = sorted((tp for tp in partitions if tp.topic == topic), key=lambda tp: tp.partition)
        self.assigned.labels(topic).set(len(mine))
        for tp in mine:
            end, at = highwater(tp), await position(tp)
            if end is not None and at is not None:
                self.lag.labels(topic, str(tp.partition)).set(max(0, end - at))


class WorkerMetrics(ProcessMetrics, BatchObserver):
    def __init__(self, registry: CollectorRegistry, model_source: str) -> None:
        super().__init__(registry)
        self.counters = _StatsCollector(worker_counter_families)
        self.model = _ModelInfo(model_source)
        registry.register(self.counters)
        registry.register(self.model)
        self.batch_size = Histogram(f"{PREFIX}_batch_events", "raw events per micro-batch",
                                    buckets=BATCH_SIZE_BUCKETS, registry=registry)
        self.scoring = Histogram(f"{PREFIX}_batch_scoring_seconds", "one forward pass over a micro-batch",
                                 buckets=SCORING_BUCKETS, registry=registry)
        self.latency = Histogram(f"{PREFIX}_event_to_recommendation_seconds",
                                 "event timestamp to recommendation handed to the producer",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.table_keys = Gauge(f"{PREFIX}_table_keys", "entries of a table partition (RocksDB estimate)",
                                ["table", "partition"], registry=registry)
        self.in_recovery = Gauge(f"{PREFIX}_in_recovery", "1 while tables are being recovered",
                                 registry=registry)

    def batch_read(self, events: int) -> None:
        self.batch_size.observe(events)

    def scored(self, windows: int, seconds: float) -> None:
        self.scoring.observe(seconds)

    def published(self, event_time_ms: int, publish_time_ms: int) -> None:
        self.latency.observe(max(0, publish_time_ms - event_time_ms) / 1000)

    def refresh_table(self, name: str, store: Any) -> None:
        """Entries per partition: RocksDB's key estimate (cheap), or the size of an in-memory store."""
        self.table_keys.clear()
        from streams.faust_ext import open_databases  # Faust only where there is a table

        dbs = open_databases(store)  # rocksdb:// stores: partition → open database
        if dbs is not None:
            for partition, db in list(dbs.items()):
                self.table_keys.labels(name, str(partition)).set(
                    db.property_int_value("rocksdb.estimate-num-keys") or 0)
        elif hasattr(store, "data"):
            self.table_keys.labels(name, "all").set(len(store.data))


class CollectorMetrics(ProcessMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.stats = _StatsCollector(collector_counter_families)
        registry.register(self.stats)
