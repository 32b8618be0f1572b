"""Video rules on frame metadata: frame gaps, tamper, door motion with no RFID read, and its
converse, a read at a storage door no camera could see (blind_read).

Never read a clock or do I/O here: time is an argument, stored points are answers handed in.

A worker on a shared subscription sees only its share of a camera's frames and of the reads, so
a frame gap or door motion with no read is first a candidate: after `confirm_grace_s` it is
checked against the shared point store (queries described by `take_due`, answered by the
caller, judged by `settle`) and raised only if the store cannot explain it either.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hazwatch.alerts.model import Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of
from hazwatch.streams.video.settings import VideoRuleSettings

NS_PER_S = 1_000_000_000

# rule ids (alerts, API, screen). A camera that is offline is the presence part's
# device_offline (streams/presence/): one rule for every family's devices.
FRAME_GAP = "frame_gap"
TAMPER_OCCLUSION = "tamper_occlusion"
TAMPER_DEFOCUS = "tamper_defocus"
TAMPER_SCENE_CHANGE = "tamper_scene_change"
CAMERA_TOO_DARK = "camera_too_dark"
DOOR_MOTION_NO_READ = "door_motion_no_read"
BLIND_READ = "blind_read"
TAMPER_RULES = (TAMPER_OCCLUSION, CAMERA_TOO_DARK, TAMPER_SCENE_CHANGE, TAMPER_DEFOCUS)
# The readers whose reads a camera must see: a storage room's doors (devices/registry.py).
STORAGE_DOORS = frozenset({"storage_in", "storage_out"})
# What makes a camera blind to its door, by the tamper rule that finds it. Out of focus is not
# blind: a blurred picture still shows a person or a drum going through a door.
BLINDING = (
    (TAMPER_OCCLUSION, "covered"),
    (CAMERA_TOO_DARK, "too_dark"),
    (TAMPER_SCENE_CHANGE, "moved"),
)
OFFLINE = "offline"
BLIND_WORDS = {
    OFFLINE: ("离线", "offline"),
    "covered": ("被遮挡", "covered"),
    "too_dark": ("过暗", "too dark"),
    "moved": ("画面移位", "moved"),
}
MAX_BLIND_EPCS = 1000  # the tags said of one door while it is blind (one alert, repeated)

WatchedReaders = Callable[[str, str], list[str]]
# (site, camera) -> since when the presence part holds it offline (device_offline: its will
# or its silence, on every worker and across restarts; receiver's clock), None: it does not
KnownOffline = Callable[[str, str], int | None]
# (site, reader) -> (the reader's location kind, or None; the cameras whose `watches` name it)
DoorCameras = Callable[[str, str], tuple[str | None, tuple[str, ...]]]


# Each video rule, declared once (alerts and docs/rules.md are made from these); its
# thresholds are the defaults of VideoRuleSettings (settings.py: the settings file's [video]
# table, HAZWATCH_VIDEO__<NAME>).
def _spec(rule: str, severity: Severity, zh: str, en: str, *thresholds: str) -> RuleSpec:
    return RuleSpec(
        rule, "video", severity, "site/camera", zh, en, defaults_of(VideoRuleSettings, *thresholds)
    )


RULE_SPECS: tuple[RuleSpec, ...] = (
    _spec(
        FRAME_GAP,
        Severity.WARNING,
        "视频帧缺失：摄像机帧序号跳号，确认宽限期过后共享存储中也没有缺失的帧",
        "the camera's frame numbers skip messages that the shared point store does not have "
        "either, once the confirmation grace is over",
        "gap_min_missing",
        "confirm_grace_s",
    ),
    _spec(
        TAMPER_OCCLUSION,
        Severity.MAJOR,
        "镜头遮挡：画面被遮挡的比例连续多帧达到阈值（疑似人为遮挡）",
        "the lens is covered: the occluded share of the picture reaches the threshold on "
        "several frame messages in a row",
        "occlusion_on",
        "persist_frames",
    ),
    _spec(
        TAMPER_DEFOCUS,
        Severity.WARNING,
        "画面失焦：清晰度连续多帧低于该摄像机自身基线的一定比例（疑似被调焦或镜头脏污）",
        "out of focus: sharpness under a share of the camera's own baseline on several frame "
        "messages in a row (a baseline too low says nothing about focus)",
        "defocus_ratio",
        "defocus_min_baseline",
        "baseline_frames",
        "persist_frames",
    ),
    _spec(
        TAMPER_SCENE_CHANGE,
        Severity.MAJOR,
        "画面移位：画面与原场景相比变化超过阈值且持续多帧（疑似摄像机被转动或移动）",
        "the view changed beyond the threshold on several frame messages in a row (the camera "
        "moved?)",
        "scene_change_on",
        "persist_frames",
    ),
    _spec(
        CAMERA_TOO_DARK,
        Severity.WARNING,
        "画面过暗：画面亮度连续多帧低于阈值，无法看清现场",
        "too dark to see: brightness under the threshold on several frame messages in a row",
        "too_dark_brightness",
        "persist_frames",
    ),
    _spec(
        DOOR_MOTION_NO_READ,
        Severity.MAJOR,
        "出入无标签读取：贮存间门口摄像机检测到移动，前后时间窗内所监视的读写器无任何标签读取"
        "（疑似危废未经登记出入库）",
        "movement at a storage door with no RFID read at the readers the camera watches within "
        "the window before or after it",
        "door_motion_on",
        "door_window_s",
        "confirm_grace_s",
    ),
    RuleSpec(
        BLIND_READ,
        "video",
        Severity.MAJOR,
        "site/reader",
        "无人可见的出入库：贮存间出入口读写器读到标签时，监视该门的摄像机全部离线（按设备离线规则"
        "的 camera_silent_s）、镜头被遮挡、画面过暗或画面移位（按各篡改规则的阈值，持续多帧）；"
        "同一门口每个标签记一次，有摄像机恢复正常画面即自动解除",
        "an in or out read at a storage door (storage_in or storage_out reader) while every "
        "camera that watches the door is offline (presence's camera_silent_s), covered, too "
        "dark or moved (each tamper rule's threshold, on several frames in a row): movement "
        "no one could see; each tag once per door, cleared by a camera's next good frame",
        defaults_of(
            VideoRuleSettings,
            "occlusion_on",
            "too_dark_brightness",
            "scene_change_on",
            "persist_frames",
        ),
    ),
)
RULES = tuple(spec.id for spec in RULE_SPECS)
SEVERITY = {spec.id: spec.severity.value for spec in RULE_SPECS}  # Finding.severity's values


class FrameFacts(NamedTuple):
    """What the rules need of one frame message (hazwatch.devices.camera.Frame, flattened).

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
    reader: str | None = None  # what a door's rule is about (blind_read), else the camera

    @property
    def subject(self) -> str:
        return subject_of(self.site, self.reader or self.camera)


