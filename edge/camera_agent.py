"""The camera edge agent: reads a camera, analyses every frame, publishes `camera/{cam}/frame`.

Never send pixels over MQTT and never drop a kept snapshot while the evidence folder has room.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import cv2
import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt
from numpy.typing import NDArray
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.base.errors import ConfigError
from hazwatch.base.retry import Backoff, RetryPolicy
from hazwatch.devices.camera import check_snapshot_name, snapshot_name
from hazwatch.devices.timeparse import NS_PER_S
from hazwatch.devices.topics import build_topic
from hazwatch.edge.video_metrics import AnalyzerSettings, EdgeEvents, FrameAnalyzer, FrameMetrics

log = logging.getLogger("hazwatch.camera")

Image = NDArray[np.uint8]
CHINA = timezone(timedelta(hours=8), "CST")


# ── frame sources ────────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class SourceFrame:
    image: Image
    stream_s: float | None  # the source's own position (files, RTSP), None when it has none


class FrameSource(Protocol):
    """Where frames come from. `read` returns None at the end of a finite source."""

    name: str
    live: bool  # a camera (time is the wall clock) rather than a recording
    fps: float

    def read(self) -> SourceFrame | None: ...

    def close(self) -> None: ...


class StreamDown(Exception):
    """A live source stopped giving frames; the agent reconnects."""


OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000  # a stalled RTSP stream counts as dropped after this


def _open_capture(spec: str) -> Any:
    if spec.isdigit():
        return cv2.VideoCapture(int(spec))
    if "://" in spec:
        timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS,
        ]  # fmt: skip
        return cv2.VideoCapture(spec, cv2.CAP_FFMPEG, timeouts)
    return cv2.VideoCapture(spec, cv2.CAP_FFMPEG)


class CaptureSource:
    """A file, an RTSP/HTTP URL or a device index, through cv2.VideoCapture (FFmpeg)."""

    def __init__(self, spec: str, *, opener: Callable[[str], Any] = _open_capture) -> None:
        self.name = spec
        self.live = spec.isdigit() or "://" in spec
        self._opener = opener
        self._cap: Any = None
        self.fps = 25.0
        try:
            self.open()
        except StreamDown:
            if not self.live:
                raise  # a missing file is a mistake; a camera that is down comes back

    def open(self) -> None:
        if self._cap is not None:
            self._cap.release()
        cap = self._opener(self.name)
        if not cap.isOpened():
            cap.release()
            self._cap = None
            raise StreamDown(f"cannot open video source {self.name!r}")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 25.0
        self._cap = cap

    def read(self) -> SourceFrame | None:
        if self._cap is None:
            if not self.live:
                return None
            raise StreamDown(f"{self.name} is not open")
        ok, image = self._cap.read()
        if not ok or image is None:
            if self.live:
                raise StreamDown(f"{self.name} stopped giving frames")
            return None
        pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        return SourceFrame(image, pos_ms / 1000.0 if pos_ms > 0 or not self.live else None)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_capture(spec: str) -> CaptureSource:
    """The CaptureSource of a file, URL or device index; ConfigError when `spec` is none of
    them or the file does not open (a live source that is down is retried by the agent)."""
    if "://" not in spec and not spec.isdigit() and not Path(spec).exists():
        raise ConfigError(f"video source {spec!r} is not a file, a URL or a device index")
    try:
        return CaptureSource(spec)
    except StreamDown as exc:
        raise ConfigError(str(exc)) from None


# ── detectors (optional) ─────────────────────────────────────────────────────────────────────


class ObjectDetector(Protocol):
    """Finds objects in a frame: [{label, conf, box: [x, y, w, h] as fractions}]. No downloads."""

    def detect(self, image: Image, motion_mask: Image | None) -> list[dict[str, Any]]: ...


class MotionBlobDetector:
    """Moving blobs from the background model, labelled `moving`: cheap, needs no model file."""

    def __init__(self, min_area: float = 0.002, max_objects: int = 16) -> None:
        self.min_area, self.max_objects = min_area, max_objects

    def detect(self, image: Image, motion_mask: Image | None) -> list[dict[str, Any]]:
        if motion_mask is None:
            return []
        h, w = motion_mask.shape[:2]
        count, _, stats, _ = cv2.connectedComponentsWithStats(motion_mask)
        found: list[dict[str, Any]] = []
        for i in range(1, int(count)):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            frac = area / float(w * h)
            if frac < self.min_area:
                continue
            found.append(
                {
                    "label": "moving",
                    "conf": round(min(1.0, 0.5 + frac * 10), 3),
                    "box": [round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)],
                }
            )
        found.sort(key=lambda o: -float(o["box"][2]) * float(o["box"][3]))
        return found[: self.max_objects]


# ── evidence snapshots ───────────────────────────────────────────────────────────────────────


def snapshot_jpeg(
    image: Image, *, site: str, camera: str, ts_ns: int, event: str, max_width: int = 640
) -> bytes:
    """A downscaled JPEG with the site, camera, event and China time burned in."""
    h, w = image.shape[:2]
    if w > max_width:
        size = (max_width, round(h * max_width / w))
        image = cast(Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    else:
        image = image.copy()
    when = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=CHINA)
    text = f"{site}/{camera} {when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 1000:03d}+08 {event}"
    scale = max(0.35, image.shape[1] / 1100)
    thick = 1 if scale < 0.7 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(image, (0, 0), (min(image.shape[1], tw + 8), th + base + 6), (0, 0, 0), -1)
    cv2.putText(image, text, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


class EvidenceFolder:
    """A bounded folder of snapshots: `pending/` (not yet uploaded) and `sent/` (uploaded).

    When full, the oldest uploaded snapshots go first; pending ones are never deleted, so a new
    snapshot that finds no room is refused (counted) rather than losing one not yet uploaded.
    """

    def __init__(self, root: Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.root, self.max_bytes = root, max_bytes
        self.pending_dir, self.sent_dir = root / "pending", root / "sent"
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.sent_dir.mkdir(parents=True, exist_ok=True)
        self.refused = 0
        self._lock = threading.Lock()

    def _used(self) -> int:
        return sum(p.stat().st_size for d in (self.pending_dir, self.sent_dir) for p in d.iterdir())

    def keep(self, name: str, jpeg: bytes) -> str | None:
        """Store a snapshot to upload; its sha256, or None when there is no room."""
        check_snapshot_name(name)  # ValueError: the service would never take it
        with self._lock:
            used = self._used()
            if used + len(jpeg) > self.max_bytes:
                for old in sorted(self.sent_dir.iterdir(), key=lambda p: p.stat().st_mtime):
                    used -= old.stat().st_size
                    old.unlink()
                    if used + len(jpeg) <= self.max_bytes:
                        break
            if used + len(jpeg) > self.max_bytes:
                self.refused += 1
                log.warning(
                    "evidence folder %s is full of unsent snapshots; %s refused", self.root, name
                )
                return None
            tmp = self.pending_dir / f".{name}.tmp"
            tmp.write_bytes(jpeg)
            tmp.replace(self.pending_dir / name)
        return hashlib.sha256(jpeg).hexdigest()

    def pending(self) -> list[Path]:
        files = [p for p in self.pending_dir.iterdir() if not p.name.startswith(".")]
        return sorted(files, key=lambda p: p.stat().st_mtime)

    def mark_sent(self, path: Path) -> None:
        with self._lock:
            path.replace(self.sent_dir / path.name)


class SnapshotUploader:
    """Uploads pending snapshots to `POST {api}/api/snapshots`, retrying with backoff forever."""

    def __init__(
        self,
        folder: EvidenceFolder,
        api_url: str,
        token: str = "",
        *,
        timeout_s: float = 10.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self.folder, self.api_url, self.token = folder, api_url.rstrip("/"), token
        self.timeout_s, self.max_backoff_s = timeout_s, max_backoff_s
        self.uploaded = 0
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def upload_one(self, client: httpx.Client, path: Path) -> bool:
        body = path.read_bytes()
        headers = {"Content-Type": "image/jpeg"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        params = {"name": path.name, "sha256": hashlib.sha256(body).hexdigest()}
        try:
            r = client.post(
                f"{self.api_url}/api/snapshots", params=params, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            log.info("snapshot %s not uploaded yet: %s", path.name, exc)
            return False
        if r.status_code in (200, 201):
            self.folder.mark_sent(path)
            self.uploaded += 1
            return True
        log.warning("snapshot %s refused: %s %s", path.name, r.status_code, r.text[:200])
        return False

    def run_once(self, client: httpx.Client) -> bool:
        """Try every pending snapshot once; True when none is left."""
        for path in self.folder.pending():
            if not self.upload_one(client, path):
                self.failures += 1
                return False
        return True

    def _run(self) -> None:
        backoff = Backoff(
            RetryPolicy(max_s=None, first_delay_s=1.0, max_delay_s=self.max_backoff_s)
        )
        with httpx.Client(timeout=self.timeout_s) as client:
            while True:
                if self.run_once(client):
                    backoff.succeeded()
                    wait_s = 5.0
                else:
                    wait_s = backoff.failed()
                if self._stop.is_set():
                    return  # that was the last pass; what is left stays in the folder
                self._wake.wait(wait_s)
                self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshot-uploader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """One last pass over what is pending, then stop (what is left stays for next time)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s * 2)


