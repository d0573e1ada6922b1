"""The embedded broker's own latency floor: one aiokafka hop (produce → consume), no Faust.

Events offered at a fixed rate by the project's producer (acks=all, linger 0, keyed over 16
partitions) and read by one consumer in the same process; latency = receive time − the
send time stamped in the value.  Run for each consumer fetch wait: the embedded broker
(Tansu) holds a fetch for much of its wait even when data is there, so this setting
alone moves each hop's latency (docs/BENCHMARKS.md, "Streaming").  A worker's
event → recommendation path has two such hops (events → worker, recommendations →
subscriber) plus the worker itself.

Then the defect that shapes every latency on this broker: one long run per partition count
into a fresh topic, latency per 5 s of sending.  Each hop gets slower as the partition fills,
so latency phases must use fresh topics and a topic's history decides what a benchmark on it
measures.

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

from amsrm.settings import StreamSettings
from amsrm_core.results import git_commit
from producers.kafka import send_scheduled
from producers.pacing import rate_schedule
from streams.clients.admin import TopicSpec, create_topics
from streams.clients.subscriber import make_consumer
from streams.local.broker import EmbeddedBroker
from streams.local.measure import Measurement

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 16


async def one_hop(broker: EmbeddedBroker, rate: float, seconds: float, fetch_wait_ms: int,
                  partitions: int = PARTITIONS) -> Measurement:
    """Produce → consume latencies at ``rate`` events/s into a fresh topic, in arrival order.

    The producer is the project's own send loop (``send_scheduled``: it stamps each event's
    send time), the consumer the subscriber's; only the topic and the fetch wait are set here.
    """
    topic = f"latency-{uuid.uuid4().hex[:6]}"
    settings = StreamSettings.load({}).replace(broker_url=broker.url, events_topic=topic,
                                               consumer_fetch_max_wait_ms=fetch_wait_ms)
    await create_topics(settings, [TopicSpec(topic, partitions)])
    consumer = make_consumer(settings, topic, from_beginning=True, group_id=topic)
    await consumer.start()
    n, measurement = int(rate * seconds), Measurement()
    try:
        await asyncio.sleep(4)  # the embedded broker's group join (docs/BROKER.md)

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
    return measurement


def as_the_topic_fills(measurement: Measurement, rate: float, partitions: int, window_s: float) -> list[dict]:
    """p50/p99 per ``window_s`` of sending, with the messages each partition held by then."""
    step = max(1, int(rate * window_s))
    return [{"from_s": round(i * step / rate, 1),
             "messages_per_partition": round((i + 1) * step / partitions),
             "p50": slice_["p50"], "p99": slice_["p99"]}
            for i, slice_ in enumerate(measurement.percentiles_per_slice(step))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fetch-wait-ms", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fill-seconds", type=float, default=40.0,
                        help="then one long run per partition count: latency as the partitions fill")
    parser.add_argument("--fill-partitions", type=int, nargs="*", default=[4, 16, 64])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "broker-latency.json")
    args = parser.parse_args()
    commit, load_before = git_commit(), os.getloadavg()
    results = {}
    with EmbeddedBroker() as broker:
        for wait in args.fetch_wait_ms:
            runs = [asyncio.run(one_hop(broker, args.rate, args.seconds, wait)).percentiles(skip=0.1)
                    for _ in range(args.repeats)]
            results[str(wait)] = {"median": {k: statistics.median(r[k] for r in runs) for k in runs[0]},
                                  "runs": runs}
            print(f"fetch wait {wait} ms: median latency {results[str(wait)]['median']}")
        fill = {}
        for partitions in args.fill_partitions:
            hop = asyncio.run(one_hop(broker, args.rate, args.fill_seconds, 10, partitions))
            fill[str(partitions)] = as_the_topic_fills(hop, args.rate, partitions, window_s=5.0)
            print(f"{partitions} partitions filling at {args.rate:.0f}/s: {fill[str(partitions)]}")
    document = {"what": "one produce → consume hop on the embedded broker, no Faust", "rate_per_s": args.rate,
                "seconds": args.seconds, "partitions": PARTITIONS, "latency_ms_by_fetch_wait_ms": results,
                "latency_ms_as_partitions_fill": {"fetch_wait_ms": 10, "seconds": args.fill_seconds,
                                                  "by_partitions": fill},
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "load_avg_before": [round(x, 2) for x in load_before],
                            "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