def subject_of(site: str, camera: str) -> str:
    return f"{site}/{camera}"


@dataclass(slots=True)
class _Camera:
    last_ts_ns: int = 0
    last_seq: int | None = None
    online: bool = True  # its last status said so (a will says not)
    last_received_ns: int = 0  # receiver's clock, of its last frame
    baseline_sharpness: float | None = None
    baseline_n: int = 0
    streak: dict[str, int] = field(default_factory=dict)
    raised: set[str] = field(default_factory=set)
    in_door_motion: bool = False
    last_evidence: str | None = None
    # rules whose state this process has not yet said: an alert opened before a restart is
    # cleared by the first frame that shows the condition gone (blind_read: of its doors)
    unsaid: set[str] = field(default_factory=lambda: {BLIND_READ, *TAMPER_RULES})


@dataclass(slots=True)
class _Gap:
    """Seqs between two frames this worker saw in a row: missing, or sent to another worker."""

    site: str
    camera: str
    from_seq: int
    to_seq: int
    from_ts_ns: int
    to_ts_ns: int
    due_ns: int  # receiver's clock


@dataclass(slots=True)
class _DoorMotion:
    """Motion at a watched door with no read this worker knows of (yet)."""

    site: str
    camera: str
    at_ns: int
    seq: int
    readers: tuple[str, ...]
    evidence: str | None
    motion: float
    due_ns: int  # receiver's clock
    # The frame before, as this worker saw it. When it is not seq - 1, the real one went to
    # another worker: whether this frame starts the motion is for the store to say.
    prev_ts_ns: int = 0
    prev_known: bool = True


