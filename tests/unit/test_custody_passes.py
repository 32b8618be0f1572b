"""Reads become passes (issue #18): a stage is entered once, whatever the reader's rate, the
arrival order or a redelivery; cross-reads go to the stronger reader; one ledger record per
container and stage transition, monthly totals of distinct containers over the months asked.
"""

from __future__ import annotations

import json
import random
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.alerts.model import ListSink
from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import decode
from hazwatch.devices.registry import Registry, RegistryContext, parse_registry
from hazwatch.streams.custody import ledger
from hazwatch.streams.custody.processor import CustodyProcessor, geography, to_inputs
from hazwatch.streams.custody.rules import (
    Input,
    Judgement,
    PassSet,
    Read,
    Registration,
    Tracker,
    Weighing,
    pass_of,
    passes,
)
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import MIGRATIONS, CustodyStore, trace_document
from tests import custody_example as story

CHINA = timezone(timedelta(hours=8))
S = 1_000_000_000
H = 3600 * S
# 2026-12-31 12:00 China time: the story ends the same evening, the year's last day
T0 = int(datetime(2026, 12, 31, 12, 0, tzinfo=CHINA).timestamp()) * S
LIMITS = CustodyLimits(unknown_tag_grace_s=0)
EXAMPLE_REGISTRY = parse_registry(tomllib.loads(story.REGISTRY), "example")


def processor(tmp_path: Path, registry: Registry = EXAMPLE_REGISTRY) -> CustodyProcessor:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    tracker = Tracker()
    ctx = RegistryContext(None, registry, batches=tracker.epc_batch)
    return CustodyProcessor(tracker, ctx, ListSink(), CustodyStore(db), limits=LIMITS)


def feed(proc: CustodyProcessor, messages: list[tuple[str, bytes]], chunk: int = 500) -> None:
    now = story.example(T0).end_ns + H
    decoded = [decode(t, p, proc.registry, now_ns=now) for t, p in messages]
    for start in range(0, len(decoded), chunk):
        proc.process(decoded[start : start + chunk], now)


Rows = list[tuple[object, ...]]


def stored_rows(proc: CustodyProcessor) -> tuple[Rows, Rows]:
    assert proc.store is not None
    db = proc.store.db
    events = db.query(
        "SELECT event_id, batch, stage, ts_ns, site, device, last_ns, reads, peak_rssi, antenna "
        "FROM custody_event ORDER BY event_id"
    )
    notes = db.query(
        "SELECT pass_id, batch, why, ts_ns, last_ns, reads FROM custody_diagnostic ORDER BY pass_id"
    )
    return [tuple(r) for r in events], [tuple(r) for r in notes]


def judged_rows(proc: CustodyProcessor) -> tuple[Rows, Rows]:
    """What the tracker's verdicts say the store must hold, as stored_rows reads it."""
    events: Rows = []
    notes: Rows = []
    for j in proc.tracker.judged.values():
        events += [
            (e.event_id, e.batch, e.stage, e.ts_ns, e.site, e.device, e.last_ns, e.reads,
             e.peak_rssi, e.antenna)
            for e in j.events
        ]  # fmt: skip
        notes += [(d.pass_id, d.batch, d.why, d.ts_ns, d.last_ns, d.reads) for d in j.diagnostics]
    return sorted(events), sorted(notes)  # type: ignore[type-var]


# ---------------------------------------------------------------- the example


