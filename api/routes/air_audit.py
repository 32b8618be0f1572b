"""`/api/air/marks` and `/api/air/maintenance` (writes: `…/add`, `/api/air/marks/{id}/unmark`):
the air data audit's marks (automatic, manual,
maintenance windows, HJ 212 flags) and maintenance records (运维记录), listed, and changed by
officers (token required).

Only HTTP here: the mark store (streams/air/marks.py) keeps the marks and opens the hours they
touch for the air processor to compute again; an unknown station or mark is 404, a mark
revoked already 409.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeAlias, get_args

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field, field_validator

from hazwatch.api.deps import ApiContext, Ctx, part_store, require_token
from hazwatch.api.params import (
    BY,
    INSTANT,
    INSTANT_MAX,
    SEGMENT,
    SEGMENT_MAX,
    errors,
    instant_check,
    instant_ns,
    instant_query,
    invalid,
    signer,
)
from hazwatch.devices.timeparse import format_ts
from hazwatch.streams.air.audit import (
    AUTO_BY,
    MAINTENANCE_KINDS,
    MANUAL,
    ORIGINS,
    Mark,
    reason_text,
)
from hazwatch.streams.air.marks import (
    Change,
    MarkConflict,
    MarkNotFound,
    MarkStore,
    UnknownStation,
)

router = APIRouter(prefix="/api/air", tags=["air audit"])

NS_PER_H = 3600 * 1_000_000_000
MAX_SPAN_NS = 366 * 24 * NS_PER_H  # a mark or a window of at most a year

Pollutant = Literal["*", "so2", "no2", "pm10", "co", "o3", "pm25"]
ManualReason = Literal[
    "fault", "calibration", "maintenance", "power", "communication", "interference", "other"
]
Kind = Literal["calibration", "inspection", "consumable", "repair"]
Origin = Literal["auto", "manual", "maintenance", "flag"]
# the audit's own lists, spelt out for the schema
assert get_args(ManualReason) == MANUAL and get_args(Origin) == ORIGINS
assert get_args(Kind) == tuple(MAINTENANCE_KINDS)
SiteOf = Annotated[
    str | None, Query(pattern=SEGMENT, max_length=SEGMENT_MAX, description="a site id")
]
StationOf = Annotated[
    str | None, Query(pattern=SEGMENT, max_length=SEGMENT_MAX, description="a station id")
]
From: TypeAlias = Annotated[str | None, instant_query("from"), instant_check("from")]
To: TypeAlias = Annotated[str | None, instant_query("to"), instant_check("to")]
Limit = Annotated[int, Query(ge=1, le=5000, description="at most this many, oldest first")]
MarkId = Annotated[int, Path(ge=1, le=2**62, description="the mark's id")]
Instant = Annotated[str, Field(pattern=INSTANT, max_length=INSTANT_MAX)]


def _store(ctx: ApiContext) -> MarkStore:
    return part_store(ctx.air_audit, "air")


class _Signed(BaseModel):
    by: str = Field(min_length=1, max_length=64, pattern=BY, description="who (name or id)")

    @field_validator("by")
    @classmethod
    def _a_person(cls, value: str) -> str:
        return signer(value, AUTO_BY, "the audit's own name (automatic marks)")


class MarkIn(_Signed):
    """Data of a station invalid in [start, end): which pollutant, why (a reason and a note)."""

    site: str = Field(pattern=SEGMENT, max_length=SEGMENT_MAX)
    station: str = Field(pattern=SEGMENT, max_length=SEGMENT_MAX)
    pollutant: Pollutant = Field(default="*", description="one pollutant, or * for all")
    start: Instant = Field(description="RFC 3339 with a zone, or epoch ms")
    end: Instant = Field(description="exclusive; RFC 3339 with a zone, or epoch ms")
    reason: ManualReason
    note: str = Field(min_length=1, max_length=1000, description="what was wrong (required)")

    @field_validator("note")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("note must say why the data are invalid")
        return value.strip()


class Unmark(_Signed):
    note: str = Field(min_length=1, max_length=1000, description="why the data are valid")


class MaintenanceIn(_Signed):
    """A calibration, inspection, consumable change or repair; its window marks the data."""

    site: str = Field(pattern=SEGMENT, max_length=SEGMENT_MAX)
    station: str = Field(pattern=SEGMENT, max_length=SEGMENT_MAX)
    kind: Kind
    start: Instant
    end: Instant | None = Field(default=None, description="the window's end (none: no window)")
    pollutant: Pollutant = Field(default="*", description="the analyser's pollutant, or * all")
    note: str = Field(min_length=1, max_length=1000)


def _instant(text: str, name: str) -> int:
    try:
        return instant_ns(text, name)
    except ValueError as exc:
        raise invalid("body", name, text, str(exc)) from None


def _span(start: str, end: str | None, *, window: bool) -> tuple[int, int]:
    """[start, end) of a body; a maintenance record (`window`) may have none (end = start)."""
    start_ns = _instant(start, "start")
    end_ns = _instant(end, "end") if end is not None else start_ns
    if end_ns < start_ns or (end_ns == start_ns and not window):
        raise invalid("body", "end", end, "end must be after start")
    if end_ns - start_ns > MAX_SPAN_NS:
        raise invalid("body", "end", end, "a span of at most 366 days")
    return start_ns, end_ns


def _window(start: str | None, end: str | None, default_h: int) -> tuple[int, int]:
    end_ns = instant_ns(end, "to") if end is not None else time.time_ns()
    start_ns = instant_ns(start, "from") if start is not None else end_ns - default_h * NS_PER_H
    if start_ns >= end_ns:
        name, value = ("from", start) if start is not None else ("to", end)
        raise invalid("query", name, value, "from must be before to (to defaults to now)")
    return start_ns, end_ns


def _mark_out(row: dict[str, Any], lang: str) -> dict[str, Any]:
    return {
        **row,
        "reason_text": reason_text(row["reason"], lang),
        "start": format_ts(row["start_ns"]),
        "end": format_ts(row["end_ns"]),
        "created": format_ts(row["created_ns"]),
        "revoked": None if row["revoked_ns"] is None else format_ts(row["revoked_ns"]),
        "in_force": row["revoked_ns"] is None,
    }


def _maintenance_out(row: dict[str, Any], lang: str) -> dict[str, Any]:
    zh, en = MAINTENANCE_KINDS.get(row["kind"], (row["kind"], row["kind"]))
    return {
        **row,
        "kind_text": zh if lang == "zh" else en,
        "start": format_ts(row["start_ns"]),
        "end": format_ts(row["end_ns"]),
        "created": format_ts(row["created_ns"]),
    }


def _change(change: Change, key: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: row,
        "recomputed": [format_ts(h) for h in change.recomputed],
        "not_recomputed": [format_ts(h) for h in change.pruned],
    }


@router.get("/marks")
def marks(
    ctx: Ctx,
    site: SiteOf = None,
    station: StationOf = None,
    start: From = None,
    end: To = None,
    origin: Annotated[Origin | None, Query(description="auto|manual|maintenance|flag")] = None,
    revoked: Annotated[bool, Query(description="also the revoked marks")] = True,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """Audit marks overlapping [from, to) (default the last 7 days), oldest first: why each
    datum is left out of means and AQI, by whom, and who restored it."""
    start_ns, end_ns = _window(start, end, 7 * 24)
    rows = _store(ctx).marks(
        site=site,
        station=station,
        start_ns=start_ns,
        end_ns=end_ns,
        origin=origin,
        revoked=revoked,
        limit=limit,
    )
    return {
        "from": format_ts(start_ns),
        "to": format_ts(end_ns),
        "marks": [_mark_out(r, ctx.lang) for r in rows],
    }


@router.post("/marks/add", dependencies=[Depends(require_token)], responses=errors(400, 401, 404))
def mark(body: MarkIn, ctx: Ctx) -> dict[str, Any]:
    """Mark a station's data invalid (a pollutant or all, over [start, end)) with a reason and
    a note; the hours it touches are computed again without it (those whose readings are
    still kept: `not_recomputed` lists the others)."""
    start_ns, end_ns = _span(body.start, body.end, window=False)
    store = _store(ctx)
    try:
        change = store.add(
            body.site,
            body.station,
            Mark(body.pollutant, start_ns, end_ns, body.reason, body.note),
            by=body.by,
            now_ns=time.time_ns(),
        )
    except UnknownStation as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return _change(change, "mark", _mark_out(change.row, ctx.lang))


@router.post(
    "/marks/{mark_id}/unmark",
    dependencies=[Depends(require_token)],
    responses=errors(400, 401, 404, 409),
)
def unmark(mark_id: MarkId, body: Unmark, ctx: Ctx) -> dict[str, Any]:
    """Revoke a mark: its data count again and its hours are computed again; the mark stays
    on record with who revoked it and why (409 when it is revoked already)."""
    try:
        change = _store(ctx).revoke(
            mark_id, by=body.by, note=body.note.strip(), now_ns=time.time_ns()
        )
    except MarkNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except MarkConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return _change(change, "mark", _mark_out(change.row, ctx.lang))


@router.get("/maintenance")
def maintenance(
    ctx: Ctx,
    site: SiteOf = None,
    station: StationOf = None,
    start: From = None,
    end: To = None,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """Maintenance records (运维记录) whose time overlaps [from, to) (default the last 30
    days), oldest first."""
    start_ns, end_ns = _window(start, end, 30 * 24)
    rows = _store(ctx).maintenance(
        site=site, station=station, start_ns=start_ns, end_ns=end_ns, limit=limit
    )
    return {
        "from": format_ts(start_ns),
        "to": format_ts(end_ns),
        "records": [_maintenance_out(r, ctx.lang) for r in rows],
    }


@router.post(
    "/maintenance/add", dependencies=[Depends(require_token)], responses=errors(400, 401, 404)
)
def add_maintenance(body: MaintenanceIn, ctx: Ctx) -> dict[str, Any]:
    """Record a calibration, inspection, consumable change or repair; with an end, the data
    inside its window are marked invalid (maintenance) and their hours computed again."""
    start_ns, end_ns = _span(body.start, body.end, window=True)
    try:
        change = _store(ctx).add_maintenance(
            body.site,
            body.station,
            kind=body.kind,
            start_ns=start_ns,
            end_ns=end_ns,
            pollutant=body.pollutant,
            note=body.note.strip(),
            by=body.by,
            now_ns=time.time_ns(),
        )
    except UnknownStation as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return _change(change, "record", _maintenance_out(change.row, ctx.lang))
