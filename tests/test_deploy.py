"""deploy/ is checked against the code, since no Docker or Kubernetes runs here.

Every compose service and Kubernetes manifest is parsed (pyyaml): every AMSRM_* variable
must be a StreamSettings field, every command a real ``amsrm`` subcommand (parsed by the
real argparse parser), every probe and health check must hit the port and path the
settings give the ops server, and the shared registry volume must be where the settings
put the registry.  The Dockerfile is read instruction by instruction.  docs/CONFIG.md
must equal ``amsrm config-reference``.  The compose broker must run the Kafka version and the
broker settings of the engine the tests run (streams/local/kafka: pom.xml, SERVER_PROPERTIES).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import pytest
import yaml

from amsrm.cli import build_parser
from amsrm.config_reference import reference
from amsrm.settings import StreamSettings, describe
from streams.local.kafka import POM, SERVER_PROPERTIES

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SETTING_VARS = {env for env, *_ in describe()}
OPS = StreamSettings.load({})


def is_amsrm_command(argv: list[str]) -> bool:
    """True when ``amsrm <argv>`` parses with the real parser (``--help`` counts)."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        return e.code == 0 and argv == ["--help"]
    return True


def check_env(names) -> None:
    unknown = {n for n in names if n.startswith("AMSRM_")} - SETTING_VARS
    assert not unknown, f"not settings (docs/CONFIG.md): {sorted(unknown)}"


def settings_from(env: dict[str, str]) -> StreamSettings:
    """What a container runs with: the image's AMSRM_* ENV, overridden by ``env``."""
    merged = {**image_env(), **{k: str(v) for k, v in env.items()}}
    return StreamSettings.load({k: v for k, v in merged.items() if k.startswith("AMSRM_")})


def under(path: str, mount: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(mount))


def test_parser_accepts_the_deploy_commands_and_rejects_others():
    assert is_amsrm_command(["worker"]) and is_amsrm_command(["collect"]) and is_amsrm_command(["topics"])
    assert is_amsrm_command(["retrain", "--every", "1h"]) and is_amsrm_command(["--help"])
    assert not is_amsrm_command(["wrker"]) and not is_amsrm_command(["retrain", "--evry", "1h"])


# ---------------------------------------------------------------------------------- config reference
def test_config_reference_is_current():
    assert (REPO / "docs" / "CONFIG.md").read_text() == reference(), \
        "docs/CONFIG.md is stale: run `amsrm config-reference > docs/CONFIG.md`"


def test_config_reference_names_every_setting():
    text = reference()
    for env, kind, default, doc in describe():
        row = f"| `{env}` | `{env.removeprefix('AMSRM_').lower()}` | {kind} | `{default}` |"
        assert row in text and doc.replace("|", r"\|") in text


# ---------------------------------------------------------------------------------- Dockerfile
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def image_env() -> dict[str, str]:
    """The ENV of the image's last stage."""
    steps = dockerfile()
    last = max(i for i, (kind, _) in enumerate(steps) if kind == "FROM")
    return dict(w.split("=", 1) for kind, rest in steps[last:] if kind == "ENV" for w in shlex.split(rest))


