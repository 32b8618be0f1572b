"""Points as InfluxDB stores them (measurement, tags, fields, time) and their line protocol.

Never put a value that identifies a real-world thing in a field: identity lives in tags + time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FieldValue = float | int | bool | str

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

    def identity(self) -> tuple[str, tuple[tuple[str, str], ...], int]:
        return (self.measurement, tuple(sorted(self.tags.items())), self.ts_ns)

    def to_line(self) -> str:
        return to_line(self.measurement, self.tags, self.fields, self.ts_ns)


_ESCAPED: dict[str, str] = {}
_ESCAPED_MAX = 200_000


def escape_tag(value: str) -> str:
    """Escape a tag key or value (cached: the same few thousand tags recur on the hot path)."""
    escaped = _ESCAPED.get(value)
    if escaped is None:
        escaped = value.translate(_TAG_ESCAPE)
        if len(_ESCAPED) < _ESCAPED_MAX:
            _ESCAPED[value] = escaped
    return escaped


def _field(value: FieldValue) -> str:
    kind = type(value)
    if kind is float:
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return f"{value}i"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def to_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts_ns: int
) -> str:
    """Line protocol for one point; tags sorted, empty tag values and None fields left out."""
    esc = escape_tag
    head = measurement.translate(_MEAS_ESCAPE) + "".join(
        [f",{esc(key)}={esc(tags[key])}" for key in sorted(tags) if tags[key]]
    )
    body = ",".join(
        [f"{esc(key)}={_field(value)}" for key, value in fields.items() if value is not None]
    )
    if not body:
        raise ValueError(f"point {measurement} at {ts_ns} has no fields")
    return f"{head} {body} {ts_ns}"


def parse_line(line: str) -> Point:
    """Inverse of to_line for the subset hazwatch writes (used by the embedded store and tests)."""
    head, body, ts = _split_unescaped(line, " ", 2)
    meas_and_tags = _split_unescaped(head, ",")
    measurement = _unescape(meas_and_tags[0])
    tags: dict[str, str] = {}
    for pair in meas_and_tags[1:]:
        key, value = _split_unescaped(pair, "=", 1)
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, FieldValue] = {}
    for pair in _split_fields(body):
        key, raw = _split_unescaped(pair, "=", 1)
        fields[_unescape(key)] = _parse_field(raw)
    return Point(measurement, tags, fields, int(ts))


def _parse_field(raw: str) -> FieldValue:
    if raw.startswith('"'):
        inner = raw[1:-1]
        out: list[str] = []
        i = 0
        while i < len(inner):
            ch = inner[i]
            if ch == "\\" and i + 1 < len(inner):
                nxt = inner[i + 1]
                out.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)
    if raw in ("true", "t", "T", "True", "TRUE"):
        return True
    if raw in ("false", "f", "F", "False", "FALSE"):
        return False
    if raw.endswith("i"):
        return int(raw[:-1])
    return float(raw)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("\n" if nxt == "n" else nxt)
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _split_unescaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    parts: list[str] = []
    start = 0
    i = 0
    in_quotes = False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _split_fields(body: str) -> list[str]:
    return _split_unescaped(body, ",")
