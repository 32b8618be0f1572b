"""The air rules' details in Chinese and English (air_exceedance, aqi_level, sensor_flatline,
sensor_spike), from the alert's fields: for messages, the alert API and the CLI. Also the
pollutants' and the averaging periods' names as a sentence says them.

Only an alert stored before its numbers were fields (the data audit's `value`, `hours`,
`need_hours`, `resolution`, `top`, `median`; the AQI's `primary`) is read back from its
message, by the patterns below kept for those alone.

Never judge air here: the rules did (rules.py, audit.py); this module only says what they found.
"""

from __future__ import annotations

import re

from hazwatch.alerts.model import Alert
from hazwatch.alerts.text import Detail, Formatter, number
from hazwatch.streams.air import aqi
from hazwatch.streams.air.rules import RULE_AQI, RULE_EXCEEDANCE, RULE_FLATLINE, RULE_SPIKE
from hazwatch.streams.air.standards import LIMIT_SETS

POLLUTANT_WORDS = {  # as HJ 633 and GB 3095 write them
    "pm25": "PM2.5",
    "pm10": "PM10",
    "so2": "SO₂",
    "no2": "NO₂",
    "co": "CO",
    "o3": "O₃",
}
PERIOD_WORDS = {  # a limit key's averaging period (standards.py: so2_1h, o3_8h, pm25_24h …)
    "1h": ("1 小时平均", "1-h mean"),
    "8h": ("日最大 8 小时平均", "daily maximum 8-h mean"),
    "24h": ("24 小时平均", "24-h mean"),
}
GRADE_WORDS = {1: ("一级", "grade I"), 2: ("二级", "grade II")}
_NUM = r"-?[0-9][0-9.e+]*"
_UNIT = r"(?:mg|µg)/m³"
# the data audit's notes (audit.py flatline_marks, spike_marks) and the AQI's message
# (processor.py), read for alerts stored without the fields only
_FLATLINE = re.compile(
    rf"^(?P<pollutant>\w+) (?P<value>{_NUM}) {_UNIT} in every reading for (?P<hours>\d+) hours "
    rf"in a row \(≥ (?P<need_hours>\d+); resolution (?P<resolution>{_NUM})\)$"
)
_SPIKE = re.compile(
    rf"^(?P<pollutant>\w+) jumped to (?P<top>{_NUM}) {_UNIT} against an hourly median of "
    rf"(?P<median>{_NUM})$"
)
_PRIMARY = re.compile(r"primary (?P<primary>.*)$")


def pollutant_word(pollutant: str) -> str:
    return POLLUTANT_WORDS.get(pollutant, pollutant)


def unit_of(pollutant: str) -> str:
    return "mg/m³" if pollutant == "co" else "µg/m³"


def _standard_en(label_zh: str) -> str:
    for limit_set in LIMIT_SETS:
        if limit_set.label_zh == label_zh:
            return limit_set.label_en
    return label_zh  # an edition this version does not know: its name as stored


def exceedance_detail(alert: Alert) -> Detail | None:
    """Which mean, how high, over which limit of which edition and grade, how long."""
    d = alert.details
    key = alert.subject.split("/")[-1]
    pollutant, _, period = key.partition("_")
    value, limit, hours = float(str(d["value"])), float(str(d["limit"])), int(str(d["hours"]))
    grade_zh, grade_en = GRADE_WORDS[int(str(d["grade"]))]
    period_zh, period_en = PERIOD_WORDS.get(period, (period, period))
    standard = str(d["standard"])
    name, unit, ratio = pollutant_word(pollutant), unit_of(pollutant), value / limit
    return Detail(
        f"{name} {period_zh}浓度 {value:g} {unit}，超过 {standard}（{grade_zh}）{limit:g} {unit}"
        f"（{ratio:.2f} 倍，连续 {hours} 小时）",
        f"{name} {period_en} {value:g} {unit} over the {grade_en} limit {limit:g} of "
        f"{_standard_en(standard)} ({ratio:.2f}×, {hours} h in a row)",
    )


def aqi_detail(alert: Alert) -> Detail | None:
    """The hour's AQI, its level and category (HJ 633), and its primary pollutants."""
    value = int(str(alert.details["aqi"]))
    level = aqi.LEVELS[int(str(alert.details["level"])) - 1]
    kept = alert.details.get("primary")
    if isinstance(kept, list):
        primary = [str(p) for p in kept]
    else:  # stored before `primary` was a field
        found = _PRIMARY.search(alert.message)
        primary = [p.strip() for p in found["primary"].split(",") if p.strip()] if found else []
    named_zh = [_item(p, "zh") for p in primary]
    named_en = [_item(p, "en") for p in primary]
    levels_zh = "一二三四五六"[level.number - 1]
    zh = f"小时 AQI {value}（{levels_zh}级，{level.category_zh}）"
    en = f"hourly AQI {value} (level {level.number}, {level.category_en})"
    if primary:
        zh += f"，首要污染物 {'、'.join(named_zh)}"
        en += f", primary pollutant {', '.join(named_en)}"
    return Detail(zh, en)


def _item(item: str, lang: str) -> str:
    """An AQI item (aqi.AqiResult.iaqi's keys: pollutants, and o3_8h) as a sentence names it."""
    pollutant, _, period = item.partition("_")
    if not period:
        return pollutant_word(pollutant)
    hours = period.removesuffix("h")
    return (
        f"{pollutant_word(pollutant)}（{hours} 小时）"
        if lang == "zh"
        else (f"{pollutant_word(pollutant)} ({hours}-h)")
    )


def _fields(alert: Alert, names: tuple[str, ...], old: re.Pattern[str]) -> dict[str, object]:
    """The alert's `pollutant` and `names` from its details, or for an alert stored before
    they were fields, from its message by `old` (empty: neither has them)."""
    d = alert.details
    if all(n in d for n in ("pollutant", *names)):
        return {n: d[n] for n in ("pollutant", *names)}
    found = old.match(alert.message)
    return found.groupdict() if found is not None else {}


def flatline_detail(alert: Alert) -> Detail | None:
    f = _fields(alert, ("value", "hours", "need_hours", "resolution"), _FLATLINE)
    if not f:
        return None
    pollutant = str(f["pollutant"])
    name, unit = pollutant_word(pollutant), unit_of(pollutant)
    value, step = number(f["value"]), number(f["resolution"])
    hours, need = int(str(f["hours"])), int(str(f["need_hours"]))
    return Detail(
        f"{name} 连续 {hours} 小时的每个读数都是 {value} {unit}（阈值 {need} "
        f"小时；仪器分辨率 {step}），这些小时的数据标为无效",
        f"{name} {value} {unit} in every reading for {hours} hours in a row "
        f"(≥ {need}; resolution {step}); those hours are marked invalid",
    )


def spike_detail(alert: Alert) -> Detail | None:
    f = _fields(alert, ("top", "median"), _SPIKE)
    if not f:
        return None
    pollutant = str(f["pollutant"])
    name, unit = pollutant_word(pollutant), unit_of(pollutant)
    top, median = number(f["top"]), number(f["median"])
    return Detail(
        f"{name} 读数突升至 {top} {unit}，而该小时中位数为 {median} {unit}，这些读数标为无效",
        f"{name} jumped to {top} {unit} against an hourly median of {median}; those readings "
        "are marked invalid",
    )


DETAILS: dict[str, Formatter] = {
    RULE_EXCEEDANCE: exceedance_detail,
    RULE_AQI: aqi_detail,
    RULE_FLATLINE: flatline_detail,
    RULE_SPIKE: spike_detail,
}
