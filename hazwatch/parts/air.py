"""The air part: the hourly means and AQI (its processor and store in one, built once), and
its API routes.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext
from hazwatch.streams.air.hourly import AirHourly


class AirPart:
    name = "air"

    def __init__(self, ctx: PartContext) -> None:
        self.hourly = AirHourly(ctx.db, ctx.alerts)

    def processors(self) -> list[StreamProcessor]:
        return [self.hourly]

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"air": self.hourly}


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import air

    return [air.router]
