"""The clocks part: the estimator of every device's clock offset (built once, owned here, fed by
the ingest pipeline), its store, the processor of /metrics and clock_skew, its API routes.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.devices.clock_offset import DeviceClocks
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.clocks.processor import ClockProcessor
from hazwatch.streams.clocks.store import ClockStore


class ClocksPart:
    """One estimator per service: the pipeline measures with it, the processor reads it."""

    name = "clocks"

    def __init__(self, ctx: PartContext) -> None:
        settings = ctx.settings.clocks
        self.estimator = DeviceClocks(settings.config())
        self.store = ClockStore(ctx.db)
        self._processor = ClockProcessor(
            self.estimator, ctx.alerts, RegistryContext(ctx.db), self.store, settings=settings
        )

    def processors(self) -> list[StreamProcessor]:
        return [self._processor]

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"clocks": self.store}

    def workers(self) -> list[Worker]:
        return []


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import clocks

    return [clocks.router]
