"""The air data audit (数据审核), pure: the reasons a datum is invalid, the automatic marks of an
hour (flatline, spike, PM2.5 over PM10, outside the instrument's range) and what marks exclude.

Never read a clock or a store here, and never drop a reading: a mark says why a reading is left
out of means and AQI; the reading itself stays where it was (docs/air-audit.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hazwatch.devices.decode import Decoded
from hazwatch.devices.registry import Instrument
from hazwatch.streams.air import aqi
from hazwatch.streams.air.rules import (
    NS_PER_HOUR,
    RULE_FLATLINE,
    RULE_SPIKE,
    HourReading,
    spike_threshold,
)
from hazwatch.streams.air.settings import HourlySettings

ALL = "*"  # a mark of every pollutant of the station
AUTO_BY = "auto"  # who made an automatic mark
ORIGINS = ("auto", "manual", "maintenance", "flag")

# Each reason a datum may be invalid: (Chinese, English). Manual marks name one of MANUAL;
# automatic ones, HJ 212 flags and maintenance windows name theirs.
REASONS: dict[str, tuple[str, str]] = {
    "flatline": ("恒值", "flatline"),
    "spike": ("突变值", "spike"),
    "pm_inversion": ("PM2.5 大于 PM10（倒挂）", "PM2.5 over PM10"),
    "out_of_range": ("超出仪器量程", "outside the instrument's range"),
    "fault": ("仪器故障", "instrument fault"),
    "calibration": ("校准", "calibration"),
    "maintenance": ("维护", "maintenance"),
    "power": ("停电", "power cut"),
    "communication": ("通讯故障", "communication fault"),
    "interference": ("局地干扰", "local interference"),
    "other": ("其他", "other"),
    # HJ 212-2017 6.6.4 data flags (devices/air_bounds.py FLAGS) other than N, normal
    "flag_F": ("停运（标记 F）", "stopped (flag F)"),
    "flag_M": ("维护（标记 M）", "maintenance (flag M)"),
    "flag_S": ("手工输入（标记 S）", "manual input (flag S)"),
    "flag_D": ("故障（标记 D）", "fault (flag D)"),
    "flag_C": ("校准（标记 C）", "calibration (flag C)"),
    "flag_T": ("超测上限（标记 T）", "over range (flag T)"),
    "flag_B": ("通讯异常（标记 B）", "communication abnormal (flag B)"),
}
MANUAL = (
    "fault",
    "calibration",
    "maintenance",
    "power",
    "communication",
    "interference",
    "other",
)
AUTO_REASONS = ("flatline", "spike", "pm_inversion", "out_of_range")
# 运维记录 kinds: calibration, inspection, consumable change, repair
MAINTENANCE_KINDS: dict[str, tuple[str, str]] = {
    "calibration": ("校准", "calibration"),
    "inspection": ("巡检", "inspection"),
    "consumable": ("耗材更换", "consumable change"),
    "repair": ("维修", "repair"),
}
# An analyser's step when the registry names none: the rounding HJ 633 asks before rating
# (µg/m³ to integers, CO mg/m³ to one decimal), the finest step stations commonly report.
DEFAULT_RESOLUTION = {p: (0.1 if p == "co" else 1.0) for p in aqi.POLLUTANTS}
UNIT = {p: ("mg/m³" if p == "co" else "µg/m³") for p in aqi.POLLUTANTS}


def reason_text(reason: str, lang: str = "zh") -> str:
    zh, en = REASONS.get(reason, (reason, reason))
    return zh if lang == "zh" else en


@dataclass(frozen=True, slots=True)
class Mark:
    """Data of one pollutant (or ALL) in [start_ns, end_ns) invalid, for `reason`."""

    pollutant: str
    start_ns: int
    end_ns: int
    reason: str
    note: str  # what a person reads: the values and the rule that judged them
    # the note's numbers by name, of an automatic mark the sensor rules alert on (flatline,
    # spike): the alert's details, which streams/air/text.py says; not stored with the mark
    numbers: Mapping[str, float | int] = field(default_factory=dict, compare=False)

    def covers(self, pollutant: str, ts_ns: int) -> bool:
        return self.pollutant in (ALL, pollutant) and self.start_ns <= ts_ns < self.end_ns


# (pollutant or ALL, start_ns, end_ns): what an invalid mark excludes
Span = tuple[str, int, int]


def excluded(reading: HourReading, spans: Sequence[Span]) -> bool:
    _, ts_ns, pollutant, _ = reading
    return any(p in (ALL, pollutant) and start <= ts_ns < end for p, start, end in spans)


def screen(
    readings: Sequence[HourReading], spans: Sequence[Span]
) -> tuple[list[HourReading], list[HourReading]]:
    """(kept, excluded): the readings outside every span, and those inside one."""
    if not spans:
        return list(readings), []
    kept: list[HourReading] = []
    dropped: list[HourReading] = []
    for reading in readings:
        (dropped if excluded(reading, spans) else kept).append(reading)
    return kept, dropped


def _series(readings: Iterable[HourReading]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(pollutant, source) → [(ts_ns, value)] in time order."""
    by: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for source, ts_ns, pollutant, value in readings:
        by.setdefault((pollutant, source), []).append((ts_ns, value))
    for values in by.values():
        values.sort()
    return by


