"""What the API's routes may use, injected once by hazwatch's wiring (FastAPI dependencies).

Never open stores here: the composition root builds them and hands them in.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, HTTPException, Request

from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.interfaces import PointReader
from hazwatch.streams.air.marks import MarkStore
from hazwatch.streams.air.store import AirStore
from hazwatch.streams.clocks.store import ClockStore
from hazwatch.streams.custody.store import CustodyStore
from hazwatch.streams.hj212.store import LinkStore
from hazwatch.streams.labels.store import LabelStore
from hazwatch.streams.video.store import EvidenceStore

T = TypeVar("T")


@dataclass
class ApiContext:
    db: StateDB
    reader: PointReader
    alerts: AlertStore  # the service's one alert store, filled by the alerts part (api_stores)
    data_dir: Path
    # name -> callable that raises on failure (broker, influxdb, state store ...)
    health_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    api_token: str = ""
    lang: str = "zh"
    # the ingest line's own state (ingest/health.py): oldest unacked, retries, dead-letter rate
    ingest_health: Callable[[], dict[str, Any]] | None = None
    # the parts' stores, built once by the composition root (hazwatch.parts: api_stores)
    custody: CustodyStore | None = None
    air: AirStore | None = None
    air_audit: MarkStore | None = None  # the air data audit: marks, maintenance records
    evidence: EvidenceStore | None = None  # the video part's snapshots
    clocks: ClockStore | None = None  # the devices' measured clock offsets
    deadletters: DeadLetterStore | None = None
    labels: LabelStore | None = None  # batches by HJ 1276 label id (the screen part's)
    hj212: LinkStore | None = None  # stations' HJ 212 editions and field-device information
    # set when the service stops: long-lived responses (the live feed's streams) end with it,
    # so that the server's graceful shutdown does not wait on screens that never hang up
    stopping: threading.Event = field(default_factory=threading.Event)


def part_store(value: T | None, part: str) -> T:
    """A part's store, or 503 when this API was built without that part."""
    if value is None:
        raise HTTPException(status_code=503, detail=f"the {part} part is not wired in this API")
    return value


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def require_token(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> None:
    """Write endpoints need `Authorization: Bearer <HAZWATCH_API_TOKEN>` when a token is set."""
    if not ctx.api_token:
        return
    expected = f"Bearer {ctx.api_token}".encode()
    # constant time: how long a wrong token takes to refuse tells nothing of the right one
    if not hmac.compare_digest((authorization or "").encode(), expected):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token")
