"""Device clocks off by minutes, through Mosquitto → `hazwatch serve` → the state store.

Never wait blindly: every effect is polled for with a deadline (tests.services.wait_for).
Each device here stamps its messages with its own clock: the storage-in reader 15 minutes slow
(issue #18 item 7), the storage-out reader 6 minutes fast, the vehicle reader rebooted to
2000-01-01. Real time is compressed: the settle time is 2 s instead of 60, a story's minutes
are seconds; the clocks' offsets are the real ones.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.devices.timeparse import EARLIEST_NS, parse_ts
from hazwatch.ingest.deadletters import DeadLetterStore
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
REGISTRY = Path(__file__).parents[1] / "data" / "registry.toml"
S = 1_000_000_000
SITE = "jy-0012"
EPCS = [f"E2000017221101441890CC{n:02X}" for n in range(3)]


class Devices:
    """The site's devices on one MQTT connection, each writing its own clock's time."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"devices-{uuid.uuid4().hex[:6]}"
        )
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.reboot_ns: int | None = None  # when the vehicle reader rebooted
        # device time = true time + this (s): the storage-in reader slow, storage-out fast
        self.skew_s = {"gate-03": -900.0, "gate-04": 360.0}

    def device_ms(self, device: str) -> int:
        now = time.time_ns()
        if device == "veh-01" and self.reboot_ns is not None:
            return (EARLIEST_NS + now - self.reboot_ns) // 1_000_000
        return (now + int(self.skew_s.get(device, 0.0) * S)) // 1_000_000

    def send(self, site: str, family: str, device: str, kind: str, **body: object) -> None:
        payload = orjson.dumps({"ts": self.device_ms(device), **body})
        info = self.client.publish(f"hw/{site}/{family}/{device}/{kind}", payload, qos=1)
        info.wait_for_publish(10)

    def heartbeats(self, seconds: float, *devices: tuple[str, str, str]) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for site, family, device in devices:
                self.send(site, family, device, "status", online=True)
            time.sleep(0.25)

    def carry(self, site: str, reader: str, epc: str, seconds: float = 1.2) -> None:
        """A drum through a reader's field: 25 reads a second, RSSI rising and falling."""
        n = int(seconds * 25)
        for i in range(n):
            rssi = round(-70 + 25 * (1 - abs(2 * i / n - 1)), 1)
            self.send(site, "rfid", reader, "read", epc=epc, rssi=rssi, antenna=1)
            time.sleep(0.04)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


STORE_IN, STORE_OUT = (SITE, "rfid", "gate-03"), (SITE, "rfid", "gate-04")
TERMINAL, SCALE = (SITE, "terminal", "t1"), (SITE, "scale", "s1")
VEHICLE = ("tr-01", "rfid", "veh-01")


@pytest.fixture()
def serve(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, state_url: str
) -> Iterator[HazwatchProcess]:
    db = f"clocks_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    hazwatch = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        state_url=state_url,
        clocks__settle_s="2",  # a step, or a first offset, holds 2 s (60 by default)
    )
    loaded = hazwatch.cli("registry", "load", str(REGISTRY))
    assert loaded.returncode == 0, loaded.stderr
    hazwatch.start()
    try:
        yield hazwatch
    finally:
        hazwatch.stop()


def api(hazwatch: HazwatchProcess, path: str) -> object:
    return httpx.get(f"{hazwatch.api}{path}", timeout=5).json()


def verdicts(hazwatch: HazwatchProcess) -> dict[str, tuple[str, str, list[str]]]:
    rows = api(hazwatch, "/api/batches")
    assert isinstance(rows, list)
    return {
        r["batch"]: (r["verdict"], r["stage"], r["rules"]) for r in rows if r["batch"][:2] == "C-"
    }


def until(check: Callable[[], object], what: str, timeout: float = 30) -> object:
    return wait_for(check, timeout, what)


def gauge(metrics: str, device: str) -> float | None:
    found = re.search(
        r'hazwatch_device_clock_offset_seconds\{device="' + re.escape(device)
        + r'",family="rfid",site="[^"]+"\} (\S+)',
        metrics,
    )  # fmt: skip
    return float(found.group(1)) if found else None


