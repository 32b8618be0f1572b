"""Hourly and 24-h means per air station from its real-time/minute data, with AQI: `air_hourly`.

Never count a reading twice (its identity is station, source, time) and never read a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hazwatch.alerts.model import AlertSignal, AlertSink, Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of, severities
from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import Decoded
from hazwatch.streams.air import aqi

NS_PER_MIN = 60 * 1_000_000_000
NS_PER_HOUR = 60 * NS_PER_MIN
MEASUREMENT = "air_hourly"
SOURCES = ("minute", "rtd")  # preferred first: a station's minute data, else its real-time data
RULE_EXCEEDANCE = "air_exceedance"
RULE_AQI = "aqi_level"
RULE_FLATLINE = "sensor_flatline"
RULE_SPIKE = "sensor_spike"
RULE_STALE = "station_stale"
# A value this many times the hour's median, and this far above it, is a spike (CO: mg/m³).
SPIKE_RATIO = 5.0
SPIKE_MIN_JUMP: dict[str, float] = {"co": 5.0}
SPIKE_MIN_JUMP_UGM3 = 100.0
NEVER_NS = 2**63 - 1  # the due time of a station with no open hour
MAX_KNOWN_STATIONS = 100_000  # a bound on the in-memory station cache (refilled from the store)

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
# The pollutant columns of `air_reading`, in aqi.POLLUTANTS order: a new one needs a migration.
COLUMNS: tuple[str, ...] = ("so2", "no2", "pm10", "co", "o3", "pm25")
_COLUMN_FLAGS = tuple((name, f"{name}_flag") for name in COLUMNS)
_NO_VALUES: list[float | None] = [None] * len(COLUMNS)
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


@dataclass(frozen=True, slots=True)
class HourlySettings:
    # An hour closes once the station's own data reaches this far past its end (event time) ...
    close_after_data_s: float = 300.0
    # ... or, for a station that went quiet this long (receiver's clock), once the clock has.
    close_after_clock_s: float = 900.0
    min_valid_minutes: int = aqi.MIN_MINUTES_PER_HOUR
    # Readings and hourly means this far behind a station's newest are pruned on tick.
    keep_readings_h: float = 48.0
    # A station not heard from for this long (receiver's clock) raises station_stale on tick.
    stale_after_s: float = 1800.0


# Each air rule, declared once (alerts and docs/rules.md are made from these). The class II
# limits air_exceedance checks are GB 3095-2012's, in hazwatch.streams.air.aqi.LIMITS_CLASS_II.
RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        RULE_EXCEEDANCE,
        "air",
        Severity.WARNING,
        "site/station/limit",
        "空气质量超标：站点污染物的小时均值或 24 小时、8 小时滑动均值超过 GB 3095-2012 "
        "二级浓度限值",
        "a pollutant's hourly mean, or its 24-h or 8-h moving mean, is over the GB 3095-2012 "
        "class II limit",
    ),
    RuleSpec(
        RULE_AQI,
        "air",
        Severity.WARNING,
        "site/station",
        "空气质量指数超标：站点小时 AQI 超过 100（三级轻度污染及以上；三级为警告，四级为较重，"
        "五、六级为严重）",
        "the station's hourly AQI is over 100 (level 3, lightly polluted, or worse); its "
        "severity rises with the level: 3 warning, 4 major, 5 and 6 critical",
    ),
    RuleSpec(
        RULE_FLATLINE,
        "air",
        Severity.WARNING,
        "site/station/pollutant",
        "传感器读数恒定：一小时内某污染物的读数始终是同一个值（疑似传感器故障）",
        "a sensor stuck on one value: every reading of a pollutant in the hour is the same, "
        "over at least the minutes an hourly mean needs",
        defaults_of(HourlySettings, "min_valid_minutes"),
    ),
    RuleSpec(
        RULE_SPIKE,
        "air",
        Severity.WARNING,
        "site/station/pollutant",
        "传感器读数突跳：一小时内某污染物出现远高于该小时中位数的峰值（疑似传感器故障或干扰）",
        "one absurd jump: a pollutant's peak in the hour is many times the hour's median and "
        "far above it (CO in mg/m³, the others in µg/m³)",
        {
            "spike_ratio": SPIKE_RATIO,
            "spike_min_jump_ugm3": SPIKE_MIN_JUMP_UGM3,
            "spike_min_jump_co_mgm3": SPIKE_MIN_JUMP["co"],
        },
    ),
    RuleSpec(
        RULE_STALE,
        "air",
        Severity.MAJOR,
        "site/station",
        "站点数据中断：超过规定时间未收到空气监测站的数据",
        "nothing heard from the air station for longer than the limit",
        defaults_of(HourlySettings, "stale_after_s"),
    ),
)
SEVERITY = severities(RULE_SPECS)


@dataclass(slots=True)
class HourResult:
    site: str
    station: str
    hour_ns: int
    means: dict[str, float]  # valid 1-h means
    minutes: dict[str, int]  # valid minutes per pollutant
    moving: dict[str, float] = field(default_factory=dict)  # so2_24h, …, o3_8h
    result: aqi.AqiResult | None = None
    quality: dict[tuple[str, str], str] = field(default_factory=dict)  # (rule, pollutant) → why

    def point(self) -> Point:
        fields: dict[str, float | int | str] = {}
        for name, mean in self.means.items():
            fields[name] = round(mean, 6)
        for name, minutes in self.minutes.items():
            fields[f"{name}_minutes"] = minutes
        for name, value in self.moving.items():
            fields[name] = round(value, 6)
        if self.result is not None and self.result.aqi is not None:
            for item, value in self.result.iaqi.items():
                fields[f"iaqi_{item}"] = value
            fields["aqi"] = self.result.aqi
            assert self.result.level is not None
            fields["level"] = self.result.level.number
            fields["primary"] = self.result.primary_text
        tags = {"site": self.site, "station": self.station}
        return Point(MEASUREMENT, tags, fields, self.hour_ns)


def readings_of(batch: Iterable[Decoded]) -> list[Reading]:
    """One row per air reading with a valid value of a pollutant (columns: `COLUMNS`)."""
    rows: list[Reading] = []
    for decoded in batch:
        if decoded.topic.family != "air":
            continue
        for point in decoded.points:
            if point.measurement != "air":
                continue
            tags = point.tags
            source = tags.get("interval", "rtd")
            if source not in SOURCES:
                continue
            get = point.fields.get
            common_flag = get("flag", "N")
            # HJ 212 data flag: only normal data counts (HJ 633 validity)
            values = [
                None
                if (value := get(name)) is None or get(flag_name, common_flag) != "N"
                else (value if type(value) is float else _number(value))
                for name, flag_name in _COLUMN_FLAGS
            ]
            if values != _NO_VALUES:
                rows.append((tags["site"], tags["station"], source, point.ts_ns, *values))
    return rows


def _number(value: float | int | bool | str) -> float | None:
    """A field value that is not a float, as a concentration if it is a number."""
    return None if isinstance(value, (bool, str)) else float(value)


class AirHourly:
    """StreamProcessor: keeps readings in the state store, closes hours, writes `air_hourly`."""

    name = "air_hourly"

    def __init__(
        self, db: StateDB, alerts: AlertSink | None = None, settings: HourlySettings | None = None
    ) -> None:
        self.db = db
        self.alerts = alerts
        self.settings = settings or HourlySettings()
        self._lock = threading.Lock()
        # (site, station) → (newest_ns, due_ns): the station's newest reading time and when its
        # earliest open hour closes by data time, as this process last knew them, so that a
        # batch that cannot close an hour skips the close query. Only an optimisation: the
        # store is the truth, a station not in here is looked up there, and an hour that
        # another worker's data makes due is closed by tick().
        self._known: dict[tuple[str, str], tuple[int, int]] = {}
        db.migrate("air_hourly", MIGRATIONS)

    # StreamProcessor
    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        rows = readings_of(batch)
        if not rows:
            return []
        hours: set[tuple[str, str, int]] = set()
        newest: dict[tuple[str, str], int] = {}
        for row in rows:
            site, station, ts_ns = row[0], row[1], row[3]
            hours.add((site, station, ts_ns - ts_ns % NS_PER_HOUR))
            if ts_ns > newest.get((site, station), -1):
                newest[(site, station)] = ts_ns
        points: list[Point] = []
        closed: list[HourResult] = []
        with self._lock:
            known = self._known_after(hours, newest)
            with self.db.transaction() as db:
                self._insert(db, rows, hours, newest, now_ns)
                if known is None:  # an hour may be over: close it, and learn what stays open
                    points, closed = self._close(db, now_ns, set(newest))
                    known = self._look_up(db, set(newest))
            # only what is committed is known (a rolled-back batch leaves this as it was)
            if len(self._known) > MAX_KNOWN_STATIONS:
                self._known.clear()
            self._known.update(known)
            self._alert_all(closed)  # the alert store has transactions of its own
        return points

    def _known_after(
        self, hours: set[tuple[str, str, int]], newest: dict[tuple[str, str], int]
    ) -> dict[tuple[str, str], tuple[int, int]] | None:
        """What is known of the batch's stations once it is stored; None if an hour may close."""
        if self.settings.close_after_clock_s <= 0:  # hours of stations just heard from close
            return None
        after_data = int(self.settings.close_after_data_s * 1e9)
        known: dict[tuple[str, str], tuple[int, int]] = {}
        for key, ts_ns in newest.items():
            entry = self._known.get(key)
            if entry is None:
                return None
            known[key] = (max(entry[0], ts_ns), entry[1])
        for site, station, hour_ns in hours:
            newest_ns, due_ns = known[(site, station)]
            due_ns = min(due_ns, hour_ns + NS_PER_HOUR + after_data)
            if due_ns <= newest_ns:
                return None
            known[(site, station)] = (newest_ns, due_ns)
        return known

    def _look_up(
        self, db: StateDB, stations: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, int]]:
        """(newest_ns, due_ns) of these stations in the store."""
        after_data = int(self.settings.close_after_data_s * 1e9)
        sites = sorted({site for site, _ in stations})
        names = sorted({station for _, station in stations})
        rows = db.query(
            "SELECT s.site, s.station, s.newest_ns, MIN(o.hour_ns) FROM air_station s "
            "LEFT JOIN air_hour_open o ON o.site = s.site AND o.station = s.station "
            f"WHERE s.site IN ({', '.join('?' * len(sites))}) "
            f"AND s.station IN ({', '.join('?' * len(names))}) "
            "GROUP BY s.site, s.station, s.newest_ns",
            (*sites, *names),
        )
        return {
            (str(site), str(station)): (
                int(newest_ns),
                NEVER_NS if hour_ns is None else int(hour_ns) + NS_PER_HOUR + after_data,
            )
            for site, station, newest_ns, hour_ns in rows
            if (site, station) in stations
        }

    def _insert(
        self,
        db: StateDB,
        rows: list[Reading],
        hours: set[tuple[str, str, int]],
        newest: dict[tuple[str, str], int],
        now_ns: int,
    ) -> None:
        db.executemany(_INSERT_READING, rows)
        # Every batch, even for hours this process opened: another worker may have closed one
        # since (a station's rows per batch, not per reading: too few to be worth a cache).
        db.executemany(
            "INSERT INTO air_hour_open (site, station, hour_ns) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            sorted(hours),
        )
        db.executemany(
            "INSERT INTO air_station (site, station, newest_ns, closed_ns, seen_ns) "
            "VALUES (?, ?, ?, 0, ?) "
            "ON CONFLICT (site, station) DO UPDATE SET seen_ns = excluded.seen_ns, newest_ns = "
            "CASE WHEN excluded.newest_ns > air_station.newest_ns "
            "THEN excluded.newest_ns ELSE air_station.newest_ns END",
            [(site, station, ts, now_ns) for (site, station), ts in newest.items()],
        )

    def tick(self, now_ns: int) -> list[Point]:
        with self._lock:
            with self.db.transaction() as db:
                points, closed = self._close(db, now_ns, None)
                keep_ns = int(self.settings.keep_readings_h * 3600 * 1e9)
                db.execute(
                    "DELETE FROM air_reading WHERE ts_ns < (SELECT s.newest_ns FROM air_station s "
                    "WHERE s.site = air_reading.site AND s.station = air_reading.station) - ?",
                    (keep_ns,),
                )
                # hourly means feed the moving means of the next 24 hours; results stay
                db.execute(
                    "DELETE FROM air_hour WHERE hour_ns < (SELECT s.newest_ns FROM air_station s "
                    "WHERE s.site = air_hour.site AND s.station = air_hour.station) - ?",
                    (keep_ns,),
                )
                quiet = db.query(
                    "SELECT site, station, seen_ns FROM air_station WHERE seen_ns > 0 "
                    "AND seen_ns <= ?",
                    (now_ns - int(self.settings.stale_after_s * 1e9),),
                )
            if points:  # closing may have re-opened later hours: look the stations up again
                self._known.clear()
            self._alert_all(closed)
            self._alert_stale([(str(r[0]), str(r[1]), int(r[2])) for r in quiet], now_ns)
        return points

    def _alert_stale(self, quiet: Sequence[tuple[str, str, int]], now_ns: int) -> None:
        if self.alerts is None:
            return
        for site, station, seen_ns in quiet:
            silent_min = (now_ns - seen_ns) / NS_PER_MIN
            self.alerts.raise_alert(
                AlertSignal(
                    RULE_STALE,
                    f"{site}/{station}",
                    SEVERITY[RULE_STALE],
                    f"air station {station} sent no valid data for {silent_min:.0f} min",
                    site,
                    now_ns,
                    {"seen_ns": seen_ns},
                )
            )

    # closing hours
    def _close(
        self, db: StateDB, now_ns: int, stations: set[tuple[str, str]] | None
    ) -> tuple[list[Point], list[HourResult]]:
        """Close the hours that are over; returns their points and the stations' newest hours."""
        after_data = int(self.settings.close_after_data_s * 1e9)
        after_clock = int(self.settings.close_after_clock_s * 1e9)
        points: list[Point] = []
        newest_closed: dict[tuple[str, str], HourResult] = {}
        for _ in range(100):  # re-opened later hours (late data) are closed in the next round
            rows = db.query(
                "SELECT o.site, o.station, o.hour_ns, s.closed_ns FROM air_hour_open o "
                "JOIN air_station s ON s.site = o.site AND s.station = o.station "
                "WHERE o.hour_ns + ? <= s.newest_ns - ? "
                "OR (o.hour_ns + ? <= ? AND s.seen_ns <= ?) "
                "ORDER BY o.site, o.station, o.hour_ns",
                (NS_PER_HOUR, after_data, NS_PER_HOUR, now_ns - after_clock, now_ns - after_clock),
            )
            if stations is not None:
                rows = [r for r in rows if (r[0], r[1]) in stations]
            if not rows:
                break
            for site, station, hour_ns, closed_ns in rows:
                result = self._close_hour(db, site, station, int(hour_ns))
                points.append(result.point())
                if int(hour_ns) >= int(closed_ns):
                    db.execute(
                        "UPDATE air_station SET closed_ns = ? WHERE site = ? AND station = ?",
                        (int(hour_ns), site, station),
                    )
                    newest_closed[(site, station)] = result
        return points, list(newest_closed.values())

    def _close_hour(self, db: StateDB, site: str, station: str, hour_ns: int) -> HourResult:
        readings = [
            (str(r[0]), int(r[1]), name, float(value))
            for r in db.query(
                f"SELECT source, ts_ns, {', '.join(COLUMNS)} FROM air_reading "
                f"WHERE site = ? AND station = ? AND source IN ({', '.join('?' * len(SOURCES))}) "
                "AND ts_ns >= ? AND ts_ns < ? "
                "ORDER BY source, ts_ns",
                (site, station, *SOURCES, hour_ns, hour_ns + NS_PER_HOUR),
            )
            for name, value in zip(COLUMNS, r[2:], strict=True)
            if value is not None
        ]
        means, minutes = hour_means(readings, self.settings.min_valid_minutes)
        old = {
            str(r[0]): (r[1], int(r[2]))
            for r in db.query(
                "SELECT pollutant, mean, minutes FROM air_hour "
                "WHERE site = ? AND station = ? AND hour_ns = ?",
                (site, station, hour_ns),
            )
        }
        new = {p: (means.get(p), m) for p, m in minutes.items()}
        db.execute(
            "DELETE FROM air_hour WHERE site = ? AND station = ? AND hour_ns = ?",
            (site, station, hour_ns),
        )
        db.executemany(
            "INSERT INTO air_hour (site, station, hour_ns, pollutant, mean, minutes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(site, station, hour_ns, p, mean, m) for p, (mean, m) in new.items()],
        )
        db.execute(
            "DELETE FROM air_hour_open WHERE site = ? AND station = ? AND hour_ns = ?",
            (site, station, hour_ns),
        )
        if old and old != new:
            # Later hours' moving means used this hour: compute them again.
            db.execute(
                "INSERT INTO air_hour_open (site, station, hour_ns) "
                "SELECT DISTINCT site, station, hour_ns FROM air_hour "
                "WHERE site = ? AND station = ? AND hour_ns > ? AND hour_ns <= ? "
                "ON CONFLICT DO NOTHING",
                (site, station, hour_ns, hour_ns + 23 * NS_PER_HOUR),
            )
        history = db.query(
            "SELECT hour_ns, pollutant, mean FROM air_hour "
            "WHERE site = ? AND station = ? AND hour_ns > ? AND hour_ns <= ?",
            (site, station, hour_ns - 24 * NS_PER_HOUR, hour_ns),
        )
        series = hourly_series(
            [(int(r[0]), str(r[1]), None if r[2] is None else float(r[2])) for r in history],
            hour_ns,
        )
        moving = moving_means(series)
        result = aqi.hourly_aqi(means, o3_8h=moving.get("o3_8h"), so2_24h=moving.get("so2_24h"))
        hour = HourResult(site, station, hour_ns, means, minutes, moving, result)
        hour.quality = sensor_findings(readings, self.settings.min_valid_minutes)
        db.execute(
            "INSERT INTO air_hour_result (site, station, hour_ns, aqi, level, primary_pollutant, "
            "fields) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, station, hour_ns) DO UPDATE "
            "SET aqi = excluded.aqi, level = excluded.level, "
            "primary_pollutant = excluded.primary_pollutant, fields = excluded.fields",
            (
                site,
                station,
                hour_ns,
                result.aqi,
                result.level.number if result.level else None,
                result.primary_text,
                orjson.dumps(hour.point().fields).decode(),
            ),
        )
        return hour

    # alerts
    def _alert_all(self, hours: Sequence[HourResult]) -> None:
        for hour in hours:
            self._alert(hour, hour.hour_ns + NS_PER_HOUR)

    def _alert(self, hour: HourResult, at_ns: int) -> None:
        if self.alerts is None:
            return
        subject = f"{hour.site}/{hour.station}"
        self.alerts.clear(RULE_STALE, subject, at_ns)
        for rule in (RULE_FLATLINE, RULE_SPIKE):
            for pollutant in aqi.POLLUTANTS:
                why = hour.quality.get((rule, pollutant))
                if why is None:
                    self.alerts.clear(rule, f"{subject}/{pollutant}", at_ns)
                    continue
                self.alerts.raise_alert(
                    AlertSignal(
                        rule,
                        f"{subject}/{pollutant}",
                        SEVERITY[rule],
                        why,
                        hour.site,
                        at_ns,
                        {"hour_ns": hour.hour_ns, "pollutant": pollutant},
                    )
                )
        subject = f"{hour.site}/{hour.station}"
        checked = {f"{p}_1h": hour.means.get(p) for p in ("so2", "no2", "co", "o3")}
        checked.update(hour.moving)
        over = aqi.exceedances(checked)
        for key in aqi.LIMITS_CLASS_II:
            if key not in checked or checked[key] is None:
                continue
            if key in over:
                value, limit = over[key]
                unit = "mg/m³" if key.startswith("co") else "µg/m³"
                self.alerts.raise_alert(
                    AlertSignal(
                        RULE_EXCEEDANCE,
                        f"{subject}/{key}",
                        SEVERITY[RULE_EXCEEDANCE],
                        f"{key} {value:.1f} {unit} over the GB 3095-2012 class II limit {limit:g}",
                        hour.site,
                        at_ns,
                        {"value": value, "limit": limit, "hour_ns": hour.hour_ns},
                    )
                )
            else:
                self.alerts.clear(RULE_EXCEEDANCE, f"{subject}/{key}", at_ns)
        result = hour.result
        if result is None or result.aqi is None or result.level is None:
            return
        if result.aqi > 100:
            # level 3 raises with the declared severity; worse levels raise it
            severity = {3: SEVERITY[RULE_AQI], 4: Severity.MAJOR}.get(
                result.level.number, Severity.CRITICAL
            )
            self.alerts.raise_alert(
                AlertSignal(
                    RULE_AQI,
                    subject,
                    severity,
                    f"AQI {result.aqi} ({result.level.category_zh} {result.level.category_en}), "
                    f"primary {result.primary_text}",
                    hour.site,
                    at_ns,
                    {"aqi": result.aqi, "level": result.level.number, "hour_ns": hour.hour_ns},
                )
            )
        else:
            self.alerts.clear(RULE_AQI, subject, at_ns)

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


