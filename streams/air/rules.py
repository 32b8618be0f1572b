"""The air rules, declared once, and their checks: pure functions over an hour's values and time.

A station that is silent is the presence part's device_offline (streams/presence/), as every
family's device is.

Never read a clock or a store here: readings, means and times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping

from hazwatch.alerts.model import Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of, severities
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.air.standards import LimitSet, round_concentration

NS_PER_MIN = 60 * 1_000_000_000
NS_PER_HOUR = 60 * NS_PER_MIN

# rule ids (alerts, API, screen)
RULE_EXCEEDANCE = "air_exceedance"
RULE_AQI = "aqi_level"
RULE_FLATLINE = "sensor_flatline"
RULE_SPIKE = "sensor_spike"
SENSOR_RULES = (RULE_FLATLINE, RULE_SPIKE)  # per pollutant, judged on the hour's readings

# (source, ts_ns, pollutant, value): one valid value of one reading in the hour
HourReading = tuple[str, int, str, float]

# Each air rule, declared once (alerts and docs/rules.md are made from these); its
# thresholds are the defaults of HourlySettings (settings.py). The limits air_exceedance
# checks are those in force at the hour's time (hazwatch.streams.air.standards.limits_at).
RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        RULE_EXCEEDANCE,
        "air",
        Severity.WARNING,
        "site/station/limit",
        "空气质量超标：站点污染物的小时均值或 24 小时、8 小时滑动均值超过该时段施行的 GB 3095 "
        "浓度限值（2026-03-01 起为 GB 3095-2026 过渡阶段限值，2031-01-01 起为其浓度限值；"
        "按站点功能区取一级或二级）；超出倍数或连续超标小时数达到阈值时升为较重、严重",
        "a pollutant's hourly mean, or its 24-h or 8-h moving mean, is over the GB 3095 limit "
        "in force at its time (GB 3095-2026's transition limits from 2026-03-01, its final "
        "limits from 2031-01-01; grade I or II by the station's functional zone); major or "
        "critical once it is far enough over, or over for enough hours in a row",
        defaults_of(
            HourlySettings,
            "exceedance_major_ratio",
            "exceedance_critical_ratio",
            "exceedance_major_hours",
            "exceedance_critical_hours",
        ),
    ),
    RuleSpec(
        RULE_AQI,
        "air",
        Severity.WARNING,
        "site/station",
        "空气质量指数超标：站点小时 AQI 超过阈值（默认 100，即三级轻度污染及以上；三级及以下为"
        "警告，四级为较重，五、六级为严重）",
        "the station's hourly AQI is over the threshold (by default 100: level 3, lightly "
        "polluted, or worse); its severity rises with the level: 3 (or lower) warning, "
        "4 major, 5 and 6 critical",
        defaults_of(HourlySettings, "aqi_alert_above"),
    ),
    RuleSpec(
        RULE_FLATLINE,
        "air",
        Severity.WARNING,
        "site/station/pollutant",
        "传感器读数恒定：某污染物连续若干小时（默认 6 小时）的读数始终是同一个值，且高于仪器"
        "分辨率的若干步（清洁空气下的低值恒定不算）；数据审核将这些小时标为无效（恒值）",
        "a sensor stuck on one value: every reading of a pollutant is one value for hours in a "
        "row, above a few resolution steps of the analyser (clean air sits on its lowest steps); "
        "the data audit marks those hours invalid (flatline)",
        defaults_of(HourlySettings, "flatline_hours", "flatline_floor_steps"),
    ),
    RuleSpec(
        RULE_SPIKE,
        "air",
        Severity.WARNING,
        "site/station/pollutant",
        "传感器读数突跳：一小时内某污染物出现远高于该小时中位数的峰值（疑似传感器故障或干扰）；"
        "数据审核将这些读数标为无效（突变值）",
        "one absurd jump: a pollutant's peak in the hour is many times the hour's median and "
        "far above it (CO in mg/m³, the others in µg/m³); the data audit marks those readings "
        "invalid (spike)",
        defaults_of(
            HourlySettings,
            "spike_ratio",
            "spike_min_jump_ugm3",
            "spike_min_jump_co_mgm3",
            "spike_min_readings",
        ),
    ),
)
SEVERITY = severities(RULE_SPECS)


# air_exceedance
# the series of an hour's values each limit is judged on (its 1-h mean, or a moving mean)
LIMIT_SERIES: dict[str, str] = {
    "so2_1h": "so2",
    "no2_1h": "no2",
    "co_1h": "co",
    "o3_1h": "o3",
    "so2_24h": "so2_24h",
    "no2_24h": "no2_24h",
    "co_24h": "co_24h",
    "o3_8h": "o3_8h",
    "pm10_24h": "pm10_24h",
    "pm25_24h": "pm25_24h",
}


def limit_checks(
    values: Mapping[str, float],
    limits: LimitSet,
    grade: int,
    *,
    rounds: bool = False,
) -> dict[str, tuple[float, float] | None]:
    """Each limit of the set and grade the hour has a value for (`values` by series: `so2`,
    `pm25_24h` …): (value, limit) when the value is over it, None when not (an alert of that
    limit clears). With `rounds` (HJ 633-2026 / GB 3095-2026 data) the value is rounded as
    GB/T 8170 asks before it is compared, so PM2.5 60.4 is not over 60."""
    table = limits.limits[grade]
    checked: dict[str, tuple[float, float] | None] = {}
    for key, series in LIMIT_SERIES.items():
        value = values.get(series)
        limit = table.get(key)
        if value is None or limit is None:
            continue
        compared = round_concentration(key, value) if rounds else value
        checked[key] = (compared, limit) if compared > limit else None
    return checked


def exceedance_severity(ratio: float, hours: int, settings: HourlySettings) -> Severity:
    """How serious an exceedance is: by how many times the limit the value is (`ratio`) and
    for how many hours in a row the limit has been exceeded, whichever is worse."""
    if ratio >= settings.exceedance_critical_ratio or hours >= settings.exceedance_critical_hours:
        return Severity.CRITICAL
    if ratio >= settings.exceedance_major_ratio or hours >= settings.exceedance_major_hours:
        return Severity.MAJOR
    return SEVERITY[RULE_EXCEEDANCE]


def exceedance_message(
    key: str, value: float, limit: float, limits: LimitSet, grade: int, hours: int
) -> str:
    unit = "mg/m³" if key.startswith("co") else "µg/m³"
    grade_name = "一级" if grade == 1 else "二级"
    return (
        f"{key} {value:g} {unit} over the {limits.label_zh} {grade_name} limit {limit:g} "
        f"({value / limit:.2f}×, {hours} h in a row)"
    )


# aqi_level
def aqi_severity(aqi_value: int, level: int, alert_above: int = 100) -> Severity | None:
    """The severity aqi_level raises with for this AQI and level; None when it is not over
    `alert_above` (HourlySettings.aqi_alert_above)."""
    if aqi_value <= alert_above:
        return None
    # level 3 (or a lower one, for a threshold set lower) raises with the declared severity;
    # worse levels raise it
    if level <= 3:
        return SEVERITY[RULE_AQI]
    return Severity.MAJOR if level == 4 else Severity.CRITICAL


# sensor_flatline, sensor_spike: judged by the data audit (audit.py), whose marks they alert on
def spike_threshold(pollutant: str, median: float, settings: HourlySettings) -> float:
    """A reading above this, in an hour of this median, is one absurd jump: many times the
    median and far above it."""
    jump = settings.spike_min_jump_co_mgm3 if pollutant == "co" else settings.spike_min_jump_ugm3
    return max(settings.spike_ratio * median, median + jump)
