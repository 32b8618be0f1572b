"""Custody's hot path (issue #18, items 1, 2 and 8): a reader's reads of an ingest batch go in
as one `Reads`, the store keeps passes (custody_pass) and a log of the batches' reads
(custody_read_log) instead of a row per read, what only grows is written at the tick, and a
cross-read is placed once both passes have ended, so that no stage entry or alert flaps.

Never compare the hot path with itself: the reference is the tracker given every read as a
`Read`, one by one, all at once (the definition), or what physically happened.
"""

from __future__ import annotations

import json
import random
import tempfile
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.alerts.model import ListSink
from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.registry import Registry, RegistryContext, parse_registry
from hazwatch.streams.custody import rules, store
from hazwatch.streams.custody.processor import CustodyProcessor, event_id, geography, to_inputs
from hazwatch.streams.custody.rules import (
    Judgement,
    Read,
    Reads,
    Registration,
    Tracker,
    classify,
    passes,
    read_event_id,
)
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore
from tests import custody_example as story

CHINA = timezone(timedelta(hours=8))
S = 1_000_000_000
MS = 1_000_000
H = 3600 * S
T0 = int(datetime(2026, 12, 31, 12, 0, tzinfo=CHINA).timestamp()) * S
LIMITS = CustodyLimits(unknown_tag_grace_s=0)
EXAMPLE = parse_registry(tomllib.loads(story.REGISTRY), "example")
# the store's in door and, beside it, a second out door whose field overlaps the in door's
DOORS = parse_registry(
    tomllib.loads(
        f'{story.REGISTRY}\n[[reader]]\nid = "gate-05"\nsite = "{story.SITE}"\n'
        'location = "storage_out"\noverlaps = ["gate-03"]\n'
    ),
    "doors",
)
WINDOW_NS = int(LIMITS.cross_read_window_s * S)


def processor(db: StateDB, registry: Registry = EXAMPLE) -> CustodyProcessor:
    tracker = Tracker()
    ctx = RegistryContext(None, registry, batches=tracker.epc_batch)
    return CustodyProcessor(tracker, ctx, ListSink(), CustodyStore(db), limits=LIMITS)


def decoded(proc: CustodyProcessor, messages: list[tuple[str, bytes]], now: int) -> list[Decoded]:
    return [decode(t, p, proc.registry, now_ns=now) for t, p in messages]


def stored(db: StateDB) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    events = db.query(
        "SELECT event_id, stage, ts_ns, device, last_ns, reads, peak_rssi, antenna "
        "FROM custody_event ORDER BY event_id"
    )
    notes = db.query(
        "SELECT pass_id, why, ts_ns, device, last_ns, reads, peak_rssi, antenna, note "
        "FROM custody_diagnostic ORDER BY pass_id"
    )
    return [tuple(r) for r in events], [tuple(r) for r in notes]


