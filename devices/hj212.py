"""HJ 212-2017 packets of air micro-stations: framing, CRC, data segment, split reassembly, points.

Never accept a packet whose length, CRC or any field is off: raise PayloadError with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from hazwatch.base.errors import PayloadError, shown
from hazwatch.base.points import Point
from hazwatch.devices.air_bounds import BOUNDS, FLAGS
from hazwatch.devices.family import DecodeContext, KindSpec
from hazwatch.devices.timeparse import NS_PER_MS, NS_PER_S, check_ts_ns
from hazwatch.devices.topics import Topic

KIND = "hj212"
HEADER = b"##"
TRAILER = b"\r\n"
MAX_DATA_LEN = 9999  # four decimal digits; the standard asks for ≤ 1024 and splits longer ones

# Command codes (CN) hazwatch understands.
CN_RTD = "2011"  # real-time data
CN_MINUTE = "2051"  # minute data
CN_HOUR = "2061"  # hourly data
CN_DAY = "2031"  # daily data
CN_REQUEST_RESPONSE = "9011"  # QnRtn: request answered
CN_EXECUTE_RESPONSE = "9012"  # ExeRtn: execution result
CN_NOTIFY_RESPONSE = "9013"
CN_DATA_RESPONSE = "9014"  # data received
DATA_INTERVALS: dict[str, str] = {
    CN_RTD: "rtd",
    CN_MINUTE: "minute",
    CN_HOUR: "hour",
    CN_DAY: "day",
}
RESPONSE_CNS = frozenset({CN_REQUEST_RESPONSE, CN_EXECUTE_RESPONSE, CN_NOTIFY_RESPONSE})
KNOWN_CNS = frozenset({*DATA_INTERVALS, *RESPONSE_CNS, CN_DATA_RESPONSE})
ST_AIR_QUALITY = "22"
ST_SYSTEM = "91"

# Flag = V5..V0 D A: A asks for a response, D says PNUM/PNO are present; version 1 is HJ 212-2017.
FLAG_ACK = 0b01
FLAG_SPLIT = 0b10
VERSION_2017 = 1


@dataclass(frozen=True, slots=True)
class Factor:
    """A pollutant code of the 2017 edition: its hazwatch name, factor to hazwatch units."""

    code: str
    name: str
    scale: float = 1.0  # value_in_hazwatch_units = value_sent * scale


# Extensible: add a code here and its name (and bounds in air_bounds.py) and it flows through.
FACTORS: dict[str, Factor] = {
    f.code: f
    for f in (
        Factor("a34004", "pm25"),
        Factor("a34002", "pm10"),
        Factor("a21026", "so2"),
        Factor("a21004", "no2"),
        Factor("a21005", "co"),
        Factor("a05024", "o3"),
        Factor("a01001", "temp"),
        Factor("a01002", "rh"),
        Factor("a01006", "pressure", 10.0),  # stations send kPa; hazwatch stores hPa
        Factor("a01007", "wind_speed"),
        Factor("a01008", "wind_dir"),
    )
}
CODE_OF_NAME: dict[str, str] = {f.name: f.code for f in FACTORS.values()}
VALUE_SUFFIXES = frozenset({"Rtd", "Avg", "Min", "Max"})
# Suffixes the standard defines that air points do not use; parsed, kept, not written.
OTHER_SUFFIXES = frozenset(
    {"Flag", "EFlag", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "SampleTime"}
)

_HEADER_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
# Always fullmatch: match() with $ lets a trailing "\n" by (a QN echoed back in a response).
_QN = re.compile(r"[0-9]{17}")
_DATATIME = re.compile(r"[0-9]{14}")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_CODE = re.compile(r"[A-Za-z0-9]{1,16}")
_MN = re.compile(r"[A-Za-z0-9]{1,24}")
_CP_KEY = re.compile(r"[A-Za-z0-9-]{1,64}")
_SMALL_INT = re.compile(r"[0-9]{1,4}")  # Flag (0–255), PNUM and PNO (1–9999)


def _crc_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        reg = index
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
        table.append(reg)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The CRC of HJ 212-2017 appendix A: reflected 0xA001, register 0xFFFF.

    Differs from CRC-16/MODBUS: each byte goes in as `reg = (reg >> 8) ^ byte` before the
    eight shifts (MODBUS XORs it into the low byte). Table-driven form of the appendix's loop.
    """
    reg = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        reg = (reg >> 8) ^ byte
        reg = (reg >> 8) ^ table[reg & 0xFF]
    return reg


