"""Builds the FastAPI application from an ApiContext and the routers of every resource.

Never reach into ingest internals from a route; read the stores in the context.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from hazwatch.api.deps import ApiContext
from hazwatch.api.routes import health


def create_app(ctx: ApiContext, routers: Sequence[APIRouter] = ()) -> FastAPI:
    app = FastAPI(title="hazwatch", version="0.1.0")
    app.state.ctx = ctx
    for router in (health.router, *routers):
        app.include_router(router)
    return app
