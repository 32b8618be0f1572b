"""The daily report (日报) of one station's natural day, pure: the day's means of SO2, NO2, CO,
PM10 and PM2.5, O3's daily maximum 8-h mean, their validity, the AQI by the edition in force
that day, the limits it exceeds and whether it is a heavy-pollution day (docs/air-standards.md).

Never read a clock or a store here: the day's hourly means and its editions come in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hazwatch.base.points import Point
from hazwatch.streams.air import aqi
from hazwatch.streams.air.standards import (
    MIN_8H_MEANS_PER_DAY,
    MIN_HOURS_PER_8H,
    MIN_HOURS_PER_DAY,
    AqiEdition,
    LimitSet,
    round_concentration,
)

MEASUREMENT = "air_daily"
NS_PER_HOUR = 3600 * 1_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR
HEAVY_AQI = 200  # a heavy-pollution day: AQI above this (HJ 633 level 5 重度污染 or worse)
DAY_MEANS = ("so2", "no2", "co", "pm10", "pm25")


def day_start(ts_ns: int, zone_h: float) -> int:
    """00:00 of the natural day holding `ts_ns` in the station's zone (UTC+zone_h), in UTC ns."""
    offset = int(zone_h * NS_PER_HOUR)
    return (ts_ns + offset) // NS_PER_DAY * NS_PER_DAY - offset


def o3_daily_max_8h(hourly: list[float | None]) -> tuple[float | None, int]:
    """O3's daily maximum 8-h mean from the day's 24 hourly means, and how many valid 8-h means
    it is the maximum of: the means ending 08:00 … 24:00 (windows inside the day), each valid
    with ≥ 6 hours (GB 3095 Table 4)."""
    means: list[float] = []
    for first in range(17):
        window = [v for v in hourly[first : first + 8] if v is not None]
        if len(window) >= MIN_HOURS_PER_8H:
            means.append(sum(window) / len(window))
    return (max(means) if means else None), len(means)


@dataclass(slots=True)
class DayResult:
    site: str
    station: str
    day_ns: int
    means: dict[str, float]  # valid daily means; o3_8h: the daily maximum 8-h mean
    hours: dict[str, int]  # valid hourly values per pollutant
    result: aqi.AqiResult
    edition: AqiEdition
    limits: LimitSet
    grade: int
    over: dict[str, tuple[float, float]] = field(default_factory=dict)  # key → (value, limit)
    complete: bool = False  # the station's data has passed the day's end
    heavy_days: int = 0  # heavy-pollution days in a row ending with this one (0: not heavy)

    @property
    def heavy(self) -> bool:
        return self.result.aqi is not None and self.result.aqi > HEAVY_AQI

    def fields(self) -> dict[str, float | int | str | bool]:
        out: dict[str, float | int | str | bool] = {}
        for name, value in self.means.items():
            out[name] = round(value, 6)
        for name, count in self.hours.items():
            out[f"{name}_hours"] = count
        if self.result.aqi is not None and self.result.level is not None:
            for item, value in self.result.iaqi.items():
                out[f"iaqi_{item}"] = value
            out["aqi"] = self.result.aqi
            out["level"] = self.result.level.number
            out["primary"] = self.result.primary_text
        out["aqi_standard"] = self.edition.name
        out["limits_standard"] = self.limits.label_zh
        out["grade"] = self.grade
        out["over"] = ",".join(self.over)
        out["heavy"] = self.heavy
        out["heavy_days"] = self.heavy_days
        out["complete"] = self.complete
        return out

    def point(self) -> Point:
        return Point(
            MEASUREMENT, {"site": self.site, "station": self.station}, self.fields(), self.day_ns
        )


def day_report(
    site: str,
    station: str,
    day_ns: int,
    hourly: Mapping[str, list[float | None]],
    *,
    edition: AqiEdition,
    limits: LimitSet,
    grade: int,
) -> DayResult:
    """The day's report from its 24 hourly means per pollutant (index 0 = 00:00–01:00; None
    where the hour is missing or invalid).

    A daily mean needs ≥ 20 valid hours (GB 3095 Table 4). O3's daily maximum 8-h mean counts
    with ≥ 14 valid 8-h means, or with fewer when it is over the limit anyway (HJ 663). The
    edition, limits and grade are those in force at the day's start.
    """
    means: dict[str, float] = {}
    hours: dict[str, int] = {}
    for name in (*DAY_MEANS, "o3"):
        values = [v for v in hourly.get(name, []) if v is not None]
        hours[name] = len(values)
        if name != "o3" and len(values) >= MIN_HOURS_PER_DAY:
            means[name] = sum(values) / len(values)
    o3 = list(hourly.get("o3", [None] * 24))
    o3_8h, windows = o3_daily_max_8h(o3)
    limit_8h = limits.limits[grade]["o3_8h"]
    if o3_8h is not None and (windows >= MIN_8H_MEANS_PER_DAY or o3_8h > limit_8h):
        means["o3_8h"] = o3_8h
    o3_1h = [v for v in o3 if v is not None]
    o3_1h_max = max(o3_1h) if len(o3_1h) >= MIN_HOURS_PER_DAY else None
    if o3_1h_max is not None and edition.daily_o3_1h:
        means["o3_1h_max"] = o3_1h_max
    result = aqi.daily_aqi(
        {name: means.get(name) for name in DAY_MEANS},
        o3_1h_max=o3_1h_max,
        o3_8h_max=means.get("o3_8h"),
        edition=edition,
    )
    over: dict[str, tuple[float, float]] = {}
    table = limits.limits[grade]
    for key, value in (
        *((f"{name}_24h", means.get(name)) for name in DAY_MEANS),
        ("o3_8h", means.get("o3_8h")),
    ):
        limit = table.get(key)
        if value is None or limit is None:
            continue
        compared = round_concentration(key, value) if edition.rounds_concentrations else value
        if compared > limit:
            over[key] = (compared, limit)
    return DayResult(site, station, day_ns, means, hours, result, edition, limits, grade, over)