FRAMES = "frames"
READS = "reads"
QueryKey = tuple[str, str, str]  # (FRAMES, site, camera) or (READS, site, reader)
Rows = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class PointQuery:
    """One read of the point store, in PointReader.select's terms (time in [start, end))."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[str, ...] | None
    start_ns: int
    end_ns: int
    limit: int


@dataclass(slots=True)
class Confirmation:
    """Candidates taken for one round and the queries (one per camera, one per reader) they need."""

    gaps: list[_Gap] = field(default_factory=list)
    doors: list[_DoorMotion] = field(default_factory=list)
    queries: dict[QueryKey, PointQuery] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.gaps or self.doors)


class VideoRules:
    """Per-camera state and the video rules. Feed frames, statuses and RFID reads; tick for time."""

    def __init__(
        self,
        settings: VideoRuleSettings | None = None,
        watched_readers: WatchedReaders | None = None,
        *,
        confirm: bool = False,
        door_cameras: DoorCameras | None = None,
        camera_silent_s: float = 30.0,
        known_offline: KnownOffline | None = None,
    ) -> None:
        """`confirm`: candidates wait for `take_due`/`settle` against the point store. Without
        it, tick() raises them after the grace period as one worker that sees everything.
        `door_cameras`: a reader's location and the cameras watching it (blind_read);
        `camera_silent_s`: a camera silent this long (receiver's clock) is offline, 0: only
        its will says so (the presence part's setting, handed in by the composition root);
        `known_offline`: since when the presence part holds a camera offline (a camera this
        worker has had no frame of is offline only when that says so)."""
        self.settings = settings or VideoRuleSettings()
        self.watched_readers: WatchedReaders = watched_readers or (lambda site, camera: [])
        self.door_cameras: DoorCameras = door_cameras or (lambda site, reader: (None, ()))
        self.camera_silent_ns = int(camera_silent_s * NS_PER_S)
        self.known_offline: KnownOffline = known_offline or (lambda site, camera: None)
        # (site, reader) -> the tags read there while every camera watching it was blind
        self.blind_doors: dict[tuple[str, str], set[str]] = {}
        self.confirm = confirm
        self.cameras: dict[tuple[str, str], _Camera] = {}
        self.last_read_ns: dict[tuple[str, str], int] = {}  # (site, reader) -> latest read time
        self.read_times: dict[tuple[str, str], list[int]] = {}
        self.pending: list[_DoorMotion] = []
        self.gaps: list[_Gap] = []

    def _camera(self, site: str, camera: str) -> _Camera:
        return self.cameras.setdefault((site, camera), _Camera())

    # ── inputs ──

    def rfid_read(
        self, site: str, reader: str, ts_ns: int, now_ns: int | None = None, epc: str = ""
    ) -> list[Finding]:
        """A tag read at a reader: it may explain door motion already seen or still to come,
        and at a storage door no camera can see it is blind_read. `now_ns`: when received."""
        received = ts_ns if now_ns is None else now_ns
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
        return self._blind_read(site, reader, ts_ns, received, epc)

    def _blind_read(
        self, site: str, reader: str, ts_ns: int, received_ns: int, epc: str
    ) -> list[Finding]:
        location, cameras = self.door_cameras(site, reader)
        if location not in STORAGE_DOORS or not cameras:
            return []  # no storage door, or no camera is meant to see it
        why = {camera: self.blind(site, camera, received_ns) for camera in cameras}
        if not all(why.values()):
            return []  # a camera saw it
        seen = self.blind_doors.setdefault((site, reader), set())
        if epc in seen or len(seen) >= MAX_BLIND_EPCS:
            return []  # this tag is said already (a pass is many reads)
        seen.add(epc)
        cams = ", ".join(f"{camera} {BLIND_WORDS[w][1]}" for camera, w in why.items() if w)
        return [
            Finding(
                BLIND_READ,
                site,
                cameras[0],
                True,
                ts_ns,
                f"{location.replace('_', ' ')} read of {epc or 'a tag'} at {reader} ({site}) "
                f"that no camera could see: {cams}",
                SEVERITY[BLIND_READ],
                evidence=self._evidence_of(site, cameras),
                details={
                    "reader": reader,
                    "location": location,
                    "epc": epc,
                    "cameras": dict(why),
                    "tags": len(seen),
                },
                reader=reader,
            )
        ]

    def blind(self, site: str, camera: str, now_ns: int) -> str | None:
        """Why `camera` cannot see its door now (OFFLINE, "covered", "too_dark", "moved"), or
        None when it can. Offline: its will, no frame for camera_silent_s (receiver's clock),
        or the presence part holding it offline; a camera this worker has had no frame of
        is offline only by its will or the presence part (as device_offline watches a
        device once it has been heard)."""
        cam = self.cameras.get((site, camera))
        silent = self.camera_silent_ns
        since = self.known_offline(site, camera)
        framed = cam.last_received_ns if cam is not None else 0
        if (since is not None and framed <= since) or (cam is not None and not cam.online):
            return OFFLINE  # a frame here after it went offline says it is back
        if cam is None or not framed:
            return None
        if silent and now_ns - framed > silent:
            return OFFLINE
        for rule, word in BLINDING:
            if rule in cam.raised:
                return word
        return None

    def _evidence_of(self, site: str, cameras: tuple[str, ...]) -> str | None:
        for camera in cameras:
            cam = self.cameras.get((site, camera))
            if cam is not None and cam.last_evidence:
                return cam.last_evidence
        return None

    def status(self, site: str, camera: str, online: bool, at_ns: int) -> list[Finding]:
        """A camera's status: a will (offline) makes it blind to its doors until a good frame.
        Raising device_offline is the presence part's."""
        self._camera(site, camera).online = online
        return []

    def _lookback_ns(self) -> int:
        """How far back a door motion's previous frame is looked for: once the camera was
        silent that long it was offline, and the motion starts anew."""
        return self.camera_silent_ns or 30 * NS_PER_S

    def frame(self, f: FrameFacts, now_ns: int | None = None) -> list[Finding]:
        """One frame; `now_ns` is when it was received (the grace runs from then)."""
        s = self.settings
        received = f.ts_ns if now_ns is None else now_ns
        cam = self._camera(f.site, f.camera)
        prev_ts = cam.last_ts_ns
        if f.ts_ns <= prev_ts:
            return []  # redelivered or older than what this camera already said
        out: list[Finding] = []
        cam.online = True
        cam.last_received_ns = max(cam.last_received_ns, received)
        prev_seq = cam.last_seq
        if prev_seq is not None and f.seq > prev_seq + s.gap_min_missing:
            # A candidate only: the seqs in between may have gone to another worker.
            received = f.ts_ns if now_ns is None else now_ns
            self.gaps.append(
                _Gap(
                    f.site,
                    f.camera,
                    prev_seq,
                    f.seq,
                    prev_ts,
                    f.ts_ns,
                    received + int(s.confirm_grace_s * NS_PER_S),
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
            (TAMPER_OCCLUSION, occluded, "lens covered", f.occlusion),
            (CAMERA_TOO_DARK, dark, "too dark to see", f.brightness),
            (TAMPER_SCENE_CHANGE, moved, "view changed (camera moved?)", f.scene_change),
            (TAMPER_DEFOCUS, defocus, "out of focus", f.sharpness),
        )
        streak, unsaid, raised = cam.streak, cam.unsaid, cam.raised
        for rule, now_on, what, value in conditions:
            # the usual frame: condition off and nothing to end (most frames, every camera)
            if now_on or streak.get(rule) or rule in unsaid or rule in raised:
                out.extend(self._persisting(cam, f, rule, now_on, what, value))
        if cam.in_door_motion or (f.motion is not None and f.motion >= s.door_motion_on):
            self._door(cam, f, prev_seq, prev_ts, now_ns)
        if not any(rule in cam.raised for rule, _ in BLINDING):
            out.extend(self._door_seen(cam, f))
        return out

    def _door_seen(self, cam: _Camera, f: FrameFacts) -> list[Finding]:
        """A good frame: the doors this camera watches are seen again (blind_read clears)."""
        unsaid = BLIND_READ in cam.unsaid
        if not unsaid and not self.blind_doors:
            return []  # the usual frame: no door is blind
        cam.unsaid.discard(BLIND_READ)
        out: list[Finding] = []
        for reader in self.watched_readers(f.site, f.camera):
            if self.blind_doors.pop((f.site, reader), None) is not None or unsaid:
                out.append(Finding(BLIND_READ, f.site, f.camera, False, f.ts_ns, reader=reader))
        return out

    def _persisting(
        self,
        cam: _Camera,
        f: FrameFacts,
        rule: str,
        on: bool,
        what: str,
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
                    SEVERITY[rule],
                    evidence=f.snapshot or cam.last_evidence,
                    details={"value": value, "seq": f.seq},
                )
            ]
        if not on and rule in cam.raised:
            cam.raised.discard(rule)
            return [Finding(rule, f.site, f.camera, False, f.ts_ns)]
        return []

    def _door(
        self, cam: _Camera, f: FrameFacts, prev_seq: int | None, prev_ts: int, now_ns: int | None
    ) -> None:
        s = self.settings
        moving = f.motion is not None and f.motion >= s.door_motion_on
        was_moving = cam.in_door_motion
        cam.in_door_motion = moving
        if not moving:
            return
        prev_known = prev_seq is None or f.seq == prev_seq + 1
        # One worker alone: motion after motion is the same episode. On a share of the frames,
        # an unseen frame in between may have been still: the store decides (settle).
        if was_moving and (prev_known or not self.confirm):
            return
        readers = tuple(self.watched_readers(f.site, f.camera))
        if not readers:
            return
        window = int(s.door_window_s * NS_PER_S)
        if self._read_near(f.site, readers, f.ts_ns, window):
            return
        received = f.ts_ns if now_ns is None else now_ns
        self.pending.append(
            _DoorMotion(
                f.site,
                f.camera,
                f.ts_ns,
                f.seq,
                readers,
                f.snapshot or cam.last_evidence,
                f.motion or 0.0,
                max(received, f.ts_ns + window) + int(s.confirm_grace_s * NS_PER_S),
                prev_ts,
                prev_known,
            )
        )

    def _read_near(self, site: str, readers: tuple[str, ...], at_ns: int, window: int) -> bool:
        for reader in readers:
            if any(abs(t - at_ns) <= window for t in self.read_times.get((site, reader), ())):
                return True
        return False

    # ── time ──

    def tick(self, now_ns: int) -> list[Finding]:
        """Without `confirm`, the candidates (gaps, door motion with no read) whose grace has
        passed, judged on what this worker saw."""
        if self.confirm:
            return []
        return self.settle(self.take_due(now_ns), {})

    # ── confirmation against the point store ──

    def take_due(self, now_ns: int) -> Confirmation:
        """Candidates past their grace, oldest first, and the store queries they need: one per
        camera (its frames' seq and motion) and one per reader (its reads), at most
        `confirm_max_queries`; what does not fit waits for the next round."""
        s = self.settings
        round_ = Confirmation()
        if not self.gaps and not self.pending:
            return round_
        window = int(s.door_window_s * NS_PER_S)
        lookback = self._lookback_ns()
        budget = s.confirm_max_queries if self.confirm else 1 << 30
        spans: dict[QueryKey, list[int]] = {}
        rows: dict[QueryKey, int] = {}

        def fits(needs: list[tuple[QueryKey, int, int, int]]) -> bool:
            new = {key for key, *_ in needs if key not in spans}
            if len(spans) + len(new) > budget:
                return False
            for key, start, end, expected in needs:
                span = spans.setdefault(key, [start, end])
                span[0], span[1] = min(span[0], start), max(span[1], end)
                rows[key] = rows.get(key, 0) + expected
            return True

        kept_gaps: list[_Gap] = []
        for gap in self.gaps:
            key = (FRAMES, gap.site, gap.camera)
            need = [(key, gap.from_ts_ns + 1, gap.to_ts_ns, gap.to_seq - gap.from_seq)]
            if gap.due_ns <= now_ns and fits(need):
                round_.gaps.append(gap)
            else:
                kept_gaps.append(gap)
        kept_doors: list[_DoorMotion] = []
        for door in self.pending:
            needs = [
                ((READS, door.site, r), door.at_ns - window, door.at_ns + window + 1, 100)
                for r in door.readers
            ]
            if not door.prev_known:
                start = max(door.prev_ts_ns + 1, door.at_ns - lookback)
                needs.append(((FRAMES, door.site, door.camera), start, door.at_ns, 100))
            if door.due_ns <= now_ns and fits(needs):
                round_.doors.append(door)
            else:
                kept_doors.append(door)
        self.gaps, self.pending = kept_gaps, kept_doors
        if not self.confirm:
            return round_  # nothing to ask: judged on what this worker saw
        for key, (start, end) in spans.items():
            kind, site, device = key
            limit = min(s.confirm_max_rows, rows[key] + 100)
            if kind == FRAMES:
                tags = (("site", site), ("camera", device))
                round_.queries[key] = PointQuery(
                    "video_frame", tags, ("seq", "motion"), start, end, limit
                )
            else:
                tags = (("site", site), ("reader", device))
                round_.queries[key] = PointQuery("waste_read", tags, None, start, end, limit)
        return round_

    def settle(self, round_: Confirmation, answers: dict[QueryKey, Rows | None]) -> list[Finding]:
        """Judge a round's candidates on the stored rows. A query with no answer (None, or
        missing when `confirm`: the store failed) or cut at its limit before a candidate's
        range ends puts that candidate back for the next round."""
        out: list[Finding] = []
        for gap in round_.gaps:
            rows = self._rows(round_, answers, (FRAMES, gap.site, gap.camera), gap.to_ts_ns - 1)
            if rows is None:
                self.gaps.append(gap)
                continue
            out.extend(self._settle_gap(gap, rows))
        for door in round_.doors:
            decided, finding = self._settle_door(round_, answers, door)
            if not decided:
                self.pending.append(door)
            elif finding is not None:
                out.append(finding)
        return out

    def _rows(
        self,
        round_: Confirmation,
        answers: dict[QueryKey, Rows | None],
        key: QueryKey,
        needed_until_ns: int,
    ) -> Rows | None:
        """The rows for `key`, or None when they cannot decide up to `needed_until_ns`."""
        if not self.confirm:
            return []  # one worker: nothing it did not see
        rows = answers.get(key)
        query = round_.queries.get(key)
        if rows is None or query is None:
            return None
        if len(rows) >= query.limit and (not rows or int(rows[-1]["time"]) < needed_until_ns):
            return None  # cut short before this candidate's range ends
        return rows

    def _settle_gap(self, gap: _Gap, rows: Rows) -> list[Finding]:
        stored = {
            int(r["seq"])
            for r in rows
            if r.get("seq") is not None and gap.from_ts_ns < int(r["time"]) < gap.to_ts_ns
        }
        # Only the seqs right before `to_seq` are this worker's to raise: it got the frame
        # that ends them. A lost run ending before a stored frame belongs to whoever got that
        # frame, so one loss is raised once however many workers share the camera.
        run_end = gap.to_seq - 1
        seq = run_end
        while seq > gap.from_seq and seq not in stored:
            seq -= 1
        missing = run_end - seq
        if missing < max(1, self.settings.gap_min_missing):
            return []
        first = seq + 1
        return [
            Finding(
                FRAME_GAP,
                gap.site,
                gap.camera,
                True,
                gap.to_ts_ns,
                f"camera {gap.camera}: {missing} frame message(s) missing "
                f"(seq {seq} → {gap.to_seq})",
                SEVERITY[FRAME_GAP],
                details={
                    "missing": missing,
                    "missing_seqs": list(range(first, min(run_end, first + 99) + 1)),
                    "from_seq": seq,
                    "to_seq": gap.to_seq,
                },
            )
        ]

    def _settle_door(
        self, round_: Confirmation, answers: dict[QueryKey, Rows | None], door: _DoorMotion
    ) -> tuple[bool, Finding | None]:
        """(decided, the finding to raise): no finding when a read explains the motion or
        it is no start; not decided when the store did not answer."""
        s = self.settings
        window = int(s.door_window_s * NS_PER_S)
        if self._read_near(door.site, door.readers, door.at_ns, window):
            return True, None  # a read came to this worker after all
        undecided = False
        for reader in door.readers:
            rows = self._rows(round_, answers, (READS, door.site, reader), door.at_ns + window)
            if rows is None:
                undecided = True
                continue
            if any(abs(int(r["time"]) - door.at_ns) <= window for r in rows):
                return True, None
        if undecided:
            return False, None
        if not door.prev_known and self.confirm:
            rows = self._rows(round_, answers, (FRAMES, door.site, door.camera), door.at_ns - 1)
            if rows is None:
                return False, None
            before = [r for r in rows if int(r["time"]) < door.at_ns]
            if before:
                prev = max(before, key=lambda r: int(r["time"]))
                motion = prev.get("motion")
                if motion is not None and float(motion) >= s.door_motion_on:
                    return True, None  # not a start: the worker with the start frame judges it
        return True, Finding(
            DOOR_MOTION_NO_READ,
            door.site,
            door.camera,
            True,
            door.at_ns,
            f"movement at the storage door seen by {door.camera} at {door.site} with no RFID "
            f"read at {', '.join(door.readers)} within {s.door_window_s:.0f} s",
            SEVERITY[DOOR_MOTION_NO_READ],
            evidence=door.evidence,
            details={
                "readers": list(door.readers),
                "motion": door.motion,
                "window_s": s.door_window_s,
            },
        )
