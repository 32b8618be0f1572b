"""The batch page's reads: `/api/batches/find` (a batch by its code, EPC, manifest number or
HJ 1276 label id) and `/api/batches/{batch}/timeline` (its trace, generation → disposal, with
what each event's device is, the weights and their differences, the manifest, the alerts, and
the door camera's snapshots around each event).

Never judge a batch here: the verdict and the broken rules are the custody tracker's, as
`hazwatch trace` prints them; this only puts beside them what the other stores hold.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from hazwatch.api.deps import ApiContext, Ctx, part_store
from hazwatch.api.params import IDENT, IDENT_MAX, errors
from hazwatch.devices import registry as device_registry
from hazwatch.devices.timeparse import NS_PER_MS, NS_PER_S, format_ts
from hazwatch.streams.custody.rules import STAGES
from hazwatch.streams.custody.store import CustodyStore, trace_document
from hazwatch.streams.custody.text import detail

router = APIRouter(prefix="/api/batches", tags=["custody"])

Batch = Annotated[str, Path(pattern=IDENT, max_length=IDENT_MAX, description="the batch code")]
# a batch code, an EPC (hex), a manifest number, or a 37-character HJ 1276-2022 label id
Text = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:\-]{1,64}$",
        description="a batch code, EPC, manifest number or HJ 1276 label id",
    ),
]
LABEL_LENGTH = 37  # HJ 1276-2022 数字识别码 (devices/terminal.py label_id)
SNAPSHOT_WINDOW_NS = 10 * 60 * NS_PER_S  # a door camera's snapshot this near an event is shown
# devices.camera.snapshot_name: {site}_{camera}_{YYYYMMDDTHHMMSSmmmZ}_{seq}_{event}.jpg
SNAPSHOT_TIME = re.compile(r"_([0-9]{8}T[0-9]{6})([0-9]{3})Z_")


def _store(ctx: ApiContext) -> CustodyStore:
    return part_store(ctx.custody, "custody")


@router.get("/find")
def find(ctx: Ctx, q: Text, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    """The batches `q` names: its batch code, its EPC, the manifest listing it, or its HJ 1276
    label id (as its terminal registered it: the state store's label index)."""
    store = _store(ctx)
    found = store.find(q, limit)
    if len(q) == LABEL_LENGTH and not found and ctx.labels is not None:
        found = [(b, "label_id") for b in ctx.labels.batches(q, limit)]
    matches = []
    for batch, matched in found:
        row = store.batch(batch)
        matches.append(
            {
                "batch": batch,
                "matched": matched,
                "stage": row["stage"] if row else None,
                "verdict": row["verdict"] if row else None,
                "site": row["site"] if row else None,
                "at_site": row["at_site"] if row else None,
                "waste_code": row["waste_code"] if row else None,
            }
        )
    return {"query": q, "matches": matches}


def _snapshot_ns(name: str) -> int | None:
    found = SNAPSHOT_TIME.search(name)
    if found is None:
        return None
    when = datetime.strptime(found[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return int(when.timestamp()) * NS_PER_S + int(found[2]) * 1_000_000


def _door_snapshot(
    ctx: ApiContext, cameras: list[tuple[str, str]], ts_ns: int
) -> dict[str, Any] | None:
    """The snapshot of a camera watching the event's reader nearest the event, within 10 min."""
    if ctx.evidence is None:
        return None
    best: tuple[int, str, str] | None = None
    for site, camera in cameras:
        for name in ctx.evidence.of_camera(site, camera, 500):
            at = _snapshot_ns(name)
            if at is not None and abs(at - ts_ns) <= SNAPSHOT_WINDOW_NS:
                gap = abs(at - ts_ns)
                if best is None or gap < best[0]:
                    best = (gap, camera, name)
    if best is None:
        return None
    return {"camera": best[1], "name": best[2], "url": f"/api/snapshots/{best[2]}"}


def _registration(ctx: ApiContext, batch: str, info: dict[str, Any]) -> dict[str, Any]:
    """The terminal's registration as stored in the point store (label id, form, hazard …),
    found where the custody store says it is: the batch is a field of `waste_batch`, not a
    tag (docs/payloads.md), so the read is the terminal's series in the registration's
    device millisecond, not a scan for the batch."""
    site, terminal, ts_ns = info.get("site"), info.get("device"), info.get("ts_ns")
    if not (isinstance(site, str) and isinstance(terminal, str) and isinstance(ts_ns, int)):
        return {}
    device_ns = ts_ns - int(info.get("clock_offset_ns") or 0)
    start_ns = device_ns - device_ns % NS_PER_MS
    try:
        rows = ctx.reader.select(
            "waste_batch",
            tags={"site": site, "terminal": terminal},
            start_ns=start_ns,
            end_ns=start_ns + NS_PER_MS,
        )
    except Exception:
        return {}
    rows = [row for row in rows if row.get("batch") == batch]
    if not rows:
        return {}
    keep = (
        "waste_name", "waste_category", "form", "hazard", "producer", "label_id",
        "container_type", "handler", "terminal",
    )  # fmt: skip
    return {k: rows[0][k] for k in keep if k in rows[0]}


@router.get("/{batch}/timeline", responses=errors(404))
def timeline(batch: Batch, ctx: Ctx) -> dict[str, Any]:
    """`hazwatch trace`'s document with, beside it: `registration` (waste, producer, label
    id, handler), `manifest`, each event's `device_kind` and `location`, the `site_name`, the
    weight's `diff_kg` / `diff_pct` against the generation weighing, `violations` pointing at
    their event (each with its `params` and its `detail` in Chinese and English), the batch's
    `alerts` (with their violation's `params`), and each event's `snapshot` from a camera
    watching its reader (nearest within 10 minutes)."""
    store = _store(ctx)
    now_ns = time.time_ns()
    doc = trace_document(store, batch, now_ns)
    if doc is None:
        raise HTTPException(status_code=404, detail=f"no batch {batch!r} is known to custody")
    row = store.batch(batch) or {}
    _, reg = device_registry.load_stored(ctx.db)
    info = row.get("info") or {}
    doc["registration"] = {**info, **_registration(ctx, batch, info)}
    doc["registration"].pop("event_id", None)
    doc["producer_site"] = row.get("site")
    manifest_id = doc.get("manifest")
    doc["manifest_doc"] = store.manifest(manifest_id) if manifest_id else None
    generated_kg = next(
        (e["net_kg"] for e in doc["events"] if e["stage"] == "GENERATED" and e["net_kg"]), None
    )
    for violation in doc["violations"]:
        violation["detail"] = detail(
            violation["rule"], violation["message"], violation.get("params")
        )
    broken_at = {v["event_id"]: v["rule"] for v in doc["violations"]}
    watchers: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for cam in reg.cameras.values():
        for reader in cam.watches:
            watchers.setdefault((cam.site, reader), []).append((cam.site, cam.id))
    events = store.events(batch)
    by_id = {e.event_id: e for e in events}
    for item in doc["events"]:
        site, device = item["site"], item["device"]
        entry = reg.sites.get(site)
        item["site_name"] = entry.name if entry else ""
        at_reader = reg.readers.get((site, device))
        at_scale = reg.scales.get((site, device))
        item["device_kind"] = "rfid" if at_reader else "scale" if at_scale else "terminal"
        item["location"] = (
            at_reader.location if at_reader else at_scale.location if at_scale else None
        )
        event = by_id.get(item["event_id"])
        item["ts_ms"] = event.ts_ns // 1_000_000 if event else None
        if item["net_kg"] is not None and generated_kg and item["stage"] != "GENERATED":
            item["diff_kg"] = round(item["net_kg"] - generated_kg, 2)
            item["diff_pct"] = round(100 * (item["net_kg"] - generated_kg) / generated_kg, 2)
        item["broken_rule"] = broken_at.get(item["event_id"])
        cameras = watchers.get((site, device), [])
        item["snapshot"] = _door_snapshot(ctx, cameras, event.ts_ns) if event and cameras else None
    reached = {e["stage"] for e in doc["events"]}
    doc["stages"] = [{"stage": s, "reached": s in reached} for s in STAGES]
    doc["alerts"] = [
        {
            "alert_id": a.alert_id,
            "rule": a.rule,
            "severity": a.severity.value,
            "state": a.state.value,
            "opened": format_ts(a.opened_ns),
            "message": a.message,
            "params": a.details.get("params"),
            "detail": detail(a.rule, a.message, a.details.get("params")),
            "evidence": a.evidence,
            "evidence_url": f"/api/snapshots/{a.evidence}"
            if a.evidence and a.evidence.endswith(".jpg")
            else None,
        }
        for a in ctx.alerts.list(subject=batch, limit=100)
    ]
    return doc
