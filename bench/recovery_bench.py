"""Rebalance / recovery benchmark: how long a fresh worker takes to take over a filled window table.

For each table size (users, one window each) and each broker engine (``--engines``, default both):
1. fill: a worker (data dir A) gets one event per user from the events topic, so its window
   table — RocksDB plus the compacted changelog topic — holds one window per user; it is
   then stopped (SIGTERM: commit, flush);
2. take over, ``--runs`` times: a fresh worker with an *empty* data dir starts, joins the
   group, gets every partition and rebuilds the table from the changelog.  Its readiness
   endpoint (/readyz: model loaded, partitions assigned, tables recovered) is polled every
   20 ms: start → partitions assigned → ready.  Then it is stopped and the recovered
   RocksDB files are counted (every user must be there).

One broker per engine runs for the whole benchmark, and the engines take turns per size (the one
not measured sits idle), so a drift of the machine's speed hits them alike.

On Tansu every worker uses ``producer_max_batch_size=1``: with batched writes its wrong end
offsets make Faust's recovery stop early or fail (docs/BROKER.md); Tansu's JoinGroup delay
(about half the session timeout) is part of "start → assigned".  Tansu also stops serving
fetches from partitions of more than ~12k single-record batches, hence 16 partitions by default
(at most 6,250 windows per changelog partition at 100k users).  On Kafka none of these
work-arounds apply: default producer batching, Kafka's own consumer timeouts, and no JoinGroup
delay in "start → assigned" (the broker runs with group.initial.rebalance.delay.ms=0).

    flock /tmp/amsrm-cpu.lock .venv/bin/python bench/recovery_bench.py          # documented run
    flock /tmp/amsrm-cpu.lock .venv/bin/python bench/recovery_bench.py --sizes 0 2000 --runs 1 \\
        --out /tmp/recovery-bench.json                                           # smoke

Writes docs/results/recovery-bench.json (see docs/BENCHMARKS.md, "Recovery"): per engine under
"engines", commit and machine once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import orjson
import torch
from broker_latency import describe_broker  # this folder
from rocksdict import AccessType, Options, Rdict

from amsrm.settings import StreamSettings
from amsrm_core.data.synthetic import SyntheticConfig, generate_synthetic
from amsrm_core.results import git_commit
from producers.kafka import make_producer
from streams.clients.admin import create_topics
from streams.local.broker import ENGINES, BrokerEngine, engine_settings, free_port, make_broker
from streams.local.checkpoints import ensure_checkpoint
from streams.local.worker_process import WorkerProcess
from streams.ops.server import http_get

REPO = Path(__file__).resolve().parents[1]
MEASURED_SETTINGS = ("partitions", "store_url", "table_standby_replicas", "producer_max_batch_size",
                     "consumer_fetch_max_wait_ms", "session_timeout_s", "heartbeat_interval_s",
                     "commit_interval_s", "batch_max", "window_length", "torch_threads")
POLL_S = 0.02
log = logging.getLogger("recovery_bench")


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples from the worker's /metrics."""
    _, body = http_get(port, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(name) and not line.startswith("#"))


def worker(settings: StreamSettings, data_dir: Path, log_path: Path) -> tuple[WorkerProcess, int]:
    port = free_port()
    run = settings.replace(data_dir=str(data_dir), ops_port=port, ops_host="127.0.0.1", log_format="json")
    return WorkerProcess(run, log_path), port


