"""`/api/devices`: every device the registry places or the broker heard of, with its latest
status (online, battery, signal), when it was last heard and its clock; and
`/api/cameras/{site}/{camera}/frames`: a camera's latest frame metrics and evidence snapshots.

Never write here, and never scan a measurement without a bound: each read of the point store
is limited in time and rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from hazwatch.api.deps import ApiContext, Ctx
from hazwatch.api.params import SEGMENT, SEGMENT_MAX, errors, invalid
from hazwatch.devices import registry as device_registry
from hazwatch.devices.timeparse import format_ts
from hazwatch.ingest.retention import WindowTooLong, choose

router = APIRouter(tags=["devices"])

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
# how far back the latest status of a device is looked for, and how many status points
STATUS_LOOKBACK_NS = 30 * 86_400 * NS_PER_S
STATUS_ROWS = 20_000
FRAME_FIELDS = ("brightness", "sharpness", "motion", "occlusion", "scene_change")
MINUTE_METRICS = ("brightness", "sharpness", "motion", "occlusion")  # video_minute's
# a window the route takes at all (a longer one than its coarsest resolution serves is a 422
# that says so, not FastAPI's bare bound), and rows: 31 days of minutes
MINUTES_MAX = 3660 * 1440
ROWS_MAX = 50_000
FAMILIES = ("rfid", "scale", "terminal", "air", "camera")
Family = Literal["rfid", "scale", "terminal", "air", "camera"]
SiteOf = Annotated[str, Query(pattern=SEGMENT, max_length=SEGMENT_MAX, description="a site id")]
SitePath = Annotated[str, Path(pattern=SEGMENT, max_length=SEGMENT_MAX, description="site id")]
CameraPath = Annotated[
    str, Path(pattern=SEGMENT, max_length=SEGMENT_MAX, description="the camera's topic id")
]
Key = tuple[str, str, str]  # (site, family, device)


def _registered(reg: device_registry.Registry) -> dict[Key, dict[str, Any]]:
    """What the registry says stands where: (site, family, device) → its entry."""
    found: dict[Key, dict[str, Any]] = {}
    for r in reg.readers.values():
        found[(r.site, "rfid", r.id)] = {"location": r.location}
    for s in reg.scales.values():
        found[(s.site, "scale", s.id)] = {"location": s.location}
    for st in reg.stations.values():
        found[(st.site, "air", st.id)] = {"mn": st.mn, "lat": st.lat, "lon": st.lon}
    for c in reg.cameras.values():
        found[(c.site, "camera", c.id)] = {"watches": list(c.watches)}
    return found


def latest_status(ctx: ApiContext, now_ns: int) -> dict[Key, dict[str, Any]]:
    """Each device's newest `device_status` point (its last will says offline), newest first
    over the last 30 days and at most 20,000 points; an unreadable store answers nothing."""
    try:
        rows = ctx.reader.select(
            "device_status",
            start_ns=now_ns - STATUS_LOOKBACK_NS,
            newest_first=True,
            limit=STATUS_ROWS,
        )
    except Exception:
        return {}
    latest: dict[Key, dict[str, Any]] = {}
    for row in rows:
        key = (str(row.get("site", "")), str(row.get("family", "")), str(row.get("device", "")))
        if key not in latest:
            latest[key] = row
    return latest


def device_rows(ctx: ApiContext, now_ns: int) -> list[dict[str, Any]]:
    """One row per device: registered, or heard of through its status or its clock."""
    _, reg = device_registry.load_stored(ctx.db)
    registered = _registered(reg)
    statuses = latest_status(ctx, now_ns)
    clocks: dict[Key, dict[str, Any]] = {}
    if ctx.clocks is not None:
        try:
            clocks = {(c["site"], c["family"], c["device"]): c for c in ctx.clocks.list()}
        except Exception:
            clocks = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    if ctx.hj212 is not None:
        try:
            links = ctx.hj212.links()
        except Exception:
            links = {}
    keys: Iterable[Key] = sorted(set(registered) | set(statuses) | set(clocks))
    rows = []
    for key in keys:
        site, family, device = key
        status = statuses.get(key)
        clock = clocks.get(key)
        online = None if status is None else bool(status.get("online"))
        heard_ns = max(int(status["time"]) if status else 0, int(clock["last_ns"]) if clock else 0)
        rows.append(
            {
                "site": site,
                "family": family,
                "device": device,
                "registered": key in registered,
                **registered.get(key, {}),
                "online": online,
                "state": "unknown" if online is None else ("online" if online else "offline"),
                "status_at": format_ts(int(status["time"])) if status else None,
                "battery_pct": status.get("battery") if status else None,
                "rssi_dbm": status.get("rssi") if status else None,
                "fw": status.get("fw") if status else None,
                "last_seen": format_ts(heard_ns) if heard_ns else None,
                "last_seen_ms": heard_ns // 1_000_000 if heard_ns else None,
                "clock_offset_s": clock.get("offset_s") if clock else None,
                "clock_skewed": bool(clock.get("skewed")) if clock else False,
                **(_hj212_columns(links.get((site, device))) if family == "air" else {}),
            }
        )
    return rows


def _hj212_columns(link: dict[str, Any] | None) -> dict[str, Any]:
    """An air station's HJ 212 edition as its newest packet's Flag says ("HJ 212-2017" or
    "HJ 212-2025", None when none was heard) and its field-device information (CN 3020, and
    CN 1001's hardware serial under PolId ""): PolId → info code → value, time."""
    return {
        "edition": link.get("edition") if link else None,
        "device_info": {
            pol: {code: {"value": item["value"], "time": format_ts(item["time_ns"])}
                  for code, item in items.items()}
            for pol, items in (link or {}).get("device_info", {}).items()
        },
    }  # fmt: skip


def by_family(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """family → {online, offline, unknown}: how many devices are in each state."""
    counts: dict[str, dict[str, int]] = {
        f: {"online": 0, "offline": 0, "unknown": 0} for f in FAMILIES
    }
    for row in rows:
        counts.setdefault(row["family"], {"online": 0, "offline": 0, "unknown": 0})
        counts[row["family"]][row["state"]] += 1
    return counts


@router.get("/api/devices")
def devices(
    ctx: Ctx,
    site: SiteOf | None = None,
    family: Family | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """Devices by site, family and id: where the registry places them; the newest status each
    sent (`online`, `battery_pct`, `rssi_dbm`, `fw`; `state` unknown when none was heard);
    `last_seen`, the newer of that status and the last message its clock was measured by; the
    clock offset the clocks part measured; for air stations their HJ 212 `edition` and
    `device_info` (CN 3020). `total` counts every row the filters match."""
    rows = [
        r
        for r in device_rows(ctx, time.time_ns())
        if (site is None or r["site"] == site) and (family is None or r["family"] == family)
    ]
    return {
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "by_family": by_family(rows),
        "devices": rows[offset : offset + limit],
    }


def _known_camera(ctx: ApiContext, site: str, camera: str, now_ns: int) -> bool:
    """Whether `/api/devices` lists the camera: the registry places it, or it sent a status in
    the last 30 days or a message its clock was measured by (a camera that announced itself
    and sent no frame yet answers no frames, not 404)."""
    _, reg = device_registry.load_stored(ctx.db)
    if (site, camera) in reg.cameras:
        return True
    try:
        if ctx.reader.select(
            "device_status",
            tags={"site": site, "family": "camera", "device": camera},
            start_ns=now_ns - STATUS_LOOKBACK_NS,
            newest_first=True,
            limit=1,
        ):
            return True
    except Exception:
        pass
    if ctx.clocks is not None:
        try:
            return any(
                (c["site"], c["family"], c["device"]) == (site, "camera", camera)
                for c in ctx.clocks.list()
            )
        except Exception:
            return False
    return False


@router.get("/api/cameras/{site}/{camera}/frames", responses=errors(404, 503))
def camera_frames(
    ctx: Ctx,
    site: SitePath,
    camera: CameraPath,
    minutes: Annotated[
        int, Query(ge=1, le=MINUTES_MAX, description="how far back (at most 31 days)")
    ] = 15,
    limit: Annotated[
        int, Query(ge=1, le=ROWS_MAX, description="at most this many frames or minutes")
    ] = 300,
) -> dict[str, Any]:
    """The camera's frame metrics of the last `minutes` (oldest first, at most `limit`, the
    newest kept), and its evidence snapshots, newest first (`/api/snapshots/{name}`).
    `resolution` says what was read (ingest/retention.py): `raw` frames (`video_frame`) for up
    to 6 hours; beyond, up to 31 days, the per-minute summary (`video_minute`: a row a minute,
    each metric its mean, `{metric}_max` and `frames` beside it); longer is refused (422)."""
    now_ns = time.time_ns()
    try:
        resolution = choose("camera_frames", minutes * NS_PER_MIN)
    except WindowTooLong as exc:
        raise invalid("query", "minutes", minutes, str(exc)) from None
    minute = resolution.name == "minute"
    fields = (
        [f"{m}_{k}" for m in MINUTE_METRICS for k in ("mean", "max")] + ["frames"]
        if minute
        else [*FRAME_FIELDS, "seq", "snapshot", "event"]
    )
    try:
        rows = ctx.reader.select(
            resolution.measurement,
            tags={"site": site, "camera": camera},
            fields=fields,
            start_ns=now_ns - minutes * NS_PER_MIN,
            newest_first=True,
            limit=limit,
        )
    except Exception as exc:
        raise HTTPException(status_code=503, detail=f"point store unreadable: {exc}") from None
    snapshots = ctx.evidence.of_camera(site, camera, 20) if ctx.evidence is not None else []
    if not rows and not snapshots and not _known_camera(ctx, site, camera, now_ns):
        raise HTTPException(
            status_code=404, detail=f"no camera {camera!r} at {site!r} is known or heard"
        )
    if minute:
        frames = [
            {
                "ts": format_ts(int(r["time"])),
                "ts_ms": int(r["time"]) // 1_000_000,
                "frames": r.get("frames"),
                **{m: r.get(f"{m}_mean") for m in MINUTE_METRICS},
                **{f"{m}_max": r.get(f"{m}_max") for m in MINUTE_METRICS},
            }
            for r in reversed(rows)
        ]
    else:
        frames = [
            {
                "ts": format_ts(int(r["time"])),
                "ts_ms": int(r["time"]) // 1_000_000,
                "seq": r.get("seq"),
                **{name: r.get(name) for name in FRAME_FIELDS},
                "snapshot": r.get("snapshot"),
                "event": r.get("event"),
            }
            for r in reversed(rows)
        ]
    return {
        "site": site,
        "camera": camera,
        "resolution": resolution.name,
        "frames": frames,
        "snapshots": snapshots,
    }
