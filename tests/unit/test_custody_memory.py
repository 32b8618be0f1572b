"""Memory bounded by open work (issue #19, item 6): closed batches leave the tracker once
past closed_keep_h, and a late input for one is judged as if it had never left (loaded back
from the store), across a restart too; a redelivery of what it stored changes nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import NS_PER_DAY, Input, Judgement, Read, Tracker
from hazwatch.streams.custody.store import CustodyStore
from tests.unit.test_custody_rules import HONEST, LIMITS, REGISTRY, T0, M, story

A_EPC, B_EPC, C_EPC = (f"E20000000000000000000{x}01" for x in "ABC")


def make(db: StateDB, keep_h: float = 24.0) -> tuple[CustodyProcessor, ListSink]:
    tracker = Tracker()
    sink = ListSink()
    ctx = RegistryContext(None, REGISTRY, batches=tracker.epc_batch)
    limits = replace(LIMITS, closed_keep_h=keep_h)
    return CustodyProcessor(tracker, ctx, sink, CustodyStore(db), limits=limits), sink


def feed(proc: CustodyProcessor, items: list[Input], now: int) -> None:
    proc.take(sorted(items, key=lambda item: item.ts_ns), now)
    proc.tick(now + M)  # a checkpoint: closed batches past the window leave


def later(days: int, batch: str, epc: str, **kw: object) -> list[Input]:
    """A whole life `days` after the first: moves the newest device time on."""
    steps = tuple((s, r, m + days * 24 * 60) for s, r, m in HONEST)
    return story(batch, epc, steps=steps, **kw)  # type: ignore[arg-type]


def stored(db: StateDB, batch: str) -> tuple[object, ...]:
    """A batch's verdict row and events as stored (an evicted one is no longer in memory)."""
    store = CustodyStore(db)
    row = store.batch(batch)
    assert row is not None
    return row["verdict"], row["stage"], row["violations"], store.events(batch)


def facts(j: Judgement) -> tuple[object, ...]:
    return (j.verdict, j.stage, j.violations, j.events)


def run_both(
    tmp_path: Path, first: list[Input], late: list[Input], now: int, restart: bool = False
) -> tuple[CustodyProcessor, StateDB, CustodyProcessor, StateDB]:
    """`first`, then a day later another batch, then `late`: in a processor that evicts and
    in one that keeps everything (closed_keep_h a year)."""
    out = []
    for name, keep_h in (("evicts", 24.0), ("keeps", 24.0 * 365)):
        db = StateDB(f"sqlite:///{tmp_path / name}.db")
        proc, _ = make(db, keep_h)
        feed(proc, first, T0 + NS_PER_DAY)
        feed(proc, later(3, "C", C_EPC), now)
        if name == "evicts":
            assert "A" not in proc.tracker.batches and A_EPC not in proc.tracker.epc_batch
            assert not any(i.startswith("A-") for i in proc.tracker.seen)
            assert "C" in proc.tracker.batches  # within the window
        if restart:
            proc, _ = make(db, keep_h)
            assert ("A" in proc.tracker.batches) is (name == "keeps")
        feed(proc, late, now + 2 * M)
        out += [proc, db]
    return out[0], out[1], out[2], out[3]  # type: ignore[return-value]


def test_a_late_read_of_an_evicted_batch_is_judged_as_if_it_never_left(tmp_path: Path) -> None:
    now = T0 + 4 * NS_PER_DAY
    # its tag read at the storage door again, two days after it was disposed
    late: list[Input] = [
        Read(f"late-{k}", A_EPC, "jy-0012", "gate-03", "storage_in", T0 + 2 * NS_PER_DAY + k)
        for k in range(3)
    ]
    for restart in (False, True):
        evicts, db, keeps, kept = run_both(
            tmp_path / str(restart), story("A", A_EPC), late, now, restart
        )
        assert stored(db, "A") == stored(kept, "A")
        judged = evicts.tracker.trace("A")
        assert judged is not None and facts(judged) == facts(keeps.tracker.trace("A"))  # type: ignore[arg-type]
        assert "disposed_tag" in {v.rule for v in judged.violations}
        db.close()


@pytest.mark.parametrize("restart", [False, True])
def test_a_late_stay_moves_an_evicted_batchs_capacity_hit(tmp_path: Path, restart: bool) -> None:
    # A (1,600 kg) stored and gone long ago; B (1,600 kg) arrives late, stored before A came
    # and still there when A did: now A's storing took the site over 3,000 kg
    first = story("A", A_EPC, gen_kg=1600, recv_kg=1600)
    b_steps = tuple((s, r, m - 30) for s, r, m in HONEST)
    late = story("B", B_EPC, gen_kg=1600, recv_kg=1600, steps=b_steps)
    now = T0 + 4 * NS_PER_DAY
    evicts, db, keeps, kept = run_both(tmp_path, first, late, now, restart)
    if restart:  # it loaded open work only: the stays it left out were counted when B came
        assert evicts.tracker.stays_from is None
    for batch in ("A", "B"):
        assert stored(db, batch) == stored(kept, batch)
    a = keeps.tracker.trace("A")
    assert a is not None and [v.rule for v in a.violations] == ["storage_over_capacity"]
    db.close()


def test_a_redelivery_for_an_evicted_batch_changes_nothing(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    proc, sink = make(db)
    first = story("A", A_EPC)
    feed(proc, first, T0 + NS_PER_DAY)
    events = CustodyStore(db).events("A")
    feed(proc, later(3, "C", C_EPC), T0 + 4 * NS_PER_DAY)
    assert "A" not in proc.tracker.batches
    raised = len(sink.raised)
    # its registration, weighings and manifest delivered again: caught by their ids, loaded
    # back with it from the store. (A read is refused again by the recent reads of its reader,
    # CustodyStore.read_logs, kept whatever is evicted: test_custody_passes.)
    again = [item for item in first if not isinstance(item, Read)]
    now = T0 + 4 * NS_PER_DAY + 2 * M
    # no point written again: its events are in InfluxDB already
    assert proc.take(sorted(again, key=lambda item: item.ts_ns), now) == []
    proc.tick(now + M)
    row = CustodyStore(db).batch("A")
    assert row is not None and row["verdict"] == "complete"
    assert CustodyStore(db).events("A") == events and len(sink.raised) == raised
    assert "A" not in proc.tracker.batches  # loaded back, judged, and gone again
    db.close()
