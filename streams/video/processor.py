"""The video StreamProcessor: camera frames, camera statuses and RFID reads into the video rules,
and each camera's per-minute summary (`video_minute`, streams/video/minutes.py).

Never decide a rule here (rules.py does); this only translates records, findings and the
point-store answers that confirm candidates (asked off the batch path, on its own thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hazwatch.alerts.model import AlertSignal, AlertSink, Severity
from hazwatch.base.points import Point
from hazwatch.devices.decode import Decoded
from hazwatch.devices.rfid import reads_of
from hazwatch.ingest.interfaces import PointReader
from hazwatch.streams.video.minutes import METRICS, NS_PER_MIN, NS_PER_S, MinuteBook, summary
from hazwatch.streams.video.rules import (
    Confirmation,
    DoorCameras,
    Finding,
    FrameFacts,
    KnownOffline,
    QueryKey,
    Rows,
    VideoRules,
    WatchedReaders,
)
from hazwatch.streams.video.settings import VideoRuleSettings

log = logging.getLogger("hazwatch.video")


def ask(reader: PointReader, round_: Confirmation) -> dict[QueryKey, Rows | None]:
    """Run a round's queries; a query that fails is None (its candidates wait for a later one)."""
    answers: dict[QueryKey, Rows | None] = {}
    for key, query in round_.queries.items():
        try:
            answers[key] = reader.select(
                query.measurement,
                tags=dict(query.tags),
                fields=list(query.fields) if query.fields else None,
                start_ns=query.start_ns,
                end_ns=query.end_ns,
                limit=query.limit,
            )
        except Exception as exc:  # the store down or refusing: never lose the candidates
            log.warning("video: confirming %s in the point store failed: %s", key, exc)
            answers[key] = None
    return answers


Minute = tuple[str, str, int, bool]  # (site, camera, minute, replaces)


def sum_minutes(reader: PointReader, minutes: list[Minute], max_rows: int) -> list[Point | Minute]:
    """Each minute's point from the frames the store holds (none: no point); a minute whose
    read failed is returned as it was, to be due again."""
    out: list[Point | Minute] = []
    for site, camera, start, again in minutes:
        try:
            rows = reader.select(
                "video_frame",
                tags={"site": site, "camera": camera},
                fields=[*METRICS, "seq"],
                start_ns=start,
                end_ns=start + NS_PER_MIN,
                limit=max_rows,
            )
        except Exception as exc:  # the store down: the minute waits for a later tick
            log.warning("video: reading %s/%s's frames of a minute failed: %s", site, camera, exc)
            out.append((site, camera, start, again))
            continue
        point = summary(site, camera, start, rows, replaces=again)
        if point is not None:
            out.append(point)
    return out


@dataclass(slots=True)
class _Summing:
    """One round of minutes being read from the store on its own thread."""

    minutes: list[Minute]
    results: list[Point | Minute] = field(default_factory=list)
    thread: threading.Thread | None = None


@dataclass(slots=True)
class _Asking:
    """One confirmation round in flight on its own thread."""

    round_: Confirmation
    answers: dict[QueryKey, Rows | None] = field(default_factory=dict)
    thread: threading.Thread | None = None


def _ts_of(item: Decoded, now_ns: int) -> int:
    ts = getattr(item.record, "ts", None)
    return ts if isinstance(ts, int) and ts > 0 else now_ns


_RELEVANT = frozenset({("camera", "frame"), ("camera", "status"), ("rfid", "read")})


