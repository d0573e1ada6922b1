"""The ops server without a broker: liveness notices a stuck event loop, readiness reports its
checks, metrics render, JSON logs parse; the counters read from processing.Counters."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from amsrm.logs import JsonFormatter, logging_config
from amsrm.settings import StreamSettings
from streams.local.broker import free_port
from streams.ops.metrics import WorkerMetrics
from streams.ops.server import OpsServer, http_get
from streams.worker.processing import Counters


@pytest.fixture
def ops():
    settings = StreamSettings.load({}, ops_port=free_port(), ops_host="127.0.0.1", liveness_timeout_s=0.3)
    server = OpsServer(settings, "test")
    server.start()
    yield server
    server.stop()


async def test_probes_follow_the_event_loop_and_the_checks(ops):
    port = ops.port
    assert (await asyncio.to_thread(http_get, port, "/livez"))[0] == 200  # no loop yet: starting
    assert (await asyncio.to_thread(http_get, port, "/readyz"))[0] == 503
    ops.bind_loop(asyncio.get_running_loop())
    state = {"ready": False}
    ops.add_check("thing", lambda: state["ready"])
    status, body = await asyncio.to_thread(http_get, port, "/readyz")
    assert status == 503 and orjson.loads(body)["checks"] == {"thing": False}
    state["ready"] = True
    assert (await asyncio.to_thread(http_get, port, "/readyz"))[0] == 200
    assert (await asyncio.to_thread(http_get, port, "/livez"))[0] == 200
    probe = asyncio.get_running_loop().run_in_executor(None, http_get, port, "/livez")
    time.sleep(0.6)  # the loop is stuck for longer than the liveness timeout
    status, body = await probe
    assert status == 503 and b"did not answer" in body
    assert (await asyncio.to_thread(http_get, port, "/nowhere"))[0] == 404


async def test_metrics_read_the_processing_counters(ops):
    metrics = WorkerMetrics(ops.registry, "path")
    counters = Counters(events=7, recommendations=5, dead_letters=2, reasons={"bad_json": 2}, batches=3)
    metrics.counters.source = counters
    metrics.model.version = "amsrm-0123456789ab"
    metrics.batch_read(7)
    metrics.published(1_000, 1_250)
    ops.bind_loop(asyncio.get_running_loop())
    status, body = await asyncio.to_thread(http_get, ops.port, "/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert status == 200 and samples[("amsrm_events_in_total", ())] == 7
    assert samples[("amsrm_dead_letters_total", (("reason", "bad_json"),))] == 2
    assert samples[("amsrm_batch_events_sum", ())] == 7
    assert samples[("amsrm_event_to_recommendation_seconds_sum", ())] == 0.25
    assert samples[("amsrm_model_info", (("source", "path"), ("version", "amsrm-0123456789ab")))] == 1
    assert ("process_cpu_seconds_total", ()) in samples


def test_port_zero_means_no_server_and_a_taken_port_is_logged(caplog):
    assert OpsServer(StreamSettings.load({}, ops_port=0), "off").start() is None
    first = OpsServer(StreamSettings.load({}, ops_port=free_port(), ops_host="127.0.0.1"), "a")
    port = first.start()
    try:
        with caplog.at_level(logging.ERROR):
            second = OpsServer(StreamSettings.load({}, ops_port=port, ops_host="127.0.0.1"), "b")
            assert second.start() is None
        assert "cannot listen" in caplog.text
    finally:
        first.stop()


def test_json_log_lines():
    record = logging.LogRecord("streams.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world" and line["level"] == "warning" and line["logger"] == "streams.x"
    assert line["time"].endswith("Z")
    with pytest.raises(ValueError, match="AMSRM_LOG_FORMAT"):
        logging_config(StreamSettings.load({}, log_format="xml"))
