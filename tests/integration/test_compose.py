"""docker-compose.yml, the Dockerfile and deploy/mosquitto agree with each other and with Settings.

No Docker engine runs here: the compose file is read with PyYAML, and the broker config runs in a
local mosquitto. Never edit the files under test from here; rewrite copies in a temp directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.reasoncodes import ReasonCode

from hazwatch.settings import Settings
from tests.services import IN_CI, Mosquitto, ServiceMissing, find_binary, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
BROKER_DIR = ROOT / "deploy" / "mosquitto"
MOSQUITTO_CONF = BROKER_DIR / "mosquitto.conf"
ACL = BROKER_DIR / "acl"
GRAFANA_DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

# services that others wait for (or that must report their state) need a healthcheck
NEEDS_HEALTHCHECK = {"mosquitto", "influxdb", "postgres", "hazwatch"}
HAZWATCH_ENV = re.compile(r"\bHAZWATCH_([A-Z0-9_]*[A-Z0-9])\b")  # not HAZWATCH_INFLUX_*
# ${VAR}, ${VAR:-default}, ${VAR:?error}: compose interpolation ($$ is a literal $)
INTERPOLATED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict)
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} becomes the default, ${VAR} and ${VAR:?error} a sample value."""

    def one(match: re.Match[str]) -> str:
        return match.group(2) if match.group(2) is not None else "sample"

    return re.sub(r"\$\{(\w+)(?::?-([^}]*)|:?\?[^}]*)?\}", one, value)


def _conf_values(path: Path) -> dict[str, list[str]]:
    """mosquitto.conf as option -> values (an option may repeat), comments dropped."""
    values: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            option, _, value = line.partition(" ")
            values.setdefault(option, []).append(value.strip())
    return values


def _duration_s(value: str) -> int:
    units = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}
    return int(value[:-1]) * units[value[-1]]


# --- the compose file --------------------------------------------------------


def test_has_the_production_services(compose: dict[str, Any]) -> None:
    assert {"mosquitto", "influxdb", "postgres", "grafana", "hazwatch"} <= set(_services(compose))


def test_every_service_has_an_image_or_a_build(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert service.get("image") or service.get("build"), f"{name}: no image and no build"
        image = service.get("image", "")
        if image and not service.get("build"):
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image!r}"


