"""Where a scoring worker's event loop spends its CPU on Apache Kafka: a py-spy profile of one drain.

The stream benchmark's throughput run (bench/stream_bench.py: a fresh broker and topics, a
backlog of Beauty events preloaded, a fresh worker draining it) with py-spy sampling the worker's
main process (its event loop; the scorer runs in a child process, profiled apart with
``--subprocesses`` off) while it drains.  Writes the folded stacks and a summary of the frames with
the most samples, inclusive (the frame or anything it calls) and exclusive (the frame itself).

    pip install py-spy
    flock /tmp/amsrm-cpu.lock python bench/profile_worker.py   # → docs/results/profile-worker-kafka.*
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from stream_bench import EventSource, drain, fresh_broker, preload, settings_for  # this folder

from amsrm.settings import StreamSettings
from amsrm_core.data import load_dataset
from amsrm_core.results import git_commit, machine
from streams.clients.admin import create_topics
from streams.local.broker import engine_settings
from streams.local.checkpoints import ensure_checkpoint
from streams.local.stack import LocalStack

REPO = Path(__file__).resolve().parent.parent


def summarise(folded: Path, top: int) -> dict:
    """Samples per frame (``function (file:line)`` as py-spy names them), inclusive and exclusive."""
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        exclusive[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def shares(counts: collections.Counter[str]) -> list[dict]:
        return [{"frame": f, "share": round(n / total, 3)} for f, n in counts.most_common(top)]

    return {"samples": total, "inclusive": shares(inclusive), "exclusive": shares(exclusive)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--events", type=int, default=30000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "stream-bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "profile-worker-kafka")
    args = parser.parse_args()
    commit = git_commit()
    data = load_dataset(args.dataset)
    model = ensure_checkpoint(args.workdir / f"model-{data.name}", data, epochs=1)
    base = StreamSettings.load({}).replace(partitions=args.partitions, output_partitions=args.partitions)
    folded = args.out.with_suffix(".folded.txt")
    with contextlib.ExitStack() as stacks:
        broker = stacks.enter_context(fresh_broker("kafka", args.workdir))
        settings = engine_settings(settings_for(base, "recommend", args.workdir, model), broker, False)
        asyncio.run(create_topics(settings))
        asyncio.run(preload(settings, EventSource(data).take(args.events)))
        stack = stacks.enter_context(LocalStack(settings, args.workdir, broker=broker))
        assert stack.worker is not None
        py_spy = str(Path(sys.executable).with_name("py-spy"))  # installed beside this interpreter
        spy = subprocess.Popen([py_spy, "record", "--pid", str(stack.worker.pid), "--rate", str(args.rate),
                                "--format", "raw", "--output", str(folded), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = time.perf_counter()
        drained = asyncio.run(drain(stack.settings, args.events))
        seconds = time.perf_counter() - started
        spy.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        spy.wait(timeout=60)
    summary = {"commit": commit, "machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": "python bench/profile_worker.py", "engine": "kafka", "events": args.events,
               "drain": drained, "profiled_s": round(seconds, 1), "rate_hz": args.rate,
               **summarise(folded, args.top)}
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("drain", "samples")}), flush=True)
    for row in summary["inclusive"][:25]:
        print(f"{row['share']:6.1%}  {row['frame']}")


if __name__ == "__main__":
    main()
