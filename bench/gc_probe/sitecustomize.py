"""Records every garbage collection of the process it is loaded into (via PYTHONPATH).

Used by bench/gc_bench.py: once a second it writes, to ``$AMSRM_GC_PROBE_DIR/<pid>.json``,
per generation the number of collections, their total seconds and the longest one, plus
the process's command line and how many objects are frozen (streams.worker.heap).
"""

import gc
import json
import os
import sys
import threading
import time

_out = os.environ.get("AMSRM_GC_PROBE_DIR")
_stats = {str(g): {"collections": 0, "seconds": 0.0, "longest_s": 0.0} for g in range(3)}
_started = [0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    entry = _stats[str(info["generation"])]
    entry["collections"] += 1
    entry["seconds"] += took
    entry["longest_s"] = max(entry["longest_s"], took)


def _dump() -> None:
    path = os.path.join(_out, f"{os.getpid()}.json")
    while True:
        time.sleep(1.0)
        with open(path, "w") as f:
            json.dump({"argv": sys.argv[:3], "frozen": gc.get_freeze_count(), "by_generation": _stats}, f)


if _out:
    gc.callbacks.append(_on_gc)
    threading.Thread(target=_dump, daemon=True, name="gc-probe").start()
