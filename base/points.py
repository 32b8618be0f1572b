"""Points as InfluxDB stores them (measurement, tags, fields, time) and their line protocol.

Never put a value that identifies a real-world thing in a field: identity lives in tags + time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

FieldValue = float | int | bool | str

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1  # InfluxDB refuses an integer field (`i`) beyond signed 64 bits
MAX_STRING_FIELD_BYTES = 64 * 1024  # InfluxDB's limit for one string field
# Characters no stored text may hold: C0 and C1 controls and DEL (PostgreSQL TEXT refuses NUL;
# the others break CSV, terminals and line protocol readers) and lone surrogates (not UTF-8).
UNSTORABLE_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

_TAG_ESCAPE = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\=", "\n": r"\n"})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})


@dataclass(slots=True)
class Point:
    """One InfluxDB point. `ts_ns` is UTC nanoseconds (the device's time)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ns: int
    # Not written: where the point came from, to dead-letter it if InfluxDB rejects it.
    source: object | None = field(default=None, compare=False, repr=False)
    # The point replaces the one stored with its identity (an hour computed again): its line
    # carries REPLACE_MARK, and the writers delete the stored point before writing it.
    replaces: bool = field(default=False, compare=False, repr=False)

    def identity(self) -> tuple[str, tuple[tuple[str, str], ...], int]:
        return (self.measurement, tuple(sorted(self.tags.items())), self.ts_ns)

    def to_line(self) -> str:
        line = to_line(self.measurement, self.tags, self.fields, self.ts_ns)
        return REPLACE_MARK + line if self.replaces else line


# InfluxDB merges the fields of a point written again (same measurement, tags and time): a
# field the new point lacks keeps its old value. A line with this mark replaces its point
# whole: every PointWriter deletes the stored point, then writes the line without the mark,
# so a spooled or retried replacement is the same point again. It starts with "#", a comment
# in line protocol, so that a server never takes the mark for data (docs/payloads.md).
REPLACE_MARK = "#replace "


def replacing(lines: Sequence[str]) -> list[int]:
    """The positions of the lines that carry REPLACE_MARK (a scan of first characters)."""
    return [i for i, line in enumerate(lines) if line[:1] == "#" and line.startswith(REPLACE_MARK)]


def unmarked(line: str) -> str:
    """The line protocol of a line, without REPLACE_MARK if it has it."""
    return line[len(REPLACE_MARK) :] if line.startswith(REPLACE_MARK) else line


# The hot path's caches: a device's series, tags, field keys and values recur on every one of
# its points, and escaping, sorting and repr() are most of what a line costs. Each is bounded:
# when full it is emptied (a bound, not an LRU: refilling costs one miss per entry).
_CACHE_MAX = 200_000
_ESCAPED: dict[str, str] = {}  # tag key or value -> escaped
_PAIRS: dict[tuple[str, str], str] = {}  # (tag key, value) -> ",key=value"
_HEADS: dict[tuple[object, ...], str] = {}  # (measurement, *tags.items()) -> line head
_FIELD_KEYS: dict[str, str] = {}  # field key -> "escaped_key="
_FLOATS: dict[float, str] = {}  # float -> repr (sensors report a fixed number of decimals)

K = TypeVar("K")


def _remember(cache: dict[K, str], key: K, text: str) -> str:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = text
    return text


def escape_tag(value: str) -> str:
    """Escape a tag key or value."""
    escaped = _ESCAPED.get(value)
    if escaped is None:
        escaped = _remember(_ESCAPED, value, value.translate(_TAG_ESCAPE))
    return escaped


def _string_field(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _pair(key: str, value: str) -> str:
    return _remember(_PAIRS, (key, value), f",{escape_tag(key)}={escape_tag(value)}")


def _head(measurement: str, tags: Mapping[str, str]) -> str:
    key = (measurement, *tags.items())
    head = _HEADS.get(key)
    if head is None:
        pairs = _PAIRS
        parts = [measurement.translate(_MEAS_ESCAPE)]
        for k in sorted(tags):
            value = tags[k]
            if value:
                pair = pairs.get((k, value))
                if pair is None:
                    pair = _pair(k, value)
                parts.append(pair)
        head = _remember(_HEADS, key, "".join(parts))
    return head


def escape_measurement(measurement: str) -> str:
    """A measurement name as a line starts with it."""
    return measurement.translate(_MEAS_ESCAPE)


def _float_text(value: float) -> str:
    # zero is not kept: 0.0 and -0.0 are one key
    return _remember(_FLOATS, value, repr(value)) if value else repr(value)


def _field_key(key: str) -> str:
    prefix = _FIELD_KEYS.get(key)
    if prefix is None:
        prefix = _remember(_FIELD_KEYS, key, f"{escape_tag(key)}=")
    return prefix


def to_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int
) -> str:
    """Line protocol for one point; tags sorted, empty tag values and None fields left out."""
    parts: list[str] = []
    append = parts.append
    keys = _FIELD_KEYS
    floats = _FLOATS
    for key, value in fields.items():
        kind = type(value)
        prefix = keys.get(key) or _field_key(key)
        if kind is float:
            text = floats.get(value)  # type: ignore[arg-type]
            if text is None:
                text = _float_text(value)  # type: ignore[arg-type]
            append(prefix + text)
        elif kind is int:
            append(f"{prefix}{value}i")
        elif kind is bool:
            append(prefix + ("true" if value else "false"))
        elif value is not None:
            append(prefix + _string_field(value))
    if not parts:
        raise ValueError(f"point {measurement} at {ts_ns} has no fields")
    return f"{_head(measurement, tags)} {','.join(parts)} {ts_ns}"


_SHORT_TEXT = MAX_STRING_FIELD_BYTES // 4  # no longer than this in UTF-8, whatever it holds


def unstorable(fields: Mapping[str, FieldValue]) -> str | None:
    """Why InfluxDB or the SQL stores would refuse one of these fields, or None when none.

    On the hot path (every point of every message): the loop only asks "fine?"; the reason
    is worked out once a field is not.
    """
    search = UNSTORABLE_CHAR.search
    isfinite = math.isfinite
    for value in fields.values():
        kind = type(value)
        if kind is float:
            if isfinite(value):  # type: ignore[arg-type]
                continue
        elif kind is str:
            if len(value) <= _SHORT_TEXT and search(value) is None:  # type: ignore[arg-type]
                continue
        elif kind is bool or INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            continue
        return _why_unstorable(fields)
    return None


def _why_unstorable(fields: Mapping[str, FieldValue]) -> str | None:
    for key, value in fields.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"field {key} is {value!r}: InfluxDB stores finite numbers only"
        if isinstance(value, str):
            if UNSTORABLE_CHAR.search(value) is not None:
                return f"field {key} holds a control character or a lone surrogate"
            if len(value.encode()) > MAX_STRING_FIELD_BYTES:
                return f"field {key} is over InfluxDB's {MAX_STRING_FIELD_BYTES}-byte string limit"
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            return f"field {key} does not fit a 64-bit integer"
    return None


def parse_line(line: str) -> Point:
    """Inverse of to_line (the embedded point store and tests read lines back with it)."""
    measurement, tags, fields, ts_ns = parse_escaped(line)
    return Point(measurement, tags, fields, ts_ns)


def number(raw: str) -> FieldValue:
    """A line-protocol field value that is not a string."""
    if raw.endswith("i"):
        return int(raw[:-1])
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    return float(raw)


_MEASUREMENT_ESCAPES = frozenset(", n")
_KEY_ESCAPES = frozenset(",= n")


def _scan(line: str, i: int, stops: str, escapes: frozenset[str]) -> tuple[str, int, str]:
    """Text from i up to an unescaped stop char: (text, index after the stop, stop or '')."""
    out: list[str] = []
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n and line[i + 1] in escapes:
            nxt = line[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        if ch in stops:
            return "".join(out), i + 1, ch
        out.append(ch)  # InfluxDB keeps a backslash that escapes nothing
        i += 1
    return "".join(out), i, ""


def parse_escaped(line: str) -> tuple[str, dict[str, str], dict[str, FieldValue], int]:
    """(measurement, tags, fields, ts) of a line, honouring every escape to_line writes.

    A backslash that escapes nothing is kept, as InfluxDB keeps it; ValueError on a bad line.
    """
    measurement, i, stop = _scan(line, 0, ", ", _MEASUREMENT_ESCAPES)
    tags: dict[str, str] = {}
    while stop == ",":
        key, i, stop = _scan(line, i, "=", _KEY_ESCAPES)
        if stop != "=" or not key:
            raise ValueError("missing tag key")
        value, i, stop = _scan(line, i, ", ", _KEY_ESCAPES)
        if not value:
            raise ValueError(f"missing tag value for {key!r}")
        tags[key] = value
    if stop != " ":
        raise ValueError("missing fields")
    fields: dict[str, FieldValue] = {}
    n = len(line)
    while True:
        key, i, stop = _scan(line, i, "=", _KEY_ESCAPES)
        if stop != "=" or not key:
            raise ValueError("missing field key")
        if i < n and line[i] == '"':
            out: list[str] = []
            i += 1
            while i < n and line[i] != '"':
                ch = line[i]
                if ch == "\\" and i + 1 < n and line[i + 1] in '"\\n':
                    out.append("\n" if line[i + 1] == "n" else line[i + 1])
                    i += 2
                else:
                    out.append(ch)
                    i += 1
            if i >= n:
                raise ValueError(f"unterminated string in field {key!r}")
            fields[key] = "".join(out)
            stop = line[i + 1] if i + 1 < n else ""
            i += 2
        else:
            raw, i, stop = _scan(line, i, ", ", frozenset())
            fields[key] = number(raw)
        if stop != ",":
            break
    if stop != " ":
        raise ValueError("missing timestamp")
    return measurement, tags, fields, int(line[i:])
