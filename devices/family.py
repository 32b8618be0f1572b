"""What a device family is to hazwatch: its topic kinds, how each is parsed and becomes points.

Never look anything up here but through the DecodeContext the caller passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hazwatch.base.points import Point
from hazwatch.devices.station_secrets import OPEN, StationAccess
from hazwatch.devices.topics import Topic


class DecodeContext(Protocol):
    """What decoding may ask of the outside world (the device registry, custody state)."""

    def reader_location(self, site: str, reader: str) -> str | None:
        """Location kind of an RFID reader, or None when the registry does not know it."""
        ...

    def reader_payload(self, site: str, reader: str) -> str:
        """What an RFID reader publishes on `read`: "hazwatch" (its own read payload, also for
        a reader the registry does not know), "impinj-r700" or "zebra-fx"."""
        ...

    def scale_location(self, site: str, scale: str) -> str | None: ...

    def batch_of(self, epc: str) -> str | None:
        """The batch a tag belongs to, when custody knows it."""
        ...

    def station_mn(self, site: str, station: str) -> str | None:
        """The HJ 212 MN the registry gives a station, or None."""
        ...

    def station_zone_h(self, site: str, station: str) -> float:
        """The station's UTC offset in hours for HJ 212 DataTime (China: 8)."""
        ...

    def station_access(self, site: str, station: str) -> StationAccess:
        """What an HJ 212 packet of this station must present (PW, SM4 key), and its units."""
        ...


class NoRegistry:
    """A context with an empty registry, for tests and offline tools (the service decodes with
    the stored registry, which refuses HJ 212 stations while it lists none unless [hj212]
    accept_unregistered): every reader unknown (speaking hazwatch's own read payload), every
    station in UTC+8 and open (no PW asked: there is no registry to hold one)."""

    def reader_location(self, site: str, reader: str) -> str | None:
        return None

    def reader_payload(self, site: str, reader: str) -> str:
        return "hazwatch"

    def scale_location(self, site: str, scale: str) -> str | None:
        return None

    def batch_of(self, epc: str) -> str | None:
        return None

    def station_mn(self, site: str, station: str) -> str | None:
        return None

    def station_zone_h(self, site: str, station: str) -> float:
        return 8.0

    def station_access(self, site: str, station: str) -> StationAccess:
        return OPEN


# parse(raw payload, topic, context) -> one record, or several (an HJ 212 packet may hold many)
Parse = Callable[[bytes, Topic, DecodeContext], Any]
ToPoints = Callable[[Any, Topic, DecodeContext], list[Point]]
# record -> the device's clock when it sent the message (UTC ns), None when it says none
SentAt = Callable[[Any], int | None]


@dataclass(frozen=True, slots=True)
class KindSpec:
    name: str
    parse: Parse
    to_points: ToPoints
    description: str = ""
    # the device's clock when it sent the message, sampled for its offset (clock_offset.py);
    # None: the newest time among the message's points, right only where the points keep the
    # device's times (a kind whose points `point_time` moves says its own)
    sent_at: SentAt | None = None


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kinds: dict[str, KindSpec] = field(default_factory=dict)
    description: str = ""
