"""Custody start-up against history (issue #19, item 7): how long a restarted worker takes to
be ready (its tracker rebuilt from the SQLite store) with `--containers` lives stored.

Not a test: prints seconds against the 5 s budget. `--seed` lives (bench/custody.py's, one a
minute) go through the tracker and store as a live fleet's do; the store is then grown to
`--containers` by copying them, each copy with its own ids and earlier by the seed's span
(closed history: complete, days old). A restart loads open work only (CustodyStore
.live_inputs; `--keep-all`: every batch, as before #19). Ready means the processor is built
and has stored a new registration. Usage:
    .venv/bin/python bench/startup.py [--containers 500000] [--seed 5000] [--keep-all]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from custody import MIN, REGISTRY, SETTINGS, inputs

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.processor import CustodyProcessor, geography
from hazwatch.streams.custody.rules import Registration, Tracker
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore

IDS = {"batch", "epc", "event_id", "manifest", "pass_id", "first_id", "peak_id"}
TIMES = {"ts_ns", "since_ns", "first_ns", "last_ns", "peak_ns", "arrived_ns"}
TABLES = ("custody_batch", "custody_event", "custody_input", "custody_pass", "custody_manifest")


def columns_of(db: StateDB, table: str) -> list[str]:
    """A table's columns in order, on SQLite or PostgreSQL."""
    if db.kind == "sqlite":
        return [str(r[1]) for r in db.query(f"PRAGMA table_info({table})")]
    rows = db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema() ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in rows]


# what ties each table's rows to a batch: its column, and the batch's column it names
OWNER = {
    "custody_batch": ("batch", "batch"),
    "custody_event": ("batch", "batch"),
    "custody_input": ("epc", "epc"),
    "custody_pass": ("epc", "epc"),
    "custody_manifest": ("manifest", "manifest"),
}


def grow(db: StateDB, copies: int, span_ns: int, first: int = 1, closed_only: bool = False) -> None:
    """`copies` more of every stored batch, each with ids suffixed and times moved earlier
    (copies `first`…: a store grown before grows on with the copies after its last one).
    `closed_only`: copies of the closed lives only (a live fleet's store holds open ones too,
    and copies of those would be open work years old)."""
    for table in TABLES:
        columns = columns_of(db, table)
        where = f"{columns[0]} NOT LIKE ?"  # the lives first stored, not copies
        if closed_only:
            own, of = OWNER[table]
            where += f" AND {own} IN (SELECT {of} FROM custody_batch WHERE verdict <> 'open')"
        for k in range(first, first + copies):
            shift = k * span_ns
            made = [
                f"{c} || '.{k}'" if c in IDS else f"{c} - {shift}" if c in TIMES else c
                for c in columns
            ]
            with db.transaction():
                db.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"SELECT {', '.join(made)} FROM {table} WHERE {where}",
                    ("%.%",),
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--containers", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--keep-all", action="store_true")
    args = parser.parse_args()
    registry = load_file(REGISTRY)
    limits = CustodyLimits(**tomllib.loads(SETTINGS.read_text(encoding="utf-8"))["custody"])
    if args.keep_all:
        limits = replace(limits, closed_keep_h=24.0 * 365)
    copies = max(0, args.containers // args.seed - 1)

    def processor(db: StateDB) -> CustodyProcessor:
        return CustodyProcessor(
            Tracker(geography(registry, limits)), RegistryContext(None, registry), ListSink(),
            CustodyStore(db), limits=limits,
        )  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        db = StateDB(f"sqlite:///{tmp}/state.db")
        first = processor(db)
        items = inputs(args.seed)
        now = 0
        for start in range(0, len(items), 5000):
            part = items[start : start + 5000]
            now = max(now, max(item.ts_ns for item in part))
            first.take(part, now)
        first.tick(now + MIN)
        started = time.perf_counter()
        grow(db, copies, args.seed * MIN + 2 * 24 * 60 * MIN)
        grown_s = time.perf_counter() - started
        stored = int(db.query("SELECT COUNT(*) FROM custody_batch")[0][0])
        size_mb = Path(f"{tmp}/state.db").stat().st_size / 2**20
        db.close()
        db = StateDB(f"sqlite:///{tmp}/state.db")
        started = time.perf_counter()
        restarted = processor(db)
        loaded_s = time.perf_counter() - started
        fresh = Registration("new", "B-new", "E200NEW", "900-249-08", "jy-0012", "t1", now + MIN)
        restarted.take([fresh], now + 2 * MIN)
        ready_s = time.perf_counter() - started
        assert CustodyStore(db).batch("B-new") is not None
        held = len(restarted.tracker.batches)
        db.close()
    mode = "every batch (keep all)" if args.keep_all else "open work only"
    print(f"custody start-up, SQLite store of {stored:,} containers ({size_mb:.0f} MB), {mode}")
    print(f"  (store grown from {args.seed:,} lives by copies in {grown_s:.0f} s)")
    print(f"  tracker rebuilt   {loaded_s:6.2f} s   ({held:,} batches in memory)")
    print(f"  ready (a new registration stored)  {ready_s:6.2f} s   (budget ≤ 5 s)")


if __name__ == "__main__":
    main()
