"""The state store's pruning (issue #19, item 5), on real SQLite and PostgreSQL: closed batches'
raw inputs archived and deleted leave their verdicts, traces, the ledger and the event ids as
they were, and a pruned batch verifies (record digest, archived line, judged again); a late
read for a pruned batch's tag is judged as without pruning (the batch loaded back from its
archived line, archived again by the next prune); dead letters go by age, resolved alerts
after five years; the ledger's and pruning's indexes exist and their plans use them; a new
SQLite file has auto_vacuum=INCREMENTAL and an old one gets it by `hazwatch store vacuum`."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hazwatch.alerts.model import AlertSignal, ListSink, Severity
from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.deadletters import DeadLetter, DeadLetterStore
from hazwatch.streams.custody import ledger
from hazwatch.streams.custody.processor import CustodyProcessor, geography
from hazwatch.streams.custody.retention import prune_raw, record_digest, verify
from hazwatch.streams.custody.rules import NS_PER_DAY, Input, Read, Tracker
from hazwatch.streams.custody.store import CustodyStore, trace_document
from tests.unit.test_custody_rules import LIMITS, REGISTRY, T0, M, story

A_EPC, B_EPC, C_EPC = (f"E20000000000000000000{x}01" for x in "ABC")
DAY = NS_PER_DAY


def shifted(items: list[Input], days: int) -> list[Input]:
    return [replace(item, ts_ns=item.ts_ns + days * DAY) for item in items]  # type: ignore[type-var]


def processor(db: StateDB, archive: Path | None = None) -> CustodyProcessor:
    tracker = Tracker()
    ctx = RegistryContext(None, REGISTRY, batches=tracker.epc_batch)
    return CustodyProcessor(tracker, ctx, ListSink(), CustodyStore(db, archive), limits=LIMITS)


def feed(proc: CustodyProcessor, items: list[Input]) -> int:
    now = max(item.ts_ns for item in items) + M
    proc.take(sorted(items, key=lambda item: item.ts_ns), now)
    proc.tick(now + M)
    return now


def fresh() -> Tracker:
    return Tracker(geography(REGISTRY, LIMITS))


def history(db: StateDB, archive: Path | None = None) -> tuple[CustodyProcessor, int]:
    """A honest (tag A), B broken by its weights (tag B), both closed on day 0; A2, tag A
    again, on day 150; C on day 200 (the newest time)."""
    proc = processor(db, archive)
    feed(proc, story("A", A_EPC) + story("B", B_EPC, recv_kg=150.0))
    feed(proc, shifted(story("A2", A_EPC), 150))
    now = feed(proc, shifted(story("C", C_EPC), 200))
    return proc, now


def raw_rows(db: StateDB, epc: str, upto: int) -> int:
    inputs = db.query(
        "SELECT COUNT(*) FROM custody_input WHERE epc = ? AND ts_ns <= ?", (epc, upto)
    )
    passes = db.query(
        "SELECT COUNT(*) FROM custody_pass WHERE epc = ? AND first_ns <= ?", (epc, upto)
    )
    return int(inputs[0][0]) + int(passes[0][0])


def whole_ledger(store: CustodyStore, start: int, end: int) -> ledger.Ledger:
    """The ledger from the whole history, as it was built before ledger_inputs."""
    return ledger.build_ledger(
        "jy-0012", start, end, store.events_between(start, end), store.all_batches(),
        store.manifests(),
    )  # fmt: skip


def test_pruned_batches_keep_verdicts_traces_ledger_and_verify(
    state_url: str, tmp_path: Path
) -> None:
    db = StateDB(state_url)
    proc, now = history(db, tmp_path)
    store = CustodyStore(db)
    assert store.batch("B") is not None and store.batch("B")["verdict"] == "broken"  # type: ignore[index]
    traces = {b: trace_document(store, b, now) for b in ("A", "B", "A2", "C")}
    start, end = ledger.parse_date_ns("2023-11-01"), ledger.parse_date_ns("2024-07-01")
    months = [(start, end)] + [
        (ledger.parse_date_ns(f"{y}-{m:02d}-01"), ledger.parse_date_ns(f"{y2}-{m2:02d}-01"))
        for (y, m), (y2, m2) in zip(
            [(2023, 11), (2023, 12), (2024, 1), (2024, 4), (2024, 5)],
            [(2023, 12), (2024, 1), (2024, 2), (2024, 5), (2024, 6)],
            strict=True,
        )
    ]
    ledgers = [ledger.ledger_for(store, "jy-0012", s, e, None) for s, e in months]
    # the ledger read from the batches that can count is the ledger of the whole history
    assert ledgers == [whole_ledger(store, s, e) for s, e in months]
    assert any(lg.rows for lg in ledgers)
    before = now - 100 * DAY  # A and B closed on day 0; A2 (day 150) and C stay

    dry = prune_raw(store, before, now, tmp_path, dry_run=True)
    assert dry.batches == 2 and dry.passes > 0 and not dry.files
    upto = store.batch("A")["since_ns"]  # type: ignore[index]
    assert raw_rows(db, A_EPC, upto) > 0  # a dry run deletes nothing

    done = prune_raw(store, before, now, tmp_path)
    assert (done.batches, done.inputs, done.passes) == (dry.batches, dry.inputs, dry.passes)
    assert len(done.files) == 1 and Path(done.files[0]).exists()
    assert raw_rows(db, A_EPC, upto) == 0 and raw_rows(db, B_EPC, 2**62) == 0
    assert raw_rows(db, A_EPC, 2**62) > 0  # A2's, after A's last event, stay
    assert prune_raw(store, before, now, tmp_path).batches == 0  # once only

    assert {b: trace_document(store, b, now) for b in traces} == traces
    assert [ledger.ledger_for(store, "jy-0012", s, e, None) for s, e in months] == ledgers
    for batch in ("A", "B"):
        checked = verify(store, batch, tmp_path, fresh)
        assert checked is not None and checked.ok, checked
        assert (checked.record_ok, checked.archive_ok, checked.verdict_ok) == (True, True, True)
    assert verify(store, "A2", tmp_path, fresh) is None  # not pruned

    # a late read of tag A: A2 (its newest batch) takes it, A stays as it was
    kept = record_digest(db, "A")
    late = Read("late-1", A_EPC, "jy-0012", "gate-03", "storage_in", now + DAY, -60.0)
    proc.take([late], now + DAY + M)
    proc.tick(now + DAY + 2 * M)
    assert record_digest(db, "A") == kept
    # (a trace lists its tag's held passes, the late one among them: of the tag, not of A)
    doc = trace_document(store, "A", now)
    assert doc is not None and {**doc, "pending": []} == traces["A"]
    # and after a restart (a tracker rebuilt from what is left: A2 closed and old, not loaded):
    # the late read loads back A2, which takes it; A, an older life of the tag, stays pruned
    again = processor(db, tmp_path)
    again.take([replace(late, event_id="late-2", ts_ns=now + 2 * DAY)], now + 2 * DAY + M)
    again.tick(now + 2 * DAY + 2 * M)
    assert record_digest(db, "A") == kept and raw_rows(db, A_EPC, upto) == 0
    checked = verify(store, "A", tmp_path, fresh)
    assert checked is not None and checked.ok
    assert again.store.archive_misses == 0

    # a kept record changed after pruning, or its archive lost: verify says so
    db.execute("UPDATE custody_event SET net_kg = 1 WHERE batch = 'B'")
    broken = verify(store, "B", tmp_path, fresh)
    assert broken is not None and not broken.record_ok and not broken.ok
    Path(done.files[0]).unlink()
    lost = verify(store, "A", tmp_path, fresh)
    assert lost is not None and lost.archive_ok is False and not lost.ok
    db.close()


def test_pruning_without_an_archive_keeps_the_digests(state_url: str) -> None:
    db = StateDB(state_url)
    _, now = history(db)
    store = CustodyStore(db)
    done = prune_raw(store, now - 100 * DAY, now, None)
    assert done.batches == 2 and not done.files
    checked = verify(store, "A", None, fresh)
    assert checked is not None and checked.ok and checked.archive_ok is None
    db.close()


def test_a_tag_whose_lives_overlap_is_held_back(state_url: str, tmp_path: Path) -> None:
    """A2 registered (day 0) before A's last event: A's rows are A2's too, nothing goes."""
    db = StateDB(state_url)
    proc = processor(db)
    feed(proc, story("A", A_EPC))
    early = [replace(i, ts_ns=T0 + 5 * M) if i.__class__.__name__ == "Registration" else i
             for i in shifted(story("A2", A_EPC), 150)]  # fmt: skip
    now = feed(proc, early + shifted(story("C", C_EPC), 200))
    store = CustodyStore(db)
    assert store.batch("A2")["ts_ns"] < store.batch("A")["since_ns"]  # type: ignore[index]
    done = prune_raw(store, now - 100 * DAY, now, tmp_path)
    assert done.batches == 0 and done.skipped == 1
    db.close()


