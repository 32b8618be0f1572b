"""The screen part: the monitoring screen's pages and the JSON it reads that no other part
serves (the overview, the live feed, devices and cameras, the batch page, the labels).

hazwatch.app builds it; nothing else imports this module. It owns no store and processes no
message: every route reads the stores the other parts own, through the ApiContext.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker


class ScreenPart:
    name = "screen"

    def __init__(self, ctx: PartContext) -> None:
        del ctx  # nothing to build: the screen reads what the other parts stored

    def processors(self) -> list[StreamProcessor]:
        return []

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {}

    def workers(self) -> list[Worker]:
        return []


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import batches, devices, feed, overview, screen

    return [screen.router, overview.router, feed.router, devices.router, batches.router]
