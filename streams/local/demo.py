"""``amsrm demo``: the whole streaming path on one machine, in one command.

Trains (or reuses) a small model, starts a local broker (the embedded Tansu by default, or
Apache Kafka with ``engine="kafka"``) and a worker, replays
events, shows recommendations as they arrive, prints a summary and shuts everything
down (also on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from amsrm.settings import StreamSettings
from amsrm_core.data import load_dataset
from producers.replay import replay
from streams.clients.subscriber import format_recommendation, read_until
from streams.local.checkpoints import ensure_checkpoint
from streams.local.measure import Measurement
from streams.local.stack import LocalStack

log = logging.getLogger(__name__)


@dataclass
class DemoOptions:
    dataset: str = "synthetic"  # any load_dataset name; synthetic needs no files
    data_path: str | None = None
    events: int = 3000  # how many events to replay
    rate: float = 500.0  # events per second offered
    epochs: int = 8  # training epochs when no checkpoint is reused; fewer give near-popularity lists
    workdir: Path = Path("runs/demo")
    show_every: int = 0  # print every n-th recommendation; 0 = about 15 in all
    timeout_s: float = 120.0  # longest wait for the last recommendation after the replay
    engine: str = "tansu"  # tansu: pip only; kafka: Apache Kafka (KRaft), needs Java 17 and Maven


def run_demo(options: DemoOptions, base: StreamSettings | None = None) -> dict:
    data = load_dataset(options.dataset, options.data_path)
    print(f"data: {data.name}, {data.n_users} users, {data.n_items} items, {data.n_events} events")
    started = time.perf_counter()
    checkpoint = ensure_checkpoint(options.workdir / f"model-{data.name}", data, epochs=options.epochs)
    print(f"model: {checkpoint} ({time.perf_counter() - started:.1f}s)")
    base = base or StreamSettings.load()
    settings = base.replace(app_id=f"amsrm-demo-{uuid.uuid4().hex[:6]}", model_path=str(checkpoint),
                            data_dir=str(options.workdir / "worker-data"), table_standby_replicas=0)
    n = min(options.events, data.n_events)
    show_every = options.show_every or max(1, n // 15)
    with LocalStack(settings, options.workdir, engine=options.engine) as stack:
        pid = stack.worker.pid if stack.worker else "?"
        print(f"broker: {options.engine} on {stack.broker.url}; worker pid {pid}; "
              f"replaying {n} events at {options.rate:g}/s")
        measurement = asyncio.run(_replay_and_watch(stack.settings, data, n, options, show_every))
        dead = asyncio.run(read_until(stack.settings, [stack.settings.dead_letters_topic], lambda m: False,
                                      timeout_s=1.0))
    summary = {
        "events_sent": n, "recommendations": measurement.received, "duplicates": measurement.duplicates,
        "popularity_fallbacks": measurement.fallbacks, "dead_letters": len(dead),
        "events_per_s": round(measurement.throughput(), 1), "latency_ms": measurement.percentiles(),
    }
    print("summary: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return summary


async def _replay_and_watch(settings: StreamSettings, data, n: int, options: DemoOptions,
                            show_every: int) -> Measurement:
    measurement = Measurement()

    def on_message(record) -> None:
        value = measurement.add(record)
        if measurement.received % show_every == 0:
            print(format_recommendation(value, measurement.receive_ms[-1]))

    watcher = asyncio.create_task(read_until(
        settings, [settings.recommendations_topic], lambda _: measurement.received >= n,
        timeout_s=n / options.rate + options.timeout_s, on_message=on_message))
    await replay(settings, data, rate=options.rate, limit=n, progress=False)
    await watcher
    return measurement
