"""The video wiring: the door rule learns the readers a camera watches from the stored registry."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices import registry
from hazwatch.parts import video as wiring_video
from hazwatch.settings import Settings
from hazwatch.streams.video.processor import VideoProcessor
from hazwatch.streams.video.settings import VideoRuleSettings

DOC = {
    "site": [{"id": "jy-0012", "name": "暂存间"}],
    "reader": [{"id": "gate-03", "site": "jy-0012", "location": "storage_in"}],
    "camera": [{"id": "cam-2", "site": "jy-0012", "watches": ["gate-03"]}],
}


def test_watched_readers_come_from_the_stored_registry(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    watched = wiring_video.watched_readers_from(db)
    assert watched("jy-0012", "cam-2") == []
    registry.save(db, registry.parse_registry(DOC), "test", 1)
    refreshed = wiring_video.watched_readers_from(db)
    assert refreshed("jy-0012", "cam-2") == ["gate-03"]
    assert refreshed("jy-0012", "cam-9") == []


def test_processors_and_routers(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    (proc,) = wiring_video.processors(Settings(data_dir=tmp_path), db, ListSink())
    assert isinstance(proc, VideoProcessor) and proc.name == "video"
    assert proc.reader is not None and proc.rules.confirm  # the embedded store, from settings
    paths = {r.path for router in wiring_video.routers() for r in router.routes}  # type: ignore[attr-defined]
    assert paths == {"/api/snapshots", "/api/snapshots/{name}"}


def test_every_video_setting_sets_a_rule_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the rules' settings are the settings' `video` table itself, no flat copy of its fields
    assert Settings.model_fields["video"].annotation is VideoRuleSettings
    assert not [name for name in Settings.model_fields if name.startswith("video_")]
    assert {f.name for f in fields(VideoRuleSettings)} >= {"door_window_s", "persist_frames"}
    monkeypatch.setenv("HAZWATCH_VIDEO__DOOR_WINDOW_S", "90")
    monkeypatch.setenv("HAZWATCH_VIDEO__PERSIST_FRAMES", "4")
    settings = Settings(data_dir=tmp_path)
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    (proc,) = wiring_video.processors(settings, db, ListSink())
    assert isinstance(proc, VideoProcessor)
    assert proc.rules.settings.door_window_s == 90.0
    assert proc.rules.settings.persist_frames == 4
    assert proc.rules.settings.gap_min_missing == VideoRuleSettings().gap_min_missing
    # a camera's silence limit is the presence part's, handed to blind_read
    assert proc.rules.camera_silent_ns == int(settings.presence.camera_silent_s * 1e9)
