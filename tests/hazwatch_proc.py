"""`hazwatch serve` as a real child process for integration tests (SIGTERM, SIGKILL, restart).

Never run the service in the test's own process here: crash tests need a process to kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as paho

from tests.services import free_port, wait_for


class HazwatchProcess:
    # Every one started, until its broker session is forgotten (forget_stopped_sessions).
    started: ClassVar[list[HazwatchProcess]] = []

    def __init__(self, workdir: Path, *, config: Path | None = None, **settings: str) -> None:
        self.workdir = workdir
        self.config = config  # a settings file (`hazwatch --config FILE serve`)
        workdir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            HAZWATCH_DATA_DIR=str(workdir / "data"),
            HAZWATCH_API_PORT=str(self.api_port),
            HAZWATCH_LOG_LEVEL="INFO",
            HAZWATCH_MESSAGE_BATCH_WAIT_MS="20",
        )
        self.env.update({f"HAZWATCH_{k.upper()}": v for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "hazwatch.log"

    @classmethod
    def on_influx_v1(
        cls, workdir: Path, mqtt_url: str, influx_url: str, db: str, **settings: str
    ) -> HazwatchProcess:
        """serve on a broker and an InfluxDB 1.x database, with an MQTT session of its own."""
        return cls(
            workdir,
            mqtt_url=mqtt_url,
            mqtt_client_id=f"hazwatch-{uuid.uuid4().hex[:6]}",
            influx_url=influx_url,
            influx_api="v1",
            influx_db=db,
            **settings,
        )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, wait_connected: bool = True) -> None:
        if self not in HazwatchProcess.started:
            HazwatchProcess.started.append(self)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hazwatch", *self._config_args(), "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self._api_up, 30, f"hazwatch API on {self.api_port}")
            if wait_connected:
                wait_for(self._broker_up, 30, "hazwatch connected to the broker")
        except BaseException as exc:
            # not left running when its test fails here: tests call start() before their
            # try/finally, and one serve left up consumed every later test's messages on the
            # shared broker for the rest of a full run (test_poison's, 26 min)
            self.kill()
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"{exc}\n{self.log_tail()}") from None
            raise

    def _config_args(self) -> list[str]:
        return ["--config", str(self.config)] if self.config is not None else []

    def _api_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"hazwatch exited {self.proc.returncode}: {self.log_tail()}")
        try:
            httpx.get(f"{self.api}/api/health", timeout=1)
            return True
        except httpx.HTTPError:
            return False

    def health(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.api}/api/health", timeout=5).json())

    def _broker_up(self) -> bool:
        components = self.health()["components"]
        return components["broker"]["status"] == "up"  # type: ignore[index]

    def metrics(self) -> str:
        return httpx.get(f"{self.api}/metrics", timeout=5).text

    def stop(self) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            # Still a failure, but not one that outlives its test: a serve left running
            # consumed every later test's messages on the shared broker for the rest of the
            # suite (test_poison's, for over ten minutes of a full run).
            self.kill()
            raise AssertionError(
                f"hazwatch serve did not end within 60 s of SIGTERM (killed)\n{self.log_tail()}"
            ) from None
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None

    @property
    def session(self) -> tuple[str, str] | None:
        """The broker URL and client id of its persistent MQTT session, if set in its env."""
        url = self.env.get("HAZWATCH_MQTT_URL")
        return (url, self.env.get("HAZWATCH_MQTT_CLIENT_ID", "hazwatch-ingest")) if url else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hazwatch", *self._config_args(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def forget_session(url: str, client_id: str) -> None:
    """End a persistent session on the broker: connect as its client id with a clean start.

    serve's session (expiry 7 days) outlives the process; the broker (max_queued_messages 0)
    would queue every later test's messages for it, and save them all every second.
    """
    parts = urlsplit(url)
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=True)
    except ConnectionError:
        return  # the broker is gone: so is every session on it
    client.loop_start()
    try:
        wait_for(client.is_connected, 10, f"{client_id} connected to forget its session")
        client.disconnect()  # session expiry 0 (the default): the broker drops the session
    finally:
        client.loop_stop()


def forget_stopped_sessions() -> None:
    """Forget the broker sessions of every stopped serve no running one shares (after a test)."""
    running = {p.session for p in HazwatchProcess.started if p.proc is not None}
    for proc in [p for p in HazwatchProcess.started if p.proc is None]:
        HazwatchProcess.started.remove(proc)  # started again, it is listed again
        session = proc.session
        if session is not None and session not in running:
            running.add(session)  # once per session
            forget_session(*session)
