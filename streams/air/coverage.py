"""How much of an hour a station's data covers, whatever its reporting interval: each record
covers its interval (or up to the next record), interval data first, real-time data where it
does not reach (GB 3095 Table 4: a 1-h mean needs ≥ 45 minutes; docs/air-standards.md).

Never read a clock or a store here; readings and intervals come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S
SOURCES = ("minute", "rtd")  # interval (HJ 212 CN 2051) data first, then real-time data
DEFAULT_INTERVAL_S = 60.0  # a record alone in its hour, of an interval not registered

# (source, ts_ns, pollutant, value): one valid value of one reading in the hour
HourReading = tuple[str, int, str, float]
Span = tuple[int, int]  # [start_ns, end_ns)


def spacing_s(times_ns: Sequence[int]) -> float | None:
    """The records' interval from their spacing: the median gap between consecutive ones
    (a missing record makes one gap twice as long, not the interval)."""
    ordered = sorted(set(times_ns))
    gaps = sorted(b - a for a, b in pairwise(ordered))
    if not gaps:
        return None
    return gaps[len(gaps) // 2] / NS_PER_S


def record_spans(times_ns: Sequence[int], interval_s: float, end_ns: int) -> list[Span]:
    """What each record covers: from its time for its interval, but not past the next record
    nor the end of the hour (a record's time is the start of the interval it covers, as an HJ
    212 interval record's DataTime is)."""
    ordered = sorted(times_ns)
    step = int(interval_s * NS_PER_S)
    spans: list[Span] = []
    for index, start in enumerate(ordered):
        end = min(start + step, end_ns)
        if index + 1 < len(ordered):
            end = min(end, ordered[index + 1])
        spans.append((start, max(start, end)))
    return spans


def subtract(span: Span, covered: Sequence[Span]) -> list[Span]:
    """The parts of `span` that none of the (sorted, disjoint) `covered` spans holds."""
    pieces: list[Span] = []
    start, end = span
    for c_start, c_end in covered:
        if c_end <= start or c_start >= end:
            continue
        if c_start > start:
            pieces.append((start, c_start))
        start = max(start, c_end)
        if start >= end:
            break
    if start < end:
        pieces.append((start, end))
    return pieces


def merge(spans: Sequence[Span]) -> list[Span]:
    """Sorted, disjoint spans covering what `spans` cover."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def covered_mean(
    readings: Sequence[HourReading],
    pollutant: str,
    hour_ns: int,
    intervals_s: Mapping[str, float] | None = None,
) -> tuple[float | None, float]:
    """The pollutant's mean over the hour, each value weighted by the time it covers, and the
    minutes covered (None as the mean when nothing is). Interval data is used where it covers
    the hour; real-time data fills the rest. `intervals_s` gives a source's interval (the
    registry's); a source not in it is timed by its records' spacing."""
    end_ns = hour_ns + NS_PER_HOUR
    covered: list[Span] = []
    weighted = 0.0
    total_ns = 0
    for source in SOURCES:
        records = sorted(
            (ts, v) for s, ts, p, v in readings if s == source and p == pollutant and ts < end_ns
        )
        if not records:
            continue
        times = [ts for ts, _ in records]
        interval = (intervals_s or {}).get(source) or spacing_s(times) or DEFAULT_INTERVAL_S
        spans = record_spans(times, interval, end_ns)
        for (_, value), span in zip(records, spans, strict=True):
            for start, end in subtract(span, covered):
                weighted += value * (end - start)
                total_ns += end - start
        covered = merge([*covered, *spans])
    if total_ns == 0:
        return None, 0.0
    return weighted / total_ns, total_ns / (60 * NS_PER_S)
