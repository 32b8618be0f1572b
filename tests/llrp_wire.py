"""LLRP 1.0.1 binary frames encoded and decoded by hand, for tests: never through llrpkit's codec.

Written from the standard (EPCglobal LLRP 1.0.1, chapter 16 "binary encoding"; the same
layout in LLRP 1.1): so that a test can check that what the connector's library and the
reader emulator put on the wire is LLRP, and not only what the library reads back.

- Message: 3 reserved bits, 3-bit version (1 = LLRP 1.0.1, 2 = 1.1), 10-bit message type;
  u32 message length in bytes, the 10-byte header included; u32 message ID; the body.
- TV parameter: one byte, the high bit set and a 7-bit type, then a value whose size the type
  fixes (TV_SIZES).
- TLV parameter: 6 reserved bits and a 10-bit type, u16 length (the 4-byte header included),
  then the fields and sub-parameters. Type 1023 is a vendor's: u32 IANA enterprise number,
  u32 subtype, then its data (Impinj: 25882; ImpinjPeakRSSI, subtype 57, an s16 of
  dBm × 100, Impinj's Octane LLRP reference).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

HEADER_LEN = 10
# message types (LLRP 1.0.1 message type table)
ADD_ROSPEC, DELETE_ROSPEC, START_ROSPEC, STOP_ROSPEC, ENABLE_ROSPEC = 20, 21, 22, 23, 24
CLOSE_CONNECTION, GET_READER_CAPABILITIES, GET_READER_CONFIG = 14, 1, 2
RO_ACCESS_REPORT, READER_EVENT_NOTIFICATION, KEEPALIVE = 61, 63, 62
# parameter types
ROSPEC, AISPEC, RO_REPORT_SPEC, TAG_REPORT_CONTENT_SELECTOR = 177, 183, 237, 238
TAG_REPORT_DATA, EPC_DATA, CUSTOM = 240, 241, 1023
TV_ANTENNA_ID, TV_FIRST_SEEN_UTC, TV_FIRST_SEEN_UPTIME = 1, 2, 3
TV_LAST_SEEN_UTC, TV_PEAK_RSSI, TV_CHANNEL_INDEX, TV_TAG_SEEN_COUNT, TV_EPC96 = 4, 6, 7, 8, 13
# size in bytes of each TV parameter's value (LLRP 1.0.1: types 1-18)
TV_SIZES = {1: 2, 2: 8, 3: 8, 4: 8, 5: 8, 6: 1, 7: 2, 8: 2, 9: 4, 10: 2, 11: 2, 12: 2, 13: 12,
            14: 2, 15: 2, 16: 4, 17: 2, 18: 4}  # fmt: skip
IMPINJ_PEN, IMPINJ_PEAK_RSSI = 25882, 57
# TagReportContentSelector: ten enable bits, most significant first, then 6 reserved bits
CONTENT_FLAGS = (
    "rospec_id", "spec_index", "inventory_parameter_spec_id", "antenna_id", "channel_index",
    "peak_rssi", "first_seen_timestamp", "last_seen_timestamp", "tag_seen_count",
    "access_spec_id",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    msg_type: int
    length: int
    msg_id: int


def header(frame: bytes) -> Header:
    first, length, msg_id = struct.unpack(">HII", frame[:HEADER_LEN])
    assert first >> 13 == 0, "the three reserved bits of an LLRP header are 0"
    return Header((first >> 10) & 0x7, first & 0x3FF, length, msg_id)


def message(msg_type: int, body: bytes, msg_id: int = 0, version: int = 1) -> bytes:
    return struct.pack(">HII", (version << 10) | msg_type, HEADER_LEN + len(body), msg_id) + body


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete messages at the start of `buffer`, and what is left of an incomplete one."""
    frames = []
    while len(buffer) >= HEADER_LEN:
        length = struct.unpack(">I", buffer[2:6])[0]
        assert length >= HEADER_LEN, f"an LLRP message of {length} bytes"
        if len(buffer) < length:
            break
        frames.append(buffer[:length])
        buffer = buffer[length:]
    return frames, buffer


def tv(ptype: int, value: bytes) -> bytes:
    assert len(value) == TV_SIZES[ptype]
    return bytes([0x80 | ptype]) + value


def tlv(ptype: int, body: bytes) -> bytes:
    return struct.pack(">HH", ptype, 4 + len(body)) + body


