"""The air standards as versioned data: each edition of HJ 633 (AQI) and of GB 3095 (limits), the
time it came into force, and which one rates a datum of a given time (docs/air-standards.md).

Never read a clock here, and never change an edition's numbers: a new edition is a new table.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

NS_PER_S: Final = 1_000_000_000
CHINA_OFFSET_S: Final = 8 * 3600  # the standards come into force at 00:00 China time


def china_midnight_ns(year: int, month: int, day: int) -> int:
    """00:00 of that day in China time (UTC+8), as UTC nanoseconds."""
    return (calendar.timegm((year, month, day, 0, 0, 0)) - CHINA_OFFSET_S) * NS_PER_S


IAQI_STEPS: Final[tuple[int, ...]] = (0, 50, 100, 150, 200, 300, 400, 500)
POLLUTANTS: Final[tuple[str, ...]] = ("so2", "no2", "pm10", "co", "o3", "pm25")


@dataclass(frozen=True, slots=True)
class AqiEdition:
    """One edition of HJ 633: breakpoints, what it does past a short table's end, its reports."""

    name: str  # "HJ 633-2026"
    in_force_ns: int  # the instant it rates data from (until the next edition's)
    breakpoints: Mapping[str, tuple[float, ...]]  # µg/m³, CO mg/m³; by `pollutant_period`
    # SO2 1-h above the table's last breakpoint: the IAQI it rates (None: rated by its 24-h mean)
    so2_1h_over_iaqi: int | None
    # O3 8-h above the table's last breakpoint: the IAQI it rates (None: rated by O3 1-h)
    o3_8h_over_iaqi: int | None
    rounds_concentrations: bool  # µg/m³ to integers, CO mg/m³ to 0.1 (GB/T 8170) before rating
    hourly_o3_8h: bool  # the real-time report rates O3's 8-h moving mean too
    daily_o3_1h: bool  # the daily report rates O3's daily 1-h maximum too
    names_exceeding: bool  # the report names pollutants over IAQI 100 (超标污染物)


