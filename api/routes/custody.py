"""Custody API: batch traces and lists, the management ledger, the device registry.

Never write here: these routes only read what the custody tracker stored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeAlias

from fastapi import APIRouter, HTTPException, Path, Query, Response

from hazwatch.api.deps import ApiContext, Ctx, part_store
from hazwatch.api.params import (
    DAY_CHECK,
    IDENT,
    IDENT_MAX,
    SEGMENT,
    SEGMENT_MAX,
    day_query,
    errors,
    invalid,
)
from hazwatch.devices import registry as device_registry
from hazwatch.streams.custody import ledger as ledger_mod
from hazwatch.streams.custody.store import CustodyStore, trace_document

router = APIRouter(prefix="/api", tags=["custody"])

Batch = Annotated[str, Path(pattern=IDENT, max_length=IDENT_MAX, description="the batch code")]
SiteOf = Annotated[str, Query(pattern=SEGMENT, max_length=SEGMENT_MAX, description="a site id")]
# hazwatch.streams.custody.rules.STAGES, either case (the stored stage is upper case)
Stage = Literal[
    "GENERATED", "STORED", "DISPATCHED", "IN_TRANSIT", "RECEIVED", "DISPOSED",
    "generated", "stored", "dispatched", "in_transit", "received", "disposed",
]  # fmt: skip
Kind = Literal["generation", "storage_in", "storage_out", "transfer", "disposal"]
DateFrom: TypeAlias = Annotated[str, day_query("from"), DAY_CHECK]
DateTo: TypeAlias = Annotated[str, day_query("to"), DAY_CHECK]
MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
LEDGER_JSON = {
    "type": "object",
    "required": ["records", "monthly"],
    "properties": {
        "records": {"type": "array", "items": {"type": "object"}},
        "monthly": {"type": "array", "items": {"type": "object"}},
    },
}
LEDGER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The ledger: records and monthly totals, as JSON, CSV (UTF-8) or XLSX.",
        "content": {
            MEDIA["json"]: {"schema": LEDGER_JSON},
            "text/csv": {"schema": {"type": "string"}},
            MEDIA["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _store(ctx: ApiContext) -> CustodyStore:
    return part_store(ctx.custody, "custody")


@router.get("/batches/{batch}/trace", responses=errors(404))
def batch_trace(batch: Batch, ctx: Ctx) -> dict[str, Any]:
    doc = trace_document(_store(ctx), batch, time.time_ns())
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no batch {batch!r} is known to custody")
    return doc


@router.get("/batches")
def batch_list(
    ctx: Ctx,
    stage: Stage | None = None,
    site: SiteOf | None = None,
    verdict: Literal["complete", "open", "broken"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[dict[str, Any]]:
    rows = _store(ctx).batches(stage=stage, site=site, verdict=verdict, limit=limit)
    return [
        {
            "batch": r["batch"],
            "epc": r["epc"],
            "waste_code": r["waste_code"],
            "site": r["site"],
            "stage": r["stage"],
            "verdict": r["verdict"],
            "at_site": r["at_site"],
            "since_ns": r["since_ns"],
            "manifest": r["manifest"],
            "rules": sorted({v["rule"] for v in r["violations"]}),
        }
        for r in rows
    ]


@router.get("/ledger", response_model=None, responses=LEDGER_RESPONSES)
def ledger(
    ctx: Ctx,
    site: SiteOf,
    date_from: DateFrom,
    date_to: DateTo,
    kind: Kind | None = None,
    format: Literal["csv", "xlsx", "json"] = "json",
    lang: Literal["zh", "en"] = "zh",
) -> Response:
    """Records of `site` from the first day to the last (both included, China time)."""
    start = ledger_mod.parse_date_ns(date_from)
    end = ledger_mod.parse_date_ns(date_to, end=True)
    if start >= end:
        raise invalid("query", "to", date_to, "to must not be before from")
    built = ledger_mod.ledger_for(_store(ctx), site, start, end, kind)
    body = ledger_mod.render(built, format, lang)
    media = MEDIA[format]
    headers = {}
    if format != "json":
        headers["Content-Disposition"] = f'attachment; filename="ledger-{site}.{format}"'
    return Response(body, media_type=media, headers=headers)


@router.get("/registry")
def registry(ctx: Ctx) -> dict[str, Any]:
    version, current = device_registry.load_stored(ctx.db)
    return {"version": version, **current.to_document()}
