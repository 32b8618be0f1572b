"""RFID readers at gates, storage rooms, vehicles and disposal lines: `rfid/{reader}/read`.

Never take a reader's location from its payload: only the registry says where a reader stands.
A reader speaks hazwatch's own read payload (`RfidRead`) or, as its registry entry's `payload`
says, what an Impinj R700 or a Zebra FX publishes itself (devices/rfid_vendors.py): one such
message may hold several tag reads, so consumers take a record's reads with `reads_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from hazwatch.base.errors import PayloadError
from hazwatch.base.points import Point
from hazwatch.devices import rfid_vendors, status
from hazwatch.devices.family import DecodeContext, Family, KindSpec
from hazwatch.devices.schema import (
    Epc,
    Payload,
    TimestampNs,
    clean_fields,
    point_time,
    spread,
    validator,
)
from hazwatch.devices.topics import Topic

FAMILY = "rfid"
UNKNOWN_LOCATION = "unknown"


class RfidRead(Payload):
    ts: TimestampNs
    epc: Epc
    rssi: Annotated[float, Field(ge=-150, le=20)] | None = None
    antenna: Annotated[int, Field(ge=0, le=64)] | None = None


@dataclass(frozen=True, slots=True)
class ReaderReport:
    """One vendor message: the tag reads it held, in its order (none for a heartbeat, a GPI
    or an inventory-status event), and the types of the events it held that are not reads."""

    payload: str  # the registry's name of what the reader speaks: impinj-r700, zebra-fx
    reads: tuple[RfidRead, ...]
    skipped: tuple[str, ...] = ()


RfidRecord = RfidRead | ReaderReport


def reads_of(record: RfidRecord) -> Sequence[RfidRead]:
    """The tag reads of a decoded `rfid/read` record, whichever payload the reader speaks."""
    if isinstance(record, RfidRead):
        return (record,)
    return record.reads


_validate = validator(RfidRead)
# Bytes only vendor events carry: a hint when a reader's registry payload is the wrong one.
_VENDOR_MARKS = {
    rfid_vendors.IMPINJ_R700: (b"tagInventoryEvent", b"eventType"),
    rfid_vendors.ZEBRA_FX: (b"idHex",),
}


def _hint(raw: bytes, payload: str, topic: Topic) -> str:
    for name, marks in _VENDOR_MARKS.items():
        if name != payload and any(mark in raw for mark in marks):
            return (
                f" (this looks like an {name} event: is reader {topic.device!r} registered "
                f'with payload = "{name}"?)'
            )
    if payload != rfid_vendors.HAZWATCH and b'"epc"' in raw and b'"ts"' in raw:
        return (
            f" (this looks like hazwatch's own read payload, but reader {topic.device!r} is "
            f'registered with payload = "{payload}")'
        )
    return ""


def _read(tag: rfid_vendors.TagRead) -> RfidRead:
    # every value was checked against RfidRead's rules by the vendor decoder, in its own units
    return RfidRead.model_construct(ts=tag.ts_ns, epc=tag.epc, rssi=tag.rssi, antenna=tag.antenna)


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> RfidRead | ReaderReport:
    payload = ctx.reader_payload(topic.site, topic.device)
    decoder = rfid_vendors.DECODERS.get(payload)
    try:
        if decoder is None:
            return _validate(raw)
        report = decoder(raw)
    except PayloadError as exc:
        hint = _hint(raw, payload, topic)
        if not hint:
            raise
        raise PayloadError(str(exc) + hint, reason=exc.reason, field=exc.field) from None
    return ReaderReport(payload, tuple(_read(tag) for tag in report.reads), report.skipped)


def to_points(record: RfidRecord, topic: Topic, ctx: DecodeContext) -> list[Point]:
    """One `waste_read` point per tag read; none for a vendor message that held no read.

    The EPC is a field, not a tag (a series per reader, not per container): each read's time
    is moved within its millisecond by its EPC (`point_time`), so a bulk inventory's reads of
    one instant stay one point each."""
    reads = reads_of(record)
    if not reads:
        return []
    location = ctx.reader_location(topic.site, topic.device)
    tags = {
        "site": topic.site,
        "reader": topic.device,
        "location_kind": location or UNKNOWN_LOCATION,
    }
    times = spread([point_time(read.ts, read.epc) for read in reads])
    points = []
    for read, ts_ns in zip(reads, times, strict=True):
        fields = clean_fields(
            {
                "epc": read.epc,
                "rssi": read.rssi,
                "antenna": read.antenna,
                "batch": ctx.batch_of(read.epc),
            }
        )
        if location is None:
            # Kept, and flagged: a reader the registry does not know never makes custody events.
            fields["unknown_reader"] = True
        points.append(Point("waste_read", dict(tags), fields, ts_ns))
    return points


def sent_at(record: RfidRecord) -> int | None:
    """The reader's clock when it sent the message: its newest read's own time, not the point's
    (`point_time` moves that within the millisecond, up to 1 ms later than the device said,
    which would measure the clock up to 1 ms less slow than it is); none for no read."""
    return max((read.ts for read in reads_of(record)), default=None)


FAMILY_SPEC = Family(
    FAMILY,
    {
        "read": KindSpec(
            "read", parse, to_points, "one tag read, or a reader's own tag events", sent_at
        ),
        "status": status.SPEC,
    },
    "RFID reader",
)
