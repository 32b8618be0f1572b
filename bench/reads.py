"""Raw RFID reads per second through the service's ingest wiring (decode, the custody processor
with its SQLite store, the other processors, line protocol), beside air readings per second
through the same wiring in the same run (issue #18, item 8).

Not a test: prints rates and ratios. The load is realistic bursts: `--tags` registered drums
(1,000) in the fields of a storage room's two doors at once, each read `--rate` times a
second (25, issue #18: 10-50 a second at a door) with 8 % of rounds missed and RSSI rising
and falling over a pass, for `--seconds` of air time (8 s, a pass's length): a read load of
tags × rate reads a second, which hazwatch must keep up with. The point store is a writer
that keeps nothing (as bench/pipeline.py), so the figure is hazwatch's own CPU.

`--live`: the reads come in as they would live, each ingest batch at hazwatch's time just
after its newest read (by default they come at once, hours after they were read, as a
replay): the doors overlap, so each pass waits until it has ended to be placed, and the
figure includes the tick that places them after the burst. Usage:
    .venv/bin/python bench/reads.py [--tags 1000] [--rate 25] [--seconds 8] [--batch 2000]
        [--live]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hazwatch.app as app_mod  # noqa: E402
from hazwatch.base.statedb import StateDB  # noqa: E402
from hazwatch.devices import registry as device_registry  # noqa: E402
from hazwatch.ingest.consumer import RawMessage  # noqa: E402
from hazwatch.ingest.interfaces import RejectedLine  # noqa: E402
from hazwatch.settings import Settings  # noqa: E402
from hazwatch.streams.custody.processor import CustodyProcessor  # noqa: E402

SITE = "bench-01"
REGISTRY = f"""
[[site]]
id = "{SITE}"
name = "bench store"
role = "producer"
[[reader]]
id = "door-in"
site = "{SITE}"
location = "storage_in"
[[reader]]
id = "door-out"
site = "{SITE}"
location = "storage_out"
overlaps = ["door-in"]
[[scale]]
id = "s1"
site = "{SITE}"
location = "generation"
""" + "".join(
    f'[[station]]\nid = "aq-{i:02d}"\nsite = "{SITE}"\nmn = "4190010000{i:04d}"\n'
    for i in range(20)
)
NS_PER_S = 1_000_000_000


class NullWriter:
    """A point store that takes everything instantly: the pipeline's own cost is left."""

    def write(self, lines: list[str]) -> list[RejectedLine]:
        return []

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def epc(i: int) -> str:
    return f"E2801160{i:016X}"


def registrations(tags: int, t0_ms: int) -> list[tuple[str, bytes]]:
    return [
        (
            f"hw/{SITE}/terminal/t1/batch",
            orjson.dumps(
                {"ts": t0_ms + i, "epc": epc(i), "batch": f"B{i:06d}", "waste_code": "900-249-08"}
            ),
        )
        for i in range(tags)
    ]


