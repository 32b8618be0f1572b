"""`/api/air/stations` and `/api/air/{station}/hourly` read what the processor committed."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.parts import air as wiring_air
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import AirStore

NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
HOUR0 = 1_795_478_400 * 10**9  # 2026-11-24T00:00Z
NOW = HOUR0 + 2 * 24 * NS_H


def test_stations_and_hourly(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    proc = AirProcessor(AirStore(db))
    batch = [
        decode(
            "hw/s1/air/aq-1/hj212",
            hj212.build(hj212.data_packet("MN1", "2051", HOUR0 + m * NS_MIN, {"pm25": 80.0})),
            NoRegistry(),
            now_ns=NOW,
        )
        for m in range(130)
    ]
    proc.process(batch, NOW)
    ctx = ApiContext(
        db=db,
        reader=None,  # type: ignore[arg-type]
        alerts=AlertStore(db),
        data_dir=tmp_path,
        lang="en",
        air=proc.store,
    )
    client = TestClient(create_app(ctx, wiring_air.routers()))
    (station,) = client.get("/api/air/stations").json()
    # PM2.5 80 by HJ 633-2026 (2026-11): (150-100)/(115-60)*(80-60)+100 = 118.2 → 119
    assert station["station"] == "aq-1" and station["aqi"] == 119
    assert station["category"] == "lightly polluted"
    assert station["hour"] == "2026-11-24T01:00:00.000Z"
    hours = client.get(
        "/api/air/aq-1/hourly",
        params={"from": "2026-11-24T08:00:00+08:00", "to": str((HOUR0 + 3 * NS_H) // 10**6)},
    ).json()
    assert [h["hour"] for h in hours] == ["2026-11-24T00:00:00.000Z", "2026-11-24T01:00:00.000Z"]
    assert hours[0]["pm25"] == 80.0 and hours[0]["iaqi_pm25"] == 119
    assert client.get("/api/air/nope/hourly").status_code == 404
    assert client.get("/api/air/aq-1/hourly", params={"from": "yesterday"}).status_code == 422