def crc16_bitwise(data: bytes) -> int:
    """The appendix's loop as printed, kept to check the table-driven crc16 against."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


@dataclass(frozen=True, slots=True)
class Packet:
    """One HJ 212 packet: the header fields, the CP content as ordered (key, value) pairs."""

    qn: str
    st: str
    cn: str
    pw: str
    mn: str
    flag: int
    cp: tuple[tuple[str, str], ...] = ()
    pnum: int | None = None
    pno: int | None = None

    @property
    def wants_ack(self) -> bool:
        return bool(self.flag & FLAG_ACK)

    @property
    def is_split(self) -> bool:
        return bool(self.flag & FLAG_SPLIT)

    def cp_dict(self) -> dict[str, str]:
        return dict(self.cp)


def _group_text(cp: Sequence[tuple[str, str]]) -> str:
    """CP pairs back to text: pairs of one factor joined by ',', groups by ';'."""
    groups: list[list[str]] = []
    last_code: str | None = None
    for key, value in cp:
        code = key.split("-", 1)[0] if "-" in key else None
        if groups and code is not None and code == last_code:
            groups[-1].append(f"{key}={value}")
        else:
            groups.append([f"{key}={value}"])
        last_code = code
    return ";".join(",".join(g) for g in groups)


def data_segment(packet: Packet) -> str:
    parts = [
        f"QN={packet.qn}",
        f"ST={packet.st}",
        f"CN={packet.cn}",
        f"PW={packet.pw}",
        f"MN={packet.mn}",
        f"Flag={packet.flag}",
    ]
    if packet.pnum is not None and packet.pno is not None:
        parts += [f"PNUM={packet.pnum}", f"PNO={packet.pno}"]
    parts.append(f"CP=&&{_group_text(packet.cp)}&&")
    return ";".join(parts)


def frame(segment: bytes) -> bytes:
    """`##` + length + data segment + CRC + CRLF around an already built data segment."""
    if len(segment) > MAX_DATA_LEN:
        raise PayloadError(
            f"data segment is {len(segment)} bytes, over {MAX_DATA_LEN}", reason="bad_length"
        )
    return b"%s%04d%s%04X%s" % (HEADER, len(segment), segment, crc16(segment), TRAILER)


def build(packet: Packet) -> bytes:
    return frame(data_segment(packet).encode("ascii"))


def split_frames(raw: bytes) -> list[bytes]:
    """Cut a byte string holding one or more whole packets into packets (framing checked)."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(raw):
        if raw.startswith(TRAILER, pos) and not frames:
            pos += len(TRAILER)
            continue
        length = frame_length(raw, pos)
        if length is None or pos + length > len(raw):
            raise PayloadError(
                f"packet at byte {pos} is truncated: {len(raw) - pos} bytes left",
                reason="bad_length",
            )
        frames.append(raw[pos : pos + length])
        pos += length
    if not frames:
        raise PayloadError("payload holds no HJ 212 packet", reason="bad_length")
    return frames


def frame_length(buffer: bytes, pos: int = 0) -> int | None:
    """Whole frame length starting at `pos`, None while the header is incomplete."""
    if len(buffer) - pos < 6:
        if not HEADER.startswith(buffer[pos : pos + 2]):
            raise PayloadError(
                f"packet must start with '##', got {buffer[pos : pos + 2]!r}", reason="bad_header"
            )
        return None
    if buffer[pos : pos + 2] != HEADER:
        raise PayloadError(
            f"packet must start with '##', got {buffer[pos : pos + 2]!r}", reason="bad_header"
        )
    digits = buffer[pos + 2 : pos + 6]
    if not digits.isdigit():
        raise PayloadError(f"length must be 4 decimal digits, got {digits!r}", reason="bad_length")
    return 6 + int(digits) + 4 + len(TRAILER)


