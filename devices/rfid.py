"""RFID readers at gates, storage rooms, vehicles and disposal lines: `rfid/{reader}/read`.

Never take a reader's location from its payload: only the registry says where a reader stands.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hazwatch.base.points import Point
from hazwatch.devices import status
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import Epc, Payload, TimestampNs, clean_fields, validator
from hazwatch.devices.topics import Topic

FAMILY = "rfid"
UNKNOWN_LOCATION = "unknown"


class RfidRead(Payload):
    ts: TimestampNs
    epc: Epc
    rssi: Annotated[float, Field(ge=-150, le=20)] | None = None
    antenna: Annotated[int, Field(ge=0, le=64)] | None = None


_validate = validator(RfidRead)


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> RfidRead:
    return _validate(raw)


def to_points(read: RfidRead, topic: Topic, ctx: DecodeContext) -> list[Point]:
    location = ctx.reader_location(topic.site, topic.device)
    fields = clean_fields(
        {"rssi": read.rssi, "antenna": read.antenna, "batch": ctx.batch_of(read.epc)}
    )
    if location is None:
        # Kept, and flagged: a reader the registry does not know never makes custody events.
        fields["unknown_reader"] = True
    tags = {
        "site": topic.site,
        "reader": topic.device,
        "location_kind": location or UNKNOWN_LOCATION,
        "epc": read.epc,
    }
    if not fields:
        fields["read"] = True  # a bare read still needs one field to be a point
    return [Point("waste_read", tags, fields, read.ts)]


FAMILY_SPEC = Family(
    FAMILY,
    {"read": KindSpec("read", parse, to_points, "one tag read"), "status": status.SPEC},
    "RFID reader",
)
