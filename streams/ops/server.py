"""The small HTTP server of every long-running process: Prometheus metrics, liveness, readiness.

One server per process (stream worker, collector) on ``AMSRM_OPS_PORT``, in a daemon
thread, with its own prometheus_client registry:

    GET AMSRM_METRICS_PATH    (/metrics)  Prometheus text format
    GET AMSRM_LIVENESS_PATH   (/livez)    200 while the event loop runs a callback within
                                          AMSRM_LIVENESS_TIMEOUT_S; 503 when it is stuck
    GET AMSRM_READINESS_PATH  (/readyz)   200 when every readiness check passes (evaluated in
                                          the event loop), else 503; the body names each check

Why a thread and not Faust's web server (docs/DEPLOY.md): a liveness probe served by the
event loop it judges cannot tell "stuck" from "slow"; the collector has no Faust app;
Faust's web server starts only after table recovery (so no probe could answer during a
long recovery) and serves table and router pages nobody should expose.

Values that only the event loop may read (consumer positions, RocksDB handles) are
refreshed *in* the loop at scrape time (``add_refresher``); a scrape that finds the loop
busy for longer than the liveness timeout serves the previous values.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from amsrm.settings import StreamSettings

log = logging.getLogger(__name__)

Check = Callable[[], bool]


class OpsServer:
    """Metrics registry, health checks and the HTTP server that serves them."""

    def __init__(self, settings: StreamSettings, component: str) -> None:
        self.settings, self.component = settings, component
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.checks: dict[str, Check] = {}
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.failure: str | None = None  # set by fail(): liveness answers 503 from then on

    # ------------------------------------------------------------------ wiring
    def add_check(self, name: str, check: Check) -> None:
        """A readiness condition; the process is ready when all of them hold."""
        self.checks[name] = check

    def add_refresher(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """A coroutine run in the event loop before each scrape (gauges only the loop may read)."""
        self._refreshers.append(refresh)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the liveness probe pings and refreshers run in."""
        self._loop = loop

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server else None

    def start(self) -> int | None:
        """Listen (idempotent); returns the port, or None when the server is off (port 0)."""
        with self._lock:
            if self._server is not None or self.settings.ops_port == 0:
                return self.port
            try:
                server = ThreadingHTTPServer((self.settings.ops_host, self.settings.ops_port), _handler(self))
            except OSError as e:  # the process still serves; the probes will tell the orchestrator
                log.error("%s: cannot listen on %s:%d (%s): no metrics or health endpoint",
                          self.component, self.settings.ops_host, self.settings.ops_port, e)
                return None
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="amsrm-ops", daemon=True).start()
            self._server = server
        log.info("%s metrics on http://%s:%d%s, probes %s %s", self.component, self.settings.ops_host,
                 self.port, self.settings.metrics_path, self.settings.liveness_path,
                 self.settings.readiness_path)
        return self.port

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def fail(self, reason: str) -> None:
        """The process has given up (it is about to exit): liveness fails with ``reason``."""
        self.failure = reason

    # ------------------------------------------------------------------ answers
    def live(self) -> tuple[bool, str]:
        if self.failure is not None:
            return False, self.failure
        loop = self._loop
        if loop is None:
            return True, "starting"  # the process is up; its loop has not been handed over yet
        if loop.is_closed():
            return False, "event loop closed"
        answered = threading.Event()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # closed meanwhile
            return False, "event loop closed"
        if not answered.wait(self.settings.liveness_timeout_s):
            return False, f"event loop did not answer within {self.settings.liveness_timeout_s}s"
        return True, "ok"

    def ready(self) -> tuple[bool, dict[str, bool]]:
        """Every check, evaluated in the event loop (they read state the loop owns)."""
        results: dict[str, bool] = {}

        async def evaluate() -> None:
            for name, check in self.checks.items():
                try:
                    results[name] = bool(check())
                except Exception:
                    log.exception("readiness check %s failed", name)
                    results[name] = False

        if self._loop is None or self._loop.is_closed():
            return False, {"event_loop": False}
        try:
            self._in_loop(evaluate)
        except (concurrent.futures.TimeoutError, RuntimeError):
            return False, {"event_loop": False}
        return bool(results) and all(results.values()), results

    def metrics(self) -> bytes:
        if self._refreshers and self._loop is not None and not self._loop.is_closed():
            try:
                self._in_loop(self._refresh)
            except (concurrent.futures.TimeoutError, RuntimeError):
                log.warning("event loop busy: serving the previous values of loop-side gauges")
        return generate_latest(self.registry)

    async def _refresh(self) -> None:
        for refresh in self._refreshers:
            await refresh()

    def _in_loop(self, make: Callable[[], Awaitable[None]]) -> None:
        """Run ``make()`` as a task in the event loop; wait for it at most the liveness timeout."""
        assert self._loop is not None
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def start() -> None:
            asyncio.ensure_future(make()).add_done_callback(finished)

        def finished(task: asyncio.Future[None]) -> None:
            if task.cancelled():
                done.set_exception(RuntimeError("cancelled"))
            elif task.exception() is not None:
                done.set_exception(task.exception())
            else:
                done.set_result(None)

        self._loop.call_soon_threadsafe(start)
        done.result(self.settings.liveness_timeout_s)

def _handler(ops: OpsServer) -> type[BaseHTTPRequestHandler]:
    settings = ops.settings

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == settings.metrics_path:
                self._send(200, ops.metrics(), CONTENT_TYPE_LATEST)
            elif path == settings.liveness_path:
                ok, detail = ops.live()
                self._json(ok, {"status": "ok" if ok else "fail", "detail": detail})
            elif path == settings.readiness_path:
                ok, checks = ops.ready()
                self._json(ok, {"status": "ready" if ok else "not ready", "checks": checks})
            else:
                self._send(404, b"not found\n", "text/plain")

        def _json(self, ok: bool, body: dict) -> None:
            body = {"component": ops.component, **body}
            self._send(200 if ok else 503, orjson.dumps(body) + b"\n", "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # probes every few seconds: not worth a line
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def http_get(port: int, path: str, host: str = "127.0.0.1", timeout_s: float = 5.0) -> tuple[int, bytes]:
    """GET an ops endpoint as a probe does: (status, body); status 0 when nothing listens yet."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""
