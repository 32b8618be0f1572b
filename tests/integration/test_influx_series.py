"""Series bounded by devices (#19) on a real InfluxDB: the EPC, batch, manifest and alert
subject are fields, yet a bulk inventory's reads of one millisecond stay one point each, a
redelivered message overwrites its points, and the series are the readers', not the drums'.

Never count on VictoriaMetrics for overwrites: it keeps every sample (docs/payloads.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest

from hazwatch.alerts.model import Alert, AlertState, Severity
from hazwatch.alerts.publish import alert_point
from hazwatch.base.points import Point
from hazwatch.base.retry import RetryPolicy
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.influx_v1 import InfluxV1Writer
from hazwatch.ingest.influx_v2 import InfluxV2Writer
from tests.services import Influxd, VictoriaMetrics, wait_for

pytestmark = pytest.mark.integration

MS = 1_000_000
T_MS = 1_796_000_000_123  # one millisecond of a bulk inventory, 2026-11-30
NOW_NS = (T_MS + 60_000) * MS
QUICK = RetryPolicy(max_s=3, first_delay_s=0.05, max_delay_s=0.5)
SITE = "jy-0012"
# crc32 % 10^6 of both is 652941: one offset, parted only within one message (spread)
TWINS = ("E2801100000000000000063A", "E28011000000000000000879")


class Impinj(NoRegistry):
    def reader_payload(self, site: str, reader: str) -> str:
        return "impinj-r700"


def inventory(n: int) -> list[Point]:
    """A reader reading `n` drums in one millisecond, each its own message (hazwatch's own
    payload), then an Impinj reader's one message holding the twins, and a scale weighing
    two drums at one instant: every point as the service decodes it."""
    points: list[Point] = []
    for i in range(n):
        body = {"ts": T_MS, "epc": f"E2801160{i:016X}", "rssi": -50.0 - i % 7, "antenna": 1}
        topic = f"hw/{SITE}/rfid/gate-03/read"
        points += decode(topic, orjson.dumps(body), NoRegistry(), now_ns=NOW_NS).points
    events = [
        {
            "timestamp": "2026-11-30T00:53:20.123Z",
            "eventType": "tagInventory",
            "tagInventoryEvent": {"epcHex": epc, "antennaPort": 2},
        }
        for epc in TWINS
    ]
    topic = f"hw/{SITE}/rfid/dock-1/read"
    points += decode(topic, orjson.dumps(events), Impinj(), now_ns=NOW_NS).points
    for epc, kg in (("E28011600000000000000001", 20.5), ("E28011600000000000000002", 31.0)):
        body = {"ts": T_MS, "epc": epc, "net_kg": kg}
        topic = f"hw/{SITE}/scale/s1/weight"
        points += decode(topic, orjson.dumps(body), NoRegistry(), now_ns=NOW_NS).points
    for n in range(3):  # three alerts of one rule changing at one instant
        alert = Alert(
            f"a-{n}", "batch_stuck", f"B-{n}", Severity.MAJOR, "stuck", SITE, AlertState.OPEN,
            T_MS * MS, T_MS * MS,
        )  # fmt: skip
        points.append(alert_point(alert))
    return points


@pytest.fixture()
def db(influxd: Influxd) -> Iterator[str]:
    name = f"series_{uuid.uuid4().hex[:10]}"
    yield name
    influxd.query(name, f'DROP DATABASE "{name}"')


def test_reads_of_one_millisecond_stay_apart_and_a_redelivery_overwrites(
    influxd: Influxd, db: str
) -> None:
    points = inventory(40)
    writer = InfluxV1Writer(influxd.url, db, retry=QUICK)
    try:
        assert writer.write([p.to_line() for p in points]) == []
        # the whole inventory delivered again, as a broker does after a lost PUBACK
        again = inventory(40)
        assert [p.to_line() for p in again] == [p.to_line() for p in points]
        assert writer.write([p.to_line() for p in again]) == []
    finally:
        writer.close()
    rows = influxd.query(db, 'SELECT "epc", "rssi" FROM "waste_read" GROUP BY "reader"')
    by_reader = {s["tags"]["reader"]: s["values"] for s in rows}
    gate = by_reader["gate-03"]
    assert len(gate) == 40 and len({epc for _, epc, _ in gate}) == 40
    assert {t // MS for t, _, _ in gate} == {T_MS}  # all in the device's millisecond
    assert sorted(epc for _, epc, _ in by_reader["dock-1"]) == sorted(TWINS)
    weights = influxd.query(db, 'SELECT "epc", "net_kg" FROM "waste_weight"')[0]["values"]
    assert sorted(kg for _, _, kg in weights) == [20.5, 31.0]
    alerts = influxd.query(db, 'SELECT "subject" FROM "alert"')[0]["values"]
    assert sorted(s for _, s in alerts) == ["B-0", "B-1", "B-2"]
    # one series per reader, scale and rule: the drums are not series
    series = [row[0] for s in influxd.query(db, "SHOW SERIES") for row in s["values"]]
    assert sorted(series) == [
        f"alert,rule=batch_stuck,severity=major,site={SITE}",
        f"waste_read,location_kind=unknown,reader=dock-1,site={SITE}",
        f"waste_read,location_kind=unknown,reader=gate-03,site={SITE}",
        f"waste_weight,scale=s1,site={SITE}",
    ]
    for tag in ("epc", "batch", "subject", "manifest"):
        assert not influxd.query(db, f'SHOW TAG VALUES WITH KEY = "{tag}"')


def test_the_v2_writer_keeps_each_read_of_one_millisecond(victoria: VictoriaMetrics) -> None:
    site = f"s-{uuid.uuid4().hex[:8]}"
    points = [p for p in inventory(20) if p.measurement == "waste_read"]
    for point in points:
        point.tags["site"] = site
    writer = InfluxV2Writer(victoria.url, "token", "hazwatch", "hazwatch", retry=QUICK)
    try:
        assert writer.write([p.to_line() for p in points]) == []
    finally:
        writer.close()

    def samples() -> int:
        found = victoria.export(f'{{__name__="waste_read_rssi",site="{site}"}}')
        return sum(len(s["values"]) for s in found if s["metric"]["reader"] == "gate-03")

    # VictoriaMetrics keeps milliseconds: twenty samples of one series at one instant
    wait_for(lambda: samples() == 20, 20, "20 rssi samples of gate-03")
