"""HJ 212-2017 and HJ 212-2025 packets of air stations: framing, CRC, SM4, data segment, splits,
answers by each packet's own edition, points (docs/hj212.md cites the clauses).

Never accept a packet whose length, CRC or any field is off: raise PayloadError with the reason;
never refuse a well-formed packet for a factor code or a command it does not know.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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
CN_SET_TIME = "1012"  # 设置现场机时间: the upper system sets the station's clock
CN_TIME_REQUEST = "1013"  # 现场机时间校准请求: the station asks for the time
CN_KEY = "1014"  # HJ 212-2025: the station asks for a new SM4 key / the upper system sets one
CN_HARDWARE = "1001"  # HJ 212-2025: the station uploads its hardware serial (入网)
CN_DEVICE_INFO = "3020"  # 现场机信息: field-device information
CN_HEARTBEAT = "9015"  # HJ 212-2025: 心跳包, says the link is up
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

# Flag = V5..V0 D A: A asks for a response, D says PNUM/PNO are present; the version bits say
# the edition: 0 HJ/T 212-2005, 1 HJ 212-2017, 2 HJ 212-2025 (so Flag=9 is a 2025 packet that
# wants an answer). A packet is decoded and answered by its own edition.
FLAG_ACK = 0b01
FLAG_SPLIT = 0b10
VERSION_2005 = 0
VERSION_2017 = 1
VERSION_2025 = 2
EDITIONS: dict[int, str] = {VERSION_2005: "2005", VERSION_2017: "2017", VERSION_2025: "2025"}
VERSION_OF: dict[str, int] = {edition: version for version, edition in EDITIONS.items()}

# QnRtn (请求应答 CN 9011): 1 ready, 2 refused, 3 wrong PW, 4 wrong MN, 5 wrong ST, 6 wrong Flag,
# 7 wrong QN, 8 wrong CN, 9 wrong CRC, 100 unknown error.
QN_READY = 1
QN_REFUSED = 2
QN_WRONG_PW = 3
QN_WRONG_MN = 4

# HJ 212-2025 6.4: the CP of data commands (2000–2999), 1014 and 3020 is SM4-encrypted (128-bit
# key, ECB, no padding) over a public network; whole 16-byte blocks written as {0xE4,0x3E,...},
# a tail of under 16 bytes left as it is. The CRC is of the plaintext data segment (A.2).
SM4_KEY_BYTES = 16
_CIPHER_BLOCK = re.compile(rb"\{((?:0[xX][0-9A-Fa-f]{2},)*0[xX][0-9A-Fa-f]{2})\}")
# where an encrypted frame ends when its length field counts the plaintext (A.2's examples)
_ENCRYPTED_END = re.compile(rb"CP=&&\{[0-9A-Fa-fxX,]*\}[^&\r\n]{0,15}&&[0-9A-Fa-f]{4}\r\n")


def encrypted_cn(cn: str) -> bool:
    """Whether HJ 212-2025 6.4 encrypts this command's CP (data commands, 1014, 3020)."""
    return cn.startswith("2") or cn in (CN_KEY, CN_DEVICE_INFO)


