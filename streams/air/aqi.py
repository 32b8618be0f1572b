"""IAQI and AQI per HJ 633 (2012 or 2026, as the datum's time says), data validity per GB 3095:
pure functions over concentrations; the editions' numbers live in streams/air/standards.py.

Never read a clock or a store here; concentrations, editions and times come in as arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hazwatch.streams.air.standards import (
    GB3095_2012,
    HJ633_2012,
    IAQI_STEPS,
    MIN_HOURS_PER_8H,
    MIN_HOURS_PER_DAY,
    MIN_MINUTES_PER_HOUR,
    POLLUTANTS,
    AqiEdition,
    LimitSet,
    round_concentration,
)

__all__ = [
    "BREAKPOINTS",
    "IAQI_STEPS",
    "LEVELS",
    "LIMITS_CLASS_II",
    "MIN_HOURS_PER_8H",
    "MIN_HOURS_PER_DAY",
    "MIN_MINUTES_PER_HOUR",
    "POLLUTANTS",
    "AqiResult",
    "Level",
    "combine",
    "daily_aqi",
    "exceedances",
    "hourly_aqi",
    "iaqi",
    "level_of",
]

# HJ 633-2012 table 1, kept under its old name (the 2026 table is standards.HJ633_2026's).
BREAKPOINTS: dict[str, tuple[float, ...]] = dict(HJ633_2012.breakpoints)
# GB 3095-2012 class II limits, kept under their old name; the limits in force at a time are
# standards.limits_at(ts).
LIMITS_CLASS_II: dict[str, float] = dict(GB3095_2012.limits[2])


@dataclass(frozen=True, slots=True)
class Level:
    number: int  # 1..6
    low: int
    high: int
    category_zh: str
    category_en: str
    color_zh: str
    color_en: str
    rgb: str  # the colour as HJ 633-2012 gives it in RGB, as CSS hex


# HJ 633-2012 表 2 (空气质量指数及相关信息): levels, categories and their colours; the RGB of
# each colour is the standard's own (附录 A: 绿 0,228,0; 黄 255,255,0; 橙 255,126,0; 红 255,0,0;
# 紫 153,0,76; 褐红 126,0,35), which the screen draws with.
LEVELS: tuple[Level, ...] = (
    Level(1, 0, 50, "优", "excellent", "绿色", "green", "#00e400"),
    Level(2, 51, 100, "良", "good", "黄色", "yellow", "#ffff00"),
    Level(3, 101, 150, "轻度污染", "lightly polluted", "橙色", "orange", "#ff7e00"),
    Level(4, 151, 200, "中度污染", "moderately polluted", "红色", "red", "#ff0000"),
    Level(5, 201, 300, "重度污染", "heavily polluted", "紫色", "purple", "#99004c"),
    Level(6, 301, 10**9, "严重污染", "severely polluted", "褐红色", "maroon", "#7e0023"),
)


def iaqi(table: str, concentration: float, edition: AqiEdition = HJ633_2012) -> int | None:
    """IAQI of one concentration against one breakpoint table of an edition, rounded up.

    HJ 633 formula 1: IAQI = (IAQI_hi − IAQI_lo)/(BP_hi − BP_lo)·(C − BP_lo) + IAQI_lo, and the
    result rounded up to an integer (HJ 633-2026 4.2.6). The concentration is taken as given
    (`rate` rounds it first where the edition asks). Above the end of a table that stops early
    (so2_1h, o3_8h): the edition's fixed IAQI, or None for the caller's substitute (2012); 500
    above the top of a full table.
    """
    if concentration < 0 or not math.isfinite(concentration):
        raise ValueError(f"{table}: concentration must be a finite value ≥ 0, got {concentration}")
    points = edition.breakpoints[table]
    for index in range(1, len(points)):
        bp_lo, bp_hi = points[index - 1], points[index]
        if concentration <= bp_hi:
            lo, hi = IAQI_STEPS[index - 1], IAQI_STEPS[index]
            value = (hi - lo) / (bp_hi - bp_lo) * (concentration - bp_lo) + lo
            # Round up, but not a float's last-bit noise (50.000000001 stays 50).
            return math.ceil(round(value, 6))
    if len(points) < len(IAQI_STEPS):
        if table == "so2_1h":
            return edition.so2_1h_over_iaqi
        if table == "o3_8h":
            return edition.o3_8h_over_iaqi
        return None
    return IAQI_STEPS[-1]


def prepared(pollutant: str, concentration: float, edition: AqiEdition) -> float:
    """The concentration as the edition rates it: rounded first (HJ 633-2026 4.2.2) or not."""
    return (
        round_concentration(pollutant, concentration)
        if edition.rounds_concentrations
        else (concentration)
    )


def level_of(aqi: int) -> Level:
    for level in LEVELS:
        if aqi <= level.high:
            return level
    return LEVELS[-1]


@dataclass(frozen=True, slots=True)
class AqiResult:
    aqi: int | None
    iaqi: dict[str, int]  # per item: so2, no2, pm10, co, o3 (1-h), o3_8h, pm25
    primary: tuple[str, ...]  # empty when AQI ≤ 50 (HJ 633: no primary pollutant)
    level: Level | None
    exceeding: tuple[str, ...]  # IAQI > 100, only where the edition names them (2012)
    edition: str = HJ633_2012.name

    @property
    def primary_text(self) -> str:
        return ",".join(self.primary)


def combine(iaqis: Mapping[str, int], edition: AqiEdition = HJ633_2012) -> AqiResult:
    """AQI = max IAQI; primary pollutant(s) when AQI > 50, ties together; level; the
    pollutants over IAQI 100 where the edition still names them (HJ 633-2012 only)."""
    clean = {k: v for k, v in iaqis.items()}
    if not clean:
        return AqiResult(None, {}, (), None, (), edition.name)
    aqi = max(clean.values())
    primary = tuple(k for k, v in clean.items() if v == aqi) if aqi > 50 else ()
    exceeding = tuple(k for k, v in clean.items() if v > 100) if edition.names_exceeding else ()
    return AqiResult(aqi, clean, primary, level_of(aqi), exceeding, edition.name)


def hourly_aqi(
    hour_ugm3: Mapping[str, float | None],
    *,
    o3_8h: float | None = None,
    so2_24h: float | None = None,
    edition: AqiEdition = HJ633_2012,
) -> AqiResult:
    """The real-time report's (实时报) AQI from 1-h means (CO in mg/m³), by one edition.

    SO2, NO2, CO and O3 use their 1-h tables; PM10 and PM2.5 have only 24-h tables, against
    which their 1-h means are rated. HJ 633-2012: an SO2 1-h mean above 800 µg/m³ is rated by
    its 24-h mean (`so2_24h`, left out when unknown), and O3's 8-h moving mean counts when
    given, except above 800 µg/m³. HJ 633-2026: the six 1-h means only, each rounded first;
    SO2 above 800 rates 200.
    """
    iaqis: dict[str, int] = {}
    for name in POLLUTANTS:
        value = hour_ugm3.get(name)
        if value is None:
            continue
        table = f"{name}_24h" if name in ("pm10", "pm25") else f"{name}_1h"
        rated = iaqi(table, prepared(name, value, edition), edition)
        if rated is None and name == "so2" and so2_24h is not None:
            rated = iaqi("so2_24h", prepared(name, so2_24h, edition), edition)
        if rated is not None:
            iaqis[name] = rated
    if o3_8h is not None and edition.hourly_o3_8h:
        rated_8h = iaqi("o3_8h", prepared("o3", o3_8h, edition), edition)
        if rated_8h is not None:
            iaqis["o3_8h"] = rated_8h
    return combine(iaqis, edition)


def daily_aqi(
    day_ugm3: Mapping[str, float | None],
    *,
    o3_1h_max: float | None = None,
    o3_8h_max: float | None = None,
    edition: AqiEdition = HJ633_2012,
) -> AqiResult:
    """The daily report's (日报) AQI: 24-h means of SO2, NO2, PM10, CO, PM2.5 and O3's daily
    maximum 8-h mean; HJ 633-2012 rates O3's daily 1-h maximum too.

    O3's 8-h maximum above 800 µg/m³: HJ 633-2012 does not rate it (O3 is then rated by its
    1-h maximum); HJ 633-2026 rates it 300.
    """
    iaqis: dict[str, int] = {}
    for name in ("so2", "no2", "pm10", "co", "pm25"):
        value = day_ugm3.get(name)
        if value is not None:
            rated = iaqi(f"{name}_24h", prepared(name, value, edition), edition)
            if rated is not None:
                iaqis[name] = rated
    if o3_1h_max is not None and edition.daily_o3_1h:
        rated_1h = iaqi("o3_1h", prepared("o3", o3_1h_max, edition), edition)
        if rated_1h is not None:
            iaqis["o3"] = rated_1h
    if o3_8h_max is not None:
        rated_8h = iaqi("o3_8h", prepared("o3", o3_8h_max, edition), edition)
        if rated_8h is not None:
            iaqis["o3_8h"] = rated_8h
    return combine(iaqis, edition)


def mean_if_valid(values: Sequence[float | None], min_count: int) -> float | None:
    """The mean of the values present, or None when fewer than `min_count` are (GB 3095 table 4)."""
    present = [v for v in values if v is not None]
    if len(present) < min_count:
        return None
    return sum(present) / len(present)


def o3_8h_moving(hourly: Sequence[float | None]) -> float | None:
    """O3 8-h moving mean ending at the last of (up to) 8 hourly means: ≥ 6 of them valid."""
    return mean_if_valid(list(hourly[-8:]), MIN_HOURS_PER_8H)


def mean_24h(hourly: Sequence[float | None]) -> float | None:
    """A 24-h mean from (up to) 24 hourly means: ≥ 20 of them valid."""
    return mean_if_valid(list(hourly[-24:]), MIN_HOURS_PER_DAY)


def exceedances(
    means: Mapping[str, float | None], limits: LimitSet = GB3095_2012, grade: int = 2
) -> dict[str, tuple[float, float]]:
    """Which limits of a set and grade the given means (keys like `so2_1h`) exceed."""
    table = limits.limits[grade]
    over: dict[str, tuple[float, float]] = {}
    for key, value in means.items():
        limit = table.get(key)
        if value is not None and limit is not None and value > limit:
            over[key] = (value, limit)
    return over