def test_dead_letters_pruned_by_age(state_url: str) -> None:
    db = StateDB(state_url)
    clock = [T0]
    letters = DeadLetterStore(db, clock=lambda: clock[0])
    for day in (0, 10, 100):
        clock[0] = T0 + day * DAY
        letters.add_many([DeadLetter(clock[0], f"hw/s/rfid/r{day}/read", "bad_json", "x", b"{")])
    assert letters.prune_older(T0 + 50 * DAY, dry_run=True) == 2
    assert letters.prune_older(T0 + 50 * DAY) == 2
    left = db.query("SELECT topic FROM deadletters")
    assert [str(r[0]) for r in left] == ["hw/s/rfid/r100/read"]
    db.close()


def test_resolved_alerts_go_after_five_years_open_ones_stay(state_url: str) -> None:
    db = StateDB(state_url)
    alerts = AlertStore(db)
    year = 366 * DAY
    made = {}
    for name, opened, resolved in (("old", 0, 1), ("recent", 4 * year, 4 * year + 1),
                                   ("open", 0, None)):  # fmt: skip
        alert = alerts.raise_alert(
            AlertSignal("weight_mismatch", name, Severity.MAJOR, "m", "jy-0012", T0 + opened)
        )
        assert alert is not None
        made[name] = alert.alert_id
        if resolved is not None:
            alerts.resolve(alert.alert_id, at_ns=T0 + resolved, by="officer")
    cutoff = T0 + 6 * year - 5 * year  # now six years on: five kept
    assert alerts.prune_resolved(cutoff, dry_run=True) == 1
    assert alerts.prune_resolved(cutoff) == 1
    assert {a.subject for a in alerts.list()} == {"recent", "open"}
    assert alerts.history(made["old"]) == [] and alerts.history(made["recent"])
    db.close()