def _sm4(key: bytes, decrypt: bool, data: bytes) -> bytes:
    cipher = Cipher(algorithms.SM4(key), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def sm4_encrypt_cp(cp_text: str, key: bytes) -> str:
    """A CP's text encrypted as HJ 212-2025 A.2 writes it: whole blocks as {0x..}, tail plain."""
    plain = cp_text.encode("utf-8")
    whole = len(plain) // 16 * 16
    if not whole:
        return cp_text
    block = _sm4(key, False, plain[:whole])
    return "{" + ",".join(f"0x{b:02X}" for b in block) + "}" + plain[whole:].decode("utf-8")


def is_encrypted_cp(cp: bytes) -> bool:
    return cp.startswith(b"{0x") or cp.startswith(b"{0X")


def sm4_decrypt_cp(cp: bytes, key: bytes, mn: str) -> str:
    """The plaintext of an encrypted CP; PayloadError decrypt_failed saying why when it fails."""
    match = _CIPHER_BLOCK.match(cp)
    if match is None:
        raise PayloadError(
            f"station {mn}: encrypted CP is not {{0x..,..}} hex bytes", reason="decrypt_failed"
        )
    block = bytes(int(item[2:], 16) for item in match.group(1).split(b","))
    if len(block) % 16:
        raise PayloadError(
            f"station {mn}: encrypted CP holds {len(block)} bytes, not whole 16-byte SM4 blocks",
            reason="decrypt_failed",
        )
    try:
        return (_sm4(key, True, block) + cp[match.end() :]).decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(
            f"station {mn}: CP did not decrypt with the registry's SM4 key (wrong key?)",
            reason="decrypt_failed",
        ) from None


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

# Units a station may be registered as sending (registry `units`), as a factor to the unit
# hazwatch stores: µg/m³ for particles and gases but CO (mg/m³), hPa for pressure.
MASS_UG = {"ng/m3": 1e-3, "ug/m3": 1.0, "mg/m3": 1e3}
PRESSURE_HPA = {"hpa": 1.0, "kpa": 10.0}
STORED_UNIT: dict[str, str] = {
    **dict.fromkeys(("pm25", "pm10", "so2", "no2", "o3"), "ug/m3"),
    "co": "mg/m3",
    "pressure": "hpa",
}
# Above these (in stored units) a value is more likely a wrong unit than the air: flagged in
# the point's `unit_suspect` field, kept (a 1000x error is what a wrong unit makes).
PLAUSIBLE_MAX: dict[str, float] = {
    "pm25": 1000.0,
    "pm10": 2000.0,
    "so2": 2000.0,
    "no2": 1000.0,
    "co": 50.0,
    "o3": 800.0,
}


def unit_key(unit: str) -> str:
    """A unit as written in a registry ("µg/m³", "ug/m3", "kPa") in one spelling."""
    return (
        unit.strip().lower().replace("µ", "u").replace("μ", "u").replace("³", "3").replace(" ", "")
    )


def unit_scale(name: str, unit: str) -> float | None:
    """value_stored = value_sent * scale for `name` sent in `unit`; None: not a unit of it."""
    stored = STORED_UNIT.get(name)
    key = unit_key(unit)
    if stored in MASS_UG and key in MASS_UG:
        return MASS_UG[key] / MASS_UG[stored]
    if stored == "hpa" and key in PRESSURE_HPA:
        return PRESSURE_HPA[key]
    return None


VALUE_SUFFIXES = frozenset({"Rtd", "Avg", "Min", "Max"})
# Suffixes the standard defines that air points do not use; parsed, kept, not written.
OTHER_SUFFIXES = frozenset(
    {"Flag", "EFlag", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "SampleTime"}
)

# RF=1: HJ 212-2025 marks a re-sent (补传) packet; absent otherwise.
_HEADER_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "RF", "PNUM", "PNO")
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
    encrypted: bool = False  # the CP arrived SM4-encrypted (cp holds its plaintext)
    resend: bool = False  # RF=1 (HJ 212-2025): data sent again after a gap

    @property
    def version(self) -> int:
        return self.flag >> 2

    @property
    def edition(self) -> str:
        """ "2017", "2025" (or "2005"): the edition the Flag's version bits name."""
        return EDITIONS.get(self.version, "2017")

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
    if packet.resend:
        parts.append("RF=1")
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