def parse_frame(raw: bytes) -> Packet:
    """One whole packet (with CRLF) to a Packet; every defect raises PayloadError."""
    if len(raw) < 12 or raw[:2] != HEADER:
        raise PayloadError(f"packet must start with '##', got {raw[:8]!r}", reason="bad_header")
    digits = raw[2:6]
    if not digits.isdigit():
        raise PayloadError(f"length must be 4 decimal digits, got {digits!r}", reason="bad_length")
    length = int(digits)
    if len(raw) != 6 + length + 4 + len(TRAILER):
        raise PayloadError(
            f"length field says {length} data bytes, packet holds {len(raw) - 12}",
            reason="bad_length",
        )
    if raw[-2:] != TRAILER:
        raise PayloadError("packet does not end with CR LF", reason="bad_length")
    segment = raw[6 : 6 + length]
    crc_text = raw[6 + length : 6 + length + 4]
    # Upper-case only, as the standard writes it: a case flip is a changed byte like any other.
    if len(crc_text) != 4 or not all(c in b"0123456789ABCDEF" for c in crc_text):
        raise PayloadError(
            f"CRC must be 4 upper-case hex digits, got {crc_text!r}", reason="bad_crc"
        )
    sent_crc = int(crc_text, 16)
    actual = crc16(segment)
    if sent_crc != actual:
        raise PayloadError(
            f"CRC {crc_text.decode('ascii')} does not match the data ({actual:04X})",
            reason="bad_crc",
        )
    try:
        text = segment.decode("ascii")
    except UnicodeDecodeError:
        raise PayloadError("data segment is not ASCII", reason="bad_field") from None
    return parse_segment(text)