def test_slow_fast_and_rebooted_readers_keep_verdicts_physically_true(
    serve: HazwatchProcess, mosquitto: Mosquitto, state_url: str
) -> None:
    hazwatch = serve
    devices = Devices(mosquitto.url)
    try:
        # the site's devices have been on for a while: their clocks are measured
        devices.heartbeats(4, STORE_IN, STORE_OUT, TERMINAL, SCALE, VEHICLE)
        # issue #18 item 7: three containers registered and weighed, then carried in through
        # the storage-in door, whose reader is 15 minutes slow
        for n, epc in enumerate(EPCS):
            devices.send(SITE, "terminal", "t1", "batch", batch=f"C-{n}", epc=epc,
                         waste_code="900-249-08")  # fmt: skip
            devices.send(SITE, "scale", "s1", "weight", epc=epc, net_kg=150.0)
        time.sleep(1)
        for epc in EPCS:
            devices.carry(SITE, "gate-03", epc)
        want = {f"C-{n}": ("open", "STORED", []) for n in range(3)}
        until(lambda: verdicts(hazwatch) == want, f"three containers stored: {want}")

        # the offset is in /metrics and the device API, and clock_skew is raised for it
        def measured() -> bool:
            metrics = hazwatch.metrics()
            slow, fast = gauge(metrics, "gate-03"), gauge(metrics, "gate-04")
            return slow is not None and fast is not None and 900 < slow < 901 and -360 < fast < -359

        until(measured, "gate-03 900 s slow and gate-04 360 s fast in /metrics")
        clock = api(hazwatch, "/api/devices/jy-0012/rfid/gate-03/clock")
        assert isinstance(clock, dict)
        assert 899.99 < clock["offset_s"] < 901 and clock["basis"] == "window" and clock["skewed"]
        listed = api(hazwatch, "/api/devices/clocks?site=jy-0012&family=rfid")
        assert isinstance(listed, list)
        assert {r["device"] for r in listed} >= {"gate-03", "gate-04"}
        trace = api(hazwatch, "/api/batches/C-0/trace")
        assert isinstance(trace, dict)
        generated, stored = trace["events"]
        assert stored["device"] == "gate-03" and 899.99 < stored["clock"]["offset_s"] < 901
        assert abs(parse_ts(stored["device_ts"]) - (parse_ts(stored["ts"]) - 900 * S)) < S
        assert 0 < parse_ts(stored["ts"]) - parse_ts(generated["ts"]) < 30 * S

        # dispatched through the storage-out door (6 minutes fast): taken, not refused
        for epc in EPCS:
            devices.carry(SITE, "gate-04", epc)
        want = {f"C-{n}": ("open", "DISPATCHED", []) for n in range(3)}
        until(lambda: verdicts(hazwatch) == want, f"three containers dispatched: {want}")

        # the vehicle reader reboots to 2000-01-01 and reads the load on the way
        devices.reboot_ns = time.time_ns()
        for epc in EPCS:
            devices.carry("tr-01", "veh-01", epc, seconds=0.5)
        devices.heartbeats(3, VEHICLE)  # it goes on; its new offset settles in 2 s
        for epc in EPCS:
            devices.carry("tr-01", "veh-01", epc, seconds=0.5)
        want = {f"C-{n}": ("open", "IN_TRANSIT", []) for n in range(3)}
        until(lambda: verdicts(hazwatch) == want, f"three containers in transit: {want}")

        def vehicle_stepped() -> bool:
            row = api(hazwatch, "/api/devices/tr-01/rfid/veh-01/clock")
            return isinstance(row, dict) and row.get("steps") == 1 and row["offset_s"] > 8e8

        until(vehicle_stepped, "the vehicle reader's new offset (26 years) taken")
    finally:
        devices.close()

    db = StateDB(state_url)
    try:
        alerts = AlertStore(db)

        def skews() -> set[str]:
            return {a.subject for a in alerts.list(rule="clock_skew", state="open")}

        until(
            lambda: (
                skews() == {"jy-0012/rfid/gate-03", "jy-0012/rfid/gate-04", "tr-01/rfid/veh-01"}
            ),
            "clock_skew open for the three readers",
        )
        # nothing but clock_skew: no false custody alarm
        custody = {
            a.rule for a in alerts.list(state="open", limit=1000) if a.site in (SITE, "tr-01")
        }
        assert custody == {"clock_skew"}
        # refused: only the fast reader's statuses before its offset was known
        refused = {
            (letter.topic, letter.reason)
            for letter in DeadLetterStore(db).matching(limit=1000)
            if "/jy-0012/" in letter.topic or "/tr-01/" in letter.topic
        }
        assert refused <= {("hw/jy-0012/rfid/gate-04/status", "future_ts")}
    finally:
        db.close()

    # a restart replays the stored inputs: the same verdicts, the offsets kept, no new alert
    before = verdicts(hazwatch)
    assert hazwatch.stop() == 0
    hazwatch.start()
    assert verdicts(hazwatch) == before
    clock = api(hazwatch, "/api/devices/jy-0012/rfid/gate-03/clock")
    assert isinstance(clock, dict) and 899.99 < clock["offset_s"] < 901
    db = StateDB(state_url)
    try:
        assert all(a.count == 1 for a in AlertStore(db).list(rule="clock_skew"))
    finally:
        db.close()


