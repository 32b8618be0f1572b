"""Video rules, each with its smallest story (pure: no clock, no I/O), and the same rules on two
workers that each see half of a camera's frames, confirming against one embedded point store."""

from __future__ import annotations

from pathlib import Path

from hazwatch.alerts.model import ListSink
from hazwatch.base.points import Point
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.pointstore import PointStore
from hazwatch.streams.video.processor import VideoProcessor, ask
from hazwatch.streams.video.rules import (
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
)
from hazwatch.streams.video.settings import VideoRuleSettings

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
    assert {(f.rule, f.active) for f in cleared} == {(r, False) for r in TAMPER_RULES}
    return rules


def feed(rules: VideoRules, frames: list[FrameFacts]) -> list[tuple[str, bool]]:
    return [(f.rule, f.active) for fr in frames for f in rules.frame(fr)]


def test_seq_jump_is_a_frame_gap_after_the_grace_and_restart_is_not() -> None:
    rules = fresh(VideoRuleSettings(confirm_grace_s=10))
    assert feed(rules, [frame(1, 0.5)]) == []
    assert rules.frame(frame(4, 1.0), T0 + 1 * S) == []  # another worker may have 2 and 3
    assert rules.tick(T0 + 10 * S) == []
    found = rules.tick(T0 + 11 * S)
    assert [(f.rule, f.details["missing"], f.details["missing_seqs"]) for f in found] == [
        (FRAME_GAP, 2, [2, 3])
    ]
    assert rules.tick(T0 + 20 * S) == []  # raised once
    assert feed(rules, [frame(0, 2.0)]) == []  # agent restarted: seq from 0, time moved on
    assert rules.tick(T0 + 30 * S) == []


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


def test_a_camera_offline_raises_nothing_here_it_is_device_offline() -> None:
    # one rule for every family's devices: the presence part's (test_presence.py)
    rules = VideoRules(camera_silent_s=30)
    assert rules.status("jy-0012", "cam-2", False, T0) == []
    assert feed(rules, [frame(0, 1)]) == [(r, False) for r in TAMPER_RULES]
    assert rules.tick(T0 + 40 * S) == []  # silent: no camera_offline any more


def test_door_motion_with_no_read_in_the_window_raises_after_it() -> None:
    rules = VideoRules(VideoRuleSettings(door_window_s=60), lambda site, cam: ["gate-03"])
    feed(rules, [frame(0, 0), frame(1, 1, motion=0.05, snapshot="m.jpg")])
    assert rules.tick(T0 + 30 * S) == []  # still waiting: a read may come
    assert door(rules.tick(T0 + 62 * S)) == []  # the window passed; the grace (10 s) not yet
    found = door(rules.tick(T0 + 72 * S))
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
    assert len(sink.raised) == 1  # a camera's will is the presence part's device_offline


def test_after_a_restart_the_first_normal_frame_clears_what_was_open() -> None:
    rules = VideoRules()  # a new process: it does not know what the alert store has open
    assert (TAMPER_OCCLUSION, False) in set(feed(rules, [frame(0, 0)]))
    assert feed(rules, [frame(1, 0.5)]) == []  # said once, not on every frame


# ── two workers on one shared subscription, one point store ──

SITE, CAM, GATE = "jy-0012", "cam-2", "gate-03"


class SharedWorkers:
    """Two rule instances that get a camera's frames round robin, as a shared subscription
    hands them out, and a PointStore that keeps what every worker wrote (the real one)."""

    def __init__(self, path: Path) -> None:
        self.store = PointStore(path)
        settings = VideoRuleSettings(door_window_s=60, confirm_grace_s=10)
        self.workers = [
            VideoRules(settings, lambda site, cam: [GATE], confirm=True) for _ in range(2)
        ]
        self.turn = 0

    def next_worker(self) -> VideoRules:
        worker = self.workers[self.turn % 2]
        self.turn += 1
        return worker

    def frame(self, seq: int, t_s: float, **values: object) -> None:
        facts = frame(seq, t_s, **values)
        self.next_worker().frame(facts, facts.ts_ns)
        motion = facts.motion if facts.motion is not None else 0.0
        fields = {"seq": seq, "motion": motion}
        self.store.write(
            [Point("video_frame", {"site": SITE, "camera": CAM}, fields, facts.ts_ns).to_line()]
        )

    def read(self, t_s: float, worker: int) -> None:
        ts = T0 + int(t_s * S)
        self.workers[worker].rfid_read(SITE, GATE, ts)
        tags = {"site": SITE, "reader": GATE, "location_kind": "storage_in", "epc": "E1"}
        self.store.write([Point("waste_read", tags, {"rssi": -50.0}, ts).to_line()])

    def tick(self, t_s: float) -> list[Finding]:
        """Each worker's tick and one confirmation round against the store."""
        now = T0 + int(t_s * S)
        found: list[Finding] = []
        for worker in self.workers:
            found += worker.tick(now)
            found += worker.settle(round_ := worker.take_due(now), ask(self.store, round_))
        return found


def test_frames_split_between_two_workers_are_no_gap(tmp_path: Path) -> None:
    shared = SharedWorkers(tmp_path / "points.db")
    for seq in range(20):
        shared.frame(seq, seq * 0.5)
    assert [w.gaps for w in shared.workers] != [[], []]  # each saw seqs jump by 2
    assert shared.tick(5) == []  # within the grace: nothing asked yet
    assert [f for f in shared.tick(25) if f.rule == FRAME_GAP] == []
    assert [w.gaps for w in shared.workers] == [[], []]  # every candidate settled


