"""The data audit at an hour's close: its automatic marks made and kept (mark store), and the
hour's readings and means screened by every mark in force, for the air processor.

Never decide a mark here (audit.py does) and never delete a reading: the hour is computed
from what no mark excludes, and what one excludes stays in the air store with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hazwatch.devices.decode import Decoded
from hazwatch.devices.registry import Instrument
from hazwatch.streams.air import audit
from hazwatch.streams.air.marks import MarkStore
from hazwatch.streams.air.rules import NS_PER_HOUR, HourReading
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.air.store import AirStore

# site, station → the station's analysers by pollutant (the registry's [[station.instruments]])
Instruments = Callable[[str, str], Mapping[str, Instrument]]
READING_REASONS = ("flatline", "spike", "out_of_range")  # judged on the readings
MEAN_REASONS = ("pm_inversion",)  # judged on the hour's means


def no_instruments(site: str, station: str) -> Mapping[str, Instrument]:
    return {}


@dataclass(slots=True)
class Screened:
    """One hour's readings as the audit leaves them."""

    site: str
    station: str
    hour_ns: int
    kept: list[HourReading]
    excluded: list[HourReading]
    # (rule, pollutant) → the automatic mark sensor_flatline / sensor_spike alert on
    findings: dict[tuple[str, str], audit.Mark] = field(default_factory=dict)


class Auditor:
    """Makes the automatic marks of an hour and screens it by the marks in force."""

    def __init__(
        self,
        store: AirStore,
        marks: MarkStore | None = None,
        settings: HourlySettings | None = None,
        instruments: Instruments = no_instruments,
    ) -> None:
        self.store = store
        self.settings = settings or HourlySettings()
        self.marks = marks or MarkStore(store.db, self.settings.keep_readings_h)
        self.instruments = instruments

    def keep_flagged(self, batch: Iterable[Decoded]) -> None:
        """Values a station flagged (M, C, D …) kept with their flag (idempotent)."""
        rows = audit.flagged_of(batch)
        if rows:
            with self.store.transaction():
                self.marks.keep_flagged(rows)

    def screen(
        self, site: str, station: str, hour_ns: int, readings: Sequence[HourReading]
    ) -> Screened:
        """The hour's automatic marks of its readings, made (in the caller's transaction), and
        its readings split by every mark in force over them."""
        settings = self.settings
        instruments = self.instruments(site, station)
        reach = (settings.flatline_hours - 1) * NS_PER_HOUR
        around = self.store.readings(site, station, hour_ns - reach, hour_ns + NS_PER_HOUR + reach)
        flat, run = audit.flatline_marks(hour_ns, around, instruments, settings)
        made = [
            *flat,
            *audit.spike_marks(readings, settings),
            *audit.range_marks(readings, instruments),
        ]
        judged_ns = hour_ns + NS_PER_HOUR  # an automatic mark is made when its hour closes
        self.marks.replace_auto(site, station, hour_ns, made, judged_ns, READING_REASONS)
        for pollutant, hours in run.items():  # earlier hours of a flatline are judged again
            for other in hours:
                if other < hour_ns and not self.marks.has_mark(
                    site, station, pollutant, "flatline", other
                ):
                    self.marks.recompute(site, station, other, other + NS_PER_HOUR)
        spans = self.marks.invalid_spans(site, station, hour_ns, hour_ns + NS_PER_HOUR)
        kept, excluded = audit.screen(readings, spans)
        revoked = self.marks.revoked(site, station, hour_ns)
        in_force = [m for m in made if (m.pollutant, m.reason, m.start_ns) not in revoked]
        return Screened(site, station, hour_ns, kept, excluded, audit.findings(in_force))

    def screen_means(
        self, screened: Screened, means: dict[str, float], minutes: dict[str, int]
    ) -> tuple[dict[str, float], dict[str, int]]:
        """The hour's means without what its mean-level marks exclude (PM2.5 over PM10), and a
        count of 0 valid minutes for a pollutant all of whose readings a mark excludes."""
        site, station, hour_ns = screened.site, screened.station, screened.hour_ns
        made = audit.inversion_marks(hour_ns, means, self.settings)
        self.marks.replace_auto(site, station, hour_ns, made, hour_ns + NS_PER_HOUR, MEAN_REASONS)
        revoked = self.marks.revoked(site, station, hour_ns)
        means = dict(means)
        for mark in made:
            if (mark.pollutant, mark.reason, mark.start_ns) not in revoked:
                means.pop(mark.pollutant, None)
        minutes = dict(minutes)
        for _, _, pollutant, _ in screened.excluded:
            minutes.setdefault(pollutant, 0)
        return means, minutes
