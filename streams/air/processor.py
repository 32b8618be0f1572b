"""The air StreamProcessor: each station's readings → hourly and 24-h means with AQI
(`air_hourly`) and its natural days' reports (`air_daily`), each rated by the edition of the
standards in force at its own time, and the air rules' alerts.

Never count a reading twice (its identity is station, source, time) and never read a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hazwatch.alerts.model import AlertSignal, AlertSink, Severity
from hazwatch.base.points import Point
from hazwatch.devices.decode import Decoded
from hazwatch.streams.air import aqi, coverage, daily
from hazwatch.streams.air.audit import Mark
from hazwatch.streams.air.auditor import Auditor
from hazwatch.streams.air.rules import (
    NS_PER_HOUR,
    RULE_AQI,
    RULE_EXCEEDANCE,
    SENSOR_RULES,
    SEVERITY,
    HourReading,
    aqi_severity,
    exceedance_message,
    exceedance_severity,
    limit_checks,
)
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.air.standards import (
    DEFAULT_ZONE,
    AqiEdition,
    LimitSet,
    aqi_edition_at,
    grade_of,
    limits_at,
)
from hazwatch.streams.air.store import COLUMNS, SOURCES, AirStore, Reading

MEASUREMENT = "air_hourly"
NEVER_NS = 2**63 - 1  # the due time of a station with no open hour
MAX_KNOWN_STATIONS = 100_000  # a bound on the in-memory station cache (refilled from the store)
_COLUMN_FLAGS = tuple((name, f"{name}_flag") for name in COLUMNS)
_NO_VALUES: list[float | None] = [None] * len(COLUMNS)


@dataclass(frozen=True, slots=True)
class StationAir:
    """What the air part needs to know of a station from the registry."""

    zone_h: float = 8.0  # its natural day's zone (UTC+zone_h)
    functional_zone: str = DEFAULT_ZONE  # 一类区 (grade I limits) or 二类区 (grade II)
    minute_interval_s: float | None = None  # its interval records' interval; None: by spacing

    @property
    def grade(self) -> int:
        return grade_of(self.functional_zone)


StationLookup = Callable[[str, str], StationAir]


def _unregistered(site: str, station: str) -> StationAir:
    return StationAir()


@dataclass(slots=True)
class HourResult:
    site: str
    station: str
    hour_ns: int
    means: dict[str, float]  # valid 1-h means
    minutes: dict[str, int]  # valid minutes per pollutant
    moving: dict[str, float] = field(default_factory=dict)  # so2_24h, …, o3_8h
    result: aqi.AqiResult | None = None
    # (rule, pollutant) → the audit's mark it alerts on: its note and numbers
    quality: dict[tuple[str, str], Mark] = field(default_factory=dict)
    # the standards that rate the hour (those in force at its start) and its limit grade
    edition: AqiEdition = field(default_factory=lambda: aqi_edition_at(0))
    limits: LimitSet = field(default_factory=lambda: limits_at(0))
    grade: int = 2
    # limit key → (value, limit, hours over in a row) of the limits the hour exceeds, its
    # grade, and the grade the hour before had (None: it was not over)
    over: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    severity: dict[str, Severity] = field(default_factory=dict)
    severity_before: dict[str, Severity | None] = field(default_factory=dict)
    checked: set[str] = field(default_factory=set)  # the limit keys the hour has a value for
    # the hour was written before (computed again): its point replaces the stored one whole,
    # or InfluxDB would keep the fields this result no longer has (an AQI an audit took back)
    replaces: bool = False

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
        # which standards rated the hour, and the limits it is over (with hours in a row)
        fields["aqi_standard"] = self.edition.name
        fields["limits_standard"] = self.limits.label_zh
        fields["grade"] = self.grade
        fields["over"] = ",".join(
            f"{k}:{run}:{self.severity[k].value}" for k, (_, _, run) in self.over.items()
        )
        tags = {"site": self.site, "station": self.station}
        return Point(MEASUREMENT, tags, fields, self.hour_ns, replaces=self.replaces)


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


class AirProcessor:
    """StreamProcessor: keeps readings in the air store, closes hours, writes `air_hourly`."""

    name = "air_hourly"

    def __init__(
        self,
        store: AirStore,
        alerts: AlertSink | None = None,
        settings: HourlySettings | None = None,
        stations: StationLookup | None = None,
        auditor: Auditor | None = None,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.settings = settings or HourlySettings()
        self.stations = stations or _unregistered  # the registry's zone, grade and interval
        # the data audit (streams/air/auditor.py): marked readings stay out of every hour
        self.auditor = auditor or Auditor(store, settings=self.settings)
        self._lock = threading.Lock()
        # (site, station) → (newest_ns, due_ns): the station's newest reading time and when its
        # earliest open hour closes by data time, as this process last knew them, so that a
        # batch that cannot close an hour skips the close query. Only an optimisation: the
        # store is the truth, a station not in here is looked up there, and an hour that
        # another worker's data makes due is closed by tick().
        self._known: dict[tuple[str, str], tuple[int, int]] = {}

    # StreamProcessor
    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        self.auditor.keep_flagged(batch)  # flagged values: kept with their flag, not counted
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
            with self.store.transaction():
                self.store.insert(rows, hours, newest, now_ns)
                if known is None:  # an hour may be over: close it, and learn what stays open
                    points, closed = self._close(now_ns, set(newest))
                    known = self._look_up(set(newest))
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

    def _look_up(self, stations: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
        """(newest_ns, due_ns) of these stations in the store."""
        after_data = int(self.settings.close_after_data_s * 1e9)
        return {
            key: (newest_ns, NEVER_NS if hour_ns is None else hour_ns + NS_PER_HOUR + after_data)
            for key, (newest_ns, hour_ns) in self.store.earliest_open(stations).items()
        }

    def tick(self, now_ns: int) -> list[Point]:
        with self._lock:
            with self.store.transaction():
                points, closed = self._close(now_ns, None)
                self.store.prune(int(self.settings.keep_readings_h * 3600 * 1e9))
            if points:  # closing may have re-opened later hours: look the stations up again
                self._known.clear()
            self._alert_all(closed)
        return points

    # closing hours
    def _close(
        self, now_ns: int, stations: set[tuple[str, str]] | None
    ) -> tuple[list[Point], list[HourResult]]:
        """Close the hours that are over; returns their points and the stations' newest hours."""
        after_data = int(self.settings.close_after_data_s * 1e9)
        after_clock = int(self.settings.close_after_clock_s * 1e9)
        points: list[Point] = []
        newest_closed: dict[tuple[str, str], HourResult] = {}
        closed_hours: set[tuple[str, str, int]] = set()
        for _ in range(100):  # re-opened later hours (late data) are closed in the next round
            rows = self.store.due_hours(after_data, now_ns - after_clock)
            if stations is not None:
                rows = [r for r in rows if (r[0], r[1]) in stations]
            if not rows:
                break
            for site, station, hour_ns, closed_ns in rows:
                result = self._close_hour(site, station, hour_ns)
                points.append(result.point())
                closed_hours.add((site, station, hour_ns))
                if hour_ns >= closed_ns:
                    self.store.mark_closed(site, station, hour_ns)
                    newest_closed[(site, station)] = result
        points.extend(self._report_days(closed_hours))
        return points, list(newest_closed.values())

    def _close_hour(self, site: str, station: str, hour_ns: int) -> HourResult:
        info = self.stations(site, station)
        intervals = {"minute": info.minute_interval_s} if info.minute_interval_s else None
        readings = self.store.readings(site, station, hour_ns, hour_ns + NS_PER_HOUR)
        # data audit: the hour is what no invalid mark excludes (its automatic marks made here)
        screened = self.auditor.screen(site, station, hour_ns, readings)
        readings = screened.kept
        means, minutes = hour_means(readings, self.settings.min_valid_minutes, hour_ns, intervals)
        means, minutes = self.auditor.screen_means(screened, means, minutes)
        old = self.store.last_means(site, station, hour_ns)
        new = {p: (means.get(p), m) for p, m in minutes.items()}
        self.store.close_hour(site, station, hour_ns, new)
        if old and old != new:
            # Later hours' moving means used this hour: compute them again.
            self.store.reopen(site, station, hour_ns, hour_ns + 23 * NS_PER_HOUR)
        history = self.store.means_between(site, station, hour_ns - 24 * NS_PER_HOUR, hour_ns)
        moving = moving_means(hourly_series(history, hour_ns))
        edition = aqi_edition_at(hour_ns)  # a datum is rated by the edition of its own time
        result = aqi.hourly_aqi(
            means, o3_8h=moving.get("o3_8h"), so2_24h=moving.get("so2_24h"), edition=edition
        )
        hour = HourResult(site, station, hour_ns, means, minutes, moving, result)
        hour.edition, hour.limits, hour.grade = edition, limits_at(hour_ns), info.grade
        self._judge_limits(hour)
        hour.quality = screened.findings  # sensor_flatline and sensor_spike: the audit's marks
        hour.replaces = self.store.has_result(site, station, hour_ns)
        self.store.save_result(
            site,
            station,
            hour_ns,
            result.aqi,
            result.level.number if result.level else None,
            result.primary_text,
            hour.point().fields,
        )
        return hour

    def _judge_limits(self, hour: HourResult) -> None:
        """The limits in force the hour exceeds, each with its hours over in a row (counted
        back over the station's earlier hours, each judged by the limits of its own time)."""
        values = {**hour.means, **hour.moving}
        checks = limit_checks(
            values, hour.limits, hour.grade, rounds=hour.edition.rounds_concentrations
        )
        hour.checked = set(checks)
        over = {key: found for key, found in checks.items() if found is not None}
        if not over:
            return
        back = self.settings.exceedance_critical_hours
        earlier = self.store.results_between(
            hour.site, hour.station, hour.hour_ns - back * NS_PER_HOUR, hour.hour_ns - 1
        )
        for key, (value, limit) in over.items():
            run = 1
            while run < back:
                fields = earlier.get(hour.hour_ns - run * NS_PER_HOUR)
                if fields is None or key not in _over_keys(fields):
                    break
                run += 1
            hour.over[key] = (value, limit, run)
            hour.severity[key] = exceedance_severity(value / limit, run, self.settings)
            before = earlier.get(hour.hour_ns - NS_PER_HOUR)
            hour.severity_before[key] = _over_keys(before).get(key) if before else None

    # daily reports
    def _report_days(self, closed: set[tuple[str, str, int]]) -> list[Point]:
        """The daily reports of the days the closed hours fall in (and of earlier days whose
        report was made before they were over): saved each time, written to the point store
        as `air_daily` once the station's data has passed the day's end."""
        days: dict[tuple[str, str], set[int]] = {}
        for site, station, hour_ns in closed:
            zone_h = self.stations(site, station).zone_h
            days.setdefault((site, station), set()).add(daily.day_start(hour_ns, zone_h))
        points: list[Point] = []
        for (site, station), starts in sorted(days.items()):
            newest = self.store.newest_ns(site, station) or 0
            pending = set(self.store.incomplete_days(site, station, min(starts)))
            for day_ns in sorted(starts | pending):
                before = self.store.day(site, station, day_ns)
                report = self._day_report(site, station, day_ns, newest)
                if report.complete:
                    point = report.point()
                    # written before (complete then): the new report replaces it whole
                    point.replaces = before is not None and before[0]
                    points.append(point)
        return points

    def _day_report(self, site: str, station: str, day_ns: int, newest_ns: int) -> daily.DayResult:
        """One day's report from its stored hourly means, rated by the standards of its start."""
        info = self.stations(site, station)
        rows = self.store.means_between(site, station, day_ns - 1, day_ns + 23 * NS_PER_HOUR)
        hourly: dict[str, list[float | None]] = {p: [None] * 24 for p in aqi.POLLUTANTS}
        for hour_ns, pollutant, mean in rows:
            index = (hour_ns - day_ns) // NS_PER_HOUR
            if pollutant in hourly and 0 <= index < 24:
                hourly[pollutant][index] = mean
        report = daily.day_report(
            site,
            station,
            day_ns,
            hourly,
            edition=aqi_edition_at(day_ns),
            limits=limits_at(day_ns),
            grade=info.grade,
        )
        report.complete = newest_ns >= day_ns + daily.NS_PER_DAY
        if report.heavy:
            before = self.store.day(site, station, day_ns - daily.NS_PER_DAY)
            report.heavy_days = (before[1] if before is not None else 0) + 1
        self.store.save_day(
            site,
            station,
            day_ns,
            report.complete,
            report.result.aqi,
            report.heavy_days,
            report.fields(),
        )
        return report

    # alerts
    def _alert_all(self, hours: Sequence[HourResult]) -> None:
        for hour in hours:
            self._alert(hour, hour.hour_ns + NS_PER_HOUR)

    def _alert(self, hour: HourResult, at_ns: int) -> None:
        if self.alerts is None:
            return
        subject = f"{hour.site}/{hour.station}"
        for rule in SENSOR_RULES:
            for pollutant in aqi.POLLUTANTS:
                mark = hour.quality.get((rule, pollutant))
                if mark is None:
                    self.alerts.clear(rule, f"{subject}/{pollutant}", at_ns)
                    continue
                self.alerts.raise_alert(
                    AlertSignal(
                        rule,
                        f"{subject}/{pollutant}",
                        SEVERITY[rule],
                        mark.note,
                        hour.site,
                        at_ns,
                        {"hour_ns": hour.hour_ns, "pollutant": pollutant, **mark.numbers},
                    )
                )
        self._alert_limits(hour, subject, at_ns)
        result = hour.result
        if result is None or result.aqi is None or result.level is None:
            return
        severity = aqi_severity(result.aqi, result.level.number, self.settings.aqi_alert_above)
        if severity is None:
            self.alerts.clear(RULE_AQI, subject, at_ns)
            return
        self.alerts.raise_alert(
            AlertSignal(
                RULE_AQI,
                subject,
                severity,
                f"AQI {result.aqi} ({result.level.category_zh} {result.level.category_en}), "
                f"primary {result.primary_text}",
                hour.site,
                at_ns,
                {
                    "aqi": result.aqi,
                    "level": result.level.number,
                    "hour_ns": hour.hour_ns,
                    "primary": list(result.primary),
                },
            )
        )

    def _alert_limits(self, hour: HourResult, subject: str, at_ns: int) -> None:
        """air_exceedance per limit in force: raised graded by how far over and for how long,
        raised again when its grade rises (the open alert keeps the grade it opened with),
        cleared once the hour is within the limit."""
        assert self.alerts is not None
        for key in sorted(hour.checked):
            found = hour.over.get(key)
            if found is None:
                self.alerts.clear(RULE_EXCEEDANCE, f"{subject}/{key}", at_ns)
                continue
            value, limit, run = found
            severity = hour.severity[key]
            before = hour.severity_before.get(key)
            if before is not None and _rank(severity) > _rank(before):
                # longer over than the last hour's grade allowed: reopen at the new grade
                self.alerts.clear(RULE_EXCEEDANCE, f"{subject}/{key}", at_ns)
            self.alerts.raise_alert(
                AlertSignal(
                    RULE_EXCEEDANCE,
                    f"{subject}/{key}",
                    severity,
                    exceedance_message(key, value, limit, hour.limits, hour.grade, run),
                    hour.site,
                    at_ns,
                    {
                        "value": value,
                        "limit": limit,
                        "ratio": round(value / limit, 3),
                        "hours": run,
                        "standard": hour.limits.label_zh,
                        "grade": hour.grade,
                        "hour_ns": hour.hour_ns,
                    },
                )
            )


