"""The air part's SQL on StateDB: readings, hourly means, open hours, stations and each hour's
result, written by the processor and read back by the API.

Never decide here when an hour closes or what it means: the processor does, in one transaction
of these statements (`transaction`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import orjson

from hazwatch.base.statedb import StateDB
from hazwatch.streams.air.rules import NS_PER_HOUR, HourReading

SOURCES = ("minute", "rtd")  # preferred first: a station's minute data, else its real-time data
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE air_reading (
        site TEXT NOT NULL, station TEXT NOT NULL, source TEXT NOT NULL,
        ts_ns BIGINT NOT NULL, pollutant TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (site, station, source, ts_ns, pollutant));
    CREATE TABLE air_hour (
        site TEXT NOT NULL, station TEXT NOT NULL, hour_ns BIGINT NOT NULL,
        pollutant TEXT NOT NULL, mean DOUBLE PRECISION, minutes INTEGER NOT NULL,
        PRIMARY KEY (site, station, hour_ns, pollutant));
    CREATE TABLE air_hour_open (
        site TEXT NOT NULL, station TEXT NOT NULL, hour_ns BIGINT NOT NULL,
        PRIMARY KEY (site, station, hour_ns));
    CREATE TABLE air_station (
        site TEXT NOT NULL, station TEXT NOT NULL, newest_ns BIGINT NOT NULL,
        closed_ns BIGINT NOT NULL,
        PRIMARY KEY (site, station))
    """,
    """
    CREATE TABLE air_hour_result (
        site TEXT NOT NULL, station TEXT NOT NULL, hour_ns BIGINT NOT NULL,
        aqi INTEGER, level INTEGER, primary_pollutant TEXT NOT NULL, fields TEXT NOT NULL,
        PRIMARY KEY (site, station, hour_ns))
    """,
    # when the receiver last heard from the station (a quiet station's hours close by clock)
    "ALTER TABLE air_station ADD COLUMN seen_ns BIGINT NOT NULL DEFAULT 0",
    # one row per reading, a column per pollutant (was one row per pollutant: 4-6× the rows
    # to insert on the hot path); the new table takes the old one's name and its data
    """
    CREATE TABLE air_reading_wide (
        site TEXT NOT NULL, station TEXT NOT NULL, source TEXT NOT NULL, ts_ns BIGINT NOT NULL,
        so2 DOUBLE PRECISION, no2 DOUBLE PRECISION, pm10 DOUBLE PRECISION,
        co DOUBLE PRECISION, o3 DOUBLE PRECISION, pm25 DOUBLE PRECISION,
        PRIMARY KEY (site, station, source, ts_ns));
    INSERT INTO air_reading_wide (site, station, source, ts_ns, so2, no2, pm10, co, o3, pm25)
    SELECT site, station, source, ts_ns,
        MAX(CASE WHEN pollutant = 'so2' THEN value END),
        MAX(CASE WHEN pollutant = 'no2' THEN value END),
        MAX(CASE WHEN pollutant = 'pm10' THEN value END),
        MAX(CASE WHEN pollutant = 'co' THEN value END),
        MAX(CASE WHEN pollutant = 'o3' THEN value END),
        MAX(CASE WHEN pollutant = 'pm25' THEN value END)
    FROM air_reading GROUP BY site, station, source, ts_ns;
    DROP TABLE air_reading;
    ALTER TABLE air_reading_wide RENAME TO air_reading
    """,
)
# The daily reports, migrated under a name of their own (the hourly tables' list stays as it is).
DAILY_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE air_day_result (
        site TEXT NOT NULL, station TEXT NOT NULL, day_ns BIGINT NOT NULL,
        complete INTEGER NOT NULL, aqi INTEGER, heavy_days INTEGER NOT NULL,
        fields TEXT NOT NULL,
        PRIMARY KEY (site, station, day_ns))
    """,
)
# The pollutant columns of `air_reading`, in aqi.POLLUTANTS order: a new one needs a migration.
COLUMNS: tuple[str, ...] = ("so2", "no2", "pm10", "co", "o3", "pm25")
# A first value of each pollutant is kept: a redelivered reading fills gaps and changes nothing.
_INSERT_READING = (
    f"INSERT INTO air_reading (site, station, source, ts_ns, {', '.join(COLUMNS)}) "
    f"VALUES (?, ?, ?, ?, {', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (site, station, source, ts_ns) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(air_reading.{c}, excluded.{c})" for c in COLUMNS)
    + " WHERE "
    + " OR ".join(f"(air_reading.{c} IS NULL AND excluded.{c} IS NOT NULL)" for c in COLUMNS)
)
# (site, station, source, ts_ns, so2, no2, pm10, co, o3, pm25): one reading, None = no valid value
Reading = tuple[str, str, str, int, *tuple[float | None, ...]]
# pollutant → (its valid 1-h mean or None, its valid minutes): one closed hour of a station
HourMeans = dict[str, tuple[float | None, int]]


class AirStore:
    """Reads and writes the air part's state; the processor's writes run in its `transaction`."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("air_hourly", MIGRATIONS)
        db.migrate("air_daily", DAILY_MIGRATIONS)

    def transaction(self) -> AbstractContextManager[StateDB]:
        """One atomic unit of the statements below; commit on success, roll back on error."""
        return self.db.transaction()

    # writing readings
    def insert(
        self,
        rows: Iterable[Reading],
        hours: Iterable[tuple[str, str, int]],
        newest: Mapping[tuple[str, str], int],
        seen_ns: int,
    ) -> None:
        """A batch's readings, the hours they fall in (opened) and their stations' newest times."""
        self.db.executemany(_INSERT_READING, rows)
        # Every batch, even for hours this process opened: another worker may have closed one
        # since (a station's rows per batch, not per reading: too few to be worth a cache).
        self.db.executemany(
            "INSERT INTO air_hour_open (site, station, hour_ns) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            sorted(hours),
        )
        self.db.executemany(
            "INSERT INTO air_station (site, station, newest_ns, closed_ns, seen_ns) "
            "VALUES (?, ?, ?, 0, ?) "
            "ON CONFLICT (site, station) DO UPDATE SET seen_ns = excluded.seen_ns, newest_ns = "
            "CASE WHEN excluded.newest_ns > air_station.newest_ns "
            "THEN excluded.newest_ns ELSE air_station.newest_ns END",
            [(site, station, ts, seen_ns) for (site, station), ts in newest.items()],
        )

    def earliest_open(
        self, stations: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, int | None]]:
        """(newest_ns, the start of its earliest open hour or None) of these stations."""
        sites = sorted({site for site, _ in stations})
        names = sorted({station for _, station in stations})
        rows = self.db.query(
            "SELECT s.site, s.station, s.newest_ns, MIN(o.hour_ns) FROM air_station s "
            "LEFT JOIN air_hour_open o ON o.site = s.site AND o.station = s.station "
            f"WHERE s.site IN ({', '.join('?' * len(sites))}) "
            f"AND s.station IN ({', '.join('?' * len(names))}) "
            "GROUP BY s.site, s.station, s.newest_ns",
            (*sites, *names),
        )
        return {
            (str(site), str(station)): (int(newest_ns), None if hour_ns is None else int(hour_ns))
            for site, station, newest_ns, hour_ns in rows
            if (site, station) in stations
        }

    # closing hours
    def due_hours(self, after_data_ns: int, clock_ns: int) -> list[tuple[str, str, int, int]]:
        """(site, station, hour_ns, the station's closed_ns) of each open hour that is over: the
        station's data reached `after_data_ns` past its end, or its end and the station's last
        contact are both at or before `clock_ns`; in site, station, hour order."""
        rows = self.db.query(
            "SELECT o.site, o.station, o.hour_ns, s.closed_ns FROM air_hour_open o "
            "JOIN air_station s ON s.site = o.site AND s.station = o.station "
            "WHERE o.hour_ns + ? <= s.newest_ns - ? "
            "OR (o.hour_ns + ? <= ? AND s.seen_ns <= ?) "
            "ORDER BY o.site, o.station, o.hour_ns",
            (NS_PER_HOUR, after_data_ns, NS_PER_HOUR, clock_ns, clock_ns),
        )
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def readings(self, site: str, station: str, start_ns: int, end_ns: int) -> list[HourReading]:
        """The station's valid values in [start, end), by source and time."""
        return [
            (str(r[0]), int(r[1]), name, float(value))
            for r in self.db.query(
                f"SELECT source, ts_ns, {', '.join(COLUMNS)} FROM air_reading "
                f"WHERE site = ? AND station = ? AND source IN ({', '.join('?' * len(SOURCES))}) "
                "AND ts_ns >= ? AND ts_ns < ? "
                "ORDER BY source, ts_ns",
                (site, station, *SOURCES, start_ns, end_ns),
            )
            for name, value in zip(COLUMNS, r[2:], strict=True)
            if value is not None
        ]

    def last_means(self, site: str, station: str, hour_ns: int) -> HourMeans:
        """What the hour was last closed with (empty if it never was, or was pruned)."""
        return {
            str(r[0]): (None if r[1] is None else float(r[1]), int(r[2]))
            for r in self.db.query(
                "SELECT pollutant, mean, minutes FROM air_hour "
                "WHERE site = ? AND station = ? AND hour_ns = ?",
                (site, station, hour_ns),
            )
        }

    def close_hour(self, site: str, station: str, hour_ns: int, means: HourMeans) -> None:
        """The hour's means replace what it had, and it is no longer open."""
        self.db.execute(
            "DELETE FROM air_hour WHERE site = ? AND station = ? AND hour_ns = ?",
            (site, station, hour_ns),
        )
        self.db.executemany(
            "INSERT INTO air_hour (site, station, hour_ns, pollutant, mean, minutes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(site, station, hour_ns, p, mean, m) for p, (mean, m) in means.items()],
        )
        self.db.execute(
            "DELETE FROM air_hour_open WHERE site = ? AND station = ? AND hour_ns = ?",
            (site, station, hour_ns),
        )

    def reopen(self, site: str, station: str, after_ns: int, until_ns: int) -> None:
        """Open again the station's hours with means that start in (after, until]."""
        self.db.execute(
            "INSERT INTO air_hour_open (site, station, hour_ns) "
            "SELECT DISTINCT site, station, hour_ns FROM air_hour "
            "WHERE site = ? AND station = ? AND hour_ns > ? AND hour_ns <= ? "
            "ON CONFLICT DO NOTHING",
            (site, station, after_ns, until_ns),
        )

    def means_between(
        self, site: str, station: str, after_ns: int, until_ns: int
    ) -> list[tuple[int, str, float | None]]:
        """(hour_ns, pollutant, mean) of the station's hours that start in (after, until]."""
        rows = self.db.query(
            "SELECT hour_ns, pollutant, mean FROM air_hour "
            "WHERE site = ? AND station = ? AND hour_ns > ? AND hour_ns <= ?",
            (site, station, after_ns, until_ns),
        )
        return [(int(r[0]), str(r[1]), None if r[2] is None else float(r[2])) for r in rows]

    def save_result(
        self,
        site: str,
        station: str,
        hour_ns: int,
        aqi: int | None,
        level: int | None,
        primary: str,
        fields: dict[str, Any],
    ) -> None:
        """The hour's AQI and its `air_hourly` fields, as the API reads them back."""
        self.db.execute(
            "INSERT INTO air_hour_result (site, station, hour_ns, aqi, level, primary_pollutant, "
            "fields) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, station, hour_ns) DO UPDATE "
            "SET aqi = excluded.aqi, level = excluded.level, "
            "primary_pollutant = excluded.primary_pollutant, fields = excluded.fields",
            (site, station, hour_ns, aqi, level, primary, orjson.dumps(fields).decode()),
        )

    def has_result(self, site: str, station: str, hour_ns: int) -> bool:
        """Whether the hour was closed before (its `air_hourly` point written)."""
        return bool(
            self.db.query(
                "SELECT 1 FROM air_hour_result WHERE site = ? AND station = ? AND hour_ns = ?",
                (site, station, hour_ns),
            )
        )

    def results_between(
        self, site: str, station: str, after_ns: int, until_ns: int
    ) -> dict[int, dict[str, Any]]:
        """hour_ns → the `air_hourly` fields of the station's hours that start in (after, until]."""
        rows = self.db.query(
            "SELECT hour_ns, fields FROM air_hour_result "
            "WHERE site = ? AND station = ? AND hour_ns > ? AND hour_ns <= ?",
            (site, station, after_ns, until_ns),
        )
        return {int(r[0]): orjson.loads(r[1]) for r in rows}

    def newest_ns(self, site: str, station: str) -> int | None:
        """The time of the station's newest reading, None for a station never heard."""
        rows = self.db.query(
            "SELECT newest_ns FROM air_station WHERE site = ? AND station = ?", (site, station)
        )
        return int(rows[0][0]) if rows else None

    # daily reports
    def save_day(
        self,
        site: str,
        station: str,
        day_ns: int,
        complete: bool,
        aqi: int | None,
        heavy_days: int,
        fields: dict[str, Any],
    ) -> None:
        """A day's report (complete or so far), as the API reads it back."""
        self.db.execute(
            "INSERT INTO air_day_result (site, station, day_ns, complete, aqi, heavy_days, fields) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, station, day_ns) DO UPDATE SET "
            "complete = excluded.complete, aqi = excluded.aqi, "
            "heavy_days = excluded.heavy_days, fields = excluded.fields",
            (
                site,
                station,
                day_ns,
                int(complete),
                aqi,
                heavy_days,
                orjson.dumps(fields).decode(),
            ),
        )

    def day(self, site: str, station: str, day_ns: int) -> tuple[bool, int, dict[str, Any]] | None:
        """(complete, heavy_days, fields) of the station's report of that day, None if none."""
        rows = self.db.query(
            "SELECT complete, heavy_days, fields FROM air_day_result "
            "WHERE site = ? AND station = ? AND day_ns = ?",
            (site, station, day_ns),
        )
        if not rows:
            return None
        return bool(rows[0][0]), int(rows[0][1]), orjson.loads(rows[0][2])

    def incomplete_days(self, site: str, station: str, before_ns: int) -> list[int]:
        """The station's days before this one whose report was made before they were over."""
        rows = self.db.query(
            "SELECT day_ns FROM air_day_result WHERE site = ? AND station = ? AND day_ns < ? "
            "AND complete = 0 ORDER BY day_ns",
            (site, station, before_ns),
        )
        return [int(r[0]) for r in rows]

    def daily(self, station: str, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Days starting in [start, end), oldest first; bounds clamped as `hourly`'s."""
        rows = self.db.query(
            "SELECT site, station, day_ns, fields FROM air_day_result "
            "WHERE station = ? AND day_ns >= ? AND day_ns < ? ORDER BY day_ns",
            (station, _bigint(start_ns), _bigint(end_ns)),
        )
        return [
            {"site": r[0], "station": r[1], "time": int(r[2]), **orjson.loads(r[3])} for r in rows
        ]

    def mark_closed(self, site: str, station: str, hour_ns: int) -> None:
        """The station's newest closed hour is now this one."""
        self.db.execute(
            "UPDATE air_station SET closed_ns = ? WHERE site = ? AND station = ?",
            (hour_ns, site, station),
        )

    # on tick
    def prune(self, keep_ns: int) -> None:
        """Drop readings and hourly means more than `keep_ns` behind their station's newest."""
        self.db.execute(
            "DELETE FROM air_reading WHERE ts_ns < (SELECT s.newest_ns FROM air_station s "
            "WHERE s.site = air_reading.site AND s.station = air_reading.station) - ?",
            (keep_ns,),
        )
        # hourly means feed the moving means of the next 24 hours; results stay
        self.db.execute(
            "DELETE FROM air_hour WHERE hour_ns < (SELECT s.newest_ns FROM air_station s "
            "WHERE s.site = air_hour.site AND s.station = air_hour.station) - ?",
            (keep_ns,),
        )

    # reading back (API)
    def stations(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT s.site, s.station, s.newest_ns, r.hour_ns, r.aqi, r.level, r.primary_pollutant "
            "FROM air_station s LEFT JOIN air_hour_result r ON r.site = s.site "
            "AND r.station = s.station AND r.hour_ns = s.closed_ns ORDER BY s.site, s.station"
        )
        return [
            {
                "site": r[0],
                "station": r[1],
                "newest_ns": int(r[2]),
                "hour_ns": None if r[3] is None else int(r[3]),
                "aqi": r[4],
                "level": r[5],
                "primary": r[6] or "",
            }
            for r in rows
        ]

    def hourly(self, station: str, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Hours starting in [start, end); bounds past BIGINT are clamped (the driver overflows)."""
        rows = self.db.query(
            "SELECT site, station, hour_ns, fields FROM air_hour_result "
            "WHERE station = ? AND hour_ns >= ? AND hour_ns < ? ORDER BY hour_ns",
            (station, _bigint(start_ns), _bigint(end_ns)),
        )
        return [
            {"site": r[0], "station": r[1], "time": int(r[2]), **orjson.loads(r[3])} for r in rows
        ]


def _bigint(ns: int) -> int:
    return max(-(2**63), min(ns, 2**63 - 1))
