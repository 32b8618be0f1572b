"""The screen part: the monitoring screen's pages and the JSON it reads that no other part
serves (the overview, the live feed, devices and cameras, the batch page, the labels).

hazwatch.app builds it; nothing else imports this module. Its routes read the stores the
other parts own, through the ApiContext; it owns one of its own, the batches by HJ 1276 label
id (streams/labels), which its processor fills from the terminals' registrations.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.labels.processor import LabelProcessor
from hazwatch.streams.labels.store import LabelStore


class ScreenPart:
    name = "screen"

    def __init__(self, ctx: PartContext) -> None:
        self.labels = LabelStore(ctx.db)
        self._processor = LabelProcessor(self.labels)

    def processors(self) -> list[StreamProcessor]:
        return [self._processor]

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"labels": self.labels}

    def workers(self) -> list[Worker]:
        return []


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import batches, devices, feed, overview, screen

    return [screen.router, overview.router, feed.router, devices.router, batches.router]