def plan(db: StateDB, sql: str, params: tuple[object, ...]) -> str:
    if db.kind == "postgres":
        db.execute("SET enable_seqscan = off")  # a few rows: the planner would rather scan
        return "\n".join(str(r[0]) for r in db.query("EXPLAIN " + sql, params))
    return "\n".join(str(r[3]) for r in db.query("EXPLAIN QUERY PLAN " + sql, params))


def test_the_ledger_and_pruning_indexes_exist_and_are_used(state_url: str) -> None:
    db = StateDB(state_url)
    history(db)
    AlertStore(db)
    for statement, index in (
        ("SELECT DISTINCT batch FROM custody_event WHERE ts_ns >= ? AND ts_ns < ?",
         "custody_event_ts"),
        ("SELECT batch FROM custody_batch WHERE since_ns >= ? AND ts_ns < ?",
         "custody_batch_moved"),
        ("SELECT batch FROM custody_batch WHERE stage IN ('GENERATED', 'STORED') "
         "AND since_ns < ?", "custody_batch_stage"),
        ("SELECT alert_id FROM alerts WHERE state = 'resolved' AND resolved_ns < ?",
         "alerts_resolved"),
    ):  # fmt: skip
        args = (T0,) * statement.count("?")
        assert index in plan(db, statement, args), (statement, plan(db, statement, args))
    db.close()


