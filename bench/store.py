"""The state store against history (issue #19, item 5): bytes per container and per alert, and
the latency of what people read from it (trace by batch, EPC and manifest; a ledger month; the
open-alert list) at `--containers` lives, on SQLite and PostgreSQL, with the indexes of
custody v9 and alerts v4 and without them (dropped, measured, made again: a ratio of one run).

Not a test: prints sizes, p50/p99 in ms and the query plans' full scans. `--seed` lives
(bench/custody.py's, one a minute, each with its manifest) go through the tracker and store as
a live fleet's do, and one alert per ten containers through the alert store (nine in ten
resolved); the store is then grown by copies, each with its own ids, earlier by the seed's
span and two days (bench/startup.py's way, in one INSERT … SELECT per table). Usage:
    .venv/bin/python bench/store.py [--containers 100000,500000] [--seed 5000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--samples 200] [--ledger-only]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

from custody import MIN, REGISTRY, SETTINGS, T0, inputs

from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.store import INDEXES as ALERT_INDEXES
from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.ledger import ledger_for, parse_date_ns
from hazwatch.streams.custody.processor import CustodyProcessor, geography
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import INDEXES as CUSTODY_INDEXES
from hazwatch.streams.custody.store import CustodyStore, trace_document

CUSTODY = (
    "custody_batch", "custody_event", "custody_diagnostic", "custody_input", "custody_pass",
    "custody_manifest",
)  # fmt: skip
ALERTS = ("alerts", "alert_history", "alert_outbox")
IDS = {
    "batch", "epc", "event_id", "manifest", "pass_id", "first_id", "peak_id", "alert_id",
    "subject", "recurs", "idempotency_key",
}  # fmt: skip
TIMES = {
    "ts_ns", "since_ns", "first_ns", "last_ns", "peak_ns", "arrived_ns", "opened_ns",
    "updated_ns", "resolved_ns", "escalated_ns", "at_ns",
}  # fmt: skip
SITE = "jy-0012"


class Recording(StateDB):
    """A StateDB that keeps the statements it ran (with their parameters) while `log` is set."""

    log: list[tuple[str, tuple[Any, ...]]] | None = None

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        if self.log is not None:
            self.log.append((statement, tuple(params)))
        return super().query(statement, params)


def columns(db: StateDB, table: str) -> list[str]:
    cur = db.conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def grow(db: StateDB, copies: int, span_ns: int) -> None:
    """`copies` more of every stored row of custody and alerts, ids suffixed `.k`, times moved
    k spans earlier; one statement per table (k from a recursive CTE, both dialects)."""
    if copies <= 0:
        return
    for table in (*CUSTODY, *ALERTS):
        cols = [c for c in columns(db, table) if c != "id"]  # alert_outbox's own serial
        made = [
            f"{c} || '.' || CAST(k.n AS TEXT)"
            if c in IDS
            else f"{c} - k.n * {span_ns}"
            if c in TIMES
            else c
            for c in cols
        ]
        with db.transaction():
            db.execute(
                f"WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < "
                f"{copies}) INSERT INTO {table} ({', '.join(cols)}) "
                f"SELECT {', '.join(made)} FROM {table}, k"
            )


def build(db: StateDB, containers: int, seed: int) -> int:
    """A store of `containers` lives and their alerts; returns the alerts stored."""
    registry = load_file(REGISTRY)
    limits = CustodyLimits(**tomllib.loads(SETTINGS.read_text(encoding="utf-8"))["custody"])
    alerts = AlertStore(db)
    processor = CustodyProcessor(
        Tracker(geography(registry, limits)), RegistryContext(None, registry), alerts,
        CustodyStore(db), limits=limits,
    )  # fmt: skip
    items = inputs(seed)
    now = 0
    for start in range(0, len(items), 5000):
        part = items[start : start + 5000]
        now = max(now, max(item.ts_ns for item in part))
        processor.take(part, now)
    processor.tick(now + MIN)
    rules = ("dwell_exceeded", "weight_mismatch", "transit_overdue", "unknown_tag")
    for i in range(seed // 10):
        at = T0 + i * 10 * MIN
        alert = alerts.raise_alert(
            AlertSignal(rules[i % 4], f"B{i * 10:07d}", Severity.MAJOR, "bench", SITE, at)
        )
        assert alert is not None
        if i % 10:
            alerts.acknowledge(alert.alert_id, at_ns=at + MIN, by="officer")
            alerts.resolve(alert.alert_id, at_ns=at + 2 * MIN, by="officer")
    copies = max(0, containers // seed - 1)
    grow(db, copies, seed * MIN + 2 * 24 * 60 * MIN)
    for table in (*CUSTODY, *ALERTS):
        db.execute(f"ANALYZE {table}")
    return int(db.query("SELECT COUNT(*) FROM alerts")[0][0])


def sizes(db: StateDB, tables: Sequence[str]) -> int:
    """Bytes the tables and their indexes take."""
    if db.kind == "postgres":
        return sum(int(db.query("SELECT pg_total_relation_size(?)", (t,))[0][0]) for t in tables)
    total = 0
    for table in tables:
        names = [table] + [
            str(r[0])
            for r in db.query(
                "SELECT name FROM sqlite_master WHERE tbl_name = ? AND type = 'index'", (table,)
            )
        ]
        marks = ", ".join("?" * len(names))
        total += int(
            db.query(f"SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ({marks})", names)[
                0
            ][0]
        )
    return total


def scans(db: Recording, call: Callable[[], object]) -> set[str]:
    """The full scans in the plans of the statements `call` runs (SQLite's SCAN of a table
    without an index, PostgreSQL's Seq Scan on a table of more than 1,000 rows)."""
    db.log = []
    call()
    statements, db.log = db.log, None
    found: set[str] = set()
    for statement, params in dict.fromkeys(statements):
        if db.kind == "postgres":
            plan = [str(r[0]) for r in db.query("EXPLAIN " + statement, params)]
            found.update(line.strip() for line in plan if "Seq Scan" in line)
        else:
            plan = [str(r[3]) for r in db.query("EXPLAIN QUERY PLAN " + statement, params)]
            found.update(
                f"{line}  ← {statement[:90]}"
                for line in plan
                if line.startswith("SCAN ") and "USING" not in line and "CONSTANT" not in line
            )
    return found


def timed(call: Callable[[], object], samples: int) -> tuple[float, float]:
    """p50 and p99 of `call` in ms."""
    ms = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        ms.append((time.perf_counter() - started) * 1000)
    ms.sort()
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def queries(db: StateDB, containers: int, seed: int) -> dict[str, Callable[[], object]]:
    """What people read, each call one random look-up."""
    store, alerts = CustodyStore(db), AlertStore(db)
    rnd = random.Random(19)
    copies = max(0, containers // seed - 1)

    def pick() -> tuple[int, str]:
        i, k = rnd.randrange(seed), rnd.randrange(copies + 1)
        return i, "" if k == 0 else f".{k}"

    def by_batch() -> object:
        i, s = pick()
        doc = trace_document(store, f"B{i:07d}{s}", T0)
        assert doc is not None
        return doc

    def by_epc() -> object:
        i, s = pick()
        found = store.find(f"E200{i:020X}{s}")
        assert found
        return [trace_document(store, b, T0) for b, _ in found]

    def by_manifest() -> object:
        i, s = pick()
        found = store.find(f"M{i}{s}")
        assert found
        return [trace_document(store, b, T0) for b, _ in found]

    # a month in the middle of the history (the copies go back k × (seed span + 2 days))
    months_back = int(copies * (seed * MIN + 2 * 24 * 60 * MIN) / (30 * 24 * 60 * MIN)) // 2
    day = time.gmtime(T0 / 1e9 - months_back * 30 * 86400)
    first = f"{day.tm_year:04d}-{day.tm_mon:02d}-01"
    start = parse_date_ns(first)
    end = parse_date_ns(time.strftime("%Y-%m-%d", time.gmtime(start / 1e9 + 40 * 86400))[:8] + "01")

    def ledger() -> object:
        return ledger_for(store, SITE, start, end, None)

    def open_alerts() -> object:
        return alerts.list(state="open", limit=200), alerts.count(state="open")

    return {
        "trace by batch": by_batch,
        "trace by EPC": by_epc,
        "trace by manifest": by_manifest,
        "ledger month": ledger,
        "open-alert list": open_alerts,
    }


def drop_indexes(db: StateDB) -> None:
    with db.transaction():
        for name, _ in (*CUSTODY_INDEXES, *ALERT_INDEXES):
            db.execute(f"DROP INDEX IF EXISTS {name}")


def make_indexes(db: StateDB) -> None:
    with db.transaction():
        for _, create in (*CUSTODY_INDEXES, *ALERT_INDEXES):
            db.execute(create)
    for table in (*CUSTODY, *ALERTS):
        db.execute(f"ANALYZE {table}")


def measure(
    dsn: str, label: str, containers: int, seed: int, samples: int, ledger_only: bool = False
) -> None:
    db = Recording(dsn)
    started = time.perf_counter()
    n_alerts = build(db, containers, seed)
    built_s = time.perf_counter() - started
    stored = int(db.query("SELECT COUNT(*) FROM custody_batch")[0][0])
    custody_b, alerts_b = sizes(db, CUSTODY), sizes(db, ALERTS)
    print(f"\n{label}: {stored:,} containers, {n_alerts:,} alerts (built in {built_s:.0f} s)")
    mb, per = custody_b / 2**20, custody_b / stored
    print(f"  custody tables + indexes {mb:8.1f} MB  {per:7.0f} B/container")
    mb, per = alerts_b / 2**20, alerts_b / n_alerts
    print(f"  alert tables + indexes   {mb:8.1f} MB  {per:7.0f} B/alert")
    for table in (*CUSTODY, *ALERTS):
        share = sizes(db, (table,))
        print(f"    {table:<20} {share / 2**20:8.1f} MB  {share / stored:7.0f} B/container")
    calls = queries(db, containers, seed)
    if ledger_only:
        calls = {"ledger month": calls["ledger month"]}
    with_ix: dict[str, tuple[float, float]] = {}
    for name, call in calls.items():
        n = samples if "ledger" not in name else max(3, samples // 40)
        with_ix[name] = timed(call, n)
    found = {name: scans(db, call) for name, call in calls.items()}
    drop_indexes(db)
    without: dict[str, tuple[float, float]] = {}
    for name, call in calls.items():
        n = samples if "ledger" not in name else max(3, samples // 40)
        without[name] = timed(call, max(3, n // 10))
    make_indexes(db)
    print(f"  {'query':<18} {'p50 ms':>8} {'p99 ms':>8}   {'without v9 indexes p50':>22}  ratio")
    for name in calls:
        p50, p99 = with_ix[name]
        w50 = without[name][0]
        print(f"  {name:<18} {p50:8.2f} {p99:8.2f}   {w50:22.2f}  {w50 / max(p50, 1e-6):5.1f}×")
    for name, lines in found.items():
        for line in sorted(lines):
            print(f"  full scan in {name}: {line}")
    if not any(found.values()):
        print("  no full scan in any plan")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--containers", default="100000,500000")
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "HAZWATCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL to create scratch databases on ('' : SQLite only)",
    )
    parser.add_argument(
        "--ledger-only", action="store_true", help="time the ledger month only (and its plans)"
    )
    args = parser.parse_args()
    for containers in (int(c) for c in args.containers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            measure(
                f"sqlite:///{tmp}/state.db", "SQLite", containers, args.seed, args.samples,
                args.ledger_only,
            )  # fmt: skip
        if args.postgres:
            os.environ["HAZWATCH_TEST_POSTGRES"] = args.postgres
            from tests.services import drop_postgres_database, postgres_database

            url = postgres_database()
            try:
                measure(url, "PostgreSQL", containers, args.seed, args.samples, args.ledger_only)
            finally:
                drop_postgres_database(url)


if __name__ == "__main__":
    main()
