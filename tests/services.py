"""Real services for tests and benchmarks: Mosquitto, InfluxDB 1.x, VictoriaMetrics, PostgreSQL.

Never mock these: each starts the real binary on a free loopback port in its own temp directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class ServiceMissing(RuntimeError):
    """The binary is not installed (outside CI the test is skipped with this reason)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns a truthy value or raise TimeoutError (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last_exc})")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_binary(name: str, *extra: str) -> str:
    found = shutil.which(name) or next((p for p in extra if Path(p).exists()), None)
    if not found:
        raise ServiceMissing(f"{name} is not installed (apt-get install -y {name})")
    return found


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not ended within `timeout`; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class Service:
    """A child process on a port, with start/stop/kill/restart for failure tests."""

    name = "service"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self, timeout: float = 30.0) -> None:
        self.prepare()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        try:
            wait_for(self._ready_or_dead, timeout, f"{self.name} on port {self.port}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}") from None

    def _ready_or_dead(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log_tail()}")
        return self.ready()

    def prepare(self) -> None:
        """Write config files before the first start."""

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=15)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {workdir}/
autosave_interval 1
autosave_on_changes false
# hazwatch's consumer keeps up to its receive maximum unacked; the default 20 starves it.
max_inflight_messages 0
# queue everything for a persistent session while hazwatch is away (default is 1000)
max_queued_messages 0
max_queued_bytes 0
persistent_client_expiration 1d
log_dest stdout
log_type error
log_type warning
"""


class Mosquitto(Service):
    name = "mosquitto"

    def prepare(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=self.port, workdir=self.workdir)
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to the `mosquitto` user, which cannot write
            # its persistence file in our temp directory: queued messages would not survive
            # a broker restart.
            text += "user root\n"
        conf.write_text(text)

    def command(self) -> list[str]:
        return [find_binary("mosquitto", "/usr/sbin/mosquitto"), "-c", "mosquitto.conf"]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


INFLUXD_CONF = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{workdir}/meta"
  logging-enabled = false
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  index-version = "{index}"
{limits}[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
"""


class Influxd(Service):
    """InfluxDB 1.x (Debian's `influxdb`), spoken to through the v1 HTTP API.

    Its series limits are InfluxDB's own defaults (max-values-per-tag 100,000,
    max-series-per-database 1,000,000), as a center installs it, never switched off: a schema
    that grows series with the traffic must fail here (#19). `limits` sets them lower to
    test at the wall (tests/integration/test_influx_wall.py). `index`: "tsi1" (on disk, what
    docs/deployment.md advises) or "inmem" (InfluxDB 1.x's default, and the index that
    enforces both limits: InfluxDB 1.6's tsi1 enforced neither, measured).
    """

    name = "influxd"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        limits: dict[str, int] | None = None,
        index: str = "tsi1",
    ) -> None:
        super().__init__(workdir, port)
        self.rpc_port = free_port()
        self.limits = dict(limits or {})
        self.index = index

    def prepare(self) -> None:
        limits = "".join(f"  {key} = {value}\n" for key, value in self.limits.items())
        conf = INFLUXD_CONF.format(
            port=self.port,
            rpc_port=self.rpc_port,
            workdir=self.workdir,
            index=self.index,
            limits=limits,
        )
        (self.workdir / "influxdb.conf").write_text(conf)

    def command(self) -> list[str]:
        return [find_binary("influxd", "/usr/bin/influxd"), "-config", "influxdb.conf"]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=1).status_code == 204
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_db(self, name: str) -> None:
        r = httpx.post(f"{self.url}/query", params={"q": f'CREATE DATABASE "{name}"'}, timeout=10)
        r.raise_for_status()

    def query(self, db: str, q: str) -> list[dict[str, Any]]:
        """InfluxQL; returns the series of the first statement (epoch ns times)."""
        r = httpx.get(f"{self.url}/query", params={"db": db, "q": q, "epoch": "ns"}, timeout=30)
        r.raise_for_status()
        result = r.json()["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return list(result.get("series", []))

    def count(self, db: str, measurement: str, where: str = "") -> int:
        """Number of points in a measurement (over all series)."""
        clause = f" WHERE {where}" if where else ""
        total = 0
        for series in self.query(db, f'SELECT * FROM "{measurement}"{clause}'):
            total += len(series.get("values", []))
        return total


class VictoriaMetrics(Service):
    """Accepts the InfluxDB v2 write API (`/api/v2/write`) that influxdb-client speaks."""

    name = "victoria-metrics"

    def command(self) -> list[str]:
        return [
            find_binary("victoria-metrics", "/usr/bin/victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir}/data",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def export(self, match: str) -> list[dict[str, Any]]:
        import orjson

        httpx.get(f"{self.url}/internal/force_flush", timeout=10)
        r = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, timeout=30)
        r.raise_for_status()
        return [orjson.loads(line) for line in r.content.splitlines() if line.strip()]


POSTGRES_URL = os.environ.get("HAZWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_database() -> str:
    """A fresh database on the PostgreSQL that .ci/run starts (trust auth); returns its URL."""
    import psycopg

    name = f"hazwatch_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise ServiceMissing(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}") from exc
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
