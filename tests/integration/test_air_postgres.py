"""The air_hourly processor on PostgreSQL gives what it gives on SQLite: one schema, two stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore

pytestmark = pytest.mark.integration
NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
HOUR0 = 1_795_478_400 * 10**9
NOW = HOUR0 + 3 * 24 * NS_H


def day() -> list[Decoded]:
    batch = []
    for h in range(26):
        for m in range(60):
            ts = HOUR0 + h * NS_H + m * NS_MIN
            values = {"pm25": 60.0 + (m * 7 + h) % 40, "o3": 100.0 + 5 * h, "no2": 30.0 + m % 9}
            packet = hj212.data_packet("MN1", "2051", ts, values)
            batch.append(
                decode("hw/s1/air/aq-1/hj212", hj212.build(packet), NoRegistry(), now_ns=NOW)
            )
    return batch


def run(url: str) -> dict[tuple[str, int], dict[str, object]]:
    db = StateDB(url)
    proc = AirProcessor(AirStore(db), AlertStore(db))
    batch = day()
    points = []
    for start in range(0, len(batch), 500):
        points += proc.process(batch[start : start + 500], NOW)
        points += proc.process(batch[start : start + 250], NOW)  # redelivered
    points += proc.tick(NOW + NS_H)
    db.close()
    return {(p.measurement, p.ts_ns): p.fields for p in points}  # a rewrite replaces its point


def test_postgres_equals_sqlite(postgres_url: str, tmp_path: Path) -> None:
    on_sqlite = run(f"sqlite:///{tmp_path / 's.db'}")
    on_postgres = run(postgres_url)
    hours = sorted(ts for measurement, ts in on_sqlite if measurement == "air_hourly")
    days = sorted(ts for measurement, ts in on_sqlite if measurement == "air_daily")
    assert hours == [HOUR0 + h * NS_H for h in range(26)]
    # one natural day (China time, from 00:00+08) is over in the data: the one of hours 0-15;
    # the next ends at hour 40, past the newest reading, so it has no report yet
    assert days == [HOUR0 - 8 * NS_H]
    assert len(on_sqlite) == len(hours) + len(days)
    assert on_postgres == on_sqlite
