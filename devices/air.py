"""Air micro-stations: JSON `air/{station}/reading` (HJ 212 packets live in hazwatch.devices.hj212).

Never store a physically impossible concentration; units are µg/m³ except CO and TVOC (mg/m³).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from hazwatch.base.points import Point
from hazwatch.devices import hj212, status
from hazwatch.devices.air_bounds import BOUNDS, FLAGS
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import Payload, TimestampNs, clean_fields, validator
from hazwatch.devices.topics import Topic

FAMILY = "air"
POLLUTANTS = ("pm25", "pm10", "so2", "no2", "co", "o3", "tvoc")
WEATHER = ("temp", "rh", "wind_speed", "wind_dir", "pressure")


def _bounded(name: str) -> object:
    low, high = BOUNDS[name]
    return Annotated[float, Field(ge=low, le=high, allow_inf_nan=False)] | None


class AirReading(Payload):
    ts: TimestampNs
    pm25: _bounded("pm25") = None  # type: ignore[valid-type]
    pm10: _bounded("pm10") = None  # type: ignore[valid-type]
    so2: _bounded("so2") = None  # type: ignore[valid-type]
    no2: _bounded("no2") = None  # type: ignore[valid-type]
    co: _bounded("co") = None  # type: ignore[valid-type]
    o3: _bounded("o3") = None  # type: ignore[valid-type]
    tvoc: _bounded("tvoc") = None  # type: ignore[valid-type]
    temp: _bounded("temp") = None  # type: ignore[valid-type]
    rh: _bounded("rh") = None  # type: ignore[valid-type]
    wind_speed: _bounded("wind_speed") = None  # type: ignore[valid-type]
    wind_dir: _bounded("wind_dir") = None  # type: ignore[valid-type]
    pressure: _bounded("pressure") = None  # type: ignore[valid-type]
    flag: Annotated[str, Field(min_length=1, max_length=1)] | None = None

    @model_validator(mode="after")
    def _has_pollutant(self) -> AirReading:
        if all(getattr(self, name) is None for name in POLLUTANTS):
            raise ValueError(f"a reading needs at least one pollutant of {', '.join(POLLUTANTS)}")
        if self.flag is not None and self.flag not in FLAGS:
            raise ValueError(f"flag must be an HJ 212 data flag ({''.join(sorted(FLAGS))})")
        return self

    def values(self) -> dict[str, float]:
        return {
            name: value
            for name in (*POLLUTANTS, *WEATHER)
            if (value := getattr(self, name)) is not None
        }


_validate = validator(AirReading)


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> AirReading:
    return _validate(raw)


def to_points(reading: AirReading, topic: Topic, ctx: DecodeContext) -> list[Point]:
    fields: dict[str, float | str] = dict(reading.values())
    if reading.flag is not None:
        fields["flag"] = reading.flag
    tags = {"site": topic.site, "station": topic.device, "interval": "rtd"}
    return [Point("air", tags, clean_fields(fields), reading.ts)]


KINDS: dict[str, KindSpec] = {
    "reading": KindSpec("reading", parse, to_points, "JSON real-time reading"),
    "hj212": KindSpec(
        "hj212",
        hj212.parse,
        hj212.to_points,
        "HJ 212-2017 packet (hazwatch.devices.hj212)",
        hj212.sent_at,
    ),
    "status": status.SPEC,
}
FAMILY_SPEC = Family(FAMILY, KINDS, "air micro-station")
