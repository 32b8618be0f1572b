"""Weighing scales at generation points and receiver gates: `scale/{scale}/weight`.

Never accept a negative or impossible weight; net must agree with gross − tare when all are sent.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from hazwatch.base.points import Point
from hazwatch.devices import status
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import Epc, Payload, TimestampNs, clean_fields, point_time, validator
from hazwatch.devices.topics import Topic

FAMILY = "scale"
MAX_KG = 60_000.0  # a loaded 40 ft container; anything heavier is a fault
NET_TOLERANCE_KG = 0.5

Kg = Annotated[float, Field(ge=0, le=MAX_KG, allow_inf_nan=False)]


class Weighing(Payload):
    ts: TimestampNs
    epc: Epc
    net_kg: Kg
    gross_kg: Kg | None = None
    tare_kg: Kg | None = None
    stable: bool | None = None

    @model_validator(mode="after")
    def _net_is_gross_minus_tare(self) -> Weighing:
        if self.gross_kg is not None and self.tare_kg is not None:
            expected = self.gross_kg - self.tare_kg
            if abs(expected - self.net_kg) > NET_TOLERANCE_KG:
                raise ValueError(
                    f"net_kg {self.net_kg} differs from gross_kg − tare_kg = {expected:.2f}"
                )
        return self


_validate = validator(Weighing)


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> Weighing:
    return _validate(raw)


def to_points(weighing: Weighing, topic: Topic, ctx: DecodeContext) -> list[Point]:
    fields = clean_fields(
        {
            "net_kg": weighing.net_kg,
            "gross_kg": weighing.gross_kg,
            "tare_kg": weighing.tare_kg,
            "stable": weighing.stable,
            "epc": weighing.epc,
            "batch": ctx.batch_of(weighing.epc),
        }
    )
    # the EPC is a field (a series per scale): the time, moved by it, keeps two weighings
    # of one instant two points
    tags = {"site": topic.site, "scale": topic.device}
    return [Point("waste_weight", tags, fields, point_time(weighing.ts, weighing.epc))]


def sent_at(weighing: Weighing) -> int:
    """The scale's clock when it sent the weighing: its own time, not the point's (moved by
    `point_time` within the millisecond)."""
    return weighing.ts


FAMILY_SPEC = Family(
    FAMILY,
    {
        "weight": KindSpec("weight", parse, to_points, "one weighing", sent_at),
        "status": status.SPEC,
    },
    "weighing scale",
)