def _runs(
    values: Sequence[tuple[int, float]], bad: Sequence[bool]
) -> list[tuple[int, int, list[float]]]:
    """(start_ns, end_ns, values) of each run of consecutive bad readings (end exclusive)."""
    runs: list[tuple[int, int, list[float]]] = []
    previous_bad = False
    for (ts_ns, value), is_bad in zip(values, bad, strict=True):
        if is_bad and previous_bad:
            start, _, seen = runs[-1]
            runs[-1] = (start, ts_ns + 1, [*seen, value])
        elif is_bad:
            runs.append((ts_ns, ts_ns + 1, [value]))
        previous_bad = is_bad
    return runs


def range_marks(
    readings: Sequence[HourReading], instruments: Mapping[str, Instrument]
) -> list[Mark]:
    """Readings outside the range of the station's analyser (registry), one mark per run."""
    marks: list[Mark] = []
    for (pollutant, _), values in _series(readings).items():
        instrument = instruments.get(pollutant)
        if instrument is None or (instrument.range_low, instrument.range_high) == (None, None):
            continue
        low = instrument.range_low if instrument.range_low is not None else float("-inf")
        high = instrument.range_high if instrument.range_high is not None else float("inf")
        bad = [not low <= v <= high for _, v in values]
        for start, end, seen in _runs(values, bad):
            marks.append(
                Mark(
                    pollutant,
                    start,
                    end,
                    "out_of_range",
                    f"{pollutant} {_span_text(seen)} {UNIT[pollutant]} outside the analyser's "
                    f"range {low:g}…{high:g} ({len(seen)} readings)",
                )
            )
    return marks