_BREAKPOINTS_2012: Final[dict[str, tuple[float, ...]]] = {
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

# HJ 633-2012 表 1; in force with GB 3095-2012 from 2016-01-01 until HJ 633-2026 replaced it.
HJ633_2012: Final = AqiEdition(
    name="HJ 633-2012",
    in_force_ns=china_midnight_ns(2016, 1, 1),
    breakpoints=_BREAKPOINTS_2012,
    so2_1h_over_iaqi=None,
    o3_8h_over_iaqi=None,
    rounds_concentrations=False,
    hourly_o3_8h=True,
    daily_o3_1h=True,
    names_exceeding=True,
)
# HJ 633-2026 表 3: PM2.5 and PM10 24-h breakpoints changed, the rest as 2012; SO2 1-h past
# 800 rates 200 and O3 8-h past 800 rates 300; six items per report, no 超标污染物.
HJ633_2026: Final = AqiEdition(
    name="HJ 633-2026",
    in_force_ns=china_midnight_ns(2026, 3, 1),
    breakpoints={
        **_BREAKPOINTS_2012,
        "pm10_24h": (0, 50, 120, 250, 350, 420, 500, 600),
        "pm25_24h": (0, 35, 60, 115, 150, 250, 350, 500),
    },
    so2_1h_over_iaqi=200,
    o3_8h_over_iaqi=300,
    rounds_concentrations=True,
    hourly_o3_8h=False,
    daily_o3_1h=False,
    names_exceeding=False,
)
AQI_EDITIONS: Final[tuple[AqiEdition, ...]] = (HJ633_2012, HJ633_2026)  # oldest first


@dataclass(frozen=True, slots=True)
class LimitSet:
    """One set of GB 3095 concentration limits, by grade (一级 1, 二级 2) and `pollutant_period`."""

    name: str  # "GB 3095-2026"
    phase_zh: str  # "过渡阶段浓度限值", "浓度限值"
    phase_en: str
    in_force_ns: int
    limits: Mapping[int, Mapping[str, float]]  # grade → key → limit (µg/m³, CO mg/m³)

    @property
    def label_zh(self) -> str:
        return f"{self.name} {self.phase_zh}"

    @property
    def label_en(self) -> str:
        return f"{self.name} {self.phase_en}"


# The keys: so2_1h, so2_24h, no2_1h, no2_24h, co_1h, co_24h, o3_1h, o3_8h (daily maximum 8-h
# mean), pm10_24h, pm25_24h. Annual means are not judged here (no year of data is kept).
GB3095_2012: Final = LimitSet(
    name="GB 3095-2012",
    phase_zh="浓度限值",
    phase_en="limits",
    in_force_ns=china_midnight_ns(2016, 1, 1),
    limits={
        1: {
            "so2_1h": 150,
            "so2_24h": 50,
            "no2_1h": 200,
            "no2_24h": 80,
            "co_1h": 10,
            "co_24h": 4,
            "o3_1h": 160,
            "o3_8h": 100,
            "pm10_24h": 50,
            "pm25_24h": 35,
        },
        2: {
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
        },
    },
)
GB3095_2026_TRANSITION: Final = LimitSet(
    name="GB 3095-2026",
    phase_zh="过渡阶段浓度限值",
    phase_en="transition limits",
    in_force_ns=china_midnight_ns(2026, 3, 1),
    limits={
        1: {**GB3095_2012.limits[1]},
        2: {**GB3095_2012.limits[2], "pm10_24h": 120, "pm25_24h": 60},
    },
)
GB3095_2026_FINAL: Final = LimitSet(
    name="GB 3095-2026",
    phase_zh="浓度限值",
    phase_en="limits",
    in_force_ns=china_midnight_ns(2031, 1, 1),
    limits={
        1: {**GB3095_2012.limits[1], "no2_24h": 50, "pm25_24h": 25},
        2: {
            **GB3095_2012.limits[2],
            "so2_1h": 150,
            "so2_24h": 50,
            "no2_24h": 50,
            "pm10_24h": 100,
            "pm25_24h": 50,
        },
    },
)
LIMIT_SETS: Final[tuple[LimitSet, ...]] = (GB3095_2012, GB3095_2026_TRANSITION, GB3095_2026_FINAL)

# GB 3095 4.1/4.2: 一类区 takes the grade I limits, 二类区 grade II.
ZONES: Final[dict[str, int]] = {"一类区": 1, "二类区": 2}
DEFAULT_ZONE: Final = "二类区"

# GB 3095 Table 4 (both editions): how much data makes a mean valid.
MIN_MINUTES_PER_HOUR: Final = 45
MIN_HOURS_PER_DAY: Final = 20
MIN_HOURS_PER_8H: Final = 6
MIN_8H_MEANS_PER_DAY: Final = 14  # HJ 663: 8-h means ending 08:00..24:00 for a daily maximum


def aqi_edition_at(ts_ns: int) -> AqiEdition:
    """The HJ 633 edition that rates a datum of this time (the oldest before its start)."""
    found = AQI_EDITIONS[0]
    for edition in AQI_EDITIONS:
        if ts_ns >= edition.in_force_ns:
            found = edition
    return found


def limits_at(ts_ns: int) -> LimitSet:
    """The GB 3095 limits in force at this time (transition, then final, for 2026)."""
    found = LIMIT_SETS[0]
    for limit_set in LIMIT_SETS:
        if ts_ns >= limit_set.in_force_ns:
            found = limit_set
    return found


def grade_of(zone: str) -> int:
    """The limit grade of a functional zone (一类区 1, 二类区 2)."""
    try:
        return ZONES[zone]
    except KeyError:
        raise ValueError(
            f"functional zone must be one of {', '.join(ZONES)}, got {zone!r}"
        ) from None


def round_concentration(pollutant: str, value: float) -> float:
    """GB/T 8170 rounding of a concentration as HJ 633-2026 asks: µg/m³ to an integer, CO mg/m³
    to one decimal; a 5 with nothing after it goes to the even digit. The float's shortest
    decimal form is what is rounded (60.5 → 60, 61.5 → 62, 0.25 → 0.2)."""
    step = Decimal("0.1") if pollutant.startswith("co") else Decimal("1")
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_EVEN))
