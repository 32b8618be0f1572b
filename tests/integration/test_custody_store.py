"""The custody store on SQLite and PostgreSQL: same verdicts, restart replay, no-op redelivery."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hazwatch.alerts.model import ListSink
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.api.routes import custody as custody_routes
from hazwatch.base.statedb import StateDB
from hazwatch.devices import registry
from hazwatch.devices.decode import Decoded, decode
from hazwatch.simulators.custody import ONE_READ, plan
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.store import CustodyStore
from tests.samples import custody_limits

pytestmark = pytest.mark.integration
REGISTRY_FILE = Path(__file__).parents[1] / "data" / "registry.toml"


@pytest.fixture()
def db(request: pytest.FixtureRequest, state_url: str) -> StateDB:
    state = StateDB(state_url)
    request.addfinalizer(state.close)
    return state


def processor(db: StateDB, sink: ListSink) -> CustodyProcessor:
    tracker = Tracker()
    ctx = registry.RegistryContext(db, batches=tracker.epc_batch)
    return CustodyProcessor(tracker, ctx, sink, CustodyStore(db), limits=custody_limits())


def count(db: StateDB, table: str) -> int:
    return int(db.query(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_restart_and_redelivery(db: StateDB) -> None:
    registry.save(db, registry.load_file(REGISTRY_FILE), "test", 1)
    the_plan = plan(40, 10, seed=5, reads=ONE_READ)
    sink = ListSink()
    first = processor(db, sink)
    now = time.time_ns()
    decoded: list[Decoded] = [
        decode(m.topic, m.payload, first.registry, now_ns=now) for m in the_plan.messages
    ]
    points = []
    for start in range(0, len(decoded), 64):
        points += first.process(decoded[start : start + 64], now)
    events = sum(len(t.stages) for t in the_plan.batches.values())
    assert count(db, "custody_event") == events
    custody_points = [p for p in points if p.measurement == "custody"]
    assert {p.fields["batch"] for p in custody_points} == set(the_plan.batches)
    verdicts = {b: (j.verdict, j.violations) for b, j in first.tracker.judged.items()}
    assert {b for b, (v, _) in verdicts.items() if v == "broken"} == set(the_plan.broken())

    # a second worker start replays the store: same verdicts, and redelivery changes nothing
    sink2 = ListSink()
    second = processor(db, sink2)
    assert {b: (j.verdict, j.violations) for b, j in second.tracker.judged.items()} == verdicts
    assert second.tracker.epc_batch == first.tracker.epc_batch
    assert second.process(decoded, now) == []
    assert second.tick(now) == []
    assert sink2.raised == []
    assert count(db, "custody_event") == events


def test_api_routes(db: StateDB) -> None:
    registry.save(db, registry.load_file(REGISTRY_FILE), "test", 1)
    the_plan = plan(20, 4, seed=9, reads=ONE_READ)
    proc = processor(db, ListSink())
    now = time.time_ns()
    proc.process(
        [decode(m.topic, m.payload, proc.registry, now_ns=now) for m in the_plan.messages], now
    )
    ctx = ApiContext(
        db=db,
        reader=None,  # type: ignore[arg-type]
        alerts=AlertStore(db),
        data_dir=Path("."),
        custody=proc.store,
    )
    client = TestClient(create_app(ctx, [custody_routes.router]))
    missing = client.get("/api/batches/NOPE/trace")
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]
    trace = client.get("/api/batches/B00000/trace").json()
    assert trace["verdict"] == "complete" and trace["events"][0]["stage"] == "GENERATED"
    broken = client.get("/api/batches", params={"verdict": "broken"}).json()
    assert {b["batch"] for b in broken} == set(the_plan.broken())
    assert all(len(b["rules"]) == 1 for b in broken)
    at_receiver = client.get("/api/batches", params={"site": "dp-02"}).json()
    assert {b["batch"] for b in at_receiver} == {
        b for b, t in the_plan.batches.items() if t.violation == "wrong_receiver"
    }
    day = time.strftime("%Y-%m-%d", time.gmtime(the_plan.start_ns / 1e9 - 86400))
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    ledger = client.get(
        "/api/ledger", params={"site": "jy-0012", "from": day, "to": today, "kind": "generation"}
    )
    assert ledger.status_code == 200 and len(ledger.json()["records"]) == 20
    csv_text = client.get(
        "/api/ledger",
        params={"site": "jy-0012", "from": day, "to": today, "format": "csv", "lang": "en"},
    )
    assert csv_text.text.lstrip("\ufeff").startswith("record type,")
    assert (
        client.get(
            "/api/ledger", params={"site": "x", "from": day, "to": today, "kind": "no"}
        ).status_code
        == 422
    )
    reg = client.get("/api/registry").json()
    assert reg["version"] == 1 and {s["id"] for s in reg["site"]} >= {"jy-0012", "dp-01"}
