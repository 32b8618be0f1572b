"""Tag events UHF readers publish on MQTT themselves: Impinj R700 and Zebra FX (docs/payloads.md).

Never take a reader's identity from its payload (`hostname`, a topic of its own): only the topic
and the registry say which reader spoke. Events that are not tag reads are skipped, not refused.

Impinj: the Impinj IoT device interface (Impinj Reader Configuration REST API, OpenAPI 1.5–1.7,
definitions ReaderEvent, TagInventoryEvent, Epc, EpcHex, AntennaPort, MqttConfiguration).
Zebra: the Zebra IoT Connector of the FX7500/FX9600/ATR7000 (zebradevs.github.io/rfid-ziotc-docs:
tag data interface, batching, tag metadata of the operating modes).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from hazwatch.base.errors import PayloadError, shown
from hazwatch.devices.schema import Payload, epc_hex, payload_error, validator
from hazwatch.devices.timeparse import parse_ts

HAZWATCH = "hazwatch"
IMPINJ_R700 = "impinj-r700"
ZEBRA_FX = "zebra-fx"
# The most antenna ports hazwatch's `antenna` field takes (devices/rfid.py RfidRead).
MAX_ANTENNA = 64
# RfidRead's bounds on rssi, in dBm; each vendor's field is checked against them in its unit.
RSSI_MIN_DBM, RSSI_MAX_DBM = -150, 20


class TagRead(NamedTuple):
    """One tag read as hazwatch keeps it: UTC ns, the EPC upper-case hex, dBm, antenna port."""

    ts_ns: int
    epc: str
    rssi: float | None
    antenna: int | None


@dataclass(frozen=True, slots=True)
class VendorReport:
    """What one vendor message held: its tag reads (maybe none) and the other events' types."""

    reads: tuple[TagRead, ...]
    skipped: tuple[str, ...] = ()


class _AnyJson(RootModel[Any]):
    """Any JSON value: parsed with the schema's checks (size of nesting, UTF-8, JSON itself)."""


_json = validator(_AnyJson)


def _events(raw: bytes, what: str) -> tuple[list[object], bool]:
    """The message's events: one JSON object, or an array of them (`many` True)."""
    root = _json(raw).root
    if isinstance(root, list):
        return root, True
    if isinstance(root, dict):
        return [root], False
    raise PayloadError(
        f"payload must be a JSON object ({what}) or an array of them, got {type(root).__name__}",
        reason="bad_json",
    )


def _at(index: int, many: bool, exc: PayloadError) -> PayloadError:
    """`exc` naming the event of an array it is about; unchanged for a single event."""
    if not many:
        return exc
    field = f"[{index}].{exc.field}" if exc.field else f"[{index}]"
    return PayloadError(f"event [{index}]: {exc}", reason=exc.reason, field=field)


E = TypeVar("E")
M = TypeVar("M", bound=BaseModel)


def _collect(events: Sequence[E], many: bool, one: Callable[[E], TagRead | str]) -> VendorReport:
    """Each event's read, or the type of the event it is instead; errors name the event."""
    reads: list[TagRead] = []
    skipped: list[str] = []
    for index, event in enumerate(events):
        try:
            result = one(event)
        except PayloadError as exc:
            raise _at(index, many, exc) from None
        if isinstance(result, str):
            skipped.append(result)
        else:
            reads.append(result)
    return VendorReport(tuple(reads), tuple(skipped))


def _is_array(raw: bytes) -> bool:
    return raw.lstrip(b" \t\r\n")[:1] == b"["


def _fast(
    raw: bytes, one: Callable[[bytes], M], many: Callable[[bytes], RootModel[list[M]]]
) -> list[M] | None:
    """The events validated in one pass over the JSON, or None when that fails: then the slow
    path (JSON first, each event after) says which event and why, or what else it is."""
    try:
        return many(raw).root if _is_array(raw) else [one(raw)]
    except PayloadError:
        return None


def _time(value: object, field: str) -> int:
    """A vendor's date-time: RFC 3339 / ISO 8601 text with a zone, as both vendors send it."""
    if value is None:
        raise PayloadError(
            f"required field {field!r} is missing", reason="missing_field", field=field
        )
    if not isinstance(value, str):
        raise PayloadError(
            f"{field} must be a date-time string with a zone, got {type(value).__name__}",
            reason="bad_ts",
            field=field,
        )
    return parse_ts(value, field=field)


# ---------------------------------------------------------------------------------------------
# Impinj R700: one ReaderEvent per MQTT message (its webhook posts arrays of them: also taken)

_BASE64 = re.compile(r"[A-Za-z0-9_+/-]*={0,2}")


