"""The air part: its store (built once, owned here), the processor of hourly means, AQI and
the air rules over it, and its API routes.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.devices.registry import Instrument, RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.air.auditor import Auditor
from hazwatch.streams.air.marks import MarkStore
from hazwatch.streams.air.processor import AirProcessor, StationAir
from hazwatch.streams.air.store import AirStore


class AirPart:
    name = "air"

    def __init__(self, ctx: PartContext) -> None:
        self.store = AirStore(ctx.db)
        self.registry = RegistryContext(ctx.db)
        # the data audit's marks and maintenance records, and the station's analysers
        self.marks = MarkStore(ctx.db, ctx.settings.air.keep_readings_h)
        auditor = Auditor(self.store, self.marks, ctx.settings.air, self.instruments)
        self._processor = AirProcessor(
            self.store,
            ctx.alerts,
            settings=ctx.settings.air,
            stations=self.station,
            auditor=auditor,
        )

    def instruments(self, site: str, station: str) -> dict[str, Instrument]:
        """The station's analysers by pollutant ([[station.instruments]] of the registry)."""
        entry = self.registry.station(site, station)
        return {i.pollutant: i for i in entry.instruments} if entry is not None else {}

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
        return {"air": self.store, "air_audit": self.marks}

    def workers(self) -> list[Worker]:
        return []


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import air, air_audit

    return [air_audit.router, air.router]