def build(packet: Packet, key: bytes | None = None, *, cp_text: str | None = None) -> bytes:
    """The frame of a packet; with an SM4 key its CP is encrypted (HJ 212-2025 6.4, A.2): the
    CRC stays that of the plaintext segment, the length field counts the bytes sent.
    `cp_text`: the CP written as given instead of from `packet.cp` (a command's own layout)."""
    if cp_text is None:
        segment = data_segment(packet).encode("utf-8")
    else:
        prefix = data_segment(replace(packet, cp=())).removesuffix("CP=&&&&")
        segment = f"{prefix}CP=&&{cp_text}&&".encode()
    if key is None:
        return frame(segment)
    head, _, rest = segment.partition(b"CP=&&")
    cp = sm4_encrypt_cp(rest[:-2].decode("utf-8"), key).encode("utf-8")
    sent = head + b"CP=&&" + cp + b"&&"
    if len(sent) > MAX_DATA_LEN:
        raise PayloadError(
            f"data segment is {len(sent)} bytes, over {MAX_DATA_LEN}", reason="bad_length"
        )
    return b"%s%04d%s%04X%s" % (HEADER, len(sent), sent, crc16(segment), TRAILER)


def split_frames(raw: bytes) -> list[bytes]:
    """Cut a byte string holding one or more whole packets into packets (framing checked)."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(raw):
        if raw.startswith(TRAILER, pos) and not frames:
            pos += len(TRAILER)
            continue
        length = frame_end(raw, pos)
        if length is None:
            raise PayloadError(short_frame(raw[pos:]), reason="bad_length")
        frames.append(raw[pos : pos + length])
        pos += length
    if not frames:
        raise PayloadError("payload holds no HJ 212 packet", reason="bad_length")
    return frames


def short_frame(rest: bytes) -> str:
    """What is wrong with bytes that end before the frame their length field announces."""
    nominal = frame_length(rest) or 0
    if len(rest) == nominal - len(TRAILER) and all(c in _HEX for c in rest[-4:]):
        return "packet ends after its CRC without CR LF"
    return f"packet is truncated: {len(rest)} of {nominal} bytes"


_HEX = b"0123456789ABCDEFabcdef"


def frame_end(buffer: bytes | bytearray, pos: int = 0) -> int | None:
    """Length of the whole frame at `pos` (with CR LF), None until all of it is in `buffer`.

    The length field says where a frame ends, except for an encrypted CP whose length field
    counts the plaintext, as the examples of HJ 212-2025 A.2 print it: that frame ends at the
    first `}...&&CRC CR LF` after its `CP=&&{`.
    """
    nominal = frame_length(bytes(buffer[pos : pos + 6]))
    if nominal is None:
        return None
    if buffer[pos + nominal - 2 : pos + nominal] == TRAILER:
        return nominal
    cp = buffer.find(b"CP=&&{", pos, pos + nominal)
    if cp < 0:
        return None if len(buffer) - pos < nominal else nominal
    match = _ENCRYPTED_END.search(buffer, cp)
    if match is None or match.start() != cp:
        return None if len(buffer) - pos < nominal or b"\r\n" not in buffer[cp:] else nominal
    return match.end() - pos


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


# MN -> the station's SM4 key, or its keys to try in order (the one in force, then one issued by
# CN 1014 and not yet acknowledged); None or () when it has none
KeyOf = Callable[[str], "bytes | Sequence[bytes] | None"]


def parse_frame(raw: bytes, key_of: KeyOf | None = None) -> Packet:
    """One whole packet (with CRLF) to a Packet; every defect raises PayloadError. An encrypted
    CP is decrypted with `key_of(MN)` (no key: decrypt_failed; several: the first with which
    it decrypts to a CRC that matches)."""
    keys: tuple[bytes, ...] = ()

    def nth(index: int) -> Callable[[str], bytes | None]:
        def pick(mn: str) -> bytes | None:
            nonlocal keys
            if index == 0:
                found = key_of(mn) if key_of is not None else None
                keys = (found,) if isinstance(found, bytes) else tuple(found or ())
            return keys[index] if index < len(keys) else None

        return pick

    try:
        return _parse_frame(raw, nth(0))
    except PayloadError as exc:
        if exc.reason != "decrypt_failed" or len(keys) < 2:
            raise
        for index in range(1, len(keys)):
            try:
                return _parse_frame(raw, nth(index))
            except PayloadError as again:
                if again.reason != "decrypt_failed":
                    raise
        raise


def _parse_frame(raw: bytes, key_of: Callable[[str], bytes | None]) -> Packet:
    if len(raw) < 12 or raw[:2] != HEADER:
        raise PayloadError(f"packet must start with '##', got {raw[:8]!r}", reason="bad_header")
    digits = raw[2:6]
    if not digits.isdigit():
        raise PayloadError(f"length must be 4 decimal digits, got {digits!r}", reason="bad_length")
    length = int(digits)
    if raw[-2:] != TRAILER:
        raise PayloadError(
            f"packet does not end with CR LF (ends {raw[-6:]!r})", reason="bad_length"
        )
    segment = raw[6:-6]
    crc_text = raw[-6:-2]
    cp_at = segment.find(b"CP=&&")
    encrypted = cp_at >= 0 and is_encrypted_cp(segment[cp_at + 5 :])
    if len(segment) != length and not encrypted:
        raise PayloadError(
            f"length field says {length} data bytes, packet holds {len(segment)}",
            reason="bad_length",
        )
    # Either case: HJ 212-2017 Table 2 asks for 4 hex digits and does not fix the case.
    if not all(c in _HEX for c in crc_text):
        raise PayloadError(f"CRC must be 4 hex digits, got {crc_text!r}", reason="bad_crc")
    sent_crc = int(crc_text, 16)
    mn = ""
    plain = segment
    if encrypted:
        mn_match = re.search(rb"(?:^|;)MN=([A-Za-z0-9]{1,24});", segment[:cp_at])
        mn = mn_match.group(1).decode("ascii") if mn_match else "?"
        key = key_of(mn)
        if key is None:
            raise PayloadError(
                f"station {mn} sent an SM4-encrypted CP and the registry holds no SM4 key for "
                "it: refused",
                reason="decrypt_failed",
            )
        cp_plain = sm4_decrypt_cp(segment[cp_at + 5 : -2], key, mn).encode("utf-8")
        plain = segment[: cp_at + 5] + cp_plain + b"&&"
        if length not in (len(segment), len(plain)):
            raise PayloadError(
                f"length field says {length} data bytes; the packet holds {len(segment)} "
                f"({len(plain)} decrypted)",
                reason="bad_length",
            )
    actual = crc16(plain)
    if sent_crc != actual and not (encrypted and sent_crc == crc16(segment)):
        if encrypted:
            raise PayloadError(
                f"station {mn}: CRC {crc_text.decode('ascii')} does not match the CP decrypted "
                "with the registry's SM4 key (wrong key?)",
                reason="decrypt_failed",
            )
        raise PayloadError(
            f"CRC {crc_text.decode('ascii')} does not match the data ({actual:04X})",
            reason="bad_crc",
        )
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("data segment is not UTF-8", reason="bad_field") from None
    try:
        packet = parse_segment(text)
    except PayloadError as exc:
        if encrypted and exc.field == "CP":
            raise PayloadError(
                f"station {mn}: CP did not decrypt to key=value items with the registry's SM4 "
                f"key: {exc}",
                reason="decrypt_failed",
            ) from None
        raise
    return replace(packet, encrypted=True) if encrypted else packet


def header_of(raw: bytes) -> Packet | None:
    """The header of a whole frame whose CP could not be read (it did not decrypt), with an
    empty CP: who sent it and what, to refuse it in its own words; None when the header is
    no valid header either."""
    segment = raw[6:-6]
    cp_at = segment.find(b"CP=&&")
    if cp_at < 0:
        return None
    try:
        return parse_segment(segment[:cp_at].decode("utf-8") + "CP=&&&&")
    except (PayloadError, UnicodeDecodeError):
        return None


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
    if not _MN.fullmatch(mn) and not (mn == "" and (cn == CN_HARDWARE or cn in RESPONSE_CNS)):
        # (a data logger not yet given its MN uploads its hardware serial with MN= empty, and
        # is answered so)
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
    if flag >> 2 not in EDITIONS:
        raise PayloadError(
            f"Flag {flag}: version bits {flag >> 2:06b} name no HJ 212 edition (000000 HJ/T "
            "212-2005, 000001 HJ 212-2017, 000010 HJ 212-2025)",
            reason="bad_field",
            field="Flag",
        )
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
    if header.get("RF", "1") != "1":
        raise PayloadError(
            f"RF must be 1 (a re-sent packet) or absent, got {shown(header['RF'])}",
            reason="bad_field",
            field="RF",
        )
    return Packet(qn, st, cn, pw, mn, flag, parse_cp(cp_text), pnum, pno, resend="RF" in header)


def parse_cp(cp_text: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    if not cp_text:
        return ()
    for group in cp_text.split(";"):
        for item in group.split(","):
            key, eq, value = item.partition("=")
            if not eq or not _CP_KEY.fullmatch(key):
                raise PayloadError(
                    f"CP item {shown(item)} is not key=value", reason="bad_field", field="CP"
                )
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
        first.qn,
        first.st,
        first.cn,
        first.pw,
        first.mn,
        first.flag & ~FLAG_SPLIT,
        tuple(cp),
        encrypted=any(p.encrypted for p in ordered),
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


def parse_packets(raw: bytes, key_of: KeyOf | None = None) -> list[Packet]:
    """Every packet in a payload, split ones reassembled (they must all be in this payload)."""
    packets = [parse_frame(f, key_of) for f in split_frames(raw)]
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
    return replace(packet, cp=tuple(cp))


# ---------------------------------------------------------------------------------------------
# Responses the upper system sends


def qn_of(ts_ns: int, zone_h: float = 8.0) -> str:
    """A QN (YYYYMMDDhhmmsszzz, local time) for a UTC time."""
    local = datetime.fromtimestamp(ts_ns // NS_PER_S, tz=_zone(zone_h))
    return local.strftime("%Y%m%d%H%M%S") + f"{(ts_ns // NS_PER_MS) % 1000:03d}"


def _answer_flag(packet: Packet) -> int:
    """An answer carries its request's version bits (each packet answered by its edition)."""
    return packet.version << 2


