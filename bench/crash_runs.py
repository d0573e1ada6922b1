"""The kill -9 crash test (tests/test_crash.py) run several times per broker engine, figures collected.

Each run: 11,008 events at 500/s, a worker killed three times at random points (seeds drawn per
run and recorded), the second restart with its data directory wiped, commits every second.  The
test appends one JSON object per run (events, kills, lost, repeated, wrong windows) to a file
named by ``AMSRM_CRASH_RESULTS``; this script runs it and writes them with commit, machine and date.

    python bench/crash_runs.py --runs 5 --engines kafka tansu   # → docs/results/crash-runs.json

Hold the CPU lock (docs/BENCHMARKS.md) while it runs: the kills land at wall-clock moments.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amsrm_core.results import git_commit, machine

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("lost", "repeated", "repeated_after_last_kill", "wrong_sample_windows", "wrong_final_windows")


def run_once(engine: str, results: Path) -> int:
    env = {**os.environ, "AMSRM_TEST_BROKER": engine, "AMSRM_CRASH_RESULTS": str(results)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_crash.py"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engines", nargs="+", default=["kafka", "tansu"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "crash-runs.json")
    args = parser.parse_args()
    engines = {}
    for engine in args.engines:
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "runs.jsonl"
            codes = [run_once(engine, results) for _ in range(args.runs)]
            runs = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        engines[engine] = {"runs": runs, "pytest_exit_codes": codes,
                           "total": {f: sum(r[f] for r in runs) for f in ("events", *FIGURES)}}
        print(engine, engines[engine]["total"], "exit codes", codes, flush=True)
    args.out.write_text(json.dumps({"commit": git_commit(), "machine": machine(),
                                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                    "command": "python bench/crash_runs.py " + " ".join(sys.argv[1:]),
                                    "engines": engines}, indent=2) + "\n")


if __name__ == "__main__":
    main()
