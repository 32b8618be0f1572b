"""The simulator's anomalies through Mosquitto → `hazwatch serve` → the alert store, the API,
hw/alerts/… and InfluxDB's `alert` measurement, on SQLite and PostgreSQL: a simulated site of
three devices per family with every anomaly (a device of every family offline by its last
will, an air station and a camera silent, a storage door's camera covered while its reader
reads) opens exactly one alert per fault, and each fault's end resolves it.

Never wait blindly: every effect is polled for with a deadline (tests.services.wait_for).
Silence limits are seconds here (4 s for cameras and air stations) so that the run is short;
the rules, the registry and the devices' messages are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.simulators.anomalies import roles, site_registry
from hazwatch.simulators.faults import ANOMALIES, FaultPlan
from hazwatch.simulators.fleet import Fleet, FleetConfig, FleetReport
from hazwatch.simulators.payloads import FAMILIES
from hazwatch.streams.presence.rules import RULES as PRESENCE_RULES
from hazwatch.streams.video.rules import RULES as VIDEO_RULES
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
DURATION_S = 48.0
WINDOW = (0.25, 0.6)  # the anomalies from 12 s to 28.8 s into the run
DEVICES = 3
# the rules devices and cameras are judged by: the anomalies' alerts are all of them, no more
# (the fleet's random reads and weighings also make custody verdicts; they are not its faults)
JUDGED = frozenset(PRESENCE_RULES) | frozenset(VIDEO_RULES)
Key = tuple[str, str]


class Listener:
    """Everything published under hw/alerts/{site}/#, in arrival order."""

    def __init__(self, broker: Mosquitto, site: str) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"anomalies-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(f"hw/alerts/{site}/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK from the broker"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def states(self) -> dict[Key, list[str]]:
        """(rule, subject) → the states its messages said, in order (the judged rules')."""
        out: dict[Key, list[str]] = {}
        with self._lock:
            for topic, body in self.messages:
                assert topic.endswith(f"/{body['rule']}")
                if body["rule"] not in JUDGED:
                    continue
                out.setdefault((body["rule"], body["subject"]), []).append(body["state"])
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture()
def site(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, state_url: str
) -> Iterator[tuple[str, HazwatchProcess, str]]:
    name = f"an-{uuid.uuid4().hex[:4]}"
    db = f"anomalies_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    hazwatch = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        state_url=state_url,
        presence__camera_silent_s="4",
        presence__air_silent_s="4",
    )
    registry = tmp_path / "site.toml"
    registry.write_text(site_registry(name, FAMILIES, DEVICES), encoding="utf-8")
    loaded = hazwatch.cli("registry", "load", str(registry))
    assert loaded.returncode == 0, loaded.stderr
    hazwatch.start()
    try:
        yield name, hazwatch, db
    finally:
        hazwatch.stop()


def open_in_store(state_url: str, site: str) -> list[Key]:
    db = StateDB(state_url)
    try:
        alerts = AlertStore(db).list(site=site, limit=1000)
    finally:
        db.close()
    return sorted((a.rule, a.subject) for a in alerts if a.rule in JUDGED and a.state == "open")


def open_in_api(hazwatch: HazwatchProcess, site: str) -> list[Key]:
    page = httpx.get(
        f"{hazwatch.api}/api/alerts",
        params={"state": "open", "site": site, "limit": 1000},
        timeout=5,
    ).json()
    return sorted((a["rule"], a["subject"]) for a in page["alerts"] if a["rule"] in JUDGED)


def points(influxd: Influxd, db: str, site: str) -> dict[Key, list[str]]:
    """(rule, subject) → the states of its `alert` points, in time order."""
    series = influxd.query(
        db, f"SELECT state, rule, subject FROM alert WHERE site = '{site}' ORDER BY time"
    )
    out: dict[Key, list[str]] = {}
    for s in series:
        columns = s["columns"]
        for row in s["values"]:
            value = dict(zip(columns, row, strict=True))
            if value["rule"] in JUDGED:
                out.setdefault((value["rule"], value["subject"]), []).append(value["state"])
    return out


def until(check: Any, expected: object, timeout: float, what: str) -> None:
    """Wait for `check()` to equal `expected`; the timeout says what it was last."""
    seen: list[object] = []

    def done() -> bool:
        seen[:] = [check()]
        return seen[0] == expected

    try:
        wait_for(done, timeout, what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: last {seen[0] if seen else None!r}") from None


def test_every_anomaly_opens_one_alert_and_its_end_resolves_it(
    site: tuple[str, HazwatchProcess, str],
    mosquitto: Mosquitto,
    influxd: Influxd,
    state_url: str,
) -> None:
    name, hazwatch, db = site
    listener = Listener(mosquitto, name)
    plan = FaultPlan(anomalies=frozenset(ANOMALIES), anomaly_window=WINDOW)
    config = FleetConfig(
        site=name, devices=DEVICES, rate=60.0, duration_s=DURATION_S, faults=plan, seed=3
    )
    expected = sorted(
        alert
        for role in roles(plan.anomalies, FAMILIES, DEVICES, name).values()
        for alert in role.alerts
    )
    # offline: one device of each of the five families, and the offline camera's door read
    # unseen (blind_read); silent: an air station, a camera (whose door's reader is offline);
    # blind_read: the covered camera's tamper_occlusion and the door's blind_read
    assert len(expected) == 5 + 1 + 2 + 2
    result: dict[str, FleetReport] = {}
    runner = threading.Thread(
        target=lambda: result.setdefault("report", asyncio.run(Fleet(config).run(mosquitto.url)))
    )
    runner.start()
    try:
        until(lambda: open_in_store(state_url, name), expected, 40, "the anomalies' alerts")
        # all open at once: each while its fault lasts (a fault's end resolves its alert)
        assert open_in_api(hazwatch, name) == expected
        wait_for(
            lambda: all(listener.states().get(key, [])[:1] == ["open"] for key in expected),
            10,
            "each alert opened on hw/alerts/…",
        )
        assert set(listener.states()) == set(expected)  # no other device or video alert
        wait_for(
            lambda: all(points(influxd, db, name).get(key, [])[:1] == ["open"] for key in expected),
            20,
            "each alert's `alert` point",
        )

        # the anomalies end: every device is itself again
        until(lambda: open_in_store(state_url, name), [], 15, "every alert resolved")
        assert open_in_api(hazwatch, name) == []
        wait_for(
            lambda: all(listener.states().get(key) == ["open", "resolved"] for key in expected),
            10,
            "each alert resolved on hw/alerts/…",
        )
        assert set(listener.states()) == set(expected)
        wait_for(
            lambda: (
                {k: v for k, v in points(influxd, db, name).items()}
                == {key: ["open", "resolved"] for key in expected}
            ),
            20,
            "each alert's points: open, then resolved",
        )
        db_state = StateDB(state_url)
        try:
            store = AlertStore(db_state)
            for rule, subject in expected:
                (alert,) = store.list(rule=rule, subject=subject, site=name)  # one per fault
                assert alert.state == "resolved" and alert.resolved_by == "auto"
                changes = [(h.change.value, h.actor) for h in store.history(alert.alert_id)]
                assert changes[0] == ("opened", rule) and changes[-1] == ("auto_resolved", "auto")
        finally:
            db_state.close()
    finally:
        runner.join(DURATION_S + 30)
        listener.close()
    report = result["report"]
    assert report.ok, report.errors
    made = sorted(alert for fault in report.faults for alert in fault.alerts)
    assert made == expected  # the ground truth says what the service said