def test_sqlite_auto_vacuum_new_files_and_the_vacuum_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = StateDB(f"sqlite:///{tmp_path}/new.db")
    CustodyStore(db)
    assert db.query("PRAGMA auto_vacuum")[0][0] == 2  # incremental
    db.close()
    old = tmp_path / "old.db"  # made before hazwatch set auto_vacuum
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE t (x BLOB)")
        rows = "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 500)"
        conn.execute(f"INSERT INTO t {rows} SELECT zeroblob(4096) FROM k")
    monkeypatch.setenv("HAZWATCH_STATE_URL", f"sqlite:///{old}")
    monkeypatch.setenv("HAZWATCH_DATA_DIR", str(tmp_path))
    from hazwatch.commands import store as store_cli

    root = typer.Typer()
    root.callback()(lambda: None)
    store_cli.register(root)
    out = CliRunner().invoke(root, ["store", "vacuum", "--lang", "en"])
    assert out.exit_code == 0, out.output
    assert "auto_vacuum=incremental" in out.output
    db = StateDB(f"sqlite:///{old}")
    db.execute("DELETE FROM t")
    assert db.free_bytes() > 1_000_000
    db.incremental_vacuum()
    assert db.free_bytes() == 0
    db.close()


def test_store_prune_cli_dry_run_then_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    db = StateDB(url)
    _, now = history(db)
    db.close()
    monkeypatch.setenv("HAZWATCH_STATE_URL", url)
    monkeypatch.setenv("HAZWATCH_DATA_DIR", str(tmp_path))
    # the history is of 2023-2024: keep 100 days of now's 2026+ keeps nothing of it
    monkeypatch.setenv("HAZWATCH_STORE__CUSTODY_RAW_KEEP_DAYS", "100")
    from hazwatch.commands import store as store_cli

    root = typer.Typer()
    root.callback()(lambda: None)
    store_cli.register(root)
    out = CliRunner().invoke(root, ["store", "prune", "--dry-run", "--lang", "en"])
    assert out.exit_code == 0, out.output
    assert "would prune (dry run): raw inputs of 4 closed batches" in out.output
    db = StateDB(url)
    assert int(db.query("SELECT COUNT(*) FROM custody_archive")[0][0]) == 0
    db.close()
    out = CliRunner().invoke(root, ["store", "prune"])
    assert out.exit_code == 0, out.output
    assert "已清理：已结束批次 4 个" in out.output
    assert list((tmp_path / "archive").glob("custody-*.jsonl.gz"))
    out = CliRunner().invoke(root, ["store", "verify", "A", "A2", "C"])
    assert out.exit_code == 0, out.output
    assert out.output.count("record ok, archive ok, judged again ok") == 3, out.output
    out = CliRunner().invoke(root, ["store", "size"])
    assert out.exit_code == 0 and "custody_event" in out.output
    del now


def late_disposed_read(
    db: StateDB, archive: Path, prune: bool, lose: bool = False
) -> tuple[tuple[object, ...], CustodyProcessor, Read]:
    """B (disposed, broken by its weights) read again at a storage door 30 days after the
    newest time, its raw inputs pruned first or not (`lose`: and the archive file lost): B's
    stored verdict and the alerts raised; the processor and the late read."""
    proc, now = history(db, archive)
    store = CustodyStore(db)
    if prune:
        done = prune_raw(store, now - 100 * DAY, now, archive)
        assert done.batches == 2
        if lose:
            Path(done.files[0]).unlink()
    at = now + 30 * DAY
    late = Read("late-b", B_EPC, "jy-0012", "gate-03", "storage_in", at, -60.0)
    return judged_after(proc, late), proc, late


def judged_after(proc: CustodyProcessor, late: Read) -> tuple[object, ...]:
    """B's stored verdict and the alerts raised after `proc` takes `late` (and its grace)."""
    sink = proc.alerts
    assert isinstance(sink, ListSink) and proc.store is not None
    sink.raised.clear()
    proc.take([late], late.ts_ns + M)
    proc.tick(late.ts_ns + 2 * M)
    proc.tick(late.ts_ns + 3600 * 1_000_000_000)  # past unknown_tag's grace
    row = proc.store.batch("B")
    assert row is not None
    verdict = (
        row["verdict"],
        row["stage"],
        [(v["rule"], v["event_id"]) for v in row["violations"]],
    )
    alerts = [(s.rule, s.subject, s.severity, s.message, s.details) for s in sink.raised]
    return verdict, alerts


