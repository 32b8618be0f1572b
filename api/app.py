"""Builds the FastAPI application from an ApiContext and the routers of every resource.

Never reach into ingest internals from a route; read the stores in the context.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.deps import ApiContext
from api.routes import health


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="hazwatch", version="0.1.0")
    app.state.ctx = ctx
    for module in (health,):
        app.include_router(module.router)
    return app
