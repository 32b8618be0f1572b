"""`hazwatch migrate influx` on a real InfluxDB 1.x holding points in the shape before #19 (EPC,
batch, manifest and alert subject as tags): a dry run changes nothing, the copy is what the
service writes now, an interrupted copy resumes, a second run does nothing, and the old
series go only with --drop-old.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.points import to_line
from hazwatch.base.retry import RetryPolicy
from hazwatch.base.statedb import StateDB
from hazwatch.commands.migrate import NS_PER_H, InfluxMigration, v1_drop
from hazwatch.devices.schema import point_time
from hazwatch.ingest.influx_v1 import InfluxV1Writer
from hazwatch.ingest.influxql import InfluxQLReader
from hazwatch.ingest.interfaces import RejectedLine
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd

pytestmark = pytest.mark.integration

MS = 1_000_000
T0 = 1_764_000_000_000 * MS  # 2025-11-24T16:00:00Z, a whole millisecond
SITE = "jy-0012"
DRUMS = [f"E2801160{n:016X}" for n in range(20)]


def old_lines() -> list[str]:
    """Three days of a center's points as hazwatch wrote them before #19."""
    lines = []
    for day in range(3):
        at = T0 + day * 24 * NS_PER_H
        for n, epc in enumerate(DRUMS):  # a bulk inventory: twenty drums in one millisecond
            tags = {"site": SITE, "reader": "gate-03", "location_kind": "storage_in", "epc": epc}
            lines.append(to_line("waste_read", tags, {"rssi": -50.0 - n % 5, "antenna": 1}, at))
        lines.append(
            to_line("waste_read", {"site": SITE, "reader": "gate-04", "location_kind": "unknown",
                                   "epc": DRUMS[0]}, {"read": True}, at + 5 * MS)
        )  # fmt: skip
        lines.append(
            to_line("waste_weight", {"site": SITE, "scale": "s1", "epc": DRUMS[1]},
                    {"net_kg": 40.0, "batch": f"B{day}"}, at + 7 * MS)
        )  # fmt: skip
        for b in (f"B{day}a", f"B{day}b"):  # two registrations at one instant
            registration = {"epc": DRUMS[2], "waste_name": "废矿物油"}
            lines.append(
                to_line("waste_batch", {"site": SITE, "terminal": "t1", "waste_code": "900-249-08",
                                        "batch": b}, registration, at)
            )  # fmt: skip
            lines.append(
                to_line("custody", {"site": SITE, "stage": "GENERATED", "waste_code": "900-249-08",
                                    "batch": b}, {"event_id": f"ev-{b}", "device": "t1"}, at)
            )  # fmt: skip
        lines.append(
            to_line("waste_manifest", {"site": SITE, "terminal": "t1", "manifest": f"MF{day}"},
                    {"batches": f'["B{day}a"]', "batch_count": 1}, at)
        )  # fmt: skip
        lines.append(
            to_line("alert", {"site": SITE, "rule": "batch_stuck", "severity": "major",
                              "subject": f"B{day}a"}, {"alert_id": f"a{day}", "state": "open"}, at)
        )  # fmt: skip
        lines.append(to_line("air", {"site": SITE, "station": "aq-07", "interval": "rtd"},
                             {"pm25": 30.0}, at))  # fmt: skip
    return lines


def rows(influxd: Influxd, db: str, q: str) -> list[list[object]]:
    return [row for series in influxd.query(db, q) for row in series["values"]]


def old_count(influxd: Influxd, db: str, measurement: str, tag: str) -> int:
    return len(rows(influxd, db, f'SELECT * FROM "{measurement}" WHERE "{tag}"::tag =~ /./'))


@pytest.fixture()
def old_db(influxd: Influxd) -> Iterator[str]:
    name = f"old_{uuid.uuid4().hex[:8]}"
    writer = InfluxV1Writer(influxd.url, name, retry=RetryPolicy(max_s=3))
    try:
        assert writer.write(old_lines()) == []
    finally:
        writer.close()
    yield name
    influxd.query(name, f'DROP DATABASE "{name}"')


def cli(tmp_path: Path, influxd: Influxd, db: str) -> HazwatchProcess:
    return HazwatchProcess(
        tmp_path / "hazwatch",
        influx_url=influxd.url,
        influx_api="v1",
        influx_db=db,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
    )


