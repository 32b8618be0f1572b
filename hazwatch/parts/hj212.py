"""The HJ 212 link part: its store (stations' editions, field-device information, their own
means), the processor that fills it and compares a station's hourly and daily means with
hazwatch's (read from the air part's store), and the warning of accept_unregistered.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.air.store import AirStore
from hazwatch.streams.hj212.processor import LinkProcessor
from hazwatch.streams.hj212.store import LinkStore

log = logging.getLogger("hazwatch.hj212")
ACCEPT_UNREGISTERED_WARNING = (
    "[hj212] accept_unregistered is on: while no registry lists a station, HJ 212 data of any "
    "station is stored without a PW (a lab or a demo only)"
)


class Hj212Part:
    name = "hj212"

    def __init__(self, ctx: PartContext) -> None:
        settings = ctx.settings.hj212
        if settings.accept_unregistered:
            log.warning(ACCEPT_UNREGISTERED_WARNING)
        self.store = LinkStore(ctx.db)
        self.air = AirStore(ctx.db)  # read only: hazwatch's own hours and days, as made
        self.registry = RegistryContext(ctx.db)
        self._processor = LinkProcessor(
            self.store,
            ctx.alerts,
            self.own_mean,
            settings=settings,
            resolution=self.resolution,
            zone_of=self.registry.station_zone_h,
        )

    def own_mean(
        self, site: str, station: str, span: str, period_ns: int, pollutant: str
    ) -> float | None:
        """hazwatch's valid mean of the station's hour or natural day starting at period_ns,
        None while it is not computed (the hour still open, the day not over) or not valid."""
        if span == "hour":
            for hour_ns, name, mean in self.air.means_between(
                site, station, period_ns - 1, period_ns
            ):
                if hour_ns == period_ns and name == pollutant:
                    return mean
            return None
        day = self.air.day(site, station, period_ns)
        if day is None or not day[0]:
            return None
        value = day[2].get(pollutant)
        return float(value) if isinstance(value, int | float) else None

    def resolution(self, site: str, station: str, pollutant: str) -> float | None:
        entry = self.registry.station(site, station)
        for instrument in entry.instruments if entry is not None else ():
            if instrument.pollutant == pollutant:
                return instrument.resolution
        return None

    def processors(self) -> list[StreamProcessor]:
        return [self._processor]

    def routers(self) -> list[APIRouter]:
        return []

    def api_stores(self) -> dict[str, object]:
        return {"hj212": self.store}

    def workers(self) -> list[Worker]:
        return []