class VideoProcessor:
    """StreamProcessor `video`: per-camera continuity and tamper, door motion against RFID reads."""

    name = "video"

    def __init__(
        self,
        alerts: AlertSink,
        *,
        settings: VideoRuleSettings | None = None,
        watched_readers: WatchedReaders | None = None,
        reader: PointReader | None = None,
        door_cameras: DoorCameras | None = None,
        camera_silent_s: float = 30.0,
        known_offline: KnownOffline | None = None,
    ) -> None:
        """`reader`: the shared point store, to confirm frame gaps and door motion that messages
        to other workers may explain. Without it this worker judges on what it saw.
        `door_cameras`, `camera_silent_s` and `known_offline`: for blind_read (VideoRules)."""
        self.alerts = alerts
        self.reader = reader
        self.rules = VideoRules(
            settings,
            watched_readers,
            confirm=reader is not None,
            door_cameras=door_cameras,
            camera_silent_s=camera_silent_s,
            known_offline=known_offline,
        )
        self._lock = threading.Lock()
        self._asking: _Asking | None = None
        rules = settings or VideoRuleSettings()
        self._max_rows = rules.confirm_max_rows
        self.minutes = MinuteBook(
            grace_ns=int(rules.confirm_grace_s * NS_PER_S),
            quiet_ns=int(rules.minute_quiet_s * NS_PER_S),
        )
        self._summing: _Summing | None = None

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        relevant: list[tuple[int, Decoded, str]] = []
        for d in batch:
            if (d.topic.family, d.topic.kind) not in _RELEVANT:
                continue
            if d.topic.family == "rfid":  # a reader's own event message may hold several reads
                relevant.extend((read.ts, d, read.epc) for read in reads_of(d.record))
            else:
                relevant.append((_ts_of(d, now_ns), d, ""))
        if not relevant:
            return []
        relevant.sort(key=lambda entry: entry[0])
        with self._lock:
            for ts_ns, item, epc in relevant:
                findings = self._one(item, ts_ns, now_ns, epc)
                if findings:
                    self._emit(findings)
        return []

    def _one(self, item: Decoded, ts_ns: int, now_ns: int, epc: str) -> list[Finding]:
        topic, record = item.topic, item.record
        if item.family == "rfid":
            return self.rules.rfid_read(topic.site, topic.device, ts_ns, now_ns, epc)
        if item.kind == "status":
            return self.rules.status(topic.site, topic.device, bool(record.online), ts_ns)
        snapshot: Any = record.snapshot
        if self.reader is not None:
            self.minutes.saw(topic.site, topic.device, int(record.ts), now_ns)
        facts = FrameFacts(
            site=topic.site,
            camera=topic.device,
            ts_ns=int(record.ts),
            seq=int(record.seq),
            brightness=record.brightness,
            sharpness=record.sharpness,
            motion=record.motion,
            occlusion=record.occlusion,
            scene_change=record.scene_change,
            snapshot=snapshot.name if snapshot is not None else None,
            event=record.event,
        )
        return self.rules.frame(facts, now_ns)

    def tick(self, now_ns: int) -> list[Point]:
        """Time rules; the last confirmation round's verdicts; the next round started.

        The store is asked on a thread of its own: tick runs under the pipeline's processor
        lock, so a slow store must not hold up batches. At most one round is in flight.
        """
        with self._lock:
            findings = self.rules.tick(now_ns)
            asking = self._asking
            if asking is not None and (asking.thread is None or not asking.thread.is_alive()):
                if asking.thread is not None:
                    asking.thread.join()
                findings += self.rules.settle(asking.round_, asking.answers)
                self._asking = None
            if self.reader is not None and self._asking is None:
                round_ = self.rules.take_due(now_ns)
                if round_:
                    self._asking = self._start_asking(self.reader, round_)
            self._emit(findings)
            return self._minutes(now_ns)

    def _minutes(self, now_ns: int) -> list[Point]:
        """The minutes the last round computed (their points), and the next round started on
        a thread of its own, like the confirmations: the store is read off the batch path."""
        points: list[Point] = []
        summing = self._summing
        if summing is not None and (summing.thread is None or not summing.thread.is_alive()):
            if summing.thread is not None:
                summing.thread.join()
            for item in summing.results:
                if isinstance(item, Point):
                    points.append(item)
                else:
                    self.minutes.reopen(item[0], item[1], item[2], now_ns, item[3])
            self._summing = None
        if self.reader is not None and self._summing is None:
            due = self.minutes.due(now_ns)
            if due:
                self._summing = self._start_summing(self.reader, due)
        return points

    def _start_summing(self, reader: PointReader, minutes: list[Minute]) -> _Summing:
        summing = _Summing(minutes)
        max_rows = self._max_rows

        def run() -> None:
            summing.results = sum_minutes(reader, minutes, max_rows)

        summing.thread = threading.Thread(target=run, name="hazwatch-video-minutes", daemon=True)
        summing.thread.start()
        return summing

    def _start_asking(self, reader: PointReader, round_: Confirmation) -> _Asking:
        asking = _Asking(round_)

        def run() -> None:
            asking.answers = ask(reader, round_)

        asking.thread = threading.Thread(target=run, name="hazwatch-video-confirm", daemon=True)
        asking.thread.start()
        return asking

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait for a confirmation round in flight; candidates still waiting live in memory only,
        like the rest of this processor's state, and are not carried over a restart."""
        asking = self._asking
        if asking is not None and asking.thread is not None:
            asking.thread.join(timeout_s)
        summing = self._summing
        if summing is not None and summing.thread is not None:
            summing.thread.join(timeout_s)

    def _emit(self, findings: list[Finding]) -> None:
        for f in findings:
            if f.active:
                self.alerts.raise_alert(
                    AlertSignal(
                        rule=f.rule,
                        subject=f.subject,
                        severity=Severity(f.severity),
                        message=f.message,
                        site=f.site,
                        at_ns=f.at_ns,
                        details={"camera": f.camera, **f.details}
                        if f.reader is None
                        else dict(f.details),
                        evidence=f.evidence,
                    )
                )
            else:
                self.alerts.clear(f.rule, f.subject, f.at_ns)
