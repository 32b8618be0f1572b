"""End to end: simulated devices → real Mosquitto → `hazwatch serve` → real InfluxDB.

Never check a count alone where identities can be checked: every accepted message's point is
looked up by its tags and device time.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.simulators.faults import FaultPlan
from hazwatch.simulators.fleet import Fleet, FleetConfig, FleetReport
from hazwatch.simulators.payloads import Message
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, VictoriaMetrics, wait_for

pytestmark = pytest.mark.integration

MEASUREMENT = {
    ("rfid", "read"): ("waste_read", "reader", "epc"),
    ("scale", "weight"): ("waste_weight", "scale", "epc"),
    ("terminal", "batch"): ("waste_batch", "terminal", "batch"),
    ("terminal", "manifest"): ("waste_manifest", "terminal", "manifest"),
    ("air", "reading"): ("air", "station", None),
    ("camera", "frame"): ("video_frame", "camera", None),
}


def run_fleet(url: str, **options: object) -> FleetReport:
    config = FleetConfig(**options)  # type: ignore[arg-type]
    report = asyncio.run(Fleet(config).run(url))
    assert report.ok, report.errors
    return report


# A point whose identifier is a field is moved within its millisecond (devices.schema
# point_time): identities compare the device's millisecond.
MS = 1_000_000


def identity(message: Message) -> tuple[str, int, str, str, str]:
    measurement, _device_tag, key = MEASUREMENT[(message.family, message.kind)]
    key_value = str(message.body[key]) if key else ""
    if key == "epc":
        key_value = key_value.upper()
    at_ms = (message.ts_ns or 0) // MS
    return (measurement, at_ms, message.topic.split("/")[1], message.device, key_value)


def stored_identities(influxd: Influxd, db: str) -> Counter[tuple[str, int, str, str, str]]:
    found: Counter[tuple[str, int, str, str, str]] = Counter()
    for measurement, device_tag, key in set(MEASUREMENT.values()):
        for series in influxd.query(db, f'SELECT * FROM "{measurement}"'):
            columns = series["columns"]
            for row in series["values"]:
                record = dict(zip(columns, row, strict=True))
                found[
                    (
                        measurement,
                        int(record["time"]) // MS,
                        str(record["site"]),
                        str(record[device_tag]),
                        str(record[key]) if key else "",
                    )
                ] += 1
    return found


def expected_identities(report: FleetReport) -> Counter[tuple[str, int, str, str, str]]:
    return Counter(identity(m) for m in report.messages if (m.family, m.kind) in MEASUREMENT)


@pytest.fixture()
def db(influxd: Influxd) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    influxd.create_db(name)
    return name


@pytest.fixture()
def service(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str) -> HazwatchProcess:
    proc = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        # one simulated device sends a hundred faults a minute here, and every dead letter is
        # looked up; the per-source rate limit has tests of its own (test_deadletters.py)
        deadletter_burst_per_min="100000",
    )
    proc.start()
    yield proc
    proc.stop()


def republish(url_port: int, messages: list[Message]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"again-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    infos = [client.publish(m.topic, m.payload, qos=1) for m in messages]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def test_every_family_arrives_with_its_identity_and_a_redelivery_adds_nothing(
    service: HazwatchProcess, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    report = run_fleet(mosquitto.url, site="it-01", devices=2, rate=0, count=600, seed=1)
    expected = expected_identities(report)
    assert len({m.family for m in report.messages}) == 5  # rfid, scale, terminal, air, camera
    wait_for(lambda: stored_identities(influxd, db) == expected, 60, "every point stored")

    # Field values and timestamps, not just identities: air and camera spot checks.
    rows = influxd.query(db, 'SELECT pm25, station FROM "air"')
    stored = {(r[0], r[2]): r[1] for s in rows for r in s["values"]}
    for message in report.messages:
        if message.family == "air" and "pm25" in message.body:
            assert stored[(message.ts_ns, message.device)] == pytest.approx(message.body["pm25"])

    # The same messages again (a redelivery, a device resending): still one point each.
    republish(mosquitto.port, report.messages)
    wait_for(
        lambda: (
            "hazwatch_messages_total" in service.metrics()
            and _messages_total(service) >= 2 * len(report.messages)
        ),
        60,
        "the resent messages consumed",
    )
    assert stored_identities(influxd, db) == expected


def _messages_total(service: HazwatchProcess) -> float:
    total = 0.0
    for line in service.metrics().splitlines():
        if line.startswith("hazwatch_messages_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_bad_messages_become_dead_letters_with_reasons_and_never_points(
    service: HazwatchProcess, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    faults = FaultPlan.parse(
        "bad_json:0.05,missing_field:0.05,out_of_range:0.05,future_ts:0.05,bad_ts:0.03,"
        "bad_type:0.03,clock_behind:0.03,duplicate:0.03"
    )
    report = run_fleet(
        mosquitto.url, site="it-02", devices=1, rate=0, count=500, faults=faults, seed=2
    )
    expected_letters = report.expected_dead_letters()
    assert sum(expected_letters.values()) > 20
    expected = expected_identities(report)
    wait_for(lambda: stored_identities(influxd, db) == expected, 60, "accepted points stored")

    def letters() -> Counter[str]:
        out = service.cli("deadletters", "--json", "--limit", "10000")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        return Counter(r["reason"] for r in rows if r["topic"].startswith("hw/it-02/"))

    wait_for(lambda: letters() == expected_letters, 30, f"dead letters {expected_letters}")
    out = service.cli("deadletters", "--json", "--limit", "1")
    row = json.loads(out.stdout)
    assert row["raw_base64"] and row["message"] and row["time"].endswith("Z")
    # Human listing works too.
    assert service.cli("deadletters", "--limit", "3").returncode == 0


def test_nothing_is_lost_while_hazwatch_is_down_or_killed(
    service: HazwatchProcess, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    service.stop()  # a clean stop: the persistent session queues what arrives now
    first = run_fleet(mosquitto.url, site="it-03", devices=2, rate=0, count=800, seed=3)
    service.start()
    expected = expected_identities(first)
    wait_for(lambda: stored_identities(influxd, db) == expected, 60, "queued messages stored")

    # kill -9 in the middle of draining a backlog: redelivery fills in, nothing doubles.
    service.stop()
    second = run_fleet(mosquitto.url, site="it-03", devices=2, rate=0, count=3000, seed=4)
    service.start(wait_connected=False)
    wait_for(lambda: _messages_total(service) > 200, 60, "draining started")
    service.kill()
    service.start()
    expected += expected_identities(second)
    wait_for(lambda: stored_identities(influxd, db) == expected, 90, "all stored after kill -9")


def test_influxdb_outage_spools_and_replays_in_order(tmp_path: Path, mosquitto: Mosquitto) -> None:
    influx = Influxd(tmp_path / "own-influxd")
    influx.start()
    influx.create_db("outage")
    proc = HazwatchProcess(
        tmp_path / "hazwatch",
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"hazwatch-{uuid.uuid4().hex[:6]}",
        influx_url=influx.url,
        influx_api="v1",
        influx_db="outage",
    )
    proc.start()
    try:
        influx.stop()
        report = run_fleet(mosquitto.url, site="it-04", devices=1, rate=0, count=400, seed=5)
        spool = proc.workdir / "data" / "spool"
        wait_for(lambda: any(spool.glob("*.lp")), 60, "batches in the spool")
        influx.start()
        expected = expected_identities(report)
        wait_for(lambda: stored_identities(influx, "outage") == expected, 90, "spool replayed")
        wait_for(lambda: not any(spool.glob("*.lp")), 30, "spool emptied")
        health = proc.health()
        assert health["components"]["point_store"]["status"] == "up"  # type: ignore[index]
    finally:
        proc.stop()
        influx.stop()


def test_v2_write_api_path_against_a_real_server(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    proc = HazwatchProcess(
        tmp_path / "hazwatch",
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"hazwatch-{uuid.uuid4().hex[:6]}",
        influx_url=victoria.url,
        influx_api="v2",
        influx_token="test-token",
        influx_org="hazwatch",
        influx_bucket="hazwatch",
    )
    proc.start()
    try:
        site = f"v2-{uuid.uuid4().hex[:4]}"
        report = run_fleet(
            mosquitto.url, site=site, families=("air",), devices=3, rate=0, count=300, seed=6
        )
        expected = {(m.device, m.ts_ns // 1_000_000) for m in report.messages if "pm25" in m.body}

        def arrived() -> set[tuple[str, int]]:
            got: set[tuple[str, int]] = set()
            for series in victoria.export(f'air_pm25{{site="{site}"}}'):
                station = series["metric"]["station"]
                got.update((station, ts) for ts in series["timestamps"])
            return got

        wait_for(lambda: arrived() == expected, 60, "air points in the v2 server")
    finally:
        proc.stop()


def test_health_and_metrics_report_each_dependency(service: HazwatchProcess) -> None:
    health = service.health()
    assert health["status"] == "up"
    assert set(health["components"]) >= {"broker", "point_store", "state_store"}  # type: ignore[arg-type]
    metrics = service.metrics()
    for name in (
        "hazwatch_unacked_messages",
        "hazwatch_points_written_total",
        "hazwatch_batch_write_seconds",
    ):
        assert name in metrics


def test_broker_restart_loses_nothing_queued_or_in_flight(tmp_path: Path, influxd: Influxd) -> None:
    broker = Mosquitto(tmp_path / "own-mosquitto")
    broker.start()
    name = f"t_{uuid.uuid4().hex[:8]}"
    influxd.create_db(name)
    proc = HazwatchProcess(
        tmp_path / "hazwatch",
        mqtt_url=broker.url,
        mqtt_client_id="hazwatch-restart",
        influx_url=influxd.url,
        influx_api="v1",
        influx_db=name,
    )
    proc.start()
    try:
        first = run_fleet(broker.url, site="rs-01", devices=1, rate=0, count=300, seed=7)
        expected = expected_identities(first)
        wait_for(lambda: stored_identities(influxd, name) == expected, 60, "first part stored")

        # The broker restarts under a running hazwatch: it reconnects and resumes its session.
        broker.restart()
        wait_for(proc._broker_up, 60, "hazwatch reconnected")
        second = run_fleet(broker.url, site="rs-01", devices=1, rate=0, count=300, seed=8)
        expected += expected_identities(second)
        wait_for(lambda: stored_identities(influxd, name) == expected, 60, "second part stored")

        # Queued for the persistent session while hazwatch is down, across a broker restart.
        proc.stop()
        third = run_fleet(broker.url, site="rs-01", devices=1, rate=0, count=300, seed=9)
        broker.restart()
        proc.start()
        expected += expected_identities(third)
        wait_for(lambda: stored_identities(influxd, name) == expected, 60, "queued part stored")
    finally:
        proc.stop()
        broker.stop()
