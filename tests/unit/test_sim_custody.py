"""The custody simulator reads as real readers do, and its ground truth is what it published.

Never use hazwatch's custody code here: the shape of the reads and the stages, events and
ledger totals are recomputed from the published messages alone (the registry file read as
plain TOML), and compared with the simulator's own account of what happened.
"""

from __future__ import annotations

import itertools
import statistics
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.timeparse import EARLIEST_NS
from hazwatch.simulators import custody
from hazwatch.simulators.clocks import DeviceClock, parse_clock, parse_clocks
from hazwatch.simulators.custody import (
    LIVE_VIOLATIONS,
    ONE_READ,
    BatchTruth,
    Plan,
    Timing,
    plan,
)
from hazwatch.simulators.reads import ReadModel
from hazwatch.simulators.truth import month_end_ns, month_of, months_between
from hazwatch.streams.custody.rules import RULE_SPECS

ROOT = Path(__file__).parents[2]
REGISTRIES = [
    ROOT / "tests" / "data" / "registry.toml",
    ROOT / "docs" / "registry.example.toml",
    ROOT / "hazwatch" / "demo_registry.toml",
]
NS = 1_000_000_000
MS = 1_000_000
START = 1_767_196_800 * NS - 3 * 86400 * NS  # 2025-12-29T16:00:00Z: the story crosses a month
GAP_NS = 3 * NS  # a pass ends when its tag is unseen this long (doors: a few seconds)
MODEL = ReadModel()
STAGE = {
    "storage_in": "STORED",
    "storage_out": "DISPATCHED",
    "vehicle": "IN_TRANSIT",
    "receiver_gate": "RECEIVED",
    "disposal": "DISPOSED",
}


@pytest.fixture(scope="module")
def story() -> Plan:
    """Twenty batches, one of every rule broken; realistic reads (the default)."""
    return plan(20, 10, seed=4, start_ns=START)


def registry() -> tuple[dict[tuple[str, str], str], set[tuple[str, str, str]]]:
    """reader → location and the overlapping pairs (both ways), read as plain TOML."""
    doc = tomllib.loads(REGISTRIES[0].read_text("utf-8"))
    where = {(r["site"], r["id"]): r["location"] for r in doc["reader"]}
    pairs = set()
    for r in doc["reader"]:
        for other in r.get("overlaps", []):
            pairs |= {(r["site"], r["id"], other), (r["site"], other, r["id"])}
    return where, pairs


@dataclass
class Seen:
    """Reads of one tag at one reader, none further apart than GAP_NS: one pass."""

    site: str
    reader: str
    epc: str
    times: list[int]
    rssi: list[float]
    antennas: list[int]

    @property
    def first(self) -> int:
        return self.times[0]

    @property
    def last(self) -> int:
        return self.times[-1]

    @property
    def peak(self) -> float:
        return max(self.rssi)


def reads_of(messages: list[custody.Message]) -> Iterator[tuple[str, str, str, int, float, int]]:
    """(site, reader, epc, ts, rssi, antenna) of every published read, from the payloads."""
    for m in messages:
        _, site, family, reader, kind = m.topic.split("/")
        if family == "rfid" and kind == "read":
            body = orjson.loads(m.payload)
            yield site, reader, body["epc"], body["ts"] * MS, body["rssi"], body["antenna"]


def passes_of(messages: list[custody.Message]) -> list[Seen]:
    by: dict[tuple[str, str, str], list[tuple[int, float, int]]] = defaultdict(list)
    for site, reader, epc, ts, rssi, antenna in reads_of(messages):
        by[(site, reader, epc)].append((ts, rssi, antenna))
    found = []
    for (site, reader, epc), reads in by.items():
        reads.sort()
        current: Seen | None = None
        for ts, rssi, antenna in reads:
            if current is None or ts - current.last > GAP_NS:
                current = Seen(site, reader, epc, [], [], [])
                found.append(current)
            current.times.append(ts)
            current.rssi.append(rssi)
            current.antennas.append(antenna)
    return sorted(found, key=lambda s: (s.first, s.reader))


