"""The demo's embedded MQTT broker: `mosquitto` spawned when on PATH, else the pure-Python amqtt.

Never present the amqtt fallback as production-ready: it speaks MQTT 3.1.1 only and drops a
QoS 1 message whose PUBACK takes over 5 s; the demo says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from hazwatch.base.errors import HazwatchError

log = logging.getLogger("hazwatch.embedded")

MOSQUITTO_CONF = """\
# Written by `hazwatch demo`. Production settings and why: docs/deployment.md
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {directory}/
autosave_interval 5
max_inflight_messages 0
max_queued_messages 0
max_queued_bytes 0
log_dest file {directory}/mosquitto.log
"""

# amqtt keeps offline queues only for sessions that logged in with a username.
DEMO_USER = "hazwatch"
DEMO_PASSWORD = "demo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """Start with `start()`, stop with `close()`; `url` is what clients connect to."""

    def __init__(self, directory: Path, *, prefer: str = "auto", port: int | None = None) -> None:
        self.directory = directory
        self.port = port or _free_port()
        self.prefer = prefer
        self.kind = ""
        self.protocol = "5"
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._amqtt: object | None = None

    @property
    def production_ready(self) -> bool:
        return self.kind == "mosquitto"

    def describe(self) -> str:
        if self.kind == "mosquitto":
            return f"mosquitto (spawned) on 127.0.0.1:{self.port}"
        return (
            f"amqtt (pure-Python fallback, MQTT 3.1.1) on 127.0.0.1:{self.port}: "
            "fine for the demo, not for production (install mosquitto)"
        )

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if mosquitto and self.prefer in ("auto", "mosquitto"):
            self._start_mosquitto(mosquitto)
        elif self.prefer == "mosquitto":
            raise HazwatchError("mosquitto is not installed (apt-get install mosquitto)")
        else:
            from hazwatch import extras

            what = (
                "--broker amqtt"
                if self.prefer == "amqtt"
                else "without mosquitto (apt-get install mosquitto), the demo"
            )
            extras.require("demo", what)
            self._start_amqtt()

    def _start_mosquitto(self, binary: str) -> None:
        conf = self.directory / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=self.port, directory=self.directory)
        if os.geteuid() == 0:  # else mosquitto drops to a user that cannot write its store
            text += "user root\n"
        conf.write_text(text)
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if not _wait_port(self.port, 10):
            err = self._proc.stderr.read().decode() if self._proc.stderr else ""
            self._proc.kill()
            raise HazwatchError(f"mosquitto did not start on port {self.port}: {err.strip()}")
        self.kind = "mosquitto"
        self.protocol = "5"
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
            },
        }
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            broker = Broker(config, loop=loop)
            self._amqtt = broker
            try:
                loop.run_until_complete(broker.start())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(broker.shutdown())
            loop.close()

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(15)
        if errors or not _wait_port(self.port, 10):
            raise HazwatchError(f"the embedded amqtt broker did not start: {errors}")
        self.kind = "amqtt"
        self.protocol = "3.1.1"
        self.url = f"mqtt://{DEMO_USER}:{DEMO_PASSWORD}@127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop = None
