"""One MQTT message (topic + raw bytes) to a typed record and its InfluxDB points.

Never raise anything but PayloadError for bad input, and never touch I/O: the caller owns it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hazwatch.base.errors import PayloadError
from hazwatch.base.points import Point, unstorable
from hazwatch.devices.clock_offset import ClockReading
from hazwatch.devices.families import FAMILIES
from hazwatch.devices.family import DecodeContext
from hazwatch.devices.timeparse import (
    DEFAULT_MAX_FUTURE_S,
    EARLIEST_NS,
    NS_PER_S,
    format_ts,
    future_error,
)
from hazwatch.devices.topics import Topic, parse_topic

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024


@dataclass(slots=True)
class Decoded:
    topic: Topic
    record: Any
    points: list[Point]
    # the device's clock when it sent the message (UTC ns; None: it says none), and what the
    # ingest pipeline measured of that clock (devices/clock_offset.py; None: not measured)
    sent_ns: int | None = None
    clock: ClockReading | None = None

    @property
    def family(self) -> str:
        return self.topic.family

    @property
    def kind(self) -> str:
        return self.topic.kind


def decode(
    topic: str,
    payload: bytes,
    ctx: DecodeContext,
    *,
    now_ns: int,
    max_future_s: float = DEFAULT_MAX_FUTURE_S,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    lead_of: Callable[[Topic], int] | None = None,
) -> Decoded:
    """Decode and validate one message; points with no device time get `now_ns`.

    A device time more than `max_future_s` ahead of `now_ns` is refused (FutureTimeError),
    unless `lead_of(topic)` says the device's clock is measured to run that much ahead
    (devices/clock_offset.py: a fast clock's messages are accepted once its offset is known).
    """
    if len(payload) > max_payload_bytes:
        raise PayloadError(
            f"payload is {len(payload)} bytes, over the {max_payload_bytes}-byte limit",
            reason="too_large",
        )
    parsed = parse_topic(topic)
    family = FAMILIES.get(parsed.family)
    if family is None:
        raise PayloadError(
            f"unknown device family {parsed.family!r} (known: {', '.join(sorted(FAMILIES))})",
            reason="unknown_family",
        )
    spec = family.kinds.get(parsed.kind)
    if spec is None:
        raise PayloadError(
            f"unknown kind {parsed.kind!r} for family {parsed.family!r} "
            f"(known: {', '.join(sorted(family.kinds))})",
            reason="unknown_kind",
        )
    record = spec.parse(payload, parsed, ctx)
    points = spec.to_points(record, parsed, ctx)
    lead_ns = lead_of(parsed) if lead_of is not None else 0
    limit_ns = now_ns + int(max_future_s * NS_PER_S) + lead_ns
    sent_ns = spec.sent_at(record) if spec.sent_at is not None else None
    newest = 0
    for point in points:
        ts_ns = point.ts_ns
        if ts_ns == 0:
            point.ts_ns = now_ns
        elif ts_ns > limit_ns:
            raise future_error(ts_ns, now_ns, max_future_s, lead_ns=lead_ns)
        elif ts_ns < EARLIEST_NS:
            raise PayloadError(
                f"ts {format_ts(ts_ns)} is before 2000-01-01", reason="bad_ts", field="ts"
            )
        elif ts_ns > newest:
            newest = ts_ns
        # The families check every value; this is the last line should one of them miss one.
        problem = unstorable(point.fields)
        if problem is not None:
            raise PayloadError(problem, reason="unstorable")
    if spec.sent_at is None and newest:
        sent_ns = newest
    return Decoded(parsed, record, points, sent_ns)
