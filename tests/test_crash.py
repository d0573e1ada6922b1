"""Workers killed with SIGKILL at random moments while events keep arriving: nothing may be lost.

More than 10,000 events with unique ids are produced at a steady rate; meanwhile the worker is
killed three times at random points (seeded: ``AMSRM_CRASH_SEED`` repeats a run) and restarted,
the second time with its data directory wiped so that the table is rebuilt from its changelog.
Offsets are committed every second, so every kill lands between commits with work in flight.
At-least-once (the default) must give: a recommendation for every event; repeats only of events
sent before the last kill; every labelled sample's window equal to the true preceding events;
every user's final window equal to the last n of their events.  On both broker engines.
``AMSRM_CRASH_RESULTS=FILE`` appends each run's figures to FILE (bench/crash_runs.py).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from conftest import test_broker_engine
from test_streams_integration import (  # noqa: F401 (checkpoint: a fixture)
    FAST_FAILOVER,
    MAX_LEN,
    NOW_MS,
    TIMEOUT_S,
    checkpoint,
    events_of,
    ids_cover,
    new_settings,
    produce,
    read,
    recomputed_windows,
    table_contents,
)

from producers.events import encode
from streams.local.worker_process import WorkerProcess

pytestmark = pytest.mark.slow

KILLS = 3
WIPED_AT_KILL = 2  # the restart after this kill starts with an empty data directory
RATE = 500.0  # events per second offered
CHUNK = 50
RESULTS_ENV = "AMSRM_CRASH_RESULTS"  # a file to append each run's figures to (one JSON object per line)


def crash_seed() -> int:
    return int(os.environ.get("AMSRM_CRASH_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)


class SteadyProducer(threading.Thread):
    """Sends the events in order at RATE, in chunks, noting when each chunk was sent."""

    def __init__(self, settings, events: list[dict]) -> None:
        super().__init__(daemon=True)
        self.settings, self.events = settings, events
        self.sent_at: dict[str, float] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = time.monotonic()
            for i in range(0, len(self.events), CHUNK):
                chunk = self.events[i:i + CHUNK]
                time.sleep(max(0.0, start + i / RATE - time.monotonic()))
                produce(self.settings, [encode(e, NOW_MS) for e in chunk])
                now = time.monotonic()
                self.sent_at.update((e["event_id"], now) for e in chunk)
        except BaseException as e:  # surfaced by the test
            self.error = e


def twice_over(data) -> list[dict]:
    """The data set's events, then all of them again under new ids (users coming back)."""
    first = events_of(data, data.n_events)
    return first + [{**e, "event_id": e["event_id"] + "~1"} for e in first]


def test_three_kills_lose_nothing_and_corrupt_no_window(broker, checkpoint, small_synthetic,  # noqa: F811
                                                        tmp_path: Path):
    seed = crash_seed()
    print(f"AMSRM_CRASH_SEED={seed}")
    rng = random.Random(seed)
    settings = new_settings(broker, tmp_path, checkpoint, recovery_safe=True, commit_interval_s=1.0,
                            **FAST_FAILOVER)
    events = twice_over(small_synthetic)
    assert len(events) >= 10_000 and len({e["event_id"] for e in events}) == len(events)
    producer = SteadyProducer(settings, events)
    data_dir, logs = Path(settings.data_dir), tmp_path / "logs"
    killed_at: list[float] = []
    worker = WorkerProcess(settings, logs / "worker-0.log").start()
    try:
        worker.wait_ready(TIMEOUT_S)
        producer.start()
        for kill in range(1, KILLS + 1):
            time.sleep(rng.uniform(1.0, 6.0))
            worker.kill()
            killed_at.append(time.monotonic())
            if kill == WIPED_AT_KILL:
                shutil.rmtree(data_dir, ignore_errors=True)
            worker = WorkerProcess(settings, logs / f"worker-{kill}.log").start()
            worker.wait_ready(TIMEOUT_S)
        producer.join(timeout=len(events) / RATE + TIMEOUT_S)
        assert producer.error is None and not producer.is_alive()
        expected = {e["event_id"] for e in events}
        recs = read(settings, settings.recommendations_topic, ids_cover(expected))
    finally:
        worker.stop()
    counts = Counter(orjson.loads(m.value)["event_id"] for m in recs)
    lost = expected - counts.keys()
    repeated = {eid for eid, n in counts.items() if n > 1}
    late = {eid for eid in repeated if producer.sent_at[eid] > killed_at[-1]}
    before = recomputed_windows(events, MAX_LEN)
    with_window = {eid for eid, window in before.items() if window}
    wrong = []
    for m in read(settings, settings.samples_topic, ids_cover(with_window)):
        sample = orjson.loads(m.value)
        if [e["item_id"] for e in sample["window"]] != before[sample["event_id"]]:
            wrong.append(sample["event_id"])
    final: dict[str, list[str]] = defaultdict(list)
    for e in events:
        final[e["user_id"]] = [*final[e["user_id"]], e["item_id"]][-MAX_LEN:]
    table = {k.decode(): [e.item_id for e in w.recent(MAX_LEN).entries]
             for k, w in table_contents(data_dir).items()}
    wrong_users = [u for u, items in final.items() if table.get(u) != items]
    figures = {"engine": test_broker_engine(), "seed": seed, "events": len(events), "kills": KILLS,
               "lost": len(lost), "repeated": len(repeated), "repeated_after_last_kill": len(late),
               "wrong_sample_windows": len(wrong), "wrong_final_windows": len(wrong_users),
               "users": len(final)}
    print(figures)
    if results := os.environ.get(RESULTS_ENV):  # bench/crash_runs.py collects these
        with open(results, "a") as f:
            f.write(orjson.dumps(figures).decode() + "\n")
    assert not lost, f"{len(lost)} events without a recommendation, e.g. {sorted(lost)[:5]}"
    assert not late, f"{len(late)} events sent after the last kill were recommended twice"
    assert not wrong, f"{len(wrong)} samples carry a wrong window, e.g. {wrong[:5]}"
    assert not wrong_users, f"{len(wrong_users)} users' final windows are wrong, e.g. {wrong_users[:5]}"
