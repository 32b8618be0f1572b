"""Video rules on frame metadata: camera offline, frame gaps, tamper, door motion with no RFID read.

Never read a clock or do I/O here: time is an argument, findings are returned to the caller.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

NS_PER_S = 1_000_000_000

# rule ids (alerts, API, screen)
CAMERA_OFFLINE = "camera_offline"
FRAME_GAP = "frame_gap"
TAMPER_OCCLUSION = "tamper_occlusion"
TAMPER_DEFOCUS = "tamper_defocus"
TAMPER_SCENE_CHANGE = "tamper_scene_change"
CAMERA_TOO_DARK = "camera_too_dark"
DOOR_MOTION_NO_READ = "door_motion_no_read"
RULES = (
    CAMERA_OFFLINE,
    FRAME_GAP,
    TAMPER_OCCLUSION,
    TAMPER_DEFOCUS,
    TAMPER_SCENE_CHANGE,
    CAMERA_TOO_DARK,
    DOOR_MOTION_NO_READ,
)

TAMPER_RULES = (TAMPER_OCCLUSION, CAMERA_TOO_DARK, TAMPER_SCENE_CHANGE, TAMPER_DEFOCUS)

WatchedReaders = Callable[[str, str], list[str]]


@dataclass(frozen=True, slots=True)
class VideoRuleSettings:
    offline_after_s: float = 30.0  # no frame this long: offline
    gap_min_missing: int = 1  # seq jumps that skip at least this many messages
    occlusion_on: float = 0.6
    scene_change_on: float = 0.35
    too_dark_brightness: float = 15.0
    defocus_ratio: float = 0.35  # sharpness under this share of the camera's own baseline
    defocus_min_baseline: float = 20.0  # a baseline this low says nothing about focus
    baseline_frames: int = 5  # frames before a sharpness baseline is trusted
    baseline_adapt: float = 0.05
    persist_frames: int = 2  # a tamper condition must hold on this many messages in a row
    door_motion_on: float = 0.02
    door_window_s: float = 60.0  # a read this close (before or after) explains door motion


class FrameFacts(NamedTuple):
    """What the rules need of one frame message (devices.camera.Frame, flattened).

    A NamedTuple, not a frozen dataclass: one is made per camera frame on the hot path, and a
    frozen dataclass sets each of its eleven fields through object.__setattr__.
    """

    site: str
    camera: str
    ts_ns: int
    seq: int
    brightness: float | None = None
    sharpness: float | None = None
    motion: float | None = None
    occlusion: float | None = None
    scene_change: float | None = None
    snapshot: str | None = None
    event: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """Raise (`active`) or clear a (rule, subject) condition; `evidence` is a snapshot name."""

    rule: str
    site: str
    camera: str
    active: bool
    at_ns: int
    message: str = ""
    severity: str = "warning"
    evidence: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return subject_of(self.site, self.camera)


def subject_of(site: str, camera: str) -> str:
    return f"{site}/{camera}"


@dataclass(slots=True)
class _Camera:
    last_ts_ns: int = 0
    last_seq: int | None = None
    online: bool = True
    offline_raised: bool = False
    baseline_sharpness: float | None = None
    baseline_n: int = 0
    streak: dict[str, int] = field(default_factory=dict)
    raised: set[str] = field(default_factory=set)
    in_door_motion: bool = False
    last_evidence: str | None = None
    # rules whose state this process has not yet said: an alert opened before a restart is
    # cleared by the first frame that shows the condition gone
    unsaid: set[str] = field(default_factory=lambda: {CAMERA_OFFLINE, *TAMPER_RULES})


@dataclass(slots=True)
class _DoorMotion:
    site: str
    camera: str
    at_ns: int
    readers: tuple[str, ...]
    evidence: str | None
    motion: float


class VideoRules:
    """Per-camera state and the video rules. Feed frames, statuses and RFID reads; tick for time."""

    def __init__(
        self,
        settings: VideoRuleSettings | None = None,
        watched_readers: WatchedReaders | None = None,
    ) -> None:
        self.settings = settings or VideoRuleSettings()
        self.watched_readers: WatchedReaders = watched_readers or (lambda site, camera: [])
        self.cameras: dict[tuple[str, str], _Camera] = {}
        self.last_read_ns: dict[tuple[str, str], int] = {}  # (site, reader) -> latest read time
        self.read_times: dict[tuple[str, str], list[int]] = {}
        self.pending: list[_DoorMotion] = []

    def _camera(self, site: str, camera: str) -> _Camera:
        return self.cameras.setdefault((site, camera), _Camera())

    # ── inputs ──

    def rfid_read(self, site: str, reader: str, ts_ns: int) -> list[Finding]:
        """A tag read at a reader: it may explain door motion already seen or still to come."""
        key = (site, reader)
        times = self.read_times.setdefault(key, [])
        # Kept sorted: a busy gate reports many reads a second, so no full rescan per read.
        insort(times, ts_ns)
        window = int(self.settings.door_window_s * NS_PER_S)
        latest = times[-1]
        stale = bisect_left(times, latest - 2 * window)
        if stale:
            del times[:stale]
        self.last_read_ns[key] = latest
        if self.pending:
            self.pending = [
                p
                for p in self.pending
                if not (p.site == site and reader in p.readers and abs(ts_ns - p.at_ns) <= window)
            ]
        return []

    def status(self, site: str, camera: str, online: bool, at_ns: int) -> list[Finding]:
        cam = self._camera(site, camera)
        cam.online = online
        if not online and not cam.offline_raised:
            cam.offline_raised = True
            cam.unsaid.discard(CAMERA_OFFLINE)
            return [
                Finding(
                    CAMERA_OFFLINE,
                    site,
                    camera,
                    True,
                    at_ns,
                    f"camera {camera} at {site} went offline (status)",
                    "major",
                )
            ]
        if online and cam.offline_raised:
            cam.offline_raised = False
            return [Finding(CAMERA_OFFLINE, site, camera, False, at_ns)]
        return []

    def _offline_ns(self) -> int:
        return int(self.settings.offline_after_s * NS_PER_S)

    def frame(self, f: FrameFacts) -> list[Finding]:
        s = self.settings
        cam = self._camera(f.site, f.camera)
        if f.ts_ns <= cam.last_ts_ns:
            return []  # redelivered or older than what this camera already said
        out: list[Finding] = []
        if cam.offline_raised or CAMERA_OFFLINE in cam.unsaid:
            cam.offline_raised = False
            cam.unsaid.discard(CAMERA_OFFLINE)
            out.append(Finding(CAMERA_OFFLINE, f.site, f.camera, False, f.ts_ns))
        cam.online = True
        if cam.last_seq is not None and f.seq > cam.last_seq + s.gap_min_missing:
            missing = f.seq - cam.last_seq - 1
            out.append(
                Finding(
                    FRAME_GAP,
                    f.site,
                    f.camera,
                    True,
                    f.ts_ns,
                    f"camera {f.camera}: {missing} frame message(s) missing "
                    f"(seq {cam.last_seq} → {f.seq})",
                    details={"missing": missing, "from_seq": cam.last_seq, "to_seq": f.seq},
                )
            )
        # seq going back with newer time: the agent restarted, not a gap
        cam.last_seq = f.seq
        cam.last_ts_ns = f.ts_ns
        if f.snapshot:
            cam.last_evidence = f.snapshot

        occluded = f.occlusion is not None and f.occlusion >= s.occlusion_on
        dark = f.brightness is not None and f.brightness < s.too_dark_brightness
        moved = (
            not occluded
            and not dark
            and f.scene_change is not None
            and f.scene_change >= s.scene_change_on
        )
        defocus = False
        if f.sharpness is not None and not occluded and not dark:
            base = cam.baseline_sharpness
            trusted = base is not None and cam.baseline_n >= s.baseline_frames
            if trusted and base is not None and base >= s.defocus_min_baseline:
                defocus = f.sharpness < s.defocus_ratio * base
            if not defocus and not moved:
                if base is None:
                    cam.baseline_sharpness = f.sharpness
                else:
                    a = max(s.baseline_adapt, 1.0 / (cam.baseline_n + 1))
                    cam.baseline_sharpness = (1 - a) * base + a * f.sharpness
                cam.baseline_n += 1
        conditions = (
            (TAMPER_OCCLUSION, occluded, "lens covered", "major", f.occlusion),
            (CAMERA_TOO_DARK, dark, "too dark to see", "warning", f.brightness),
            (TAMPER_SCENE_CHANGE, moved, "view changed (camera moved?)", "major", f.scene_change),
            (TAMPER_DEFOCUS, defocus, "out of focus", "warning", f.sharpness),
        )
        streak, unsaid, raised = cam.streak, cam.unsaid, cam.raised
        for rule, now_on, what, severity, value in conditions:
            # the usual frame: condition off and nothing to end (most frames, every camera)
            if now_on or streak.get(rule) or rule in unsaid or rule in raised:
                out.extend(self._persisting(cam, f, rule, now_on, what, severity, value))
        out.extend(self._door(cam, f))
        return out

    def _persisting(
        self,
        cam: _Camera,
        f: FrameFacts,
        rule: str,
        on: bool,
        what: str,
        severity: str,
        value: float | None,
    ) -> list[Finding]:
        streak = cam.streak.get(rule, 0) + 1 if on else 0
        cam.streak[rule] = streak
        if not on and rule in cam.unsaid:
            cam.unsaid.discard(rule)
            return [Finding(rule, f.site, f.camera, False, f.ts_ns)]
        if on and streak >= self.settings.persist_frames and rule not in cam.raised:
            cam.raised.add(rule)
            cam.unsaid.discard(rule)
            return [
                Finding(
                    rule,
                    f.site,
                    f.camera,
                    True,
                    f.ts_ns,
                    f"camera {f.camera} at {f.site}: {what}",
                    severity,
                    evidence=f.snapshot or cam.last_evidence,
                    details={"value": value, "seq": f.seq},
                )
            ]
        if not on and rule in cam.raised:
            cam.raised.discard(rule)
            return [Finding(rule, f.site, f.camera, False, f.ts_ns)]
        return []

    def _door(self, cam: _Camera, f: FrameFacts) -> list[Finding]:
        s = self.settings
        moving = f.motion is not None and f.motion >= s.door_motion_on
        started = moving and not cam.in_door_motion
        cam.in_door_motion = moving
        if not started:
            return []
        readers = tuple(self.watched_readers(f.site, f.camera))
        if not readers:
            return []
        window = int(s.door_window_s * NS_PER_S)
        for reader in readers:
            if any(abs(t - f.ts_ns) <= window for t in self.read_times.get((f.site, reader), [])):
                return []
        self.pending.append(
            _DoorMotion(
                f.site, f.camera, f.ts_ns, readers, f.snapshot or cam.last_evidence, f.motion or 0.0
            )
        )
        return []

    # ── time ──

    def tick(self, now_ns: int) -> list[Finding]:
        """Door motion whose window passed with no read; cameras silent past `offline_after_s`."""
        s = self.settings
        out: list[Finding] = []
        window = int(s.door_window_s * NS_PER_S)
        still: list[_DoorMotion] = []
        for p in self.pending:
            if now_ns - p.at_ns <= window:
                still.append(p)
                continue
            out.append(
                Finding(
                    DOOR_MOTION_NO_READ,
                    p.site,
                    p.camera,
                    True,
                    p.at_ns,
                    f"movement at the storage door seen by {p.camera} at {p.site} with no RFID "
                    f"read at {', '.join(p.readers)} within {s.door_window_s:.0f} s",
                    "major",
                    evidence=p.evidence,
                    details={"readers": list(p.readers), "motion": p.motion},
                )
            )
        self.pending = still
        for (site, camera), cam in self.cameras.items():
            silent = cam.last_ts_ns and now_ns - cam.last_ts_ns > self._offline_ns()
            if silent and not cam.offline_raised:
                cam.offline_raised = True
                out.append(
                    Finding(
                        CAMERA_OFFLINE,
                        site,
                        camera,
                        True,
                        now_ns,
                        f"camera {camera} at {site}: no frame for more than "
                        f"{s.offline_after_s:.0f} s",
                        "major",
                        details={"last_frame_ns": cam.last_ts_ns},
                    )
                )
        return out