def without_cross_reads(found: list[Seen]) -> tuple[list[Seen], list[Seen]]:
    """Of two passes of one tag at overlapping readers at the same moment, the weaker is a
    cross-read: (the others, the cross-reads)."""
    _, pairs = registry()
    cross = set()
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            if b.first > a.last + 2 * NS:
                break
            if a.epc == b.epc and (a.site, a.reader, b.reader) in pairs:
                cross.add(id(a) if a.peak < b.peak else id(b))
    return [s for s in found if id(s) not in cross], [s for s in found if id(s) in cross]


def entered_from_messages(the_plan: Plan) -> dict[str, list[tuple[str, str, str, int]]]:
    """Per batch, (stage, site, reader, first read) of each stage it entered, from the
    published messages: registration, then passes (cross-reads set aside) in time order,
    a pass at the stage and site it is already in being no new entry."""
    where, _ = registry()
    batch_of: dict[str, str] = {}
    entered: dict[str, list[tuple[str, str, str, int]]] = {}
    for m in the_plan.messages:
        if m.topic.endswith("/terminal/t1/batch"):
            body = orjson.loads(m.payload)
            batch_of[body["epc"]] = body["batch"]
            entered[body["batch"]] = [("GENERATED", m.device[0], "t1", body["ts"] * MS)]
    kept, _ = without_cross_reads(passes_of(the_plan.messages))
    for seen in kept:
        batch = batch_of.get(seen.epc)
        if batch is None:
            continue
        stage = STAGE[where[(seen.site, seen.reader)]]
        stages = entered[batch]
        if (stages[-1][0], stages[-1][1]) != (stage, seen.site):
            stages.append((stage, seen.site, seen.reader, seen.first))
    return entered


def test_door_passes_are_bursts_with_an_rssi_curve_both_ports_and_missed_rounds(
    story: Plan,
) -> None:
    where, _ = registry()
    kept, _ = without_cross_reads(passes_of(story.messages))
    doors = [
        s for s in kept if where[(s.site, s.reader)] in ("storage_in", "storage_out")
        and s.reader != "hh-01" and len(s.times) > 20
    ]  # fmt: skip
    carried = [s for s in doors if s.last - s.first < 30 * NS]  # not a parked drum
    assert len(carried) >= 35  # ~20 in, 20 out, a few returns and unknown tags
    rates = [len(s.times) / ((s.last - s.first) / NS) for s in carried]
    durations = [(s.last - s.first) / NS for s in carried]
    assert 10 <= statistics.median(rates) <= 50, rates  # reads/s while in the field
    assert 5 <= statistics.median(durations) <= 15, durations
    assert 100 <= statistics.median(len(s.times) for s in carried) <= 300
    period_ns = NS / MODEL.round_hz
    misses = total = 0
    for s in carried:
        assert all(MODEL.sensitivity_dbm <= r <= -20 for r in s.rssi)
        assert set(s.antennas) == {1, 2}  # a port each side of the door, in turn
        third = len(s.rssi) // 3
        rising, middle, falling = s.rssi[:third], s.rssi[third:-third], s.rssi[-third:]
        assert statistics.mean(middle) > statistics.mean(rising) + 3
        assert statistics.mean(middle) > statistics.mean(falling) + 3
        assert s.rssi.index(s.peak) not in (0, len(s.rssi) - 1)
        gaps = [b - a for a, b in itertools.pairwise(s.times)]
        misses += sum(round(g / period_ns) - 1 for g in gaps if g > 1.6 * period_ns)
        total += len(gaps)
    assert 0.03 < misses / (misses + total) < 0.4  # rounds that missed the tag in the field


