"""A worker that cannot work must not look alive: a broken model file, an agent that keeps
crashing.  Both fail /livez and end the process with EXIT_AGENT_FAILED (streams.worker.health)."""

from __future__ import annotations

import shutil
import time

import pytest
from test_collector import wait_for
from test_streams_integration import checkpoint, new_settings  # noqa: F401 (checkpoint: a fixture)

from streams.local.broker import free_port
from streams.local.worker_process import WorkerProcess
from streams.ops.server import http_get
from streams.worker.health import EXIT_AGENT_FAILED, CrashBudget

pytestmark = pytest.mark.slow


def test_the_crash_budget_counts_only_recent_crashes():
    budget = CrashBudget(limit=3, window_s=10.0)
    assert not budget.spend(0.0) and not budget.spend(5.0)
    assert not budget.spend(20.0)  # the first two are older than the window
    assert not budget.spend(25.0)
    assert budget.spend(29.0)


def exit_code(worker: WorkerProcess, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while (code := worker.exit_code()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return code


def test_a_worker_whose_model_cannot_load_fails_liveness_and_exits(broker, checkpoint, tmp_path):  # noqa: F811
    broken = tmp_path / "broken-model"
    shutil.copytree(checkpoint, broken)
    (broken / "weights.safetensors").write_bytes(b"not a weights file")
    port = free_port()
    settings = new_settings(broker, tmp_path, checkpoint, ops_port=port, ops_host="127.0.0.1",
                            model_path=str(broken))
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: http_get(port, "/livez")[0] == 503 or worker.exit_code() is not None, timeout_s=90)
        assert exit_code(worker, 30) == EXIT_AGENT_FAILED
        assert "the model cannot be loaded" in worker.log_text()
    finally:
        worker.kill()


def test_a_worker_on_an_events_topic_with_another_partition_count_exits(broker, checkpoint, tmp_path):  # noqa: F811
    created = new_settings(broker, tmp_path, checkpoint, partitions=3)  # the topics have 3 partitions
    port = free_port()
    settings = created.replace(partitions=4, ops_port=port, ops_host="127.0.0.1")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        assert exit_code(worker, 90) == EXIT_AGENT_FAILED
        assert f"{settings.events_topic} has 3 partitions but AMSRM_PARTITIONS is 4" in worker.log_text()
    finally:
        worker.kill()
