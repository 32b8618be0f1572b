"""IAQI and AQI per HJ 633-2012, data validity per GB 3095-2012: pure functions over concentrations.

Never read a clock or a store here; concentrations and times come in as arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# HJ 633-2012 table 1: IAQI steps and the concentration breakpoints of each pollutant.
# µg/m³ except CO in mg/m³. `None` marks the end of a table that stops early (SO2 1-h, O3 8-h).
IAQI_STEPS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: dict[str, tuple[float, ...]] = {
    "so2_24h": (0, 50, 150, 475, 800, 1600, 2100, 2620),
    "so2_1h": (0, 150, 500, 650, 800),
    "no2_24h": (0, 40, 80, 180, 280, 565, 750, 940),
    "no2_1h": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "pm10_24h": (0, 50, 150, 250, 350, 420, 500, 600),
    "co_24h": (0, 2, 4, 14, 24, 36, 48, 60),
    "co_1h": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 160, 215, 265, 800),
    "pm25_24h": (0, 35, 75, 115, 150, 250, 350, 500),
}
# Above these the 1-h SO2 / 8-h O3 tables end: SO2 is then rated by its 24-h mean, O3 by 1-h.
SO2_1H_CEILING_UGM3 = 800.0
O3_8H_CEILING_UGM3 = 800.0

# GB 3095-2012 class II limits (residential, commercial, industrial areas), for exceedance.
LIMITS_CLASS_II: dict[str, float] = {
    "so2_1h": 500,
    "so2_24h": 150,
    "no2_1h": 200,
    "no2_24h": 80,
    "co_1h": 10,
    "co_24h": 4,
    "o3_1h": 200,
    "o3_8h": 160,
    "pm10_24h": 150,
    "pm25_24h": 75,
}

# GB 3095-2012 table 4 / HJ 633: how much data makes a mean valid.
MIN_MINUTES_PER_HOUR = 45
MIN_HOURS_PER_DAY = 20
MIN_HOURS_PER_8H = 6

POLLUTANTS: tuple[str, ...] = ("so2", "no2", "pm10", "co", "o3", "pm25")


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


def iaqi(table: str, concentration: float) -> int | None:
    """IAQI of one concentration against one breakpoint table, rounded up to an integer.

    HJ 633-2012 formula 1: IAQI = (IAQI_hi − IAQI_lo)/(BP_hi − BP_lo)·(C − BP_lo) + IAQI_lo.
    Returns None above the end of a table that stops early (so2_1h, o3_8h: the caller applies
    the standard's substitute) and 500 above the top of a full table.
    """
    if concentration < 0 or not math.isfinite(concentration):
        raise ValueError(f"{table}: concentration must be a finite value ≥ 0, got {concentration}")
    points = BREAKPOINTS[table]
    for index in range(1, len(points)):
        bp_lo, bp_hi = points[index - 1], points[index]
        if concentration <= bp_hi:
            lo, hi = IAQI_STEPS[index - 1], IAQI_STEPS[index]
            value = (hi - lo) / (bp_hi - bp_lo) * (concentration - bp_lo) + lo
            # Round up, but not a float's last-bit noise (50.000000001 stays 50).
            return math.ceil(round(value, 6))
    if len(points) < len(IAQI_STEPS):
        return None
    return IAQI_STEPS[-1]


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
    exceeding: tuple[str, ...]  # IAQI > 100

    @property
    def primary_text(self) -> str:
        return ",".join(self.primary)


def combine(iaqis: Mapping[str, int]) -> AqiResult:
    """AQI = max IAQI; primary pollutant(s) when AQI > 50; level; pollutants over IAQI 100."""
    clean = {k: v for k, v in iaqis.items()}
    if not clean:
        return AqiResult(None, {}, (), None, ())
    aqi = max(clean.values())
    primary = tuple(k for k, v in clean.items() if v == aqi) if aqi > 50 else ()
    exceeding = tuple(k for k, v in clean.items() if v > 100)
    return AqiResult(aqi, clean, primary, level_of(aqi), exceeding)


def hourly_aqi(
    hour_ugm3: Mapping[str, float | None],
    *,
    o3_8h: float | None = None,
    so2_24h: float | None = None,
) -> AqiResult:
    """The hourly (实时报) AQI of HJ 633-2012 from 1-h means (CO in mg/m³).

    SO2, NO2, CO and O3 use their 1-h tables; PM10 and PM2.5 have only 24-h tables, against
    which their 1-h means are rated. An SO2 1-h mean above 800 µg/m³ is rated by its 24-h mean
    (`so2_24h`, left out when unknown). O3's 8-h moving mean counts when given, except above
    800 µg/m³ where O3 is rated by its 1-h mean alone.
    """
    iaqis: dict[str, int] = {}
    for name in POLLUTANTS:
        value = hour_ugm3.get(name)
        if value is None:
            continue
        table = f"{name}_24h" if name in ("pm10", "pm25") else f"{name}_1h"
        rated = iaqi(table, value)
        if rated is None and name == "so2" and so2_24h is not None:
            rated = iaqi("so2_24h", so2_24h)
        if rated is not None:
            iaqis[name] = rated
    if o3_8h is not None:
        rated_8h = iaqi("o3_8h", o3_8h)
        if rated_8h is not None:
            iaqis["o3_8h"] = rated_8h
    return combine(iaqis)


def daily_aqi(
    day_ugm3: Mapping[str, float | None],
    *,
    o3_1h_max: float | None = None,
    o3_8h_max: float | None = None,
) -> AqiResult:
    """The daily (日报) AQI: 24-h means of SO2, NO2, PM10, CO, PM2.5; O3 daily 1-h and 8-h maxima.

    O3's 8-h maximum above 800 µg/m³ is not rated; O3 is then rated by its 1-h maximum.
    """
    iaqis: dict[str, int] = {}
    for name in ("so2", "no2", "pm10", "co", "pm25"):
        value = day_ugm3.get(name)
        if value is not None:
            rated = iaqi(f"{name}_24h", value)
            if rated is not None:
                iaqis[name] = rated
    if o3_1h_max is not None:
        rated_1h = iaqi("o3_1h", o3_1h_max)
        if rated_1h is not None:
            iaqis["o3"] = rated_1h
    if o3_8h_max is not None:
        rated_8h = iaqi("o3_8h", o3_8h_max)
        if rated_8h is not None:
            iaqis["o3_8h"] = rated_8h
    return combine(iaqis)


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


def exceedances(means: Mapping[str, float | None]) -> dict[str, tuple[float, float]]:
    """Which GB 3095-2012 class II limits the given means (keys like `so2_1h`) exceed."""
    over: dict[str, tuple[float, float]] = {}
    for key, value in means.items():
        limit = LIMITS_CLASS_II.get(key)
        if value is not None and limit is not None and value > limit:
            over[key] = (value, limit)
    return over
