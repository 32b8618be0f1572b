"""Shared pieces of the payload schemas: the base model, timestamps, EPCs, error translation.

Never let a pydantic ValidationError escape: callers get a PayloadError with a readable reason.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from hazwatch.base.errors import PayloadError, shown
from hazwatch.base.points import INT64_MAX, UNSTORABLE_CHAR
from hazwatch.devices.timeparse import parse_ts

# Deepest JSON nesting a payload may have, counting every [ and {: ours go 3 deep (a frame's
# objects' boxes). pydantic-core stops at 200 by itself, but a 64 KB payload of 150-deep
# siblings costs it ~100 times a reading's parse, ignored key or not: refused before parsing.
MAX_JSON_DEPTH = 32


def _ts(value: object) -> int:
    return parse_ts(value)


# A device time, validated and converted to UTC nanoseconds.
TimestampNs = Annotated[int, BeforeValidator(_ts)]

_EPC = re.compile(r"[0-9A-F]{8,64}")


def epc_hex(value: object, field: str = "epc") -> str:
    """An EPC as hazwatch keeps it: 8–64 hex digits, upper case; PayloadError naming `field`."""
    if not isinstance(value, str):
        raise PayloadError(
            f"{field} must be a hex string, got {type(value).__name__}",
            reason="bad_type",
            field=field,
        )
    epc = value.strip().upper()
    if not _EPC.fullmatch(epc):
        raise PayloadError(
            f"{field} must be 8–64 hex digits (EPC-96 is 24), got {shown(value)}",
            reason="bad_value",
            field=field,
        )
    return epc


def _epc(value: object) -> str:
    return epc_hex(value)


Epc = Annotated[str, BeforeValidator(_epc)]


def _printable(value: str) -> str:
    bad = UNSTORABLE_CHAR.search(value)
    if bad is not None:
        raise ValueError(
            f"must be printable text, holds control character U+{ord(bad.group()):04X} "
            f"at position {bad.start()}"
        )
    return value


# Free text a person typed or a device names, with a max_length beside it: no control chars.
Printable = AfterValidator(_printable)


# A count that becomes an InfluxDB integer field or a SQL BIGINT.
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


class Payload(BaseModel):
    """Base of every JSON payload: unknown keys are ignored (never written), values immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


M = TypeVar("M", bound=BaseModel)

_REASONS = {
    "missing": "missing_field",
    "json_invalid": "bad_json",
    "json_type": "bad_json",
    "model_type": "bad_json",
    "model_attributes_type": "bad_json",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "too_short": "bad_value",
    "too_long": "bad_value",
    "string_too_short": "bad_value",
    "string_too_long": "bad_value",
    "string_pattern_mismatch": "bad_value",
    "literal_error": "bad_value",
    "enum": "bad_value",
    "value_error": "bad_value",
    "assertion_error": "bad_value",
}