def data_response(packet: Packet) -> Packet:
    """CN 9014, the answer to data that asked for one (Flag A bit): same QN, empty CP."""
    return Packet(
        packet.qn, ST_SYSTEM, CN_DATA_RESPONSE, packet.pw, packet.mn, _answer_flag(packet)
    )


def request_response(packet: Packet, qn_rtn: int = QN_READY) -> Packet:
    """CN 9011, the answer to a request: QnRtn 1 ready, 2 refused, 3 wrong PW, 4 wrong MN..."""
    return Packet(
        packet.qn,
        ST_SYSTEM,
        CN_REQUEST_RESPONSE,
        packet.pw,
        packet.mn,
        _answer_flag(packet),
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
        _answer_flag(packet),
        (("ExeRtn", str(exe_rtn)),),
    )


def notify_response(packet: Packet) -> Packet:
    """CN 9013, the answer to a notice (a heartbeat that asked for one): same QN, empty CP."""
    return Packet(
        packet.qn, ST_SYSTEM, CN_NOTIFY_RESPONSE, packet.pw, packet.mn, _answer_flag(packet)
    )


def set_time(packet: Packet, now_ns: int, qn_ns: int, zone_h: float = 8.0) -> Packet:
    """CN 1012, the upper system setting the station's clock to `now_ns` (its answer to a time
    request 1013, or pushed when its clock drifts): PolId echoed when the request named one."""
    cp: list[tuple[str, str]] = []
    pol = packet.cp_dict().get("PolId")
    if pol:
        cp.append(("PolId", pol))
    cp.append(("SystemTime", format_datatime(now_ns, zone_h)))
    return Packet(
        qn_of(qn_ns, zone_h),
        packet.st,
        CN_SET_TIME,
        packet.pw,
        packet.mn,
        _answer_flag(packet) | FLAG_ACK,
        tuple(cp),
    )


