"""air_hourly on both state stores: per-pollutant rows of the old layout migrate, a redelivered
batch changes nothing, and a kill -9 between two batches loses nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.streams.air import aqi
from hazwatch.streams.air.processor import AirProcessor, readings_of
from hazwatch.streams.air.store import MIGRATIONS, AirStore

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
HOUR0 = 1_795_478_400 * 10**9  # 2026-11-24T00:00Z
NOW = HOUR0 + 3 * 24 * NS_H
LATER = NOW + 16 * NS_MIN
TABLES = ("air_reading", "air_hour", "air_hour_open", "air_station", "air_hour_result")
Results = dict[tuple[str, int], dict[str, object]]


def messages(first_min: int, last_min: int) -> list[Decoded]:
    """aq-1's HJ 212 minute data (pm25 flagged M now and then) and aq-2's JSON readings."""
    out = []
    for m in range(first_min, last_min):
        values = {"pm25": 20.0 + (m * 7) % 31, "no2": 30.0 + (m * 5) % 17, "o3": 90.0 + m % 40}
        flags = {"pm25": "M"} if m % 11 == 0 else None
        packet = hj212.data_packet("MN1", "2051", HOUR0 + m * NS_MIN, values, flags=flags)
        out.append(decode("hw/s1/air/aq-1/hj212", hj212.build(packet), NoRegistry(), now_ns=NOW))
        body = {"ts": (HOUR0 + m * NS_MIN) // 10**6 + 30_000, "pm25": 60.0 - m % 23, "co": 1.5}
        out.append(decode("hw/s1/air/aq-2/reading", orjson.dumps(body), NoRegistry(), now_ns=NOW))
    return out


def batches() -> list[list[Decoded]]:
    data = messages(0, 190)
    return [data[start : start + 50] for start in range(0, len(data), 50)]


def results(points: list[Point]) -> Results:
    """Each hour's last point (InfluxDB keeps one per identity)."""
    return {(p.tags["station"], p.ts_ns): dict(p.fields) for p in points}


def reference(tmp_path: Path, batches: list[list[Decoded]]) -> Results:
    """What one processor that runs all along makes of these batches, after a final tick."""
    proc = AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 'reference.db'}")))
    points = [p for batch in batches for p in proc.process(batch, NOW)]
    return results(points + proc.tick(LATER))


def snapshot(db: StateDB) -> dict[str, list[str]]:
    return {t: sorted(repr(tuple(r)) for r in db.query(f"SELECT * FROM {t}")) for t in TABLES}


def test_per_pollutant_rows_migrate_to_one_row_per_reading(state_url: str, tmp_path: Path) -> None:
    old, new = messages(0, 70), messages(70, 130)
    db = StateDB(state_url)
    db.migrate("air_hourly", MIGRATIONS[:3])  # what the one-row-per-pollutant version left
    narrow = [
        (p.tags["site"], p.tags["station"], p.tags["interval"], p.ts_ns, name, p.fields[name])
        for d in old
        for p in d.points
        for name in aqi.POLLUTANTS
        if name in p.fields and p.fields.get(f"{name}_flag", "N") == "N"
    ]
    db.executemany(
        "INSERT INTO air_reading (site, station, source, ts_ns, pollutant, value) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        narrow,
    )
    db.executemany(
        "INSERT INTO air_hour_open (site, station, hour_ns) VALUES (?, ?, ?)",
        sorted({(r[0], r[1], r[3] - r[3] % NS_H) for r in narrow}),
    )
    for station in ("aq-1", "aq-2"):
        db.execute(
            "INSERT INTO air_station (site, station, newest_ns, closed_ns, seen_ns) "
            "VALUES ('s1', ?, ?, 0, ?)",
            (station, max(r[3] for r in narrow if r[1] == station), NOW),
        )

    proc = AirProcessor(AirStore(db))
    got = db.query(
        "SELECT site, station, source, ts_ns, so2, no2, pm10, co, o3, pm25 FROM air_reading "
        "ORDER BY site, station, source, ts_ns"
    )
    assert [tuple(r) for r in got] == sorted(readings_of(old))
    points = proc.process(old, NOW)  # redelivered: the migrated rows keep their identity
    assert db.query("SELECT COUNT(*) FROM air_reading")[0][0] == len(got)
    points += proc.process(new, NOW) + proc.tick(LATER)
    db.close()
    assert results(points) == reference(tmp_path, [old, new])


def test_a_redelivered_batch_changes_nothing(state_url: str) -> None:
    db = StateDB(state_url)
    proc = AirProcessor(AirStore(db))
    for batch in batches():
        first = results(proc.process(batch, NOW))
        state = snapshot(db)
        again = results(proc.process(batch, NOW))
        assert snapshot(db) == state
        assert all(first.get(hour) == fields for hour, fields in again.items())
    db.close()


CHILD = """
import sys
import orjson
from hazwatch.base.statedb import StateDB
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore
from tests.integration.test_air_hourly_store import NOW, batches

proc = AirProcessor(AirStore(StateDB(sys.argv[1])))
for batch in batches()[: int(sys.argv[2])]:
    points = proc.process(batch, NOW)  # returned: committed, the consumer acks the batch now
    print(orjson.dumps([[p.tags, p.fields, p.ts_ns] for p in points]).decode(), flush=True)
sys.stdin.read()  # idle between two batches until killed
"""


def test_kill_9_between_batches_loses_nothing(state_url: str, tmp_path: Path) -> None:
    acked = 3
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, state_url, str(acked)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline() for _ in range(acked)]
    finally:
        child.kill()  # SIGKILL
        child.wait(timeout=30)
    points = [
        Point("air_hourly", tags, fields, ts_ns)
        for line in lines
        for tags, fields, ts_ns in orjson.loads(line)
    ]
    db = StateDB(state_url)
    # the restarted service: the broker redelivers only unacked batches
    proc = AirProcessor(AirStore(db))
    for batch in batches()[acked:]:
        points += proc.process(batch, NOW)
    points += proc.tick(LATER)
    db.close()
    assert results(points) == reference(tmp_path, batches())
