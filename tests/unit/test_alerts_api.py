"""`/api/alerts`: the list (filters, paging, total), one alert with history and evidence link,
and ack/resolve with and without the token, 404 and 409."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.base.statedb import StateDB
from hazwatch.devices.camera import snapshot_name
from hazwatch.parts import alerts as wiring_alerts

TOKEN = "alert-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = 1_795_478_400 * 10**9  # 2026-11-24T00:00Z
NS_MIN = 60 * 10**9
SNAPSHOT = snapshot_name("jy-0012", "cam-2", T0, 1, "occlusion")


def signals() -> list[AlertSignal]:
    """One alert of each part, shaped as their rules raise them (streams/*/processor.py)."""
    return [
        AlertSignal(
            "weight_mismatch", "B00012", Severity.MAJOR, "过磅 212.0 kg，登记 180.0 kg",
            "jy-0012", T0, {"event_id": "ev-1"}, evidence="ev-1",
        ),
        AlertSignal(
            "air_exceedance", "jy-0013/aq-07/pm25", Severity.WARNING, "PM2.5 118 µg/m³ > 75",
            "jy-0013", T0 + NS_MIN, {"value": 118.0, "limit": 75.0, "hour_ns": T0},
        ),
        AlertSignal(
            "tamper_occlusion", "jy-0012/cam-2", Severity.CRITICAL, "镜头被遮挡",
            "jy-0012", T0 + 2 * NS_MIN, {}, evidence=SNAPSHOT,
        ),
        AlertSignal(
            "camera_offline", "jy-0012/cam-3", Severity.MAJOR, "摄像头离线",
            "jy-0012", T0 + 3 * NS_MIN, {},
        ),
    ]  # fmt: skip


@pytest.fixture()
def store(tmp_path: Path) -> AlertStore:
    store = AlertStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))
    for s in signals():
        store.raise_alert(s)
    return store


def client_of(store: AlertStore, tmp_path: Path, token: str = TOKEN) -> TestClient:
    ctx = ApiContext(
        db=store.db,
        reader=None,  # type: ignore[arg-type]
        alerts=store,
        data_dir=tmp_path,
        api_token=token,
    )
    return TestClient(create_app(ctx, wiring_alerts.routers()))


@pytest.fixture()
def client(store: AlertStore, tmp_path: Path) -> TestClient:
    return client_of(store, tmp_path)


def ids(client: TestClient, **params: object) -> list[str]:
    page = client.get("/api/alerts", params=params)
    assert page.status_code == 200, page.text
    return [a["rule"] for a in page.json()["alerts"]]


def alert_id(store: AlertStore, rule: str) -> str:
    (alert,) = store.list(rule=rule)
    return alert.alert_id


def test_list_is_newest_first_with_total_and_filters(client: TestClient) -> None:
    page = client.get("/api/alerts").json()
    assert page["total"] == 4 and page["limit"] == 100 and page["offset"] == 0
    assert [a["rule"] for a in page["alerts"]] == [
        "camera_offline",
        "tamper_occlusion",
        "air_exceedance",
        "weight_mismatch",
    ]
    first = page["alerts"][0]
    assert first["opened"] == "2026-11-24T00:03:00.000Z" and first["state"] == "open"
    assert ids(client, site="jy-0013") == ["air_exceedance"]
    assert ids(client, severity="major") == ["camera_offline", "weight_mismatch"]
    assert ids(client, rule="tamper_occlusion") == ["tamper_occlusion"]
    assert ids(client, state="resolved") == []
    since = "2026-11-24T08:01:00+08:00"  # China time, = 00:01Z
    assert ids(client, since=since) == ["camera_offline", "tamper_occlusion", "air_exceedance"]
    assert ids(client, since=since, until=str((T0 + 2 * NS_MIN) // 10**6)) == ["air_exceedance"]


def test_paging_keeps_the_total(client: TestClient) -> None:
    one = client.get("/api/alerts", params={"limit": 2, "offset": 1}).json()
    assert one["total"] == 4 and [a["rule"] for a in one["alerts"]] == [
        "tamper_occlusion",
        "air_exceedance",
    ]
    past = client.get("/api/alerts", params={"limit": 2, "offset": 10}).json()
    assert past["total"] == 4 and past["alerts"] == []
    filtered = client.get("/api/alerts", params={"severity": "major", "limit": 1}).json()
    assert filtered["total"] == 2 and len(filtered["alerts"]) == 1


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"state": "closed"}, "state"),
        ({"severity": "fatal"}, "severity"),
        ({"site": "中心"}, "site"),
        ({"rule": "DROP TABLE"}, "rule"),
        ({"since": "yesterday"}, "since"),
        ({"since": "9999-12-31T00:00:00Z"}, "since"),
        ({"since": "2026-11-25T00:00:00Z", "until": "2026-11-24T00:00:00Z"}, "until"),
    ],
)
def test_parameters_out_of_bounds_are_422(
    client: TestClient, params: dict[str, object], name: str
) -> None:
    r = client.get("/api/alerts", params=params)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == name for e in r.json()["detail"])


def test_one_alert_with_history_and_evidence_links(client: TestClient, store: AlertStore) -> None:
    video = client.get(f"/api/alerts/{alert_id(store, 'tamper_occlusion')}").json()
    assert video["evidence_link"] == {"kind": "snapshot", "url": f"/api/snapshots/{SNAPSHOT}"}
    assert [(h["seq"], h["change"], h["actor"]) for h in video["history"]] == [
        (1, "opened", "tamper_occlusion")
    ]
    assert video["history"][0]["at"] == "2026-11-24T00:02:00.000Z"
    custody = client.get(f"/api/alerts/{alert_id(store, 'weight_mismatch')}").json()
    assert custody["evidence_link"] == {"kind": "batch_trace", "url": "/api/batches/B00012/trace"}
    air = client.get(f"/api/alerts/{alert_id(store, 'air_exceedance')}").json()
    start, end = (T0 - 24 * 60 * NS_MIN) // 10**6, (T0 + 120 * NS_MIN) // 10**6
    assert air["evidence_link"] == {
        "kind": "air_hourly",
        "url": f"/api/air/aq-07/hourly?from={start}&to={end}",
    }
    offline = client.get(f"/api/alerts/{alert_id(store, 'camera_offline')}").json()
    assert offline["evidence_link"] is None  # no snapshot: nothing to point at
    missing = client.get("/api/alerts/0000000000000000")
    assert missing.status_code == 404 and "no alert" in missing.json()["detail"]


def test_devices_clocks_and_stations_own_means_link_to_what_shows_them(tmp_path: Path) -> None:
    store = AlertStore(StateDB(f"sqlite:///{tmp_path / 'links.db'}"))
    raised = [
        AlertSignal(
            "device_offline", "jy-0012/scale/sc-1", Severity.MAJOR, "offline", "jy-0012", T0, {}
        ),
        AlertSignal(
            "clock_skew", "jy-0012/rfid/st-in", Severity.WARNING, "slow", "jy-0012", T0, {}
        ),
        AlertSignal(
            "station_mean_mismatch", "aq-07/pm25", Severity.WARNING, "differs", "jy-0013", T0,
            {"hour_ns": T0},
        ),
        AlertSignal("unknown_tag", "E2801100", Severity.WARNING, "unknown", "jy-0012", T0, {}),
    ]  # fmt: skip
    for s in raised:
        store.raise_alert(s)
    client = client_of(store, tmp_path)
    links = {
        rule: client.get(f"/api/alerts/{alert_id(store, rule)}").json()["evidence_link"]
        for rule in ("device_offline", "clock_skew", "station_mean_mismatch", "unknown_tag")
    }
    start, end = (T0 - 24 * 60 * NS_MIN) // 10**6, (T0 + 120 * NS_MIN) // 10**6
    assert links == {
        "device_offline": {"kind": "device", "url": "/api/devices?site=jy-0012&family=scale"},
        "clock_skew": {"kind": "device_clock", "url": "/api/devices/jy-0012/rfid/st-in/clock"},
        "station_mean_mismatch": {
            "kind": "air_hourly",
            "url": f"/api/air/aq-07/hourly?from={start}&to={end}",
        },
        "unknown_tag": None,  # no batch holds the tag: nothing served to point at
    }


def test_ack_then_resolve_through_the_api(client: TestClient, store: AlertStore) -> None:
    aid = alert_id(store, "tamper_occlusion")
    acked = client.post(
        f"/api/alerts/{aid}/ack", json={"by": "张工", "comment": "已派人查看"}, headers=AUTH
    )
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["state"] == "acknowledged" and body["acknowledged_by"] == "张工"
    assert body["history"][-1] == {
        **body["history"][-1],
        "change": "acknowledged",
        "actor": "张工",
        "comment": "已派人查看",
    }
    again = client.post(f"/api/alerts/{aid}/ack", json={"by": "李工"}, headers=AUTH)
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    done = client.post(f"/api/alerts/{aid}/resolve", json={"by": "李工"}, headers=AUTH)
    assert done.status_code == 200 and done.json()["state"] == "resolved"
    assert done.json()["resolved_by"] == "李工"
    for how in ("ack", "resolve"):
        twice = client.post(f"/api/alerts/{aid}/{how}", json={"by": "李工"}, headers=AUTH)
        assert twice.status_code == 409 and "resolved" in twice.json()["detail"]
        unknown = client.post(f"/api/alerts/nope/{how}", json={"by": "李工"}, headers=AUTH)
        assert unknown.status_code == 404
    history = client.get(f"/api/alerts/{aid}").json()["history"]
    assert [h["change"] for h in history] == ["opened", "acknowledged", "resolved"]
    assert [i.change.value for i in store.outbox_after(0) if i.alert_id == aid] == [
        "opened",
        "acknowledged",
        "resolved",
    ]
    assert client.get("/api/alerts", params={"state": "resolved"}).json()["total"] == 1


@pytest.mark.parametrize("how", ["ack", "resolve"])
def test_writes_need_the_token(client: TestClient, store: AlertStore, how: str) -> None:
    aid = alert_id(store, "camera_offline")
    url = f"/api/alerts/{aid}/{how}"
    assert client.post(url, json={"by": "张工"}).status_code == 401
    wrong = {"Authorization": f"Bearer {TOKEN}x"}
    assert client.post(url, json={"by": "张工"}, headers=wrong).status_code == 401
    assert (
        client.post(url, json={"by": "张工"}, headers={"Authorization": TOKEN}).status_code == 401
    )
    assert store.get(aid).state.value == "open" and len(store.history(aid)) == 1
    assert client.post(url, json={"by": "张工"}, headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"by": ""}, {"by": "   "}, {"by": "auto"}, {"by": "a\nb"}, {"by": "x" * 65},
     {"by": "张工", "comment": "x" * 1001}],
)  # fmt: skip
def test_a_body_that_names_no_one_is_422(
    client: TestClient, store: AlertStore, body: dict[str, str]
) -> None:
    aid = alert_id(store, "camera_offline")
    assert client.post(f"/api/alerts/{aid}/ack", json=body, headers=AUTH).status_code == 422


def test_the_token_helper_is_the_snapshots_one(client: TestClient) -> None:
    from hazwatch.api.deps import require_token
    from hazwatch.api.routes import alerts, snapshots

    def guards(router: object) -> set[object]:
        return {
            d.dependency
            for route in router.routes  # type: ignore[attr-defined]
            if "POST" in route.methods
            for d in route.dependencies
        }

    assert guards(alerts.router) == guards(snapshots.router) == {require_token}


def test_the_token_is_compared_in_constant_time(
    client: TestClient, store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write's token goes through hmac.compare_digest (its time does not depend on
    where a wrong token first differs), never through ==."""
    import hmac

    from hazwatch.api import deps

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", compare_digest)
    aid = alert_id(store, "camera_offline")
    wrong = {"Authorization": f"Bearer {TOKEN[:-1]}"}
    assert (
        client.post(f"/api/alerts/{aid}/ack", json={"by": "张工"}, headers=wrong).status_code == 401
    )
    assert (
        client.post(f"/api/alerts/{aid}/ack", json={"by": "张工"}, headers=AUTH).status_code == 200
    )
    assert [a for a, _ in compared] == [f"Bearer {TOKEN[:-1]}".encode(), f"Bearer {TOKEN}".encode()]