def refusal(packet: Packet, qn_rtn: int) -> Packet:
    """CN 9011 with a refusal QnRtn (3 wrong PW, 4 wrong MN): sent whatever the A bit says."""
    return request_response(packet, qn_rtn)


def response_for(packet: Packet) -> Packet | None:
    """What the upper system must answer to a packet a station sent, or None."""
    if not packet.wants_ack:
        return None
    if packet.cn in DATA_INTERVALS or packet.cn.startswith("2"):
        return data_response(packet)
    if packet.cn in RESPONSE_CNS or packet.cn == CN_DATA_RESPONSE:
        return None
    if packet.cn in NOTICE_CNS:
        return notify_response(packet)
    return request_response(packet)


# What a station sends that the upper system answers with CN 9013 (通知应答): the heartbeat
# (9015), the hardware serial upload (1001) and the request for a new key (1014), as the
# appendix C examples are implemented (docs/hj212.md).
NOTICE_CNS = frozenset({CN_HEARTBEAT, CN_HARDWARE, CN_KEY})


# ---------------------------------------------------------------------------------------------
# HJ 212-2025 station management: MN from the hardware serial (1001/1002), new keys (1014),
# field-device information (3020)

CN_SET_MN = "1002"  # 设置数采仪 MN 编码: the upper system gives a data logger its MN
# i23005 数采仪硬件序号 (the serial the registry maps to an MN), i23006 CPU ID, i23007/8 MACs
HARDWARE_FIELDS = {
    "i23005": "serial",
    "i23006": "cpu_id",
    "i23007": "mac1",
    "i23008": "mac2",
}
SERIAL_KEY = "i23005-Info"