def test_healthchecks_where_required(compose: dict[str, Any]) -> None:
    for name in NEEDS_HEALTHCHECK:
        check = _services(compose)[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), f"{name}: {test!r}"
    assert "$$SYS/" in " ".join(_services(compose)["mosquitto"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(_services(compose)["postgres"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(_services(compose)["hazwatch"]["healthcheck"]["test"])


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source.startswith((".", "/", "~")):  # a bind mount: the file must be in the repo
                if source.startswith("./") and not source.endswith("/passwd"):
                    assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses volume {source!r}, not declared"
    for stateful in ("mosquitto", "influxdb", "postgres", "hazwatch"):
        mounts = [str(v) for v in _services(compose)[stateful].get("volumes", [])]
        assert any(m.split(":", 1)[0] in declared for m in mounts), f"{stateful}: no volume"


def test_depends_on_refers_to_healthy_existing_services(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            pytest.fail(f"{name}: depends_on must use condition: service_healthy")
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {target}"
            assert services[target].get("healthcheck"), f"{name} waits on {target}'s health"
    hazwatch_deps = set(services["hazwatch"]["depends_on"])
    assert {"mosquitto", "influxdb", "postgres"} <= hazwatch_deps


def _is_setting(name: str, fields: set[str]) -> bool:
    """`name` (lower case, without HAZWATCH_) is a field, or `part__field` a part's field."""
    if name in fields:
        return True
    part, sep, field = name.partition("__")
    if not sep or part not in fields:
        return False
    table = Settings.model_fields[part].annotation  # a part's frozen dataclass or model
    names = getattr(table, "__dataclass_fields__", None) or getattr(table, "model_fields", {})
    return field in names


def test_every_hazwatch_env_var_is_a_setting() -> None:
    """Catches a typo or a renamed setting anywhere in the deployment files and their docs."""
    fields = set(Settings.model_fields)
    files = (
        COMPOSE,
        DOCKERFILE,
        ENV_EXAMPLE,
        MOSQUITTO_CONF,
        DEPLOYMENT_DOC,
        BROKER_DIR / "README.md",
    )
    texts = {p: p.read_text(encoding="utf-8") for p in files}
    used: set[tuple[str, str]] = set()
    for path, text in texts.items():
        for match in HAZWATCH_ENV.finditer(text):
            used.add((path.name, match.group(1).lower()))
    assert used, "no HAZWATCH_* variables found"
    unknown = sorted(
        f"{file}: HAZWATCH_{name.upper()}" for file, name in used if not _is_setting(name, fields)
    )
    assert not unknown, f"not fields of hazwatch.settings.Settings: {unknown}"


def test_hazwatch_service_is_wired_to_the_stack(compose: dict[str, Any]) -> None:
    service = _services(compose)["hazwatch"]
    assert service.get("build") and service.get("command") in ("serve", ["serve"])
    env = _environment(service)
    assert env["HAZWATCH_MQTT_URL"].startswith("mqtt://hazwatch:")
    assert env["HAZWATCH_MQTT_URL"].endswith("@mosquitto:1883")
    assert env["HAZWATCH_INFLUX_URL"] == "http://influxdb:8086"
    assert env["HAZWATCH_INFLUX_API"] == "v2"
    for name in ("TOKEN", "ORG", "BUCKET"):
        assert env[f"HAZWATCH_INFLUX_{name}"], name
    assert env["HAZWATCH_STATE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["HAZWATCH_STATE_URL"]
    assert env["HAZWATCH_API_HOST"] == "0.0.0.0"
    data_dir = env["HAZWATCH_DATA_DIR"]
    assert any(str(v).endswith(f":{data_dir}") for v in service["volumes"]), "data dir volume"
    # with env interpolation replaced by sample values, Settings accepts what compose passes
    Settings(**{k.removeprefix("HAZWATCH_").lower(): _interpolate(v) for k, v in env.items()})


def test_workers_share_one_subscription_with_their_own_sessions(compose: dict[str, Any]) -> None:
    workers = {
        name: _environment(s)
        for name, s in _services(compose).items()
        if s.get("command") in ("serve", ["serve"])
    }
    client_ids = [env.get("HAZWATCH_MQTT_CLIENT_ID", "") for env in workers.values()]
    if len(workers) > 1:
        assert {env.get("HAZWATCH_MQTT_SHARED_GROUP") for env in workers.values()} != {""}
        assert len(set(client_ids)) == len(client_ids), "each worker needs its own client id"
        assert all(
            env["HAZWATCH_STATE_URL"].startswith("postgresql://") for env in workers.values()
        )


def test_secrets_come_from_the_env_file(compose: dict[str, Any]) -> None:
    """Every ${VAR} the compose file interpolates is in .env.example; no secret is inline."""
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    }
    missing = sorted(set(INTERPOLATED.findall(COMPOSE.read_text(encoding="utf-8"))) - example)
    assert not missing, f"interpolated in docker-compose.yml but not in .env.example: {missing}"
    for name, service in _services(compose).items():
        for key, value in _environment(service).items():
            if re.search(r"PASSWORD|TOKEN", key) and value:
                assert "${" in value, f"{name}: {key} is set inline, take it from .env"


def test_grafana_provisions_the_influxdb_datasource(compose: dict[str, Any]) -> None:
    grafana = _services(compose)["grafana"]
    assert any("./deploy/grafana/provisioning" in str(v) for v in grafana["volumes"])
    sources = [
        source
        for path in GRAFANA_DATASOURCES.glob("*.yml")
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    ]
    assert sources and all(s["type"] == "influxdb" for s in sources)
    env = _environment(grafana)
    for source in sources:
        for var in re.findall(r"\$\{(\w+)\}", json.dumps(source)):
            assert var in env, f"datasource {source['name']} needs {var} in grafana's env"
        assert source["url"] == "${INFLUX_URL}" and env["INFLUX_URL"] == "http://influxdb:8086"


# --- the Dockerfile ----------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_dockerfile_runs_hazwatch_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    by_name = {name: arg for name, arg in instructions}  # the last one of each wins
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert json.loads(by_name["ENTRYPOINT"]) == ["hazwatch"]
    assert json.loads(by_name["CMD"]) == ["serve"]
    assert by_name["USER"] not in ("root", "0")
    assert "8080" in by_name["EXPOSE"].split()
    assert "/api/health" in by_name["HEALTHCHECK"]
    assert any(name == "RUN" and "pip install ." in arg for name, arg in instructions)


def test_dockerfile_copies_every_folder_the_distribution_has() -> None:
    """The Dockerfile copies directories one by one: hazwatch/ and every folder it links to."""
    linked = {
        (ROOT / "hazwatch" / link.readlink()).resolve().relative_to(ROOT).as_posix()
        for link in (ROOT / "hazwatch").iterdir()
        if link.is_symlink()
    }
    assert {"devices", "ingest", "api"} <= linked
    copied = {
        src.rstrip("/")
        for name, arg in _dockerfile_instructions()
        if name == "COPY"
        for src in shlex.split(arg)[:-1]
    }
    wanted = {"hazwatch", *linked}
    assert wanted <= copied, f"folders not copied into the image: {sorted(wanted - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied


# --- the broker configuration ------------------------------------------------


def test_broker_lets_hazwatch_keep_its_receive_maximum_unacked() -> None:
    conf = _conf_values(MOSQUITTO_CONF)
    settings = Settings.model_fields
    inflight = int(conf["max_inflight_messages"][-1])
    assert inflight == 0 or inflight >= settings["mqtt_receive_maximum"].default
    # the default of 1000 queued messages loses data while hazwatch is down
    queued = int(conf["max_queued_messages"][-1])
    assert queued == 0 or queued >= 1_000_000
    assert int(conf["max_queued_bytes"][-1]) > 0, "bound the queue's memory by bytes"
    expiry = conf["persistent_client_expiration"][-1]
    assert _duration_s(expiry) >= settings["mqtt_session_expiry_s"].default
    assert conf["persistence"] == ["true"] and conf["allow_anonymous"] == ["false"]
    max_packet = int(conf.get("max_packet_size", ["0"])[-1])
    assert max_packet == 0 or max_packet > settings["max_payload_bytes"].default


def test_acl_confines_devices_to_their_own_id() -> None:
    lines = [ln.split() for ln in ACL.read_text(encoding="utf-8").splitlines()]
    rules = [ln for ln in lines if ln and not ln[0].startswith("#")]
    assert ["pattern", "write", "hw/+/+/%u/+"] in rules
    hazwatch = rules[rules.index(["user", "hazwatch"]) + 1 :]
    hazwatch = hazwatch[: next((i for i, r in enumerate(hazwatch) if r[0] != "topic"), None)]
    assert ["topic", "read", "hw/#"] in hazwatch
    assert ["topic", "write", "hw/alerts/#"] in hazwatch
    assert ["topic", "write", "hw/deadletter/#"] in hazwatch


# --- the broker configuration in a real mosquitto ----------------------------

PASSWORDS = {"hazwatch": "hz-pass", "healthcheck": "hc-pass", "gate-03": "g3-pass"}


class ProductionMosquitto(Mosquitto):
    """The repo's mosquitto.conf and acl with only the listener and the paths rewritten."""

    name = "mosquitto-production"

    def prepare(self) -> None:
        passwd = self.workdir / "passwd"
        tool = find_binary("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
        for i, (user, password) in enumerate(PASSWORDS.items()):
            create = ["-c"] if i == 0 else []
            subprocess.run([tool, *create, "-b", str(passwd), user, password], check=True)
        rewritten = []
        for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
            option = line.split(" ", 1)[0]
            if option == "listener":
                line = f"listener {self.port} 127.0.0.1"
            elif option == "password_file":
                line = f"password_file {passwd}"
            elif option == "acl_file":
                line = f"acl_file {ACL}"
            elif option == "persistence_location":
                line = f"persistence_location {self.workdir}/"
            elif line.strip() and not line.startswith("#"):
                assert "/mosquitto/" not in line, f"a path the test does not rewrite: {line}"
            rewritten.append(line)
        if os.geteuid() == 0:
            # started as root, mosquitto drops to user "mosquitto", which cannot read pytest's
            # 0700 temp dirs; in the image the files belong to that user instead
            rewritten.append("user root")
        (self.workdir / "mosquitto.conf").write_text("\n".join(rewritten) + "\n")


@pytest.fixture(scope="module")
def production_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionMosquitto]:
    try:
        find_binary("mosquitto", "/usr/sbin/mosquitto")
        find_binary("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
    except ServiceMissing as exc:
        if IN_CI:
            pytest.fail(f"the broker config test needs mosquitto in CI: {exc}")
        pytest.skip(f"cannot check deploy/mosquitto in a real broker: {exc}")
    broker = ProductionMosquitto(tmp_path_factory.mktemp("mosquitto-production"))
    broker.start()
    yield broker
    broker.stop()


class Client:
    """A small blocking MQTT 5 client over paho: connect, subscribe, publish with reason codes."""

    def __init__(self, broker: Mosquitto, user: str | None, client_id: str) -> None:
        self.paho = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if user is not None:
            self.paho.username_pw_set(user, PASSWORDS.get(user, "wrong"))
        self.connack: ReasonCode | None = None
        self.received: list[tuple[str, bytes]] = []
        self.subacks: list[list[ReasonCode]] = []
        self.pubacks: dict[int, ReasonCode] = {}
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_publish = self._on_publish
        self.paho.connect("127.0.0.1", broker.port, keepalive=10)
        self.paho.loop_start()
        wait_for(lambda: self.connack is not None, 10, f"CONNACK for {user}")

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self.connack = rc

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, msg.payload))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        self.subacks.append(list(rcs))

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self.pubacks[mid] = rc

    def subscribe(self, topic: str) -> None:
        self.paho.subscribe(topic, qos=1)
        wait_for(lambda: self.subacks, 10, f"SUBACK for {topic}")
        assert not self.subacks[-1][0].is_failure, f"{topic}: {self.subacks[-1][0]}"

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        mid = self.paho.publish(topic, payload, qos=1).mid
        return wait_for(lambda: self.pubacks.get(mid), 10, f"PUBACK for {topic}")

    def topics(self) -> list[str]:
        with self._lock:
            return [topic for topic, _ in self.received]

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def test_broker_config_enforces_the_device_acl(production_broker: ProductionMosquitto) -> None:
    worker = Client(production_broker, "hazwatch", "hazwatch-ingest-test")
    device = Client(production_broker, "gate-03", "gate-03")
    try:
        assert not worker.connack.is_failure  # type: ignore[union-attr]
        assert not device.connack.is_failure  # type: ignore[union-attr]
        worker.subscribe("$share/hazwatch/hw/+/+/+/+")

        forged = device.publish("hw/jy-0012/rfid/gate-04/read", b'{"forged": true}')
        assert forged.is_failure and forged.getName() == "Not authorized", forged
        spoofed_alert = device.publish("hw/alerts/jy-0012/custody", b"{}")
        assert spoofed_alert.is_failure, spoofed_alert
        own = device.publish("hw/jy-0012/rfid/gate-03/read", b'{"epc": "E200"}')
        assert not own.is_failure, own

        # one publisher, one subscriber: in order, so the denied ones would have come first
        wait_for(lambda: worker.topics(), 10, "the device's own read at hazwatch")
        assert worker.topics() == ["hw/jy-0012/rfid/gate-03/read"]
        assert not worker.publish("hw/alerts/jy-0012/custody", b"{}").is_failure
    finally:
        worker.close()
        device.close()


def test_broker_refuses_anonymous_and_wrong_passwords(
    production_broker: ProductionMosquitto,
) -> None:
    for user in (None, "stranger"):
        client = Client(production_broker, user, f"intruder-{user}")
        try:
            assert client.connack is not None and client.connack.is_failure, user
        finally:
            client.close()


def test_compose_healthcheck_command_works_against_the_config(
    production_broker: ProductionMosquitto, compose: dict[str, Any]
) -> None:
    """Runs mosquitto's healthcheck as the container would, only its port rewritten."""
    find_binary("mosquitto_sub", "/usr/bin/mosquitto_sub")
    test = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = test[1].replace("$$", "$").replace("-p 1883", f"-p {production_broker.port}")
    env = {"PATH": "/usr/bin:/bin", "MQTT_HEALTHCHECK_PASSWORD": PASSWORDS["healthcheck"]}
    done = subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, timeout=15, check=False
    )
    assert done.returncode == 0, f"{command!r}: {done.stdout} {done.stderr}"
    denied = subprocess.run(
        ["sh", "-c", command],
        env={**env, "MQTT_HEALTHCHECK_PASSWORD": "wrong"},
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert denied.returncode != 0, "the healthcheck must fail when the broker refuses it"


def test_password_file_is_never_committed() -> None:
    """The password file is made by the operator and never committed."""
    ignored = (BROKER_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert "passwd" in ignored
    if shutil.which("git") and (ROOT / ".git").exists():
        tracked = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "deploy/mosquitto/passwd"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert tracked.stdout.strip() == ""
