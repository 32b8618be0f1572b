"""The agent's own behaviour: reconnect on a dropped stream, lost frames counted, detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hazwatch.devices.camera import Frame
from hazwatch.devices.schema import validator
from hazwatch.edge.camera_agent import (
    AgentConfig,
    CameraAgent,
    EvidenceFolder,
    MotionBlobDetector,
    SourceFrame,
    StreamDown,
)
from hazwatch.simulators.video_scenes import Scene

T0 = 1_764_000_000 * 1_000_000_000


class Collect:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.statuses: list[bool] = []

    def frame(self, payload: dict[str, Any]) -> None:
        self.frames.append(payload)

    def status(self, online: bool) -> None:
        self.statuses.append(online)


class FlakyCamera:
    """A live source: `frames` frames, with stream times that skip `skip_at`, then it drops."""

    live = True
    fps = 25.0
    name = "rtsp://cam"

    def __init__(self, frames: int, skip_at: int | None = None, start: int = 0) -> None:
        self.scene = Scene("person", 160, 120)
        self.left, self.index, self.skip_at = frames, start, skip_at

    def read(self) -> SourceFrame | None:
        if self.left == 0:
            raise StreamDown("stream stopped")
        self.left -= 1
        i = self.index
        self.index += 3 if self.skip_at is not None and i == self.skip_at else 1
        return SourceFrame(self.scene.frame(i), i / self.fps)

    def close(self) -> None:
        pass


def test_dropped_stream_says_offline_reconnects_and_goes_on(tmp_path: Path) -> None:
    sink = Collect()
    clock = iter(range(T0, T0 + 10**15, 40_000_000))
    opened: list[FlakyCamera] = []

    def reopen() -> FlakyCamera:
        if not opened:
            opened.append(FlakyCamera(10, start=100))
            raise StreamDown("connection refused")  # first retry fails, second works
        return opened[0]

    config = AgentConfig(site="s", camera="c", rate_hz=25, max_frames=30, reconnect_max_s=0.01)
    agent = CameraAgent(
        config, FlakyCamera(20, skip_at=5), sink, clock_ns=lambda: next(clock), reopen=reopen
    )
    stats = agent.run()
    assert sink.statuses == [False, True]
    assert stats.reconnects == 1 and stats.frames == 30
    assert stats.gaps >= 2  # the two frames the stream skipped, plus the outage
    assert [f["seq"] for f in sink.frames] == list(range(len(sink.frames)))
    ts = [f["ts"] for f in sink.frames]
    assert ts == sorted(set(ts))  # strictly increasing device times


def test_every_message_is_a_valid_frame_payload_with_objects(tmp_path: Path) -> None:
    import orjson

    from hazwatch.edge.camera_agent import CaptureSource
    from hazwatch.simulators.video_scenes import write_scene

    video = write_scene(tmp_path / "p.mp4", "covered", seconds=2, event_s=1.0)
    sink = Collect()
    config = AgentConfig(site="jy-0012", camera="cam-2", rate_hz=5)
    agent = CameraAgent(
        config,
        CaptureSource(str(video)),
        sink,
        evidence=EvidenceFolder(tmp_path / "ev"),
        detector=MotionBlobDetector(),
    )
    agent.run()
    parse = validator(Frame)
    frames = [parse(orjson.dumps(f)) for f in sink.frames]
    assert any(f.snapshot is not None and f.event == "occlusion" for f in frames)
    assert all(f.objects is not None for f in frames)


def test_blob_detector_boxes_a_moving_block() -> None:
    mask = np.zeros((100, 200), np.uint8)
    mask[20:60, 50:90] = 255
    (found,) = MotionBlobDetector().detect(np.zeros((100, 200, 3), np.uint8), mask)
    assert found["label"] == "moving" and found["box"] == [0.25, 0.2, 0.2, 0.4]
