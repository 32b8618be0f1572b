"""`/api/overview`: the overview (总览) in one read — per site and in total, batches by stage
and verdict, waste in storage against each site's limit, open alerts by severity, devices by
family and state; the latest air per station with its AQI level; the ingest line's health.

Never compute a verdict, an AQI or a rate here: read what the parts and the line stored or
measured, and say where a figure is missing (null), never invent one.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from fastapi import APIRouter

from hazwatch.alerts.model import AlertState, Severity
from hazwatch.api.deps import ApiContext, Ctx
from hazwatch.api.routes.devices import by_family, device_rows
from hazwatch.devices import registry as device_registry
from hazwatch.devices.timeparse import format_ts
from hazwatch.streams.air.aqi import POLLUTANTS, level_of
from hazwatch.streams.custody.rules import STAGES

router = APIRouter(tags=["overview"])

VERDICTS = ("open", "complete", "broken")
ACTIVE = (AlertState.OPEN.value, AlertState.ACKNOWLEDGED.value)
OPEN_ALERTS_READ = 5000  # at most this many active alerts are counted (the count says so)
RECENT_ALERTS = 8
AIR_FIELDS = (*POLLUTANTS, "temp", "rh", "wind_speed", "wind_dir")


def _empty_site(site_id: str) -> dict[str, Any]:
    return {
        "id": site_id,
        "name": "",
        "role": None,
        "lat": None,
        "lon": None,
        "registered": False,
        "batches": {
            "total": 0,
            "by_stage": dict.fromkeys(STAGES, 0),
            "by_verdict": dict.fromkeys(VERDICTS, 0),
        },
        "storage": None,
        "alerts": {"open": 0, "acknowledged": 0, "by_severity": {s.value: 0 for s in Severity}},
        "devices": by_family([]),
    }


def _state(site: dict[str, Any]) -> str:
    """alarm: a major or critical alert active, or a broken batch here, or storage over its
    limit; warning: a warning, a device offline or storage past 90 %; ok otherwise."""
    sev = site["alerts"]["by_severity"]
    storage = site["storage"]
    share = storage["share"] if storage and storage["share"] is not None else 0.0
    if sev["critical"] or sev["major"] or site["batches"]["by_verdict"]["broken"] or share > 1:
        return "alarm"
    offline = sum(f["offline"] for f in site["devices"].values())
    if sev["warning"] or offline or share > 0.9:
        return "warning"
    return "ok"


def _air(ctx: ApiContext) -> list[dict[str, Any]]:
    if ctx.air is None:
        return []
    rows = []
    for station in ctx.air.stations():
        aqi = station.get("aqi")
        level = level_of(aqi) if isinstance(aqi, int) else None
        latest: dict[str, Any] = {}
        try:
            found = ctx.reader.select(
                "air",
                tags={"site": station["site"], "station": station["station"]},
                fields=list(AIR_FIELDS),
                newest_first=True,
                limit=1,
            )
        except Exception:
            found = []
        if found:
            latest = {k: found[0][k] for k in AIR_FIELDS if k in found[0]}
            latest["ts"] = format_ts(int(found[0]["time"]))
        rows.append(
            {
                "site": station["site"],
                "station": station["station"],
                "newest": format_ts(station["newest_ns"]),
                "hour": format_ts(station["hour_ns"]) if station["hour_ns"] else None,
                "aqi": aqi,
                "level": level.number if level else None,
                "level_name": {"zh": level.category_zh, "en": level.category_en} if level else None,
                "rgb": level.rgb if level else None,
                "primary": station.get("primary") or "",
                "latest": latest,
            }
        )
    return rows


def _ingest(ctx: ApiContext) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if ctx.ingest_health is not None:
        try:
            found = ctx.ingest_health()
        except Exception as exc:
            found = {"reasons": [f"ingest health unavailable: {exc}"]}
    down = []
    for name, check in ctx.health_checks.items():
        try:
            check()
        except Exception as exc:
            down.append(f"{name}: {exc}")
    reasons = down + [str(r) for r in found.get("reasons", [])]
    letters = ctx.deadletters.count_by_reason() if ctx.deadletters is not None else {}
    store = found.get("deadletter_store") or {}
    return {
        "status": "up" if not reasons else "degraded",
        "reasons": reasons,
        "messages_per_s": found.get("messages_per_s"),
        "messages": found.get("messages"),
        "deadletters_per_min": found.get("deadletters_per_min"),
        "deadletters": sum(letters.values()),
        "deadletters_by_reason": letters,
        "deadletter_store_full": bool(store.get("full")),
        "spool_segments": found.get("spool_segments"),
        "oldest_unacked_s": found.get("oldest_unacked_s"),
    }


@router.get("/api/overview")
def overview(ctx: Ctx) -> dict[str, Any]:
    """The overview: `sites` (the registry's, and any other a batch, an alert or a device is
    at), each with its `state` (ok / warning / alarm), and `total`; `air` per station (the
    latest closed hour's AQI with its HJ 633-2012 level and colour, and the newest reading);
    `ingest` (messages/s of this worker, dead letters, spool segments); `recent_alerts`."""
    now_ns = time.time_ns()
    _, reg = device_registry.load_stored(ctx.db)
    sites: dict[str, dict[str, Any]] = {}

    def site(site_id: str) -> dict[str, Any]:
        if site_id not in sites:
            sites[site_id] = _empty_site(site_id)
        return sites[site_id]

    for entry in reg.sites.values():
        s = site(entry.id)
        s.update(
            name=entry.name,
            role=entry.role,
            lat=entry.lat,
            lon=entry.lon,
            registered=True,
            storage_limit_kg=entry.storage_limit_kg,
        )
    crossed: dict[str, dict[str, int]] = {st: dict.fromkeys(VERDICTS, 0) for st in STAGES}
    if ctx.custody is not None:
        for at_site, stage, verdict, n in ctx.custody.counts():
            crossed.setdefault(stage, dict.fromkeys(VERDICTS, 0))
            crossed[stage][verdict] = crossed[stage].get(verdict, 0) + n
            batches = site(at_site or "?")["batches"]
            batches["total"] += n
            batches["by_stage"][stage] = batches["by_stage"].get(stage, 0) + n
            batches["by_verdict"][verdict] = batches["by_verdict"].get(verdict, 0) + n
        stored_at = {name: (n, kg) for name, n, kg in ctx.custody.in_storage()}
        storing = {r.site for r in reg.readers.values() if r.location == "storage_in"}
        for name in sorted(storing | set(stored_at)):
            s = site(name)
            n, kg = stored_at.get(name, (0, 0.0))
            limit = s.get("storage_limit_kg") or device_registry.DEFAULT_STORAGE_LIMIT_KG
            s["storage"] = {
                "batches": n,
                "kg": round(kg, 1),
                "limit_kg": limit,
                "share": round(kg / limit, 3) if limit else None,
            }
    active = [a for state in ACTIVE for a in ctx.alerts.list(state=state, limit=OPEN_ALERTS_READ)]
    for alert in active:
        counts = site(alert.site or "?")["alerts"]
        counts[alert.state.value] += 1
        counts["by_severity"][alert.severity.value] += 1
    devices = device_rows(ctx, now_ns)
    for name in {d["site"] for d in devices}:
        site(name)["devices"] = by_family(d for d in devices if d["site"] == name)
    for s in sites.values():
        s["state"] = _state(s)
    total_storage = [s["storage"] for s in sites.values() if s["storage"]]
    by_severity = Counter(a.severity.value for a in active)
    total = {
        "batches": {
            "total": sum(s["batches"]["total"] for s in sites.values()),
            "by_stage": {
                st: sum(s["batches"]["by_stage"].get(st, 0) for s in sites.values())
                for st in STAGES
            },
            "by_verdict": {
                v: sum(s["batches"]["by_verdict"].get(v, 0) for s in sites.values())
                for v in VERDICTS
            },
            "by_stage_verdict": crossed,  # stage → verdict → batches
        },
        "storage": {
            "batches": sum(x["batches"] for x in total_storage),
            "kg": round(sum(x["kg"] for x in total_storage), 1),
            "limit_kg": sum(x["limit_kg"] for x in total_storage),
        },
        "alerts": {
            "open": sum(a.state is AlertState.OPEN for a in active),
            "acknowledged": sum(a.state is AlertState.ACKNOWLEDGED for a in active),
            "by_severity": {s.value: by_severity.get(s.value, 0) for s in Severity},
            "counted_up_to": OPEN_ALERTS_READ,
        },
        "devices": by_family(devices),
    }
    recent = sorted(active, key=lambda a: a.opened_ns, reverse=True)[:RECENT_ALERTS]
    return {
        "now": format_ts(now_ns),
        "now_ms": now_ns // 1_000_000,
        "sites": sorted(sites.values(), key=lambda s: (not s["registered"], s["id"])),
        "total": total,
        "air": _air(ctx),
        "ingest": _ingest(ctx),
        "recent_alerts": [
            {
                "alert_id": a.alert_id,
                "rule": a.rule,
                "severity": a.severity.value,
                "state": a.state.value,
                "site": a.site,
                "subject": a.subject,
                "message": a.message,
                "opened": format_ts(a.opened_ns),
                "opened_ms": a.opened_ns // 1_000_000,
                "count": a.count,
            }
            for a in recent
        ],
    }
