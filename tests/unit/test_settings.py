"""Settings: env and the settings file, merged field by field; each part's thresholds a table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.parts import PartContext
from hazwatch.parts.air import AirPart
from hazwatch.parts.custody import CustodyPart
from hazwatch.parts.presence import PresencePart
from hazwatch.parts.video import VideoPart
from hazwatch.settings import PART_TABLES, Settings, load_settings
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.video.settings import VideoRuleSettings


@pytest.fixture(autouse=True)
def _no_hazwatch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HAZWATCH_")]:
        monkeypatch.delenv(name)


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hazwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_each_part_table_is_its_settings_dataclass_with_its_defaults() -> None:
    defaults = Settings()
    assert set(PART_TABLES) <= set(Settings.model_fields)
    assert defaults.custody == CustodyLimits()
    assert defaults.video == VideoRuleSettings()
    assert defaults.air == HourlySettings()


def test_env_overrides_one_field_of_a_file_table_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings_file(
        tmp_path,
        "mqtt_client_id = 'from-file'\napi_port = 9000\n"
        "[custody]\nunknown_tag_grace_s = 0\ntransit_limit_h = 48\n",
    )
    monkeypatch.setenv("HAZWATCH_CUSTODY__TRANSIT_LIMIT_H", "12")
    monkeypatch.setenv("HAZWATCH_API_PORT", "9100")
    loaded = load_settings(path)
    assert loaded.custody == CustodyLimits(unknown_tag_grace_s=0, transit_limit_h=12)
    assert (loaded.mqtt_client_id, loaded.api_port) == ("from-file", 9100)


def test_a_video_table_and_an_env_override_combine_field_by_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings_file(tmp_path, "[video]\ndoor_window_s = 90\npersist_frames = 4\n")
    monkeypatch.setenv("HAZWATCH_VIDEO__DOOR_WINDOW_S", "120")
    monkeypatch.setenv("HAZWATCH_VIDEO__CONFIRM_GRACE_S", "0")
    video = load_settings(path).video
    assert isinstance(video, VideoRuleSettings)
    assert (video.door_window_s, video.persist_frames, video.confirm_grace_s) == (120, 4, 0)
    assert video.gap_min_missing == VideoRuleSettings().gap_min_missing  # neither set it
    monkeypatch.delenv("HAZWATCH_VIDEO__DOOR_WINDOW_S")
    assert load_settings(path).video.door_window_s == 90


def test_an_air_table_and_env_combine_and_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings_file(tmp_path, "[air]\nclose_after_clock_s = 600\nspike_ratio = 4\n")
    monkeypatch.setenv("HAZWATCH_AIR__SPIKE_RATIO", "3")
    assert load_settings(path).air == HourlySettings(close_after_clock_s=600, spike_ratio=3)
    monkeypatch.setenv("HAZWATCH_AIR__MIN_VALID_MINUTES", "61")
    with pytest.raises(ConfigError, match="setting HAZWATCH_AIR__MIN_VALID_MINUTES: "):
        load_settings(path)


def test_each_part_is_handed_its_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The composition root gives each part its own settings; no part reads another source."""
    monkeypatch.setenv("HAZWATCH_CUSTODY__MAX_SPEED_KMH", "90")
    monkeypatch.setenv("HAZWATCH_VIDEO__DOOR_WINDOW_S", "90")
    monkeypatch.setenv("HAZWATCH_AIR__CLOSE_AFTER_CLOCK_S", "90")
    monkeypatch.setenv("HAZWATCH_PRESENCE__CAMERA_SILENT_S", "12")
    settings = load_settings(None, data_dir=tmp_path)
    ctx = PartContext(settings, StateDB(f"sqlite:///{tmp_path / 'state.db'}"), ListSink())
    (custody,) = CustodyPart(ctx).processors()
    (video,) = VideoPart(ctx).processors()
    (air,) = AirPart(ctx).processors()
    assert custody.limits is settings.custody  # type: ignore[attr-defined]
    assert custody.tracker.geo.limits.max_speed_kmh == 90  # type: ignore[attr-defined]
    assert video.rules.settings is settings.video  # type: ignore[attr-defined]
    assert air.settings is settings.air  # type: ignore[attr-defined]
    (presence,) = PresencePart(ctx).processors()
    assert presence.settings is settings.presence  # type: ignore[attr-defined]
    assert settings.presence.camera_silent_s == 12
    # blind_read's "the camera is offline" is the presence part's limit, handed to video
    assert video.rules.camera_silent_ns == 12 * 1_000_000_000  # type: ignore[attr-defined]


def test_a_part_table_inside_the_hazwatch_table(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path, "[hazwatch]\napi_port = 9000\n[hazwatch.custody]\nmax_speed_kmh = 90\n"
    )
    loaded = load_settings(path)
    assert loaded.api_port == 9000 and loaded.custody.max_speed_kmh == 90
    beside = settings_file(tmp_path, "[hazwatch]\napi_port = 9000\n[custody]\nmax_speed_kmh = 90\n")
    with pytest.raises(ConfigError, match=r"\[custody\] is outside the \[hazwatch\] table"):
        load_settings(beside)


