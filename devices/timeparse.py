"""Device timestamps: RFC 3339 with a zone, or epoch milliseconds, to UTC nanoseconds.

Never accept a naive time (no zone) or guess a zone: a wrong time is a wrong record.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from devices.errors import PayloadError

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
# 2000-01-01T00:00:00Z; hazwatch has no hardware older than that.
EARLIEST_NS = 946_684_800 * NS_PER_S
# A device clock ahead of the receiver by more than this is refused.
DEFAULT_MAX_FUTURE_S = 300.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def parse_ts(
    value: object,
    *,
    now_ns: int | None = None,
    max_future_s: float = DEFAULT_MAX_FUTURE_S,
    field: str = "ts",
) -> int:
    """Return the UTC epoch time in nanoseconds of a payload's `ts`.

    Accepts an RFC 3339 string with a zone (`2026-11-24T08:00:00.123+08:00`, `...Z`)
    or an integer number of epoch milliseconds. Rejects naive strings, floats that are not
    whole milliseconds, booleans, times before 2000 and times more than `max_future_s`
    ahead of `now_ns`.
    """
    if isinstance(value, bool):
        raise PayloadError(
            f"{field} must be RFC 3339 or epoch ms, got a boolean", reason="bad_ts", field=field
        )
    if isinstance(value, int):
        ts_ns = value * NS_PER_MS
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise PayloadError(
                f"{field} as a number must be whole epoch milliseconds, got {value!r}",
                reason="bad_ts",
                field=field,
            )
        ts_ns = int(value) * NS_PER_MS
    elif isinstance(value, str):
        ts_ns = _parse_rfc3339(value, field)
    else:
        raise PayloadError(
            f"{field} must be RFC 3339 or epoch ms, got {type(value).__name__}",
            reason="bad_ts",
            field=field,
        )
    if ts_ns < EARLIEST_NS:
        raise PayloadError(
            f"{field} is before 2000-01-01, got {value!r}", reason="bad_ts", field=field
        )
    if now_ns is not None and ts_ns > now_ns + int(max_future_s * NS_PER_S):
        ahead_s = (ts_ns - now_ns) / NS_PER_S
        raise PayloadError(
            f"{field} is {ahead_s:.0f} s in the future (device clock?), got {value!r}",
            reason="future_ts",
            field=field,
        )
    return ts_ns


def _parse_rfc3339(text: str, field: str) -> int:
    raw = text.strip()
    if len(raw) < 20 or raw[10] not in "Tt ":
        raise PayloadError(
            f"{field} is not RFC 3339 with a zone, got {text!r}", reason="bad_ts", field=field
        )
    try:
        parsed = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw)
    except ValueError:
        raise PayloadError(
            f"{field} is not RFC 3339 with a zone, got {text!r}", reason="bad_ts", field=field
        ) from None
    if parsed.tzinfo is None:
        raise PayloadError(f"{field} has no time zone, got {text!r}", reason="bad_ts", field=field)
    # datetime keeps microseconds; recover nanoseconds from the text when it has them.
    micros = (parsed - _EPOCH) // _MICROSECOND
    seconds, frac_ns = divmod(micros, 1_000_000)
    frac_ns *= 1000
    dot = raw.find(".", 19)
    if dot == 19:
        end = dot + 1
        while end < len(raw) and raw[end].isdigit():
            end += 1
        digits = raw[dot + 1 : end]
        if 6 < len(digits) <= 9:
            frac_ns = int(digits.ljust(9, "0"))
    return seconds * NS_PER_S + frac_ns


def format_ts(ts_ns: int) -> str:
    """RFC 3339 UTC with milliseconds, for messages and reports."""
    dt = datetime.fromtimestamp(ts_ns // NS_PER_S, tz=UTC)
    ms = (ts_ns % NS_PER_S) // NS_PER_MS
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"