def test_a_disposed_tag_read_after_pruning_alerts_as_before(state_url: str, tmp_path: Path) -> None:
    before = StateDB(f"sqlite:///{tmp_path}/before.db")
    expected, _, _ = late_disposed_read(before, tmp_path / "a", prune=False)
    before.close()
    assert expected[0][0] == "broken" and ("disposed_tag", "B") in [a[:2] for a in expected[1]]
    db = StateDB(state_url)
    got, proc, late = late_disposed_read(db, tmp_path / "b", prune=True)
    assert got == expected
    store = CustodyStore(db)
    # B came back from its archived line: its raw inputs are in the store again, and it is
    # pruned no more (broken at STORED now: not closed, so no prune takes it)
    assert verify(store, "B", tmp_path / "b", fresh) is None
    assert raw_rows(db, B_EPC, late.ts_ns - DAY) > 0 and proc.store.archive_misses == 0  # type: ignore[union-attr]
    kept = record_digest(db, "B")
    # the same late read again (a redelivery) changes nothing and alerts nothing
    assert judged_after(proc, late) == (expected[0], [])
    assert record_digest(db, "B") == kept
    # nor after a restart (B is open work now: loaded at start)
    assert judged_after(processor(db, tmp_path / "b"), late) == (expected[0], [])
    assert record_digest(db, "B") == kept
    db.close()


def test_a_pruned_disposed_tag_whose_archive_is_lost_stays_as_stored(
    state_url: str, tmp_path: Path
) -> None:
    """No archived line to load B back from: it is judged as stored (the read is a tag of no
    batch's, as before the fix), logged and counted."""
    db = StateDB(state_url)
    stored = CustodyStore(db)
    got, proc, _ = late_disposed_read(db, tmp_path, prune=True, lose=True)
    assert proc.store is not None and proc.store.archive_misses >= 1
    assert got[0][:2] == ("broken", "DISPOSED")
    assert "unknown_tag" in [a[0] for a in got[1]]  # type: ignore[union-attr]
    assert verify(stored, "B", tmp_path, fresh) is not None  # still pruned
    db.close()


def redelivered_old_read(db: StateDB, archive: Path, prune: bool) -> tuple[object, ...]:
    """B's disposal read redelivered after the newest time (a reader's buffer sent again), its
    raw inputs pruned first or not: B's row and events as stored after it."""
    proc, now = history(db, archive)
    if prune:
        assert prune_raw(CustodyStore(db), now - 100 * DAY, now, archive).batches == 2
    old = [i for i in story("B", B_EPC, recv_kg=150.0) if isinstance(i, Read)][-1]
    proc.take([old], now + M)
    proc.tick(now + 2 * M)
    assert proc.store is not None and proc.store.archive_misses == 0
    return proc.store.batch("B"), proc.store.events("B"), now


def test_a_pruned_batch_loaded_back_is_archived_again(state_url: str, tmp_path: Path) -> None:
    """A redelivered old read of B loads B back from its archive and is judged as without
    pruning (one read more in its disposal pass, B still closed); B's rows are in the store
    again, and the next prune takes them into a new line, from which B verifies."""
    before = StateDB(f"sqlite:///{tmp_path}/before.db")
    expected = redelivered_old_read(before, tmp_path / "a", prune=False)
    before.close()
    db = StateDB(state_url)
    got = redelivered_old_read(db, tmp_path / "b", prune=True)
    assert got == expected
    store, now = CustodyStore(db), int(got[2])  # type: ignore[call-overload]
    assert verify(store, "B", tmp_path / "b", fresh) is None and raw_rows(db, B_EPC, 2**62) > 0
    kept = record_digest(db, "B")
    again = prune_raw(store, now - 100 * DAY, now, tmp_path / "b")
    assert again.batches == 1 and len(again.files) == 1
    assert raw_rows(db, B_EPC, 2**62) == 0
    checked = verify(store, "B", tmp_path / "b", fresh)
    assert checked is not None and checked.ok, checked
    assert record_digest(db, "B") == kept
    db.close()


def test_a_reused_tag_read_late_keeps_both_lives(state_url: str) -> None:
    """Nothing pruned: a late read of tag A, A and A2 both evicted, leaves A as it was."""
    db = StateDB(state_url)
    proc, now = history(db)
    assert "A" not in proc.tracker.batches and "A2" not in proc.tracker.batches
    kept = record_digest(db, "A")
    late = Read("late-1", A_EPC, "jy-0012", "gate-03", "storage_in", now + DAY, -60.0)
    proc.take([late], now + DAY + M)
    proc.tick(now + DAY + 2 * M)
    try:
        assert record_digest(db, "A") == kept
    finally:
        db.close()
