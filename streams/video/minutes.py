"""The per-minute video summary (`video_minute`), pure: which of a camera's minutes are due, and
a minute's point from its frames (the frame count; mean and max of brightness, sharpness,
motion and occlusion).

Never sum frames as they pass: a minute is computed from the frames the point store holds for
it (every worker's, each once), so a redelivery, a second worker or a late frame makes the same
minute again, written as a replacement when it was written before (docs/retention.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hazwatch.base.points import FieldValue, Point

MEASUREMENT = "video_minute"
METRICS = ("brightness", "sharpness", "motion", "occlusion")
NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S

Camera = tuple[str, str]  # (site, camera)


def minute_of(ts_ns: int) -> int:
    """The UTC minute a time is in (a China-time minute too: UTC+8 is whole hours)."""
    return ts_ns - ts_ns % NS_PER_MIN


def summary(
    site: str,
    camera: str,
    minute_ns: int,
    frames: Iterable[Mapping[str, Any]],
    *,
    replaces: bool = False,
) -> Point | None:
    """The minute's point from rows of `video_frame` (`time` and the metrics; rows outside the
    minute and a second row of one time are not counted); None when it has no frame."""
    end = minute_ns + NS_PER_MIN
    by_time = {int(r["time"]): r for r in frames if minute_ns <= int(r["time"]) < end}
    if not by_time:
        return None
    fields: dict[str, FieldValue] = {"frames": len(by_time)}
    for metric in METRICS:
        values = [
            float(v)
            for r in by_time.values()
            if isinstance(v := r.get(metric), int | float) and not isinstance(v, bool)
        ]
        if values:
            fields[f"{metric}_mean"] = sum(values) / len(values)
            fields[f"{metric}_max"] = max(values)
    tags = {"site": site, "camera": camera}
    return Point(MEASUREMENT, tags, fields, minute_ns, replaces=replaces)


@dataclass(slots=True)
class _Open:
    touched_ns: int  # receiver's clock: the last frame of this minute seen
    passed_ns: int | None = None  # receiver's clock: when a frame after its end was seen
    again: bool = False  # written before: the new point replaces it


@dataclass(slots=True)
class MinuteBook:
    """Each camera's minutes open, and those closed lately (memory only, bounded).

    A minute is due `grace_ns` (receiver's clock) after the camera sent a frame past its end,
    so batches in flight on other workers are stored, or `quiet_ns` after its last frame when
    the camera went quiet. A frame of a minute closed already opens it again as a replacement;
    so does a camera's first frame since start for the minute before it (a minute a restart
    cut). Older minutes are forgotten past `keep_closed` per camera.
    """

    grace_ns: int
    quiet_ns: int
    keep_closed: int = 240
    open: dict[Camera, dict[int, _Open]] = field(default_factory=dict)
    closed: dict[Camera, dict[int, None]] = field(default_factory=dict)

    def saw(self, site: str, camera: str, ts_ns: int, now_ns: int) -> None:
        key = (site, camera)
        minute = minute_of(ts_ns)
        minutes = self.open.get(key)
        if minutes is None:
            minutes = self.open[key] = {}
            if key not in self.closed:  # first frame since start: the minute before may be cut
                self.closed[key] = {}
                minutes[minute - NS_PER_MIN] = _Open(now_ns, now_ns, again=True)
        entry = minutes.get(minute)
        if entry is None:
            again = minute in self.closed[key]
            entry = minutes[minute] = _Open(now_ns, again=again)
        else:
            entry.touched_ns = now_ns
        for start, other in minutes.items():
            if other.passed_ns is None and start + NS_PER_MIN <= ts_ns:
                other.passed_ns = now_ns

    def due(self, now_ns: int) -> list[tuple[str, str, int, bool]]:
        """(site, camera, minute, replaces) of the minutes to compute now; they are closed."""
        found: list[tuple[str, str, int, bool]] = []
        for key, minutes in self.open.items():
            ready = [
                start
                for start, entry in minutes.items()
                if (entry.passed_ns is not None and now_ns - entry.passed_ns >= self.grace_ns)
                or now_ns - entry.touched_ns >= self.quiet_ns
            ]
            closed = self.closed.setdefault(key, {})
            for start in sorted(ready):
                found.append((key[0], key[1], start, minutes.pop(start).again))
                closed.pop(start, None)
                closed[start] = None
            while len(closed) > self.keep_closed:
                del closed[next(iter(closed))]
        return found

    def reopen(self, site: str, camera: str, minute_ns: int, now_ns: int, again: bool) -> None:
        """A minute whose computation failed (the store down): due again later."""
        self.open.setdefault((site, camera), {})[minute_ns] = _Open(now_ns, now_ns, again=again)
        self.closed.get((site, camera), {}).pop(minute_ns, None)
