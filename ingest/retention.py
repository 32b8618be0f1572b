"""Each measurement's retention and resolution, declared once: which retention policy (InfluxDB
1.x) or bucket (2.x) holds it, how long that keeps points ([retention] settings), and which
resolution of a series the API reads for a window (docs/retention.md).

Never name a retention policy or a series' span anywhere else: writers, readers, `hazwatch
migrate retention`, the embedded store's pruning and the API's windows all read them here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Annotated

from pydantic import Field

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
# 0 days: kept for ever (InfluxDB's INF)
Days = Annotated[int, Field(ge=0, le=36_600)]


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """Days each retention policy keeps points (`[retention]`, env HAZWATCH_RETENTION__<NAME>;
    0 keeps them for ever). The defaults and their sources: docs/retention.md."""

    video_raw_days: Days = 30  # the example: frame metadata a month
    video_minute_days: Days = 366  # the per-minute summary a year
    air_raw_days: Days = 366  # hazwatch's default (no standard text found): a data-audit year
    air_results_days: Days = 1827  # hourly and daily results: as long as the records
    records_days: Days = 1827  # ledger ≥ 5 years (HJ 1259-2022), manifests 5 years
    status_days: Days = 90  # device status and HJ 212 link packets: diagnostics


@dataclass(frozen=True, slots=True)
class Policy:
    """One retention policy (1.x) or bucket (2.x): its name, its setting, what it holds."""

    name: str
    setting: str  # the field of RetentionSettings that says its days
    measurements: tuple[str, ...]
    source: str  # where its default comes from (docs/retention.md says more)


POLICIES: tuple[Policy, ...] = (
    Policy("video_raw", "video_raw_days", ("video_frame",), "issue #19's example"),
    Policy("video_minute", "video_minute_days", ("video_minute",), "issue #19's example"),
    Policy("air_raw", "air_raw_days", ("air",), "hazwatch's default"),
    Policy("air_results", "air_results_days", ("air_hourly", "air_daily"), "as the records"),
    Policy(
        "records",
        "records_days",
        ("waste_read", "waste_weight", "waste_batch", "waste_manifest", "custody", "alert"),
        "HJ 1259-2022 (ledger ≥ 5 years); transfer manifests 5 years",
    ),
    Policy("status", "status_days", ("device_status", "hj212_packet"), "hazwatch's default"),
)
POLICY_BY_NAME: dict[str, Policy] = {p.name: p for p in POLICIES}
# measurement -> its retention policy's name
POLICY_OF: dict[str, str] = {m: p.name for p in POLICIES for m in p.measurements}


def days_of(settings: RetentionSettings) -> dict[str, int]:
    """Policy name -> the days it keeps (0: for ever)."""
    return {p.name: int(getattr(settings, p.setting)) for p in POLICIES}


def keep_ns(settings: RetentionSettings) -> dict[str, int]:
    """Measurement -> how long its points are kept, ns (absent: for ever): the embedded point
    store prunes by it."""
    days = days_of(settings)
    return {m: days[p] * NS_PER_DAY for m, p in POLICY_OF.items() if days[p]}


def influx_duration(days: int) -> str:
    """A retention policy's DURATION: `720h`, or `INF` for 0 (InfluxDB 1.x takes hours)."""
    return f"{days * 24}h" if days else "INF"


def bucket_name(bucket: str, policy: str) -> str:
    """The v2 bucket of a policy: `<bucket>_<policy>` (docs/retention.md)."""
    return f"{bucket}_{policy}"


def measurement_of(line: str) -> str:
    """The measurement a line-protocol line (or a REPLACE_MARK line) starts with.

    On the write path, once per line: two `find`s. hazwatch's measurement names hold no
    escapes, so the first unescaped comma or space ends them.
    """
    if line[:1] == "#":
        line = line[line.find(" ") + 1 :]
    comma, space = line.find(","), line.find(" ")
    end = comma if 0 <= comma < space or space < 0 else space
    return line[:end] if end >= 0 else line


def route(lines: Sequence[str], policy_of: Mapping[str, str]) -> dict[str, list[int]]:
    """Policy name ("" for the database's default) -> the positions of the lines it takes,
    in the batch's order."""
    groups: dict[str, list[int]] = {}
    heads: dict[str, str] = {}  # the line's first 24 characters -> its policy
    for index, line in enumerate(lines):
        # every declared name (with REPLACE_MARK) ends within 24 characters, so the head
        # decides it; a head with no end in it is of a longer name, none of ours: ""
        head = line[:24]
        policy = heads.get(head)
        if policy is None:
            policy = heads[head] = policy_of.get(measurement_of(line), "")
        group = groups.get(policy)
        if group is None:
            group = groups[policy] = []
        group.append(index)
    return groups


# -- resolutions: what the API reads for a window ---------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """One resolution of a series: its measurement, its step (0: raw) and the longest window
    the API reads from it."""

    name: str  # "raw", "minute", "hourly", "daily"
    measurement: str
    step_ns: int
    max_span_ns: int


H = 3600 * NS_PER_S
SERIES: dict[str, tuple[Resolution, ...]] = {
    # a camera's frames: raw up to 6 h (~21,600 frames at 1 fps), the minutes up to 31 days
    "camera_frames": (
        Resolution("raw", "video_frame", 0, 6 * H),
        Resolution("minute", "video_minute", 60 * NS_PER_S, 31 * NS_PER_DAY),
    ),
    # a station's trend: raw readings up to 2 days, hourly results to a year, days to 10 years
    "air_trend": (
        Resolution("raw", "air", 0, 2 * NS_PER_DAY),
        Resolution("hourly", "air_hourly", H, 366 * NS_PER_DAY),
        Resolution("daily", "air_daily", 24 * H, 3660 * NS_PER_DAY),
    ),
    # the air store's hours and days (state store), bounded alike
    "air_hourly": (Resolution("hourly", "air_hourly", H, 366 * NS_PER_DAY),),
    "air_daily": (Resolution("daily", "air_daily", 24 * H, 3660 * NS_PER_DAY),),
}


class WindowTooLong(ValueError):
    """A window longer than the coarsest resolution of its series serves."""


def choose(series: str, span_ns: int) -> Resolution:
    """The finest resolution of `series` whose longest window holds `span_ns`; WindowTooLong,
    saying the longest, when none does."""
    for resolution in SERIES[series]:
        if span_ns <= resolution.max_span_ns:
            return resolution
    longest = SERIES[series][-1]
    raise WindowTooLong(
        f"a window of {_days(span_ns)} is longer than the {_days(longest.max_span_ns)} the"
        f" {longest.name} series serves: ask for a shorter window"
    )


def _days(ns: int) -> str:
    if ns < NS_PER_DAY:
        return f"{ns / H:g} h"
    return f"{ns / NS_PER_DAY:g} days"


def setting_names() -> list[str]:
    """The [retention] settings' names, in declaration order."""
    return [f.name for f in fields(RetentionSettings)]
