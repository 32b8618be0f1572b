"""`{family}/{device}/status`: online/offline, battery, signal, firmware; the MQTT last will.

Never invent a device time: a status without `ts` is stamped with the time it was received.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hazwatch.base.points import Point
from hazwatch.devices.family import DecodeContext, KindSpec
from hazwatch.devices.schema import Payload, Printable, TimestampNs, clean_fields, validator
from hazwatch.devices.topics import Topic

KIND = "status"


class DeviceStatus(Payload):
    online: bool
    ts: TimestampNs | None = None
    battery: Annotated[float, Field(ge=0, le=100)] | None = None
    rssi: Annotated[float, Field(ge=-150, le=0)] | None = None
    fw: Annotated[str, Field(max_length=64), Printable] | None = None


_validate = validator(DeviceStatus)


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> DeviceStatus:
    return _validate(raw)


def to_points(status: DeviceStatus, topic: Topic, ctx: DecodeContext) -> list[Point]:
    ts_ns = status.ts if status.ts is not None else 0  # 0: the consumer stamps receive time
    fields = clean_fields(
        {"online": status.online, "battery": status.battery, "rssi": status.rssi, "fw": status.fw}
    )
    tags = {"site": topic.site, "family": topic.family, "device": topic.device}
    return [Point("device_status", tags, fields, ts_ns)]


def sent_at(status: DeviceStatus) -> int | None:
    """The device's clock when it sent an online status; none for an offline one (a last will
    is written when the device connects, and published by the broker when it is gone)."""
    return status.ts if status.online else None


SPEC = KindSpec(KIND, parse, to_points, "device status / last will (retained)", sent_at)
