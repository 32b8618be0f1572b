"""The API over its own OpenAPI schema (schemathesis, in process): no 5xx, responses as declared.

Never aim this at a running service: it builds the real app over a state store it fills itself.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from hazwatch.alerts.model import AlertSignal, ListSink, Severity
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.api.params import SEGMENT
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212, registry, topics
from hazwatch.devices.clock_offset import DeviceClocks
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.pointstore import PointStore
from hazwatch.parts import air as wiring_air
from hazwatch.parts import alerts as wiring_alerts
from hazwatch.parts import clocks as wiring_clocks
from hazwatch.parts import custody as wiring_custody
from hazwatch.parts import screen as wiring_screen
from hazwatch.parts import video as wiring_video
from hazwatch.simulators.custody import ONE_READ, Plan, plan
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore
from hazwatch.streams.clocks.store import ClockRow, ClockStore
from hazwatch.streams.custody import ledger
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.store import CustodyStore
from hazwatch.streams.video.store import EvidenceStore, snapshot_dir
from tests.samples import custody_limits

TOKEN = "fuzz-token"
REGISTRY = Path(__file__).parents[1] / "data" / "registry.toml"
NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
SNAPSHOT = "cam-2_occlusion.jpg"
# CI: a bounded run with a fixed seed; HAZWATCH_FUZZ_FULL=1 (bench/api_fuzz.py) many more.
FULL = os.environ.get("HAZWATCH_FUZZ_FULL") == "1"
EXAMPLES = int(os.environ.get("HAZWATCH_FUZZ_EXAMPLES", "1000" if FULL else "50"))
SEED = int(os.environ.get("HAZWATCH_FUZZ_SEED", "21"))
# (operation, status) → calls, and operation → seconds in the app: bench/api_fuzz.py prints them
TALLY: Counter[tuple[str, int]] = Counter()
SECONDS: Counter[str] = Counter()


def build_app(folder: Path) -> tuple[FastAPI, StateDB, Plan]:
    """The app as `serve` builds it (every part's routers), over a store with real rows."""
    db = StateDB(f"sqlite:///{folder / 'state.db'}")
    now = time.time_ns()
    registry.save(db, registry.load_file(REGISTRY), "test", now)
    tracker = Tracker()
    decode_ctx = registry.RegistryContext(db, batches=tracker.epc_batch)
    custody_store = CustodyStore(db)
    custody = CustodyProcessor(
        tracker, decode_ctx, ListSink(), custody_store, limits=custody_limits()
    )
    the_plan = plan(10, 2, seed=1, reads=ONE_READ)
    custody.process(
        [decode(m.topic, m.payload, decode_ctx, now_ns=now) for m in the_plan.messages], now
    )
    hour0 = (now // NS_H - 5) * NS_H  # two hours of minute data, closed by the third
    packets = [
        hj212.build(hj212.data_packet("MN1", "2051", hour0 + m * NS_MIN, {"pm25": 80.0}))
        for m in range(130)
    ]
    air = AirProcessor(AirStore(db))
    air.process([decode("hw/s1/air/aq-1/hj212", p, NoRegistry(), now_ns=now) for p in packets], now)
    folder_snapshots = snapshot_dir(folder)
    folder_snapshots.mkdir(parents=True)
    (folder_snapshots / SNAPSHOT).write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    alerts = AlertStore(db)
    for rule, subject, severity, evidence in (
        ("weight_mismatch", sorted(the_plan.broken())[0], Severity.MAJOR, None),
        ("air_exceedance", "s1/aq-1/pm25", Severity.WARNING, None),
        ("tamper_occlusion", "jy-0012/cam-2", Severity.CRITICAL, SNAPSHOT),
        ("camera_offline", "jy-0012/cam-3", Severity.MAJOR, None),
    ):
        alerts.raise_alert(AlertSignal(rule, subject, severity, "m", "jy-0012", now, {}, evidence))
    clocks = DeviceClocks()  # the storage-in reader's clock, 15 min slow, measured
    gate = ("jy-0012", "rfid", "gate-03")
    for i in range(100):
        clocks.observe(gate, now - (100 - i) * 10**9, now - (1000 - i) * 10**9)
    measured, state = clocks.estimate(gate), clocks.export(gate)
    assert measured is not None and state is not None
    clock_store = ClockStore(db)
    clock_store.save([ClockRow(measured, True, state)])
    ctx = ApiContext(
        db=db,
        reader=PointStore(folder / "points.db"),
        alerts=alerts,
        data_dir=folder,
        health_checks={"state_store": db.ping},  # the dependencies this app has are up
        api_token=TOKEN,
        custody=custody_store,
        air=air.store,
        air_audit=air.auditor.marks,
        evidence=EvidenceStore(folder_snapshots),
        clocks=clock_store,
    )
    # every part's routes, as serve includes them (hazwatch.app.PARTS)
    routers = [
        r
        for module in (
            wiring_alerts,
            wiring_custody,
            wiring_air,
            wiring_video,
            wiring_screen,
            wiring_clocks,
        )
        for r in module.routers()
    ]
    return create_app(ctx, routers), db, the_plan


# Built at import: schemathesis makes one test per operation from the schema at collection
# (its from_fixture loader does not run on pytest 9). The folder goes when the run ends.
_FOLDER = tempfile.TemporaryDirectory(prefix="hazwatch-api-fuzz-")
APP, _DB, PLAN = build_app(Path(_FOLDER.name))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.seed = SEED
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")


def _day(ts_ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts_ns / 1e9))


def real_requests(operation: str) -> list[dict[str, Any]]:
    """Requests that name what the store holds, so that each route answers rows, not only 4xx."""
    first, last = _day(PLAN.start_ns - 86_400 * 10**9), _day(time.time_ns() + 86_400 * 10**9)
    broken = sorted(PLAN.broken())[0]
    jpeg = b"\xff\xd8\xff\xe0" + bytes(100)
    ledger_queries = [
        {"site": "jy-0012", "from": first, "to": last, "format": fmt, "lang": lang}
        for fmt in ("json", "csv", "xlsx")
        for lang in ("zh", "en")
    ] + [{"site": "jy-0012", "from": first, "to": last, "kind": kind} for kind in ledger.KINDS]
    alert_ids = [a.alert_id for a in APP.state.ctx.alerts.list()]
    decisions = [
        {"path_parameters": {"alert_id": alert_id}, "body": {"by": "张工", "comment": "已到场"}}
        for alert_id in alert_ids
    ]
    return {
        "GET /api/alerts": [
            {"query": {"state": "open", "site": "jy-0012", "severity": "major"}},
            {"query": {"rule": "air_exceedance", "since": "946684800000", "limit": 1}},
            {"query": {"until": "2100-01-01T00:00:00Z", "offset": 2}},
        ],
        "GET /api/alerts/{alert_id}": [{"path_parameters": {"alert_id": a}} for a in alert_ids],
        "POST /api/alerts/{alert_id}/ack": decisions[:2] * 2,  # 200, then 409
        "POST /api/alerts/{alert_id}/resolve": decisions * 2,  # 200, then 409
        "GET /api/air/{station}/hourly": [
            {"path_parameters": {"station": "aq-1"}},
            {"path_parameters": {"station": "aq-1"}, "query": {"from": "946684800000"}},
        ],
        "GET /api/batches/{batch}/trace": [
            {"path_parameters": {"batch": "B00000"}},
            {"path_parameters": {"batch": broken}},
        ],
        "GET /api/batches": [
            {"query": {"site": "jy-0012"}},
            {"query": {"verdict": "broken", "stage": "DISPOSED", "limit": 1}},
        ],
        "GET /api/ledger": [{"query": q} for q in ledger_queries],
        # the screen's reads (hazwatch.parts.screen)
        "GET /api/feed": [{"query": {"limit": 5}}, {"query": {"after": "c0-d0-a0", "limit": 500}}],
        "GET /api/batches/find": [
            {"query": {"q": broken}},
            {"query": {"q": PLAN.batches[broken].epc}},
            {"query": {"q": "MF00000"}},
            {"query": {"q": "X" * 37}},  # a label id no batch has
        ],
        "GET /api/batches/{batch}/timeline": [{"path_parameters": {"batch": broken}}],
        "GET /api/air/{station}/daily": [{"path_parameters": {"station": "aq-1"}}],
        "GET /api/air/{station}/trend": [
            {"path_parameters": {"station": "aq-1"}, "query": {"every_s": 60}},
        ],
        "GET /api/cameras/{site}/{camera}/frames": [
            {"path_parameters": {"site": "jy-0012", "camera": "cam-2"}, "query": {"minutes": 1440}},
        ],
        "GET /api/devices": [{"query": {"family": "rfid", "limit": 2, "offset": 1}}],
        "GET /api/snapshots/{name}": [{"path_parameters": {"name": SNAPSHOT}}],
        "GET /api/devices/clocks": [{"query": {"site": "jy-0012", "family": "rfid"}}],
        "GET /api/devices/{site}/{family}/{device}/clock": [
            {"path_parameters": {"site": "jy-0012", "family": "rfid", "device": "gate-03"}}
        ],
        "POST /api/snapshots": [
            {
                "query": {"name": "fuzz_upload.jpg", "sha256": hashlib.sha256(jpeg).hexdigest()},
                "body": jpeg,
                "media_type": "image/jpeg",
            }
        ]
        * 2,  # 201, then 200: the same again
    }.get(operation, [])


@schema.hook
def before_add_examples(context: schemathesis.HookContext, examples: list[Any]) -> None:
    operation = context.operation
    if operation is not None:
        examples.extend(operation.Case(**request) for request in real_requests(operation.label))


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return APP


# Off, with their reasons: valid-by-schema ids of batches, stations and snapshots that do not
# exist are 404 (the truth), and a pattern cannot say "a day that exists" (2026-02-30 is 422).
EXCLUDED = [positive_data_acceptance]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_5xx_and_responses_as_declared(case: schemathesis.Case) -> None:
    excluded = EXCLUDED
    label = case.operation.label  # method probes (405) count under the operation probed
    started = time.perf_counter()
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    SECONDS[label] += time.perf_counter() - started
    TALLY[(label, response.status_code)] += 1
    case.validate_response(
        response, headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=excluded
    )


def test_every_route_of_every_part_is_in_the_schema(app: FastAPI) -> None:
    paths = set(app.openapi()["paths"])
    assert paths == {
        "/api/health",
        "/metrics",
        "/api/alerts",
        "/api/alerts/{alert_id}",
        "/api/alerts/{alert_id}/ack",
        "/api/alerts/{alert_id}/resolve",
        "/api/air/stations",
        "/api/air/{station}/hourly",
        "/api/air/{station}/daily",
        "/api/air/standards",
        "/api/air/marks",
        "/api/air/marks/add",
        "/api/air/marks/{mark_id}/unmark",
        "/api/air/maintenance",
        "/api/air/maintenance/add",
        "/api/batches",
        "/api/batches/{batch}/trace",
        "/api/ledger",
        "/api/registry",
        "/api/snapshots",
        "/api/snapshots/{name}",
        "/api/devices/clocks",
        "/api/devices/{site}/{family}/{device}/clock",
        "/api/screen/labels",
        "/api/overview",
        "/api/feed",
        "/api/devices",
        "/api/cameras/{site}/{camera}/frames",
        "/api/batches/find",
        "/api/batches/{batch}/timeline",
        "/api/air/{station}/trend",
    }
    assert negative_data_rejection  # checked too: a value out of bounds must be refused


def test_the_site_pattern_is_the_topic_segment() -> None:
    assert topics._SEGMENT.pattern == SEGMENT


# ---------------------------------------------------------------- each 500 found, fixed


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _refused(client: TestClient, url: str, params: dict[str, str], name: str) -> str:
    r = client.get(url, params=params)
    assert r.status_code == 422, r.text
    found = [e["msg"] for e in r.json()["detail"] if e["loc"][-1] == name]
    assert found, r.text
    return str(found[0])


def test_ledger_from_year_1_to_9999_is_422_not_an_overflow(client: TestClient) -> None:
    params = {"site": "jy-0012", "from": "0001-01-01", "to": "9999-12-31"}
    assert "outside 2000-01-01…2100-12-31" in _refused(client, "/api/ledger", params, "from")
    params = {"site": "jy-0012", "from": "2026-01-01", "to": "9999-12-31"}
    assert "outside" in _refused(client, "/api/ledger", params, "to")
    params = {"site": "x", "from": "0001-01-01", "to": "0001-01-01"}  # was: int too large
    assert "outside" in _refused(client, "/api/ledger", params, "from")


def test_ledger_day_that_does_not_exist_is_422(client: TestClient) -> None:
    params = {"site": "x", "from": "2026-13-45", "to": "2026-01-01"}
    assert "not a calendar day" in _refused(client, "/api/ledger", params, "from")
    params = {"site": "x", "from": "2026-02-01", "to": "2026-01-01"}
    assert "before from" in _refused(client, "/api/ledger", params, "to")


def test_ledger_of_a_whole_century_answers(client: TestClient) -> None:
    params = {"site": "jy-0012", "from": "2000-01-01", "to": "2100-12-31"}
    r = client.get("/api/ledger", params=params)
    assert r.status_code == 200 and r.json()["records"]


def test_ledger_csv_of_a_site_not_in_latin1_is_422_not_a_header_error(client: TestClient) -> None:
    # was: UnicodeEncodeError in Content-Disposition; a site id is one ASCII topic segment
    params = {"site": "中心", "from": "2026-01-01", "to": "2026-01-02", "format": "csv"}
    _refused(client, "/api/ledger", params, "site")


def test_ledger_xlsx_keeps_a_control_character_a_terminal_sent() -> None:
    built = ledger.Ledger([{k: "a\x07b" for k, _, _ in ledger.COLUMNS}], [])
    assert ledger.render(built, "xlsx").startswith(b"PK")  # was: openpyxl IllegalCharacterError


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("from", "9" * 30, "pattern"),  # was: Python int too large to convert to SQLite INTEGER
        ("to", "9" * 30, "pattern"),
        ("from", "9" * 17, "pattern"),  # epoch ms past int64 ns
        ("from", "999999999999999", "within 2000-01-01…2100-12-31"),
        ("from", "9999-12-31T23:59:59Z", "within 2000-01-01…2100-12-31"),
        ("to", "9999-12-31T23:59:59Z", "within 2000-01-01…2100-12-31"),
        ("from", "²", "pattern"),  # was: str.isdigit() true, int() ValueError
        ("from", "١٢", "pattern"),  # Arabic-Indic digits are not epoch ms
        ("to", "0", "within 2000-01-01…2100-12-31"),
        ("from", "2100-01-01T00:00:00Z", "from must be before to"),  # to defaults to now
    ],
)
def test_hourly_time_out_of_range_is_422(
    client: TestClient, name: str, value: str, reason: str
) -> None:
    assert reason in _refused(client, "/api/air/aq-1/hourly", {name: value}, name)


def test_hourly_and_trace_still_answer_rows(client: TestClient) -> None:
    hours = client.get("/api/air/aq-1/hourly").json()
    # PM2.5 80 µg/m³ in an hour after 2026-03-01, rated on HJ 633-2026's 24-h breakpoints
    # (60 → 100, 115 → 150): 100 + 50 / 55 × 20 = 118.2, rounded up to 119 (2012 gave 107)
    assert len(hours) == 2 and hours[0]["aqi"] == 119
    assert client.get("/api/batches/B00000/trace").json()["batch"] == "B00000"
    assert client.get("/api/batches", params={"stage": "disposed"}).status_code == 200
    assert client.get("/api/snapshots/" + SNAPSHOT).status_code == 200


def test_stores_clamp_bounds_past_bigint(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    assert AirStore(db).hourly("aq-1", -(10**30), 10**30) == []
    store = CustodyStore(db)
    assert store.events_between(-(10**30), 10**30) == []
    assert store.batches(limit=10**30) == []
