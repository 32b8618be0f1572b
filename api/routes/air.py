"""`/api/air/...`: air stations with their latest AQI, a station's hourly means and AQI, its
daily reports (日报) with heavy-pollution days, and the editions of the standards by date.

Never compute aggregates here: read what the air processor committed to the air store.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, TypeAlias

from fastapi import APIRouter, HTTPException, Path, Query

from hazwatch.api.deps import ApiContext, Ctx, part_store
from hazwatch.api.params import (
    SEGMENT,
    SEGMENT_MAX,
    errors,
    instant_check,
    instant_ns,
    instant_query,
    invalid,
)
from hazwatch.devices.timeparse import format_ts
from hazwatch.ingest.retention import WindowTooLong, choose
from hazwatch.streams.air import standards
from hazwatch.streams.air.aqi import POLLUTANTS, level_of
from hazwatch.streams.air.store import AirStore

router = APIRouter(prefix="/api/air", tags=["air"])
NS_PER_H = 3600 * 1_000_000_000
# Micro-stations are not national monitoring stations: their AQI is indicative, not official.
INDICATIVE = {
    "zh": "微站 AQI 为指示性数据，非官方发布",
    "en": "micro-station AQI is indicative, not official",
}
TREND_ROWS = 20_000  # raw readings read for a trend, newest first (the answer says when cut)


def _store(ctx: ApiContext) -> AirStore:
    return part_store(ctx.air, "air")


Station = Annotated[
    str, Path(pattern=SEGMENT, max_length=SEGMENT_MAX, description="the station's device id")
]
From: TypeAlias = Annotated[str | None, instant_query("from"), instant_check("from")]
To: TypeAlias = Annotated[str | None, instant_query("to"), instant_check("to")]


def _window(series: str, start: str | None, end: str | None, default_ns: int) -> tuple[int, int]:
    """[from, to) in ns (to defaults to now, from to `default_ns` before it), checked: from
    before to, and no longer than the series' coarsest resolution serves (ingest/retention.py);
    a 422 naming the parameter otherwise."""
    end_ns = instant_ns(end, "to") if end is not None else time.time_ns()
    start_ns = instant_ns(start, "from") if start is not None else end_ns - default_ns
    name, value = ("from", start) if start is not None else ("to", end)
    if start_ns >= end_ns:
        raise invalid("query", name, value, "from must be before to (to defaults to now)")
    try:
        choose(series, end_ns - start_ns)
    except WindowTooLong as exc:
        raise invalid("query", name, value, str(exc)) from None
    return start_ns, end_ns


def _with_level(row: dict[str, Any], lang: str) -> dict[str, Any]:
    aqi = row.get("aqi")
    if isinstance(aqi, int):
        level = level_of(aqi)
        row["category"] = level.category_zh if lang == "zh" else level.category_en
        row["indicative"] = True
    return row


@router.get("/standards")
def editions(ctx: Ctx) -> dict[str, Any]:
    """The editions of HJ 633 (AQI) and GB 3095 (limits by grade) and the instant each rates
    data from: a datum is judged by the one in force at its own time (docs/air-standards.md)."""
    return {
        "aqi": [
            {
                "name": e.name,
                "from": format_ts(e.in_force_ns),
                "from_ms": e.in_force_ns // 1_000_000,
                "breakpoints": dict(e.breakpoints),
            }
            for e in standards.AQI_EDITIONS
        ],
        "limits": [
            {
                "name": s.name,
                "label": s.label_zh if ctx.lang == "zh" else s.label_en,
                "from": format_ts(s.in_force_ns),
                "from_ms": s.in_force_ns // 1_000_000,
                "grades": {str(g): dict(v) for g, v in s.limits.items()},
            }
            for s in standards.LIMIT_SETS
        ],
        "indicative": INDICATIVE["zh" if ctx.lang == "zh" else "en"],
    }


@router.get("/stations")
def stations(ctx: Ctx) -> list[dict[str, Any]]:
    rows = _store(ctx).stations()
    for row in rows:
        row["newest"] = format_ts(row["newest_ns"])
        row["hour"] = format_ts(row["hour_ns"]) if row["hour_ns"] else None
        if row["hour_ns"]:
            row["aqi_standard"] = standards.aqi_edition_at(row["hour_ns"]).name
        _with_level(row, ctx.lang)
    return rows


@router.get("/{station}/hourly", responses=errors(404))
def hourly(
    ctx: Ctx,
    station: Station,
    start: From = None,
    end: To = None,
) -> list[dict[str, Any]]:
    """Hours starting in [from, to) (RFC 3339 or epoch ms); default the last 24 hours, at most
    366 days (422 beyond)."""
    start_ns, end_ns = _window("air_hourly", start, end, 24 * NS_PER_H)
    rows = _store(ctx).hourly(station, start_ns, end_ns)
    if not rows and station not in {s["station"] for s in _store(ctx).stations()}:
        raise HTTPException(status_code=404, detail=f"no air station {station!r}")
    for row in rows:
        row["hour"] = format_ts(row["time"])
        _with_level(row, ctx.lang)
    return rows


@router.get("/{station}/daily", responses=errors(404))
def daily_reports(
    ctx: Ctx,
    station: Station,
    start: From = None,
    end: To = None,
) -> dict[str, Any]:
    """The station's daily reports (日报) of the natural days starting in [from, to) (RFC 3339
    or epoch ms; default the last 31 days): each day's means, O3's daily maximum 8-h mean, AQI
    by the edition of that day, the limits it exceeds, `complete` (the day is over) and, for a
    heavy-pollution day (AQI > 200), `heavy_days`: such days in a row ending with it. At most
    3,660 days (422 beyond)."""
    start_ns, end_ns = _window("air_daily", start, end, 31 * 24 * NS_PER_H)
    rows = _store(ctx).daily(station, start_ns, end_ns)
    if not rows and station not in {s["station"] for s in _store(ctx).stations()}:
        raise HTTPException(status_code=404, detail=f"no air station {station!r}")
    for row in rows:
        row["day"] = format_ts(row["time"])
        _with_level(row, ctx.lang)
    complete = [r for r in rows if r.get("complete")]
    heavy_now = complete[-1].get("heavy_days", 0) if complete else 0
    return {
        "station": station,
        "days": rows,
        "heavy_days_now": heavy_now,  # the run of heavy-pollution days ending with the last day
        "indicative": INDICATIVE["zh" if ctx.lang == "zh" else "en"],
    }


@router.get("/{station}/trend", responses=errors(404, 503))
def trend(
    ctx: Ctx,
    station: Station,
    start: From = None,
    end: To = None,
    every_s: Annotated[int, Query(ge=10, le=86_400, description="bucket width, s")] = 300,
) -> dict[str, Any]:
    """The station's readings in [from, to) as means per `every_s` bucket, per pollutant;
    default the last 24 hours. `resolution` says what was read (ingest/retention.py): `raw`
    (the point store's `air`, every interval the station sent) for a window up to 2 days,
    `hourly` (`air_hourly`'s valid means) up to 366 days, `daily` (`air_daily`) up to 3,660
    days; a longer window is refused (422). A bucket is never finer than the resolution's
    step (`every_s` says the one used). At most 20,000 rows are read, newest first:
    `truncated` says the start was cut."""
    start_ns, end_ns = _window("air_trend", start, end, 24 * NS_PER_H)
    resolution = choose("air_trend", end_ns - start_ns)
    every_s = max(every_s, resolution.step_ns // 1_000_000_000)
    try:
        rows = ctx.reader.select(
            resolution.measurement,
            tags={"station": station},
            fields=list(POLLUTANTS),
            start_ns=start_ns,
            end_ns=end_ns,
            newest_first=True,
            limit=TREND_ROWS,
        )
    except Exception as exc:
        raise HTTPException(status_code=503, detail=f"point store unreadable: {exc}") from None
    if not rows and station not in {s["station"] for s in _store(ctx).stations()}:
        raise HTTPException(status_code=404, detail=f"no air station {station!r}")
    every_ns = every_s * 1_000_000_000
    sums: dict[int, dict[str, list[float]]] = {}
    for row in rows:
        bucket = int(row["time"]) // every_ns * every_ns
        slot = sums.setdefault(bucket, {})
        for name in POLLUTANTS:
            value = row.get(name)
            if isinstance(value, int | float):
                slot.setdefault(name, []).append(float(value))
    points = [
        {
            "time": format_ts(bucket),
            "time_ms": bucket // 1_000_000,
            "readings": max(len(v) for v in slot.values()) if slot else 0,
            **{name: round(sum(v) / len(v), 3) for name, v in slot.items()},
        }
        for bucket, slot in sorted(sums.items())
    ]
    return {
        "station": station,
        "from": format_ts(start_ns),
        "to": format_ts(end_ns),
        "every_s": every_s,
        "resolution": resolution.name,
        "truncated": len(rows) >= TREND_ROWS,
        "points": points,
    }
