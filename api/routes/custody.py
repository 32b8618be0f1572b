"""Custody API: batch traces and lists, the management ledger, the device registry.

Never write here: these routes only read what the custody tracker stored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from api.deps import Ctx
from devices import registry as device_registry
from devices.statedb import StateDB
from streams import ledger as ledger_mod
from streams.custody_store import CustodyStore, trace_document

router = APIRouter(prefix="/api", tags=["custody"])
_STORES: dict[int, CustodyStore] = {}


def _store(db: StateDB) -> CustodyStore:
    store = _STORES.get(id(db))
    if store is None or store.db is not db:
        store = _STORES[id(db)] = CustodyStore(db)
    return store


@router.get("/batches/{batch}/trace")
def batch_trace(batch: str, ctx: Ctx) -> dict[str, Any]:
    doc = trace_document(_store(ctx.db), batch, time.time_ns())
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no batch {batch!r} is known to custody")
    return doc


@router.get("/batches")
def batch_list(
    ctx: Ctx,
    stage: str | None = None,
    site: str | None = None,
    verdict: Annotated[str | None, Query(pattern="^(complete|open|broken)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[dict[str, Any]]:
    rows = _store(ctx.db).batches(stage=stage, site=site, verdict=verdict, limit=limit)
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


@router.get("/ledger", response_model=None)
def ledger(
    ctx: Ctx,
    site: str,
    date_from: Annotated[str, Query(alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$")],
    date_to: Annotated[str, Query(alias="to", pattern=r"^\d{4}-\d{2}-\d{2}$")],
    kind: str | None = None,
    format: Annotated[str, Query(pattern="^(csv|xlsx|json)$")] = "json",
    lang: Annotated[str, Query(pattern="^(zh|en)$")] = "zh",
) -> Response:
    if kind is not None and kind not in ledger_mod.KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(ledger_mod.KINDS)}")
    start = ledger_mod.parse_date_ns(date_from)
    end = ledger_mod.parse_date_ns(date_to, end=True)
    built = ledger_mod.ledger_for(_store(ctx.db), site, start, end, kind)
    body = ledger_mod.render(built, format, lang)
    media = {
        "json": "application/json",
        "csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }[format]
    headers = {}
    if format != "json":
        headers["Content-Disposition"] = f'attachment; filename="ledger-{site}.{format}"'
    return Response(body, media_type=media, headers=headers)


@router.get("/registry")
def registry(ctx: Ctx) -> dict[str, Any]:
    version, current = device_registry.load_stored(ctx.db)
    return {"version": version, **current.to_document()}
