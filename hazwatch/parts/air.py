"""The air part: its store (built once, owned here), the processor of hourly means, AQI and
the air rules over it, and its API routes.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore


class AirPart:
    name = "air"

    def __init__(self, ctx: PartContext) -> None:
        self.store = AirStore(ctx.db)
        self._processor = AirProcessor(self.store, ctx.alerts, settings=ctx.settings.air)

    def processors(self) -> list[StreamProcessor]:
        return [self._processor]

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"air": self.store}

    def workers(self) -> list[Worker]:
        return []


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import air

    return [air.router]