def test_cross_reads_are_weak_reads_at_the_overlapping_door_at_the_same_moment(
    story: Plan,
) -> None:
    _, pairs = registry()
    kept, cross = without_cross_reads(passes_of(story.messages))
    assert len(cross) >= 40  # every pass through either door
    assert {(s.site, s.reader) for s in cross} == {("jy-0012", "gate-03"), ("jy-0012", "gate-04")}
    for s in cross:
        stronger = [
            k for k in kept if k.epc == s.epc and (k.site, k.reader, s.reader) in pairs
            and k.first <= s.first and s.last <= k.last
        ]  # fmt: skip
        assert len(stronger) == 1, s  # inside the pass it crosses
        assert stronger[0].peak - s.peak >= 8
    counted = Counter(m.kind for m in story.messages if m.kind)
    assert counted["cross"] == sum(len(s.times) for s in cross)
    for path in REGISTRIES:  # the registries declare what the simulator does
        doc = tomllib.loads(path.read_text("utf-8"))
        declared = {(r["id"], o) for r in doc["reader"] for o in r.get("overlaps", [])}
        assert declared == {("gate-04", "gate-03")}, path


def test_a_parked_drum_is_read_again_and_again_weakly_inside_the_door(story: Plan) -> None:
    parked = [p for p in story.passes.values() if p.kind == "parked"]
    assert parked, "seed 4 parks some drums"
    for p in parked:
        truth = story.batches[p.batch or ""]
        stored = next(e for e in truth.entered if e.stage == "STORED")
        out = next(e for e in truth.entered if e.stage == "DISPATCHED")
        assert stored.until_ns < p.first_ns and p.last_ns < out.at_ns
        lasted = (p.last_ns - p.first_ns) / NS
        assert MODEL.parked_s[0] * 0.9 <= lasted <= MODEL.parked_s[1]
        assert 0.2 <= p.reads / lasted <= MODEL.parked_hz  # seldom: a still tag, weak spot
        assert p.antennas == {2} and p.peak_rssi is not None and p.peak_rssi < -50
        assert p.reader == "gate-03"