def _from_base64url(value: object, field: str) -> str:
    """Impinj's `epc` (Epc: "The base64url-encoded EPC of the tag") as upper-case hex."""
    if not isinstance(value, str):
        raise PayloadError(
            f"{field} must be a base64url string, got {type(value).__name__}",
            reason="bad_type",
            field=field,
        )
    text = value.strip()
    if len(text) > 128 or not _BASE64.fullmatch(text):
        raise PayloadError(
            f"{field} must be the base64url EPC of the tag, got {shown(value)}",
            reason="bad_value",
            field=field,
        )
    body = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise PayloadError(
            f"{field} is not valid base64url, got {shown(value)}", reason="bad_value", field=field
        ) from None
    return epc_hex(data.hex(), field)


class ImpinjTagInventoryEvent(Payload):
    """TagInventoryEvent: "An event sent to deliver information about a tag read"."""

    epcHex: Any = None  # EpcHex, pattern ^[0-9A-F]*$ (reported when eventConfig enables it)
    epc: Any = None  # Epc, base64url (reported by default)
    antennaPort: Annotated[int, Field(ge=1, le=MAX_ANTENNA)] | None = None  # AntennaPort, ≥ 1
    # "The peak received power of the EPC backscatter in cdBm": −15000 … 2000 is −150 … 20 dBm
    peakRssiCdbm: Annotated[int, Field(ge=RSSI_MIN_DBM * 100, le=RSSI_MAX_DBM * 100)] | None = None
    lastSeenTime: Any = None  # "The UTC time at which the tag was last seen" (off by default)