async def send_events(settings: StreamSettings, users: int, items: list[str]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        now = time.time_ns() // 1_000_000
        for u in range(users):
            event = {"event_id": f"e{u}", "user_id": f"u{u}", "item_id": items[u % len(items)],
                     "timestamp": now, "behaviour": "click", "item_fields": {"category": f"c{u % 17}"}}
            await producer.send(settings.events_topic, orjson.dumps(event), key=event["user_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def wait(condition, timeout_s: float, what: str, process: WorkerProcess) -> float:
    deadline = time.monotonic() + timeout_s
    while not condition():
        process._check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s}s (log {process.log_path})")
        time.sleep(POLL_S)
    return time.monotonic()


def table_keys(data_dir: Path) -> tuple[int, int]:
    """(windows, value bytes) in a stopped worker's RocksDB files."""
    count = size = 0
    for path in sorted((data_dir / "v1" / "tables").glob("windows-*.db")):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for k, v in db.items():
                if not k.startswith(b"__faust"):
                    count, size = count + 1, size + len(v)
        finally:
            db.close()
    return count, size


def fill(settings: StreamSettings, users: int, items: list[str], workdir: Path) -> dict:
    data_dir = workdir / "fill"
    filler, port = worker(settings, data_dir, workdir / "fill.log")
    with filler:
        filler.wait_ready(180)
        started = time.monotonic()
        asyncio.run(send_events(settings, users, items))
        if users:
            wait(lambda: metric(port, "amsrm_recommendations_total") >= users, 60 + users / 200,
                 "every event processed", filler)
        seconds = time.monotonic() - started
        time.sleep(2 * settings.commit_interval_s)  # the last offsets committed before the stop
    windows, value_bytes = table_keys(data_dir)
    assert windows == users, f"filler table has {windows} windows, expected {users}"
    return {"users": users, "fill_seconds": round(seconds, 2),
            "fill_events_per_s": round(users / seconds, 1) if users else None,
            "mean_window_bytes": round(value_bytes / windows, 1) if windows else None}


def take_over(settings: StreamSettings, users: int, workdir: Path, run: int) -> dict:
    data_dir = workdir / f"takeover-{run}"
    shutil.rmtree(data_dir, ignore_errors=True)  # empty: everything comes from the changelog
    fresh, port = worker(settings, data_dir, workdir / f"takeover-{run}.log")
    started = time.monotonic()
    with fresh:
        def readiness() -> dict:
            status, body = http_get(port, "/readyz")
            return orjson.loads(body) if status in (200, 503) else {}

        assigned_at = wait(lambda: readiness().get("checks", {}).get("partitions_assigned"), 180,
                           "assignment", fresh)
        ready_at = wait(lambda: http_get(port, "/readyz")[0] == 200, 600, "readiness", fresh)
        estimate = metric(port, "amsrm_table_keys")
    recovered, _ = table_keys(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    result = {"start_to_assigned_s": round(assigned_at - started, 3),
              "assigned_to_ready_s": round(ready_at - assigned_at, 3),
              "start_to_ready_s": round(ready_at - started, 3),
              "table_keys_metric": estimate, "recovered_windows": recovered}
    log.info("%d users, run %d: %s", users, run, result)
    if recovered != users:
        raise AssertionError(f"recovered {recovered} windows of {users}")
    return result


def median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def size_settings(users: int, partitions: int, model: Path) -> StreamSettings:
    """Fresh topics and group for one table size, before the engine's work-arounds."""
    tag = f"rb{users}-{uuid.uuid4().hex[:6]}"
    return StreamSettings.load({}, app_id=tag, events_topic=f"{tag}-events",
                               recommendations_topic=f"{tag}-recs", samples_topic=f"{tag}-samples",
                               dead_letters_topic=f"{tag}-dead", partitions=partitions,
                               output_partitions=partitions, model_path=str(model),
                               table_standby_replicas=0, samples_source="events", log_level="info")


def measure_size(broker: BrokerEngine, users: int, items: list[str], args: argparse.Namespace,
                 model: Path) -> dict:
    """Fill a table of ``users`` windows on ``broker`` (fresh topics and group), then take-overs of it."""
    settings = engine_settings(size_settings(users, args.partitions, model), broker,
                               recovery_safe=True)  # Tansu only: batch size 1
    asyncio.run(create_topics(settings))
    workdir = args.workdir / settings.app_id
    filled = fill(settings, users, items, workdir)
    log.info("filled: %s", filled)
    takeovers = [take_over(settings, users, workdir, run) for run in range(args.runs)]
    shutil.rmtree(workdir, ignore_errors=True)
    return {**filled, "runs": takeovers,
            **{f"median_{key}": median(takeovers, key)
               for key in ("start_to_assigned_s", "assigned_to_ready_s", "start_to_ready_s")}}


def engine_result(broker: BrokerEngine, results: list[dict], args: argparse.Namespace, model: Path) -> dict:
    """One engine's part of the result file: the fields the file had when it measured Tansu alone."""
    settings = dataclasses.asdict(engine_settings(size_settings(0, args.partitions, model), broker,
                                                  recovery_safe=True))
    return {"what": "fresh worker (empty data dir) takes over every partition of a filled window table",
            "broker": describe_broker(broker), "results": results,
            "settings": {k: v for k, v in settings.items() if k in MEASURED_SETTINGS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                        help="broker engines to measure, side by side (turns per size)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 10_000, 100_000], help="users (windows)")
    parser.add_argument("--runs", type=int, default=3, help="take-overs per size (medians reported)")
    # 16: Tansu stops serving fetches from a partition of more than ~12k single-record batches
    # (measured: 12,000 read in 0.5 s, 20,000 not within 20 s); 100k users / 16 = 6.25k each
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "recovery-bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "recovery-bench.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    commit = git_commit()
    data = generate_synthetic(SyntheticConfig(n_users=300, n_items=600, seed=1))
    model = ensure_checkpoint(args.workdir / "model", data, epochs=1)
    items = data.item_vocab.tokens[2:]  # real item ids, so windows hold known items (0, 1: padding, unknown)
    engines = list(dict.fromkeys(args.engines))
    results: dict[str, list[dict]] = {engine: [] for engine in engines}
    with contextlib.ExitStack() as stack:
        brokers = {engine: stack.enter_context(make_broker(engine, log_path=args.workdir / f"{engine}.log"))
                   for engine in engines}
        for users in args.sizes:
            for engine, broker in brokers.items():
                results[engine].append(measure_size(broker, users, items, args, model))
        by_engine = {engine: engine_result(broker, results[engine], args, model)
                     for engine, broker in brokers.items()}
    document = {
        "engines": by_engine,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": commit,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    for engine, rows in results.items():
        for r in rows:
            print(f"{engine:>5} {r['users']:>7} users: start→assigned {r['median_start_to_assigned_s']}s, "
                  f"assigned→ready {r['median_assigned_to_ready_s']}s, "
                  f"start→ready {r['median_start_to_ready_s']}s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
