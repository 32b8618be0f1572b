"""`/api/devices/clocks`: each device's measured clock offset, as the clocks part last saved it.

Never measure here: these routes only read what the clocks processor stored (every few seconds).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from hazwatch.api.deps import ApiContext, Ctx, part_store
from hazwatch.api.params import SEGMENT, SEGMENT_MAX, errors
from hazwatch.devices.timeparse import format_ts
from hazwatch.streams.clocks.store import ClockStore

router = APIRouter(prefix="/api/devices", tags=["devices"])

SiteOf = Annotated[str, Query(pattern=SEGMENT, max_length=SEGMENT_MAX, description="a site id")]
# the device families (hazwatch.devices.families): a topic's family segment
Family = Literal["rfid", "scale", "terminal", "air", "camera"]
SitePath = Annotated[str, Path(pattern=SEGMENT, max_length=SEGMENT_MAX, description="site id")]
DevicePath = Annotated[
    str, Path(pattern=SEGMENT, max_length=SEGMENT_MAX, description="the device's topic id")
]


def _store(ctx: ApiContext) -> ClockStore:
    return part_store(ctx.clocks, "clocks")


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "since": format_ts(row["since_ns"]), "last": format_ts(row["last_ns"])}


@router.get("/clocks")
def device_clocks(
    ctx: Ctx,
    site: SiteOf | None = None,
    family: Family | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[dict[str, Any]]:
    """Devices' clock offsets: `offset_s` is receive − device time (positive: the device's
    clock is slow), null until measured; `skewed` when clock_skew is raised for it."""
    return [_shown(r) for r in _store(ctx).list(site=site, family=family, limit=limit)]


@router.get("/{site}/{family}/{device}/clock", responses=errors(404))
def device_clock(ctx: Ctx, site: SitePath, family: Family, device: DevicePath) -> dict[str, Any]:
    row = _store(ctx).get(site, family, device)
    if row is None:
        raise HTTPException(
            status_code=404, detail=f"no clock is measured for {family} {site}/{device}"
        )
    return _shown(row)