def hardware_info(packet: Packet) -> dict[str, str]:
    """What a CN 1001 packet says of its data logger: serial, cpu_id, mac1, mac2 (as sent)."""
    cp = packet.cp_dict()
    return {
        name: cp[f"{code}-Info"] for code, name in HARDWARE_FIELDS.items() if f"{code}-Info" in cp
    }


def set_mn(packet: Packet, mn: str, serial: str, now_ns: int, zone_h: float = 8.0) -> Packet:
    """CN 1002 to the data logger that uploaded `serial` (CN 1001): its MN from now on is `mn`
    (the header's MN), the serial in the CP saying which logger is meant."""
    return Packet(
        qn_of(now_ns, zone_h),
        packet.st,
        CN_SET_MN,
        packet.pw,
        mn,
        _answer_flag(packet) | FLAG_ACK,
        ((SERIAL_KEY, serial),),
    )


def key_update(packet: Packet, qn: str, sk_created: str, new_key: bytes, key: bytes) -> bytes:
    """The frame of CN 1014 from the upper system: SKCreateTime and NewSK (the new key's 16
    characters), its CP encrypted with the station's key in force (6.4: 1014 is encrypted)."""
    command = Packet(qn, packet.st, CN_KEY, packet.pw, packet.mn, _answer_flag(packet) | FLAG_ACK)
    cp_text = f"SKCreateTime={sk_created},NewSK={new_key.decode('ascii')}"
    return build(command, key, cp_text=cp_text)


