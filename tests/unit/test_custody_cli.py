"""The custody commands: registry load/show, trace of an unknown batch, ledger output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices import registry
from hazwatch.devices.decode import decode
from hazwatch.simulators.custody import ONE_READ, plan
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.store import CustodyStore
from tests.samples import custody_limits

HAZWATCH = str(Path(sys.executable).parent / "hazwatch")
SAMPLE = Path(__file__).parents[1] / "data" / "registry.toml"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HAZWATCH, *args], env=env, capture_output=True, text=True, timeout=60)


def test_registry_trace_and_ledger_commands(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    env = {**os.environ, "HAZWATCH_STATE_URL": state, "HAZWATCH_DATA_DIR": str(tmp_path)}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[reader]]\nid = "r"\nsite = "x"\nlocation = "vehicle"\n')
    refused = run(env, "registry", "load", str(bad))
    assert refused.returncode == 2 and "[[reader]] #1 (id 'r'): field 'site'" in refused.stderr
    loaded = run(env, "registry", "load", str(SAMPLE))
    assert loaded.returncode == 0, loaded.stderr
    shown = json.loads(run(env, "registry", "show", "--json").stdout)
    assert shown["version"] == 1 and len(shown["reader"]) == 10
    assert "gate-03" in run(env, "registry", "show").stdout

    db = StateDB(state)
    tracker = Tracker()
    ctx = registry.RegistryContext(db, batches=tracker.epc_batch)
    proc = CustodyProcessor(tracker, ctx, ListSink(), CustodyStore(db), limits=custody_limits())
    the_plan = plan(10, 2, seed=1, reads=ONE_READ)
    now = time.time_ns()
    proc.process([decode(m.topic, m.payload, ctx, now_ns=now) for m in the_plan.messages], now)
    db.close()

    missing = run(env, "trace", "NOPE")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "NOPE" in missing.stderr
    text = run(env, "trace", "B00000")  # Chinese by default, in China time
    assert text.returncode == 0 and "追溯结论 已完成" in text.stdout
    assert "+08:00  产生" in text.stdout and "重复读取" in text.stdout
    english = run(env, "trace", "B00000", "--lang", "en")
    assert english.returncode == 0 and "verdict complete" in english.stdout
    doc = json.loads(run(env, "trace", "B00001", "--json").stdout)
    assert set(doc) >= {"batch", "epc", "waste_code", "stage", "verdict", "violations", "events"}
    assert doc["verdict"] == "broken" and doc["violations"][0]["rule"] == "skipped_stage"

    first = time.strftime("%Y-%m-%d", time.gmtime(the_plan.start_ns / 1e9 - 86400))
    last = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    csv_out = run(
        env, "ledger", "--site", "jy-0012", "--from", first, "--to", last, "--kind", "generation"
    )
    assert csv_out.returncode == 0, csv_out.stderr
    lines = csv_out.stdout.lstrip("\ufeff").splitlines()
    assert (
        lines[0].startswith("记录类型,") and sum(line.startswith("产生,") for line in lines) == 10
    )
    xlsx = tmp_path / "ledger.xlsx"
    made = run(env, "ledger", "--site", "jy-0012", "--from", first, "--to", last,
               "--format", "xlsx", "--lang", "en", "--output", str(xlsx))  # fmt: skip
    assert made.returncode == 0 and xlsx.stat().st_size > 1000
    wrong = run(env, "ledger", "--site", "jy-0012", "--from", "yesterday", "--to", last)
    assert wrong.returncode == 2 and "--from and --to" in wrong.stderr