def test_stocktakes_read_everything_in_the_room_and_nothing_else(story: Plan) -> None:
    takes: dict[int, set[str]] = defaultdict(set)  # stocktake start (hour) → EPCs read
    for _, reader, epc, ts, _, _ in reads_of(story.messages):
        if reader == "hh-01":
            takes[ts // (3600 * NS)].add(epc)
    assert len(takes) >= 3
    for hour, read in takes.items():
        start = hour * 3600 * NS
        assert (hour + 8) % 24 == 16  # the daily stocktake at 16:00 China time
        during = [start + minute * 60 * NS for minute in range(11)]  # it takes minutes
        stayed = {
            t.epc for t in story.batches.values()
            if t.violation != "cloned_tag" and all(_in_storage(t, at) for at in during)
        }  # fmt: skip
        was_there = {
            t.epc for t in story.batches.values() if any(_in_storage(t, at) for at in during)
        }
        assert stayed <= read <= was_there
        assert stayed  # something is in the room at every stocktake of this story


def _in_storage(truth: BatchTruth, at: int) -> bool:
    """In the storage room at `at`: entered STORED at the producer, not yet anything later."""
    inside = False
    for e in truth.entered:
        if e.at_ns > at:
            break
        inside = e.stage == "STORED" and e.site == "jy-0012"
    return inside


def test_the_vehicle_reads_its_load_in_bursts_during_transit(story: Plan) -> None:
    for truth in story.batches.values():
        transit = [
            p for p in story.passes.values() if p.batch == truth.batch and p.kind == "transit"
        ]
        out = next(e for e in truth.entered if e.stage == "DISPATCHED")
        arrived = next(e for e in truth.entered if e.stage == "RECEIVED")
        on_the_road = [p for p in transit if p.first_ns < arrived.at_ns]
        assert all(out.until_ns < p.first_ns for p in on_the_road)
        starts = sorted(p.first_ns for p in on_the_road)
        gaps = [(b - a) / NS for a, b in itertools.pairwise(starts)]
        assert gaps and max(gaps) <= MODEL.transit_every_s * 1.01
        assert all(1 <= p.reads <= MODEL.round_hz * MODEL.transit_burst_s * 1.3 for p in transit)


def test_the_ground_truth_is_what_the_messages_say(story: Plan) -> None:
    recomputed = entered_from_messages(story)
    assert set(recomputed) == set(story.batches)
    for batch, truth in story.batches.items():
        got = [(e.stage, e.site, e.device, e.ts_ns) for e in truth.entered]
        assert recomputed[batch] == got, batch
        assert truth.expected_events() == Counter(s for s, *_ in recomputed[batch])
        assert [(s[0], s[2], s[3]) for s in truth.stages] == [(s, si, d) for s, si, d, _ in got]
    # the verdicts follow from what was injected, one rule each
    kinds = {spec.id for spec in RULE_SPECS if spec.subject == "batch"}
    assert set(story.broken().values()) == kinds
    assert story.expected_verdicts() == {
        b: ("broken" if t.violation else "complete") for b, t in story.batches.items()
    }
    # returns are entries again: back on the truck, a disposed tag in storage, a clone
    events = {t.violation: t.expected_events() for t in story.batches.values() if t.violation}
    assert events["backward_stage"]["IN_TRANSIT"] == 2
    assert events["disposed_tag"]["STORED"] == 2
    assert events["cloned_tag"]["STORED"] == 2
    assert "STORED" not in events["skipped_stage"]
    normal = [t for t in story.batches.values() if not t.violation]
    assert all(set(t.expected_events().values()) == {1} for t in normal)
    assert all(len(t.expected_events()) == 6 for t in normal)
    # the unknown tags passed the door too, and belong to no batch
    assert {p.epc for p in story.passes.values() if p.batch is None} == set(story.unknown_epcs)


def test_the_ledger_totals_are_what_the_messages_say(story: Plan) -> None:
    weights: dict[tuple[str, str], float] = {}  # (epc, scale) → first net weight
    codes: dict[str, str] = {}
    for m in story.messages:
        body = orjson.loads(m.payload)
        if m.topic.endswith("/weight"):
            weights.setdefault((body["epc"], m.device[2]), body["net_kg"])
        elif m.topic.endswith("/batch"):
            codes[body["batch"]] = body["waste_code"]
    epc_of = {b: t.epc for b, t in story.batches.items()}
    entered = entered_from_messages(story)
    first, last = story.span()
    for site in ("jy-0012", "dp-01", "dp-02", "kf-99"):
        want: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for batch, stages in entered.items():
            epc, code = epc_of[batch], codes[batch]
            gen = weights[(epc, "s1")]
            recv = weights.get((epc, "s2"), weights.get((epc, "s3")))
            for stage, at_site, _, at in stages:
                if at_site != site:
                    continue
                column = {"GENERATED": "generated_kg", "DISPATCHED": "transferred_kg"}.get(stage)
                if column:
                    want[(month_of(at), code)][column] += gen
                if stage == "DISPOSED":
                    want[(month_of(at), code)]["disposed_kg"] += recv or gen
            # in storage at a month's end: from entering STORED here to its next entry of a
            # later stage, every stay, none once disposed (what a tag in storage then holds)
            stays, since = [], None
            for stage, at_site, _, at in stages:
                if since is not None and stage not in ("GENERATED", "STORED"):
                    stays.append((since, at))
                    since = None
                if stage == "DISPOSED":
                    break
                if since is None and stage == "STORED" and at_site == site:
                    since = at
            if since is not None:
                stays.append((since, None))
            for month in months_between(first, last + 1):
                end = month_end_ns(month)
                if any(a < end and (b is None or b >= end) for a, b in stays):
                    want[(month, code)]["stored_month_end_kg"] += gen
        expected = story.expected_ledger(site, first, last + 1)
        assert {k: {c: round(v, 3) for c, v in w.items() if v} for k, w in want.items()} == {
            k: {c: v for c, v in row.items() if v} for k, row in expected.items()
        }, site
        physical = story.expected_ledger(site, first, last + 1, physical_stock=True)
        if site == "kf-99":  # a clone's stay counts by its tag, but held nothing there
            assert not any(row["stored_month_end_kg"] for row in physical.values())
        else:
            assert physical == expected
        if site == "jy-0012":
            assert len({month for month, _ in expected}) >= 2  # the story crosses a month end
            records = story.expected_records(site, first, last + 1)
            assert records[("storage_in", "B00000")] == 1  # one record per container and stage
            stored_here = [
                e for t in story.batches.values() for e in t.entered
                if e.stage == "STORED" and e.site == site
            ]  # fmt: skip
            assert sum(n for (kind, _), n in records.items() if kind == "storage_in") == len(
                stored_here
            )


def test_every_message_decodes_as_hazwatch_reads_it(story: Plan) -> None:
    ctx = NoRegistry()
    for m in story.messages[:: max(1, len(story.messages) // 5000)]:
        decoded = decode(m.topic, m.payload, ctx, now_ns=START + 500 * 86400 * NS)
        # in the message's millisecond (a point whose EPC or batch is a field is moved
        # within it by that identifier: devices.schema.point_time)
        assert decoded.points[0].ts_ns // MS == m.ts_ns // MS
    reads = [(m.topic, m.epc, m.ts_ns) for m in story.messages if m.kind]
    assert len(set(reads)) == len(reads)  # no two reads of a tag at a reader in one ms


def test_the_one_read_story_is_kept_for_what_needs_it() -> None:
    single = plan(20, 10, seed=4, start_ns=START, reads=ONE_READ)
    bursts = plan(20, 10, seed=4, start_ns=START)
    assert {b: (t.gen_kg, t.violation) for b, t in single.batches.items()} == {
        b: (t.gen_kg, t.violation) for b, t in bursts.batches.items()
    }
    one_each = sum(sum(e.reads for e in t.entered) for t in single.batches.values()) + 2
    assert Counter(m.kind for m in single.messages if m.kind) == {"single": one_each}
    assert all(e.reads == 1 for t in single.batches.values() for e in t.entered[1:]
               if e.stage != "IN_TRANSIT")  # fmt: skip
    for truth in single.batches.values():
        vehicle = [m for m in single.messages if m.epc == truth.epc and "veh-01" in m.topic]
        assert len(vehicle) == 2 + (truth.violation == "backward_stage")  # as before passes
        back = truth.violation == "backward_stage"  # the second read on the road: one stay
        assert [s for s, *_ in truth.stages].count("IN_TRANSIT") == 1 + back
        assert truth.expected_events()["IN_TRANSIT"] == 1 + back
    assert len(bursts.messages) > 50 * len(single.messages)


def test_device_clocks_fast_slow_drifting_and_rebooting() -> None:
    origin = START
    assert parse_clock("-900s").device_ns(origin) == origin - 900 * NS
    drifting = parse_clock("+40ppm").starting(origin)
    assert drifting.device_ns(origin + 86400 * NS) - (origin + 86400 * NS) == int(3.456 * NS)
    reboot = parse_clock("+30s,reboot@600,sync@900").starting(origin)
    assert reboot.device_ns(origin + 599 * NS) == origin + 629 * NS
    assert reboot.device_ns(origin + 610 * NS) == EARLIEST_NS + 10 * NS  # 2000-01-01T00:00:10Z
    assert reboot.device_ns(origin + 901 * NS) == origin + 901 * NS
    assert parse_clocks(["gate-03=-900s", "veh-01=+5ppm"])["veh-01"].drift_ppm == 5
    for bad in ("gate-03", "=-9s", "gate-03=fast", "gate-03=+5000ppm"):
        with pytest.raises(ValueError):
            parse_clocks([bad])

    clocks = {"gate-03": DeviceClock(offset_s=-900), "rg-1": parse_clock("reboot@86400")}
    skewed = plan(6, 0, seed=4, start_ns=START, clocks=clocks)
    exact = plan(6, 0, seed=4, start_ns=START)
    assert [m.sent_ns for m in skewed.messages] == [m.sent_ns for m in exact.messages]
    for m in skewed.messages:
        ts = orjson.loads(m.payload)["ts"] * MS
        assert ts == m.ts_ns
        if m.device[2] == "gate-03":
            assert abs(ts - (m.sent_ns - 900 * NS)) <= 2 * MS
        elif m.device[2] == "rg-1":
            assert ts < START  # a day in, the gate's reader rebooted to 2000-01-01
            assert (
                decode(m.topic, m.payload, NoRegistry(), now_ns=START).points[0].ts_ns
                >= EARLIEST_NS
            )
        else:
            assert abs(ts - m.sent_ns) <= 2 * MS
    for s_truth, e_truth in zip(skewed.batches.values(), exact.batches.values(), strict=True):
        stored = next(e for e in s_truth.entered if e.stage == "STORED")
        same = next(e for e in e_truth.entered if e.stage == "STORED")
        assert stored.at_ns == same.at_ns and stored.ts_ns == same.ts_ns - 900 * NS
    assert skewed.document()["clocks"] == {"gate-03": "-900s", "rg-1": "reboot@86400"}


def test_the_compressed_story_shows_every_live_rule_within_minutes() -> None:
    live = plan(18, 9, kinds=LIVE_VIOLATIONS, seed=2, start_ns=START, timing=Timing.compressed(),
                reads=ReadModel.compressed())  # fmt: skip
    assert set(live.broken().values()) == set(LIVE_VIOLATIONS) - {"unknown_tag"}
    assert live.unknown_epcs
    assert {spec.id for spec in RULE_SPECS} - set(LIVE_VIOLATIONS) == {"storage_overdue"}
    span_s = (live.messages[-1].sent_ns - live.messages[0].sent_ns) / NS
    assert span_s < 7 * 60
    victims = [t for t in live.batches.values() if t.violation]
    assert max(t.entered[0].at_ns - START for t in victims) < 3 * 60 * NS  # registered
    assert max(t.entered[-1].at_ns - START for t in victims) < 6 * 60 * NS  # story over
    first = min(victims, key=lambda t: t.entered[0].at_ns)
    assert first.violation == "cloned_tag"  # a broken chain within the first minute:
    clone = next(e for e in first.entered if e.site == "kf-99")
    assert clone.at_ns - START < 60 * NS  # read at the far site
    kinds = Counter(m.kind for m in live.messages if m.kind)
    assert {"pass", "cross", "transit", "stocktake"} <= set(kinds)
    rate = sum(kinds.values()) / span_s
    assert 30 < rate < 300  # reads/s the demo's story sends: far below what ingest takes


def test_the_ground_truth_document_is_json_a_test_can_read(story: Plan, tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    story.write(path)
    doc = orjson.loads(path.read_bytes())
    assert doc["batches"]["B00000"]["expected_events"] == {
        "GENERATED": 1, "STORED": 1, "DISPATCHED": 1, "IN_TRANSIT": 1, "RECEIVED": 1,
        "DISPOSED": 1,
    }  # fmt: skip
    assert doc["batches"]["B00001"]["verdict"] == "broken"
    assert {"jy-0012", "dp-01", "dp-02", "tr-01", "kf-99"} <= set(doc["ledger"])
    months = {row["month"] for row in doc["ledger"]["jy-0012"]}
    assert {"2025-12", "2026-01"} <= months  # the story crosses a month end
    assert doc["read_counts"]["pass"] > 0 and len(doc["passes"]) == len(story.passes)
    assert doc["reads"]["round_hz"] == 25.0
