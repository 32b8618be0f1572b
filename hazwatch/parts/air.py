"""The air part: its store (built once, owned here), the processor of hourly means, AQI and
the air rules over it, and its API routes.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.air.processor import AirProcessor, StationAir
from hazwatch.streams.air.store import AirStore


class AirPart:
    name = "air"

    def __init__(self, ctx: PartContext) -> None:
        self.store = AirStore(ctx.db)
        self.registry = RegistryContext(ctx.db)
        self._processor = AirProcessor(
            self.store, ctx.alerts, settings=ctx.settings.air, stations=self.station
        )

    def station(self, site: str, station: str) -> StationAir:
        """The station's zone, functional zone and interval, as the registry says now."""
        entry = self.registry.station(site, station)
        if entry is None:
            return StationAir()
        interval = entry.minute_interval_min
        return StationAir(
            entry.zone_h, entry.functional_zone, interval * 60 if interval is not None else None
        )

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