def test_dockerfile_cpu_image():
    steps = dockerfile()
    args = dict(rest.split("=", 1) for kind, rest in steps if kind == "ARG" and "=" in rest)
    bases = [rest.split()[0].replace("${PYTHON_VERSION}", args["PYTHON_VERSION"]) for kind, rest in steps
             if kind == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.1[1-9]-slim", b) for b in bases)
    runs = [rest for kind, rest in steps if kind == "RUN"]
    torch = [r for r in runs if "torch==" in r]
    assert len(torch) == 1 and "--index-url https://download.pytorch.org/whl/cpu" in torch[0]
    assert f"torch=={args['TORCH_VERSION']}" in (REPO / "Makefile").read_text()  # same torch as CI
    assert any(re.search(r"pip install \.(\s|$)", r) for r in runs)
    assert runs.index(torch[0]) < next(i for i, r in enumerate(runs) if re.search(r"pip install \.", r))
    for kind, rest in steps:
        if kind == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (REPO / source).exists(), source
    user = [rest for kind, rest in steps if kind == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    entrypoint = json.loads(next(rest for kind, rest in steps if kind == "ENTRYPOINT"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["amsrm"] and "amsrm" in scripts
    assert is_amsrm_command(json.loads(next(rest for kind, rest in steps if kind == "CMD")))
    check_env(image_env())
    assert settings_from({}).data_dir.startswith("/var/lib/amsrm/")  # the non-root user owns /var/lib/amsrm
    assert [rest for kind, rest in steps if kind == "EXPOSE"] == [str(OPS.ops_port)]


# ---------------------------------------------------------------------------------- compose
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def amsrm_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if "amsrm" in s.get("image", "")}


def health_urls(service: dict) -> list[str]:
    return re.findall(r"http://[^'\" ]+", " ".join(service.get("healthcheck", {}).get("test", [])))


def test_compose_amsrm_services(compose):
    services = amsrm_services(compose)
    assert {"topics", "worker", "collector", "retrain"} <= set(services)
    for name, service in services.items():
        env = service["environment"]
        check_env(env)
        assert all(isinstance(v, str) for v in env.values()), f"{name}: quote env values"
        assert is_amsrm_command(service["command"]), f"{name}: {service['command']}"
        settings = settings_from(env)
        mounts = dict(v.split(":", 1)[::-1] for v in service["volumes"] if ":" in v)
        assert any(under(settings.registry_dir, m) and vol == "amsrm-data" for m, vol in mounts.items()), name
        for url in health_urls(service):
            port, path = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", url).groups()
            assert int(port) == settings.ops_port
            assert path in (settings.readiness_path, settings.liveness_path)
            assert str(settings.ops_port) in service["expose"]
    assert services["topics"]["command"] == ["topics"] and services["topics"]["restart"] == "no"
    assert {"AMSRM_PARTITIONS", "AMSRM_OUTPUT_PARTITIONS"} <= set(services["topics"]["environment"])
    worker = services["worker"]
    assert worker["command"] == ["worker"] and worker["deploy"]["replicas"] >= 2 and health_urls(worker)
    data_dir = settings_from(worker["environment"]).data_dir
    assert data_dir in worker["volumes"]  # anonymous volume per replica: RocksDB is never shared
    assert services["collector"]["command"] == ["collect"] and health_urls(services["collector"])
    assert "--every" in services["retrain"]["command"]
    for name in ("worker", "collector", "retrain"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "amsrm-data" in compose["volumes"]


def test_compose_kafka_kraft_listeners(compose):
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:") and env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    listeners = dict(reversed(item.split("://")) for item in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    advertised = {item.split("://")[0]: item.split("://")[1]
                  for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    names = set(listeners.values())
    assert set(protocols) == names and env["KAFKA_CONTROLLER_LISTENER_NAMES"] in names
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised  # controllers are not advertised
    for name, address in advertised.items():
        assert f":{address.rsplit(':', 1)[1]}" in {port for port, n in listeners.items() if n == name}
    node, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    controller_port = next(p for p, n in listeners.items() if n == env["KAFKA_CONTROLLER_LISTENER_NAMES"])
    assert node == env["KAFKA_NODE_ID"] and voter == f"kafka{controller_port}"
    for service in amsrm_services(compose).values():  # clients use the in-network listener
        assert settings_from(service["environment"]).bootstrap_servers == advertised[
            env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics come from `amsrm topics`
    assert any(p.split(":")[-1] == advertised["EXTERNAL"].rsplit(":", 1)[1] for p in kafka["ports"])


# ---------------------------------------------------------------------------------- compose = tested Kafka
#: SERVER_PROPERTIES entries a deployment sets for its own node: its id, and its listeners' protocols
#: (compose adds EXTERNAL; the engine's entries must still be in it, checked below)
PER_NODE = {"node.id", "listener.security.protocol.map"}
#: compose's own properties besides SERVER_PROPERTIES: where this node listens, is reached, keeps its
#: quorum and its data (the engine sets these per run: streams.local.kafka.server_properties)
COMPOSE_PER_NODE = {"node.id", "controller.quorum.voters", "listeners", "advertised.listeners",
                    "listener.security.protocol.map", "log.dirs"}
#: compose's settings that differ from the tested engine on purpose (the engine keeps Kafka's default)
COMPOSE_ONLY = {"auto.create.topics.enable": "false"}  # `amsrm topics` creates every topic
#: KAFKA_* variables the apache/kafka image passes to the JVM instead of turning into properties
IMAGE_JVM_VARS = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS", "KAFKA_LOG4J_OPTS",
                  "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS"}


def kafka_env(prop: str) -> str:
    """apache/kafka's variable for a property: KAFKA_ + upper case, '.' → '_', '_' → '__', '-' → '___'."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def pom_kafka_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    assert node is not None and node.text and node.text.strip(), f"{POM}: no <kafka.version>"
    return node.text.strip()


def test_kafka_env_names():
    assert kafka_env("offsets.topic.replication.factor") == "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"
    assert kafka_env("a_b-c.d") == "KAFKA_A__B___C_D"


def test_compose_kafka_is_the_tested_version(compose):
    version = pom_kafka_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"
    # the docs name the same version
    assert f"apache/kafka:{version}" in (REPO / "docs" / "DEPLOY.md").read_text()


def test_compose_broker_settings_are_the_tested_engines(compose):
    env = {k: str(v) for k, v in compose["services"]["kafka"]["environment"].items()}
    assert PER_NODE.issubset(SERVER_PROPERTIES)  # the exclusions are real keys
    for prop, value in SERVER_PROPERTIES.items():
        if prop in PER_NODE:
            continue
        name = kafka_env(prop)
        assert name in env, f"compose's kafka lacks {name}={value} (SERVER_PROPERTIES[{prop!r}])"
        assert env[name] == value, f"compose {name}={env[name]}, the tested engine's {prop}={value}"
    protocols = env[kafka_env("listener.security.protocol.map")].split(",")
    assert set(SERVER_PROPERTIES["listener.security.protocol.map"].split(",")) <= set(protocols)
    # every other broker setting is compose's own, for a reason named above
    allowed = {kafka_env(p) for p in {*SERVER_PROPERTIES, *COMPOSE_PER_NODE, *COMPOSE_ONLY}}
    extra = {n for n in env if n.startswith("KAFKA_")} - allowed - IMAGE_JVM_VARS
    assert not extra, f"compose sets {sorted(extra)}: add them to SERVER_PROPERTIES (tested) or COMPOSE_ONLY"
    for prop, value in COMPOSE_ONLY.items():
        assert env[kafka_env(prop)] == value and prop not in SERVER_PROPERTIES


def test_topics_come_from_amsrm_topics_everywhere(compose, manifests):
    """No Kafka in k8s/ (a cluster's own); topics are created by `amsrm topics` with the code's specs
    (streams.clients.admin.topic_specs), from the same image as the workers, never auto-created."""
    version = pom_kafka_version()
    for (kind, name), doc in manifests.items():
        for container in (pod_spec(doc) or {}).get("containers", []):
            image = container["image"]
            if "kafka" in image.split("/")[-1]:
                assert image.endswith(f":{version}"), f"{kind}/{name}: {image}, tested Kafka is {version}"
    job = pod_spec(manifests[("Job", "amsrm-topics")])["containers"][0]
    worker = pod_spec(manifests[("StatefulSet", "amsrm-worker")])["containers"][0]
    assert job["args"] == ["topics"] and "command" not in job and job["image"] == worker["image"]
    services = amsrm_services(compose)
    assert services["topics"]["command"] == ["topics"]
    assert services["topics"]["image"] == services["worker"]["image"]
    assert compose["services"]["kafka"]["environment"][kafka_env("auto.create.topics.enable")] == "false"


# ---------------------------------------------------------------------------------- Kubernetes
@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[(doc["kind"], doc.get("metadata", {}).get("name", path.name))] = doc
    return docs


def pod_spec(doc: dict) -> dict | None:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec")


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_k8s_containers_use_real_settings_commands_ports_and_probes(manifests):
    config = manifests[("ConfigMap", "amsrm-config")]["data"]
    check_env(config)
    workloads = {(kind, name): doc for (kind, name), doc in manifests.items() if pod_spec(doc)}
    assert {k for k, _ in workloads} == {"StatefulSet", "Deployment", "CronJob", "Job"}
    claim = manifests[("PersistentVolumeClaim", "amsrm-data")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for (kind, name), doc in workloads.items():
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            where = f"{kind}/{name}/{container['name']}"
            assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["amsrm-config"], where
            env = {**config, **{e["name"]: e["value"] for e in container.get("env", [])}}
            check_env(env)
            settings = settings_from(env)
            command = container.get("command", [])
            argv = (command[1:] if command else []) + container.get("args", [])
            assert (not command or command[0] == "amsrm") and is_amsrm_command(argv), where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
                resources["limits"]), where
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if argv[0] in ("worker", "collect"):  # the long-running processes serve metrics and probes
                assert ports == {"ops": settings.ops_port}, where
                annotations = doc["spec"]["template"]["metadata"]["annotations"]
                assert annotations["prometheus.io/port"] == str(settings.ops_port)
                assert annotations["prometheus.io/path"] == settings.metrics_path
                for probe, path in (("readinessProbe", settings.readiness_path),
                                    ("livenessProbe", settings.liveness_path)):
                    get = container[probe]["httpGet"]
                    assert get["path"] == path and ports[get["port"]] == settings.ops_port, where
                    assert container[probe]["timeoutSeconds"] > settings.liveness_timeout_s
            if argv[0] != "topics":  # everything else reads or writes the registry / training store
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                volumes = {v["name"]: v for v in spec.get("volumes", [])}
                for path in (settings.registry_dir, settings.store_dir):
                    mount = next(m for m in mounts if under(path, m))
                    assert volumes[mounts[mount]]["persistentVolumeClaim"]["claimName"] == "amsrm-data"


def test_k8s_workers_statefulset_headless_service_collector_retrain(manifests):
    config = manifests[("ConfigMap", "amsrm-config")]["data"]
    settings = settings_from(config)
    workers = manifests[("StatefulSet", "amsrm-worker")]
    service = manifests[("Service", workers["spec"]["serviceName"])]
    assert service["spec"]["clusterIP"] == "None"
    labels = workers["spec"]["template"]["metadata"]["labels"]
    assert workers["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["ops"]
    assert 1 <= workers["spec"]["replicas"] <= settings.partitions
    container = workers["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker"]
    claims = {c["metadata"]["name"]: c for c in workers["spec"]["volumeClaimTemplates"]}
    state = next(m for m in container["volumeMounts"] if m["mountPath"] == settings.data_dir)
    assert claims[state["name"]]["spec"]["accessModes"] == ["ReadWriteOnce"]  # RocksDB: one pod each
    collector = manifests[("Deployment", "amsrm-collector")]
    assert collector["spec"]["template"]["spec"]["containers"][0]["args"] == ["collect"]
    retrain = manifests[("CronJob", "amsrm-retrain")]
    assert retrain["spec"]["concurrencyPolicy"] == "Forbid"  # one retrain at a time per registry
    assert pod_spec(retrain)["containers"][0]["command"][:2] == ["amsrm", "retrain"]
    budget = settings_from({**config, **{e["name"]: e["value"]
                                          for e in pod_spec(retrain)["containers"][0].get("env", [])}})
    assert retrain["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > budget.retrain_budget_s


# ---------------------------------------------------------------------------------- cron (one host)
def test_cron_line_and_toml_are_real():
    # unknown keys raise
    settings = StreamSettings.load({"AMSRM_CONFIG": str(DEPLOY / "cron" / "amsrm.toml")})
    assert settings.model_source == "registry"
    lines = [line for line in (DEPLOY / "cron" / "amsrm-retrain").read_text().splitlines()
             if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(lines) == 1
    words = shlex.split(lines[0].split(">>")[0])
    amsrm = next(i for i, w in enumerate(words) if w.endswith("/amsrm"))
    assert is_amsrm_command(words[amsrm + 1:])
