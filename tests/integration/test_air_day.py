"""HJ 212 stations for a simulated day, at once over TCP (gateway) and MQTT, into `hazwatch serve`
and InfluxDB 1.x: the hourly means, AQI (HJ 633-2026) and exceedances (GB 3095-2026 transition
limits) there equal those computed here, exactly, from what was sent.

Never reuse streams/air/ (aqi.py, processor.py, rules.py) to compute the expectation: this is
the check on them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import parse_registry, save
from hazwatch.simulators.hj212_station import (
    EXPECTED_REASON,
    AirReport,
    AirSimConfig,
    run_stations,
    stations,
)
from tests import air_2026 as air
from tests.services import Influxd, Mosquitto, free_port, port_open, wait_for

pytestmark = pytest.mark.integration
HAZWATCH = str(Path(sys.executable).parent / "hazwatch")
NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
# Ten stations, five on the gateway's TCP and five on MQTT, all sending at once: what this test
# checks (every hour's means, AQI and exceedances exact, each fault a dead letter, a lossy
# station's invalid hours) is per station and hour, and ten interleave their connections in the
# gateway and their packets in serve's batches as fifty do, with 14,700 packets. Fifty took
# ~100 s alone and timed out (300 s) on a loaded 2-core machine; the gateway's load of fifty
# connections at once is test_air_gateway.py's test_many_stations_at_once, and
# AIR_TEST_STATIONS=50 still runs this one at that size.
N_STATIONS = int(os.environ.get("AIR_TEST_STATIONS", "10"))
POLLUTANTS = air.POLLUTANTS


def expectation(report: AirReport, first_hour_ns: int) -> dict[tuple[str, int], dict[str, object]]:
    """(station, hour) → the air_hourly fields, from the packets the stations got acked."""
    minutes: dict[tuple[str, int, str], dict[int, Fraction]] = defaultdict(dict)
    for sent in report.good():
        hour = sent.ts_ns - sent.ts_ns % NS_H
        for name in POLLUTANTS:
            # the value as it was on the wire (a decimal), exactly
            minutes[(sent.station, hour, name)][sent.ts_ns // NS_MIN] = Fraction(
                repr(sent.values[name])
            )
    stations_seen = sorted({s.station for s in report.packets})
    hours = [first_hour_ns + i * NS_H for i in range(24)]
    means: dict[tuple[str, int, str], Fraction | None] = {}
    out: dict[tuple[str, int], dict[str, object]] = {}
    for station in stations_seen:
        runs: dict[str, int] = {}
        for hour in hours:
            # December 2026: rated by HJ 633-2026, judged by GB 3095-2026's transition limits
            fields: dict[str, object] = {
                "aqi_standard": air.AQI_STANDARD,
                "limits_standard": air.LIMITS_STANDARD,
                "grade": 2,
            }
            exact: dict[str, Fraction] = {}
            for name in POLLUTANTS:
                got = minutes.get((station, hour, name), {})
                # one-minute data: each record covers its minute (GB 3095 Table 4: ≥ 45)
                fields[f"{name}_minutes"] = len(got)
                mean = sum(got.values(), Fraction(0)) / len(got) if len(got) >= 45 else None
                means[(station, hour, name)] = mean
                if mean is not None:
                    exact[name] = mean
            # moving means over the hours so far (this day only)
            for name in POLLUTANTS:
                if name == "o3":
                    continue
                last24 = [means.get((station, hour - k * NS_H, name)) for k in range(24)]
                valid = [v for v in last24 if v is not None]
                if len(valid) >= 20:
                    exact[f"{name}_24h"] = sum(valid, Fraction(0)) / len(valid)
            last8 = [means.get((station, hour - k * NS_H, "o3")) for k in range(8)]
            valid8 = [v for v in last8 if v is not None]
            if len(valid8) >= 6:
                exact["o3_8h"] = sum(valid8, Fraction(0)) / len(valid8)
            fields.update({name: float(value) for name, value in exact.items()})
            # the real-time report: the six 1-h means, each rounded first; PM on the 24-h table
            fields.update(air.rated(air.hourly_iaqi(exact)))
            over, runs = air.hourly_over(exact, runs)
            fields["over"] = over
            out[(station, hour)] = fields
    return out


@pytest.fixture()
def service(mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path) -> Iterator[dict[str, object]]:
    tag = uuid.uuid4().hex[:6]
    db = f"air_{tag}"
    site = f"air{tag}"
    influxd.create_db(db)
    specs = stations(N_STATIONS, site, seed=11)
    # one station loses a third of its packets: many of its hours must come out invalid
    specs[-1] = dataclasses.replace(specs[-1], pollution=2.5, faults={"bad_crc": 0.35})
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    state = StateDB(state_url)
    registry = parse_registry(
        {
            "site": [{"id": site, "name": "air test", "role": "producer"}],
            "station": [{"id": s.station, "site": site, "mn": s.mn, "open": True} for s in specs],
        },
        "test",
    )
    save(state, registry, "test", time.time_ns())
    state.close()
    api_port, gw_port = free_port(), free_port()
    env = {
        **os.environ,
        "HAZWATCH_MQTT_URL": mosquitto.url,
        "HAZWATCH_MQTT_CLIENT_ID": f"hazwatch-{db}",
        "HAZWATCH_INFLUX_URL": influxd.url,
        "HAZWATCH_INFLUX_API": "v1",
        "HAZWATCH_INFLUX_DB": db,
        "HAZWATCH_STATE_URL": state_url,
        "HAZWATCH_DATA_DIR": str(tmp_path / "data"),
        "HAZWATCH_API_PORT": str(api_port),
        # A station's day is sent in about a minute here, so its day of faults would trip the
        # bounds made for real time (a burst of dead letters a minute per source, a connection
        # closed past 20 bad frames a minute): lifted, since every fault is counted below;
        # those bounds have tests of their own (test_deadletters.py, test_air_gateway.py).
        "HAZWATCH_DEADLETTER_BURST_PER_MIN": "1000000",
        "HAZWATCH_GATEWAY_MAX_BAD_FRAMES": "1000000",
    }
    logs = [(tmp_path / f"{n}.log").open("wb") for n in ("serve", "gateway")]
    procs = [
        subprocess.Popen([HAZWATCH, "serve"], env=env, stdout=logs[0], stderr=subprocess.STDOUT),
        subprocess.Popen(
            [HAZWATCH, "hj212-gateway", "--listen", f"127.0.0.1:{gw_port}"],
            env={**env, "HAZWATCH_MQTT_CLIENT_ID": f"gw-{db}"},
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        ),
    ]
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_for(lambda: httpx.get(f"{api}/api/health", timeout=1).status_code == 200, 30, "serve")
        wait_for(lambda: port_open(gw_port), 20, "hj212-gateway")
        yield {
            "db": db,
            "site": site,
            "specs": specs,
            "api": api,
            "gw_port": gw_port,
            "state_url": state_url,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


def test_a_day_of_stations_gives_the_hourly_means_and_aqi(
    service: dict[str, object], mosquitto: Mosquitto, influxd: Influxd
) -> None:
    now = time.time_ns()
    # a whole day that ended at least two hours ago (every hour closes on the service's clock)
    first_hour = now - now % NS_H - 26 * NS_H
    config = AirSimConfig(
        start_ns=first_hour,
        minutes=1470,  # data past 00:05 of the next day closes the day's last hour
        faults={"bad_crc": 0.01, "truncated": 0.01, "wrong_mn": 0.005},
    )
    specs = service["specs"]
    started = time.monotonic()
    report = asyncio.run(
        run_stations(
            specs,  # type: ignore[arg-type]
            config,
            mqtt_url=mosquitto.url,
            tcp=("127.0.0.1", int(service["gw_port"])),  # type: ignore[call-overload]
        )
    )
    sent_s = time.monotonic() - started
    assert report.ok, report.summary()
    assert len(report.packets) == N_STATIONS * 1470
    assert {p.transport for p in report.packets} == {"tcp", "mqtt"}
    db, site = str(service["db"]), str(service["site"])
    expected = expectation(report, first_hour)

    def rows() -> list[dict[str, object]]:
        series = influxd.query(db, f"SELECT * FROM air_hourly WHERE site = '{site}'")
        out: list[dict[str, object]] = []
        for s in series:
            for values in s["values"]:
                out.append(dict(zip(s["columns"], values, strict=True)))
        return out

    def mismatches(got: list[dict[str, object]]) -> list[str]:
        by_key = {(str(r["station"]), int(r["time"])): r for r in got}  # type: ignore[call-overload]
        wrong = [f"missing {k}" for k in expected if k not in by_key]
        wrong += [f"unexpected {k}" for k in by_key if k not in expected]
        for key, fields in expected.items():
            row = by_key.get(key)
            if row is None:
                continue
            for name, value in fields.items():
                if isinstance(value, float):
                    # InfluxDB's JSON gives 112.0 as 112
                    got_value = row[name]
                    ok = isinstance(got_value, int | float) and abs(got_value - value) <= 1e-5
                elif isinstance(value, set):  # `over`: its items in any order
                    ok = set(str(row[name] or "").split(",")) - {""} == value
                else:
                    ok = row[name] == value
                if not ok:
                    wrong.append(f"{key} {name}: got {row[name]!r}, expected {value!r}")
            # absent here means absent there too (HJ 633-2026 rates no O3 8-h in an hour)
            for name in ("aqi", "iaqi_o3_8h", *POLLUTANTS):
                if name not in fields and row.get(name) is not None:
                    wrong.append(f"{key} {name}: got {row[name]!r}, expected none")
        return wrong

    try:
        wait_for(lambda: not mismatches(rows()), 90, "air_hourly equal to the expectation")
    except TimeoutError:
        wrong = mismatches(rows())
        pytest.fail(f"{len(wrong)} differences, first: {wrong[:5]}")
    processed_s = time.monotonic() - started
    got = rows()
    raw_points = influxd.count(db, "air", f"site = '{site}'")
    assert raw_points == len(report.good())
    invalid_hours = sum("pm25" not in fields for fields in expected.values())
    assert invalid_hours >= 5
    # nothing faulty vanished: each is a dead letter with its reason, MQTT's by the service and
    # TCP's by the gateway (the one that cannot tell a cut packet from the next one's start)
    mqtt_faults = Counter(
        EXPECTED_REASON[p.fault] for p in report.packets if p.fault and p.transport == "mqtt"
    )
    tcp_faults = sum(1 for p in report.packets if p.fault and p.transport == "tcp")
    state = StateDB(str(service["state_url"]))

    def letters() -> tuple[Counter[str], int]:
        mqtt = Counter(
            str(reason)
            for (reason,) in state.query(
                "SELECT reason FROM deadletters WHERE topic LIKE ?", (f"hw/{site}/air/%",)
            )
        )
        tcp = state.query("SELECT COUNT(*) FROM deadletters WHERE topic LIKE 'tcp://%'")[0][0]
        return mqtt, int(tcp)

    wait_for(lambda: letters() == (mqtt_faults, tcp_faults), 20, "dead letters")
    state.close()  # the lossy station
    levels = {int(r["level"]) for r in got if r.get("level") is not None}  # type: ignore[call-overload]
    assert len(levels) >= 2
    # the API serves the same from the state store
    api = str(service["api"])
    stations_json = httpx.get(f"{api}/api/air/stations", timeout=10).json()
    assert len([s for s in stations_json if s["site"] == site]) == N_STATIONS
    station = specs[0].station  # type: ignore[index]
    hourly = httpx.get(
        f"{api}/api/air/{station}/hourly",
        params={"from": str(first_hour // 10**6), "to": str((first_hour + 24 * NS_H) // 10**6)},
        timeout=10,
    ).json()
    assert [h["aqi"] for h in hourly] == [
        expected[(station, first_hour + i * NS_H)].get("aqi") for i in range(24)
    ]
    print(
        f"\n{len(report.packets)} packets sent in {sent_s:.1f} s; "
        f"all {len(got)} hours in InfluxDB after {processed_s:.1f} s"
    )
