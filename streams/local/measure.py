"""Event → recommendation latency and throughput, as a downstream consumer sees them.

Latency is the consumer's receive time minus the event's timestamp; the producers
stamp each event with its send time, so this is the full path producer → broker →
worker → broker → consumer (one host, one clock).  A recommendation also carries the time
the worker published it, which splits that path in two: event → publish (the input hop, the
micro-batch wait, scoring) and publish → receipt (produce, the output hop).  Duplicates
(at-least-once redelivery) are counted, not measured twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import orjson
from aiokafka.structs import ConsumerRecord

PERCENTILES = (50, 95, 99)


@dataclass
class Measurement:
    received: int = 0
    duplicates: int = 0
    fallbacks: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    to_publish_ms: list[float] = field(default_factory=list)  # event → the worker's publish
    from_publish_ms: list[float] = field(default_factory=list)  # publish → receipt here
    receive_ms: list[int] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)

    def add(self, record: ConsumerRecord, now_ms: int | None = None) -> dict:
        """Record one output message (a recommendation, or a raw event from the passthrough agent)."""
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        value = orjson.loads(record.value)
        event_id = value["event_id"]
        if event_id in self.event_ids:
            self.duplicates += 1
            return value
        self.event_ids.add(event_id)
        self.received += 1
        self.fallbacks += bool(value.get("fallback"))
        event_time = value["event_time_ms"] if "event_time_ms" in value else value["timestamp"]
        self.latencies_ms.append(now_ms - event_time)
        if "publish_time_ms" in value:
            self.to_publish_ms.append(value["publish_time_ms"] - event_time)
            self.from_publish_ms.append(now_ms - value["publish_time_ms"])
        self.receive_ms.append(now_ms)
        return value

    def percentiles(self, skip: float = 0.0, of: str = "latencies_ms") -> dict[str, float]:
        """p50/p95/p99 in ms of ``of`` (the full path, or ``to_publish_ms`` / ``from_publish_ms``),
        optionally without the first ``skip`` fraction (warm-up)."""
        series = getattr(self, of)
        values = series[int(len(series) * skip):]
        if not values:
            return {f"p{p}": float("nan") for p in PERCENTILES}
        return {f"p{p}": round(float(np.percentile(values, p)), 1) for p in PERCENTILES}

    def percentiles_per_slice(self, size: int) -> list[dict[str, float]]:
        """p50/p95/p99 of each consecutive ``size`` outputs in arrival order: whether latency drifts
        during a run (the embedded broker's fetches slow down as its partitions fill)."""
        values = np.asarray(self.latencies_ms)
        return [{f"p{p}": round(float(np.percentile(values[start:start + size], p)), 1) for p in PERCENTILES}
                for start in range(0, len(values) - size + 1, max(1, size))]

    def throughput(self, trim: float = 0.1) -> float:
        """Outputs per second over the middle of the run (start-up and tail trimmed)."""
        if len(self.receive_ms) < 10:
            return 0.0
        times = np.sort(np.asarray(self.receive_ms))
        lo, hi = int(len(times) * trim), int(len(times) * (1 - trim)) - 1
        span_s = (times[hi] - times[lo]) / 1000
        return float((hi - lo) / span_s) if span_s > 0 else float("inf")
