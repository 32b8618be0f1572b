"""An air hour or day computed again replaces its point whole in the point store: what an audit
took back (a mean, the AQI) is gone there too, not merged under the new fields.

Never fake the store: the embedded point store (SQLite) behind the real ingest pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.points import REPLACE_MARK, Point, replacing, to_line, unmarked
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.consumer import RawMessage
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.pipeline import IngestPipeline
from hazwatch.ingest.pointstore import PointStore
from hazwatch.ingest.spool import Spool
from hazwatch.streams.air import audit
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore

NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
DAY0 = 1_795_449_600 * 10**9  # 2026-11-24T00:00 China time (2026-11-23T16:00Z)
T0 = 1_764_000_000_000_000_000


class Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def minute_message(ts_ns: int, values: dict[str, float]) -> RawMessage:
    packet = hj212.data_packet("MN1", "2051", ts_ns, values)
    return RawMessage(1, "hw/s1/air/aq-1/hj212", hj212.build(packet), 1, ts_ns, 0)


@pytest.fixture()
def line(tmp_path: Path) -> tuple[IngestPipeline, AirProcessor, PointStore, Clock]:
    clock = Clock(DAY0)
    processor = AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 's.db'}")), ListSink())
    points = PointStore(tmp_path / "points.db")
    pipe = IngestPipeline(
        ctx=NoRegistry(),
        writer=points,
        spool=Spool(tmp_path / "spool", 1 << 22),
        deadletters=DeadLetterStore(StateDB(f"sqlite:///{tmp_path / 'd.db'}")),
        processors=[processor],
        clock=clock,
    )
    return pipe, processor, points, clock


def stored_hour(points: PointStore, hour: int) -> dict[str, object]:
    (row,) = points.select(
        "air_hourly", start_ns=DAY0 + hour * NS_H, end_ns=DAY0 + (hour + 1) * NS_H - 1
    )
    return row


def send_day(pipe: IngestPipeline, clock: Clock) -> None:
    """A China natural day of minute data, PM2.5 160 + m % 3 (mean 161, IAQI 211 by HJ 633-2026)
    and NO2 20 + m % 2, and the next day's first minute: every hour and the day closed."""
    for hour in range(24):
        clock.now_ns = DAY0 + (hour + 1) * NS_H
        pipe.handle(
            [
                minute_message(
                    DAY0 + (hour * 60 + m) * NS_MIN, {"pm25": 160.0 + m % 3, "no2": 20.0 + m % 2}
                )
                for m in range(60)
            ]
        )
    clock.now_ns = DAY0 + 24 * NS_H + 20 * NS_MIN
    pipe.handle([minute_message(DAY0 + 24 * NS_H + 6 * NS_MIN, {"no2": 20.0})])
    pipe.tick()


def test_an_hour_an_audit_takes_back_is_replaced_whole_and_comes_back_when_revoked(
    line: tuple[IngestPipeline, AirProcessor, PointStore, Clock],
) -> None:
    pipe, processor, points, clock = line
    send_day(pipe, clock)
    before = stored_hour(points, 10)
    assert before["pm25"] == 161.0 and before["aqi"] == 211 and before["pm25_minutes"] == 60
    day = points.select("air_daily")
    assert len(day) == 1 and day[0]["aqi"] == 211 and day[0]["pm25_hours"] == 24
    change = processor.auditor.marks.add(
        "s1",
        "aq-1",
        audit.Mark("*", DAY0 + 10 * NS_H, DAY0 + 11 * NS_H, "power", "停电"),
        by="张工",
        now_ns=clock.now_ns,
    )
    clock.now_ns += NS_MIN
    pipe.tick()
    after = stored_hour(points, 10)
    # exactly the recomputed hour: no mean, no IAQI, no AQI, level or primary pollutant left
    gone = {"pm25", "no2", "aqi", "level", "primary", "iaqi_pm25", "iaqi_no2"}
    assert gone.isdisjoint(after), sorted(after)
    assert after["pm25_minutes"] == 0 and after["no2_minutes"] == 0
    # and the point store holds what the state store (the API) says, field for field
    (api_row,) = processor.store.hourly("aq-1", DAY0 + 10 * NS_H, DAY0 + 11 * NS_H)
    assert after == api_row
    # the day again, on 23 hours
    (again,) = points.select("air_daily")
    assert again["pm25_hours"] == 23 and again["no2_hours"] == 23 and again["aqi"] == 211
    # revoked: the hour is what it was, in the point store too
    processor.auditor.marks.revoke(
        change.row["id"], by="李工", note="复核有效", now_ns=clock.now_ns
    )
    clock.now_ns += NS_MIN
    pipe.tick()
    assert stored_hour(points, 10) == before
    assert points.select("air_daily")[0]["pm25_hours"] == 24


def test_a_replacing_batch_again_is_the_same_point(tmp_path: Path) -> None:
    """A redelivered or replayed replacement (spool, retry) leaves the same point."""
    store = PointStore(tmp_path / "p.db")
    tags = {"site": "s1", "station": "aq-1"}
    store.write([to_line("air_hourly", tags, {"aqi": 243, "pm25": 193.0, "pm25_minutes": 60}, T0)])
    again = Point("air_hourly", tags, {"pm25_minutes": 0}, T0, replaces=True).to_line()
    assert again.startswith(REPLACE_MARK) and replacing([again]) == [0]
    for _ in range(2):
        assert store.write([again]) == []
        (row,) = store.select("air_hourly")
        assert row == {"time": T0, "site": "s1", "station": "aq-1", "pm25_minutes": 0}
    # a plain write after it merges into the replaced point, as in InfluxDB
    store.write([to_line("air_hourly", tags, {"aqi": 50}, T0)])
    assert store.select("air_hourly")[0]["aqi"] == 50 and unmarked(again) == again[9:]


def test_a_batch_runs_as_written_line_by_line(tmp_path: Path) -> None:
    """Plain, replacing, plain of one point in one batch: the replacement drops what came
    before it, the line after merges into it; other points are untouched."""
    store = PointStore(tmp_path / "p.db")
    tags = {"site": "s1", "station": "aq-1"}
    other = to_line("air_hourly", {"site": "s1", "station": "aq-2"}, {"aqi": 7}, T0)
    batch = [
        to_line("air_hourly", tags, {"aqi": 243, "pm25": 193.0}, T0),
        other,
        Point("air_hourly", tags, {"pm25_minutes": 0}, T0, replaces=True).to_line(),
        to_line("air_hourly", tags, {"over": ""}, T0),
    ]
    assert store.write(batch) == []
    rows = {row["station"]: row for row in store.select("air_hourly")}
    assert rows["aq-1"] == {
        "time": T0,
        "site": "s1",
        "station": "aq-1",
        "pm25_minutes": 0,
        "over": "",
    }
    assert rows["aq-2"]["aqi"] == 7
