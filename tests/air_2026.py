"""HJ 633-2026 and GB 3095-2026 (transition limits, grade II) typed in again for the air
integration tests' expectations, in exact arithmetic from the standards' formulas.

Never import streams/air/ (aqi.py, standards.py, processor.py, rules.py, daily.py) here: this is
the check on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

POLLUTANTS = ("so2", "no2", "pm10", "co", "o3", "pm25")
AQI_STANDARD = "HJ 633-2026"
LIMITS_STANDARD = "GB 3095-2026 过渡阶段浓度限值"  # 2026-03-01 … 2030-12-31

# HJ 633-2026 Table 3 (µg/m³, CO mg/m³): PM2.5 and PM10 24-h as 2026 changed them, the rest
# as HJ 633-2012 Table 1.
STEPS = (0, 50, 100, 150, 200, 300, 400, 500)
TABLE = {
    "so2_24h": (0, 50, 150, 475, 800, 1600, 2100, 2620),
    "so2_1h": (0, 150, 500, 650, 800),
    "no2_24h": (0, 40, 80, 180, 280, 565, 750, 940),
    "no2_1h": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "pm10_24h": (0, 50, 120, 250, 350, 420, 500, 600),
    "co_24h": (0, 2, 4, 14, 24, 36, 48, 60),
    "co_1h": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3_1h": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "o3_8h": (0, 100, 160, 215, 265, 800),
    "pm25_24h": (0, 35, 60, 115, 150, 250, 350, 500),
}
# past the end of a short table: SO2 1-h above 800 rates 200, O3 8-h above 800 rates 300
PAST_END = {"so2_1h": 200, "o3_8h": 300}
# GB 3095-2026 Table 1, transition limits, grade II (二类区, the registry's default zone)
LIMITS = {
    "so2_1h": 500,
    "no2_1h": 200,
    "co_1h": 10,
    "o3_1h": 200,
    "so2_24h": 150,
    "no2_24h": 80,
    "co_24h": 4,
    "o3_8h": 160,
    "pm10_24h": 120,
    "pm25_24h": 60,
}
DAILY_LIMITS = ("so2_24h", "no2_24h", "co_24h", "o3_8h", "pm10_24h", "pm25_24h")
# the exceedance grades' defaults ([air] exceedance_*): major at 1.5× or 3 h in a row,
# critical at 2× or 6 h; hours in a row are counted up to the critical hours
MAJOR_RATIO, CRITICAL_RATIO, MAJOR_H, CRITICAL_H = Fraction(3, 2), 2, 3, 6
LEVEL_TOPS = (50, 100, 150, 200, 300)  # 优 良 轻度 中度 重度, then 严重污染
HEAVY_AQI = 200  # a heavy-pollution day: AQI above 200 (重度污染 or worse)
# GB 3095 Table 4: how much data makes a mean valid
MIN_HOURS_PER_DAY, MIN_HOURS_PER_8H, MIN_8H_MEANS = 20, 6, 14


def rounded(name: str, c: Fraction) -> Fraction:
    """HJ 633-2026 4.2.2 by GB/T 8170: µg/m³ to integers, CO mg/m³ to 0.1, a bare half to the
    even digit (on the exact value)."""
    step = Fraction(1, 10) if name.startswith("co") else Fraction(1)
    units = c / step
    low = math.floor(units)
    rest = units - low
    up = rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2 == 1)
    return (low + 1 if up else low) * step


def iaqi(table: str, c: Fraction) -> int:
    """Formula (1), IAQI rounded up (4.2.6), of a concentration already rounded."""
    bps = TABLE[table]
    for i in range(1, len(bps)):
        if c <= bps[i]:
            raw = Fraction(STEPS[i] - STEPS[i - 1], bps[i] - bps[i - 1]) * (c - bps[i - 1])
            return math.ceil(raw + STEPS[i - 1])
    if table in PAST_END:
        return PAST_END[table]
    if len(bps) == len(STEPS):
        return 500
    raise AssertionError(f"{table} {c} beyond the table")


def level(aqi: int) -> int:
    return 1 + sum(aqi > top for top in LEVEL_TOPS)


def rated(iaqis: Mapping[str, int]) -> dict[str, object]:
    """AQI (the largest IAQI), its level and the primary pollutants (AQI > 50, ties together)."""
    if not iaqis:
        return {}
    aqi = max(iaqis.values())
    return {
        "aqi": aqi,
        "level": level(aqi),
        "primary": ",".join(k for k, v in iaqis.items() if v == aqi) if aqi > 50 else "",
        **{f"iaqi_{k}": v for k, v in iaqis.items()},
    }


def hourly_iaqi(means: Mapping[str, Fraction]) -> dict[str, int]:
    """The real-time report's six items: the 1-h means, each rounded first; PM10 and PM2.5 on
    their 24-h tables (formula (1)'s note); no O3 8-h (HJ 633-2026)."""
    found: dict[str, int] = {}
    for name in POLLUTANTS:
        if name in means:
            table = f"{name}_24h" if name in ("pm10", "pm25") else f"{name}_1h"
            found[name] = iaqi(table, rounded(name, means[name]))
    return found


def mean(values: Sequence[Fraction | None], need: int) -> Fraction | None:
    valid = [v for v in values if v is not None]
    return sum(valid, Fraction(0)) / len(valid) if len(valid) >= need else None


def hourly_over(
    values: Mapping[str, Fraction], runs: Mapping[str, int]
) -> tuple[set[str], dict[str, int]]:
    """The limits an hour exceeds, as `over` writes them ("key:hours in a row:grade"), its rounded
    values compared; and the runs to carry to the next hour."""
    over: set[str] = set()
    now: dict[str, int] = {}
    for key, limit in LIMITS.items():
        series = key.split("_")[0] if key.endswith("_1h") else key
        if series not in values:
            continue
        value = rounded(key, values[series])
        if value <= limit:
            continue
        run = min(runs.get(key, 0) + 1, CRITICAL_H)
        now[key] = run
        ratio = value / limit
        if ratio >= CRITICAL_RATIO or run >= CRITICAL_H:
            grade = "critical"
        elif ratio >= MAJOR_RATIO or run >= MAJOR_H:
            grade = "major"
        else:
            grade = "warning"
        over.add(f"{key}:{run}:{grade}")
    return over, now


def daily_report(hours: Sequence[Mapping[str, Fraction]]) -> dict[str, object]:
    """The daily report (日报) of a natural day from its 24 hours' valid 1-h means (an invalid
    hour: the pollutant missing): the day's means (≥ 20 hours), O3's daily maximum 8-h mean (of
    the 8-h means ending 08:00 … 24:00, each of ≥ 6 hours; ≥ 14 of them), each rounded and
    rated on the 24-h / 8-h tables, the limits it exceeds, heavy (AQI > 200)."""
    assert len(hours) == 24
    fields: dict[str, object] = {}
    values: dict[str, Fraction] = {}
    for name in POLLUTANTS:
        if name == "o3":
            continue
        column = [h.get(name) for h in hours]
        fields[f"{name}_hours"] = sum(v is not None for v in column)
        day_mean = mean(column, MIN_HOURS_PER_DAY)
        if day_mean is not None:
            values[name] = day_mean
    o3 = [h.get("o3") for h in hours]
    fields["o3_hours"] = sum(v is not None for v in o3)
    windows = [mean(o3[end - 8 : end], MIN_HOURS_PER_8H) for end in range(8, 25)]
    valid = [w for w in windows if w is not None]
    if len(valid) >= MIN_8H_MEANS:
        values["o3_8h"] = max(valid)
    fields.update({name: float(v) for name, v in values.items()})
    iaqis: dict[str, int] = {}
    for name in ("so2", "no2", "pm10", "co", "pm25"):
        if name in values:
            iaqis[name] = iaqi(f"{name}_24h", rounded(name, values[name]))
    if "o3_8h" in values:
        iaqis["o3_8h"] = iaqi("o3_8h", rounded("o3", values["o3_8h"]))
    fields.update(rated(iaqis))
    over = set()
    for key in DAILY_LIMITS:
        series = key if key == "o3_8h" else key.split("_")[0]
        if series in values and rounded(key, values[series]) > LIMITS[key]:
            over.add(key)
    fields["over"] = over
    fields["heavy"] = isinstance(fields.get("aqi"), int) and int(fields["aqi"]) > HEAVY_AQI  # type: ignore[call-overload]
    fields["aqi_standard"] = AQI_STANDARD
    fields["limits_standard"] = LIMITS_STANDARD
    fields["grade"] = 2
    return fields
