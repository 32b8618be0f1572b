"""The video StreamProcessor: camera frames, camera statuses and RFID reads into the video rules.

Never decide a rule here (streams.video does); this only translates records and findings.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from alerts.model import AlertSignal, AlertSink, Severity
from devices.decode import Decoded
from devices.points import Point
from streams.video import Finding, FrameFacts, VideoRules, VideoRuleSettings, WatchedReaders


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
    ) -> None:
        self.alerts = alerts
        self.rules = VideoRules(settings, watched_readers)
        self._lock = threading.Lock()

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        relevant = [d for d in batch if (d.topic.family, d.topic.kind) in _RELEVANT]
        if not relevant:
            return []
        relevant.sort(key=lambda d: _ts_of(d, now_ns))
        with self._lock:
            for item in relevant:
                self._emit(self._one(item, now_ns))
        return []

    def _one(self, item: Decoded, now_ns: int) -> list[Finding]:
        topic, record = item.topic, item.record
        if item.family == "rfid":
            return self.rules.rfid_read(topic.site, topic.device, _ts_of(item, now_ns))
        if item.kind == "status":
            return self.rules.status(
                topic.site, topic.device, bool(record.online), _ts_of(item, now_ns)
            )
        snapshot: Any = record.snapshot
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
        return self.rules.frame(facts)

    def tick(self, now_ns: int) -> list[Point]:
        with self._lock:
            self._emit(self.rules.tick(now_ns))
        return []

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
                        details={"camera": f.camera, **f.details},
                        evidence=f.evidence,
                    )
                )
            else:
                self.alerts.clear(f.rule, f.subject, f.at_ns)