def new_key_of(packet: Packet) -> tuple[str, bytes] | None:
    """(SKCreateTime, the new key) of a CN 1014 from the upper system, None when it has none."""
    cp = packet.cp_dict()
    text = cp.get("NewSK", "")
    if packet.cn != CN_KEY or len(text.encode("utf-8")) != SM4_KEY_BYTES:
        return None
    return cp.get("SKCreateTime", ""), text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One CN 3020 packet's field-device information: its time, the pollutant or device it is
    about (PolId, "" for the data logger itself) and info code → value (i11001 log, i12xxx
    state, i13xxx parameters, as sent)."""

    ts_ns: int | None
    pol_id: str
    info: dict[str, str]


def device_info(packet: Packet, zone_h: float = 8.0) -> DeviceInfo:
    """The information a CN 3020 packet carries (PolId=…;iNNNNN-Info=…); values kept as text."""
    ts_ns: int | None = None
    pol_id = ""
    info: dict[str, str] = {}
    for key, value in packet.cp:
        if key == "DataTime":
            ts_ns = parse_datatime(value, zone_h)
        elif key == "PolId":
            pol_id = value
        elif key.endswith("-Info"):
            info[key.removesuffix("-Info")] = value
    return DeviceInfo(ts_ns, pol_id, info)


# ---------------------------------------------------------------------------------------------
# Data packets to readings and points


@dataclass(slots=True)
class FactorValue:
    name: str  # hazwatch's name, or the code itself for a code hazwatch does not know
    rtd: float | None = None
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    flag: str | None = None
    other: dict[str, str] = field(default_factory=dict)  # suffixes not written as numbers


@dataclass(slots=True)
class StationData:
    """The data a packet carries: its interval, the station's time (UTC ns), values per factor."""

    packet: Packet
    interval: str
    ts_ns: int
    factors: dict[str, FactorValue] = field(default_factory=dict)
    suspect: list[str] = field(default_factory=list)  # names whose magnitude fits no air


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


# hazwatch's own field names of an air point: an unknown code may not take one of them
_OWN_NAMES = frozenset(
    {*CODE_OF_NAME, "tvoc", "flag", "unit_suspect"}
    | {f"{n}_{s}" for n in CODE_OF_NAME for s in ("min", "max", "flag")}
)
_SUFFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}")


def station_data(
    packet: Packet, zone_h: float, units: Mapping[str, str] | None = None
) -> StationData:
    """The readings of a data packet (CN 2011/2051/2061/2031) in hazwatch names and units.

    `units` (the registry's, by hazwatch name) says what the station sends; a code hazwatch
    does not know is kept under the code itself, its values as sent."""
    interval = DATA_INTERVALS.get(packet.cn)
    if interval is None:
        raise PayloadError(f"CN {packet.cn} carries no data", reason="unknown_code", field="CN")
    units = units or {}
    datatime: str | None = None
    factors: dict[str, FactorValue] = {}
    suspect: list[str] = []
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
        if factor is None and code in _OWN_NAMES:
            raise PayloadError(
                f"factor code {code!r} is one of hazwatch's field names", reason="bad_field"
            )
        name = factor.name if factor is not None else code
        scale = factor.scale if factor is not None else 1.0
        if factor is not None and name in units:
            scale = unit_scale(name, units[name]) or scale
        entry = factors.setdefault(name, FactorValue(name))
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
            number = round(_number(key, value) * scale, 6)
            low, high = BOUNDS.get(name, (float("-inf"), float("inf")))
            if not (low <= number <= high and math.isfinite(number)):
                unit = units.get(name)
                hint = f" (the registry says it is sent in {unit})" if unit else ""
                raise PayloadError(
                    f"{key} = {number:g} is outside what {name} can be ({low:g}…{high:g}){hint}",
                    reason="out_of_range",
                    field=key,
                )
            if number > PLAUSIBLE_MAX.get(name, math.inf) and name not in suspect:
                suspect.append(name)
            setattr(entry, suffix.lower(), number)
        elif suffix not in OTHER_SUFFIXES:
            # a suffix this code does not know (a newer edition's): kept as text, not refused
            if not _SUFFIX.fullmatch(suffix):
                raise PayloadError(f"bad suffix in {key!r}", reason="bad_field", field=key)
            entry.other[suffix.lower()] = value
    if datatime is None:
        raise PayloadError("data packet has no DataTime", reason="bad_field", field="DataTime")
    return StationData(packet, interval, parse_datatime(datatime, zone_h), factors, suspect)


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
    edition: str = "2017",
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
    flag = (VERSION_OF[edition] << 2) | (FLAG_ACK if want_ack else 0)
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
        for suffix, text in entry.other.items():
            fields[f"{name}_{suffix}"] = text
    if not fields:
        return []
    if data.suspect:
        fields["unit_suspect"] = ",".join(data.suspect)
    tags = {"site": site, "station": station, "interval": data.interval}
    return [Point("air", tags, dict(fields), data.ts_ns)]


