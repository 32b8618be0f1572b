"""Retention on a real InfluxDB 1.x: `hazwatch migrate retention` creates each policy (a dry
run changes nothing, a second run does nothing, a changed setting alters one), copies what
the default policy held; the writer puts each point in its measurement's policy and the reader
reads it back there; and the per-minute video summary computed from the stored frames is the
one computed here independently."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazwatch.base.points import Point, to_line
from hazwatch.ingest.influx_v1 import InfluxV1Writer
from hazwatch.ingest.influxql import InfluxQLReader
from hazwatch.ingest.retention import POLICIES, POLICY_OF, RetentionSettings, days_of
from hazwatch.streams.video.minutes import NS_PER_MIN
from hazwatch.streams.video.processor import sum_minutes
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd

pytestmark = pytest.mark.integration

S = 1_000_000_000
SITE = "jy-0012"


@pytest.fixture()
def db(influxd: Influxd) -> Iterator[str]:
    name = f"ret_{uuid.uuid4().hex[:8]}"
    influxd.create_db(name)
    yield name
    influxd.query(name, f'DROP DATABASE "{name}"')


def policies(influxd: Influxd, db: str) -> dict[str, str]:
    series = influxd.query(db, f'SHOW RETENTION POLICIES ON "{db}"')
    return {row[0]: row[1] for s in series for row in s["values"]}


def count(influxd: Influxd, db: str, source: str) -> int:
    series = influxd.query(db, f"SELECT count(*) FROM {source}")
    return max((int(v or 0) for s in series for v in s["values"][0][1:]), default=0)


def test_migrate_creates_the_policies_idempotently_and_points_land_in_them(
    influxd: Influxd, db: str, tmp_path: Path
) -> None:
    now = time.time_ns() // S * S
    # what an earlier version wrote to the default policy: a frame, and an old-shape read
    before = [
        to_line("video_frame", {"site": SITE, "camera": "cam-1"}, {"seq": 1}, now - 3600 * S),
        to_line("waste_read", {"site": SITE, "reader": "r", "epc": "E1"}, {"rssi": -5.0}, now),
    ]
    plain = InfluxV1Writer(influxd.url, db)
    assert plain.write(before) == []
    hazwatch = HazwatchProcess(
        tmp_path / "hw",
        influx_url=influxd.url,
        influx_api="v1",
        influx_db=db,
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
    )
    dry = hazwatch.cli("migrate", "retention", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert 'CREATE RETENTION POLICY "video_raw"' in dry.stdout
    assert set(policies(influxd, db)) == {"autogen"}  # the dry run changed nothing

    done = hazwatch.cli("migrate", "retention")
    assert done.returncode == 0, done.stderr
    have = policies(influxd, db)
    days = days_of(RetentionSettings())
    for policy in POLICIES:
        assert have[policy.name] == f"{days[policy.name] * 24}h0m0s"
    assert count(influxd, db, '"video_raw"."video_frame"') == 1  # copied from autogen
    assert count(influxd, db, '"records"."waste_read"') == 0  # old shape: left for migrate influx

    again = hazwatch.cli("migrate", "retention")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    hazwatch.env["HAZWATCH_RETENTION__STATUS_DAYS"] = "30"
    altered = hazwatch.cli("migrate", "retention")
    assert 'ALTER RETENTION POLICY "status"' in altered.stdout
    assert policies(influxd, db)["status"] == "720h0m0s"

    writer = InfluxV1Writer(influxd.url, db, policies=POLICY_OF)
    reader = InfluxQLReader(influxd.url, db, policies=POLICY_OF)
    hour = now - now % (3600 * S) - 3600 * S
    lines = [
        to_line("video_frame", {"site": SITE, "camera": "cam-2"}, {"seq": 7}, now),
        to_line("air", {"site": SITE, "station": "aq-1", "interval": "rtd"}, {"pm25": 3.0}, now),
        to_line("air_hourly", {"site": SITE, "station": "aq-1"}, {"aqi": 80, "pm25": 9.0}, hour),
        to_line(
            "device_status",
            {"site": SITE, "family": "camera", "device": "c"},
            {"online": True},
            now,
        ),
        to_line("custody", {"site": SITE, "stage": "STORED"}, {"batch": "B1"}, now),
    ]
    assert writer.write(lines) == []
    assert writer.routes is not None and not writer.routes.missing
    for measurement in ("video_frame", "air", "air_hourly", "device_status", "custody"):
        policy = POLICY_OF[measurement]
        assert count(influxd, db, f'"{policy}"."{measurement}"') >= 1, measurement
    assert count(influxd, db, '"autogen"."air"') == 0  # nothing new in the default policy
    assert [r["seq"] for r in reader.select("video_frame", tags={"camera": "cam-2"})] == [7]
    # an hour computed again replaces its point in its policy (the DELETE reaches it)
    again_hour = Point("air_hourly", {"site": SITE, "station": "aq-1"}, {"aqi": 81}, hour)
    again_hour.replaces = True
    assert writer.write([again_hour.to_line()]) == []
    (row,) = reader.select("air_hourly", tags={"station": "aq-1"})
    assert row["aqi"] == 81 and "pm25" not in row
    writer.close()
    reader.close()
    plain.close()


def test_the_minute_summary_from_stored_frames_is_right(influxd: Influxd, db: str) -> None:
    InfluxV1Writer(influxd.url, db).close()
    hazwatch_days = days_of(RetentionSettings())
    for policy, days in hazwatch_days.items():
        influxd.query(
            db, f'CREATE RETENTION POLICY "{policy}" ON "{db}" DURATION {days * 24}h REPLICATION 1'
        )
    writer = InfluxV1Writer(influxd.url, db, policies=POLICY_OF)
    reader = InfluxQLReader(influxd.url, db, policies=POLICY_OF)
    start = (time.time_ns() - 3600 * S) // NS_PER_MIN * NS_PER_MIN
    frames = []
    for i in range(150):  # 0.5 s apart: a minute of 120 frames, and 30 of the next
        fields = {
            "seq": i,
            "brightness": 90.0 + i % 11,
            "sharpness": 700.0 + (i * 7) % 40,
            "motion": (i % 9) / 50,
            "occlusion": 0.3 if i % 4 == 0 else 0.0,
        }
        frames.append((start + i * S // 2, fields))
    lines = [to_line("video_frame", {"site": SITE, "camera": "cam-9"}, f, t) for t, f in frames]
    assert writer.write(lines) == []
    minutes = [(SITE, "cam-9", start, False), (SITE, "cam-9", start + NS_PER_MIN, False)]
    points = sum_minutes(reader, minutes, 10_000)
    assert all(isinstance(p, Point) for p in points)
    assert writer.write([p.to_line() for p in points if isinstance(p, Point)]) == []
    stored = reader.select("video_minute", tags={"camera": "cam-9"})
    assert [r["time"] for r in stored] == [start, start + NS_PER_MIN]
    assert count(influxd, db, '"video_minute"."video_minute"') == 2
    for row in stored:
        inside = [f for t, f in frames if row["time"] <= t < row["time"] + NS_PER_MIN]
        assert row["frames"] == len(inside)
        for metric in ("brightness", "sharpness", "motion", "occlusion"):
            values = [f[metric] for f in inside]
            assert row[f"{metric}_mean"] == pytest.approx(sum(values) / len(values))
            assert row[f"{metric}_max"] == pytest.approx(max(values))
    writer.close()
    reader.close()