def test_a_really_lost_frame_is_one_gap_with_its_seq(tmp_path: Path) -> None:
    shared = SharedWorkers(tmp_path / "points.db")
    for seq in range(20):
        if seq == 11:
            continue  # sent by the camera, never stored by anyone
        shared.frame(seq, seq * 0.5)
    gaps = [f for f in shared.tick(25) if f.rule == FRAME_GAP]
    assert [
        (f.details["missing"], f.details["missing_seqs"], f.details["from_seq"]) for f in gaps
    ] == [(1, [11], 10)]
    assert "seq 10 → 12" in gaps[0].message
    assert [f for f in shared.tick(40) if f.rule == FRAME_GAP] == []


def test_a_lost_run_of_frames_is_raised_once_with_all_its_seqs(tmp_path: Path) -> None:
    shared = SharedWorkers(tmp_path / "points.db")
    for seq in [*range(10), *range(14, 20)]:  # 10..13 lost
        shared.frame(seq, seq * 0.5)
    gaps = [f for f in shared.tick(25) if f.rule == FRAME_GAP]
    assert [f.details["missing_seqs"] for f in gaps] == [[10, 11, 12, 13]]


def test_door_motion_on_one_worker_explained_by_a_read_on_the_other(tmp_path: Path) -> None:
    shared = SharedWorkers(tmp_path / "points.db")
    shared.frame(0, 0)
    shared.frame(1, 1, motion=0.05)  # worker 1 sees the motion start
    shared.read(20, worker=0)  # the tag read goes to worker 0
    assert shared.workers[1].pending  # worker 1 alone cannot explain it
    assert door(shared.tick(80)) == []  # past window and grace: the store has the read
    assert [w.pending for w in shared.workers] == [[], []]


def test_door_motion_with_no_read_anywhere_raises_once(tmp_path: Path) -> None:
    shared = SharedWorkers(tmp_path / "points.db")
    shared.frame(0, 0)
    for seq in range(1, 6):  # one episode of motion over five frames, both workers see some
        shared.frame(seq, seq * 0.5, motion=0.05, snapshot=f"m{seq}.jpg")
    shared.frame(6, 3)
    assert door(shared.tick(30)) == []  # the window (60 s) is still open
    found = door(shared.tick(80))
    assert [(f.rule, f.evidence, f.at_ns) for f in found] == [
        (DOOR_MOTION_NO_READ, "m1.jpg", T0 + S // 2)
    ]
    assert door(shared.tick(120)) == []


def test_store_down_keeps_candidates_for_the_next_round(tmp_path: Path) -> None:
    shared = SharedWorkers(tmp_path / "points.db")
    for seq in [0, 1, 3, 4]:
        shared.frame(seq, seq * 0.5)
    worker = shared.workers[0]  # saw 0, 3: seqs 1 (stored), 2 (lost)
    round_ = worker.take_due(T0 + 30 * S)
    assert round_.gaps and worker.gaps == []
    assert worker.settle(round_, {key: None for key in round_.queries}) == []
    assert len(worker.gaps) == 1  # back, for the next round
    found = [f for f in shared.tick(40) if f.rule == FRAME_GAP]
    assert [f.details["missing_seqs"] for f in found] == [[2]]


def test_confirmation_queries_are_one_per_camera_and_reader_and_bounded(tmp_path: Path) -> None:
    settings = VideoRuleSettings(confirm_grace_s=0, confirm_max_queries=2)
    rules = VideoRules(settings, lambda site, cam: [GATE], confirm=True)
    for cam in ("cam-1", "cam-2", "cam-3"):
        for seq, t_s in ((0, 0), (2, 1), (4, 2), (6, 3)):
            rules.frame(FrameFacts(SITE, cam, T0 + t_s * S, seq, motion=0.0), T0)
    round_ = rules.take_due(T0 + S)
    assert sorted(round_.queries) == [("frames", SITE, "cam-1"), ("frames", SITE, "cam-2")]
    assert len(round_.gaps) == 6 and len(rules.gaps) == 3  # cam-3 waits for the next round
    query = round_.queries[("frames", SITE, "cam-1")]
    assert (query.start_ns, query.end_ns) == (T0 + 1, T0 + 3 * S)


def test_processor_confirms_off_the_batch_path_and_raises_at_a_later_tick(tmp_path: Path) -> None:
    store = PointStore(tmp_path / "points.db")
    sink = ListSink()
    proc = VideoProcessor(sink, reader=store)
    now = T0 + 10 * S
    ms = T0 // 1_000_000
    batch = [
        decode(
            f"hw/{SITE}/camera/{CAM}/frame",
            f'{{"ts": {ms + 500 * n}, "seq": {n}}}'.encode(),
            NoRegistry(),
            now_ns=now,
        )
        for n in (0, 1, 3)  # seq 2 lost
    ]
    proc.process(batch, now)
    store.write([p.to_line() for d in batch for p in d.points])
    assert sink.raised == []
    proc.tick(now + 5 * S)  # within the grace: nothing asked
    assert proc._asking is None
    proc.tick(now + 11 * S)  # the round starts on its own thread
    proc.close()
    assert sink.raised == []
    proc.tick(now + 16 * S)  # its verdict
    assert [(s.rule, s.details["missing_seqs"]) for s in sink.raised] == [(FRAME_GAP, [2])]