# ── MQTT ─────────────────────────────────────────────────────────────────────────────────────


class FramePublisher:
    """paho-mqtt client of one camera: QoS 1, retained last will `{"online": false}`, reconnects."""

    def __init__(self, url: str, site: str, camera: str, *, client_id: str | None = None) -> None:
        self.site, self.camera = site, camera
        self.frame_topic = build_topic(site, "camera", camera, "frame")
        self.status_topic = build_topic(site, "camera", camera, "status")
        parts = urlsplit(url)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"camera-{site}-{camera}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        if parts.username:
            self._client.username_pw_set(
                unquote(parts.username), unquote(parts.password) if parts.password else None
            )
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._client.will_set(
            self.status_topic, orjson.dumps({"online": False}), qos=1, retain=True
        )
        self._client.reconnect_delay_set(1, 30)
        self._client.max_queued_messages_set(100_000)
        self._client.on_connect = self._on_connect
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._infos: list[mqtt.MQTTMessageInfo] = []
        self.connected = threading.Event()
        self.refused = 0
        self.stream_online = True

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connected.set()
            self.status(self.stream_online)

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def status(self, online: bool) -> None:
        self.stream_online = online
        body = {"online": online, "ts": time.time_ns() // 1_000_000}
        self._client.publish(self.status_topic, orjson.dumps(body), qos=1, retain=True)

    def frame(self, payload: dict[str, Any]) -> None:
        info = self._client.publish(self.frame_topic, orjson.dumps(payload), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.refused += 1  # broker away so long that the bounded queue is full
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warning(
                    "camera %s: %d frame messages refused (queue full)", self.camera, self.refused
                )
            return
        self._infos.append(info)
        if len(self._infos) > 512:
            self._infos = [i for i in self._infos if not _is_published(i)]

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait until the broker has every frame message, say offline, disconnect."""
        deadline = time.monotonic() + timeout_s
        for info in self._infos:
            while not _is_published(info) and time.monotonic() < deadline:
                time.sleep(0.01)
        if self.connected.is_set():
            off = self._client.publish(
                self.status_topic, orjson.dumps({"online": False}), qos=1, retain=True
            )
            while not _is_published(off) and time.monotonic() < deadline:
                time.sleep(0.01)
        self._client.disconnect()
        self._client.loop_stop()


# ── the agent ────────────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class AgentConfig:
    site: str
    camera: str
    rate_hz: float = 2.0  # frame messages per second (every frame is analysed regardless)
    evidence_dir: Path = Path("evidence")
    evidence_max_bytes: int = 256 * 1024 * 1024
    snapshot_width: int = 640
    realtime: bool = False  # pace a recording at its frame rate (a live source paces itself)
    max_frames: int | None = None
    reconnect_max_s: float = 30.0
    analyzer: AnalyzerSettings = field(default_factory=AnalyzerSettings)


@dataclass(slots=True)
class AgentStats:
    frames: int = 0  # analysed
    messages: int = 0
    gaps: int = 0  # frames the source skipped or lost (stream drops included)
    reconnects: int = 0
    snapshots: int = 0
    events: dict[str, int] = field(default_factory=dict)
    analysis_s: float = 0.0  # wall clock
    decode_s: float = 0.0
    analysis_cpu_s: float = 0.0  # this process's CPU time (what a core spent, whatever else ran)
    decode_cpu_s: float = 0.0


class FrameSink(Protocol):
    def frame(self, payload: dict[str, Any]) -> None: ...

    def status(self, online: bool) -> None: ...


class CameraAgent:
    """Reads frames, analyses each one, publishes metadata at `rate_hz` and right away on events."""

    def __init__(
        self,
        config: AgentConfig,
        source: FrameSource,
        sink: FrameSink,
        *,
        evidence: EvidenceFolder | None = None,
        uploader: SnapshotUploader | None = None,
        detector: ObjectDetector | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        reopen: Callable[[], FrameSource] | None = None,
    ) -> None:
        self.config, self.source, self.sink = config, source, sink
        self.evidence, self.uploader, self.detector = evidence, uploader, detector
        self.clock_ns, self.reopen = clock_ns, reopen
        self.analyzer = FrameAnalyzer(config.analyzer)
        self.events = EdgeEvents(config.analyzer)
        self.stats = AgentStats()
        self.stop = threading.Event()
        self.seq = 0
        self._t0_ns = clock_ns()
        self._interval_motion = 0.0
        self._interval_frames = 0
        self._interval_gaps = 0
        self._last_pub_s: float | None = None
        self._last_stream_s: float | None = None
        self._last_ts_ns = 0
        self._last: tuple[Image, FrameMetrics, int] | None = None

    # time of a frame: a recording's own clock from the start, a camera's wall clock
    def _frame_time(self, frame: SourceFrame, index: int) -> tuple[int, float]:
        if self.source.live:
            now = self.clock_ns()
            stream_s = (
                frame.stream_s if frame.stream_s is not None else (now - self._t0_ns) / NS_PER_S
            )
            ts_ns = now
        else:
            stream_s = frame.stream_s if frame.stream_s is not None else index / self.source.fps
            ts_ns = self._t0_ns + int(stream_s * NS_PER_S)
        ts_ns = max(ts_ns, self._last_ts_ns + 1_000_000)  # strictly increasing (ms)
        self._last_ts_ns = ts_ns
        return ts_ns, stream_s

    def _count_gap(self, stream_s: float) -> None:
        if self._last_stream_s is not None:
            step = stream_s - self._last_stream_s
            expected = 1.0 / self.source.fps
            if step > 1.5 * expected:
                missed = round(step / expected) - 1
                self._interval_gaps += missed
                self.stats.gaps += missed
        self._last_stream_s = stream_s

    def _reconnect(self, why: str) -> bool:
        """Live source dropped: say so, retry with backoff; False when stopped meanwhile."""
        log.warning("camera %s: %s; reconnecting", self.config.camera, why)
        self.sink.status(False)
        down_ns = self.clock_ns()
        backoff = Backoff(
            RetryPolicy(max_s=None, first_delay_s=0.5, max_delay_s=self.config.reconnect_max_s)
        )
        while not self.stop.is_set():
            try:
                if self.reopen is not None:
                    self.source = self.reopen()
                elif isinstance(self.source, CaptureSource):
                    self.source.open()
                else:
                    return False
                self.stats.reconnects += 1
                missed = round((self.clock_ns() - down_ns) / NS_PER_S * self.source.fps)
                self._interval_gaps += missed
                self.stats.gaps += missed
                self._last_stream_s = None
                self.sink.status(True)
                return True
            except StreamDown as exc:
                log.info("camera %s: %s", self.config.camera, exc)
                self.stop.wait(backoff.failed())
        return False

    def run(self) -> AgentStats:
        index = 0
        started = time.monotonic()
        while not self.stop.is_set():
            if self.config.max_frames is not None and index >= self.config.max_frames:
                break
            t_read, cpu_read = time.perf_counter(), time.process_time()
            try:
                frame = self.source.read()
            except StreamDown as exc:
                if self._reconnect(str(exc)):
                    continue
                break
            if frame is None:
                if self._last is not None and self._interval_frames:
                    self._publish(*self._last, None)  # the tail since the last message
                break
            t_analyse, cpu_analyse = time.perf_counter(), time.process_time()
            self.stats.decode_s += t_analyse - t_read
            self.stats.decode_cpu_s += cpu_analyse - cpu_read
            ts_ns, stream_s = self._frame_time(frame, index)
            if self.config.realtime and not self.source.live:
                self.stop.wait(max(0.0, started + stream_s - time.monotonic()))
            self._count_gap(stream_s)
            metrics = self.analyzer.analyse(frame.image)
            started_events = self.events.update(metrics)
            self.stats.analysis_s += time.perf_counter() - t_analyse
            self.stats.analysis_cpu_s += time.process_time() - cpu_analyse
            self.stats.frames += 1
            index += 1
            self._interval_frames += 1
            self._interval_motion = max(self._interval_motion, metrics.motion)
            for name in started_events:
                self.stats.events[name] = self.stats.events.get(name, 0) + 1
            due = (
                self._last_pub_s is None
                or stream_s - self._last_pub_s >= 1.0 / self.config.rate_hz - 0.25 / self.source.fps
            )
            self._last = (frame.image, metrics, ts_ns)
            if started_events or due:
                event = started_events[0] if started_events else None
                self._publish(frame.image, metrics, ts_ns, event)
                self._last_pub_s = stream_s
        return self.stats

    def _publish(self, image: Image, m: FrameMetrics, ts_ns: int, event: str | None) -> None:
        payload: dict[str, Any] = {
            "ts": ts_ns // 1_000_000,
            "seq": self.seq,
            "width": m.width,
            "height": m.height,
            "brightness": round(m.brightness, 2),
            "sharpness": round(min(m.sharpness, 1e7), 2),
            "motion": round(min(1.0, self._interval_motion), 4),
            "occlusion": round(m.occlusion, 4),
            "scene_change": round(m.scene_change, 4),
            "frames": self._interval_frames,
            "gaps": self._interval_gaps,
        }
        if self.detector is not None:
            payload["objects"] = self.detector.detect(image, self.analyzer.motion_mask)
        if event is not None:
            payload["event"] = event
            if self.evidence is not None:
                snap = self._snapshot(image, ts_ns, event)
                if snap is not None:
                    payload["snapshot"] = snap
        self.sink.frame(payload)
        self.seq += 1
        self.stats.messages += 1
        self._interval_motion = 0.0
        self._interval_frames = 0
        self._interval_gaps = 0

    def _snapshot(self, image: Image, ts_ns: int, event: str) -> dict[str, str] | None:
        assert self.evidence is not None
        c = self.config
        name = snapshot_name(c.site, c.camera, ts_ns, self.seq, event)
        jpeg = snapshot_jpeg(
            image,
            site=c.site,
            camera=c.camera,
            ts_ns=ts_ns,
            event=event,
            max_width=c.snapshot_width,
        )
        sha = self.evidence.keep(name, jpeg)
        if sha is None:
            return None
        self.stats.snapshots += 1
        if self.uploader is not None:
            self.uploader.wake()
        return {"name": name, "sha256": sha}


# ── one camera's program, wired ──────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraSetup:
    """What one camera's edge program is given: the agent's config, where frames come from,
    where their metadata and snapshots go. The edge reads no hazwatch settings: `hazwatch
    camera` fills this in."""

    agent: AgentConfig  # site, camera, rate, evidence folder, analyzer settings
    source: str  # a file, an rtsp:// or http:// URL, or a device index
    mqtt_url: str
    api_url: str  # the hazwatch API that takes the snapshots
    token: str = ""  # its API token
    seconds: float | None = None  # stop after this much video of a file or camera
    detector: str = "none"  # none | blobs (moving blobs, no model)


DETECTORS: dict[str, Callable[[], ObjectDetector] | None] = {
    "none": None,
    "blobs": MotionBlobDetector,
}


class CameraProgram:
    """One camera's edge program, built from a CameraSetup: its frame source, the agent, the
    MQTT publisher, the evidence folder and the snapshot uploader. `run()` until the source
    ends or `stop()` (safe from a signal handler); it flushes and closes them all."""

    def __init__(self, setup: CameraSetup, source: FrameSource | None = None) -> None:
        """`source` replaces the CaptureSource of `setup.source` (a synthetic scene)."""
        if setup.detector not in DETECTORS:
            raise ConfigError(f"--detector must be none or blobs, got {setup.detector!r}")
        make_detector = DETECTORS[setup.detector]
        self.setup = setup
        self.source = source if source is not None else open_capture(setup.source)
        config = setup.agent
        if setup.seconds is not None and isinstance(self.source, CaptureSource):
            # a synthetic source ends by itself; a capture after that many of its frames
            config = replace(config, max_frames=round(setup.seconds * self.source.fps))
        self.evidence = EvidenceFolder(config.evidence_dir, config.evidence_max_bytes)
        self.uploader = SnapshotUploader(self.evidence, setup.api_url, setup.token)
        self.publisher = FramePublisher(setup.mqtt_url, config.site, config.camera)
        # a live CaptureSource reopens itself when its stream drops (the agent retries)
        self.agent = CameraAgent(
            config,
            self.source,
            self.publisher,
            evidence=self.evidence,
            uploader=self.uploader,
            detector=make_detector() if make_detector is not None else None,
        )

    def run(self) -> AgentStats:
        self.publisher.start()
        self.uploader.start()
        try:
            return self.agent.run()
        finally:
            self.agent.source.close()
            self.publisher.close()
            self.uploader.close()

    def stop(self) -> None:
        self.agent.stop.set()


def _is_published(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker has acknowledged a publish.

    paho's is_published() raises for a message queued while the client was disconnected
    (its rc stays MQTT_ERR_NO_CONN even after the reconnect sends it); its own flag says
    whether it has gone out since.
    """
    try:
        return info.is_published()
    except RuntimeError:
        return bool(info._published)