def spike_marks(readings: Sequence[HourReading], settings: HourlySettings) -> list[Mark]:
    """The readings of one absurd jump (sensor_spike's test: many times the hour's median and
    far above it), one mark per run; the rest of the hour stays valid."""
    marks: list[Mark] = []
    for (pollutant, _), values in _series(readings).items():
        if len(values) < settings.spike_min_readings:
            continue
        ordered = sorted(v for _, v in values)
        median = ordered[len(ordered) // 2]
        threshold = spike_threshold(pollutant, median, settings)
        bad = [v > threshold for _, v in values]
        for start, end, seen in _runs(values, bad):
            marks.append(
                Mark(
                    pollutant,
                    start,
                    end,
                    "spike",
                    f"{pollutant} jumped to {max(seen):g} {UNIT[pollutant]} against an hourly "
                    f"median of {median:g}",
                    {"top": max(seen), "median": median},
                )
            )
    return marks


def constant_hours(readings: Iterable[HourReading]) -> dict[tuple[str, int], float | None]:
    """(pollutant, hour_ns) → the one value every reading of the hour had (of each source), or
    None when they differ."""
    seen: dict[tuple[str, int], set[float]] = {}
    for _, ts_ns, pollutant, value in readings:
        seen.setdefault((pollutant, ts_ns - ts_ns % NS_PER_HOUR), set()).add(value)
    return {key: next(iter(values)) if len(values) == 1 else None for key, values in seen.items()}


def flatline_marks(
    hour_ns: int,
    readings: Sequence[HourReading],
    instruments: Mapping[str, Instrument],
    settings: HourlySettings,
) -> tuple[list[Mark], dict[str, list[int]]]:
    """Marks of the hour's pollutants whose values are one value for `flatline_hours` hours in
    a row including this one, above the floor of `flatline_floor_steps` resolution steps;
    and per such pollutant, the other hours of that run (marked when each is judged).

    `readings` cover `flatline_hours - 1` hours either side of the hour, as far as they exist.
    """
    constant = constant_hours(readings)
    need = settings.flatline_hours
    marks: list[Mark] = []
    others: dict[str, list[int]] = {}
    for pollutant in aqi.POLLUTANTS:
        value = constant.get((pollutant, hour_ns))
        if value is None:
            continue
        instrument = instruments.get(pollutant)
        step = (instrument.resolution if instrument else None) or DEFAULT_RESOLUTION[pollutant]
        if value <= settings.flatline_floor_steps * step + 1e-9:
            continue  # clean air on the analyser's lowest steps: constant, and valid
        run = [hour_ns]
        for direction in (-1, 1):
            at = hour_ns + direction * NS_PER_HOUR
            while len(run) < 2 * need and constant.get((pollutant, at)) == value:
                run.append(at)
                at += direction * NS_PER_HOUR
        if len(run) < need:
            continue
        run.sort()
        marks.append(
            Mark(
                pollutant,
                hour_ns,
                hour_ns + NS_PER_HOUR,
                "flatline",
                f"{pollutant} {value:g} {UNIT[pollutant]} in every reading for {len(run)} hours "
                f"in a row (≥ {need}; resolution {step:g})",
                {"value": value, "hours": len(run), "need_hours": need, "resolution": step},
            )
        )
        others[pollutant] = [h for h in run if h != hour_ns]
    return marks, others


def inversion_marks(
    hour_ns: int, means: Mapping[str, float], settings: HourlySettings
) -> list[Mark]:
    """PM2.5 and PM10 of an hour whose PM2.5 mean is over its PM10 mean beyond tolerance."""
    pm25, pm10 = means.get("pm25"), means.get("pm10")
    if pm25 is None or pm10 is None:
        return []
    tolerance = max(settings.pm_inversion_ugm3, settings.pm_inversion_ratio * pm10)
    if pm25 - pm10 <= tolerance:
        return []
    note = f"PM2.5 {pm25:.1f} over PM10 {pm10:.1f} µg/m³ by more than {tolerance:.1f}"
    return [Mark(p, hour_ns, hour_ns + NS_PER_HOUR, "pm_inversion", note) for p in ("pm25", "pm10")]


def findings(marks: Iterable[Mark]) -> dict[tuple[str, str], Mark]:
    """(rule, pollutant) → the mark it alerts on (its note the message, its numbers in the
    details), for sensor_flatline and sensor_spike, from the hour's marks."""
    found: dict[tuple[str, str], Mark] = {}
    for mark in marks:
        rule = {"flatline": RULE_FLATLINE, "spike": RULE_SPIKE}.get(mark.reason)
        if rule is not None:
            found.setdefault((rule, mark.pollutant), mark)
    return found


# (site, station, source, ts_ns, pollutant, flag, value): a value its station flagged not N
Flagged = tuple[str, str, str, int, str, str, float]


def flagged_of(batch: Iterable[Decoded]) -> list[Flagged]:
    """The air values of a batch whose HJ 212 flag is not N (normal): kept with their flag,
    which is their reason, though no mean counts them (processor.readings_of)."""
    rows: list[Flagged] = []
    for decoded in batch:
        if decoded.topic.family != "air":
            continue
        for point in decoded.points:
            if point.measurement != "air":
                continue
            get = point.fields.get
            common = get("flag", "N")
            for pollutant in aqi.POLLUTANTS:
                value = get(pollutant)
                flag = get(f"{pollutant}_flag", common)
                if value is None or flag == "N" or isinstance(value, (bool, str)):
                    continue
                tags = point.tags
                source = tags.get("interval", "rtd")
                rows.append(
                    (
                        tags["site"],
                        tags["station"],
                        source,
                        point.ts_ns,
                        pollutant,
                        str(flag),
                        float(value),
                    )
                )
    return rows


def _span_text(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:g}" if low == high else f"{low:g}…{high:g}"
