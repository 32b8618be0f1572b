"""Each custody rule with its smallest story: it fires, and the honest neighbour does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.devices.registry import load_file
from hazwatch.streams.custody.processor import geography
from hazwatch.streams.custody.rules import (
    NS_PER_DAY,
    NS_PER_H,
    Input,
    ManifestInfo,
    Read,
    Registration,
    Tracker,
    Weighing,
)
from tests.samples import custody_limits

REGISTRY = load_file(Path(__file__).parents[1] / "data" / "registry.toml")
LIMITS = custody_limits()  # the sample settings' tolerances
T0 = 1_700_000_000 * 1_000_000_000
M = 60 * 1_000_000_000
S = 1_000_000_000
EPC = "E2000017221101441890AB01"


def story(
    batch: str = "B1",
    epc: str = EPC,
    *,
    gen_kg: float = 100.0,
    recv_kg: float | None = 100.0,
    receiver: str = "dp-01",
    steps: tuple[tuple[str, str, int], ...] | None = None,
    manifest: tuple[str, ...] | None = None,
) -> list[Input]:
    """A whole honest life, or the given (site, reader, minutes) passes: each a burst of
    reads a second apart for two seconds, as a reader reports a tag carried past it."""
    items: list[Input] = [
        Weighing(f"{batch}-w1", epc, "jy-0012", "s1", "generation", gen_kg, T0 - M),
        Registration(f"{batch}-reg", batch, epc, "900-249-08", "jy-0012", "t1", T0),
        ManifestInfo(f"M-{batch}", manifest or (batch,), receiver, "jy-0012", T0 + 30 * M),
    ]
    if steps is None:
        steps = (
            ("jy-0012", "gate-03", 60),
            ("jy-0012", "gate-04", 600),
            ("tr-01", "veh-01", 610),
            ("dp-01", "rg-1", 700),
            ("dp-01", "line-1", 800),
        )
    location = {(r.site, r.id): r.location for r in REGISTRY.readers.values()}
    for i, (site, reader, minutes) in enumerate(steps):
        ts = T0 + minutes * M
        items += burst(f"{batch}-r{i}", epc, site, reader, location[(site, reader)], ts)
        if location[(site, reader)] == "receiver_gate" and recv_kg is not None:
            scale = {"dp-01": "s2", "dp-02": "s3"}[site]
            items.append(
                Weighing(f"{batch}-w{i}", epc, site, scale, "receiver_gate", recv_kg, ts + M)
            )
    return items


def burst(
    prefix: str, epc: str, site: str, reader: str, location: str, ts: int, reads: int = 3
) -> list[Input]:
    """A pass of `reads` reads a second apart from `ts`, RSSI rising then falling."""
    return [
        Read(f"{prefix}-{k}", epc, site, reader, location, ts + k * S, -60.0 + 5 * min(k, 2 - k))
        for k in range(reads)
    ]


def run(items: list[Input], now_ns: int | None = None) -> tuple[Tracker, list[str]]:
    tracker = Tracker(geography(REGISTRY, LIMITS))
    changes = tracker.apply(items, now_ns or T0 + 2 * NS_PER_DAY)
    return tracker, sorted({v.rule for v in changes.raised})


def rules_of(tracker: Tracker, batch: str = "B1") -> list[str]:
    judged = tracker.trace(batch)
    assert judged is not None
    return sorted({v.rule for v in judged.violations})


HONEST = (
    ("jy-0012", "gate-03", 60),
    ("jy-0012", "gate-04", 600),
    ("tr-01", "veh-01", 610),
    ("dp-01", "rg-1", 700),
    ("dp-01", "line-1", 800),
)


def test_honest_batch_is_complete() -> None:
    tracker, raised = run(story())
    judged = tracker.trace("B1")
    assert judged is not None
    assert judged.verdict == "complete" and raised == []
    assert [e.stage for e in judged.events] == [
        "GENERATED", "STORED", "DISPATCHED", "IN_TRANSIT", "RECEIVED", "DISPOSED",
    ]  # fmt: skip
    assert judged.events[0].net_kg == 100.0 and judged.events[4].net_kg == 100.0


def test_open_batch_says_where_it_is() -> None:
    tracker, _ = run(story(steps=HONEST[:1]), now_ns=T0 + 5 * NS_PER_H)
    judged = tracker.trace("B1")
    assert judged is not None and judged.verdict == "open"
    assert (judged.stage, judged.site) == ("STORED", "jy-0012")


@pytest.mark.parametrize(
    ("rule", "steps", "kwargs"),
    [
        ("skipped_stage", (HONEST[1], *HONEST[2:]), {}),
        ("backward_stage", (*HONEST[:4], ("tr-01", "veh-01", 750), HONEST[4]), {}),
        ("disposed_tag", (*HONEST, ("jy-0012", "gate-03", 2000)), {}),
        ("weight_mismatch", HONEST, {"recv_kg": 90.0}),
        ("wrong_receiver", (*HONEST[:3], ("dp-02", "rg-2", 700), ("dp-02", "line-2", 800)), {}),
        ("cloned_tag", (HONEST[0], ("kf-99", "in-9", 70), *HONEST[1:]), {}),
        (
            "transit_overdue",
            (*HONEST[:3], ("dp-01", "rg-1", 600 + 25 * 60), ("dp-01", "line-1", 600 + 26 * 60)),
            {},
        ),
        (
            "storage_overdue",
            (
                HONEST[0],
                ("jy-0012", "gate-04", 366 * 1440),
                ("tr-01", "veh-01", 366 * 1440 + 10),
                ("dp-01", "rg-1", 366 * 1440 + 100),
                ("dp-01", "line-1", 366 * 1440 + 200),
            ),
            {},
        ),
        ("storage_over_capacity", HONEST, {"gen_kg": 3100.0, "recv_kg": 3100.0}),
    ],
)
def test_rule_fires_and_only_it(rule: str, steps: tuple, kwargs: dict) -> None:  # type: ignore[type-arg]
    tracker, raised = run(story(steps=steps, **kwargs), now_ns=T0 + 800 * NS_PER_DAY)
    assert rules_of(tracker) == [rule]
    assert raised == [rule]
    judged = tracker.trace("B1")
    assert judged is not None and judged.verdict == "broken"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"recv_kg": 96.0},  # within 5 %
        {"gen_kg": 20.0, "recv_kg": 18.5},  # within 2 kg
        {"gen_kg": 2900.0, "recv_kg": 2900.0},  # under 3 t
    ],
)
def test_honest_neighbours_do_not_fire(kwargs: dict) -> None:  # type: ignore[type-arg]
    tracker, raised = run(story(**kwargs))
    assert raised == [] and rules_of(tracker) == []


def test_storage_overdue_fires_from_the_periodic_check() -> None:
    tracker, raised = run(story(steps=HONEST[:1]), now_ns=T0 + NS_PER_DAY)
    assert raised == []
    assert [v.rule for v in tracker.check(T0 + 364 * NS_PER_DAY).raised] == []
    assert [v.rule for v in tracker.check(T0 + 366 * NS_PER_DAY).raised] == ["storage_overdue"]


def test_transit_overdue_fires_from_the_periodic_check() -> None:
    tracker, _ = run(story(steps=HONEST[:3]), now_ns=T0 + 11 * NS_PER_H)
    assert tracker.check(T0 + 20 * NS_PER_H).raised == []
    late = tracker.check(T0 + 35 * NS_PER_H)
    assert [v.rule for v in late.raised] == ["transit_overdue"]
    # received after all (late): still broken, now at the receipt
    changes = tracker.apply(
        [Read("late", EPC, "dp-01", "rg-1", "receiver_gate", T0 + 36 * NS_PER_H)],
        T0 + 36 * NS_PER_H,
    )
    assert rules_of(tracker) == ["transit_overdue"]
    # the violation moved to the receipt: the event of the pass the late read made
    judged = changes.batches["B1"]
    receipt = next(e for e in judged.events if e.stage == "RECEIVED")
    assert (receipt.ts_ns, receipt.reads) == (T0 + 36 * NS_PER_H, 1)
    assert judged.violations[0].event_id == receipt.event_id


def test_unknown_tag_and_its_honest_neighbour() -> None:
    tracker = Tracker(geography(REGISTRY, LIMITS))
    changes = tracker.apply(
        [Read("x1", "AAAABBBBCCCC", "jy-0012", "gate-03", "storage_in", T0)], T0
    )
    assert [(v.rule, v.subject) for v in changes.raised] == [("unknown_tag", "AAAABBBBCCCC")]
    _, raised = run(story())
    assert "unknown_tag" not in raised


def test_manifest_split_and_its_honest_neighbour() -> None:
    together = story("A", "E20000000000000000000A01", manifest=("A", "B")) + story(
        "B", "E20000000000000000000B01", manifest=("A", "B")
    )
    tracker, raised = run(together)
    assert raised == []
    late_b = tuple((s, r, m + 24 * 60) if m >= 600 else (s, r, m) for s, r, m in HONEST)
    split = story("A", "E20000000000000000000A01", manifest=("A", "B")) + story(
        "B", "E20000000000000000000B01", manifest=("A", "B"), steps=late_b
    )
    tracker, raised = run(split, now_ns=T0 + 5 * NS_PER_DAY)
    assert rules_of(tracker, "A") == [] and rules_of(tracker, "B") == ["manifest_split"]


def test_manifest_split_when_never_dispatched() -> None:
    items = story("A", "E20000000000000000000A01", manifest=("A", "B")) + story(
        "B", "E20000000000000000000B01", manifest=("A", "B"), steps=HONEST[:1]
    )
    tracker, _ = run(items, now_ns=T0 + 11 * NS_PER_H)
    assert rules_of(tracker, "B") == []
    tracker.check(T0 + 14 * NS_PER_H)
    assert rules_of(tracker, "B") == ["manifest_split"]


def test_capacity_counts_what_is_held_at_once() -> None:
    # two 1600 kg batches in storage at once: the second one takes the site over 3000 kg
    a = story("A", "E20000000000000000000A01", gen_kg=1600, recv_kg=1600)
    b = story(
        "B",
        "E20000000000000000000B01",
        gen_kg=1600,
        recv_kg=1600,
        steps=tuple((s, r, m + 100) for s, r, m in HONEST),
    )
    tracker, _ = run(a + b)
    assert rules_of(tracker, "A") == [] and rules_of(tracker, "B") == ["storage_over_capacity"]
    # one after the other: never more than 1600 kg held
    c = story(
        "B",
        "E20000000000000000000B01",
        gen_kg=1600,
        recv_kg=1600,
        steps=tuple((s, r, m + 700) for s, r, m in HONEST),
    )
    tracker, _ = run(a + c)
    assert rules_of(tracker, "B") == []


def test_duplicates_make_no_second_event() -> None:
    items = story()
    tracker = Tracker(geography(REGISTRY, LIMITS))
    first = tracker.apply(items, T0 + NS_PER_DAY)
    again = tracker.apply(items, T0 + NS_PER_DAY)
    assert len(first.events) == 6
    assert again.events == {} and again.batches == {} and again.raised == []
    judged = tracker.trace("B1")
    assert judged is not None and len(judged.events) == 6


VIOLATING = {
    "honest": {},
    "backward": {"steps": (*HONEST[:4], ("tr-01", "veh-01", 750), HONEST[4])},
    "cloned": {"steps": (HONEST[0], ("kf-99", "in-9", 70), *HONEST[1:])},
    "capacity": {"gen_kg": 3100.0, "recv_kg": 3100.0},
    "weight": {"recv_kg": 50.0},
    "skipped": {"steps": (HONEST[1], *HONEST[2:])},
    "disposed": {"steps": (*HONEST, ("jy-0012", "gate-03", 2000))},
    "wrong_receiver": {
        "steps": (*HONEST[:3], ("dp-02", "rg-2", 700), ("dp-02", "line-2", 800)),
    },
    "late": {
        "steps": (*HONEST[:3], ("dp-01", "rg-1", 600 + 25 * 60), ("dp-01", "line-1", 2200)),
    },
    "open": {"steps": HONEST[:3]},
}


@settings(max_examples=80, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(VIOLATING)), min_size=1, max_size=5),
    data=st.data(),
)
def test_arrival_order_does_not_change_the_verdict(  # after the periodic check
    kinds: list[str], data: st.DataObject
) -> None:
    items: list[Input] = []
    for i, kind in enumerate(kinds):
        epc = f"E2000000000000000000{i:04X}"
        shifted = VIOLATING[kind].get("steps", HONEST)
        steps = tuple((s, r, m + 37 * i) for s, r, m in shifted)  # type: ignore[union-attr]
        extra = {k: v for k, v in VIOLATING[kind].items() if k != "steps"}
        items += story(f"B{i}", epc, steps=steps, **extra)  # type: ignore[arg-type]
    now = T0 + 3 * NS_PER_DAY
    reference = Tracker(geography(REGISTRY, LIMITS))
    reference.apply(items, now)
    shuffled = data.draw(st.permutations(items))
    chunks = data.draw(st.integers(min_value=1, max_value=len(items)))
    tracker = Tracker(geography(REGISTRY, LIMITS))
    for start in range(0, len(shuffled), chunks):
        tracker.apply(shuffled[start : start + chunks], now)
    tracker.apply(shuffled[:3], now)  # redelivery on top
    reference.check(now)  # the periodic check brings time-based rules to `now` in both
    tracker.check(now)
    for batch in reference.judged:
        want, got = reference.trace(batch), tracker.trace(batch)
        assert got is not None and want is not None
        assert (got.verdict, got.stage, got.violations, got.events) == (
            want.verdict, want.stage, want.violations, want.events,
        )  # fmt: skip


def test_periodic_check_judges_only_batches_that_are_due() -> None:
    tracker, _ = run(story(steps=HONEST[:1]), now_ns=T0 + NS_PER_DAY)
    judged = tracker.trace("B1")
    assert judged is not None and judged.due_ns == T0 + 60 * M + 365 * NS_PER_DAY + 1
    assert tracker.check(T0 + 100 * NS_PER_DAY).batches == {}
    assert list(tracker.check(T0 + 366 * NS_PER_DAY).batches) == ["B1"]


@pytest.mark.parametrize(("slack_km", "cloned"), [(5.0, True), (40.0, False)])
def test_the_clone_slack_is_a_setting(slack_km: float, cloned: bool) -> None:
    from dataclasses import replace

    # read at jy-0012 and a minute later at dp-01, some 20 km away: 2 km at 120 km/h
    distance = REGISTRY.distance_km("jy-0012", "dp-01") or 0
    assert 10 < distance < 30
    tracker = Tracker(geography(REGISTRY, replace(LIMITS, clone_slack_km=slack_km)))
    tracker.apply(story(steps=(HONEST[0], ("dp-01", "rg-1", 61))), T0 + 2 * NS_PER_DAY)
    assert ("cloned_tag" in rules_of(tracker)) is cloned


def test_a_days_backlog_arriving_late_is_judged_as_if_in_order() -> None:
    # a fleet taken live, then a second one for the same hours (a gateway back after an
    # outage): together they take the storage point over 3,000 kg, as they would in order
    def fleet(first: int, offset_min: int) -> list[Input]:
        items: list[Input] = []
        for i in range(first, first + 30):
            steps = tuple((s, r, m + 10 * (i - first) + offset_min) for s, r, m in HONEST)
            epc = f"E2000000000000000000{i:04X}"
            items += story(f"B{i}", epc, gen_kg=60.0, recv_kg=60.0, steps=steps)
        return sorted(items, key=lambda item: item.ts_ns)

    in_order, late = fleet(0, 0), fleet(30, 5)
    now = T0 + 2 * NS_PER_DAY
    reference = Tracker(geography(REGISTRY, LIMITS))
    reference.apply(sorted(in_order + late, key=lambda item: item.ts_ns), now)
    tracker = Tracker(geography(REGISTRY, LIMITS))
    for start in range(0, len(in_order), 50):
        part = in_order[start : start + 50]
        tracker.apply(part, max(item.ts_ns for item in part))
    assert not any(j.violations for j in tracker.judged.values())
    for start in range(0, len(late), 50):
        tracker.apply(late[start : start + 50], now)
    reference.check(now)
    tracker.check(now)
    over = [b for b in reference.judged if "storage_over_capacity" in rules_of(reference, b)]
    assert over  # the late fleet's kilograms count among the stays already there
    for batch in reference.judged:
        want, got = reference.trace(batch), tracker.trace(batch)
        assert got is not None and want is not None
        assert (got.verdict, got.violations, got.events) == (
            want.verdict, want.violations, want.events,
        )  # fmt: skip