def rows_of(
    judged: dict[str, Judgement],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What the verdicts say custody_event and custody_diagnostic must hold (as `stored`)."""
    events = [
        (e.event_id, e.stage, e.ts_ns, e.device, e.last_ns, e.reads, e.peak_rssi, e.antenna)
        for j in judged.values()
        for e in j.events
    ]
    notes = [
        (d.pass_id, d.why, d.ts_ns, d.device, d.last_ns, d.reads, d.peak_rssi, d.antenna, d.note)
        for j in judged.values()
        for d in j.diagnostics
    ]
    return sorted(events), sorted(notes)  # type: ignore[type-var]


def test_a_read_keeps_its_event_id() -> None:
    """The hot path names a pass by its first read's id without making a Read: the same id."""
    topic = f"hw/{story.SITE}/rfid/gate-03/read"
    assert read_event_id(story.SITE, "gate-03", 1_798_690_200_040 * MS, story.EPC) == event_id(
        topic, 1_798_690_200_040 * MS, story.EPC
    )


# ---------------------------------------------------------------- the same custody, cheaper


@pytest.fixture(scope="module")
def example() -> story.Example:
    return story.example(T0)


def reference(example: story.Example, registry: Registry) -> dict[str, Judgement]:
    """The tracker given every read as a Read, all at once: the definition."""
    ctx = RegistryContext(None, registry)
    items = to_inputs([decode(t, p, ctx, now_ns=example.end_ns) for t, p in example.messages], ctx)
    tracker = Tracker(geography(registry, LIMITS))
    tracker.apply(items, T0 + 10 * H)
    tracker.check(T0 + 10 * H)
    return dict(tracker.judged)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    chunk=st.sampled_from([1, 7, 64, 500, 5000]),
    doors=st.booleans(),
)
def test_reads_in_any_order_and_batching_with_redeliveries_judge_as_the_reads_one_by_one(
    example: story.Example, seed: int, chunk: int, doors: bool
) -> None:
    registry = DOORS if doors else EXAMPLE
    want = reference(example, registry)
    rng = random.Random(seed)
    messages = list(example.messages)
    messages += rng.sample(messages, len(messages) // 10)  # QoS 1 redeliveries, anywhere
    rng.shuffle(messages)
    ctx = RegistryContext(None, registry)
    tracker = Tracker(geography(registry, LIMITS))
    for start in range(0, len(messages), chunk):
        part = [
            decode(t, p, ctx, now_ns=example.end_ns) for t, p in messages[start : start + chunk]
        ]
        inputs = to_inputs(part, ctx, grouped=True)
        assert not any(isinstance(i, Read) for i in inputs)
        tracker.apply(inputs, T0 + 10 * H)
    tracker.check(T0 + 10 * H)
    assert tracker.judged == want


def test_a_pass_going_on_is_judged_as_if_judged_whole(example: story.Example) -> None:
    """After every ingest batch the verdicts are those of everything so far given at once."""
    ctx = RegistryContext(None, EXAMPLE)
    groups = to_inputs([decode(t, p, ctx, now_ns=example.end_ns) for t, p in example.messages], ctx)
    live = Tracker(geography(EXAMPLE, LIMITS))
    for end in range(0, len(groups), 131):
        part = groups[end : end + 131]
        grouped: list[rules.Input] = [i for i in part if not isinstance(i, Read)]
        reads = [i for i in part if isinstance(i, Read)]
        if reads:
            grouped += [
                Reads(
                    r.site, r.device, r.location, [(r.epc, r.ts_ns, r.rssi, r.antenna)]
                )  # one Reads per read: passes grow by a piece of one read
                for r in reads
            ]
        live.apply(grouped, T0 + 10 * H)
        whole = Tracker(geography(EXAMPLE, LIMITS))
        whole.apply(groups[: end + 131], T0 + 10 * H)
        assert live.judged == whole.judged, end


def test_only_a_growing_pass_waits_for_the_tick(tmp_path: Path, example: story.Example) -> None:
    """A pass going on is one row per checkpoint, not per batch; the reads are in the log."""
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    proc = processor(db)
    now = example.end_ns + H
    messages = decoded(proc, example.messages, now)
    carried = [i for i, m in enumerate(example.messages) if b"gate-03" in m[0].encode()][:200]
    head = messages[: carried[0] + 50]  # registered, and the first 50 reads of the carry-in
    proc.process(head, now)
    events, _ = stored(db)
    assert [e[1] for e in sorted(events, key=lambda e: e[2])] == ["GENERATED", "STORED"]
    for k in range(50, 200, 25):  # a second of reads at a time
        assert proc.process(messages[carried[0] + k : carried[0] + k + 25], now) == []
    rows = {e[1]: e for e in stored(db)[0]}
    assert rows["STORED"][5] < 200  # written when the stage was entered, not since
    logged = db.query("SELECT SUM(reads) FROM custody_read_log")[0][0]
    assert logged == 200 and db.query("SELECT COUNT(*) FROM custody_input")[0][0] == 3
    points = proc.tick(now)
    assert stored(db) == rows_of(proc.tracker.judged)
    [point] = [p for p in points if p.tags["stage"] == "STORED"]
    assert (
        point.fields["reads"] == 200 and point.fields["last_seen_ns"] == example.carried_in.last_ns
    )
    assert db.query("SELECT reads FROM custody_pass")[0][0] == 200


# ---------------------------------------------------------------- restarts and redeliveries


@settings(max_examples=10, deadline=None)
@given(
    cut=st.floats(0.05, 0.95),
    checkpoint=st.booleans(),
    again=st.integers(0, 700),
    small=st.booleans(),
)
def test_a_restart_anywhere_and_a_redelivery_after_it_change_nothing(
    example: story.Example, cut: float, checkpoint: bool, again: int, small: bool
) -> None:
    """The worker stops after any batch (with or without a checkpoint since), a new one
    rebuilds from the store, the broker delivers the last messages again: the same custody
    as one worker fed everything once, and the store holds exactly its events."""
    want = reference(example, EXAMPLE)
    now = example.end_ns + H
    chunk = 97
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        if small:  # checkpoints every few batches, log rows pruned as soon as allowed
            patch.setattr("hazwatch.streams.custody.processor.CHECKPOINT_READS", 300)
            patch.setattr(rules, "RECENT_READS", 1500)
            patch.setattr(store, "RECENT_READS", 1500)
            patch.setattr(store, "LOG_KEEP_NS", 0)
        db = StateDB(f"sqlite:///{Path(folder) / 'state.db'}")
        first = processor(db)
        messages = decoded(first, example.messages, now)
        stop = int(len(messages) * cut)
        for start in range(0, stop, chunk):
            first.process(messages[start : min(start + chunk, stop)], now)
        if checkpoint:
            first.tick(now)
        second = processor(db)  # the restart
        assert second.tracker.judged == first.tracker.judged
        redelivered = messages[max(0, stop - again) : stop]  # not acknowledged before the stop
        for start in range(0, len(redelivered), chunk):
            second.process(redelivered[start : start + chunk], now)
        for start in range(stop, len(messages), chunk):
            second.process(messages[start : start + chunk], now)
        second.tick(now)
        assert second.tracker.judged == want
        assert stored(db) == rows_of(want)
        third = processor(db)
        assert third.tracker.judged == want
        db.close()


def test_a_worker_that_missed_pruned_reads_starts_again_from_the_passes(
    tmp_path: Path, example: story.Example, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on one store: while one is idle the other's checkpoints prune the log
    rows it has not applied; it rebuilds from the stored passes and judges the same."""
    monkeypatch.setattr("hazwatch.streams.custody.processor.CHECKPOINT_READS", 200)
    monkeypatch.setattr(rules, "RECENT_READS", 400)
    monkeypatch.setattr(store, "RECENT_READS", 400)
    monkeypatch.setattr(store, "LOG_KEEP_NS", 0)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    busy, idle = processor(StateDB(url)), processor(StateDB(url))
    now = example.end_ns + H
    messages = decoded(busy, example.messages, now)
    idle.process(messages[:10], now)
    for start in range(10, len(messages), 97):
        busy.process(messages[start : start + 97], now)
    assert busy.store is not None
    pruned = busy.store.db.query("SELECT pruned_seq FROM custody_mark")[0][0]
    assert pruned > idle.seen_seq  # the idle worker cannot catch up read by read
    idle.tick(now)
    busy.tick(now)
    want = reference(example, EXAMPLE)
    assert idle.tracker.judged == busy.tracker.judged == want


# ---------------------------------------------------------------- cross-reads do not flap


def _pair(strong_late: bool, rng: random.Random) -> tuple[list[tuple[int, str, float]], str]:
    """A drum carried in past the in door (gate-03) while the out door beside it (gate-05)
    sees it too: (time, reader, RSSI) of every read, in time order, and the reader of the
    stronger pass. The out door's reads peak first; the stronger door's peak comes later,
    so that while both go on the stronger pass so far is the other one."""
    start = T0 + H
    reads = []
    early, late = ("gate-05", "gate-03") if strong_late else ("gate-03", "gate-05")
    for k in range(60):  # 2.4 s at 25 a second, strongest after 0.4 s: -58 dBm
        if rng.random() > 0.08:
            rssi = -58.0 - abs(k - 10) * 0.6
            reads.append((start + k * 40 * MS, early, round(rssi, 1)))
    for k in range(80):  # from 0.3 s, 3.2 s, strongest after 2.5 s: -50 dBm
        if rng.random() > 0.08:
            rssi = -50.0 - abs(k - 55) * 0.5
            reads.append((start + 300 * MS + k * 40 * MS, late, round(rssi, 1)))
    reads.sort()
    return reads, late


def _message(reader: str, ts_ns: int, rssi: float) -> tuple[str, bytes]:
    body = {"ts": ts_ns // MS, "epc": story.EPC, "rssi": rssi, "antenna": 1}
    return f"hw/{story.SITE}/rfid/{reader}/read", json.dumps(body).encode()


def test_while_both_passes_go_on_the_stronger_one_changes() -> None:
    """Why a cross-read must wait: placed by the passes so far, the story's tag goes to one
    door and then the other."""
    reads, winner = _pair(True, random.Random(1))
    info = Registration("g", story.BATCH, story.EPC, story.WASTE_CODE, story.SITE, "t1", T0)
    geo = geography(DOORS, LIMITS)
    placed = []
    for n in range(1, len(reads) + 1):
        so_far = [
            Read(
                f"r{k}",
                story.EPC,
                story.SITE,
                reader,
                DOORS.readers[(story.SITE, reader)].location,
                ts,
                rssi,
            )
            for k, (ts, reader, rssi) in enumerate(reads[:n])
        ]
        custody = [
            p.device
            for p, role, _ in classify(info, passes(so_far, LIMITS), geo)
            if role == "custody"
        ]
        placed.append(custody[0] if custody else None)
    assert placed[-1] == winner and "gate-05" in placed and "gate-03" in placed


def _deliveries(
    reads: list[tuple[int, str, float]], delays: list[float], ticks: list[bool]
) -> Iterator[tuple[int, list[tuple[str, bytes]], bool]]:
    """(hazwatch's time, the messages it takes then, whether it ticks after) in 100 ms
    ingest batches: each read arrives up to the window after it was read (`delays`), each
    reader's in its order; the two readers' arrivals interleave as the delays fall."""
    arrival: dict[str, int] = {}
    timed = []
    for (ts, reader, rssi), delay in zip(reads, delays, strict=True):
        at = max(arrival.get(reader, 0), ts + int(delay * WINDOW_NS * 0.95))
        arrival[reader] = at
        timed.append((at, reader, ts, rssi))
    timed.sort()
    grid = 100 * MS
    batch: list[tuple[str, bytes]] = []
    slot = None
    for n, (at, reader, ts, rssi) in enumerate(timed):
        due = -(-at // grid) * grid  # the batch it is taken in
        if slot is not None and due != slot and batch:
            yield slot, batch, ticks[n % len(ticks)]
            batch = []
        slot = due
        batch.append(_message(reader, ts, rssi))
    assert slot is not None
    yield slot, batch, True


@settings(max_examples=60, deadline=None)
@given(
    strong_late=st.booleans(),
    seed=st.integers(0, 2**16),
    delays=st.lists(st.floats(0, 1), min_size=1, max_size=200),
    ticks=st.lists(st.booleans(), min_size=1, max_size=50),
)
def test_a_cross_read_is_placed_once_and_never_moves(
    strong_late: bool, seed: int, delays: list[float], ticks: list[bool]
) -> None:
    """However the two doors' reads interleave on their way in (each door's in its order,
    each read within the window of when it was read), and wherever ingest batches and ticks
    fall: no stage entry is written at the weaker door, no alert is raised and then cleared,
    and the tag is placed at the stronger pass."""
    reads, winner = _pair(strong_late, random.Random(seed))
    loser = "gate-05" if winner == "gate-03" else "gate-03"
    stage = {"gate-03": "STORED", "gate-05": "DISPATCHED"}
    delays = (delays * (len(reads) // len(delays) + 1))[: len(reads)]
    with tempfile.TemporaryDirectory() as folder:
        db = StateDB(f"sqlite:///{Path(folder) / 'state.db'}")
        proc = processor(db, DOORS)
        sink = proc.alerts
        assert isinstance(sink, ListSink)
        registration = json.dumps(
            {"ts": T0 // MS, "epc": story.EPC, "batch": story.BATCH,
             "waste_code": story.WASTE_CODE}
        ).encode()  # fmt: skip
        written: list[Point] = proc.process(
            decoded(proc, [(f"hw/{story.SITE}/terminal/t1/batch", registration)], T0), T0
        )
        now = T0
        for now, batch, tick in _deliveries(reads, delays, ticks):
            written += proc.process(decoded(proc, batch, now), now)
            if tick:
                written += proc.tick(now)
        for later in range(1, 11):  # the doors fall silent; the service ticks every second
            written += proc.tick(now + later * S)
        placed = [(p.tags["stage"], p.fields["device"]) for p in written]
        assert ("GENERATED", "t1") in placed
        assert {d for s, d in placed if s != "GENERATED"} == {winner}, placed
        judged = proc.tracker.judged[story.BATCH]
        # placed at the out door it skipped STORED (a true finding): raised once, never cleared
        assert sink.cleared == []
        assert [(s.rule, s.evidence) for s in sink.raised] == [
            (v.rule, v.event_id) for v in judged.violations
        ]
        assert [v.rule for v in judged.violations] == (
            [] if winner == "gate-03" else ["skipped_stage"]
        )
        assert [(e.stage, e.device) for e in judged.events] == [
            ("GENERATED", "t1"), (stage[winner], winner),
        ]  # fmt: skip
        assert [(d.why, d.device) for d in judged.diagnostics] == [("cross_read", loser)]
        strongest = max(r for _, reader, r in reads if reader == winner)
        assert judged.events[1].peak_rssi == strongest
        assert stored(db) == rows_of(proc.tracker.judged)
        db.close()


def test_a_door_without_its_neighbour_places_its_pass_at_the_next_tick(tmp_path: Path) -> None:
    """Only one of two overlapping doors reads the drum (the other is silent): its pass is
    held while it goes on and placed once the door has been silent for the gap."""
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    proc = processor(db, DOORS)
    registration = json.dumps(
        {"ts": T0 // MS, "epc": story.EPC, "batch": story.BATCH, "waste_code": story.WASTE_CODE}
    ).encode()
    proc.process(decoded(proc, [(f"hw/{story.SITE}/terminal/t1/batch", registration)], T0), T0)
    start = T0 + H
    carry = [_message("gate-03", start + k * 40 * MS, -55.0) for k in range(100)]
    for k in range(0, 100, 25):  # live: each second's reads as they come
        now = start + (k + 25) * 40 * MS + 200 * MS
        assert proc.process(decoded(proc, carry[k : k + 25], now), now) == []
    end = start + 99 * 40 * MS
    assert proc.tick(end + 3 * S) == []  # the door has been silent under the gap
    points = proc.tick(end + 6 * S)  # past the gap and the window: placed
    assert [(p.tags["stage"], p.fields["device"], p.fields["reads"]) for p in points] == [
        ("STORED", "gate-03", 100)
    ]


def test_passes_stored_under_a_shorter_gap_merge_once_under_a_longer_one(
    tmp_path: Path, example: story.Example
) -> None:
    """The door's gap set longer between two starts: the stored passes it joins are merged
    once (the rows merged away deleted at the next checkpoint), never counted twice."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    now = example.end_ns + H
    first = processor(StateDB(url))
    messages = decoded(first, example.messages, now)
    for start in range(0, len(messages), 500):
        first.process(messages[start : start + 500], now)
    first.tick(now)  # every pass stored whole, the log taken into them
    longer = CustodyLimits(unknown_tag_grace_s=0, door_gap_s=40)

    def restarted() -> CustodyProcessor:
        tracker = Tracker()
        ctx = RegistryContext(None, EXAMPLE, batches=tracker.epc_batch)
        return CustodyProcessor(tracker, ctx, ListSink(), CustodyStore(StateDB(url)), limits=longer)

    second = restarted()
    # one more read in the parked hour: the pass it joins is written whole at the tick
    parked_at = example.carried_in.last_ns + 60 * S + 45 * 30 * S + 15 * S
    late = ("hw/jy-0012/rfid/gate-03/read", json.dumps({"ts": parked_at // MS, "epc": story.EPC,
            "rssi": -74.0, "antenna": 2}).encode())  # fmt: skip
    second.process(decoded(second, [late], now), now)
    second.tick(now)
    third = restarted()
    ctx = RegistryContext(None, EXAMPLE)
    items = to_inputs([decode(t, p, ctx, now_ns=now) for t, p in [*example.messages, late]], ctx)
    want = Tracker(geography(EXAMPLE, longer))
    want.apply(items, T0 + 10 * H)
    assert third.tracker.judged == second.tracker.judged == want.judged
    parked = [d for d in want.judged[story.BATCH].diagnostics if d.device == "gate-03"]
    assert len(parked) == 1  # the hour parked by the door, bursts 30 s apart: one pass now


@pytest.mark.parametrize("upgraded_at", ["parked", "carry_out"])
def test_reads_kept_one_by_one_before_are_counted_once_when_their_pass_goes_on(
    tmp_path: Path, example: story.Example, upgraded_at: str
) -> None:
    """A store of before v5 kept each read as a custody_input row: replayed as they are, and
    once a pass of theirs goes on, its reader's passes are stored whole and the rows go
    (never counted twice); the rows of passes that do not go on stay."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    now = example.end_ns + H
    old = processor(StateDB(url))
    messages = decoded(old, example.messages, now)
    out = next(i for i, m in enumerate(example.messages) if "gate-04" in m[0])
    half = out if upgraded_at == "carry_out" else out // 2  # before the door, or parked
    items = to_inputs(messages[:half], old.registry)  # a Read each, as v3 and v4 kept them
    old._commit(items, old.tracker.apply(items, now), now)
    db = StateDB(url)
    kept = db.query("SELECT COUNT(*) FROM custody_input WHERE kind = 'read'")[0][0]
    assert kept == sum(isinstance(i, Read) for i in items) > 0
    upgraded = processor(StateDB(url))  # the first start on it
    for start in range(half, len(messages), 97):
        upgraded.process(messages[start : start + 97], now)
    upgraded.tick(now)
    want = reference(example, EXAMPLE)
    assert processor(StateDB(url)).tracker.judged == want
    left = db.query("SELECT COUNT(*) FROM custody_input WHERE kind = 'read'")[0][0]
    passes = db.query("SELECT COUNT(*), SUM(reads) FROM custody_pass WHERE device = 'gate-03'")
    if upgraded_at == "carry_out":  # gate-03's passes never went on: its rows stay
        assert left == kept and passes[0][0] == 0
    else:  # the parked pass went on: gate-03's passes are all rows of custody_pass now
        stays = [d for d in want[story.BATCH].diagnostics if d.device == "gate-03"]
        assert left == 0 and tuple(passes[0]) == (len(stays) + 1, sum(d.reads for d in stays) + 200)