def test_a_reader_slow_from_its_first_read_is_read_again_once_measured(
    serve: HazwatchProcess, mosquitto: Mosquitto, state_url: str
) -> None:
    """The storage-in door 15 minutes slow, heard from for the first time when it reads the
    first drum: that drum is judged before the reader's offset is known (stored before it was
    generated), and again once it is (the offset settles in 2 s here): stored, at the time it
    was carried in, and the alerts of the wrong verdict resolved by hazwatch itself."""
    hazwatch = serve
    devices = Devices(mosquitto.url)
    try:
        devices.heartbeats(3, TERMINAL, SCALE)  # the terminal and the scale are measured
        for n, epc in enumerate(EPCS):
            devices.send(SITE, "terminal", "t1", "batch", batch=f"C-{n}", epc=epc,
                         waste_code="900-249-08")  # fmt: skip
            devices.send(SITE, "scale", "s1", "weight", epc=epc, net_kg=150.0)
        time.sleep(1)
        carried_ns = time.time_ns()
        devices.carry(SITE, "gate-03", EPCS[0])  # the reader's first messages
        until(
            lambda: verdicts(hazwatch).get("C-0", ("",))[0] == "broken",
            "C-0 judged broken by the reader's own time, its offset not known yet",
        )
        devices.heartbeats(3, STORE_IN, TERMINAL, SCALE)  # its offset settles
        for epc in EPCS[1:]:
            devices.carry(SITE, "gate-03", epc)
        want = {f"C-{n}": ("open", "STORED", []) for n in range(3)}
        until(lambda: verdicts(hazwatch) == want, f"three containers stored: {want}")
        trace = api(hazwatch, "/api/batches/C-0/trace")
        assert isinstance(trace, dict)
        stored = trace["events"][1]
        assert stored["clock"]["basis"] == "window" and 899.99 < stored["clock"]["offset_s"] < 901
        assert abs(parse_ts(stored["ts"]) - carried_ns) < 2 * S
    finally:
        devices.close()

    db = StateDB(state_url)
    try:
        alerts = AlertStore(db)

        def wrong() -> dict[tuple[str, str], list[str]]:
            found = {}
            for alert in alerts.list(limit=1000):
                if alert.subject.startswith("C-"):
                    history = [h.change for h in alerts.history(alert.alert_id)]
                    found[(alert.rule, alert.subject)] = history
            return found

        raised = wrong()
        assert ("skipped_stage", "C-0") in raised
        assert all(changes == ["opened", "auto_resolved"] for changes in raised.values()), raised
        open_rules = {a.rule for a in alerts.list(state="open", limit=1000) if a.site == SITE}
        assert open_rules == {"clock_skew"}
    finally:
        db.close()
