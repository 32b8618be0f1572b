"""blind_read: an in or out read at a storage door while every camera watching the door is
offline, covered, too dark or moved, with time passed in (pure rules, then the processor).

Never sleep: frame, read and receive times are arguments.
"""

from __future__ import annotations

import orjson
import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.streams.video.processor import VideoProcessor
from hazwatch.streams.video.rules import (
    BLIND_READ,
    TAMPER_OCCLUSION,
    Finding,
    FrameFacts,
    VideoRules,
)
from hazwatch.streams.video.settings import VideoRuleSettings

S = 1_000_000_000
T0 = 1_795_996_800 * S
SITE, CAM, OTHER, GATE = "jy-0012", "cam-2", "cam-3", "gate-03"
NORMAL = {"brightness": 120.0, "sharpness": 900.0, "motion": 0.0, "occlusion": 0.0}
EPC = "E2801160600002040000ABCD"
# what makes a camera blind, as its edge agent measures it (two frames: persist_frames)
BLINDING = {
    "covered": {"occlusion": 0.97, "scene_change": 1.0, "brightness": 22.0},
    "too_dark": {"brightness": 5.0, "sharpness": 3.0},
    "moved": {"scene_change": 0.8},
}
LOCATIONS = {GATE: "storage_in", "gate-04": "storage_out", "gen-1": "generation"}


def rules_for(
    watching: dict[str, tuple[str, ...]] | None = None, silent_s: float = 30
) -> VideoRules:
    watching = {GATE: (CAM,), "gen-1": (CAM,)} if watching is None else watching

    def door(site: str, reader: str) -> tuple[str | None, tuple[str, ...]]:
        return LOCATIONS.get(reader), watching.get(reader, ())

    def watched(site: str, camera: str) -> list[str]:
        return [reader for reader, cams in watching.items() if camera in cams]

    return VideoRules(
        VideoRuleSettings(persist_frames=2),
        watched,
        door_cameras=door,
        camera_silent_s=silent_s,
    )


def frame(
    rules: VideoRules, seq: int, t_s: float, camera: str = CAM, **values: float
) -> list[Finding]:
    facts = FrameFacts(
        SITE, camera, T0 + int(t_s * S), seq, **{"scene_change": 0.01, **NORMAL, **values}
    )
    return rules.frame(facts, T0 + int(t_s * S))


def read(rules: VideoRules, t_s: float, epc: str = EPC, reader: str = GATE) -> list[Finding]:
    at = T0 + int(t_s * S)
    return [f for f in rules.rfid_read(SITE, reader, at, at, epc) if f.rule == BLIND_READ]


def blind(found: list[Finding]) -> list[tuple[bool, str, dict[str, object]]]:
    return [
        (f.active, f.subject, f.details.get("cameras", {})) for f in found if f.rule == BLIND_READ
    ]


def test_a_read_the_camera_sees_is_no_alert() -> None:
    rules = rules_for()
    for n in range(3):
        frame(rules, n, n * 0.5)
    assert read(rules, 1.2) == []


@pytest.mark.parametrize("condition", sorted(BLINDING))
def test_a_read_while_the_camera_is_blind_is_blind_read_once_per_tag(condition: str) -> None:
    rules = rules_for()
    frame(rules, 0, 0)
    frame(rules, 1, 0.5, **BLINDING[condition])
    assert read(rules, 0.7) == []  # one frame of it: not yet a condition (persist_frames)
    frame(rules, 2, 1.0, **BLINDING[condition])
    found = read(rules, 1.2)
    assert blind(found) == [(True, f"{SITE}/{GATE}", {CAM: condition})]
    (alert,) = found
    assert alert.severity == "major" and alert.details["location"] == "storage_in"
    assert alert.details["epc"] == EPC and EPC in alert.message
    assert read(rules, 1.3) == []  # the same drum's next reads: said already
    assert len(read(rules, 1.4, epc="E2801160600002040000ABCE")) == 1  # another drum
    # the camera sees again: the door is watched, the alert clears
    cleared = frame(rules, 3, 1.5)
    assert blind(cleared) == [(False, f"{SITE}/{GATE}", {})]
    assert read(rules, 1.6) == []


def test_a_read_while_the_camera_is_offline_by_its_will_or_its_silence() -> None:
    rules = rules_for(silent_s=30)
    frame(rules, 0, 0)
    rules.status(SITE, CAM, False, T0 + 1 * S)  # its last will
    assert blind(read(rules, 2)) == [(True, f"{SITE}/{GATE}", {CAM: "offline"})]
    assert blind(frame(rules, 1, 3)) == [(False, f"{SITE}/{GATE}", {})]  # back
    assert read(rules, 20) == []  # 17 s since its last frame
    assert blind(read(rules, 34)) == [(True, f"{SITE}/{GATE}", {CAM: "offline"})]  # 31 s


