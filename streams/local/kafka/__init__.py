"""A real Apache Kafka broker (KRaft, one node that is both broker and controller) as a context manager.

For local runs and tests that need Kafka's own behaviour (persistence across restarts, transactions,
idempotent producers, consumer groups), where an in-memory broker falls short.  Only the standard library
is used besides the project's error base; it needs Java 17+ and, once per Kafka version, Maven:

    with KafkaBroker() as broker:               # or: async with KafkaBroker() as broker
        settings = settings.replace(broker_url=broker.url)

The jars are Maven Central's (``pom.xml`` beside this file pins them), copied once by Maven into a cache
outside the repository (``$AMSRM_KAFKA_CACHE``, default ``~/.cache/amsrm/kafka``), and reused from there
by every later start without Maven.  ``amsrm broker --engine kafka`` runs one broker until Ctrl-C
(``python -m streams.local.kafka`` runs one without the topics).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self

from amsrm.errors import AmsrmError
from streams.local.service import LocalService

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"  # pins kafka.version and the Log4j 2 binding
LOG4J2_CONFIG = HERE / "log4j2.yaml"
CACHE_ENV = "AMSRM_KAFKA_CACHE"
DEFAULT_CACHE = Path("~/.cache/amsrm/kafka")
MIN_JAVA = 17  # Kafka 4.x brokers run on Java 17+
NODE_ID = 1

#: Every broker setting that is the same for each run, in one place: Kafka 4.x's shipped
#: config/server.properties for a combined node, with the internal topics at replication factor 1 /
#: min ISR 1 (one broker: __consumer_offsets, __transaction_state and __share_group_state could not be
#: created otherwise, and transactions would never complete) and no initial rebalance delay.  What is
#: not here is Kafka's default (num.partitions=1 and auto topic creation included).  The listeners, the
#: quorum's address and log.dirs depend on the run: server_properties() adds them.  A deployment's
#: settings compare against this dict key by key (compose's KAFKA_FOO_BAR is foo.bar here).
SERVER_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": str(NODE_ID),
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "num.network.threads": "3",
    "num.io.threads": "8",
    "socket.send.buffer.bytes": "102400",
    "socket.receive.buffer.bytes": "102400",
    "socket.request.max.bytes": "104857600",
    "num.partitions": "1",
    "num.recovery.threads.per.data.dir": "1",
    "offsets.topic.replication.factor": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "log.retention.hours": "168",
    "log.segment.bytes": "1073741824",
    "log.retention.check.interval.ms": "300000",
    "group.initial.rebalance.delay.ms": "0",
}

#: kafka-server-start.sh's GC settings with a smaller heap (its default is 1 GiB fixed).  Start-up is
#: mostly class loading; an application class-data-sharing archive (see _class_archive) cuts it by ~40%
#: and changes nothing once the broker runs.  C1-only JIT (-XX:TieredStopAtLevel=1) cut less (~20%) and
#: would cap the throughput of a broker meant to behave like a real one, so only the one-shot format
#: tool uses it.
JVM_OPTIONS: tuple[str, ...] = (
    "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
TOOL_JVM_OPTIONS: tuple[str, ...] = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                                     "-Djava.awt.headless=true")
CDS_ENV = "AMSRM_KAFKA_CDS"  # "0": no class-data-sharing archive


class KafkaUnavailable(AmsrmError, RuntimeError):
    """Java or Maven is missing, or Kafka's jars could not be resolved: the broker cannot run here."""


class KafkaStartError(AmsrmError, RuntimeError):
    """The broker was started but did not become ready (the message carries the end of its log)."""


# --- tools and jars ------------------------------------------------------------------------------------

def java_executable() -> str:
    """The ``java`` that Kafka's scripts would use ($JAVA_HOME/bin/java, else PATH), checked to be 17+."""
    home = os.environ.get("JAVA_HOME")
    install = f"install OpenJDK {MIN_JAVA} (apt install openjdk-{MIN_JAVA}-jre-headless)"
    if home:
        java = str(Path(home) / "bin" / "java")
        if not os.access(java, os.X_OK):
            raise KafkaUnavailable(f"JAVA_HOME={home} has no bin/java: point it at Java {MIN_JAVA}+ "
                                   f"or {install}")
    else:
        found = shutil.which("java")
        if found is None:
            raise KafkaUnavailable(f"Java {MIN_JAVA}+ not found on PATH: {install} or set JAVA_HOME")
        java = found
    major = _java_major(java)
    if major < MIN_JAVA:
        raise KafkaUnavailable(f"{java} is Java {major}, Kafka needs Java {MIN_JAVA}+: {install} "
                               "or set JAVA_HOME")
    return java


