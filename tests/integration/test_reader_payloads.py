"""Readers' own payloads through Mosquitto → `hazwatch serve`: Impinj R700 and Zebra FX events.

Never publish what the readers would not: one Impinj ReaderEvent per MQTT message on the
reader's eventTopic, Zebra tag data events one at a time or batched in an array, each shaped as
docs/payloads.md ("Readers' own payloads") quotes the vendors; the registry says who speaks what.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration

SITE = "vp-01"  # a site of this test's own: the session's broker is shared
IMPINJ, ZEBRA, OWN = "imp-in", "zfx-out", "own-in"
EPC = "E28068940000500A1B2C3D4E"
BATCH = "VP00001"
REGISTRY = f"""
[[site]]
id = "{SITE}"
name = "读写器接入测试"
role = "producer"

[[reader]]
id = "{IMPINJ}"
site = "{SITE}"
location = "storage_in"
payload = "impinj-r700"

[[reader]]
id = "{ZEBRA}"
site = "{SITE}"
location = "storage_out"
payload = "zebra-fx"

[[reader]]
id = "{OWN}"
site = "{SITE}"
location = "storage_in"

[[scale]]
id = "s1"
site = "{SITE}"
location = "generation"
"""


def iso_utc(ts_ns: int) -> str:
    """RFC 3339 UTC with nine fraction digits, as an R700 writes `timestamp`."""
    seconds, frac = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def iso_zebra(ts_ns: int) -> str:
    """ISO 8601 in China time with the offset as a Zebra FX writes it: +0800, milliseconds."""
    seconds, frac = divmod(ts_ns + 8 * 3600 * 1_000_000_000, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac // 10**6:03d}+0800"


def impinj_event(ts_ns: int, rssi_cdbm: int, antenna: int, *, base64url: bool) -> dict[str, Any]:
    tag: dict[str, Any] = {"antennaPort": antenna, "peakRssiCdbm": rssi_cdbm}
    if base64url:  # the reader's default: `epc` enabled, `epcHex` not
        tag["epc"] = base64.urlsafe_b64encode(bytes.fromhex(EPC)).decode().rstrip("=")
    else:
        tag["epcHex"] = EPC
    return {
        "timestamp": iso_utc(ts_ns),
        "hostname": "impinj-14-4a-8b",
        "eventType": "tagInventory",
        "tagInventoryEvent": tag,
    }


def zebra_event(ts_ns: int, rssi: int, num: int) -> dict[str, Any]:
    return {
        "data": {"eventNum": num, "format": "epc", "idHex": EPC.lower(), "antenna": 2,
                 "peakRssi": rssi, "reads": 4},
        "timestamp": iso_zebra(ts_ns),
        "type": "INVENTORY",
    }  # fmt: skip


def publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, one publisher: the broker keeps their order."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vp-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()


def topic(device: str, family: str = "rfid", kind: str = "read") -> str:
    return f"hw/{SITE}/{family}/{device}/{kind}"


@pytest.fixture()
def serve(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, sqlite_url: str
) -> Iterator[HazwatchProcess]:
    db = f"vendor_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    hazwatch = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch", mosquitto.url, influxd.url, db, state_url=sqlite_url
    )
    hazwatch.env["TEST_INFLUX_DB"] = db
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    loaded = hazwatch.cli("registry", "load", str(registry))
    assert loaded.returncode == 0, loaded.stderr
    hazwatch.start()
    try:
        yield hazwatch
    finally:
        hazwatch.stop()


def test_impinj_and_zebra_events_become_waste_reads_and_custody_events(
    serve: HazwatchProcess, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    db = serve.env["TEST_INFLUX_DB"]
    t0 = time.time_ns() - 90 * 1_000_000_000  # device clocks right, the story 90 s ago
    t0 -= t0 % 1_000_000
    ms = 1_000_000
    registration = {
        "ts": t0 // ms, "epc": EPC, "batch": BATCH, "waste_code": "900-249-08",
        "waste_name": "废矿物油", "waste_category": "HW08", "form": "liquid", "hazard": ["T"],
        "producer": SITE, "container_type": "200L钢桶", "handler": "张三",
    }  # fmt: skip
    messages = [
        (topic("s1", "scale", "weight"), {"ts": t0 // ms - 2000, "epc": EPC, "net_kg": 150.0}),
        (topic("t1", "terminal", "batch"), registration),
    ]
    # The drum carried through the storage-in door: an R700 reports it 25 times in a second,
    # one ReaderEvent a message, RSSI rising then falling; an inventoryStatus event among them.
    door_in = t0 + 20_000 * ms
    impinj = [
        impinj_event(door_in + i * 40 * ms, -6500 + 150 * min(i, 24 - i), 1 + i % 2,
                     base64url=i % 2 == 0)
        for i in range(25)
    ]  # fmt: skip
    status = {"timestamp": iso_utc(door_in), "eventType": "inventoryStatus",
              "inventoryStatusEvent": {"status": "running"}}  # fmt: skip
    messages += [(topic(IMPINJ), e) for e in impinj[:10]]
    messages += [(topic(IMPINJ), status)]
    messages += [(topic(IMPINJ), e) for e in impinj[10:]]
    # ... and out through the storage-out door a minute later: a Zebra FX with batching on
    # sends one array of 16 events and a heartbeat, then 4 events one by one, a lone gpi event.
    door_out = t0 + 60_000 * ms
    zebra = [zebra_event(door_out + i * 50 * ms, -66 + min(i, 19 - i), 100 + i) for i in range(20)]
    heartbeat = {"type": "heartbeat", "timestamp": iso_zebra(door_out), "component": "RG",
                 "eventNum": 7, "data": {"system": {"cpu": {"system": 9}}}}  # fmt: skip
    gpi = {"type": "gpi", "timestamp": iso_zebra(door_out), "data": {"pin": 1, "state": "HIGH"}}
    messages += [(topic(ZEBRA), [*zebra[:8], heartbeat, *zebra[8:16]])]
    messages += [(topic(ZEBRA), e) for e in zebra[16:]]
    messages += [(topic(ZEBRA), gpi)]
    # a TID where the EPC belongs, and a reader left at hazwatch's payload sent an R700's event
    tid = {**zebra[0], "data": {"format": "tid", "idHex": "e2801170200014cd9b5a08ec"}}
    messages += [(topic(ZEBRA), tid), (topic(OWN), impinj[0])]
    publish(mosquitto, [(t, json.dumps(body).encode()) for t, body in messages])

    # every tag read is one waste_read point, at the reader the topic names, in dBm
    wait_for(lambda: influxd.count(db, "waste_read") == 45, 60, "45 waste_read points")
    rows = influxd.query(db, "SELECT * FROM waste_read")[0]
    points = [dict(zip(rows["columns"], v, strict=True)) for v in rows["values"]]
    by_reader = {r: [p for p in points if p["reader"] == r] for r in (IMPINJ, ZEBRA)}
    # each read its own point, in the millisecond the reader said (a point whose EPC is a field
    # is moved within its millisecond: devices.schema point_time)
    assert len({p["time"] for p in points}) == 45
    in_ms = [p["time"] // ms for p in by_reader[IMPINJ]]
    assert in_ms == [(door_in + i * 40 * ms) // ms for i in range(25)]
    out_ms = [p["time"] // ms for p in by_reader[ZEBRA]]
    assert out_ms == [(door_out + i * 50 * ms) // ms for i in range(20)]
    assert {p["epc"] for p in points} == {EPC}
    assert by_reader[IMPINJ][12]["rssi"] == pytest.approx(-47.0)  # -6500 + 150*12 cdBm
    assert [p["antenna"] for p in by_reader[IMPINJ][:2]] == [1, 2]
    assert by_reader[ZEBRA][0]["rssi"] == -66.0 and by_reader[ZEBRA][0]["antenna"] == 2
    assert {p["location_kind"] for p in by_reader[IMPINJ]} == {"storage_in"}
    assert {p["location_kind"] for p in by_reader[ZEBRA]} == {"storage_out"}

    # the drum entered storage and was dispatched: custody events at the two doors
    def stages() -> list[tuple[str, str]] | None:
        answer = httpx.get(f"{serve.api}/api/batches/{BATCH}/trace", timeout=5)
        if answer.status_code != 200:
            return None
        events = [(e["stage"], e["device"]) for e in answer.json()["events"]]
        return events if ("DISPATCHED", ZEBRA) in events else None

    events = wait_for(stages, 60, "the drum's custody events")
    assert events[0][0] == "GENERATED"
    assert ("STORED", IMPINJ) in events
    assert events.index(("STORED", IMPINJ)) < events.index(("DISPATCHED", ZEBRA))

    # heartbeats, GPI and inventory-status events are no dead letters; the two wrong ones are
    def letters() -> list[dict[str, Any]]:
        out = serve.cli("deadletters", "--json", "--limit", "10000")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        return [r for r in rows if r["topic"].startswith(f"hw/{SITE}/")]

    found = wait_for(lambda: len(letters()) >= 2 and letters(), 30, "two dead letters")
    assert sorted((r["topic"], r["reason"]) for r in found) == [
        (topic(OWN), "missing_field"),
        (topic(ZEBRA), "bad_value"),
    ]
    own = next(r for r in found if r["topic"] == topic(OWN))
    assert 'registered with payload = "impinj-r700"?' in own["message"]
    tid_letter = next(r for r in found if r["topic"] == topic(ZEBRA))
    assert "data.format is 'tid'" in tid_letter["message"]
