"""The embedded broker's own latency floor: one aiokafka hop (produce → consume), no Faust.

Events offered at a fixed rate by one producer (acks=all, linger 0, keyed over 16
partitions) and read by one consumer in the same process; latency = receive time − the
send time stamped in the value.  Run for each consumer fetch wait: the embedded broker
(Tansu) holds a fetch for much of its wait even when data is there, so this setting
alone moves each hop's latency (docs/BENCHMARKS.md, "Streaming").  A worker's
event → recommendation path has two such hops (events → worker, recommendations →
subscriber) plus the worker itself.

    flock /tmp/amsrm-cpu.lock .venv/bin/python bench/broker_latency.py
    .venv/bin/python bench/broker_latency.py --fetch-wait-ms 10 --seconds 3 --repeats 1   # smoke

Writes docs/results/broker-latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from amsrm_core.results import git_commit
from streams.broker import EmbeddedBroker
from streams.measure import PERCENTILES

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 16


async def one_hop(bootstrap: str, rate: float, seconds: float, fetch_wait_ms: int) -> dict[str, float]:
    """p50/p95/p99 (ms) of produce → consume at ``rate`` events/s; the first 10 % skipped as warm-up."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"latency-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic,
                                fetch_max_wait_ms=fetch_wait_ms, auto_offset_reset="earliest",
                                session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await producer.start()
    await consumer.start()
    n, latencies = int(rate * seconds), []
    try:
        await asyncio.sleep(4)  # the embedded broker's group join (BROKER.md)

        async def receive() -> None:
            while len(latencies) < n:
                batch = await consumer.getmany(timeout_ms=100)
                now_ms = time.time_ns() / 1e6
                latencies.extend(now_ms - float(r.value) for records in batch.values() for r in records)

        receiver = asyncio.create_task(receive())
        started, pending = time.monotonic(), []
        for i in range(n):  # the same send loop as producers.kafka.send_scheduled
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.gather(*pending)
                pending.clear()
                await asyncio.sleep(delay)
            value = str(time.time_ns() / 1e6).encode()
            pending.append(await producer.send(topic, value, key=str(i % 500).encode()))
        await asyncio.wait_for(receiver, timeout=30)
    finally:
        await producer.stop()
        await consumer.stop()
    kept = np.asarray(latencies[n // 10:])
    return {f"p{p}": round(float(np.percentile(kept, p)), 1) for p in PERCENTILES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fetch-wait-ms", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "broker-latency.json")
    args = parser.parse_args()
    commit, load_before = git_commit(), os.getloadavg()
    results = {}
    with EmbeddedBroker() as broker:
        for wait in args.fetch_wait_ms:
            runs = [asyncio.run(one_hop(broker.bootstrap, args.rate, args.seconds, wait))
                    for _ in range(args.repeats)]
            results[str(wait)] = {"median": {k: statistics.median(r[k] for r in runs) for k in runs[0]},
                                  "runs": runs}
            print(f"fetch wait {wait} ms: median latency {results[str(wait)]['median']}")
    document = {"what": "one produce → consume hop on the embedded broker, no Faust", "rate_per_s": args.rate,
                "seconds": args.seconds, "partitions": PARTITIONS, "latency_ms_by_fetch_wait_ms": results,
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "load_avg_before": [round(x, 2) for x in load_before],
                            "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
