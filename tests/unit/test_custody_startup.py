"""Start-up does not grow with history (issue #19, item 7): the custody processor loads its
open work beside ingest, batches with nothing for custody pass before it is ready, and
/api/health says `starting` until it is."""

from __future__ import annotations

import json
from pathlib import Path

from hazwatch.alerts.model import ListSink
from hazwatch.api.deps import ApiContext
from hazwatch.api.routes.health import health
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.pointstore import PointStore
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import NS_PER_DAY, Tracker
from hazwatch.streams.custody.store import CustodyStore
from tests.unit.test_custody_processor import NOW, decoded, message
from tests.unit.test_custody_rules import LIMITS, REGISTRY, T0, story


def deferred(db: StateDB) -> CustodyProcessor:
    tracker = Tracker()
    ctx = RegistryContext(None, REGISTRY, batches=tracker.epc_batch)
    return CustodyProcessor(
        tracker, ctx, ListSink(), CustodyStore(db), limits=LIMITS, defer_load=True
    )


def test_a_batch_with_nothing_for_custody_passes_before_it_is_loaded(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    deferred(db).take(story("A", "E20000000000000000000A01"), T0 + NS_PER_DAY)
    proc = deferred(db)
    assert not proc.ready.is_set() and proc.tracker.batches == {}
    # a read by a reader the registry does not know: stored by ingest, never custody's
    unknown = decoded(proc, [message("hw/jy-0012/rfid/mystery/read", epc="E2000000")])
    assert proc.process(unknown, NOW) == [] and proc.tick(NOW) == []
    assert not proc.ready.is_set()
    # the first batch that has a custody input loads the open work first
    proc.take(story("B", "E20000000000000000000B01"), T0 + NS_PER_DAY)
    assert proc.ready.is_set() and {"A", "B"} <= proc.tracker.batches.keys()
    db.close()


def test_health_says_starting_until_custody_is_ready(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    state: dict[str, str | None] = {"custody": "starting"}
    ctx = ApiContext(
        db, PointStore(tmp_path / "points.db"), None, tmp_path,  # type: ignore[arg-type]
        health_checks={"state_store": db.ping, "custody": lambda: state["custody"]},  # type: ignore[dict-item]
    )  # fmt: skip
    answer = health(ctx)
    body = json.loads(bytes(answer.body))
    assert answer.status_code == 503 and body["status"] == "starting" and body["reasons"] == []
    assert body["components"]["custody"] == {"status": "starting"}
    state["custody"] = None
    answer = health(ctx)
    assert answer.status_code == 200 and json.loads(bytes(answer.body))["status"] == "up"
    db.close()
