"""The embedded broker's own latency floor: one aiokafka hop (produce → consume), no Faust.

Events offered at a fixed rate by the project's producer (acks=all, linger 0, keyed over 16
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

from amsrm_core.results import git_commit
from producers.kafka import send_scheduled
from producers.pacing import rate_schedule
from streams.admin import TopicSpec, create_topics
from streams.broker import EmbeddedBroker
from streams.measure import Measurement
from streams.settings import StreamSettings
from streams.subscriber import make_consumer

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 16


async def one_hop(broker: EmbeddedBroker, rate: float, seconds: float,
                  fetch_wait_ms: int) -> dict[str, float]:
    """p50/p95/p99 (ms) of produce → consume at ``rate`` events/s; the first 10 % skipped as warm-up.

    The producer is the project's own send loop (``send_scheduled``: it stamps each event's
    send time), the consumer the subscriber's; only the topic and the fetch wait are set here.
    """
    topic = f"latency-{uuid.uuid4().hex[:6]}"
    settings = StreamSettings.load({}).replace(broker_url=broker.url, events_topic=topic,
                                               consumer_fetch_max_wait_ms=fetch_wait_ms)
    await create_topics(settings, [TopicSpec(topic, PARTITIONS)])
    consumer = make_consumer(settings, topic, from_beginning=True, group_id=topic)
    await consumer.start()
    n, measurement = int(rate * seconds), Measurement()
    try:
        await asyncio.sleep(4)  # the embedded broker's group join (BROKER.md)

        async def receive() -> None:
            while measurement.received < n:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        measurement.add(record)

        receiver = asyncio.create_task(receive())
        events = ({"event_id": str(i), "user_id": f"u{i % 500}"} for i in range(n))
        await send_scheduled(settings, events, rate_schedule(n, rate), progress=False)
        await asyncio.wait_for(receiver, timeout=30)
    finally:
        await consumer.stop()
    return measurement.percentiles(skip=0.1)


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
            runs = [asyncio.run(one_hop(broker, args.rate, args.seconds, wait))
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
