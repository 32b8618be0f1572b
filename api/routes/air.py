"""`/api/air/...`: air stations with their latest AQI, and a station's hourly means and AQI.

Never compute aggregates here: read what the air_hourly processor committed to the state store.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api.deps import ApiContext, Ctx
from devices.errors import PayloadError
from devices.timeparse import format_ts, parse_ts
from streams.air_hourly import AirHourly
from streams.aqi import level_of

router = APIRouter(prefix="/api/air", tags=["air"])
NS_PER_H = 3600 * 1_000_000_000


def _store(ctx: ApiContext) -> AirHourly:
    store = ctx.parts.get("air_hourly")
    if not isinstance(store, AirHourly):
        store = AirHourly(ctx.db)
        ctx.parts["air_hourly"] = store
    return store


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_ts(int(value) if value.isdigit() else value, field=name)
    except PayloadError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


def _with_level(row: dict[str, Any], lang: str) -> dict[str, Any]:
    aqi = row.get("aqi")
    if isinstance(aqi, int):
        level = level_of(aqi)
        row["category"] = level.category_zh if lang == "zh" else level.category_en
    return row


@router.get("/stations")
def stations(ctx: Ctx) -> list[dict[str, Any]]:
    rows = _store(ctx).stations()
    for row in rows:
        row["newest"] = format_ts(row["newest_ns"])
        row["hour"] = format_ts(row["hour_ns"]) if row["hour_ns"] else None
        _with_level(row, ctx.lang)
    return rows


@router.get("/{station}/hourly")
def hourly(
    ctx: Ctx,
    station: str,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> list[dict[str, Any]]:
    """Hours starting in [from, to) (RFC 3339 or epoch ms); default the last 24 hours."""
    end_ns = _time(end, "to") or time.time_ns()
    start_ns = _time(start, "from") or end_ns - 24 * NS_PER_H
    rows = _store(ctx).hourly(station, start_ns, end_ns)
    if not rows and station not in {s["station"] for s in _store(ctx).stations()}:
        raise HTTPException(status_code=404, detail=f"no air station {station!r}")
    for row in rows:
        row["hour"] = format_ts(row["time"])
        _with_level(row, ctx.lang)
    return rows