def parse_segment(text: str) -> Packet:
    head, sep, rest = text.partition("CP=&&")
    if not sep or not rest.endswith("&&"):
        raise PayloadError("data segment has no CP=&&…&&", reason="bad_field", field="CP")
    cp_text = rest[:-2]
    if "&&" in cp_text:
        raise PayloadError("CP holds '&&' inside", reason="bad_field", field="CP")
    header: dict[str, str] = {}
    for item in head.split(";"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or key not in _HEADER_FIELDS:
            raise PayloadError(
                f"unknown header field {shown(item)}", reason="bad_field", field=shown(key, 20)
            )
        if key in header:
            raise PayloadError(f"header field {key} repeated", reason="bad_field", field=key)
        header[key] = value
    for key in ("QN", "ST", "CN", "PW", "MN", "Flag"):
        if key not in header:
            raise PayloadError(f"header field {key} is missing", reason="bad_field", field=key)
    qn, st, cn, pw, mn = (header[k] for k in ("QN", "ST", "CN", "PW", "MN"))
    if not _QN.fullmatch(qn):
        raise PayloadError(f"QN must be 17 digits, got {shown(qn)}", reason="bad_field", field="QN")
    _check_qn(qn)
    if not (len(st) == 2 and st.isdigit()):
        raise PayloadError(f"ST must be 2 digits, got {shown(st)}", reason="bad_field", field="ST")
    if not (len(cn) == 4 and cn.isdigit()):
        raise PayloadError(f"CN must be 4 digits, got {shown(cn)}", reason="bad_field", field="CN")
    if not (len(pw) <= 9 and pw.isalnum()):
        raise PayloadError(
            f"PW must be ≤ 9 characters, got {shown(pw)}", reason="bad_field", field="PW"
        )
    if not _MN.fullmatch(mn):
        raise PayloadError(
            f"MN must be ≤ 24 letters/digits, got {shown(mn)}", reason="bad_field", field="MN"
        )
    flag_text = header["Flag"]
    # digits first: int() of 5000 digits raises ValueError, and int() takes "+1", " 1", "1_0"
    if not (_SMALL_INT.fullmatch(flag_text) and int(flag_text) <= 255):
        raise PayloadError(
            f"Flag must be 0–255, got {shown(flag_text)}", reason="bad_field", field="Flag"
        )
    flag = int(flag_text)
    pnum = pno = None
    if flag & FLAG_SPLIT:
        pnum_text, pno_text = header.get("PNUM", ""), header.get("PNO", "")
        if not (_SMALL_INT.fullmatch(pnum_text) and _SMALL_INT.fullmatch(pno_text)):
            raise PayloadError(
                "Flag says the packet is split but PNUM/PNO are missing or not 1–9999, got "
                f"{shown(pnum_text, 20)}/{shown(pno_text, 20)}",
                reason="bad_field",
                field="PNUM",
            )
        pnum, pno = int(pnum_text), int(pno_text)
        if not 1 <= pno <= pnum <= 9999:
            raise PayloadError(
                f"PNO {pno} must be within 1..PNUM {pnum}", reason="bad_field", field="PNO"
            )
    elif "PNUM" in header or "PNO" in header:
        raise PayloadError("PNUM/PNO present but Flag has no split bit", reason="bad_field")
    return Packet(qn, st, cn, pw, mn, flag, parse_cp(cp_text), pnum, pno)


def parse_cp(cp_text: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if not cp_text:
        return ()
    for group in cp_text.split(";"):
        for item in group.split(","):
            key, eq, value = item.partition("=")
            if not eq or not _CP_KEY.fullmatch(key):
                raise PayloadError(f"CP item {shown(item)} is not key=value", reason="bad_field")
            pairs.append((key, value))
    return tuple(pairs)


def reassemble(parts: Iterable[Packet]) -> Packet:
    """Join the parts of one split packet (same MN, QN, CN) in PNO order into one packet."""
    ordered = sorted(parts, key=lambda p: p.pno or 0)
    if not ordered:
        raise PayloadError("no parts to reassemble", reason="incomplete_split")
    first = ordered[0]
    pnum = first.pnum or 1
    for part in ordered:
        if (part.mn, part.qn, part.cn, part.pnum) != (first.mn, first.qn, first.cn, first.pnum):
            raise PayloadError(
                f"split parts disagree: {part.mn}/{part.qn}/{part.cn} vs "
                f"{first.mn}/{first.qn}/{first.cn}",
                reason="bad_split",
            )
    numbers = [p.pno for p in ordered]
    if numbers != list(range(1, pnum + 1)):
        raise PayloadError(
            f"split packet {first.qn} needs parts 1..{pnum}, got {numbers}",
            reason="incomplete_split",
        )
    cp: list[tuple[str, str]] = []
    for part in ordered:
        cp.extend(part.cp)
    return Packet(
        first.qn, first.st, first.cn, first.pw, first.mn, first.flag & ~FLAG_SPLIT, tuple(cp)
    )


def split(packet: Packet, max_segment_bytes: int = 1024) -> list[Packet]:
    """Cut a packet into PNUM parts whose data segments fit `max_segment_bytes` (whole groups)."""
    if len(data_segment(packet)) <= max_segment_bytes:
        return [packet]
    groups: list[list[tuple[str, str]]] = []
    for key, value in packet.cp:
        code = key.split("-", 1)[0] if "-" in key else key
        if groups and "-" in key and groups[-1][0][0].split("-", 1)[0] == code:
            groups[-1].append((key, value))
        else:
            groups.append([(key, value)])
    # Every part repeats DataTime so each is readable alone.
    head = [p for g in groups if g[0][0] == "DataTime" for p in g]
    rest = [g for g in groups if g[0][0] != "DataTime"]
    probe = Packet(
        packet.qn,
        packet.st,
        packet.cn,
        packet.pw,
        packet.mn,
        packet.flag | FLAG_SPLIT,
        tuple(head),
        9999,
        9999,
    )
    overhead = len(data_segment(probe))
    chunks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = overhead
    for group in rest:
        text_len = len(_group_text(group)) + 1
        if current and size + text_len > max_segment_bytes:
            chunks.append(current)
            current, size = [], overhead
        current.extend(group)
        size += text_len
    chunks.append(current)
    return [
        Packet(
            packet.qn,
            packet.st,
            packet.cn,
            packet.pw,
            packet.mn,
            packet.flag | FLAG_SPLIT,
            tuple(head + chunk),
            len(chunks),
            index + 1,
        )
        for index, chunk in enumerate(chunks)
    ]


def parse_packets(raw: bytes) -> list[Packet]:
    """Every packet in a payload, split ones reassembled (they must all be in this payload)."""
    packets = [parse_frame(f) for f in split_frames(raw)]
    whole: list[Packet] = []
    pending: dict[tuple[str, str, str], list[Packet]] = {}
    for packet in packets:
        if packet.is_split:
            pending.setdefault((packet.mn, packet.qn, packet.cn), []).append(packet)
        else:
            whole.append(packet)
    for parts in pending.values():
        joined = _dedupe_datatime(reassemble(parts))
        whole.append(joined)
    return whole


def _dedupe_datatime(packet: Packet) -> Packet:
    seen: set[str] = set()
    cp: list[tuple[str, str]] = []
    for key, value in packet.cp:
        if key == "DataTime":
            if key in seen:
                continue
            seen.add(key)
        cp.append((key, value))
    return Packet(packet.qn, packet.st, packet.cn, packet.pw, packet.mn, packet.flag, tuple(cp))


# ---------------------------------------------------------------------------------------------
# Responses the upper system sends


def qn_of(ts_ns: int, zone_h: float = 8.0) -> str:
    """A QN (YYYYMMDDhhmmsszzz, local time) for a UTC time."""
    local = datetime.fromtimestamp(ts_ns // NS_PER_S, tz=_zone(zone_h))
    return local.strftime("%Y%m%d%H%M%S") + f"{(ts_ns // NS_PER_MS) % 1000:03d}"


def data_response(packet: Packet) -> Packet:
    """CN 9014, the answer to data that asked for one (Flag A bit): same QN, empty CP."""
    return Packet(packet.qn, ST_SYSTEM, CN_DATA_RESPONSE, packet.pw, packet.mn, VERSION_2017 << 2)


def request_response(packet: Packet, qn_rtn: int = 1) -> Packet:
    """CN 9011, the answer to a request: QnRtn 1 ready, 2 refused, 3 bad PW, 5 bad MN..."""
    return Packet(
        packet.qn,
        ST_SYSTEM,
        CN_REQUEST_RESPONSE,
        packet.pw,
        packet.mn,
        VERSION_2017 << 2,
        (("QnRtn", str(qn_rtn)),),
    )


def execute_response(packet: Packet, exe_rtn: int = 1) -> Packet:
    """CN 9012, execution result: ExeRtn 1 success, 2 failed, 100 no data..."""
    return Packet(
        packet.qn,
        ST_SYSTEM,
        CN_EXECUTE_RESPONSE,
        packet.pw,
        packet.mn,
        VERSION_2017 << 2,
        (("ExeRtn", str(exe_rtn)),),
    )


def response_for(packet: Packet) -> Packet | None:
    """What the upper system must answer to a packet a station sent, or None."""
    if not packet.wants_ack:
        return None
    if packet.cn in DATA_INTERVALS:
        return data_response(packet)
    if packet.cn in RESPONSE_CNS or packet.cn == CN_DATA_RESPONSE:
        return None
    return request_response(packet)


# ---------------------------------------------------------------------------------------------
# Data packets to readings and points


@dataclass(slots=True)
class FactorValue:
    name: str
    rtd: float | None = None
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    flag: str | None = None


@dataclass(slots=True)
class StationData:
    """The data a packet carries: its interval, the station's time (UTC ns), values per factor."""

    packet: Packet
    interval: str
    ts_ns: int
    factors: dict[str, FactorValue] = field(default_factory=dict)


def _zone(zone_h: float) -> timezone:
    return timezone(timedelta(hours=zone_h))


def parse_datatime(text: str, zone_h: float) -> int:
    """DataTime (YYYYMMDDhhmmss, the station's local time) to UTC ns within [2000, 2262]."""
    if not _DATATIME.fullmatch(text):
        raise PayloadError(
            f"DataTime must be YYYYMMDDhhmmss, got {shown(text)}",
            reason="bad_field",
            field="DataTime",
        )
    try:
        local = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=_zone(zone_h))
    except ValueError:
        raise PayloadError(
            f"DataTime is not a real time, got {text!r}", reason="bad_field", field="DataTime"
        ) from None
    # aware datetimes subtract without overflow, even 0001-01-01 at UTC+8
    return check_ts_ns(int(local.timestamp()) * NS_PER_S, "DataTime", text)


def _check_qn(qn: str) -> None:
    """QN is YYYYMMDDhhmmsszzz (a request's local time): refused when no such time exists."""
    try:
        datetime.strptime(qn[:14], "%Y%m%d%H%M%S")
    except ValueError:
        raise PayloadError(
            f"QN is not a real time YYYYMMDDhhmmsszzz, got {qn!r}", reason="bad_field", field="QN"
        ) from None


def qn_ns(qn: str, zone_h: float = 8.0) -> int | None:
    """A QN's time (the station's local clock when it made the packet, to the millisecond) as
    UTC ns; None when it is no time hazwatch could store."""
    try:
        local = datetime.strptime(qn[:14], "%Y%m%d%H%M%S").replace(tzinfo=_zone(zone_h))
        ts_ns = int(local.timestamp()) * NS_PER_S + int(qn[14:17]) * NS_PER_MS
        return check_ts_ns(ts_ns, "QN", qn)
    except (ValueError, PayloadError):
        return None


def format_datatime(ts_ns: int, zone_h: float = 8.0) -> str:
    return (
        datetime.fromtimestamp(ts_ns // NS_PER_S, tz=UTC)
        .astimezone(_zone(zone_h))
        .strftime("%Y%m%d%H%M%S")
    )


def _number(key: str, value: str) -> float:
    if not _NUMBER.fullmatch(value):
        raise PayloadError(
            f"{key} must be a number, got {shown(value)}", reason="bad_field", field=key
        )
    return float(value)  # 400 digits are inf, not an error: the bounds below refuse it


def station_data(packet: Packet, zone_h: float) -> StationData:
    """The readings of a data packet (CN 2011/2051/2061/2031) in hazwatch names and units."""
    interval = DATA_INTERVALS.get(packet.cn)
    if interval is None:
        raise PayloadError(f"CN {packet.cn} carries no data", reason="unknown_code", field="CN")
    datatime: str | None = None
    factors: dict[str, FactorValue] = {}
    for key, value in packet.cp:
        if key == "DataTime":
            datatime = value
            continue
        code, dash, suffix = key.partition("-")
        if not dash:
            raise PayloadError(
                f"CP key {key!r} is neither DataTime nor code-suffix", reason="bad_field", field=key
            )
        factor = FACTORS.get(code)
        if factor is None:
            raise PayloadError(
                f"unknown pollutant code {code!r} (known: {', '.join(sorted(FACTORS))})",
                reason="unknown_code",
                field=key,
            )
        entry = factors.setdefault(factor.name, FactorValue(factor.name))
        if suffix == "Flag":
            if value not in FLAGS:
                raise PayloadError(
                    f"{key} must be a data flag ({''.join(sorted(FLAGS))}), got {shown(value)}",
                    reason="bad_field",
                    field=key,
                )
            entry.flag = value
        elif suffix in VALUE_SUFFIXES:
            if (interval == "rtd") != (suffix == "Rtd"):
                raise PayloadError(
                    f"{key} does not belong in CN {packet.cn}", reason="bad_field", field=key
                )
            number = round(_number(key, value) * factor.scale, 6)
            low, high = BOUNDS.get(factor.name, (float("-inf"), float("inf")))
            if not (low <= number <= high and math.isfinite(number)):
                raise PayloadError(
                    f"{key} = {number:g} is outside what {factor.name} can be ({low:g}…{high:g})",
                    reason="out_of_range",
                    field=key,
                )
            setattr(entry, suffix.lower(), number)
        elif suffix not in OTHER_SUFFIXES:
            raise PayloadError(f"unknown suffix in {key!r}", reason="bad_field", field=key)
    if datatime is None:
        raise PayloadError("data packet has no DataTime", reason="bad_field", field="DataTime")
    return StationData(packet, interval, parse_datatime(datatime, zone_h), factors)


def data_packet(
    mn: str,
    cn: str,
    ts_ns: int,
    values: Mapping[str, float],
    *,
    flags: Mapping[str, str] | None = None,
    spread: Mapping[str, tuple[float, float]] | None = None,
    zone_h: float = 8.0,
    pw: str = "123456",
    want_ack: bool = True,
    qn_ts_ns: int | None = None,
) -> Packet:
    """A station's data packet from hazwatch names/units (what simulators and tests build)."""
    interval = DATA_INTERVALS[cn]
    cp: list[tuple[str, str]] = [("DataTime", format_datatime(ts_ns, zone_h))]
    for name, value in values.items():
        factor = FACTORS[CODE_OF_NAME[name]]
        sent = value / factor.scale
        if interval == "rtd":
            cp.append((f"{factor.code}-Rtd", _fmt(sent)))
        else:
            low, high = (spread or {}).get(name, (value, value))
            cp.append((f"{factor.code}-Min", _fmt(low / factor.scale)))
            cp.append((f"{factor.code}-Avg", _fmt(sent)))
            cp.append((f"{factor.code}-Max", _fmt(high / factor.scale)))
        cp.append((f"{factor.code}-Flag", (flags or {}).get(name, "N")))
    flag = (VERSION_2017 << 2) | (FLAG_ACK if want_ack else 0)
    qn = qn_of(qn_ts_ns if qn_ts_ns is not None else ts_ns, zone_h)
    return Packet(qn, ST_AIR_QUALITY, cn, pw, mn, flag, tuple(cp))


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def data_points(data: StationData, site: str, station: str) -> list[Point]:
    fields: dict[str, float | str] = {}
    for name, entry in data.factors.items():
        main = entry.rtd if data.interval == "rtd" else entry.avg
        if main is not None:
            fields[name] = main
        if entry.min is not None:
            fields[f"{name}_min"] = entry.min
        if entry.max is not None:
            fields[f"{name}_max"] = entry.max
        if entry.flag is not None:
            fields[f"{name}_flag"] = entry.flag
    if not fields:
        return []
    tags = {"site": site, "station": station, "interval": data.interval}
    return [Point("air", tags, dict(fields), data.ts_ns)]


# ---------------------------------------------------------------------------------------------
# The `air/{station}/hj212` topic kind


@dataclass(slots=True)
class Hj212Message:
    """The packets of one MQTT payload (several when a split packet travels reassembled)."""

    packets: list[Packet]
    data: list[StationData]
    # the station's clock when it made the newest packet (its QN), for its clock offset: a
    # DataTime is when the data are of (an hour's start for hourly data), not when sent
    sent_ns: int | None = None


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> Hj212Message:
    packets = parse_packets(raw)
    expected_mn = ctx.station_mn(topic.site, topic.device)
    zone_h = ctx.station_zone_h(topic.site, topic.device)
    data: list[StationData] = []
    for packet in packets:
        if expected_mn is not None and packet.mn != expected_mn:
            raise PayloadError(
                f"MN {packet.mn} is not the registry's MN {expected_mn} of station "
                f"{topic.site}/{topic.device}",
                reason="wrong_mn",
                field="MN",
            )
        if packet.cn in DATA_INTERVALS:
            data.append(station_data(packet, zone_h))
        elif packet.cn not in KNOWN_CNS:
            raise PayloadError(
                f"CN {packet.cn} is not one hazwatch takes from a station "
                f"(known: {', '.join(sorted(KNOWN_CNS))})",
                reason="unknown_code",
                field="CN",
            )
    sent = [t for t in (qn_ns(p.qn, zone_h) for p in packets) if t is not None]
    return Hj212Message(packets, data, max(sent) if sent else None)


def to_points(message: Hj212Message, topic: Topic, ctx: DecodeContext) -> list[Point]:
    points: list[Point] = []
    for data in message.data:
        points.extend(data_points(data, topic.site, topic.device))
    return points


def sent_at(message: Hj212Message) -> int | None:
    return message.sent_ns


SPEC = KindSpec(KIND, parse, to_points, "HJ 212-2017 packet, raw as the station sends it", sent_at)
