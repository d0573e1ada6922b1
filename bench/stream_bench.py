"""Streaming benchmark: one worker on the embedded broker, scoring agent vs a no-op passthrough agent.

For each agent (same broker, same batching settings, fresh topics and a fresh worker per run):
1. throughput, ``--throughput-runs`` times (median reported): preload N events, start the
   worker, measure the steady output rate (middle 80 % of the outputs) while it drains them;
2. latency, on the last run's worker: offer events at each rate for a fixed time and
   measure event → output latency at a consumer (receive time − event timestamp, one clock).
Then throughput only: both agents with Faust's own message hand-off (``eager_dispatch=false``,
the baseline of streams.dispatch), and the scoring agent with the embedded broker's recovery
work-around (producer_max_batch_size=1), to show what that setting costs.

    python bench/stream_bench.py                                    # Amazon Beauty, the documented run
    python bench/stream_bench.py --dataset synthetic --quick        # a one-minute smoke run

Writes docs/results/stream-bench.json (see docs/BENCHMARKS.md, "Streaming").
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import platform
import statistics
import time
import uuid
from pathlib import Path

import orjson
import torch

from amsrm_core.data import load_dataset
from amsrm_core.results import git_commit
from amsrm_core.schema import InteractionData
from producers.events import dataset_events, encode, time_order
from producers.kafka import make_producer, send_scheduled
from producers.pacing import rate_schedule
from streams.admin import create_topics
from streams.broker import EmbeddedBroker, embedded_settings
from streams.checkpoints import ensure_checkpoint
from streams.local import LocalStack
from streams.measure import Measurement
from streams.settings import StreamSettings
from streams.subscriber import read_until

REPO = Path(__file__).resolve().parents[1]
MEASURED_SETTINGS = ("partitions", "output_partitions", "store_url", "table_standby_replicas", "top_k",
                     "exclude_window", "device", "torch_threads", "batch_max", "batch_latency_ms",
                     "pipeline_depth", "publish_samples", "producer_max_batch_size", "producer_linger_ms",
                     "eager_dispatch",
                     "consumer_fetch_max_wait_ms", "session_timeout_s", "commit_interval_s")
log = logging.getLogger("stream_bench")


@dataclasses.dataclass
class Plan:
    throughput_events: int
    throughput_runs: int
    rates: list[float]
    seconds_per_rate: float
    recovery_safe_events: int


class EventSource:
    """Hands out consecutive slices of the data set's events in time order.

    Past the end it starts over (a user buying again), with event ids made unique per pass.
    """

    def __init__(self, data: InteractionData) -> None:
        self.data, self.order, self.next, self.passes = data, time_order(data), 0, 0

    def take(self, n: int) -> list[dict]:
        events: list[dict] = []
        while len(events) < n:
            chunk = self.order[self.next:self.next + n - len(events)]
            suffix = f"~{self.passes}" if self.passes else ""
            events.extend({**e, "event_id": e["event_id"] + suffix}
                          for e in dataset_events(self.data, order=chunk))
            self.next += len(chunk)
            if self.next == len(self.order):
                self.next, self.passes = 0, self.passes + 1
        return events


def settings_for(base: StreamSettings, agent: str, workdir: Path, model: Path) -> StreamSettings:
    tag = f"bench-{agent}-{uuid.uuid4().hex[:6]}"
    return base.replace(app_id=tag, agent=agent, model_path=str(model), events_topic=f"{tag}-events",
                        recommendations_topic=f"{tag}-recs", samples_topic=f"{tag}-samples",
                        dead_letters_topic=f"{tag}-dead", data_dir=str(workdir / tag),
                        table_standby_replicas=0)


async def preload(settings: StreamSettings, events: list[dict]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        now_ms = time.time_ns() // 1_000_000
        for e in events:
            key, value = encode(e, now_ms)
            await producer.send(settings.events_topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def drain(settings: StreamSettings, n: int) -> dict:
    """Time how fast a worker that just started drains a backlog of ``n`` events."""
    measurement = Measurement()
    await read_until(settings, [settings.recommendations_topic], lambda _: measurement.received >= n,
                     timeout_s=60 + n / 100, on_message=measurement.add)
    return {"events": n, "received": measurement.received, "duplicates": measurement.duplicates,
            "events_per_s": round(measurement.throughput(), 1)}


async def offered_rate(settings: StreamSettings, events: list[dict], rate: float, drain_s: float) -> dict:
    """Offer ``events`` at ``rate``; latency of each one's output at a consumer."""
    ids = {e["event_id"] for e in events}
    measurement = Measurement()

    def on_message(record) -> None:
        if orjson.loads(record.value)["event_id"] in ids:
            measurement.add(record)

    # read only what is published from now on: replaying the earlier phases' outputs first would
    # hold up the consumer and add that catch-up to the first seconds' latencies
    positioned = asyncio.Event()
    watcher = asyncio.create_task(read_until(
        settings, [settings.recommendations_topic], lambda _: measurement.received >= len(events),
        timeout_s=len(events) / rate + drain_s, on_message=on_message, from_beginning=False,
        on_ready=positioned.set))
    await asyncio.wait_for(positioned.wait(), timeout=30)
    sent = await send_scheduled(settings, events, rate_schedule(len(events), rate), progress=False)
    await watcher
    return {"offered_per_s": rate, "sent_per_s": round(sent.events_per_s, 1), "events": len(events),
            "received": measurement.received, "completed_per_s": round(measurement.throughput(trim=0.0), 1),
            "latency_ms": measurement.percentiles(skip=0.1)}