def bursts(tags: int, rate: float, seconds: float, t0_ns: int, seed: int = 18) -> list[Any]:
    """Every tag in a door's field for `seconds`, read each round (`rate`/s) but 8 % missed,
    RSSI up and down over the pass; (topic, payload) in the order the reads happened."""
    rng = random.Random(seed)
    rounds = int(rate * seconds)
    period_ns = int(NS_PER_S / rate)
    out: list[tuple[int, str, bytes]] = []
    for i in range(tags):
        door = "door-in" if i % 2 == 0 else "door-out"
        start = t0_ns + rng.randrange(period_ns)
        for k in range(rounds):
            if rng.random() < 0.08:
                continue
            ts = start + k * period_ns
            rssi = -78 + 28 * math.sin(math.pi * (k + 0.5) / rounds) + rng.gauss(0, 1)
            body = {"ts": ts // 1_000_000, "epc": epc(i), "rssi": round(rssi, 1)}
            body["antenna"] = 1 if k < rounds // 2 else 2
            out.append((ts, f"hw/{SITE}/rfid/{door}/read", orjson.dumps(body)))
    out.sort(key=lambda m: m[0])
    return [(topic, payload) for _, topic, payload in out]


def air(count: int, t0_ms: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """Air micro-station readings of 20 stations, a minute apart per station."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        body = {
            "ts": t0_ms + (n // 20) * 60_000,
            "pm25": round(rng.uniform(5, 150), 1),
            "pm10": round(rng.uniform(10, 250), 1),
            "no2": round(rng.uniform(5, 80), 1),
            "co": round(rng.uniform(0.2, 2), 2),
            "temp": round(rng.uniform(-5, 30), 1),
            "rh": round(rng.uniform(20, 90), 1),
        }
        out.append((f"hw/{SITE}/air/aq-{n % 20:02d}/reading", orjson.dumps(body)))
    return out


class Clock:
    """Seconds spent in each wrapped call, by name."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - started

        return timed


def run(
    service: Any, messages: Sequence[tuple[str, bytes]], batch: int, now: int
) -> tuple[float, float]:
    """(wall s, CPU s) for the pipeline to take `messages` in batches of `batch`."""
    raws = [RawMessage(i % 65535 + 1, t, p, 1, now, 0) for i, (t, p) in enumerate(messages)]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(raws), batch):
        service.pipeline.handle(raws[i : i + batch])
    return time.perf_counter() - wall, time.process_time() - cpu


def run_live(
    service: Any, messages: Sequence[tuple[str, bytes]], batch: int
) -> tuple[float, float]:
    """`run`, each batch received and handled 100 ms after its newest read, then the tick
    10 s after the last (the doors silent: every pass placed)."""
    at = [orjson.loads(p)["ts"] * 1_000_000 + 100_000_000 for _, p in messages]
    raws = [
        RawMessage(i % 65535 + 1, t, p, 1, at[min(i - i % batch + batch, len(at)) - 1], 0)
        for i, (t, p) in enumerate(messages)
    ]
    pipeline = service.pipeline
    real = pipeline.clock
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        for i in range(0, len(raws), batch):
            pipeline.clock = lambda now=raws[min(i + batch, len(raws)) - 1].received_ns: now
            pipeline.handle(raws[i : i + batch])
        pipeline.clock = lambda: at[-1] + 10 * NS_PER_S
        pipeline.tick()
    finally:
        pipeline.clock = real
    return time.perf_counter() - wall, time.process_time() - cpu


def table(rows: Iterable[tuple[str, float]], total: float) -> None:
    for name, seconds in sorted(rows, key=lambda r: -r[1]):
        print(f"    {name:<44} {seconds:7.2f} s  {seconds / total:6.1%}")


def service_of(data_dir: Path, clock: Clock, store_reads: bool) -> Any:
    """The service's wiring on a fresh state store with the bench's registry, each processor
    timed; `store_reads` False: the custody store logs no read (custody_read_log; the figure
    of what logging them costs: a restart replays the reads logged since the last checkpoint
    beside the stored passes, so without them it would lose up to a checkpoint's reads)."""
    settings = Settings(data_dir=data_dir)
    db = StateDB(settings.state_dsn)
    device_registry.save(db, device_registry.parse_registry(_toml(REGISTRY)), "bench", 1)
    db.close()
    app_mod.make_writer = lambda s: NullWriter()  # type: ignore[assignment,return-value]
    service = app_mod.HazwatchService(settings, with_api=False)
    for processor in service.pipeline.processors:
        processor.process = clock.wrap(f"processor {processor.name}", processor.process)  # type: ignore[method-assign]
        if isinstance(processor, CustodyProcessor) and processor.store is not None:
            store = processor.store
            write = store.write
            if not store_reads:

                def write_no_reads(
                    inputs: Any, changes: Any, *rest: Any, _write: Any = write
                ) -> Any:
                    changes.reads = []
                    return _write(inputs, changes, *rest)

                write = write_no_reads
            store.write = clock.wrap("  of which custody store.write", write)  # type: ignore[method-assign]
            sql = store.db.executemany

            def executemany(statement: str, rows: Any, _sql: Any = sql) -> Any:
                rows = list(rows)
                name = "    " + " ".join(statement.split()[:3])
                started = time.perf_counter()
                try:
                    return _sql(statement, rows)
                finally:
                    clock.spent[name] += time.perf_counter() - started
                    clock.spent[name + " rows"] += len(rows)

            store.db.executemany = executemany  # type: ignore[method-assign]
    return service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=25.0, help="reads a second per tag")
    parser.add_argument("--seconds", type=float, default=8.0, help="air time of the bursts")
    parser.add_argument("--air", type=int, default=50_000, help="air readings to compare with")
    parser.add_argument("--batch", type=int, default=2000, help="messages per ingest batch")
    parser.add_argument("--rounds", type=int, default=2, help="best of, each on fresh messages")
    parser.add_argument("--live", action="store_true", help="reads as they come live")
    args = parser.parse_args()
    take = (lambda s, m, b, _now: run_live(s, m, b)) if args.live else run
    now = time.time_ns()
    t0_ns = now - 6 * 3600 * NS_PER_S
    clock = Clock()
    service = service_of(Path(tempfile.mkdtemp(prefix="hazwatch-reads-")), clock, True)
    unstored = service_of(Path(tempfile.mkdtemp(prefix="hazwatch-reads-")), Clock(), False)
    app_mod.tune_gc()  # as HazwatchService.start() does
    for each in (service, unstored):
        run(each, registrations(args.tags, t0_ns // 1_000_000), args.batch, now)
    # the same tags carried past the doors again each round (an hour later), fresh air
    # readings: a redelivery would cost less than a message's first delivery
    best: dict[str, tuple[float, float]] = {}
    spent: dict[str, float] = {}
    for r in range(args.rounds):
        reads = bursts(args.tags, args.rate, args.seconds, t0_ns + (600 + r * 3600) * NS_PER_S)
        air_msgs = air(args.air, (t0_ns + r * 86_400 * NS_PER_S) // 1_000_000, seed=r)
        clock.spent.clear()
        measured = {"reads": take(service, reads, args.batch, now)}
        if "reads" not in best or measured["reads"][0] < best["reads"][0]:
            spent = dict(clock.spent)  # where the reads' time went
        measured["air"] = run(service, air_msgs, args.batch, now)
        measured["bare"] = take(unstored, reads, args.batch, now)
        for name, figures in measured.items():
            if name not in best or figures[0] < best[name][0]:
                best[name] = figures
    (wall, cpu), (air_wall, air_cpu) = best["reads"], best["air"]
    read_rate, air_rate = len(reads) / wall, len(air_msgs) / air_wall
    bare_rate = len(reads) / best["bare"][0]
    custody = next(p for p in service.pipeline.processors if isinstance(p, CustodyProcessor))
    events = sum(len(j.events) - 1 for j in custody.tracker.judged.values())
    notes = sum(len(j.diagnostics) for j in custody.tracker.judged.values())
    air_time = args.tags * args.rate
    print(
        f"{len(reads):,} raw reads ({args.tags} tags x {args.rate:g} reads/s x {args.seconds:g} s "
        f"of air time, 8 % of rounds missed) in batches of {args.batch}, best of {args.rounds}"
        + (
            ", live (each pass placed once ended, the tick after the burst included)"
            if args.live
            else ""
        )
    )
    read_us, air_us = cpu / len(reads) * 1e6, air_cpu / len(air_msgs) * 1e6
    print(f"  raw reads      {read_rate:>10,.0f} /s   ({read_us:.1f} µs CPU each)")
    print(f"  air readings   {air_rate:>10,.0f} /s   ({air_us:.1f} µs CPU each)")
    print(f"  reads / air    {read_rate / air_rate:10.2f}   (rate)")
    print(f"  CPU per message: a raw read {read_us / air_us:.2f} x an air reading")
    print(
        f"  the doors read {air_time:>10,.0f} /s: hazwatch takes {read_rate / air_time:.2f} x that"
    )
    print(
        f"  raw reads not logged for replay: {bare_rate:,.0f} /s "
        f"({bare_rate / read_rate:.2f} x; a restart would lose the reads since the last checkpoint)"
    )
    print(f"  custody: {events} stage events, {notes} diagnostics from {len(reads):,} reads")
    print(f"  where the {wall:.2f} s of the reads went:")
    rows = [(k, v) for k, v in spent.items() if not k.endswith(" rows")]
    table(rows, wall)
    for name, count in sorted(spent.items()):
        if name.endswith(" rows"):
            print(f"    {name.strip():<44} {count:>9,.0f}")
    service.db.close()
    unstored.db.close()


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


if __name__ == "__main__":
    main()
