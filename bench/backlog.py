"""A day's backlog arriving late (issue #19, item 8): custody events/s of a late fleet against
the same traffic in order, in one run, through the tracker and its SQLite store.

Not a test: prints rates and their ratio (budget ≥ 0.5×). `--batches` containers' whole lives
(one a minute, bench/custody.py) are taken as a live fleet sends them; then as many more for
the same minutes, half a minute after each, arrive at once when all of the first were taken
(a site's gateway back after an outage, uploading what it buffered): every one of their
stays in storage lands among stays already counted at the same storage point. Usage:
    .venv/bin/python bench/backlog.py [--batches 8000] [--chunk 5000] [--no-store]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from custody import MIN, REGISTRY, SETTINGS, inputs

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.processor import CustodyProcessor, geography
from hazwatch.streams.custody.rules import Input, Tracker
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore

# 2 kg a container: both fleets in storage at once stay under the site's 3,000 kg, so every
# life is honest and whole and a late stay changes no verdict, only what has to be counted
KG = 2.0


def drain(
    processor: CustodyProcessor, items: Sequence[Input], chunk: int, now: int, live: bool
) -> tuple[float, int]:
    """Seconds to take `items` in chunks, and hazwatch's time after them. `live`: each chunk
    arrives at its newest device time; otherwise all of them at `now` (the backlog)."""
    started = time.perf_counter()
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        now = max(now, max(item.ts_ns for item in part)) if live else now + 1_000_000
        processor.take(part, now)
    now += MIN
    processor.tick(now)  # the doors silent since: the last passes are placed
    return time.perf_counter() - started, now


def verdicts_of(processor: CustodyProcessor, db: StateDB | None) -> Counter[str]:
    """Every batch's verdict: as stored (closed ones leave the tracker), or the tracker's."""
    if db is None:
        return Counter(j.verdict for j in processor.tracker.judged.values())
    rows = db.query("SELECT verdict, COUNT(*) FROM custody_batch GROUP BY verdict")
    return Counter({str(verdict): int(n) for verdict, n in rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=8000)
    parser.add_argument("--chunk", type=int, default=5000, help="inputs per transaction")
    parser.add_argument("--no-store", action="store_true", help="the tracker alone")
    args = parser.parse_args()
    registry = load_file(REGISTRY)
    limits = CustodyLimits(**tomllib.loads(SETTINGS.read_text(encoding="utf-8"))["custody"])
    in_order = inputs(args.batches, kg=KG)
    late = inputs(args.batches, first=args.batches, shift_ns=MIN // 2, kg=KG)
    with tempfile.TemporaryDirectory() as tmp:
        db = None if args.no_store else StateDB(f"sqlite:///{tmp}/state.db")
        processor = CustodyProcessor(
            Tracker(geography(registry, limits)), RegistryContext(None, registry), ListSink(),
            CustodyStore(db) if db else None, limits=limits,
        )  # fmt: skip
        first_s, now = drain(processor, in_order, args.chunk, 0, live=True)
        late_s, _ = drain(processor, late, args.chunk, now, live=False)
        verdicts = verdicts_of(processor, db)
        if db is not None:
            db.close()
    assert verdicts == {"complete": 2 * args.batches}, f"every life is whole: {verdicts}"
    events = args.batches * 6
    in_rate, late_rate = events / first_s, events / late_s
    where = "tracker alone" if args.no_store else "tracker + SQLite store"
    print(f"custody events/s, {args.batches} containers in order then as many late, {where}")
    print(f"  in order   {in_rate:>10,.0f}   ({first_s:.1f} s)")
    print(f"  late day   {late_rate:>10,.0f}   ({late_s:.1f} s)")
    print(f"  late / in order  {late_rate / in_rate:.2f}×   (budget ≥ 0.5×)")


if __name__ == "__main__":
    main()
