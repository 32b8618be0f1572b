"""`/api/health`: each dependency up or down with the error; `/metrics` for Prometheus.

Never let a failing check take the endpoint down: report it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from hazwatch.api.deps import Ctx

router = APIRouter()


class Component(BaseModel):
    status: Literal["up", "down", "starting"]
    error: str | None = None


class HealthReport(BaseModel):
    """`up`; `degraded` with the reasons: a dependency down, or the line itself unwell; or
    `starting`: a part still loading its state (custody's open work), the rest taking data."""

    status: Literal["up", "degraded", "starting"]
    reasons: list[str]
    components: dict[str, Component]
    ingest: dict[str, Any] | None = None


@router.get(
    "/api/health",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "degraded (see `reasons`) or starting"}},
)
def health(ctx: Ctx) -> JSONResponse:
    components: dict[str, dict[str, str]] = {}
    for name, check in ctx.health_checks.items():
        try:
            state: object = check()  # None: up; "starting": still loading
            components[name] = {"status": "starting" if state == "starting" else "up"}
        except Exception as exc:
            components[name] = {"status": "down", "error": str(exc)}
    reasons = [f"{name}: {c['error']}" for name, c in components.items() if c["status"] == "down"]
    body: dict[str, object] = {"components": components}
    if ctx.ingest_health is not None:
        try:
            ingest = ctx.ingest_health()
        except Exception as exc:  # the report itself failing is a reason, not a 500
            ingest = {"reasons": [f"ingest health unavailable: {exc}"]}
        reasons += [str(r) for r in ingest.get("reasons", [])]
        body["ingest"] = ingest
    starting = any(c["status"] == "starting" for c in components.values())
    ok = not reasons and not starting
    status = "degraded" if reasons else "starting" if starting else "up"
    body = {"status": status, "reasons": reasons, **body}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