def test_a_camera_never_heard_is_offline_only_when_the_presence_part_says_so() -> None:
    rules = rules_for(silent_s=30)
    assert read(rules, 0) == [] and read(rules, 3600) == []  # not heard yet: not judged
    offline = {(SITE, CAM): T0}  # device_offline holds for it (its will, before a restart)
    rules.known_offline = lambda site, camera: offline.get((site, camera))
    assert blind(read(rules, 3601, epc="E2801160600002040000ABCE")) == [
        (True, f"{SITE}/{GATE}", {CAM: "offline"})
    ]
    cleared = blind(frame(rules, 0, 3602))  # back: its first good frame clears its doors
    assert (False, f"{SITE}/{GATE}", {}) in cleared
    # a frame here after it went offline says it is back, before the presence part knows
    assert read(rules, 3603, epc="E2801160600002040000ABCF") == []


def test_out_of_focus_is_not_blind() -> None:
    rules = rules_for()
    for n in range(6):
        frame(rules, n, n * 0.5)
    found = frame(rules, 6, 3.0, sharpness=40.0) + frame(rules, 7, 3.5, sharpness=30.0)
    assert [f.rule for f in found if f.active] == ["tamper_defocus"]
    assert read(rules, 3.7) == []


def test_only_storage_doors_and_only_when_every_camera_of_the_door_is_blind() -> None:
    rules = rules_for({GATE: (CAM, OTHER), "gen-1": (CAM,)})
    for n in range(3):
        frame(rules, n, n * 0.5, camera=CAM, **BLINDING["covered"])
        frame(rules, n, n * 0.5, camera=OTHER)
    assert read(rules, 1.2, reader="gen-1") == []  # a generation point's reader: no door
    assert read(rules, 1.2) == []  # cam-3 sees the door
    frame(rules, 3, 1.5, camera=OTHER, **BLINDING["moved"])
    frame(rules, 4, 2.0, camera=OTHER, **BLINDING["moved"])
    assert blind(read(rules, 2.2)) == [(True, f"{SITE}/{GATE}", {CAM: "covered", OTHER: "moved"})]
    assert blind(frame(rules, 5, 2.5, camera=OTHER)) == [(False, f"{SITE}/{GATE}", {})]


def test_a_door_no_camera_watches_is_not_blind() -> None:
    rules = rules_for({})
    assert read(rules, 100) == []


def test_after_a_restart_a_cameras_first_good_frame_clears_its_doors() -> None:
    rules = rules_for()  # a new process: it does not know what the alert store has open
    assert blind(frame(rules, 0, 0)) == [
        (False, f"{SITE}/{GATE}", {}),
        (False, f"{SITE}/gen-1", {}),
    ]
    assert blind(frame(rules, 1, 0.5)) == []  # said once


def test_the_processor_raises_it_for_the_door_with_the_tag_and_clears_it() -> None:
    sink = ListSink()

    def door(site: str, reader: str) -> tuple[str | None, tuple[str, ...]]:
        return ("storage_out", (CAM,)) if reader == "gate-04" else (None, ())

    proc = VideoProcessor(
        sink,
        watched_readers=lambda site, camera: ["gate-04"],
        door_cameras=door,
        camera_silent_s=30,
    )
    ms = T0 // 1_000_000

    def msg(topic: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
        return decode(topic, orjson.dumps(body), NoRegistry(), now_ns=T0 + 2 * S)

    covered = {"occlusion": 0.99, "scene_change": 1.0, "brightness": 20.0}
    batch = [
        msg(f"hw/{SITE}/camera/{CAM}/frame", {"ts": ms, "seq": 1, **covered}),
        msg(f"hw/{SITE}/camera/{CAM}/frame", {"ts": ms + 500, "seq": 2, **covered}),
        msg(f"hw/{SITE}/rfid/gate-04/read", {"ts": ms + 900, "epc": EPC, "rssi": -48.0}),
    ]
    proc.process(batch, T0 + 2 * S)
    assert [(s.rule, s.subject) for s in sink.raised] == [
        (TAMPER_OCCLUSION, f"{SITE}/{CAM}"),
        (BLIND_READ, f"{SITE}/gate-04"),
    ]
    signal = sink.raised[1]
    assert signal.details == {
        "reader": "gate-04",
        "location": "storage_out",
        "epc": EPC,
        "cameras": {CAM: "covered"},
        "tags": 1,
    }
    assert signal.at_ns == T0 + 900_000_000  # the read's own time
    proc.process([msg(f"hw/{SITE}/camera/{CAM}/frame", {"ts": ms + 1000, "seq": 3})], T0 + 3 * S)
    assert (BLIND_READ, f"{SITE}/gate-04") in {(r, s) for r, s, _ in sink.cleared}
