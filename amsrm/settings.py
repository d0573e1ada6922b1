"""Every setting of the stream worker, producers and tools: one typed dataclass.

Each field has a default, an environment variable (``AMSRM_`` + the field name in
upper case) and a one-line meaning in its ``doc`` metadata, from which the config
reference is generated.  Values come from, in increasing priority: the defaults,
a TOML file named by ``AMSRM_CONFIG`` (keys are field names), and the environment.
Only the settings differ between the embedded broker and a real Kafka cluster.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from amsrm.errors import ConfigError

ENV_PREFIX = "AMSRM_"
CONFIG_ENV = "AMSRM_CONFIG"  # path of an optional TOML file with the same keys as the dataclass
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def setting(default: Any, doc: str) -> Any:
    """A dataclass field with its one-line meaning attached."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class StreamSettings:
    # --- broker and topics
    broker_url: str = setting("kafka://127.0.0.1:9092",
                              "Kafka bootstrap servers as kafka://host:port, several separated by ';'")
    app_id: str = setting("amsrm-stream", "Faust app id: the consumer group and prefix of changelog topics")
    events_topic: str = setting("amsrm-events", "input topic of behaviour events (JSON, keyed by user id)")
    recommendations_topic: str = setting("amsrm-recommendations", "output topic of Top-K recommendations")
    samples_topic: str = setting("amsrm-samples", "output topic of labelled samples (window + next item)")
    dead_letters_topic: str = setting("amsrm-dead-letters", "raw bytes of rejected events, reason in headers")
    partitions: int = setting(4, "partitions of the events topic and of the window table's changelog")
    output_partitions: int = setting(4, "partitions of the recommendations, samples and dead-letter topics")
    replication_factor: int = setting(1, "replication factor of topics this project creates")
    # --- state
    store_url: str = setting("rocksdb://", "table store: rocksdb:// (rocksdict) or memory:// (tests only)")
    data_dir: str = setting("runs/stream-worker", "worker data directory (RocksDB files live under it)")
    table_standby_replicas: int = setting(1, "standby copies of each table partition on other workers")
    window_length: int = setting(0, "events kept per user in the window table; 0 = the model's max_len")
    # --- model and scoring
    model_path: str = setting("runs/stream-model", "checkpoint directory the worker scores with")
    top_k: int = setting(10, "items per recommendation")
    exclude_window: bool = setting(True, "never recommend an item that is in the user's scored window")
    topk_index: str = setting("exact", "Top-K over the catalogue: exact, or hnsw, an approximate index "
                              "(faiss, the [ann] extra) for catalogues of ~1M items; docs/BENCHMARKS.md")
    topk_index_probes: int = setting(128, "the hnsw index's search width (efSearch): recall against cost")
    device: str = setting("cpu", "torch device for scoring: cpu, cuda or cuda:N")
    torch_threads: int = setting(1, "torch CPU threads per worker; keep 1 when workers share cores")
    scoring_process: bool = setting(True, "score in a child process (true) or a thread of the worker "
                                    "(false), which shares the GIL with the event loop")
    batch_max: int = setting(256, "most events scored in one forward pass (micro-batch size)")
    batch_latency_ms: float = setting(10.0, "longest wait to fill a micro-batch before scoring what is there")
    pipeline_depth: int = setting(2, "micro-batches in flight: 2 scores one while reading the next")
    gc_tuning: bool = setting(True, "freeze the objects alive after start-up and collect young garbage "
                              "less often (streams.worker.heap): no full-GC pauses of ~100 ms in the loop")
    samples_source: str = setting(
        "events", "where the collector's labelled samples come from: events (it reads the events topic "
        "and labels each valid event itself; the worker publishes none) or worker (the worker publishes "
        "one per event with its window to samples_topic, which the collector reads)")
    agent: str = setting("recommend", "which agent the worker runs: recommend, or the module path of "
                         "another agent module (the benchmark's streams.local.passthrough)")
    # --- validation of incoming events
    max_event_bytes: int = setting(8192, "events larger than this are dead-lettered as oversized (checked "
                                   "first); must stay below producer_max_request_size")
    agent_crash_limit: int = setting(3, "agent crashes within agent_crash_window_s after which the worker "
                                     "fails liveness and exits (70) for its orchestrator to restart it")
    agent_crash_window_s: float = setting(60.0, "the window of agent_crash_limit, in seconds")
    poison_attempts: int = setting(3, "tries of an event whose handling raises before it is dead-lettered "
                                   "(processing_error) and the rest of its batch goes on")
    min_event_time_ms: int = setting(946_684_800_000, "earliest plausible event time (ms since epoch)")
    max_clock_skew_ms: int = setting(86_400_000, "how far in the future an event time may lie")
    # --- Faust / client tuning (docs/BROKER.md work-arounds are settings, not constants)
    producer_max_batch_size: int = setting(
        16384, "producer batch bytes; 1 works around the embedded broker's end-offset defect")
    producer_linger_ms: int = setting(0, "how long the producer waits to fill a batch")
    producer_max_request_size: int = setting(
        1_048_576, "largest message the producers send (Kafka's max.request.size; keep it at most the "
        "broker's message.max.bytes): a dead letter of a larger event carries a prefix of it")
    consumer_fetch_max_wait_ms: int = setting(
        500, "longest a consumer fetch waits for data (Kafka's default); the embedded broker gets 10, "
        "as it holds fetches")
    session_timeout_s: float = setting(
        45.0, "consumer group session timeout (Kafka's default): how long a dead worker keeps its "
        "partitions; the embedded broker gets 6 (its joins wait about half of it)")
    heartbeat_interval_s: float = setting(3.0, "consumer group heartbeat interval (Kafka's default; "
                                          "the embedded broker gets 1)")
    commit_interval_s: float = setting(1.0, "how often processed offsets are committed")
    processing_guarantee: str = setting(
        "at_least_once", "at_least_once (outputs may repeat after a crash; consumers drop repeats by "
        "event id) or exactly_once (Kafka only: each partition's outputs, window changes and offsets "
        "commit in one transaction; read outputs with isolation.level=read_committed)")
    eager_dispatch: bool = setting(True, "hand fetched messages to the agent without a task per message "
                                   "(streams.faust_ext); false = Faust's own hand-off")
    event_loop: str = setting("asyncio", "the worker's event loop: asyncio or uvloop (python -m streams "
                              "worker passes it to Faust's --loop; bench/stream_bench.py measures both)")
    log_level: str = setting("info", "log level of the workers the demo, benchmark and tests start")
    # --- operations: metrics and health endpoint, logs (docs/DEPLOY.md)
    ops_port: int = setting(9400, "port of the HTTP server for metrics and health probes of every "
                            "long-running process (worker, collector); 0 = no server")
    ops_host: str = setting("0.0.0.0", "address that server listens on")
    metrics_path: str = setting("/metrics", "path of the Prometheus metrics")
    liveness_path: str = setting("/livez", "liveness probe path: 200 while the process's event loop answers")
    readiness_path: str = setting("/readyz", "readiness probe path: 200 once the model is loaded, partitions "
                                  "are assigned and table recovery is done (collector: partitions assigned)")
    liveness_timeout_s: float = setting(5.0, "longest the event loop may take to answer a liveness check")
    log_format: str = setting("text", "log lines as text, or json (one object per line, for log shippers)")
    # --- retraining loop: collector, training store, registry, retrain gate (docs/RETRAINING.md)
    model_source: str = setting("path", "where workers get their model: path (AMSRM_MODEL_PATH, fixed) or "
                                "registry (its current version, hot-swapped on promotion)")
    registry_dir: str = setting("runs/registry", "model registry: versions, the current pointer, history")
    model_poll_s: float = setting(5.0, "how often a worker serving from the registry checks its pointer")
    store_dir: str = setting("runs/training-store", "training store: labelled samples, Parquet by event hour")
    collector_group: str = setting("amsrm-collector", "consumer group of `amsrm collect` (not the workers')")
    collector_flush_rows: int = setting(5000, "samples the collector buffers before it writes and commits")
    collector_flush_s: float = setting(10.0, "longest a sample waits in the collector before it is written")
    collector_dedupe_ids: int = setting(1_000_000, "event ids kept per partition to drop duplicate samples")
    retrain_window_h: float = setting(168.0, "hours of samples, up to the newest, that a retrain reads")
    retrain_budget_s: float = setting(600.0, "training time budget of one retrain (checked after each epoch)")
    retrain_max_epochs: int = setting(20, "most epochs of one retrain")
    retrain_holdout: float = setting(0.1, "newest fraction of events held out to compare the models")
    gate_metric: str = setting("ndcg@10", "metric the promotion gate compares on the held-out slice")
    gate_margin: float = setting(0.0, "promote when candidate >= current - margin (absolute)")
    gate_min_cases: int = setting(50, "fewest held-out cases for a promotion (unless no version is current)")

    def __post_init__(self) -> None:
        # a misspelt source would leave the collector reading a topic nobody writes
        if self.samples_source not in SAMPLE_SOURCES:
            raise ConfigError(f"{env_name('samples_source')} must be one of {SAMPLE_SOURCES}, "
                              f"got {self.samples_source!r}")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> StreamSettings:
        """Defaults ← TOML file (``AMSRM_CONFIG``) ← environment ← keyword overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if environ.get(CONFIG_ENV):
            values.update(cls._from_file(Path(environ[CONFIG_ENV])))
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None:
                values[f.name] = _parse(f.name, hints[f.name], raw)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def _from_file(cls, path: Path) -> dict[str, Any]:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
        hints = get_type_hints(cls)
        return {k: _parse(k, hints[k], v) if isinstance(v, str) else v for k, v in data.items()}

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a subprocess (workers, tools)."""
        return {env_name(f.name): _format(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> StreamSettings:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived
    @property
    def bootstrap_servers(self) -> str:
        """``host:port,host:port`` for plain aiokafka clients (Faust takes ``broker_url``)."""
        hosts = [u.strip().removeprefix("kafka://") for u in self.broker_url.split(";") if u.strip()]
        return ",".join(hosts)

    @property
    def isolation_level(self) -> str:
        """How readers of this app's topics read: under exactly-once only committed transactions."""
        return "read_committed" if self.processing_guarantee == "exactly_once" else "read_uncommitted"

    @property
    def worker_publishes_samples(self) -> bool:
        """Whether the worker publishes labelled samples (``samples_source``)."""
        return self.samples_source == "worker"

    @property
    def collector_topic(self) -> str:
        """The topic ``amsrm collect`` reads its samples from."""
        return self.samples_topic if self.worker_publishes_samples else self.events_topic

    @property
    def changelog_topic(self) -> str:
        """Name Faust gives the window table's changelog (``<app id>-<table>-changelog``)."""
        return f"{self.app_id}-windows-changelog"


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


#: What the embedded Tansu broker needs (docs/BROKER.md), applied by streams.local.broker only when
#: the engine is Tansu; on Apache Kafka the worker keeps the defaults above.
TANSU_WORKAROUNDS: dict[str, Any] = {"consumer_fetch_max_wait_ms": 10, "session_timeout_s": 6.0,
                                     "heartbeat_interval_s": 1.0}
#: Added where a worker restarts and rebuilds its windows on Tansu (its end offsets are wrong for
#: batched writes); a large cost in throughput.
TANSU_RECOVERY_WORKAROUND: dict[str, Any] = {"producer_max_batch_size": 1}
PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
SAMPLE_SOURCES = ("events", "worker")


def describe() -> list[tuple[str, str, str, str]]:
    """(env var, type, default, meaning) per setting: the input of the config reference."""
    hints = get_type_hints(StreamSettings)
    return [(env_name(f.name), hints[f.name].__name__, _format(f.default), f.metadata["doc"])
            for f in dataclasses.fields(StreamSettings)]


def _parse(name: str, kind: type, raw: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered not in _TRUE + _FALSE:
            raise ConfigError(f"{env_name(name)} takes true or false, got {raw!r}")
        return lowered in _TRUE
    try:
        return kind(raw)
    except ValueError as e:
        raise ConfigError(f"{env_name(name)} takes a {kind.__name__}, got {raw!r}") from e


def _format(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