def test_the_150_kg_drum_is_stored_once_and_dispatched_once(tmp_path: Path) -> None:
    ex = story.example(T0)
    proc = processor(tmp_path)
    feed(proc, ex.messages)
    judged = proc.tracker.trace(story.BATCH)
    assert judged is not None
    assert [(e.stage, e.device) for e in judged.events] == [
        ("GENERATED", "t1"), ("STORED", "gate-03"), ("DISPATCHED", "gate-04"),
    ]  # fmt: skip
    assert judged.violations == () and judged.verdict == "open"
    for event, door in zip(judged.events[1:], (ex.carried_in, ex.carried_out), strict=True):
        assert (event.ts_ns, event.last_ns, event.reads, event.peak_rssi, event.antenna) == (
            door.first_ns, door.last_ns, door.reads, door.peak_rssi, door.antenna,
        )  # fmt: skip
        assert event.reads == 200
    assert judged.events[0].net_kg == story.KG
    # the parked hour (120 bursts) and the stocktake are repeats (or, a burst at the edge of
    # the field under half a second, short): diagnostics, not custody
    notes = judged.diagnostics
    assert {d.why for d in notes} <= {"repeat", "short"} and len(notes) == 121
    assert sum(d.reads for d in notes) + 400 == ex.reads
    assert {d.device for d in notes} == {"gate-03", "hh-01"}

    assert proc.store is not None
    assert proc.store.db.query("SELECT stage FROM custody_event ORDER BY ts_ns") == [
        ("GENERATED",), ("STORED",), ("DISPATCHED",),
    ]  # fmt: skip
    doc = trace_document(proc.store, story.BATCH, ex.end_ns)
    assert doc is not None and len(doc["events"]) == 3
    stored = doc["events"][1]["pass"]
    assert stored["reads"] == 200 and stored["peak_rssi"] == ex.carried_in.peak_rssi
    assert stored["antenna"] == ex.carried_in.antenna
    assert len(doc["diagnostics"]) == 121 and doc["diagnostics"][0]["why"] == "repeat"

    built = ledger.ledger_for(
        proc.store, story.SITE, ledger.parse_date_ns("2026-12-01"),
        ledger.parse_date_ns("2026-12-31", end=True), None,
    )  # fmt: skip
    kinds = [(r["record_type"], r["quantity"]) for r in built.rows]
    assert kinds == [("产生", 150.0), ("入库", 150.0), ("出库", 150.0)]
    assert built.summary == [
        {"month": "2026-12", "waste_code": story.WASTE_CODE, "generated_kg": 150.0,
         "stored_month_end_kg": 0.0, "transferred_kg": 150.0, "disposed_kg": 0.0},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def example_inputs() -> list[Input]:
    ex = story.example(T0)
    ctx = RegistryContext(None, EXAMPLE_REGISTRY)
    decoded = [decode(t, p, ctx, now_ns=ex.end_ns) for t, p in ex.messages]
    return to_inputs(decoded, ctx)


def judge_all(items: list[Input], chunk: int) -> Judgement:
    tracker = Tracker(geography(EXAMPLE_REGISTRY, LIMITS))
    for start in range(0, len(items), chunk):
        tracker.apply(items[start : start + chunk], T0 + 10 * H)
    tracker.check(T0 + 10 * H)
    judged = tracker.trace(story.BATCH)
    assert judged is not None
    return judged


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), chunk=st.sampled_from([1, 7, 64, 500, 10_000]))
def test_any_arrival_order_and_redelivery_give_the_same_custody(
    example_inputs: list[Input], seed: int, chunk: int
) -> None:
    reference = judge_all(example_inputs, 10_000)
    rng = random.Random(seed)
    items = list(example_inputs)
    items += rng.sample(items, len(items) // 10)  # QoS 1 redeliveries, anywhere in the stream
    rng.shuffle(items)
    got = judge_all(items, chunk)
    assert got == reference


def test_a_pass_going_on_is_judged_as_if_judged_whole(example_inputs: list[Input]) -> None:
    """The tracker's hot path (a read that only extends a pass) gives, after every call,
    the verdict a tracker given everything so far at once gives."""
    live = Tracker(geography(EXAMPLE_REGISTRY, LIMITS))
    for end in range(97, len(example_inputs) + 97, 97):
        live.apply(example_inputs[end - 97 : end], T0 + 10 * H)
        whole = Tracker(geography(EXAMPLE_REGISTRY, LIMITS))
        whole.apply(example_inputs[:end], T0 + 10 * H)
        assert live.judged == whole.judged, end


def test_event_ids_stay_while_passes_grow_or_start_earlier(example_inputs: list[Input]) -> None:
    reads = [i for i in example_inputs if isinstance(i, Read)]
    others = [i for i in example_inputs if not isinstance(i, Read)]
    tracker = Tracker(geography(EXAMPLE_REGISTRY, LIMITS))
    tracker.apply(others, T0)
    ids: dict[str, set[str]] = {}
    for start in range(0, len(reads), 25):  # a second of reads at a time, as they come
        tracker.apply(reads[start : start + 25], T0)
        judged = tracker.trace(story.BATCH)
        assert judged is not None
        for event in judged.events:
            ids.setdefault(event.stage, set()).add(event.event_id)
    assert all(len(found) == 1 for found in ids.values()), ids
    # a late read 2 s before the door's first: the pass starts earlier, same event
    first = min((r for r in reads if r.device == "gate-03"), key=lambda r: r.ts_ns)
    late = Read("late", story.EPC, story.SITE, "gate-03", "storage_in", first.ts_ns - 2 * S, -80.0)
    changes = tracker.apply([late], T0)
    stored = next(e for e in changes.events.values() if e.stage == "STORED")
    assert stored.event_id in ids["STORED"] and stored.ts_ns == late.ts_ns
    assert stored.reads == 201 and changes.dropped == set()


# ---------------------------------------------------------------- passes


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(0, 60 * S), min_size=1, max_size=40),
    gap_s=st.sampled_from([0.5, 3.0, 10.0]),
    data=st.data(),
)
def test_passes_are_the_clusters_of_reads_within_the_gap(
    times: list[int], gap_s: float, data: st.DataObject
) -> None:
    limits = CustodyLimits(door_gap_s=gap_s)
    gap = limits.pass_gap_ns("storage_in")
    rssi = data.draw(st.lists(st.sampled_from([-70.0, -60.0]), min_size=len(times)))
    reads = [
        Read(f"r{i}", "E1", "s", "gate", "storage_in", t, rssi[i], i % 3)
        for i, t in enumerate(times)
    ]
    # the oracle: connected components of "closer than the gap", by brute force
    component = list(range(len(reads)))
    for i in range(len(reads)):
        for j in range(len(reads)):
            if abs(reads[i].ts_ns - reads[j].ts_ns) <= gap:
                a, b = component[i], component[j]
                component = [a if c == b else c for c in component]
    want = sorted(
        sorted(r.event_id for k, r in enumerate(reads) if component[k] == c) for c in set(component)
    )
    found = passes(reads, limits)
    assert sorted(p.reads for p in found) == sorted(len(w) for w in want)
    for p in found:
        members = [r for r in reads if p.first_ns <= r.ts_ns <= p.last_ns]
        assert len(members) == p.reads
        peak = min(members, key=lambda r: (-(r.rssi or 0), r.ts_ns, r.event_id))
        assert (p.peak_rssi, p.antenna, p.peak_id) == (peak.rssi, peak.antenna, peak.event_id)
    # kept merged as reads come, in any order: the same passes
    order = data.draw(st.permutations(reads))
    kept = PassSet(gap)
    for read in order:
        kept.add(pass_of(read))
    assert kept.items == found


