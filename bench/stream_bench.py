"""Streaming benchmark: one worker on a local broker, scoring agent vs a no-op passthrough agent.

Every measurement gets a fresh broker, fresh topics and a fresh worker, on each broker engine of
``--engines`` (default both: Tansu, the embedded in-memory broker, and Apache Kafka, a fresh
JVM on a temporary data dir).  The engines run one after the other (the whole measurement on
tansu, then on kafka), each replaying the same events: a drift of the machine's speed between
them is not evened out, so compare engines with the load averages in mind.  Each engine gets
only its own settings (streams.local.broker.engine_settings): Tansu its work-arounds, Kafka none.

1. Throughput, in rounds (every variant once per round, ``--throughput-runs`` rounds, the
   median reported, so a drift of the machine's speed hits every variant alike): preload N
   events, start the worker, measure the steady output rate (middle 80 % of the outputs)
   while it drains them, and the CPU per event of broker, worker and benchmark.  The
   variants: the passthrough, the scoring agent on each device, and the in-run baselines:
   both agents with Faust's own message hand-off (``eager_dispatch=false``, the baseline of
   streams.faust_ext), the scoring agent with its scorer in a thread instead of its child
   process (``scoring_process=false``, streams.worker.scoring_process), with Python's own GC
   settings (``gc_tuning=false``, streams.worker.heap), both agents on the other event loop
   (``event_loop``: asyncio or uvloop), and, on Tansu only, with Tansu's recovery
   work-around (producer_max_batch_size=1, one run; Kafka needs none), to show what each
   choice buys.  In the last round, a latency phase on the full topics of the passthrough's
   and the scoring agent's run shows how the broker slows down as partitions fill (Tansu does).
2. Latency, per offered rate the agents in turn: a short warm-up at the rate, then events
   offered for a fixed time, event → output latency at a consumer (receive time − event
   timestamp, one clock).

On a machine with more cores, ``--worker-cpus 0 1`` pins each worker (and its scoring process)
to two cores; run the script itself with ``taskset -c 2-15`` so the broker and the load
generator use the others.  ``--devices cpu cuda`` measures the scoring agent on each device.

    python bench/stream_bench.py                                    # Amazon Beauty, the documented run
    python bench/stream_bench.py --dataset synthetic --quick        # a few minutes' smoke run
    python bench/stream_bench.py --engines tansu                    # one engine only

Writes docs/results/stream-bench.json (see docs/BENCHMARKS.md, "Streaming"): per engine under
"engines" (the fields the file had when it measured Tansu alone), commit and machine once.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import torch
from broker_latency import describe_broker  # this folder
from relay import RelayProcess  # this folder

from amsrm.settings import StreamSettings
from amsrm_core.checkpoint import load_checkpoint
from amsrm_core.data import load_dataset
from amsrm_core.results import git_commit
from amsrm_core.schema import InteractionData
from producers.events import dataset_events, encode, replay_order
from producers.kafka import make_producer, send_scheduled
from producers.pacing import rate_schedule
from streams.clients.admin import create_topics
from streams.clients.subscriber import read_until
from streams.local.broker import ENGINES, BrokerEngine, engine_settings, make_broker
from streams.local.checkpoints import ensure_checkpoint
from streams.local.measure import Measurement
from streams.local.stack import LocalStack
from streams.local.worker_process import WorkerProcess, wait_for_split

REPO = Path(__file__).resolve().parents[1]
MEASURED_SETTINGS = ("partitions", "output_partitions", "store_url", "table_standby_replicas", "top_k",
                     "exclude_window", "device", "torch_threads", "batch_max", "batch_latency_ms",
                     "pipeline_depth", "samples_source", "producer_max_batch_size", "producer_linger_ms",
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
    warmup_s: float = 2.0
    backlog_rate: float = 1000.0
    worker_cpus: list[int] | None = None  # pin each worker (and its scoring process) to these cores
    workers: int = 1  # workers of one group in each throughput run
    window_length: int = 30  # the model's n, for the window lengths reported


class EventSource:
    """Hands out slices of the data set's events in replay order, whole user histories per slice.

    Amazon Beauty has no clock, so its replay order interleaves whole user histories in
    blocks (``producers.events.replay_order``); a slice of ``n`` events is the next block
    of an order built with blocks of ``n``, so each fresh worker sees its users' histories
    grow from the first event as in a live stream (time order would give every event of a
    run an empty window).  Past the end an order starts over (a user buying again), with
    event ids made unique per pass.
    """

    def __init__(self, data: InteractionData) -> None:
        self.data = data
        self._orders: dict[int, np.ndarray] = {}  # block size → its replay order
        self._next: collections.Counter[int] = collections.Counter()  # block size → next position

    def take(self, n: int) -> list[dict]:
        order = self._orders.setdefault(n, replay_order(self.data, block_events=n))
        events: list[dict] = []
        while len(events) < n:
            passes, start = divmod(self._next[n], len(order))
            chunk = order[start:start + n - len(events)]
            suffix = f"~{passes}" if passes else ""
            events.extend({**e, "event_id": e["event_id"] + suffix}
                          for e in dataset_events(self.data, order=chunk))
            self._next[n] += len(chunk)
        return events


def window_lengths(events: list[dict], n: int, skip: int = 0) -> dict[str, float]:
    """Mean, p50 and p90 of the window length each event is scored with, on a worker that saw
    only ``events`` (a fresh one), leaving out the first ``skip`` (a warm-up)."""
    seen: collections.Counter[str] = collections.Counter()
    lengths = []
    for event in events:
        seen[event["user_id"]] += 1
        lengths.append(min(seen[event["user_id"]], n))
    measured = lengths[skip:]
    return {"mean": round(statistics.fmean(measured), 2), "p50": statistics.median(measured),
            "p90": statistics.quantiles(measured, n=10)[-1]}


SPLIT = ("event_to_publish_ms", "publish_to_receipt_ms")  # a recommendation's path in two
RELAY = "relay"  # not a worker: bench/relay.py, two plain aiokafka hops
AGENT_SETTING = {"passthrough": "streams.local.passthrough"}  # variant name → AMSRM_AGENT


def settings_for(base: StreamSettings, agent: str, workdir: Path, model: Path) -> StreamSettings:
    tag = f"bench-{agent}-{uuid.uuid4().hex[:6]}"
    return base.replace(app_id=tag, agent=AGENT_SETTING.get(agent, agent), model_path=str(model),
                        events_topic=f"{tag}-events",
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
            "latency_ms": measurement.percentiles(skip=0.1),
            # only recommendations carry their publish time (not the passthrough's or relay's copies)
            **({"event_to_publish_ms": measurement.percentiles(skip=0.1, of="to_publish_ms"),
                "publish_to_receipt_ms": measurement.percentiles(skip=0.1, of="from_publish_ms")}
               if measurement.to_publish_ms else {}),
            "latency_ms_per_2s": measurement.percentiles_per_slice(max(1, int(rate * 2)))}


def cpu_seconds(pid: int | None) -> tuple[float, float]:
    """User + system CPU seconds so far of process ``pid`` itself and of its children, from /proc."""
    own = children = 0.0
    if pid is None:
        return own, children
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if int(stat.parent.name) == pid:
            own += seconds
        elif int(fields[1]) == pid:  # fields[1]: the parent's pid
            children += seconds
    return own, children


def cpu_use(broker: BrokerEngine, worker_pids: list[int | None]) -> dict[str, float]:
    """CPU seconds so far of the broker, the worker processes (their event loops), the workers'
    children (their scoring processes), and this process."""
    per_worker = [cpu_seconds(pid) for pid in worker_pids]
    return {"broker": sum(cpu_seconds(broker.pid)), "worker": sum(own for own, _ in per_worker),
            "scoring": sum(children for _, children in per_worker), "benchmark": time.process_time()}


def fresh_broker(engine: str, workdir: Path) -> BrokerEngine:
    """A new broker per measurement, not started: Tansu keeps every message in memory and its fetches
    slow down as partitions fill (docs/BENCHMARKS.md), so one measurement's leftovers would tax the
    next; Kafka gets a fresh temporary data dir alike, so both engines are measured the same way."""
    return make_broker(engine, log_path=workdir / f"broker-{engine}.log")


def pinned(plan: Plan) -> set[int] | None:
    return set(plan.worker_cpus) if plan.worker_cpus else None


def latency_phase(settings: StreamSettings, source: EventSource, rate: float, plan: Plan,
                  seen_before: list[dict] | None = None) -> dict:
    """A warm-up at ``rate`` (not measured), then the measured phase, on an already running worker
    (which has already scored ``seen_before``)."""
    n_warmup = int(rate * plan.warmup_s)
    events = source.take(n_warmup + int(rate * plan.seconds_per_rate))  # one slice: whole histories
    asyncio.run(offered_rate(settings, events[:n_warmup], rate, drain_s=60))
    result = asyncio.run(offered_rate(settings, events[n_warmup:], rate, drain_s=60))
    earlier = seen_before or []
    result["window_length"] = window_lengths(earlier + events, plan.window_length,
                                             skip=len(earlier) + n_warmup)
    return result


@dataclasses.dataclass
class Variant:
    """One worker configuration whose throughput is measured."""

    name: str
    agent: str
    settings: StreamSettings
    recovery_safe: bool = False
    runs: int | None = None  # None: the plan's throughput_runs
    events: int | None = None  # None: the plan's throughput_events
    backlog_latency: bool = False  # also the latency phase on the last run's full topics
    engine: str = "tansu"  # the broker engine it runs on


def throughput_run(variant: Variant, source: EventSource, plan: Plan, workdir: Path, model: Path,
                   backlog_latency: bool) -> dict:
    """A fresh broker, topics and ``plan.workers`` workers draining a backlog; optionally then the
    latency phase at the backlog rate on those full topics (Tansu's slow-down, same run).  One
    worker starts on a preloaded backlog; several first split the partitions (a rebalance is not
    what is measured), then the backlog is sent while they drain it."""
    n = variant.events or plan.throughput_events
    with contextlib.ExitStack() as stacks:
        broker = stacks.enter_context(fresh_broker(variant.engine, workdir))
        settings = engine_settings(settings_for(variant.settings, variant.agent, workdir, model), broker,
                                   variant.recovery_safe)
        asyncio.run(create_topics(settings))
        events = source.take(n)
        if plan.workers == 1:
            asyncio.run(preload(settings, events))
        stack = stacks.enter_context(LocalStack(settings, workdir, broker=broker, worker_cpus=pinned(plan),
                                                recovery_safe=variant.recovery_safe))
        more = [stacks.enter_context(more_worker(stack, i)) for i in range(1, plan.workers)]
        workers = [w for w in (stack.worker, *more) if w is not None]
        pids = [w.pid for w in workers]
        if plan.workers > 1:
            wait_for_split(workers, stack.settings.partitions)
        before = cpu_use(broker, pids)
        if plan.workers > 1:
            preloading = threading.Thread(target=asyncio.run, args=(preload(stack.settings, events),))
            preloading.start()
        result = asyncio.run(drain(stack.settings, n))
        if plan.workers > 1:
            preloading.join()
        after = cpu_use(broker, pids)
        # per event drained; the broker's share includes serving the benchmark's producer and consumer
        result["cpu_us_per_event"] = {name: round((after[name] - before[name]) / n * 1e6) for name in after}
        result["workers"] = plan.workers
        result["window_length"] = window_lengths(events, plan.window_length)
        log.info("%s on %s throughput: %s", variant.name, variant.engine, result)
        if backlog_latency:
            result["latency_after_backlog"] = latency_phase(stack.settings, source, plan.backlog_rate, plan,
                                                            events)
            log.info("%s at %s ev/s after the backlog: %s", variant.name, plan.backlog_rate,
                     result["latency_after_backlog"])
    return result


@contextlib.contextmanager
def more_worker(stack: LocalStack, index: int) -> Iterator[WorkerProcess]:
    """Another worker of the stack's group (own data directory and log), stopped on exit."""
    settings = stack.settings.replace(data_dir=f"{stack.settings.data_dir}-{index}")
    worker = WorkerProcess(settings, stack.workdir / f"worker-{settings.app_id}-{index}.log",
                           stack.worker_cpus).start()
    try:
        yield worker
    finally:
        worker.stop()


def measure_throughput(variants: list[Variant], source: EventSource, plan: Plan, workdir: Path,
                       model: Path) -> dict[str, dict]:
    """Every variant once per round, rounds repeated: a machine that slows down or speeds up
    during the benchmark (seen here: the same configuration 30 % slower ten minutes later)
    then shifts every variant alike instead of whichever ran last."""
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    rounds = max(v.runs or plan.throughput_runs for v in variants)
    for round_ in range(rounds):
        for v in variants:
            wanted = v.runs or plan.throughput_runs
            if round_ < wanted:
                runs[v.name].append(throughput_run(v, source, plan, workdir, model,
                                                   v.backlog_latency and round_ == wanted - 1))
    return {name: {"events_per_s": statistics.median(r["events_per_s"] for r in rs), "runs": rs}
            for name, rs in runs.items()}


def measure_latency(engine: str, agents: dict[str, tuple[str, StreamSettings]], source: EventSource,
                    plan: Plan, workdir: Path, model: Path) -> dict[str, dict[str, dict]]:
    """Per offered rate, each agent on a fresh ``engine`` broker, topics and worker (Tansu's fetches
    slow down as partitions fill: docs/BENCHMARKS.md), agents alternating within each rate."""
    out: dict[str, dict[str, dict]] = {name: {} for name in agents}
    for rate in plan.rates:
        for name, (agent, settings) in agents.items():
            with fresh_broker(engine, workdir) as broker, relay_or_worker(
                    settings_for(settings, agent, workdir, model), agent, workdir, broker, plan) as running:
                out[name][str(int(rate))] = latency_phase(running, source, rate, plan)
            log.info("%s on %s at %s ev/s: %s", name, engine, rate, out[name][str(int(rate))])
    return out


@contextlib.contextmanager
def relay_or_worker(settings: StreamSettings, agent: str, workdir: Path, broker: BrokerEngine,
                    plan: Plan) -> Iterator[StreamSettings]:
    """A started worker (LocalStack) or, for ``relay``, the two plain aiokafka hops of bench/relay.py
    on the same broker; yields the settings to offer events with.  The relay has no readiness
    check: the latency phase's warm-up waits for its outputs, so it has joined its group by then."""
    if agent != RELAY:
        with LocalStack(settings, workdir, broker=broker, worker_cpus=pinned(plan)) as stack:
            yield stack.settings
        return
    settings = engine_settings(settings, broker)
    asyncio.run(create_topics(settings))
    with RelayProcess(settings, workdir / "relay.log"):
        yield settings


def other_loop(base: StreamSettings) -> str:
    """The event loop that is not the default: measured beside it (throughput and latency)."""
    return "uvloop" if base.event_loop == "asyncio" else "asyncio"


def variants_of(base: StreamSettings, scoring: dict[str, StreamSettings], plan: Plan,
                baselines: bool, engine: str = "tansu") -> list[Variant]:
    """The passthrough and the scoring agent on each device, then the in-run baselines: the
    variants this project's choices are measured against, all on ``engine``.  Tansu's recovery
    work-around only on Tansu: Kafka needs none."""
    variants = [Variant("passthrough", "passthrough", base, backlog_latency=True)]
    variants += [Variant(f"recommend-{d}", "recommend", s, backlog_latency=i == 0)
                 for i, (d, s) in enumerate(scoring.items())]
    if baselines:
        headline = next(iter(scoring.values()))
        other = other_loop(base)
        variants += [
            Variant(f"passthrough_{other}", "passthrough", base.replace(event_loop=other)),
            Variant(f"recommend_{other}", "recommend", headline.replace(event_loop=other)),
            Variant("passthrough_faust_handoff", "passthrough", base.replace(eager_dispatch=False)),
            Variant("recommend_faust_handoff", "recommend", headline.replace(eager_dispatch=False)),
            Variant("recommend_scoring_thread", "recommend", headline.replace(scoring_process=False)),
            Variant("recommend_gc_defaults", "recommend", headline.replace(gc_tuning=False)),
            Variant("recommend_worker_samples", "recommend", headline.replace(samples_source="worker")),
            Variant("recommend_recovery_safe", "recommend", headline, recovery_safe=True, runs=1,
                    events=plan.recovery_safe_events)]
    return [dataclasses.replace(v, engine=engine) for v in variants
            if not (v.recovery_safe and engine != "tansu")]


@dataclasses.dataclass
class Setup:
    """What every engine is measured with."""

    base: StreamSettings
    scoring: dict[str, StreamSettings]  # device → the scoring agent's settings; the first is the headline
    plan: Plan
    data: InteractionData
    workdir: Path
    model: Path
    epochs: int
    baselines: bool


def measure_engine(engine: str, setup: Setup) -> dict:
    """Throughput (variants in rounds) then latency (rates), all on fresh ``engine`` brokers.  Every
    engine replays the same events: its own EventSource."""
    source = EventSource(setup.data)
    variants = variants_of(setup.base, setup.scoring, setup.plan, setup.baselines, engine)
    throughput = measure_throughput(variants, source, setup.plan, setup.workdir, setup.model)
    device, headline = next(iter(setup.scoring.items()))
    other = other_loop(setup.base)  # the default loop's in-run baseline for latency too
    agents = {"passthrough": ("passthrough", setup.base),
              **{f"recommend-{d}": ("recommend", s) for d, s in setup.scoring.items()},
              f"recommend-{device}-{other}": ("recommend", headline.replace(event_loop=other)),
              RELAY: (RELAY, setup.base)}
    latency = measure_latency(engine, agents, source, setup.plan, setup.workdir, setup.model)
    runs = {name: {"throughput": throughput.pop(name, None), "latency": latency[name]} for name in latency}
    return engine_result(engine, setup, runs, baselines=throughput)  # what is left: the baselines


def latencies(run: dict) -> dict[str, dict]:
    return {rate: r["latency_ms"] for rate, r in run["latency"].items()}


def engine_result(engine: str, setup: Setup, runs: dict[str, dict], baselines: dict[str, dict]) -> dict:
    """One engine's part of the result file: the fields the file had when it measured Tansu alone."""
    headline, *_ = setup.scoring
    broker = make_broker(engine)  # not started: only its settings and description are recorded
    requested = settings_for(setup.scoring[headline], "recommend", setup.workdir, setup.model)
    effective = engine_settings(requested, broker)
    passthrough, recommend = runs["passthrough"], runs[f"recommend-{headline}"]
    rec_eps = recommend["throughput"]["events_per_s"]
    pass_eps = passthrough["throughput"]["events_per_s"]
    data, model = setup.data, setup.model
    return {
        "broker": describe_broker(broker),
        "events_per_s": rec_eps,
        "passthrough_events_per_s": pass_eps,
        "ratio_to_passthrough": round(rec_eps / pass_eps, 3) if pass_eps else None,
        "latency_ms": latencies(recommend),
        "passthrough_latency_ms": latencies(passthrough),
        "relay_latency_ms": latencies(runs[RELAY]),  # two plain aiokafka hops: the floor
        "other_loop_latency_ms": {other_loop(setup.base): latencies(runs[f"recommend-{headline}-"
                                                                        f"{other_loop(setup.base)}"])},
        "latency_split_ms": {rate: {part: r[part] for part in SPLIT}
                             for rate, r in recommend["latency"].items()},
        "latency_after_backlog_ms": {
            name: run["throughput"]["runs"][-1]["latency_after_backlog"]["latency_ms"]
            for name, run in (("passthrough", passthrough), ("recommend", recommend))},
        "events_per_s_by_device": {d: runs[f"recommend-{d}"]["throughput"]["events_per_s"]
                                   for d in setup.scoring},
        "latency_ms_by_device": {d: latencies(runs[f"recommend-{d}"]) for d in setup.scoring},
        "baselines_events_per_s": {name: r["events_per_s"] for name, r in baselines.items()},
        "runs": runs, "baselines": baselines,
        "settings": {k: v for k, v in dataclasses.asdict(effective).items() if k in MEASURED_SETTINGS},
        "plan": dataclasses.asdict(setup.plan),
        "data": {"dataset": data.name, "items": data.n_items, "users": data.n_users, "events": data.n_events},
        "model": {"path": str(model.relative_to(REPO) if model.is_relative_to(REPO) else model),
                  "epochs": setup.epochs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                        help="broker engines to measure, one after the other (the whole run per engine)")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "stream-bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "stream-bench.json")
    parser.add_argument("--rates", type=float, nargs="+", default=[250, 1000, 2500])
    parser.add_argument("--seconds-per-rate", type=float, default=10.0)
    parser.add_argument("--throughput-events", type=int, default=20000)
    parser.add_argument("--throughput-runs", type=int, default=3,
                        help="fresh worker per run; the median is reported")
    parser.add_argument("--partitions", type=int, default=16,
                        help="partitions of every topic (Tansu slows down as partitions fill)")
    parser.add_argument("--devices", nargs="+", default=["cpu"],
                        help="scoring devices of the scoring agent: the first is the headline, e.g. cpu cuda")
    parser.add_argument("--set", action="append", default=[], metavar="AMSRM_NAME=VALUE",
                        help="a setting for every variant, as its environment variable (repeatable)")
    parser.add_argument("--workers", type=int, default=1,
                        help="workers of one group in each throughput run (they split the partitions first)")
    parser.add_argument("--worker-cpus", type=int, nargs="+",
                        help="pin each worker to these cores (run the benchmark itself on the others)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the in-run baselines (Faust's hand-off, thread scorer, recovery-safe)")
    parser.add_argument("--quick", action="store_true", help="small plan for a smoke run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    plan = Plan(args.throughput_events, args.throughput_runs, args.rates, args.seconds_per_rate,
                args.throughput_events // 2)
    if args.quick:
        plan = Plan(3000, 1, [250, 1000], 4.0, 1500)
    plan.worker_cpus, plan.workers = args.worker_cpus, args.workers

    load_before = os.getloadavg()
    commit = git_commit()  # before the run writes its result file into the tree
    data = load_dataset(args.dataset)
    started = time.perf_counter()
    model = ensure_checkpoint(args.workdir / f"model-{data.name}", data, epochs=args.epochs)
    log.info("model ready in %.0fs", time.perf_counter() - started)
    # production-like batching (the defaults, or --set); partition count and engine work-arounds set here
    base = StreamSettings.load(dict(pair.split("=", 1) for pair in args.set)).replace(
        partitions=args.partitions, output_partitions=args.partitions)
    plan.window_length = base.window_length or load_checkpoint(model).model.config.max_len
    scoring = {device: base.replace(device=device) for device in args.devices}
    setup = Setup(base, scoring, plan, data, args.workdir, model, args.epochs, not args.no_baselines)
    engines = {engine: measure_engine(engine, setup) for engine in dict.fromkeys(args.engines)}
    result = {
        "engines": engines,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("events_per_s", "passthrough_events_per_s", "ratio_to_passthrough", "latency_ms",
             "passthrough_latency_ms", "latency_after_backlog_ms", "events_per_s_by_device",
             "latency_ms_by_device", "baselines_events_per_s", "relay_latency_ms", "latency_split_ms",
             "other_loop_latency_ms")
    print(json.dumps({engine: {k: r[k] for k in shown} for engine, r in engines.items()}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
