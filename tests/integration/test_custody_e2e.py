"""The custody scenario through Mosquitto → `hazwatch serve` → state store and InfluxDB 1.x.

Never wait blindly: every effect is polled for with a deadline (tests.services.wait_for).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hazwatch.alerts.store import AlertStore
from hazwatch.base.statedb import StateDB
from hazwatch.simulators.custody import ONE_READ, CustodyLifecycle, Plan, plan
from hazwatch.streams.custody.rules import RULES
from hazwatch.streams.custody.store import CustodyStore
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
CUSTODY_RULES = frozenset(RULES)
HAZWATCH = str(Path(sys.executable).parent / "hazwatch")
REGISTRY = Path(__file__).parents[1] / "data" / "registry.toml"


@pytest.fixture()
def serve(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, state_url: str
) -> Iterator[dict[str, str]]:
    db = f"custody_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    hazwatch = HazwatchProcess(
        tmp_path / "hazwatch",
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"hazwatch-{db}",
        influx_url=influxd.url,
        influx_api="v1",
        influx_db=db,
        state_url=state_url,
        # the sample settings' tolerances (tests/data/settings.toml): unknown tags at once,
        # doors that report a tag once per pass (the plan's one read per stage)
        custody__unknown_tag_grace_s="0",
        custody__door_min_dwell_s="0",
    )
    loaded = hazwatch.cli("registry", "load", str(REGISTRY))
    assert loaded.returncode == 0, loaded.stderr
    assert "registry v1: 5 sites, 10 readers" in loaded.stdout
    hazwatch.start()
    try:
        yield {
            **hazwatch.env,
            "api": hazwatch.api,
            "db": db,
            "mqtt": mosquitto.url,
            "state": state_url,
        }
    finally:
        hazwatch.stop()


def verdicts(state_url: str) -> dict[str, dict[str, object]]:
    db = StateDB(state_url)
    try:
        return {row["batch"]: row for row in CustodyStore(db).batches(limit=100_000)}
    finally:
        db.close()


def test_scenario_of_200_batches_with_20_violations(
    serve: dict[str, str], influxd: Influxd
) -> None:
    the_plan: Plan = plan(200, 20, seed=11, reads=ONE_READ)
    report = asyncio.run(CustodyLifecycle(the_plan).run(serve["mqtt"]))
    assert report.ok

    def settled() -> dict[str, dict[str, object]] | None:
        rows = verdicts(serve["state"])
        done = [r for r in rows.values() if r["verdict"] != "open"]
        return rows if len(done) == len(the_plan.batches) else None

    rows = wait_for(settled, 60, "200 batches judged")
    want = the_plan.broken()
    got = {b: sorted({v["rule"] for v in r["violations"]}) for b, r in rows.items()}  # type: ignore[attr-defined]
    assert {b for b, r in rows.items() if r["verdict"] == "broken"} == set(want)
    assert {b: got[b] for b in want} == {b: [rule] for b, rule in want.items()}
    assert sum(r["verdict"] == "complete" for r in rows.values()) == 180
    assert sorted(set(want.values())) == sorted(
        {"skipped_stage", "backward_stage", "disposed_tag", "weight_mismatch", "storage_overdue",
         "transit_overdue", "wrong_receiver", "cloned_tag", "manifest_split",
         "storage_over_capacity"}
    )  # fmt: skip

    # every trace agrees with what the simulator did
    env = {k: v for k, v in serve.items() if k.startswith("HAZWATCH_") or k in os.environ}
    for batch in ["B00000", "B00001", *list(want)[:6]]:
        truth = the_plan.batches[batch]
        doc = httpx.get(f"{serve['api']}/api/batches/{batch}/trace", timeout=5).json()
        assert [(e["stage"], e["site"], e["device"]) for e in doc["events"]] == [
            (s[0], s[2], s[3]) for s in truth.stages
        ]
        assert doc["events"][0]["net_kg"] == truth.gen_kg
        assert doc["verdict"] == ("broken" if truth.violation else "complete")
        if truth.violation:
            assert [v["rule"] for v in doc["violations"]] == [truth.violation]
    cli = subprocess.run(
        [HAZWATCH, "trace", "B00001", "--json"], env=env, capture_output=True, text=True
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["batch"] == "B00001"
    missing = subprocess.run(
        [HAZWATCH, "trace", "NOPE", "--json"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().count("\n") == 0 and "NOPE" in missing.stderr
    assert httpx.get(f"{serve['api']}/api/batches/NOPE/trace", timeout=5).status_code == 404
    broken = httpx.get(f"{serve['api']}/api/batches", params={"verdict": "broken"}, timeout=5)
    assert {r["batch"] for r in broken.json()} == set(want)

    # unknown tags raised alerts; custody points are in InfluxDB, one per event
    db = StateDB(serve["state"])
    try:
        store = AlertStore(db)
        unknown = {a.subject for a in store.list(rule="unknown_tag")}
        assert unknown == set(the_plan.unknown_epcs)
        # open alerts are exactly the injected violations; a periodic check that ran while
        # old messages were replaying may have opened others, resolved once they were judged
        # (other tests' devices on the shared broker leave retained statuses: camera alerts
        # about them are not this story's, so only custody rules are compared)
        still_open = {
            (a.rule, a.subject)
            for a in store.list(state="open", limit=1000)
            if a.rule in CUSTODY_RULES
        }
        assert still_open == {(r, b) for b, r in want.items()} | {
            ("unknown_tag", epc) for epc in the_plan.unknown_epcs
        }
    finally:
        db.close()
    events = sum(len(t.stages) for t in the_plan.batches.values())
    wait_for(
        lambda: influxd.count(serve["db"], "custody") == events, 30, f"{events} custody points"
    )
    series = influxd.query(serve["db"], "SELECT * FROM custody WHERE batch = 'B00000'")
    columns = series[0]["columns"]
    stages = [dict(zip(columns, row, strict=True))["stage"] for row in series[0]["values"]]
    assert stages == [s[0] for s in the_plan.batches["B00000"].stages]


def test_simulate_command_runs_the_custody_scenario(mosquitto: Mosquitto) -> None:
    result = subprocess.run(
        [HAZWATCH, "simulate", "--scenario", "custody", "--count", "10", "--rate", "0",
         "--reads", "single", "--mqtt-url", mosquitto.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "batches" in result.stdout and "B00001:skipped_stage" in result.stdout
    assert "96 in" in result.stdout  # every planned message published, one read per stage
