"""Device timestamps: RFC 3339 with a zone, or epoch milliseconds, to UTC nanoseconds.

Never accept a naive time (no zone), guess a zone, or return a time InfluxDB cannot store.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

from hazwatch.base.errors import PayloadError, shown

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
# China Standard Time, UTC+8: the zone the center's officers, reports and devices speak
CHINA = timezone(timedelta(hours=8))
# 2000-01-01T00:00:00Z; hazwatch has no hardware older than that.
EARLIEST_NS = 946_684_800 * NS_PER_S
# 2262-04-11T23:47:16.854775807Z: the last nanosecond a signed 64-bit time holds (InfluxDB's).
LATEST_NS = 2**63 - 1
EARLIEST_MS = EARLIEST_NS // NS_PER_MS
LATEST_MS = LATEST_NS // NS_PER_MS
# A device clock ahead of the receiver by more than this is refused.
DEFAULT_MAX_FUTURE_S = 300.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# What datetime can format: 0001-01-01 .. 9999-12-31 (format_ts falls back to the number).
_FORMAT_MIN_S = -62_135_596_800
_FORMAT_MAX_S = 253_402_300_799


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
    whole milliseconds, booleans, times before 2000, times past 2262-04-11 (not a 64-bit
    nanosecond) and times more than `max_future_s` ahead of `now_ns`.
    """
    if isinstance(value, bool):
        raise PayloadError(
            f"{field} must be RFC 3339 or epoch ms, got a boolean", reason="bad_ts", field=field
        )
    if isinstance(value, int):
        ts_ns = value * NS_PER_MS
    elif isinstance(value, float):
        # compared as a float first: int(1e308) is a 300-digit integer
        finite = math.isfinite(value)
        if finite and not EARLIEST_MS <= value <= LATEST_MS:
            raise _out_of_range(value, field, early=value < EARLIEST_MS)
        if not finite or value != int(value):
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
    check_ts_ns(ts_ns, field, value)
    if now_ns is not None and ts_ns > now_ns + int(max_future_s * NS_PER_S):
        raise future_error(ts_ns, now_ns, max_future_s, field)
    return ts_ns


def check_ts_ns(ts_ns: int, field: str, raw: object) -> int:
    """`ts_ns` when it lies in [2000-01-01, 2262-04-11]; PayloadError (bad_ts) naming `raw`."""
    if not EARLIEST_NS <= ts_ns <= LATEST_NS:
        raise _out_of_range(raw, field, early=ts_ns < EARLIEST_NS)
    return ts_ns


class FutureTimeError(PayloadError):
    """A device time too far ahead of the receiver's clock (reason future_ts); `ts_ns` is that
    time, so that the device's clock offset is still measured from the refused message."""

    def __init__(self, message: str, ts_ns: int, field: str) -> None:
        super().__init__(message, reason="future_ts", field=field)
        self.ts_ns = ts_ns


def future_error(
    ts_ns: int, now_ns: int, max_future_s: float, field: str = "ts", lead_ns: int = 0
) -> FutureTimeError:
    """The PayloadError of a time ahead of the receiver's clock (safe for any integer).

    `lead_ns`: how far ahead the device's clock is measured to run (allowed besides)."""
    ahead_s = (ts_ns - now_ns) // NS_PER_S  # integer: a float division can overflow
    measured = f", its clock measured {lead_ns // NS_PER_S} s fast" if lead_ns else ""
    return FutureTimeError(
        f"{field} {format_ts(ts_ns)} is {shown(ahead_s)} s ahead of the receiver's clock "
        f"(more than {max_future_s:.0f} s{measured}: device clock wrong?)",
        ts_ns,
        field,
    )


def _out_of_range(value: object, field: str, *, early: bool) -> PayloadError:
    where = (
        "before 2000-01-01"
        if early
        else "after 2262-04-11, past what a 64-bit nanosecond time holds"
    )
    return PayloadError(f"{field} is {where}, got {shown(value)}", reason="bad_ts", field=field)


def _parse_rfc3339(text: str, field: str) -> int:
    raw = text.strip()
    if len(raw) < 20 or raw[10] not in "Tt ":
        raise PayloadError(
            f"{field} is not RFC 3339 with a zone, got {shown(text)}", reason="bad_ts", field=field
        )
    try:
        parsed = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1] in "Zz" else raw)
    except ValueError:
        raise PayloadError(
            f"{field} is not RFC 3339 with a zone, got {shown(text)}", reason="bad_ts", field=field
        ) from None
    if parsed.tzinfo is None:
        raise PayloadError(
            f"{field} has no time zone, got {shown(text)}", reason="bad_ts", field=field
        )
    # datetime keeps microseconds; recover nanoseconds from the text when it has them.
    try:
        # 9999-12-31T23:59:59-23:59 is a valid string whose UTC time no datetime holds
        micros = (parsed - _EPOCH) // _MICROSECOND
    except (OverflowError, ValueError):
        raise _out_of_range(text, field, early=parsed.year < 2000) from None
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
    """RFC 3339 UTC with milliseconds, for messages and reports; never raises on an int."""
    seconds = ts_ns // NS_PER_S
    if not _FORMAT_MIN_S <= seconds <= _FORMAT_MAX_S:
        return f"{shown(ts_ns)} ns since 1970 (no calendar date)"
    dt = _EPOCH + timedelta(seconds=seconds)
    ms = (ts_ns % NS_PER_S) // NS_PER_MS
    return f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}.{ms:03d}Z"
