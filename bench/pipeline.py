"""CPU per message of the ingest pipeline alone: the service's real wiring (decode, processors,
line protocol, dead letters, state store), with a point writer that keeps nothing and no MQTT.

Not a test: prints msg/s and CPU µs per message, so a change on the hot path can be measured
without the broker and InfluxDB sharing the two cores. Usage:
    .venv/bin/python bench/pipeline.py [--messages 20000] [--repeat 5] [--profile tottime|cumtime]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import load  # noqa: E402  (bench/load.py)

import hazwatch.app as app_mod  # noqa: E402
from hazwatch.ingest.consumer import RawMessage  # noqa: E402
from hazwatch.ingest.interfaces import RejectedLine  # noqa: E402
from hazwatch.settings import Settings  # noqa: E402


class NullWriter:
    """A point store that takes everything instantly: the pipeline's own cost is left."""

    def write(self, lines: list[str]) -> list[RejectedLine]:
        return []

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of fresh messages")
    parser.add_argument("--profile", choices=("tottime", "cumtime"))
    parser.add_argument("--no-gc-tuning", action="store_true", help="CPython's default GC")
    parser.add_argument(
        "--no-clocks", action="store_true", help="no device clock measured (to see its cost)"
    )
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="hazwatch-pipeline-")
    settings = Settings(data_dir=Path(data_dir))
    app_mod.make_writer = lambda s: NullWriter()  # type: ignore[assignment,return-value]
    service = app_mod.HazwatchService(settings, with_api=False)
    if args.no_clocks:
        service.pipeline.clocks = None
    messages, _ = load.make_messages(args.messages * args.repeat)
    now = time.time_ns()
    # received a little after they were sent (the device clocks are measured from it)
    raws = [
        RawMessage(i % 65535 + 1, t, p, 1, now + i * 1000, 0) for i, (t, p) in enumerate(messages)
    ]
    if not args.no_gc_tuning:
        app_mod.tune_gc()  # as HazwatchService.start() does
    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    per_message: list[float] = []
    n = args.messages
    for part in range(args.repeat):  # fresh messages each round: redeliveries cost less
        chunk = raws[part * n : (part + 1) * n]
        cpu = time.process_time()
        for i in range(0, n, args.batch):
            service.pipeline.handle(chunk[i : i + args.batch])
        per_message.append((time.process_time() - cpu) / n * 1e6)
    if profile:
        profile.disable()
        pstats.Stats(profile).sort_stats(args.profile).print_stats(30)
    runs = ", ".join(f"{us:.1f}" for us in per_message)
    print(
        f"pipeline: best {min(per_message):.1f} µs CPU per message, median "
        f"{statistics.median(per_message):.1f} ({args.repeat} rounds of {n}: {runs})"
    )


if __name__ == "__main__":
    main()
