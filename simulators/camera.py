"""Camera simulator: cameras publishing frame metadata as the edge agent would, no video decoded.

Never send what the agent could not: same keys, same ranges, same seq rules (gaps only as faults).

Scenario `video` (`hazwatch simulate --scenario video`): `devices` cameras at `rate` messages/s
each, two of them tampered with halfway; fault kinds `lost_tag` (here: a frame message lost, a
seq skipped every 7) and `outage` (the last camera's connection cut halfway: its last will).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from hazwatch.devices.timeparse import NS_PER_S
from hazwatch.devices.topics import build_topic
from hazwatch.simulators.fleet import Progress, drop_connection, no_progress
from hazwatch.simulators.mqtt import announce_online, device_client
from hazwatch.simulators.scenarios import Scenario, register_scenario

TAMPERS = ("occlusion", "scene_change", "defocus", "dark")
WINDOW = 200  # QoS 1 publishes in flight per camera when publishing as fast as possible


@dataclass
class CameraModel:
    """One camera's metrics over time, shaped like the agent's (640-wide analysis) figures."""

    camera: str
    seed: int = 0
    width: int = 1920
    height: int = 1080
    fps: float = 25.0
    rate: float = 2.0
    tamper: str | None = None  # one of TAMPERS, from `tamper_at_s` on
    tamper_at_s: float = math.inf
    gap_every: int = 0  # every n-th message skips a seq (a lost message)
    seq: int = 0
    elapsed_s: float = 0.0
    _moving: bool = False
    _rng: random.Random = field(init=False)
    _announced: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.seed}:{self.camera}")
        self._sharp = self._rng.uniform(600, 1400)
        self._light = self._rng.uniform(95, 140)

    def next(self, ts_ns: int) -> dict[str, Any]:
        rng = self._rng
        # motion comes in episodes (a person or forklift passes), as MOG2 sees it
        self._moving = rng.random() < (0.8 if self._moving else 0.05)
        motion = rng.uniform(0.01, 0.12) if self._moving else rng.uniform(0.0, 0.002)
        body: dict[str, Any] = {
            "ts": ts_ns // 1_000_000,
            "seq": self.seq,
            "width": self.width,
            "height": self.height,
            "brightness": round(self._light + rng.uniform(-1.5, 1.5), 2),
            "sharpness": round(self._sharp * rng.uniform(0.95, 1.05), 2),
            "motion": round(motion, 4),
            "occlusion": 0.0,
            "scene_change": round(rng.uniform(0.0, 0.03), 4),
            "frames": round(self.fps / self.rate),
            "gaps": 0,
        }
        tamper = self.tamper if self.elapsed_s >= self.tamper_at_s else None
        if tamper == "occlusion":
            body.update(brightness=round(rng.uniform(18, 30), 2), occlusion=1.0, scene_change=1.0)
            body["sharpness"] = round(rng.uniform(0.5, 3), 2)
        elif tamper == "scene_change":
            body.update(scene_change=round(rng.uniform(0.6, 0.9), 4))
        elif tamper == "defocus":
            body.update(sharpness=round(self._sharp * rng.uniform(0.005, 0.02), 2))
        elif tamper == "dark":
            body.update(
                brightness=round(rng.uniform(3, 8), 2), sharpness=round(rng.uniform(2, 5), 2)
            )
        if tamper and tamper not in self._announced:
            self._announced.add(tamper)
            body["event"] = tamper if tamper != "dark" else "occlusion"
        elif self._moving and motion >= 0.01 and "motion" not in self._announced:
            self._announced.add("motion")
            body["event"] = "motion_start"
        if not self._moving:
            self._announced.discard("motion")
        self.seq += 1
        if self.gap_every and self.seq % self.gap_every == 0:
            self.seq += 1  # the fault: one message never sent
        self.elapsed_s += 1.0 / self.rate
        return body


@dataclass
class VideoReport:
    cameras: int = 0
    sent: int = 0
    acked: int = 0
    gaps_injected: int = 0
    offline: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.sent == self.acked and not self.errors

    def summary(self) -> list[tuple[str, str]]:
        rate = self.acked / self.elapsed_s if self.elapsed_s else 0.0
        return [
            ("cameras", str(self.cameras)),
            ("frame messages sent / acked", f"{self.sent} / {self.acked}"),
            ("rate", f"{rate:.1f} msg/s"),
            ("seq gaps injected", str(self.gaps_injected)),
            ("cut offline (last will)", ", ".join(self.offline) or "none"),
            *(("error", e) for e in self.errors[:5]),
        ]


@dataclass
class VideoFleet:
    """A Step: `cameras` cameras at one site, for `duration_s` or `count` messages each."""

    site: str = "sim-01"
    cameras: int = 4
    rate: float = 2.0
    duration_s: float | None = 10.0
    count: int | None = None
    fast: bool = False  # device times spaced at `rate`, published as fast as the broker takes
    gap_every: int = 0
    offline: tuple[str, ...] = ()  # cameras whose connection is cut halfway
    tampers: dict[str, str] = field(default_factory=dict)  # camera -> tamper kind, halfway
    seed: int = 0
    label: str = "video"

    def camera_ids(self) -> list[str]:
        return [f"cam-{n + 1:02d}" for n in range(self.cameras)]

    async def run(self, mqtt_url: str, progress: Progress = no_progress) -> VideoReport:
        report = VideoReport(cameras=self.cameras)
        started = time.monotonic()
        t0_ns = time.time_ns()
        total = self.count or max(1, round((self.duration_s or 10.0) * self.rate))
        done = [0]
        tasks = [
            self._camera(mqtt_url, cam, t0_ns, total, report, done) for cam in self.camera_ids()
        ]
        async with asyncio.TaskGroup() as group:
            for task in tasks:
                group.create_task(task)
            group.create_task(self._progress(progress, done, total * self.cameras))
        report.elapsed_s = time.monotonic() - started
        progress(1.0, f"{report.acked} frame messages acked")
        return report

    async def _progress(self, progress: Progress, done: list[int], total: int) -> None:
        while done[0] < total:
            progress(done[0] / total, f"{done[0]}/{total} frame messages")
            await asyncio.sleep(0.5)

    async def _camera(
        self, url: str, camera: str, t0_ns: int, total: int, report: VideoReport, done: list[int]
    ) -> None:
        half = total // 2
        model = CameraModel(
            camera,
            self.seed,
            rate=self.rate,
            tamper=self.tampers.get(camera),
            tamper_at_s=half / self.rate,
            gap_every=self.gap_every,
        )
        topic = build_topic(self.site, "camera", camera, "frame")
        client = device_client(url, self.site, "camera", camera)
        loop = asyncio.get_running_loop()
        start = loop.time()
        client.pending_calls_threshold = 2 * WINDOW + 10
        client._client.max_inflight_messages_set(WINDOW)  # a window in flight, not paho's 20
        inflight: list[Any] = []

        async def publish(payload: bytes) -> None:
            await client.publish(topic, payload, qos=1)
            report.acked += 1
            done[0] += 1

        async with client:
            await announce_online(client, self.site, "camera", camera)
            for n in range(total):
                if camera in self.offline and n == half:
                    await asyncio.gather(*inflight)
                    report.offline.append(camera)
                    done[0] += total - n
                    await drop_connection(client)
                    return
                if not self.fast:
                    await asyncio.sleep(max(0.0, start + n / self.rate - loop.time()))
                seq_before = model.seq
                body = model.next(t0_ns + int(n / self.rate * NS_PER_S))
                if model.seq - seq_before > 1:
                    report.gaps_injected += 1
                report.sent += 1
                inflight.append(publish(orjson.dumps(body)))
                if len(inflight) >= (WINDOW if self.fast else 1):
                    await asyncio.gather(*inflight)
                    inflight.clear()
            await asyncio.gather(*inflight)


def video_scenario(**options: Any) -> Scenario:
    """`devices` cameras sharing `rate` messages/s (0: as fast as the broker takes, device times
    2/s apart) for `count` messages in total or `duration_s`; `faults` naming lost_tag / outage
    turn seq gaps / a cut camera on."""
    faults = options.get("faults")
    rates: dict[str, float] = dict(getattr(faults, "rates", {}) or {})
    anomalies = frozenset(getattr(faults, "anomalies", ()) or ())
    cameras = max(1, int(options.get("devices") or 4))
    ids = [f"cam-{n + 1:02d}" for n in range(cameras)]
    total_rate = float(options.get("rate") or 0.0)
    count = options.get("count")
    step = VideoFleet(
        site=str(options.get("site") or "sim-01"),
        cameras=cameras,
        rate=total_rate / cameras if total_rate > 0 else 2.0,
        fast=total_rate <= 0,
        duration_s=options.get("duration_s") or (None if count else 10.0),
        count=None if count is None else max(1, math.ceil(int(count) / cameras)),
        gap_every=7 if rates.get("frame_gap") or rates.get("lost_tag") else 0,
        offline=(ids[-1],) if rates.get("outage") or "offline" in anomalies else (),
        tampers={cam: TAMPERS[i % len(TAMPERS)] for i, cam in enumerate(ids[1:3])},
        seed=int(options.get("seed") or 0),
    )
    return Scenario("video", [step], "cameras' frame metadata (no video decoded), with tampering")


register_scenario("video", video_scenario)
