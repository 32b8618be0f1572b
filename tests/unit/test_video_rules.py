"""Video rules, each with its smallest story (pure: no clock, no I/O)."""

from __future__ import annotations

from alerts.model import ListSink
from devices.decode import decode
from devices.family import NoRegistry
from streams.video import (
    CAMERA_OFFLINE,
    CAMERA_TOO_DARK,
    DOOR_MOTION_NO_READ,
    FRAME_GAP,
    TAMPER_DEFOCUS,
    TAMPER_OCCLUSION,
    TAMPER_RULES,
    TAMPER_SCENE_CHANGE,
    Finding,
    FrameFacts,
    VideoRules,
    VideoRuleSettings,
)
from streams.video_processor import VideoProcessor

S = 1_000_000_000
T0 = 1_764_000_000 * S
NORMAL = {
    "brightness": 120.0,
    "sharpness": 900.0,
    "motion": 0.0,
    "occlusion": 0.0,
    "scene_change": 0.01,
}


def frame(seq: int, t_s: float, **values: object) -> FrameFacts:
    merged = {**NORMAL, **values}
    return FrameFacts("jy-0012", "cam-2", T0 + int(t_s * S), seq, **merged)  # type: ignore[arg-type]


def door(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.rule == DOOR_MOTION_NO_READ]  # (the camera went silent too)


def fresh(settings: VideoRuleSettings | None = None, watched=None) -> VideoRules:  # type: ignore[no-untyped-def]
    """Rules that already heard a normal frame 0 (the first frame clears what a restart forgot)."""
    rules = VideoRules(settings, watched)
    cleared = rules.frame(frame(0, 0))
    assert {(f.rule, f.active) for f in cleared} == {
        (r, False) for r in (CAMERA_OFFLINE, *TAMPER_RULES)
    }
    return rules


def feed(rules: VideoRules, frames: list[FrameFacts]) -> list[tuple[str, bool]]:
    return [(f.rule, f.active) for fr in frames for f in rules.frame(fr)]


def test_seq_jump_is_a_frame_gap_and_restart_is_not() -> None:
    rules = fresh()
    assert feed(rules, [frame(1, 0.5)]) == []
    found = rules.frame(frame(4, 1.0))
    assert [(f.rule, f.details["missing"]) for f in found] == [(FRAME_GAP, 2)]
    assert feed(rules, [frame(0, 2.0)]) == []  # agent restarted: seq from 0, time moved on


def test_redelivered_frame_changes_nothing() -> None:
    rules = fresh()
    feed(rules, [frame(1, 0.5)])
    assert feed(rules, [frame(1, 0.5), frame(0, 0)]) == []


def test_covered_lens_raises_occlusion_after_two_frames_with_its_snapshot_and_clears() -> None:
    rules = fresh(VideoRuleSettings(persist_frames=2))
    assert rules.frame(frame(1, 0.5, occlusion=0.95, scene_change=1.0, snapshot="a.jpg")) == []
    found = rules.frame(frame(2, 1.0, occlusion=0.97, scene_change=1.0))
    assert [(f.rule, f.active, f.evidence) for f in found] == [(TAMPER_OCCLUSION, True, "a.jpg")]
    assert feed(rules, [frame(3, 1.5)]) == [(TAMPER_OCCLUSION, False)]


def test_moved_camera_is_scene_change_tamper() -> None:
    rules = fresh()
    found = feed(rules, [frame(1, 0.5, scene_change=0.8), frame(2, 1, scene_change=0.8)])
    assert found == [(TAMPER_SCENE_CHANGE, True)]


def test_sharpness_far_below_the_cameras_baseline_is_defocus() -> None:
    rules = fresh()
    feed(rules, [frame(i, i * 0.5) for i in range(1, 6)])
    found = feed(rules, [frame(6, 3.0, sharpness=50.0), frame(7, 3.5, sharpness=40.0)])
    assert found == [(TAMPER_DEFOCUS, True)]


def test_too_dark_is_its_own_rule_not_defocus() -> None:
    rules = fresh()
    feed(rules, [frame(i, i * 0.5) for i in range(1, 6)])
    found = feed(
        rules,
        [
            frame(6, 3.0, brightness=5.0, sharpness=3.0),
            frame(7, 3.5, brightness=5.0, sharpness=3.0),
        ],
    )
    assert found == [(CAMERA_TOO_DARK, True)]