def test_keyword_overrides_win_over_env_field_by_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAZWATCH_CUSTODY__MAX_SPEED_KMH", "90")
    monkeypatch.setenv("HAZWATCH_CUSTODY__UNKNOWN_TAG_GRACE_S", "60")
    loaded = load_settings(None, custody={"unknown_tag_grace_s": 0})
    assert loaded.custody == CustodyLimits(max_speed_kmh=90, unknown_tag_grace_s=0)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[custody]\nspeed = 3\n", {}, "unknown setting 'custody.speed'"),
        ("", {"HAZWATCH_CUSTODY__SPEED": "3"}, "unknown setting 'custody.speed'"),
        ("nope = 1\n", {}, "unknown setting 'nope'"),
        ("[video]\nfoo = 1\n", {}, "unknown setting 'video.foo'"),
        ("[hazwatch.video]\nfoo = 1\n", {}, "unknown setting 'video.foo'"),
        ("", {"HAZWATCH_VIDEO__FOO": "1"}, "unknown setting 'video.foo'"),
        (
            "video_door_window_s = 90\n",
            {},
            "setting 'video_door_window_s' (HAZWATCH_VIDEO_DOOR_WINDOW_S) was renamed "
            "'video.door_window_s' (HAZWATCH_VIDEO__DOOR_WINDOW_S)",
        ),
        (
            "",
            {"HAZWATCH_BATCH_MAX_WAIT_MS": "20"},
            "setting 'batch_max_wait_ms' (HAZWATCH_BATCH_MAX_WAIT_MS) was renamed "
            "'message_batch_wait_ms' (HAZWATCH_MESSAGE_BATCH_WAIT_MS)",
        ),
        (
            "[video]\nocclusion_on = 1.5\n",
            {},
            "setting HAZWATCH_VIDEO__OCCLUSION_ON: Input should be less than or equal to 1",
        ),
        (
            "",
            {"HAZWATCH_VIDEO__PERSIST_FRAMES": "0"},
            "setting HAZWATCH_VIDEO__PERSIST_FRAMES: Input should be greater than or equal to 1",
        ),
        (
            "[custody]\nweight_tolerance_pct = 101\n",
            {},
            "setting HAZWATCH_CUSTODY__WEIGHT_TOLERANCE_PCT: Input should be less than or equal",
        ),
        (
            "",
            {"HAZWATCH_CUSTODY__MAX_SPEED_KMH": "fast"},
            "setting HAZWATCH_CUSTODY__MAX_SPEED_KMH: Input should be a valid number",
        ),
        ("custody = 3\n", {}, "setting HAZWATCH_CUSTODY: "),
        # device_offline took over camera_offline's and station_stale's limits (#12)
        (
            "[video]\noffline_after_s = 60\n",
            {},
            "setting 'video.offline_after_s' (HAZWATCH_VIDEO__OFFLINE_AFTER_S) was renamed "
            "'presence.camera_silent_s' (HAZWATCH_PRESENCE__CAMERA_SILENT_S)",
        ),
        (
            "",
            {"HAZWATCH_AIR__STALE_AFTER_S": "600"},
            "setting 'air.stale_after_s' (HAZWATCH_AIR__STALE_AFTER_S) was renamed "
            "'presence.air_silent_s' (HAZWATCH_PRESENCE__AIR_SILENT_S)",
        ),
        (
            "[presence]\ncamera_silent_s = -1\n",
            {},
            "setting HAZWATCH_PRESENCE__CAMERA_SILENT_S: Input should be greater than or equal "
            "to 0",
        ),
        (
            "",
            {"HAZWATCH_PRESENCE__AIR_SILENT_S": "half an hour"},
            "setting HAZWATCH_PRESENCE__AIR_SILENT_S: Input should be a valid number",
        ),
        (
            "[presence]\nrfid_silent_s = 5000000\n",
            {},
            "setting HAZWATCH_PRESENCE__RFID_SILENT_S: Input should be less than or equal to",
        ),
        ("[presence]\nsilent_s = 3\n", {}, "unknown setting 'presence.silent_s'"),
        (
            "[air]\nspike_min_readings = 2\n",
            {},
            "setting HAZWATCH_AIR__SPIKE_MIN_READINGS: Input should be greater than or equal to 3",
        ),
        (
            "",
            {"HAZWATCH_AIR__AQI_ALERT_ABOVE": "501"},
            "setting HAZWATCH_AIR__AQI_ALERT_ABOVE: Input should be less than or equal to 500",
        ),
    ],
)
def test_a_wrong_part_setting_fails_with_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_file(tmp_path, text))
    assert str(caught.value).startswith(expected), str(caught.value)


def test_message_batch_settings_say_message_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "batch" alone is a waste batch; the MQTT messages handled together are a message batch."""
    assert not [name for name in Settings.model_fields if name.startswith("batch_")]
    monkeypatch.setenv("HAZWATCH_MESSAGE_BATCH_MAX", "500")
    monkeypatch.setenv("HAZWATCH_MESSAGE_BATCH_WAIT_MS", "20")
    monkeypatch.setenv("HAZWATCH_MESSAGE_BATCH_WORKERS", "2")
    loaded = load_settings()
    assert (loaded.message_batch_max, loaded.message_batch_wait_ms) == (500, 20)
    assert loaded.message_batch_workers == 2


def test_the_sample_settings_file_holds_the_tolerances_the_sample_registry_held() -> None:
    sample = Path(__file__).parents[1] / "data" / "settings.toml"
    # and its doors report a tag once per pass (the sample stories' one read per stage)
    assert load_settings(sample).custody == CustodyLimits(unknown_tag_grace_s=0, door_min_dwell_s=0)


def test_the_clone_slack_is_a_custody_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAZWATCH_CUSTODY__CLONE_SLACK_KM", "12.5")
    assert load_settings(None, data_dir=tmp_path).custody.clone_slack_km == 12.5
    monkeypatch.setenv("HAZWATCH_CUSTODY__CLONE_SLACK_KM", "-1")
    with pytest.raises(ConfigError, match=r"^setting HAZWATCH_CUSTODY__CLONE_SLACK_KM: "):
        load_settings(None, data_dir=tmp_path)
