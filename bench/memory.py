"""hazwatch's memory against the containers it has seen (issue #19, item 6): whole custody
lives through the tracker and its SQLite store, memory printed after each count.

Not a test: prints RSS, the Python heap the custody state holds (tracemalloc; the inputs
themselves not counted) and KB per container. RSS is a high-water mark (memory freed is not
given back to the system: each transaction's changes and points at their peak); the held
heap is what the state keeps. Each run is a fresh process: by default closed batches stay in
memory for `closed_keep_h` (24 h of device time), then only in the store; `--keep-all`
keeps them for a year, as hazwatch kept every batch before. The lives are bench/custody.py's,
one a minute. Usage:
    .venv/bin/python bench/memory.py [--counts 2000,5000,10000] [--chunk 5000]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import tomllib
import tracemalloc
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

from custody import MIN, REGISTRY, SETTINGS, inputs

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.processor import CustodyProcessor, geography
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore


def measure(counts: list[int], chunk: int, keep_all: bool) -> None:
    """One process: RSS at start and after each count of lives, printed as it goes."""
    me = psutil.Process()
    registry = load_file(REGISTRY)
    table = tomllib.loads(SETTINGS.read_text(encoding="utf-8"))["custody"]
    if keep_all and "closed_keep_h" in {f.name for f in dataclasses.fields(CustodyLimits)}:
        table["closed_keep_h"] = 24.0 * 365
    limits = CustodyLimits(**table)
    items = inputs(max(counts))
    tracemalloc.start()
    print(f"start {me.memory_info().rss / 2**20:.1f} 0", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = StateDB(f"sqlite:///{tmp}/state.db")
        processor = CustodyProcessor(
            Tracker(geography(registry, limits)), RegistryContext(None, registry), ListSink(),
            CustodyStore(db), limits=limits,
        )  # fmt: skip
        now, taken, per = 0, 0, len(items) // max(counts)
        for count in counts:
            upto = count * per
            while taken < upto:
                part = items[taken : min(taken + chunk, upto)]
                now = max(now, max(item.ts_ns for item in part))
                processor.take(part, now)
                taken += len(part)
            processor.tick(now + MIN)  # a checkpoint: what is closed and old leaves
            held_mb = tracemalloc.get_traced_memory()[0] / 2**20
            print(f"{count} {me.memory_info().rss / 2**20:.1f} {held_mb:.1f}", flush=True)
        db.close()


def run(counts: list[int], chunk: int, keep_all: bool) -> list[tuple[str, float, float]]:
    args = [sys.executable, __file__, "--child", "--counts", ",".join(map(str, counts))]
    args += ["--chunk", str(chunk)] + (["--keep-all"] if keep_all else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line]
    return [(label, float(rss), float(held)) for label, rss, held in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", default="2000,5000,10000")
    parser.add_argument("--chunk", type=int, default=5000)
    parser.add_argument("--keep-all", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if args.child:
        measure(counts, args.chunk, args.keep_all)
        return
    kept = run(counts, args.chunk, keep_all=True)
    bounded = run(counts, args.chunk, keep_all=False)
    print("custody memory (MB) after whole container lives, tracker + SQLite store")
    print(f"  {'containers':>10}  {'RSS keep all':>12}  {'RSS 24 h':>9}  "
          f"{'held keep all':>13}  {'held 24 h':>9}")  # fmt: skip
    for (label, rss_all, held_all), (_, rss, held) in zip(kept, bounded, strict=True):
        print(f"  {label:>10}  {rss_all:>12.0f}  {rss:>9.0f}  {held_all:>13.1f}  {held:>9.1f}")
    n = counts[-1]
    for name, rows in (("keep all", kept), ("closed_keep_h 24", bounded)):
        rss_kb = (rows[-1][1] - rows[0][1]) * 1024 / n
        held_kb = rows[-1][2] * 1024 / n
        print(f"  KB per container at {n}, {name}: RSS {rss_kb:.1f}, held {held_kb:.1f}")


if __name__ == "__main__":
    main()