def test_a_glimpse_at_a_door_is_no_custody_and_a_return_is_one() -> None:
    geo = geography(EXAMPLE_REGISTRY, LIMITS)
    tracker = Tracker(geo)

    def carry(reader: str, location: str, at: int, seconds: float, tag: str) -> list[Input]:
        n = max(1, int(seconds * 25))
        return [
            Read(f"{tag}{k}", story.EPC, story.SITE, reader, location, at + k * S // 25, -55.0)
            for k in range(n)
        ]

    items: list[Input] = [
        Weighing("w", story.EPC, story.SITE, "s1", "generation", 150.0, T0),
        Registration("g", story.BATCH, story.EPC, story.WASTE_CODE, story.SITE, "t1", T0),
        *carry("gate-04", "storage_out", T0 + 60 * S, 0.2, "glimpse"),  # 5 reads in 0.2 s
        *carry("gate-03", "storage_in", T0 + 120 * S, 6, "in"),
        *carry("gate-04", "storage_out", T0 + H, 6, "out"),
        *carry("gate-03", "storage_in", T0 + 2 * H, 6, "back"),  # brought back in
    ]
    tracker.apply(items, T0 + 3 * H)
    judged = tracker.trace(story.BATCH)
    assert judged is not None
    assert [e.stage for e in judged.events] == ["GENERATED", "STORED", "DISPATCHED", "STORED"]
    assert [(d.why, d.device, d.reads) for d in judged.diagnostics] == [("short", "gate-04", 5)]
    assert "0.5 s minimum dwell" in judged.diagnostics[0].note
    assert [v.rule for v in judged.violations] == ["backward_stage"]  # a return is judged
    # a door whose reader reports a tag once per pass: a minimum dwell of 0 takes it
    once = Tracker(geography(EXAMPLE_REGISTRY, CustodyLimits(door_min_dwell_s=0)))
    once.apply(items, T0 + 3 * H)
    assert [e.stage for e in once.judged[story.BATCH].events][:3] == [
        "GENERATED", "DISPATCHED", "STORED",
    ]  # fmt: skip


def test_an_unknown_tag_is_alerted_once_per_pass() -> None:
    tracker = Tracker(geography(EXAMPLE_REGISTRY, LIMITS))
    reads = [
        Read(f"u{k}", "ABCDEF0123456789", story.SITE, "gate-03", "storage_in", T0 + k * S // 25)
        for k in range(200)
    ]
    raised = [v for c in range(0, 200, 20) for v in tracker.apply(reads[c : c + 20], T0).raised]
    assert [(v.rule, v.subject, v.event_id) for v in raised] == [
        ("unknown_tag", "ABCDEF0123456789", "u0")
    ]
    assert "200 reads" not in raised[0].message  # alerted at its first read
    # registered after all: the pass joins the batch, the alert clears
    changes = tracker.apply(
        [Registration("g", "B9", "ABCDEF0123456789", story.WASTE_CODE, story.SITE, "t1", T0)], T0
    )
    assert [(v.rule, v.subject) for v in changes.cleared] == [("unknown_tag", "ABCDEF0123456789")]
    assert [e.reads for e in tracker.judged["B9"].events] == [0, 200]


# ---------------------------------------------------------------- cross-reads

DOORS = f"""{story.REGISTRY}
[[reader]]
id = "gate-05"
site = "{story.SITE}"
location = "storage_out"
overlaps = ["gate-03"]
"""


def _cross(rssi_in: float, rssi_out: float, n_in: int = 50, n_out: int = 50) -> Judgement:
    registry = parse_registry(tomllib.loads(DOORS), "doors")
    tracker = Tracker(geography(registry, LIMITS))
    items: list[Input] = [
        Registration("g", story.BATCH, story.EPC, story.WASTE_CODE, story.SITE, "t1", T0),
        *(Read(f"i{k}", story.EPC, story.SITE, "gate-03", "storage_in", T0 + H + k * S // 25,
               rssi_in) for k in range(n_in)),
        # the adjacent door sees it too, from half a second later
        *(Read(f"o{k}", story.EPC, story.SITE, "gate-05", "storage_out",
               T0 + H + S // 2 + k * S // 25, rssi_out) for k in range(n_out)),
    ]  # fmt: skip
    tracker.apply(items, T0 + 2 * H)
    return tracker.judged[story.BATCH]


def test_a_cross_read_goes_to_the_stronger_reader_and_stays_a_diagnostic() -> None:
    judged = _cross(-50.0, -68.0)
    assert [(e.stage, e.device) for e in judged.events][1:] == [("STORED", "gate-03")]
    assert [(d.why, d.device, d.stage) for d in judged.diagnostics] == [
        ("cross_read", "gate-05", "DISPATCHED")
    ]
    assert "gate-03" in judged.diagnostics[0].note and judged.violations == ()
    # stronger at the other door: placed there
    assert [e.device for e in _cross(-70.0, -52.0).events][1:] == ["gate-05"]
    # equal peaks: the pass with more reads; equal in both: the smaller reader id
    assert [e.device for e in _cross(-60.0, -60.0, 40, 60).events][1:] == ["gate-05"]
    assert [e.device for e in _cross(-60.0, -60.0).events][1:] == ["gate-03"]
    # readers not declared overlapping: both passes are custody
    tracker = Tracker(geography(EXAMPLE_REGISTRY, LIMITS))
    tracker.apply(
        [
            Registration("g", story.BATCH, story.EPC, story.WASTE_CODE, story.SITE, "t1", T0),
            *(Read(f"i{k}", story.EPC, story.SITE, "gate-03", "storage_in", T0 + k * S // 25,
                   -50.0) for k in range(50)),
            *(Read(f"o{k}", story.EPC, story.SITE, "gate-04", "storage_out",
                   T0 + S // 2 + k * S // 25, -68.0) for k in range(50)),
        ],
        T0 + H,
    )  # fmt: skip
    assert [e.device for e in tracker.judged[story.BATCH].events][1:] == ["gate-03", "gate-04"]


def test_registry_overlaps_name_readers_of_the_same_site() -> None:
    registry = parse_registry(tomllib.loads(DOORS), "doors")
    assert registry.overlapping() == {
        (story.SITE, "gate-05", "gate-03"), (story.SITE, "gate-03", "gate-05"),
    }  # fmt: skip
    doc = registry.to_document()
    assert parse_registry(json.loads(json.dumps(doc)), "stored") == registry
    other_site = DOORS.replace('overlaps = ["gate-03"]', 'overlaps = ["rg-1"]') + (
        '[[site]]\nid = "dp-01"\nrole = "receiver"\n'
        '[[reader]]\nid = "rg-1"\nsite = "dp-01"\nlocation = "receiver_gate"\n'
    )
    cases = {
        'overlaps = ["gate-09"]': "names reader 'gate-09', not a reader of site 'jy-0012'",
        'overlaps = ["gate-05"]': "names reader 'gate-05' itself",
        'overlaps = "gate-03"': "must be a list of reader ids",
        "overlaps = [3]": "must be a list of reader ids",
    }
    for line, message in cases.items():
        with pytest.raises(ConfigError, match=message) as caught:
            parse_registry(tomllib.loads(DOORS.replace('overlaps = ["gate-03"]', line)), "r.toml")
        assert "r.toml: [[reader]] #4 (id 'gate-05'): field 'overlaps'" in str(caught.value)
    with pytest.raises(ConfigError, match=r"not a reader of site 'jy-0012' \(a reader of dp-01\)"):
        parse_registry(tomllib.loads(other_site), "r.toml")


# ---------------------------------------------------------------- the store


def test_the_store_replaces_events_whose_ids_go(tmp_path: Path) -> None:
    registry = parse_registry(tomllib.loads(DOORS), "doors")
    proc = processor(tmp_path, registry)

    def read(reader: str, ts: int, rssi: float) -> tuple[str, bytes]:
        body = {"ts": ts // 1_000_000, "epc": story.EPC, "rssi": rssi, "antenna": 1}
        return f"hw/{story.SITE}/rfid/{reader}/read", json.dumps(body).encode()

    base = T0 + H
    weak_out = [read("gate-05", base + S // 2 + k * 40_000_000, -68.0) for k in range(50)]
    strong_in = [read("gate-03", base + k * 40_000_000, -50.0) for k in range(50)]
    reg = json.dumps(
        {"ts": T0 // 1_000_000, "epc": story.EPC, "batch": story.BATCH,
         "waste_code": story.WASTE_CODE}
    ).encode()  # fmt: skip
    feed(proc, [(f"hw/{story.SITE}/terminal/t1/batch", reg), *weak_out])
    events, notes = stored_rows(proc)
    assert [e[2] for e in sorted(events, key=lambda e: e[3])] == ["GENERATED", "DISPATCHED"]
    # the stronger door's reads arrive late: the tag was stored, the dispatch was a cross-read
    feed(proc, strong_in)
    events, notes = stored_rows(proc)
    assert [e[2] for e in sorted(events, key=lambda e: e[3])] == ["GENERATED", "STORED"]
    assert [n[2] for n in notes] == ["cross_read"]
    assert (events, notes) == judged_rows(proc)
    # a parked tag's pass starting earlier changes its diagnostic's id: no stale row either
    parked = [read("gate-03", base + 600 * S + k * S, -75.0) for k in range(5)]
    feed(proc, parked)
    feed(proc, [read("gate-03", base + 598 * S, -76.0)])
    events, notes = stored_rows(proc)
    assert (events, notes) == judged_rows(proc) and len(notes) == 2
    # a restarted worker derives the same from the stored inputs
    assert proc.store is not None
    again = CustodyProcessor(
        Tracker(), RegistryContext(None, registry), ListSink(), proc.store, limits=LIMITS
    )
    assert again.tracker.judged == proc.tracker.judged


def test_a_store_of_one_event_per_read_is_derived_again(tmp_path: Path) -> None:
    """A v2 store holds a custody event per read (200 STORED for one carry): the first
    processor on it derives one event per stage entered, and the ledger follows."""
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    db.migrate("custody", MIGRATIONS[:2])
    info = {
        "event_id": "g",
        "batch": story.BATCH,
        "epc": story.EPC,
        "waste_code": story.WASTE_CODE,
        "site": story.SITE,
        "device": "t1",
        "ts_ns": T0,
    }
    db.execute(
        "INSERT INTO custody_batch (batch, epc, waste_code, site, ts_ns, info, stage, verdict, "
        "since_ns, at_site, violations, seq) VALUES (?, ?, ?, ?, ?, ?, 'STORED', 'open', ?, ?, "
        "'[]', 1)",
        (story.BATCH, story.EPC, story.WASTE_CODE, story.SITE, T0, json.dumps(info), T0,
         story.SITE),
    )  # fmt: skip
    rows = [("g", story.BATCH, story.EPC, "GENERATED", T0, story.SITE, "t1", 150.0, None, 1)]
    rows += [
        (f"r{k}", story.BATCH, story.EPC, "STORED", T0 + H + k * S // 25, story.SITE, "gate-03",
         None, None, 1)
        for k in range(200)
    ]  # fmt: skip
    db.executemany(
        "INSERT INTO custody_event (event_id, batch, epc, stage, ts_ns, site, device, net_kg, "
        "manifest, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    proc = CustodyProcessor(
        Tracker(), RegistryContext(None, EXAMPLE_REGISTRY), ListSink(), CustodyStore(db),
        limits=LIMITS,
    )  # fmt: skip
    proc.tick(T0 + 2 * H)
    stages = db.query("SELECT stage, reads FROM custody_event ORDER BY ts_ns")
    assert [tuple(r) for r in stages] == [("GENERATED", 0), ("STORED", 200)]
    assert db.query("SELECT COUNT(*) FROM custody_input")[0][0] == 200
    assert not proc.store.rederive_pending()  # type: ignore[union-attr]


# ---------------------------------------------------------------- the ledger's months


def test_the_monthly_summary_covers_exactly_the_months_asked_for(tmp_path: Path) -> None:
    """A drum stored on the year's last evening and never dispatched, one stored and
    dispatched at its last nanosecond, one returned: rows for 2026-11 and 2026-12 only."""
    proc = processor(tmp_path)
    last_ns = int(datetime(2027, 1, 1, tzinfo=CHINA).timestamp()) * S - 1
    items: list[Input] = []
    for n, (epc, batch) in enumerate((("E2000000000000000000AA01", "B1"),
                                      ("E2000000000000000000AA02", "B2"),
                                      ("E2000000000000000000AA03", "B3"))):  # fmt: skip
        t = T0 + n * 60 * S
        items += [
            Weighing(f"w{n}", epc, story.SITE, "s1", "generation", 100.0 * (n + 1), t - S),
            Registration(f"g{n}", batch, epc, story.WASTE_CODE, story.SITE, "t1", t),
            *(Read(f"i{n}-{k}", epc, story.SITE, "gate-03", "storage_in", t + H + k * S // 4)
              for k in range(8)),
        ]  # fmt: skip

    def out(tag: str, epc: str, t: int) -> list[Input]:
        return [
            Read(f"{tag}{k}", epc, story.SITE, "gate-04", "storage_out", t + k * S // 4)
            for k in range(8)
        ]

    items += out("o2-", "E2000000000000000000AA02", last_ns)  # out at 23:59:59.999999999
    items += out("o3a-", "E2000000000000000000AA03", T0 + 3 * H)
    items += [
        Read(f"b3-{k}", "E2000000000000000000AA03", story.SITE, "gate-03", "storage_in",
             T0 + 4 * H + k * S // 4)
        for k in range(8)
    ]  # fmt: skip
    items += out("o3b-", "E2000000000000000000AA03", T0 + 5 * H)
    assert proc.store is not None
    changes = proc.tracker.apply(items, last_ns)
    proc._commit(items, changes, last_ns)
    built = ledger.ledger_for(
        proc.store, story.SITE, ledger.parse_date_ns("2026-11-01"),
        ledger.parse_date_ns("2026-12-31", end=True), None,
    )  # fmt: skip
    counts = {kind: sum(r["record_type"] == kind for r in built.rows) for kind in ("入库", "出库")}
    assert counts == {"入库": 4, "出库": 3}  # B3's return is a record of its own
    late = next(r for r in built.rows if r["record_type"] == "出库" and r["batch"] == "B2")
    assert late["time"].startswith("2026-12-31T23:59:59")
    assert built.summary == [
        {"month": "2026-11", "waste_code": story.WASTE_CODE, "generated_kg": 0.0,
         "stored_month_end_kg": 0.0, "transferred_kg": 0.0, "disposed_kg": 0.0},
        # B3 went out twice this month: its 300 kg count once
        {"month": "2026-12", "waste_code": story.WASTE_CODE, "generated_kg": 600.0,
         "stored_month_end_kg": 100.0, "transferred_kg": 500.0, "disposed_kg": 0.0},
    ]  # fmt: skip
    # the day after: January is a month of its own, with B1 still in storage
    january = ledger.ledger_for(
        proc.store, story.SITE, ledger.parse_date_ns("2027-01-01"),
        ledger.parse_date_ns("2027-01-31", end=True), None,
    )  # fmt: skip
    assert [(r["month"], r["stored_month_end_kg"]) for r in january.summary] == [("2027-01", 100.0)]


def test_a_held_pass_is_in_the_trace_as_pending_with_its_reason(tmp_path: Path) -> None:
    """A pass at a door whose field overlaps another's is held until neither can contest it:
    neither custody nor a diagnostic yet, but the trace (hazwatch trace, the API's) shows it
    pending, with its reader, its time and why; once settled it is the stage it entered."""
    from hazwatch.commands.custody import trace_lines
    from hazwatch.devices import registry as device_registry
    from tests.samples import REGISTRY_FILE

    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    device_registry.migrate(db)
    device_registry.save(db, device_registry.load_file(REGISTRY_FILE), "test", T0)
    tracker = Tracker()
    ctx = RegistryContext(db, batches=tracker.epc_batch)
    store = CustodyStore(db)
    proc = CustodyProcessor(tracker, ctx, ListSink(), store, limits=LIMITS)
    ms = T0 // 1_000_000
    sent = [
        ("hw/jy-0012/terminal/t1/batch",
         {"ts": ms, "batch": "B-1", "epc": story.EPC, "waste_code": story.WASTE_CODE}),
    ]  # fmt: skip
    sent += [
        ("hw/jy-0012/rfid/gate-03/read",
         {"ts": ms + 60_000 + i * 40, "epc": story.EPC, "rssi": -60.0 + i % 7, "antenna": 1})
        for i in range(100)
    ]  # fmt: skip
    now = T0 + 64 * S  # the carry ended at +64 s: neither door is past it yet
    proc.process([decode(t, orjson.dumps(b), ctx, now_ns=now) for t, b in sent], now)
    proc.tick(now)  # a checkpoint: the passes are written
    doc = trace_document(store, "B-1", now)
    assert doc is not None
    assert [e["stage"] for e in doc["events"]] == ["GENERATED"] and doc["diagnostics"] == []
    (held,) = doc["pending"]
    assert (held["why"], held["stage"], held["site"], held["device"]) == (
        "pending", "STORED", "jy-0012", "gate-03",
    )  # fmt: skip
    assert held["pass"]["reads"] == 100 and held["overlapping"] == ["gate-04"]
    assert held["note"] == "held: overlapping reader jy-0012/gate-04 within the cross-read window"
    text = "\n".join(trace_lines(doc))
    assert "待定（暂缓判定）的读取过程（1）" in text and "待定" in text
    assert "jy-0012/gate-03" in text and "重叠读写器 jy-0012/gate-04" in text
    assert "held: overlapping reader jy-0012/gate-04" in "\n".join(trace_lines(doc, "en"))
    # both doors heard from since: settled, the stage it entered, pending no more
    later = now + 30 * S
    proc.tick(later)
    doc = trace_document(store, "B-1", later)
    assert doc is not None
    assert [e["stage"] for e in doc["events"]] == ["GENERATED", "STORED"]
    assert doc["pending"] == []