def payload_error(exc: ValidationError) -> PayloadError:
    """The first problem of a ValidationError, as one sentence a person can act on."""
    err = exc.errors(include_url=False)[0]
    etype = err["type"]
    loc = ".".join(str(p) for p in err["loc"]) if err["loc"] else ""
    reason = _REASONS.get(etype, "bad_type")
    if etype == "json_invalid":
        return PayloadError(f"payload is not valid JSON: {err['msg']}", reason="bad_json")
    if etype in ("model_type", "model_attributes_type"):
        got = type(err.get("input")).__name__
        return PayloadError(f"payload must be a JSON object, got {got}", reason="bad_json")
    if etype == "missing":
        return PayloadError(f"required field {loc!r} is missing", reason=reason, field=loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:
        return PayloadError(msg, reason=reason)
    return PayloadError(f"{loc}: {msg}, got {shown(err.get('input'))}", reason=reason, field=loc)


def _encoding_error(raw: bytes) -> PayloadError | None:
    """A PayloadError when `raw` is not UTF-8 (JSON must be), else None."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1].hex()
        return PayloadError(
            f"payload is not UTF-8: byte 0x{byte} at {exc.start} ({exc.reason})",
            reason="bad_encoding",
        )
    return None


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_AS_PARENS = bytes.maketrans(b"[]{}", b"()()")


def _nesting(limit: int) -> re.Pattern[bytes]:
    # Brackets nested at most `limit` deep are a regular language: (?:\((?:\(…\))*\))*
    pattern = b""
    for _ in range(limit):
        pattern = rb"(?:\(" + pattern + rb"\))*"
    return re.compile(pattern)


_WITHIN_LIMIT = _nesting(MAX_JSON_DEPTH - 1)  # checked once the innermost pairs are gone


def too_deep(raw: bytes) -> bool:
    """Whether the JSON text `raw` nests deeper than MAX_JSON_DEPTH, brackets in strings aside.

    Linear whatever the input: 64 KB of brackets at worst (30-deep siblings) costs about what
    pydantic-core then takes to parse it (3 ms; 0.5 ms if wide and shallow). Escapes go first,
    so that every quote left delimits a string, then all but the brackets outside strings.
    """
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(text.split(b'"')[::2]).translate(_AS_PARENS, _NOT_BRACKETS)
    if b"(" * (MAX_JSON_DEPTH + 1) in brackets:
        return True
    if brackets.count(b"(") != brackets.count(b")"):
        return False  # unbalanced: the parser says which way it is invalid JSON
    # one C pass takes the innermost pairs (most of a wide payload), the regex the rest
    return _WITHIN_LIMIT.fullmatch(brackets.replace(b"()", b"")) is None


def validator(model: type[M]) -> Callable[[bytes], M]:
    """A function that turns raw JSON bytes into `model` or raises PayloadError."""
    # the core validator itself: model_validate_json is a Python frame around it, per message
    validate: Callable[[bytes], M] = model.__pydantic_validator__.validate_json
    limit = MAX_JSON_DEPTH

    def parse(raw: bytes) -> M:
        # two C-speed counts per message; the scan only for payloads with many brackets
        if raw.count(b"[") + raw.count(b"{") > limit and too_deep(raw):
            raise PayloadError(f"payload JSON nests deeper than {limit} levels", reason="too_deep")
        try:
            return validate(raw)
        except ValidationError as exc:
            error = payload_error(exc)
            if error.reason == "bad_json":
                raise _encoding_error(raw) or error from None
            raise error from None

    return parse


def clean_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unset (None) values; InfluxDB has no null."""
    return {k: v for k, v in values.items() if v is not None}


NS_PER_MS = 1_000_000
NS_PER_US = 1_000


def point_time(ts_ns: int, identifier: str) -> int:
    """The time to write a point at whose identifier (EPC, batch, event id …) is a field, not
    a tag: `ts_ns` moved within the finest unit its device stated by an offset the identifier
    decides.

    InfluxDB keeps one point per measurement, tag set and time. With the identifier out of
    the tags (docs/payloads.md, "Series"), two containers read by one reader at one device
    time would be one point; moved by their identifiers they stay two, while the same read
    sent again lands on the same time and overwrites. A device time in whole microseconds
    (LLRP, RFC 3339 with six digits) keeps its microsecond and the identifier picks the
    nanosecond in it: reads at different microseconds can never meet, and one reader cannot
    singulate two tags in one microsecond. A time in whole milliseconds (or in nanoseconds)
    is moved within its millisecond over all 10⁶ ns: two identifiers share an offset once in
    a million pairs (`spread` separates those within one message). The point stays in the
    millisecond the device said, and one identifier's times keep their order across
    milliseconds (within one, a microsecond clock's reads at .000 µs are moved over the whole
    millisecond and may pass that identifier's later reads of it).
    """
    offset = zlib.crc32(identifier.encode())
    if ts_ns % NS_PER_MS and not ts_ns % NS_PER_US:
        return ts_ns + offset % NS_PER_US
    ms_ns = ts_ns - ts_ns % NS_PER_MS
    return ms_ns + (ts_ns - ms_ns + offset % NS_PER_MS) % NS_PER_MS


def spread(times: list[int]) -> list[int]:
    """`times` with each one that another before it already holds moved on by a nanosecond
    (within its millisecond): the points of one message never share a time. Deterministic,
    so a redelivered message makes the same times again."""
    taken: set[int] = set()
    out = []
    for ts_ns in times:
        while ts_ns in taken:
            ms_ns = ts_ns - ts_ns % NS_PER_MS
            ts_ns = ms_ns + (ts_ns - ms_ns + 1) % NS_PER_MS
        taken.add(ts_ns)
        out.append(ts_ns)
    return out