def tag_report_data(
    epc: bytes,
    *,
    antenna: int | None = None,
    peak_rssi: int | None = None,
    first_us: int | None = None,
    last_us: int | None = None,
    seen: int | None = None,
    impinj_rssi_centi: int | None = None,
    first_uptime_us: int | None = None,
) -> bytes:
    """One TagReportData (EPC-96 as TV 13, any other length as EPCData with its bit count)."""
    if len(epc) == 12:
        parts = [tv(TV_EPC96, epc)]
    else:
        parts = [tlv(EPC_DATA, struct.pack(">H", len(epc) * 8) + epc)]
    if antenna is not None:
        parts.append(tv(TV_ANTENNA_ID, struct.pack(">H", antenna)))
    if peak_rssi is not None:
        parts.append(tv(TV_PEAK_RSSI, struct.pack(">b", peak_rssi)))
    if first_us is not None:
        parts.append(tv(TV_FIRST_SEEN_UTC, struct.pack(">Q", first_us)))
    if first_uptime_us is not None:
        parts.append(tv(TV_FIRST_SEEN_UPTIME, struct.pack(">Q", first_uptime_us)))
    if last_us is not None:
        parts.append(tv(TV_LAST_SEEN_UTC, struct.pack(">Q", last_us)))
    if seen is not None:
        parts.append(tv(TV_TAG_SEEN_COUNT, struct.pack(">H", seen)))
    if impinj_rssi_centi is not None:
        custom = struct.pack(">IIh", IMPINJ_PEN, IMPINJ_PEAK_RSSI, impinj_rssi_centi)
        parts.append(tlv(CUSTOM, custom))
    return tlv(TAG_REPORT_DATA, b"".join(parts))


def ro_access_report(*reports: bytes, msg_id: int = 0) -> bytes:
    return message(RO_ACCESS_REPORT, b"".join(reports), msg_id)


def _params(body: bytes) -> list[tuple[int, bytes]]:
    """(type, value) of each parameter in `body`: TV values by their fixed size, TLV bodies."""
    found, pos = [], 0
    while pos < len(body):
        if body[pos] & 0x80:
            ptype = body[pos] & 0x7F
            size = TV_SIZES[ptype]
            found.append((ptype, body[pos + 1 : pos + 1 + size]))
            pos += 1 + size
        else:
            ptype, length = struct.unpack(">HH", body[pos : pos + 4])
            ptype &= 0x3FF
            assert length >= 4 and pos + length <= len(body), "a TLV overrunning its message"
            found.append((ptype, body[pos + 4 : pos + length]))
            pos += length
    return found


def tag_reports(frame: bytes) -> list[dict[str, Any]]:
    """What an RO_ACCESS_REPORT says of each tag: epc (bytes), antenna, peak_rssi (dBm, an
    ImpinjPeakRSSI when there is one), first_us, last_us, seen."""
    head = header(frame)
    assert head.msg_type == RO_ACCESS_REPORT and head.length == len(frame)
    tags = []
    for ptype, body in _params(frame[HEADER_LEN:]):
        if ptype != TAG_REPORT_DATA:
            continue
        tag: dict[str, Any] = {"antenna": None, "peak_rssi": None, "first_us": None}
        tag.update(last_us=None, seen=None)
        for sub, value in _params(body):
            if sub == TV_EPC96:
                tag["epc"] = value
            elif sub == EPC_DATA:
                bits = struct.unpack(">H", value[:2])[0]
                tag["epc"] = value[2 : 2 + (bits + 7) // 8]
            elif sub == TV_ANTENNA_ID:
                tag["antenna"] = struct.unpack(">H", value)[0]
            elif sub == TV_PEAK_RSSI and tag["peak_rssi"] is None:
                tag["peak_rssi"] = float(struct.unpack(">b", value)[0])
            elif sub == TV_FIRST_SEEN_UTC:
                tag["first_us"] = struct.unpack(">Q", value)[0]
            elif sub == TV_LAST_SEEN_UTC:
                tag["last_us"] = struct.unpack(">Q", value)[0]
            elif sub == TV_TAG_SEEN_COUNT:
                tag["seen"] = struct.unpack(">H", value)[0]
            elif sub == CUSTOM:
                vendor, subtype = struct.unpack(">II", value[:8])
                if (vendor, subtype) == (IMPINJ_PEN, IMPINJ_PEAK_RSSI):
                    tag["peak_rssi"] = struct.unpack(">h", value[8:10])[0] / 100
        tags.append(tag)
    return tags


def rospec(frame: bytes) -> dict[str, Any]:
    """What an ADD_ROSPEC asks: the ROSpec id, the AISpecs' antenna ids, the report trigger,
    its N, and which TagReportContentSelector bits are set."""
    head = header(frame)
    assert head.msg_type == ADD_ROSPEC and head.length == len(frame)
    ((ptype, spec),) = _params(frame[HEADER_LEN:])
    assert ptype == ROSPEC
    rospec_id = struct.unpack(">I", spec[:4])[0]  # then u8 priority, u8 current state
    out: dict[str, Any] = {"rospec_id": rospec_id, "antennas": []}
    for sub, body in _params(spec[6:]):
        if sub == AISPEC:
            count = struct.unpack(">H", body[:2])[0]
            out["antennas"] += list(struct.unpack(f">{count}H", body[2 : 2 + 2 * count]))
        elif sub == RO_REPORT_SPEC:
            out["trigger"], out["n"] = struct.unpack(">BH", body[:3])
            for inner, selector in _params(body[3:]):
                if inner == TAG_REPORT_CONTENT_SELECTOR:
                    bits = struct.unpack(">H", selector[:2])[0]
                    out["content"] = {
                        name for i, name in enumerate(CONTENT_FLAGS) if bits & (0x8000 >> i)
                    }
    return out
