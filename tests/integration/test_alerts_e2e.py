"""An alert's whole life through `hazwatch serve`, Mosquitto and InfluxDB 1.x: a camera's last
will says it went offline, the alert is in GET /api/alerts and on hw/alerts/…, an officer
acknowledges it through the API and resolves it through the CLI, the camera comes back and
goes again (a recurrence), the CLI acknowledges that one and the camera's return resolves it;
each step shows in the alert's history, on MQTT and as an `alert` point; on SQLite and on
PostgreSQL.

Never wait blindly: every effect is polled for with a deadline (tests.services.wait_for).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
TOKEN = "alerts-e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SITE = "jy-0012"
CAMERA = "cam-2"
STATUS = f"hw/{SITE}/camera/{CAMERA}/status"
RULE = "device_offline"  # a camera's, as every registered device's (the presence part)
REGISTRY = Path(__file__).parents[1] / "data" / "registry.toml"  # cam-2 is at jy-0012


class Listener:
    """Everything published under hw/alerts/#, decoded, in arrival order."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"alerts-e2e-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe("hw/alerts/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK from the broker"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def changes(self, alert_id: str) -> list[str]:
        with self._lock:
            return [p["change"] for _, p in self.messages if p["alert_id"] == alert_id]

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self.client.publish(STATUS, b"", qos=1, retain=True).wait_for_publish(10)  # unretain
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture()
def serve(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, state_url: str
) -> Iterator[tuple[HazwatchProcess, Listener, str]]:
    db = f"alerts_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    hazwatch = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        state_url=state_url,
        api_token=TOKEN,
    )
    loaded = hazwatch.cli("registry", "load", str(REGISTRY))
    assert loaded.returncode == 0, loaded.stderr
    hazwatch.start()
    listener = Listener(mosquitto)
    try:
        yield hazwatch, listener, db
    finally:
        listener.close()
        hazwatch.stop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def camera_status(listener: Listener, online: bool) -> None:
    """The camera's status as its edge agent's last will and its return publish it."""
    listener.publish(STATUS, {"online": online, "ts": now_ms(), "fw": "agent-0.1"})


def camera_state(api: str) -> str | None:
    page = httpx.get(
        f"{api}/api/devices", params={"site": SITE, "family": "camera"}, timeout=5
    ).json()
    found = [d["state"] for d in page["devices"] if d["device"] == CAMERA]
    return found[0] if found else None


def open_alert(api: str) -> dict[str, Any] | None:
    page = httpx.get(
        f"{api}/api/alerts",
        params={"state": "open", "rule": RULE, "site": SITE},
        timeout=5,
    ).json()
    return page["alerts"][0] if page["total"] == 1 else None


def cli_json(hazwatch: HazwatchProcess, *args: str) -> dict[str, Any]:
    done = hazwatch.cli("alerts", *args, "--api", hazwatch.api, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def history(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["change"], h["actor"]) for h in doc["history"]]


def test_an_alert_raised_by_a_fault_acked_and_resolved_by_api_and_cli(
    serve: tuple[HazwatchProcess, Listener, str], influxd: Influxd
) -> None:
    hazwatch, listener, db = serve
    api = hazwatch.api

    # the fault: the camera's last will
    camera_status(listener, online=False)
    alert = wait_for(lambda: open_alert(api), 20, "an open device_offline alert in the API")
    aid = alert["alert_id"]
    assert alert["subject"] == f"{SITE}/camera/{CAMERA}" and alert["severity"] == "major"
    wait_for(lambda: listener.changes(aid) == ["opened"], 10, "hw/alerts/… opened")
    topic, payload = listener.messages[0]
    assert topic == f"hw/alerts/{SITE}/{RULE}" and payload["state"] == "open"

    # acknowledged through the API: the token is needed
    url = f"{api}/api/alerts/{aid}/ack"
    body = {"by": "张工", "comment": "已通知值班电工"}
    assert httpx.post(url, json=body, timeout=5).status_code == 401
    acked = httpx.post(url, json=body, headers=AUTH, timeout=5)
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "acknowledged"
    wait_for(lambda: listener.changes(aid) == ["opened", "acknowledged"], 10, "acknowledged")

    # resolved through the CLI (which goes through the API, with HAZWATCH_API_TOKEN)
    done = cli_json(hazwatch, "resolve", aid, "--by", "李工", "--comment", "摄像头已重启")
    assert done["state"] == "resolved" and done["resolved_by"] == "李工"
    wait_for(lambda: listener.changes(aid)[-1:] == ["resolved"], 10, "resolved on MQTT")
    again = hazwatch.cli("alerts", "ack", aid, "--by", "张工", "--api", api)
    assert again.returncode == 3 and "resolved" in again.stderr
    conflict = httpx.post(f"{api}/api/alerts/{aid}/resolve", json=body, headers=AUTH, timeout=5)
    assert conflict.status_code == 409
    missing = httpx.get(f"{api}/api/alerts/0000000000000000", timeout=5)
    assert missing.status_code == 404

    shown = cli_json(hazwatch, "show", aid)
    assert history(shown) == [
        ("opened", RULE),
        ("acknowledged", "张工"),
        ("resolved", "李工"),
    ]
    assert [h["comment"] for h in shown["history"]][1:] == ["已通知值班电工", "摄像头已重启"]
    table = hazwatch.cli("alerts", "show", aid, "--api", api)
    assert table.returncode == 0 and "处理记录" in table.stdout and "摄像头已重启" in table.stdout

    # back, and gone again: a new alert that says it recurs the first
    camera_status(listener, online=True)
    # the return handled first (its status point written in the batch the rule saw it in),
    # so that the will after it is a new going away
    wait_for(lambda: camera_state(api) == "online", 20, "the camera's return handled")
    camera_status(listener, online=False)
    second = wait_for(lambda: open_alert(api), 20, "the recurrence, open")
    sid = second["alert_id"]
    assert sid != aid and second["recurs"] == aid
    acked_cli = cli_json(hazwatch, "ack", sid, "--by", "王工")
    assert acked_cli["state"] == "acknowledged"
    camera_status(listener, online=True)  # the camera's return resolves it by itself
    wait_for(
        lambda: httpx.get(f"{api}/api/alerts/{sid}", timeout=5).json()["state"] == "resolved",
        20,
        "the recurrence auto-resolved",
    )
    doc = httpx.get(f"{api}/api/alerts/{sid}", timeout=5).json()
    assert history(doc) == [
        ("opened", RULE),
        ("acknowledged", "王工"),
        ("auto_resolved", "auto"),
    ]
    assert doc["history"][0]["details"] == {"recurs": aid}
    wait_for(
        lambda: listener.changes(sid) == ["opened", "acknowledged", "auto_resolved"],
        10,
        "the recurrence's changes on MQTT",
    )
    assert [p["recurs"] for _, p in listener.messages if p["alert_id"] == sid] == [aid] * 3

    listed = httpx.get(f"{api}/api/alerts", params={"rule": RULE}, timeout=5).json()
    assert listed["total"] == 2 and [a["alert_id"] for a in listed["alerts"]] == [sid, aid]

    # each change is a point of the `alert` measurement
    def states() -> list[str]:
        series = influxd.query(db, f"SELECT state FROM alert WHERE alert_id = '{aid}'")
        return [str(value) for s in series for _, value in s["values"]]

    wait_for(lambda: states() == ["open", "acknowledged", "resolved"], 20, "alert points")