class ImpinjReaderEvent(Payload):
    """ReaderEvent: the common fields and "exactly one specific event detail object"."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    timestamp: Any = None  # "The UTC time at which the event was processed and queued"
    eventType: Annotated[str, Field(max_length=64)] | None = None  # e.g. "tagInventory"
    tagInventoryEvent: ImpinjTagInventoryEvent | None = None


def _impinj_epc(tag: ImpinjTagInventoryEvent) -> str:
    hex_epc = epc_hex(tag.epcHex, "tagInventoryEvent.epcHex") if tag.epcHex is not None else None
    b64_epc = _from_base64url(tag.epc, "tagInventoryEvent.epc") if tag.epc is not None else None
    if hex_epc is None and b64_epc is None:
        raise PayloadError(
            "tagInventoryEvent has neither epcHex nor epc: enable one of them in the preset's "
            "eventConfig.tagInventory",
            reason="missing_field",
            field="tagInventoryEvent.epcHex",
        )
    if hex_epc is not None and b64_epc is not None and hex_epc != b64_epc:
        raise PayloadError(
            f"tagInventoryEvent.epcHex {hex_epc} and epc (base64url of {b64_epc}) disagree",
            reason="bad_value",
            field="tagInventoryEvent.epc",
        )
    return hex_epc or b64_epc or ""


def _impinj_raw(raw: object) -> TagRead | str:
    """One ReaderEvent as parsed JSON (the slow path): validated, then as below."""
    if not isinstance(raw, dict):
        raise PayloadError(
            f"an Impinj ReaderEvent must be a JSON object, got {type(raw).__name__}",
            reason="bad_json",
        )
    try:
        event = ImpinjReaderEvent.model_validate(raw)
    except ValidationError as exc:
        raise payload_error(exc) from None
    return _impinj_event(event)


def _impinj_event(event: ImpinjReaderEvent) -> TagRead | str:
    """One ReaderEvent: its tag read, or the type of the other event it is."""
    tag = event.tagInventoryEvent
    if tag is None:
        others = [key for key in event.model_extra or {} if key.endswith("Event")]
        kind = event.eventType or (others[0].removesuffix("Event") if others else None)
        if not kind:
            raise PayloadError(
                "not an Impinj ReaderEvent: no tagInventoryEvent, no eventType and no other "
                "…Event object",
                reason="missing_field",
                field="tagInventoryEvent",
            )
        return kind
    if event.eventType not in (None, "tagInventory"):
        raise PayloadError(
            f"eventType is {event.eventType!r} but the event holds a tagInventoryEvent",
            reason="bad_value",
            field="eventType",
        )
    if tag.lastSeenTime is not None:
        ts = _time(tag.lastSeenTime, "tagInventoryEvent.lastSeenTime")
    else:
        ts = _time(event.timestamp, "timestamp")
    rssi = None if tag.peakRssiCdbm is None else tag.peakRssiCdbm / 100
    return TagRead(ts, _impinj_epc(tag), rssi, tag.antennaPort)


class _ImpinjEvents(RootModel[list[ImpinjReaderEvent]]):
    """A JSON array of ReaderEvents (the webhook output's body)."""


_impinj_one, _impinj_many = validator(ImpinjReaderEvent), validator(_ImpinjEvents)


def parse_impinj(raw: bytes) -> VendorReport:
    """An Impinj R700 MQTT message: one ReaderEvent (or a webhook's array of them)."""
    events = _fast(raw, _impinj_one, _impinj_many)
    if events is not None:
        return _collect(events, _is_array(raw), _impinj_event)
    parsed, many = _events(raw, "an Impinj ReaderEvent")
    return _collect(parsed, many, _impinj_raw)


# ---------------------------------------------------------------------------------------------
# Zebra FX: one tag data event per MQTT message, or an array of them when batching is on

# The operating modes a tag data event's `type` names (Zebra IoT Connector, Controlling
# Operating Mode: Simple, Inventory, Portal, Directionality, Conveyer, Custom).
ZEBRA_MODES = frozenset({"SIMPLE", "INVENTORY", "PORTAL", "DIRECTIONALITY", "CONVEYOR", "CUSTOM"})


class ZebraTagData(Payload):
    """A tag data event's `data`: the tag's id and the metadata the operating mode reports."""

    idHex: Any = None  # the tag id, hex (the reader sends it lower-case)
    format: Annotated[str, Field(max_length=32)] | None = None  # what idHex is: "epc"
    antenna: Annotated[int, Field(ge=0, le=MAX_ANTENNA)] | None = None  # ANTENNA metadata
    peakRssi: Annotated[float, Field(ge=RSSI_MIN_DBM, le=RSSI_MAX_DBM)] | None = None  # dBm


class ZebraTagDataEvent(Payload):
    """A Zebra IoT Connector tag data event: `data`, the reader's `timestamp`, the mode `type`."""

    data: ZebraTagData
    timestamp: Any = None  # ISO 8601 with the reader's offset, e.g. 2023-02-24T10:14:42.851+0000
    type: Annotated[str, Field(max_length=32)] | None = None  # the operating mode, e.g. SIMPLE


def _zebra_kind(has_id: bool, kind: object) -> str | None:
    """None for a tag data event; else the type of the management event it is."""
    if has_id or (isinstance(kind, str) and kind.strip().upper() in ZEBRA_MODES):
        return None
    if isinstance(kind, str) and kind.strip() and len(kind) <= 64:
        return kind.strip()  # a management event (heartbeat, gpi, …) on the data topic
    raise PayloadError(
        "not a Zebra tag data event (no data.idHex) nor a management event (no type)",
        reason="missing_field",
        field="data.idHex",
    )


def _zebra_raw(raw: object) -> TagRead | str:
    """One event as parsed JSON (the slow path): a management event need not validate."""
    if not isinstance(raw, dict):
        raise PayloadError(
            f"a Zebra tag data event must be a JSON object, got {type(raw).__name__}",
            reason="bad_json",
        )
    data = raw.get("data")
    has_id = isinstance(data, dict) and data.get("idHex") is not None
    other = _zebra_kind(has_id, raw.get("type"))
    if other is not None:
        return other
    try:
        event = ZebraTagDataEvent.model_validate(raw)
    except ValidationError as exc:
        raise payload_error(exc) from None
    return _zebra_event(event)


def _zebra_event(event: ZebraTagDataEvent) -> TagRead | str:
    """One event: its tag read, or the type of the management event it is."""
    tag = event.data
    other = _zebra_kind(tag.idHex is not None, event.type)
    if other is not None:
        return other
    if tag.format is not None and tag.format.lower() != "epc":
        raise PayloadError(
            f"data.format is {tag.format!r}: idHex is then not the tag's EPC, which is what "
            "hazwatch knows a container by; set the reader to report the EPC as the tag id",
            reason="bad_value",
            field="data.format",
        )
    if tag.idHex is None:
        raise PayloadError(
            "required field 'data.idHex' is missing", reason="missing_field", field="data.idHex"
        )
    epc = epc_hex(tag.idHex, "data.idHex")
    ts = _time(event.timestamp, "timestamp")
    return TagRead(ts, epc, tag.peakRssi, tag.antenna)


class _ZebraEvents(RootModel[list[ZebraTagDataEvent]]):
    """A batch: a JSON array of tag data events."""


_zebra_one, _zebra_many = validator(ZebraTagDataEvent), validator(_ZebraEvents)


def parse_zebra(raw: bytes) -> VendorReport:
    """A Zebra FX MQTT message on the tag data topic: one event, or a batch (an array)."""
    events = _fast(raw, _zebra_one, _zebra_many)
    if events is not None:
        return _collect(events, _is_array(raw), _zebra_event)
    parsed, many = _events(raw, "a Zebra tag data event")
    return _collect(parsed, many, _zebra_raw)


# ---------------------------------------------------------------------------------------------

VendorDecoder = Callable[[bytes], VendorReport]
# Which payload a reader speaks is the registry's `payload` of its [[reader]] entry.
DECODERS: dict[str, VendorDecoder] = {IMPINJ_R700: parse_impinj, ZEBRA_FX: parse_zebra}
READER_PAYLOADS = (HAZWATCH, *DECODERS)