def run_agent(agent: str, base: StreamSettings, broker: EmbeddedBroker, source: EventSource, plan: Plan,
              workdir: Path, model: Path, latency: bool = True, recovery_safe: bool = False) -> dict:
    """Throughput on a preloaded backlog (fresh topics and worker per run), then latency at each rate."""
    runs, latencies = [], {}
    for run in range(plan.throughput_runs):
        settings = embedded_settings(settings_for(base, agent, workdir, model), broker, recovery_safe)
        asyncio.run(create_topics(settings))
        asyncio.run(preload(settings, source.take(plan.throughput_events)))
        with LocalStack(settings, workdir, broker=broker, recovery_safe=recovery_safe) as stack:
            runs.append(asyncio.run(drain(stack.settings, plan.throughput_events)))
            log.info("%s throughput, run %d: %s", agent, run + 1, runs[-1])
            if latency and run == plan.throughput_runs - 1:
                for rate in plan.rates:
                    events = source.take(int(rate * plan.seconds_per_rate))
                    result = asyncio.run(offered_rate(stack.settings, events, rate, drain_s=60))
                    latencies[str(int(rate))] = result
                    log.info("%s at %s ev/s: %s", agent, rate, result)
    throughput = {"events_per_s": statistics.median(r["events_per_s"] for r in runs), "runs": runs}
    return {"throughput": throughput, "latency": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "stream-bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "stream-bench.json")
    parser.add_argument("--rates", type=float, nargs="+", default=[250, 1000, 2500])
    parser.add_argument("--seconds-per-rate", type=float, default=10.0)
    parser.add_argument("--throughput-events", type=int, default=20000)
    parser.add_argument("--throughput-runs", type=int, default=3,
                        help="fresh worker per run; the median is reported")
    parser.add_argument("--quick", action="store_true", help="small plan for a smoke run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    plan = Plan(args.throughput_events, args.throughput_runs, args.rates, args.seconds_per_rate,
                args.throughput_events // 2)
    if args.quick:
        plan = Plan(3000, 1, [250, 1000], 4.0, 1500)

    load_before = os.getloadavg()
    commit = git_commit()  # before the run writes its result file into the tree
    data = load_dataset(args.dataset)
    started = time.perf_counter()
    model = ensure_checkpoint(args.workdir / f"model-{data.name}", data, epochs=args.epochs)
    log.info("model ready in %.0fs", time.perf_counter() - started)
    base = StreamSettings.load({})  # production-like batching; only the broker work-arounds are added
    source = EventSource(data)
    with EmbeddedBroker(log_path=args.workdir / "broker.log") as broker:
        runs = {agent: run_agent(agent, base, broker, source, plan, args.workdir, model)
                for agent in ("passthrough", "recommend")}
        faust_handoff = {agent: run_agent(agent, base.replace(eager_dispatch=False), broker, source, plan,
                                          args.workdir, model, latency=False)["throughput"]
                         for agent in ("passthrough", "recommend")}
        safe_plan = dataclasses.replace(plan, throughput_events=plan.recovery_safe_events, throughput_runs=1)
        safe = run_agent("recommend", base, broker, source, safe_plan, args.workdir, model, latency=False,
                         recovery_safe=True)["throughput"]
        effective = embedded_settings(settings_for(base, "recommend", args.workdir, model), broker)
    passthrough, recommend = runs["passthrough"], runs["recommend"]
    rec_eps = recommend["throughput"]["events_per_s"]
    pass_eps = passthrough["throughput"]["events_per_s"]
    result = {
        "events_per_s": rec_eps,
        "passthrough_events_per_s": pass_eps,
        "ratio_to_passthrough": round(rec_eps / pass_eps, 3) if pass_eps else None,
        "latency_ms": {rate: r["latency_ms"] for rate, r in recommend["latency"].items()},
        "passthrough_latency_ms": {rate: r["latency_ms"] for rate, r in passthrough["latency"].items()},
        "recovery_safe_events_per_s": safe["events_per_s"],
        "faust_handoff_events_per_s": {agent: r["events_per_s"] for agent, r in faust_handoff.items()},
        "recommend": recommend, "passthrough": passthrough, "recovery_safe": safe,
        "faust_handoff": faust_handoff,
        "settings": {k: v for k, v in dataclasses.asdict(effective).items() if k in MEASURED_SETTINGS},
        "plan": dataclasses.asdict(plan),
        "data": {"dataset": data.name, "items": data.n_items, "users": data.n_users, "events": data.n_events},
        "model": {"path": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
                  "epochs": args.epochs},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    headline = ("events_per_s", "passthrough_events_per_s", "ratio_to_passthrough", "latency_ms",
                "passthrough_latency_ms", "faust_handoff_events_per_s", "recovery_safe_events_per_s")
    print(json.dumps({k: result[k] for k in headline}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
