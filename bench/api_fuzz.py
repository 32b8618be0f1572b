"""The full schemathesis run over every API route: many examples per route, figures per route.

Never aim it at a running service: it runs tests/unit/test_api_schemathesis.py in process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest

TEST = Path(__file__).parents[1] / "tests" / "unit" / "test_api_schemathesis.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=1000, help="max examples per route")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    os.environ.update(
        HAZWATCH_FUZZ_FULL="1",
        HAZWATCH_FUZZ_EXAMPLES=str(args.examples),
        HAZWATCH_FUZZ_SEED=str(args.seed),
    )
    started = time.perf_counter()
    code = pytest.main(
        [f"{TEST}::test_no_5xx_and_responses_as_declared", "-q", "-p", "no:cacheprovider"]
    )
    elapsed = time.perf_counter() - started
    fuzz = sys.modules.get("tests.unit.test_api_schemathesis") or sys.modules.get(
        "test_api_schemathesis"
    )
    if fuzz is None:
        print("the test module did not load", file=sys.stderr)
        return 2
    routes = sorted({label for label, _ in fuzz.TALLY}, key=lambda label: label.split()[::-1])
    print(f"\n{'route':34} {'calls':>6} {'app s':>7}  statuses")
    for label in routes:
        statuses = {s: n for (lab, s), n in fuzz.TALLY.items() if lab == label}
        shown = ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items()))
        calls = sum(statuses.values())
        print(f"{label:34} {calls:>6} {fuzz.SECONDS[label]:>7.2f}  {shown}")
    server_errors = sum(n for (_, s), n in fuzz.TALLY.items() if s >= 500)
    total = sum(fuzz.TALLY.values())
    print(
        f"{len(routes)} routes, {total} calls, {server_errors} answered 5xx, "
        f"max {args.examples} examples per route, seed {args.seed}, {elapsed:.1f} s"
    )
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