_java_versions: dict[str, str] = {}  # java -version's output, by executable


def _java_version_text(java: str) -> str:
    if java not in _java_versions:
        try:
            out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            raise KafkaUnavailable(f"{java} -version failed ({e}): reinstall Java {MIN_JAVA}+") from e
        _java_versions[java] = out
    return _java_versions[java]


def _java_major(java: str) -> int:
    out = _java_version_text(java)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match is None:
        raise KafkaUnavailable(f"cannot tell the version of {java} from {out.strip()[:100]!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def kafka_version(pom: Path = POM) -> str:
    """The ``kafka.version`` property of ``pom``: the one place the broker's version is pinned."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise ValueError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def default_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def kafka_classpath(pom: Path, cache: Path | None = None) -> Path:
    """The directory of Kafka's runtime jars for ``pom``: ``<cache>/<kafka version>/lib``.

    Maven copies them there only when no complete copy is present.  A marker holding the POM's hash is
    written after a copy succeeds, so a copy that was cut short (or made for another POM) is done again;
    a file lock keeps concurrent starts (parallel test workers) from copying over each other.
    """
    pom = Path(pom).resolve()
    version = kafka_version(pom)
    root = Path(cache).expanduser() if cache is not None else default_cache()
    root = root / version
    lib, marker = root / "lib", root / "lib.complete"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if _marker_matches(marker, digest):
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if _marker_matches(marker, digest):  # another process finished it while we waited
            return lib
        marker.unlink(missing_ok=True)
        shutil.rmtree(lib, ignore_errors=True)
        for archive in root.glob("broker-*.jsa"):  # made from the old jars: the JVM would ignore them
            archive.unlink()
        _maven_copy(pom, lib, version, root / "mvn.log")
        if not (lib / f"kafka_2.13-{version}.jar").is_file():
            raise KafkaUnavailable(f"Maven ran but {lib} has no kafka_2.13-{version}.jar: "
                                   f"see {root / 'mvn.log'}")
        marker.write_text(digest + "\n")
    log.info("Kafka %s jars copied into %s", version, lib)
    return lib


def _marker_matches(marker: Path, digest: str) -> bool:
    try:
        return marker.read_text().strip() == digest
    except OSError:
        return False


def _maven_copy(pom: Path, lib: Path, version: str, mvn_log: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"Maven not found on PATH, needed once to fetch Kafka {version}'s jars into "
                               f"{lib}: install it (apt install maven)")
    command = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={lib}", "-DincludeScope=runtime"]
    log.info("resolving Kafka %s with Maven (once): %s", version, " ".join(command))
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=900)
    except subprocess.TimeoutExpired as e:
        raise KafkaUnavailable(f"Maven took over {e.timeout:.0f} s to fetch Kafka {version}'s jars: "
                               "check access to Maven Central (or the mirror in ~/.m2/settings.xml)") from e
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    mvn_log.write_text(output)
    if result.returncode != 0:
        errors = [line.removeprefix("[ERROR]").strip() for line in output.splitlines()
                  if line.startswith("[ERROR]") and line.removeprefix("[ERROR]").strip()]
        reason = (errors or output.strip().splitlines() or [f"exit code {result.returncode}"])[0][:300]
        raise KafkaUnavailable(f"Maven could not fetch Kafka {version}'s jars ({reason}): it needs Maven "
                               f"Central or a mirror in ~/.m2/settings.xml; full output in {mvn_log}")


# --- class-data-sharing archive ------------------------------------------------------------------------

def _class_archive(java: str, lib: Path) -> Path | None:
    """Where this JVM's class-data-sharing archive of the broker's classes is (or will be) kept.

    Java 17 writes one at exit with -XX:ArchiveClassesAtExit and maps it at start with
    -XX:SharedArchiveFile, skipping the parsing and verification of the ~5,000 classes a broker loads:
    start-up went from 4.6 s to 2.8 s here.  The first clean stop writes it (about 50 MB, a few seconds
    once), named for the JVM build and the jars' directory and POM: an archive only fits the JVM and
    the class path that wrote it (a misfit is ignored with a warning in the log, never used).
    """
    if os.environ.get(CDS_ENV, "1") == "0":
        return None
    marker = lib.with_name("lib.complete")
    jars = marker.read_text() if marker.exists() else ""
    key = "\0".join((os.path.realpath(java), _java_version_text(java), str(lib.resolve()), jars))
    return lib.with_name(f"broker-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa")


def _cds_options(archive: Path | None) -> tuple[list[str], Path | None]:
    """JVM options that use ``archive``, or that write it at exit (to a temporary name, also returned)."""
    if archive is None:
        return [], None
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"], None
    for stale in archive.parent.glob(f"{archive.name}.*.tmp"):  # left by a broker killed while writing
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)
    pending = archive.with_name(f"{archive.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    # -Xlog:cds=off: writing it warns about each class it leaves out (hundreds of lines in the log)
    return [f"-XX:ArchiveClassesAtExit={pending}", "-Xlog:cds=off"], pending


def _keep_archive(java: str, classpath: str, pending: Path, archive: Path) -> None:
    """Move the archive a cleanly stopped broker wrote into place, once a JVM has mapped it.

    Java does not check an archive's length: one that was cut short makes the JVM abort at start.
    """
    try:
        if not pending.is_file():
            return
        check = subprocess.run([java, f"-XX:SharedArchiveFile={pending}", "-Xshare:on", "-cp", classpath,
                                "-version"], capture_output=True, text=True, timeout=60)
        if check.returncode == 0:
            os.replace(pending, archive)
            log.info("class-data-sharing archive %s written: later starts are faster", archive)
        else:
            log.warning("class-data-sharing archive %s is unusable, dropped: %s", pending,
                        check.stderr.strip().splitlines()[-1:] or check.returncode)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("class-data-sharing archive %s not kept: %s", pending, e)
    finally:
        pending.unlink(missing_ok=True)


# --- properties, ports, readiness ----------------------------------------------------------------------

def server_properties(host: str, port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    """SERVER_PROPERTIES plus this run's listeners, controller quorum address and data directory."""
    client, controller = _address(host, port), _address(host, controller_port)
    return {**SERVER_PROPERTIES,
            "listeners": f"PLAINTEXT://{client},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{client}",
            "controller.quorum.bootstrap.servers": controller,
            "log.dirs": str(data_dir)}


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_properties(path: Path, properties: dict[str, str]) -> None:
    """``path`` in java.util.Properties syntax (read as ISO-8859-1, so anything else is \\u-escaped)."""
    def escape(text: str) -> str:
        text = text.replace("\\", "\\\\")
        return "".join(c if 32 <= ord(c) < 127 else f"\\u{ord(c):04x}" for c in text)

    lines = ["# generated by streams.local.kafka on each start; edit SERVER_PROPERTIES instead"]
    lines += [f"{escape(key)}={escape(value)}" for key, value in properties.items()]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_API_VERSIONS, _METADATA, _METADATA_VERSION = 18, 3, 4


def kafka_ready(host: str, port: int, node_id: int = NODE_ID, timeout_s: float = 2.0) -> bool:
    """True when ``host:port`` speaks Kafka and its metadata lists broker ``node_id`` at that address.

    ApiVersions v0, then Metadata v4 for no topics.  Kafka 4.4 opens its client port only once the
    broker is unfenced (the same moment it logs "Kafka Server started"), so an open port nearly means
    ready; these two requests make sure that what listens there speaks Kafka (not another process that
    took the port) and already serves metadata listing itself as node ``node_id`` at ``host:port``,
    which clients need before anything else.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            body = _call(sock, _API_VERSIONS, 0, 1)
            error, count = struct.unpack_from(">hi", body)
            if error:
                return False
            entries = struct.iter_unpack(">hhh", body[6:6 + 6 * count])
            versions = {key: (low, high) for key, low, high in entries}
            low, high = versions.get(_METADATA, (0, -1))
            if not low <= _METADATA_VERSION <= high:  # a Kafka without Metadata v4: ApiVersions must do
                return True
            body = _call(sock, _METADATA, _METADATA_VERSION, 2, struct.pack(">ib", 0, 0))
            offset = 4  # throttle_time_ms
            (brokers,) = struct.unpack_from(">i", body, offset)
            offset += 4
            for _ in range(brokers):
                node, host_len = struct.unpack_from(">ih", body, offset)
                offset += 6
                broker_host = body[offset:offset + host_len].decode()
                offset += host_len
                broker_port, rack_len = struct.unpack_from(">ih", body, offset)
                offset += 6 + max(rack_len, 0)
                if (node, broker_host, broker_port) == (node_id, host, port):
                    return True
            return False
    except (OSError, struct.error, UnicodeDecodeError, ValueError):
        return False


def _call(sock: socket.socket, api_key: int, api_version: int, correlation_id: int,
          body: bytes = b"") -> bytes:
    """One request with header v1 (non-flexible versions only); the response's body after its header."""
    client_id = b"amsrm-readiness"
    request = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", _receive(sock, 4))
    response = _receive(sock, size)
    if struct.unpack_from(">i", response)[0] != correlation_id:
        raise ValueError("correlation id mismatch")
    return response[4:]


def _receive(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return bytes(data)


def _cluster_id() -> str:
    """A random cluster id in Kafka's format (URL-safe base64 UUID), never starting with '-' (a CLI flag)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    errors = [line for line in text if " ERROR " in line or "Exception" in line or line.startswith("Error")]
    return "\n".join((errors or text)[-lines:])


def _reap(process: subprocess.Popen[bytes], owned_dir: Path | None, pending_archive: Path | None) -> None:
    """For a broker nobody stopped (collected, or alive at interpreter exit): no JVM outlives its owner."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if pending_archive is not None:
        pending_archive.unlink(missing_ok=True)
    if owned_dir is not None:
        shutil.rmtree(owned_dir, ignore_errors=True)


# --- the broker ----------------------------------------------------------------------------------------

class KafkaBroker(LocalService):
    """One Kafka JVM (KRaft, broker and controller) listening on ``host:port`` (a free port unless given).

    ``data_dir`` keeps topics and committed offsets across restarts and is never deleted; without it, a
    fresh temporary directory is used and removed by stop().  Each start writes the broker's properties
    (``<data dir>.properties``) and, unless ``log_path`` is given, its log (``<data dir>.log``) beside
    the data dir; the data dir is formatted only when it has no meta.properties yet.  ``overrides`` are
    broker properties on top of SERVER_PROPERTIES, for a test that needs one changed (say
    ``auto.create.topics.enable=false``, as in deploy/compose.yaml).  A broker still running when its
    object is garbage-collected or the interpreter exits is stopped then, so keep a reference.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None,
                 start_timeout_s: float = 60.0, data_dir: Path | None = None, *,
                 overrides: Mapping[str, str] | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.overrides = dict(overrides or {})
        self.controller_port: int | None = None  # chosen on the first start, kept for restarts
        self.log_path, self.start_timeout_s = log_path, start_timeout_s
        self._given_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._owned_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._reaper: weakref.finalize[Any, Any] | None = None
        self._java, self._classpath = "java", ""
        self._archive: Path | None = None  # the class-data-sharing archive in use or being written
        self._pending_archive: Path | None = None  # where this run writes it at exit

    @property
    def bootstrap(self) -> str:
        return _address(self.host, self.port)

    @property
    def version(self) -> str:
        """The Kafka version this broker runs (pom.xml's kafka.version)."""
        return kafka_version(POM)

    @property
    def data_dir(self) -> Path | None:
        """The directory holding topics and offsets: the given one, or the temporary one once started."""
        if self._given_dir is not None:
            return self._given_dir
        return self._owned_dir / "data" if self._owned_dir is not None else None

    @property
    def log_file(self) -> Path | None:
        """The broker's log: ``log_path`` if given, else ``<data dir>.log`` (None before a temp dir)."""
        if self.log_path is not None:
            return Path(self.log_path)
        data_dir = self.data_dir
        return data_dir.with_name(data_dir.name + ".log") if data_dir is not None else None

    def start(self) -> Self:
        """Start the JVM; return once the broker answers Kafka requests (KafkaStartError if it does not)."""
        if self.running:
            return self
        self.kill()  # forgets a JVM that exited on its own (its log handle, a half-written archive)
        java = java_executable()
        lib = kafka_classpath(POM)
        classpath = str(lib / "*")
        self._java, self._classpath, self._archive = java, classpath, _class_archive(java, lib)
        if self._given_dir is None and self._owned_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="amsrm-kafka-"))
        data_dir = self.data_dir
        assert data_dir is not None
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file
        assert log_path is not None
        properties = data_dir.with_name(data_dir.name + ".properties")
        while self.controller_port is None or self.controller_port == self.port:
            self.controller_port = free_port(self.host)
        settings = server_properties(self.host, self.port, self.controller_port, data_dir)
        write_properties(properties, {**settings, **self.overrides})
        logging_options = [f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}", f"-Dkafka.log.file={log_path}"]
        self._log_file = open(log_path, "ab")  # noqa: SIM115 (closed in stop / kill)
        started = time.monotonic()
        formatted = not (data_dir / "meta.properties").exists()
        if formatted:
            self._format(java, classpath, logging_options, properties, data_dir)
        cds, self._pending_archive = _cds_options(self._archive)
        command = [java, *JVM_OPTIONS, *cds, *logging_options, "-cp", classpath, "kafka.Kafka",
                   str(properties)]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                         stderr=subprocess.STDOUT, cwd=data_dir.parent,
                                         start_new_session=True)
        self._reaper = weakref.finalize(self, _reap, self._process, self._owned_dir, self._pending_archive)
        deadline = started + self.start_timeout_s
        while not kafka_ready(self.host, self.port):
            code = self._process.poll()
            if code is not None or time.monotonic() > deadline:
                why = (f"exited with code {code}" if code is not None
                       else f"was not ready within {self.start_timeout_s:.0f} s")
                if code is not None and code < 0 and self._archive is not None and not self._pending_archive:
                    self._archive.unlink(missing_ok=True)  # the JVM crashed: a bad archive is one suspect
                    why += " (a crash: its class-data-sharing archive is removed, the next start makes one)"
                tail, where = _tail(log_path), self._log_name(log_path)
                self.stop()
                raise KafkaStartError(f"Kafka {self.version} on {self.bootstrap} {why}; "
                                      f"{where} ends:\n{tail}")
            time.sleep(0.1)
        log.info("Kafka %s ready on %s in %.1f s%s (pid %d, data %s)", self.version, self.bootstrap,
                 time.monotonic() - started, ", formatting included" if formatted else "", self._process.pid,
                 data_dir)
        return self

    def _format(self, java: str, classpath: str, logging_options: list[str], properties: Path,
                data_dir: Path) -> None:
        """kafka-storage.sh format --standalone: a new cluster whose only voter is this node."""
        cds = [f"-XX:SharedArchiveFile={self._archive}"] if self._archive and self._archive.is_file() else []
        command = [java, *TOOL_JVM_OPTIONS, *cds, *logging_options, "-cp", classpath,
                   "kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id(),
                   "-c", str(properties)]
        assert self._log_file is not None
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                    stderr=subprocess.STDOUT, cwd=data_dir.parent,
                                    timeout=self.start_timeout_s)
        except subprocess.TimeoutExpired as e:
            self.stop()
            raise KafkaStartError(f"formatting {data_dir} took over {e.timeout:.0f} s") from e
        if result.returncode != 0:
            log_path = Path(self._log_file.name)
            tail, where = _tail(log_path), self._log_name(log_path)
            self.stop()
            raise KafkaStartError(f"formatting {data_dir} failed (exit code {result.returncode}); "
                                  f"{where} ends:\n{tail}")

    def _log_name(self, log_path: Path) -> str:
        if self._owned_dir is not None and log_path.is_relative_to(self._owned_dir):
            return "its log (removed with its temporary dir)"
        return f"its log {log_path}"

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (a controlled shutdown: logs flushed, clean-shutdown marker written), SIGKILL after
        ``timeout_s``; then the temporary data dir, if this broker made one, is removed."""
        process, self._process = self._process, None
        pending, self._pending_archive = self._pending_archive, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            wait_s = timeout_s + (60 if pending else 0)  # writing the class archive at exit takes a while
            try:
                process.wait(wait_s)
            except subprocess.TimeoutExpired:
                log.warning("Kafka on %s ignored SIGTERM for %.0f s: killing it", self.bootstrap, wait_s)
                process.kill()
                process.wait()
            else:
                if pending is not None and self._archive is not None:
                    _keep_archive(self._java, self._classpath, pending, self._archive)
            log.info("Kafka on %s stopped", self.bootstrap)
        if pending is not None:
            pending.unlink(missing_ok=True)
        self._release()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no controlled shutdown.  The data dir stays, even a temporary one,
        so that start() recovers from it like a restarted broker (stop() still removes a temporary one)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if self._pending_archive is not None:
            self._pending_archive.unlink(missing_ok=True)
            self._pending_archive = None
        self._release()

    def _release(self) -> None:
        if self._reaper is not None:
            self._reaper.detach()
            self._reaper = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None



def main(argv: list[str] | None = None) -> int:
    """Run one broker in the foreground until Ctrl-C (or SIGTERM)."""
    parser = argparse.ArgumentParser(description="Run a single-node Kafka broker (KRaft) until Ctrl-C.")
    parser.add_argument("--port", type=int, help="client port (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, help="keep topics and offsets here (default: a temp dir)")
    parser.add_argument("--log", type=Path, help="broker log file (default: beside the data dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop() below; SIGINT even where it was ignored
        signal.signal(signum, signal.default_int_handler)
    try:
        with KafkaBroker(port=args.port, host=args.host, log_path=args.log, data_dir=args.data_dir) as broker:
            print(f"Kafka {broker.version} on {broker.bootstrap} (pid {broker.pid}, log {broker.log_file}); "
                  "Ctrl-C stops it", flush=True)
            while broker.running:
                time.sleep(0.5)
            print("Kafka exited on its own", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except (KafkaUnavailable, KafkaStartError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