def test_dry_run_copy_resume_and_drop_old(influxd: Influxd, old_db: str, tmp_path: Path) -> None:
    hazwatch = cli(tmp_path, influxd, old_db)
    before = rows(influxd, old_db, 'SELECT * FROM "waste_read"')
    dry = hazwatch.cli("migrate", "influx", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    said = dict(line.split(": ", 1) for line in dry.stdout.splitlines())
    assert set(said) == {
        "waste_read", "waste_weight", "waste_batch", "waste_manifest", "custody", "alert",
    }  # fmt: skip
    assert said["waste_read"].startswith(
        "at least 60 points with the tag epc, 2025-11-24T16:00:00.000Z"  # 3 bare reads: no rssi
    )
    assert "would rewrite them with epc as a field, in 3 chunks of 24 h" in said["waste_read"]
    assert "old series kept" in said["alert"]
    assert rows(influxd, old_db, 'SELECT * FROM "waste_read"') == before  # nothing changed

    # interrupted after its first chunk (InfluxDB gone): the next run resumes after it
    reader = InfluxQLReader(influxd.url, old_db)
    writer = InfluxV1Writer(influxd.url, old_db)
    calls = []

    def write_then_fail(lines: Sequence[str]) -> list[RejectedLine]:
        calls.append(len(lines))
        if len(calls) > 1:
            raise StoreUnavailable("InfluxDB went away")
        return writer.write(lines)

    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        first = InfluxMigration(
            hazwatch.env["HAZWATCH_INFLUX_URL"] + "/" + old_db,
            reader.query,
            write_then_fail,
            v1_drop(reader.query),
            db,
        )
        with pytest.raises(StoreUnavailable):
            first.copy(first.survey("waste_read"))
        assert calls == [21, 21]
        assert first.survey("waste_read").done_until_ns == T0 - T0 % (24 * NS_PER_H) + 24 * NS_PER_H
    finally:
        db.close()
        reader.close()
        writer.close()
    resumed = hazwatch.cli("migrate", "influx", "--dry-run", "-m", "waste_read")
    assert "in 2 chunks of 24 h, resumed at 2025-11-25T00:00:00.000Z" in resumed.stdout

    done = hazwatch.cli("migrate", "influx")
    assert done.returncode == 0, done.stderr
    assert "waste_read: 42 points rewritten now, 63 in all" in done.stdout
    # the copy is what the service writes now: EPC a field, time moved by it, none merged
    new = rows(
        influxd, old_db, 'SELECT "epc", "rssi" FROM "waste_read" WHERE "epc"::tag !~ /./'
    )  # fmt: skip
    assert len(new) == 63
    assert {(t, epc) for t, epc, _ in new if epc in DRUMS[2:]} == {
        (point_time(T0 + day * 24 * NS_PER_H, epc), epc) for day in range(3) for epc in DRUMS[2:]
    }
    series = {r[0] for r in rows(influxd, old_db, 'SHOW SERIES FROM "waste_read"')}
    assert "waste_read,location_kind=storage_in,reader=gate-03,site=jy-0012" in series
    custody = rows(
        influxd, old_db, 'SELECT "batch", "event_id" FROM "custody" WHERE "batch"::tag !~ /./'
    )
    assert sorted(b for _, b, _ in custody) == sorted(f"B{d}{x}" for d in range(3) for x in "ab")
    alerts = rows(influxd, old_db, 'SELECT "subject" FROM "alert" WHERE "subject"::tag !~ /./')
    assert sorted(s for _, s in alerts) == ["B0a", "B1a", "B2a"]
    assert old_count(influxd, old_db, "waste_read", "epc") == 63  # the old ones are kept

    again = hazwatch.cli("migrate", "influx")
    assert again.returncode == 0, again.stderr
    assert "waste_read: 0 points rewritten now, 63 in all" in again.stdout
    assert len(rows(influxd, old_db, 'SELECT * FROM "waste_read"')) == 126

    dropped = hazwatch.cli("migrate", "influx", "--drop-old")
    assert dropped.returncode == 0, dropped.stderr
    assert "waste_read: old series dropped" in dropped.stdout
    for measurement, tag in (("waste_read", "epc"), ("custody", "batch"), ("alert", "subject")):
        assert old_count(influxd, old_db, measurement, tag) == 0
    assert len(rows(influxd, old_db, 'SELECT * FROM "waste_read"')) == 63
    assert len(rows(influxd, old_db, 'SELECT * FROM "air"')) == 3  # never touched
    after = hazwatch.cli("migrate", "influx", "--dry-run", "-m", "waste_read")
    assert after.stdout.startswith("waste_read: nothing in the old shape (old series dropped")


def test_drop_old_refuses_before_the_copy(influxd: Influxd, old_db: str, tmp_path: Path) -> None:
    hazwatch = cli(tmp_path, influxd, old_db)
    reader = InfluxQLReader(influxd.url, old_db)
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        migration = InfluxMigration("t", reader.query, lambda _: [], v1_drop(reader.query), db)
        with pytest.raises(Exception, match="not every old point is copied yet"):
            migration.drop_old(migration.survey("custody"), 0)
    finally:
        db.close()
        reader.close()
    assert old_count(influxd, old_db, "custody", "batch") == 6
    unknown = hazwatch.cli("migrate", "influx", "-m", "air")
    assert unknown.returncode == 2 and "no old schema to move for air" in unknown.stderr
