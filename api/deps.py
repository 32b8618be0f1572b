"""What the API's routes may use, injected once by hazwatch's wiring (FastAPI dependencies).

Never open stores here: the composition root builds them and hands them in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request

from alerts.store import AlertStore
from devices.statedb import StateDB
from ingest.interfaces import PointReader


@dataclass
class ApiContext:
    db: StateDB
    reader: PointReader
    alerts: AlertStore
    data_dir: Path
    # name -> callable that raises on failure (broker, influxdb, state store ...)
    health_checks: dict[str, Callable[[], None]] = field(default_factory=dict)
    api_token: str = ""
    lang: str = "zh"
    # the ingest line's own state (ingest.health): oldest unacked, retries, dead-letter rate
    ingest_health: Callable[[], dict[str, Any]] | None = None
    # parts that land later register themselves here (custody tracker, air aggregates ...)
    parts: dict[str, Any] = field(default_factory=dict)


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def require_token(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> None:
    """Write endpoints need `Authorization: Bearer <HAZWATCH_API_TOKEN>` when a token is set."""
    if not ctx.api_token:
        return
    if authorization != f"Bearer {ctx.api_token}":
        raise HTTPException(status_code=401, detail="missing or wrong bearer token")