CP_KEPT_CHARS = 4000  # of a command's CP kept in its hj212_packet point


def packet_point(packet: Packet, site: str, station: str, ts_ns: int) -> Point:
    """What every packet says of its station's link: its CN, ST, edition, whether encrypted;
    the CP text of a packet that is not data (3020 device information, 1001, 2081, 9015 …)."""
    fields: dict[str, float | str] = {
        "edition": packet.edition,
        "st": packet.st,
        "qn": packet.qn,
        "encrypted": 1.0 if packet.encrypted else 0.0,
    }
    if packet.cn not in DATA_INTERVALS:
        fields["cp"] = _group_text(packet.cp)[:CP_KEPT_CHARS]
    tags = {"site": site, "station": station, "cn": packet.cn}
    return Point(PACKET_MEASUREMENT, tags, fields, ts_ns)


PACKET_MEASUREMENT = "hj212_packet"


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
    sent_each: list[int | None] = field(default_factory=list)  # each packet's QN time


def parse(raw: bytes, topic: Topic, ctx: DecodeContext) -> Hj212Message:
    access = ctx.station_access(topic.site, topic.device)
    keys = access.secret.keys
    packets = parse_packets(raw, lambda mn: keys)
    expected_mn = ctx.station_mn(topic.site, topic.device)
    zone_h = ctx.station_zone_h(topic.site, topic.device)
    data: list[StationData] = []
    for packet in packets:
        # (CN 1001 comes before the logger has its MN; its PW is checked all the same)
        if expected_mn is not None and packet.mn != expected_mn and packet.cn != CN_HARDWARE:
            raise PayloadError(
                f"MN {packet.mn} is not the registry's MN {expected_mn} of station "
                f"{topic.site}/{topic.device}",
                reason="wrong_mn",
                field="MN",
            )
        why = access.refusal(packet.pw)
        if why is not None:
            raise PayloadError(
                f"station {topic.site}/{topic.device} (MN {packet.mn}) refused: {why}",
                reason="unknown_mn" if not access.registered else "auth_refused",
                field="PW",
            )
        if access.encrypted and encrypted_cn(packet.cn) and packet.cp and not packet.encrypted:
            raise PayloadError(
                f"station {topic.site}/{topic.device} is registered as encrypting its CP (SM4) "
                f"and sent CN {packet.cn} in plaintext: refused",
                reason="decrypt_failed",
            )
        if packet.cn in DATA_INTERVALS:
            data.append(station_data(packet, zone_h, access.units))
    sent = [qn_ns(p.qn, zone_h) for p in packets]
    known = [t for t in sent if t is not None]
    return Hj212Message(packets, data, max(known) if known else None, sent)


def to_points(message: Hj212Message, topic: Topic, ctx: DecodeContext) -> list[Point]:
    points: list[Point] = []
    for data in message.data:
        points.extend(data_points(data, topic.site, topic.device))
    for packet, sent in zip(message.packets, message.sent_each, strict=False):
        if sent is not None and packet.cn not in RESPONSE_CNS | {CN_DATA_RESPONSE}:
            points.append(packet_point(packet, topic.site, topic.device, sent))
    return points


def sent_at(message: Hj212Message) -> int | None:
    return message.sent_ns


SPEC = KindSpec(
    KIND, parse, to_points, "HJ 212-2017/2025 packet, raw as the station sends it", sent_at
)