def _rank(severity: Severity) -> int:
    return {Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}.get(severity, 0)


def _over_keys(fields: Mapping[str, object]) -> dict[str, Severity | None]:
    """The limit keys an earlier hour's stored fields say it was over, with their grades
    (`over`: "key:hours:severity,…")."""
    text = fields.get("over")
    if not isinstance(text, str) or not text:
        return {}
    found: dict[str, Severity | None] = {}
    for item in text.split(","):
        key, _, rest = item.partition(":")
        grade = rest.rpartition(":")[2]
        found[key] = Severity(grade) if grade in {s.value for s in Severity} else None
    return found


def hour_means(
    readings: Sequence[HourReading],
    min_valid_minutes: int,
    hour_ns: int | None = None,
    intervals_s: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, int]]:
    """Per pollutant: the hour's mean when valid, and the minutes of the hour its data covers.

    Each record counts for the time it covers (its interval: the registry's, else its records'
    spacing), interval data first and real-time data where that does not reach, so 5- or
    10-minute data makes valid hours and real-time data fills its gaps (streams/air/coverage.py).
    The mean is valid when the data covers ≥ `min_valid_minutes` (GB 3095 Table 4: 45).
    """
    if hour_ns is None:  # the hour the readings are in
        first = min((ts for _, ts, _, _ in readings), default=0)
        hour_ns = first - first % NS_PER_HOUR
    means: dict[str, float] = {}
    minutes: dict[str, int] = {}
    present = {pollutant for _, _, pollutant, _ in readings}
    for pollutant in aqi.POLLUTANTS:
        if pollutant not in present:
            continue
        mean, covered_min = coverage.covered_mean(readings, pollutant, hour_ns, intervals_s)
        minutes[pollutant] = int(covered_min + 1e-9)
        if mean is not None and covered_min + 1e-9 >= min_valid_minutes:
            means[pollutant] = mean
    return means, minutes


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
