"""`/api/health`: each dependency up or down with the error; `/metrics` for Prometheus.

Never let a failing check take the endpoint down: report it.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import Ctx

router = APIRouter()


@router.get("/api/health")
def health(ctx: Ctx) -> JSONResponse:
    components: dict[str, dict[str, str]] = {}
    for name, check in ctx.health_checks.items():
        try:
            check()
            components[name] = {"status": "up"}
        except Exception as exc:
            components[name] = {"status": "down", "error": str(exc)}
    ok = all(c["status"] == "up" for c in components.values())
    return JSONResponse(
        {"status": "up" if ok else "degraded", "components": components},
        status_code=200 if ok else 503,
    )


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