def test_offline_by_status_and_by_silence_cleared_by_a_frame() -> None:
    rules = VideoRules(VideoRuleSettings(offline_after_s=30))
    assert [f.rule for f in rules.status("jy-0012", "cam-2", False, T0)] == [CAMERA_OFFLINE]
    assert (CAMERA_OFFLINE, False) in feed(rules, [frame(0, 1)])
    assert rules.tick(T0 + 20 * S) == []
    assert [(f.rule, f.active) for f in rules.tick(T0 + 32 * S)] == [(CAMERA_OFFLINE, True)]
    assert rules.tick(T0 + 40 * S) == []  # raised once


def test_door_motion_with_no_read_in_the_window_raises_after_it() -> None:
    rules = VideoRules(VideoRuleSettings(door_window_s=60), lambda site, cam: ["gate-03"])
    feed(rules, [frame(0, 0), frame(1, 1, motion=0.05, snapshot="m.jpg")])
    assert rules.tick(T0 + 30 * S) == []  # still waiting: a read may come
    found = door(rules.tick(T0 + 62 * S))
    assert [(f.rule, f.evidence) for f in found] == [(DOOR_MOTION_NO_READ, "m.jpg")]


def test_door_motion_explained_by_a_read_before_or_after() -> None:
    rules = VideoRules(VideoRuleSettings(door_window_s=60), lambda site, cam: ["gate-03"])
    rules.rfid_read("jy-0012", "gate-03", T0 - 10 * S)
    feed(rules, [frame(0, 0), frame(1, 1, motion=0.05)])
    feed(rules, [frame(2, 2), frame(3, 100, motion=0.05)])  # second episode, read comes later
    rules.rfid_read("jy-0012", "gate-03", T0 + 120 * S)
    assert door(rules.tick(T0 + 300 * S)) == []


def test_door_motion_at_a_camera_that_watches_no_reader_is_nothing() -> None:
    rules = VideoRules()
    feed(rules, [frame(0, 0), frame(1, 1, motion=0.5)])
    assert door(rules.tick(T0 + 600 * S)) == []


def test_processor_consumes_decoded_frames_and_reads_and_raises_through_the_sink() -> None:
    sink = ListSink()
    proc = VideoProcessor(sink, watched_readers=lambda site, cam: ["gate-03"])
    now = T0 + 10 * S

    def msg(topic: str, body: str):  # type: ignore[no-untyped-def]
        return decode(topic, body.encode(), NoRegistry(), now_ns=now)

    ms = T0 // 1_000_000
    snap = {"name": "jy-0012_cam-2_x_1_occlusion.jpg", "sha256": "0" * 64}
    import orjson

    batch = [
        msg(
            "hw/jy-0012/camera/cam-2/frame",
            orjson.dumps({"ts": ms, "seq": 0, "occlusion": 0.0}).decode(),
        ),
        msg(
            "hw/jy-0012/camera/cam-2/frame",
            orjson.dumps(
                {
                    "ts": ms + 500,
                    "seq": 1,
                    "occlusion": 0.99,
                    "snapshot": snap,
                    "event": "occlusion",
                }
            ).decode(),
        ),
        msg(
            "hw/jy-0012/camera/cam-2/frame",
            orjson.dumps({"ts": ms + 1000, "seq": 2, "occlusion": 0.99}).decode(),
        ),
        msg(
            "hw/jy-0012/rfid/gate-03/read",
            orjson.dumps({"ts": ms + 900, "epc": "E2801160600002040000ABCD"}).decode(),
        ),
    ]
    assert proc.process(batch, now) == []
    assert [(s.rule, s.subject, s.evidence) for s in sink.raised] == [
        (TAMPER_OCCLUSION, "jy-0012/cam-2", snap["name"])
    ]
    proc.process(batch, now)  # redelivered: nothing new
    assert len(sink.raised) == 1
    proc.process([msg("hw/jy-0012/camera/cam-2/status", '{"online": false}')], now)
    assert [s.rule for s in sink.raised][-1] == CAMERA_OFFLINE


def test_after_a_restart_the_first_normal_frame_clears_what_was_open() -> None:
    rules = VideoRules()  # a new process: it does not know what the alert store has open
    assert {(TAMPER_OCCLUSION, False), (CAMERA_OFFLINE, False)} <= set(feed(rules, [frame(0, 0)]))
    assert feed(rules, [frame(1, 0.5)]) == []  # said once, not on every frame
