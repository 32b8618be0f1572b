"""Custody events/s through the tracker and its SQL store (SQLite, and PostgreSQL beside it).

Never measure without the store: the figure is tracker + batched transactions, as in service.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.processor import CustodyProcessor, geography
from hazwatch.streams.custody.rules import (
    Input,
    ManifestInfo,
    Read,
    Registration,
    Tracker,
    Weighing,
)
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore

REGISTRY = Path(__file__).parents[1] / "tests" / "data" / "registry.toml"
# the custody tolerances that go with it (its settings file's [custody] table)
SETTINGS = Path(__file__).parents[1] / "tests" / "data" / "settings.toml"
T0 = 1_700_000_000 * 1_000_000_000
MIN = 60 * 1_000_000_000
LIFE = (
    ("jy-0012", "gate-03", "storage_in", 60),
    ("jy-0012", "gate-04", "storage_out", 600),
    ("tr-01", "veh-01", "vehicle", 610),
    ("dp-01", "rg-1", "receiver_gate", 700),
    ("dp-01", "line-1", "disposal", 800),
)


def inputs(batches: int, first: int = 0, shift_ns: int = 0, kg: float = 5.0) -> list[Input]:
    """Whole honest lives, 6 custody events each (plus two weighings), one batch a minute:
    batches `first`… of `kg` each, `shift_ns` after the minute (bench/backlog.py's late
    day is a second fleet in the same minutes)."""
    items: list[Input] = []
    for i in range(first, first + batches):
        epc, batch, t = f"E200{i:020X}", f"B{i:07d}", T0 + (i - first) * MIN + shift_ns
        items.append(Weighing(f"w{i}", epc, "jy-0012", "s1", "generation", kg, t - MIN))
        items.append(Registration(f"g{i}", batch, epc, "900-249-08", "jy-0012", "t1", t))
        items.append(ManifestInfo(f"M{i}", (batch,), "dp-01", "jy-0012", t + MIN))
        for j, (site, reader, location, minutes) in enumerate(LIFE):
            items.append(Read(f"r{i}-{j}", epc, site, reader, location, t + minutes * MIN))
        items.append(Weighing(f"v{i}", epc, "dp-01", "s2", "receiver_gate", kg, t + 701 * MIN))
    # arrival order: by device time, as a live fleet delivers them
    items.sort(key=lambda x: x.ts_ns)
    return items


def run(dsn: str | None, batches: int, chunk: int) -> float:
    """Events/s through tracker + store (`dsn` None: the tracker alone, the baseline)."""
    db = StateDB(dsn) if dsn else None
    registry = load_file(REGISTRY)
    limits = CustodyLimits(**tomllib.loads(SETTINGS.read_text(encoding="utf-8"))["custody"])
    tracker = Tracker(geography(registry, limits))
    processor = CustodyProcessor(
        tracker,
        RegistryContext(None, registry),
        ListSink(),
        CustodyStore(db) if db else None,
        limits=limits,
    )
    items = inputs(batches)
    started = time.perf_counter()
    now = T0
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        # received when sent, as a live fleet's messages are: a pass at a door whose field
        # overlaps the other's is placed once both doors are past it (rules.classify), which
        # they never were while every chunk arrived at T0, before its reads' own times
        now = max(now, max(item.ts_ns for item in part))
        processor.take(part, now)
    processor.tick(now + MIN)  # the doors silent since: the last passes are placed
    elapsed = time.perf_counter() - started
    events = batches * 6
    if db is None:
        verdicts = Counter(j.verdict for j in tracker.judged.values())
    else:  # closed batches leave the tracker (CustodyLimits.closed_keep_h): as stored
        rows = db.query("SELECT verdict, COUNT(*) FROM custody_batch GROUP BY verdict")
        verdicts = Counter({str(verdict): int(n) for verdict, n in rows})
    assert verdicts == {"complete": batches}, f"every life is honest and whole: {verdicts}"
    if db is not None:
        started = time.perf_counter()
        restarted = CustodyProcessor(
            Tracker(geography(registry, limits)), RegistryContext(None, registry), ListSink(),
            CustodyStore(db), limits=limits,
        )  # fmt: skip
        REPLAY[dsn] = time.perf_counter() - started
        kept = len(restarted.tracker.judged)  # open work, and closed within closed_keep_h
        assert 0 < kept <= batches
        db.close()
    return events / elapsed


REPLAY: dict[str, float] = {}  # dsn → seconds a restarted worker takes to rebuild from the store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=5000, help="inputs per transaction")
    parser.add_argument("--postgres", default=os.environ.get("HAZWATCH_TEST_POSTGRES", ""))
    args = parser.parse_args()
    baseline = run(None, args.batches, args.chunk)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = run(f"sqlite:///{tmp}/state.db", args.batches, args.chunk)
    print(f"custody events/s, {args.batches} batches, {args.chunk} inputs per transaction")
    print(f"  tracker alone  {baseline:>10,.0f}   (baseline, no store)")
    print(f"  SQLite (WAL)   {sqlite:>10,.0f}   ({sqlite / baseline:.2f} × baseline)")
    replay_s = next(iter(REPLAY.values()))
    print(f"  restart: rebuilding {args.batches} batches from SQLite took {replay_s:.1f} s")
    if args.postgres:
        from tests.services import drop_postgres_database, postgres_database

        url = postgres_database()
        try:
            pg = run(url, args.batches, args.chunk)
        finally:
            drop_postgres_database(url)
        print(f"  PostgreSQL     {pg:>10,.0f}   ({pg / sqlite:.2f} × SQLite)")


if __name__ == "__main__":
    main()
