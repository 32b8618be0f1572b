"""Each synthetic scene, written to a real encoded file, is told apart by the agent's metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hazwatch.edge.camera_agent import AgentConfig, CameraAgent, CaptureSource, EvidenceFolder
from hazwatch.simulators.video_scenes import write_scene

SECONDS = 3.0
EVENT_S = 1.0  # the tamper starts here; "before" is frames 5..24, "after" is from 1.4 s on


class Collect:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.statuses: list[bool] = []

    def frame(self, payload: dict[str, Any]) -> None:
        self.frames.append(payload)

    def status(self, online: bool) -> None:
        self.statuses.append(online)


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scenes")
    names = ("static", "person", "lighting", "covered", "moved", "blurred", "dark")
    return {n: write_scene(root / f"{n}.mp4", n, seconds=SECONDS, event_s=EVENT_S) for n in names}


def run_agent(
    path: Path, tmp_path: Path, rate_hz: float = 25.0
) -> tuple[list[dict[str, Any]], CameraAgent]:
    """Every frame analysed; at 25 messages/s every frame's metrics are published."""
    sink = Collect()
    config = AgentConfig(site="jy-0012", camera="cam-2", rate_hz=rate_hz, evidence_dir=tmp_path)
    agent = CameraAgent(
        config, CaptureSource(str(path)), sink, evidence=EvidenceFolder(tmp_path / "ev")
    )
    agent.run()
    return sink.frames, agent


def split(frames: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    before = [f[key] for f in frames[5:25]]
    after = [f[key] for f in frames[35:]]
    return before, after


def test_every_frame_is_analysed_and_seq_has_no_gap(
    scene_files: dict[str, Path], tmp_path: Path
) -> None:
    frames, agent = run_agent(scene_files["static"], tmp_path, rate_hz=2.0)
    assert agent.stats.frames == round(SECONDS * 25)
    assert agent.stats.gaps == 0 and sum(f["gaps"] for f in frames) == 0
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    assert 6 <= len(frames) <= 8  # 2 per second of video (plus the first and the tail)
    assert sum(f["frames"] for f in frames) == agent.stats.frames
    assert {(f["width"], f["height"]) for f in frames} == {(320, 240)}


def test_static_scene_has_no_motion_and_no_tamper(
    scene_files: dict[str, Path], tmp_path: Path
) -> None:
    frames, agent = run_agent(scene_files["static"], tmp_path)
    assert max(f["motion"] for f in frames) < 0.001
    assert max(f["occlusion"] for f in frames) < 0.1
    assert max(f["scene_change"] for f in frames) < 0.05
    assert agent.stats.events == {}


def test_person_walking_is_motion(scene_files: dict[str, Path], tmp_path: Path) -> None:
    frames, agent = run_agent(scene_files["person"], tmp_path)
    moving = [f["motion"] for f in frames[10:]]
    assert min(moving) > 0.004  # the person is always in view and always walking
    assert max(moving) < 0.2
    assert agent.stats.events.get("motion_start") == 1
    assert max(f["occlusion"] for f in frames) < 0.1


def test_covered_lens_is_occlusion_with_a_snapshot(
    scene_files: dict[str, Path], tmp_path: Path
) -> None:
    frames, _ = run_agent(scene_files["covered"], tmp_path)
    before, after = split(frames, "occlusion")
    assert max(before) < 0.1
    assert min(after) > 0.9
    events = [f for f in frames if f.get("event") == "occlusion"]
    assert len(events) == 1 and events[0]["snapshot"]["name"].endswith("_occlusion.jpg")
    assert (tmp_path / "ev" / "pending" / events[0]["snapshot"]["name"]).is_file()


def test_blurred_lens_drops_sharpness(scene_files: dict[str, Path], tmp_path: Path) -> None:
    frames, agent = run_agent(scene_files["blurred"], tmp_path)
    before, after = split(frames, "sharpness")
    assert max(after) < 0.1 * min(before)  # defocus: under a tenth of the sharp view
    assert max(split(frames, "occlusion")[1]) < 0.5  # still a picture, not a covered lens
    assert agent.stats.events.get("defocus") == 1


def test_moved_camera_is_scene_change(scene_files: dict[str, Path], tmp_path: Path) -> None:
    frames, agent = run_agent(scene_files["moved"], tmp_path)
    before, after = split(frames, "scene_change")
    assert max(before) < 0.05
    assert min(after) > 0.4
    assert max(split(frames, "occlusion")[1]) < 0.1
    assert agent.stats.events.get("scene_change") == 1


def test_lighting_change_is_brightness_not_motion_nor_scene_change(
    scene_files: dict[str, Path], tmp_path: Path
) -> None:
    frames, agent = run_agent(scene_files["lighting"], tmp_path)
    before, after = split(frames, "brightness")
    assert min(after) < 0.6 * min(before)
    assert max(f["motion"] for f in frames) < 0.01
    assert max(f["scene_change"] for f in frames) < 0.05
    assert "scene_change" not in agent.stats.events and "occlusion" not in agent.stats.events


def test_lights_out_is_dark(scene_files: dict[str, Path], tmp_path: Path) -> None:
    frames, _ = run_agent(scene_files["dark"], tmp_path)
    before, after = split(frames, "brightness")
    assert min(before) > 100
    assert max(after) < 15  # the rules' too-dark threshold


def test_a_camera_that_starts_covered_takes_its_first_real_view_as_reference() -> None:
    from hazwatch.edge.video_metrics import FrameAnalyzer
    from hazwatch.simulators.video_scenes import Scene

    covered, room = Scene("covered", event_s=0.0), Scene("static")
    analyzer = FrameAnalyzer()
    first = [analyzer.analyse(covered.frame(i)) for i in range(10)]
    assert min(m.occlusion for m in first) > 0.9
    after = [analyzer.analyse(room.frame(i)) for i in range(10)]
    assert max(m.occlusion for m in after) < 0.1
    assert max(m.scene_change for m in after[1:]) < 0.05