def hour_means(
    readings: Sequence[tuple[str, int, str, float]], min_valid_minutes: int
) -> tuple[dict[str, float], dict[str, int]]:
    """Per pollutant: the hour's mean when valid, and its number of minutes with valid data.

    A station's minute data is used when it sent any for the pollutant in that hour, otherwise
    its real-time data. The mean is valid with ≥ `min_valid_minutes` distinct minutes of data.
    """
    by: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for source, ts_ns, pollutant, value in readings:
        by.setdefault((pollutant, source), []).append((ts_ns, value))
    means: dict[str, float] = {}
    minutes: dict[str, int] = {}
    for pollutant in aqi.POLLUTANTS:
        values = next((by[(pollutant, s)] for s in SOURCES if (pollutant, s) in by), None)
        if values is None:
            continue
        covered = len({ts // NS_PER_MIN for ts, _ in values})
        minutes[pollutant] = covered
        if covered >= min_valid_minutes:
            means[pollutant] = sum(v for _, v in values) / len(values)
    return means, minutes


def sensor_findings(
    readings: Sequence[tuple[str, int, str, float]], min_valid_minutes: int
) -> dict[tuple[str, str], str]:
    """Data-quality findings of one hour: a sensor stuck on one value, or one absurd jump."""
    values: dict[str, list[float]] = {}
    for _, _, pollutant, value in readings:
        values.setdefault(pollutant, []).append(value)
    found: dict[tuple[str, str], str] = {}
    for pollutant, series in values.items():
        if len(series) >= min_valid_minutes and max(series) == min(series):
            found[(RULE_FLATLINE, pollutant)] = (
                f"{pollutant} stuck at {series[0]:g} for {len(series)} readings in the hour"
            )
        ordered = sorted(series)
        median = ordered[len(ordered) // 2]
        jump = SPIKE_MIN_JUMP.get(pollutant, SPIKE_MIN_JUMP_UGM3)
        peak = ordered[-1]
        if len(series) >= 10 and peak > SPIKE_RATIO * median and peak - median > jump:
            found[(RULE_SPIKE, pollutant)] = (
                f"{pollutant} jumped to {peak:g} against an hourly median of {median:g}"
            )
    return found


def hourly_series(
    rows: Sequence[tuple[int, str, float | None]], hour_ns: int
) -> dict[str, list[float | None]]:
    """Per pollutant, the 24 hourly means ending with `hour_ns` (None where missing/invalid)."""
    series: dict[str, list[float | None]] = {p: [None] * 24 for p in aqi.POLLUTANTS}
    for row_hour, pollutant, mean in rows:
        index = 23 - (hour_ns - row_hour) // NS_PER_HOUR
        if pollutant in series and 0 <= index < 24:
            series[pollutant][index] = mean
    return series


def moving_means(series: dict[str, list[float | None]]) -> dict[str, float]:
    """24-h moving means (≥ 20 valid hours) and the O3 8-h moving mean (≥ 6 of 8)."""
    moving: dict[str, float] = {}
    for pollutant, values in series.items():
        if pollutant == "o3":  # O3 is judged by 1-h and 8-h means; a 24-h O3 mean means nothing
            continue
        mean = aqi.mean_24h(values)
        if mean is not None:
            moving[f"{pollutant}_24h"] = mean
    o3 = aqi.o3_8h_moving(series.get("o3", []))
    if o3 is not None:
        moving["o3_8h"] = o3
    return moving
