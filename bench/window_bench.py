"""The window table's per-event work, this tree's ``streams.worker.state`` against an earlier commit's.

What the worker does with a user's window for each event (streams.worker.processing): decode the
stored bytes, compare the offset, append the event, encode it back, take the last n for scoring
and the window before the event for its labelled sample.  The baseline is the same module as it
was at ``--baseline`` (read with ``git show``, loaded under another name), measured in the same
run on the same windows: the two are interleaved, ``--runs`` runs of ``--events`` events per
window length, medians of the per-run µs per event.  Both must produce the same bytes.

    flock /tmp/amsrm-cpu.lock .venv/bin/python bench/window_bench.py --baseline fbf8efe
    # → docs/results/window-bench.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from amsrm.messages import BehaviourEvent
from amsrm_core.results import git_commit, machine
from streams.worker import state as current

REPO = Path(__file__).resolve().parents[1]
MODULE = "streams/worker/state.py"


def module_at(commit: str) -> ModuleType:
    """``streams.worker.state`` as it was at ``commit``, as a module of its own."""
    source = subprocess.run(["git", "show", f"{commit}:{MODULE}"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(f"state_at_{commit}", f.name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    os.unlink(f.name)
    return module


def events(n: int) -> list[BehaviourEvent]:
    return [BehaviourEvent(event_id=f"e{i}", user_id="u1", item_id=f"item-{i % 997}",
                           timestamp=1_795_735_041_000 + i, behaviour="click",
                           item_fields={"category": f"c{i % 13}", "brand": f"b{i % 71}"},
                           user_fields={"age": "25-34", "gender": "f"} if i % 5 == 0 else None)
            for i in range(n)]


def stored(module: ModuleType, length: int) -> bytes:
    """A full window of ``length`` entries, as the table holds it."""
    window = module.UserWindow()
    for offset, event in enumerate(events(length)):
        window = window.append(event, offset, length)
    return window.to_bytes()


def per_event(module: ModuleType, raw: bytes, incoming: list[BehaviourEvent], length: int
              ) -> tuple[float, bytes]:
    """µs per event of the worker's window work, and the last bytes written."""
    offset = length
    started = time.perf_counter()
    for event in incoming:
        window = module.UserWindow.from_bytes(raw)
        if offset <= window.last_offset:
            raise AssertionError("offsets grow")
        after = window.append(event, offset, length, keep_from=offset)
        raw = after.to_bytes()
        after.recent(length).scoring_events()
        window.recent(length).public()
        offset += 1
    return (time.perf_counter() - started) / len(incoming) * 1e6, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the commit whose state.py is the baseline")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 30])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results/window-bench.json")
    args = parser.parse_args()
    baseline = module_at(args.baseline)
    modules = {"baseline": baseline, "current": current}
    rows = []
    for length in args.lengths:
        raw = stored(baseline, length)
        if stored(current, length) != raw:
            sys.exit(f"the two encodings differ at length {length}")
        incoming = events(args.events)
        times: dict[str, list[float]] = {name: [] for name in modules}
        for _ in range(args.runs):
            written = {}
            for name, module in modules.items():
                seconds, written[name] = per_event(module, raw, incoming, length)
                times[name].append(seconds)
            if written["baseline"] != written["current"]:
                sys.exit(f"the two wrote different windows at length {length}")
        medians = {name: round(statistics.median(t), 2) for name, t in times.items()}
        rows.append({"window_length": length, "us_per_event": medians,
                     "runs": {name: [round(x, 2) for x in t] for name, t in times.items()},
                     "ratio_current_to_baseline": round(medians["current"] / medians["baseline"], 3)})
        print(rows[-1], flush=True)
    args.out.write_text(json.dumps({
        "commit": git_commit(), "baseline": args.baseline, "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "events_per_run": args.events,
        "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
