"""A natural day of 10-minute HJ 212 data (CN 2051 at a 10-min MinInterval) from two stations
through `hazwatch hj212-gateway` over TCP, into `hazwatch serve` on Mosquitto and InfluxDB 1.x:
the hourly and daily values there equal those computed here (issue #20 items 5, 10 and 11).

One station's interval is in the registry, the other's is found from its records' spacing;
an hour missing two records is invalid, one missing one is valid on 50 minutes, one whose
missing records are filled by real-time data (CN 2011) is valid on all 60; an hour an officer
marks invalid through the audit API is left out and the day is computed again, and InfluxDB's
points hold exactly what was computed last (no AQI or mean of before); a station whose
clock is ten minutes slow is sent the time (CN 1012) once. The expectation is exact arithmetic
from the standards' formulas (tests/air_2026.py), never streams/air/.
"""

from __future__ import annotations

import asyncio
import calendar
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.registry import parse_registry, save
from hazwatch.devices.station_secrets import hash_pw
from tests import air_2026 as air
from tests.services import Influxd, Mosquitto, free_port, port_open, wait_for

pytestmark = pytest.mark.integration
HAZWATCH = str(Path(sys.executable).parent / "hazwatch")
NS_S = 10**9
NS_MIN = 60 * NS_S
NS_H = 60 * NS_MIN
CHINA = timezone(timedelta(hours=8))
TOKEN = "air-interval-token"
PW = "7a3c91"  # both stations' access password (the registry keeps only its hash)
# the hour whose data an officer marks invalid (instrument fault), after the day was computed
AUDITED_H = 10


@dataclass(frozen=True)
class Plan:
    """A station's day: the 10-minute records it leaves out, the hours whose gaps it fills
    with real-time data, and how slow its clock is."""

    station: str
    mn: str
    interval_in_registry: bool
    missing: frozenset[tuple[int, int]]  # (hour, minute) of 10-minute records not sent
    rtd_fill: frozenset[int] = frozenset()  # hours whose missing minutes are sent as CN 2011
    clock_slow_s: int = 0


PLANS = (
    Plan(
        "aq-10",
        "41900100001010",
        True,
        frozenset({(3, 20), (3, 30), (5, 40), (7, 20), (7, 30)}),
        rtd_fill=frozenset({7}),
    ),
    Plan(
        "aq-11", "41900100001011", False, frozenset({(5, 40), (14, 0), (14, 10)}), clock_slow_s=600
    ),
)


def values_at(plan: Plan, local_minute: int) -> dict[str, float]:
    """A polluted winter day, smooth and never the same twice (no flatline, no spike, PM2.5
    under PM10): PM2.5 around 170 µg/m³ (a heavy-pollution day), midday O3 over its 1-h limit."""
    day = 2 * math.pi * local_minute / 1440
    jitter = (local_minute * 7 + len(plan.station)) % 11 / 10
    sun = max(0.0, math.sin(math.pi * (local_minute / 60 - 7) / 12))
    pm25 = round(170 + 25 * math.sin(day - math.pi / 2) + jitter, 1)
    return {
        "pm25": pm25,
        "pm10": round(pm25 * 1.3 + 20 + jitter, 1),
        "so2": round(12 + 4 * math.sin(day) + jitter / 2, 1),
        "no2": round(55 + 20 * math.cos(day) + jitter, 1),
        "co": round(1.2 + 0.4 * math.sin(day) + jitter / 20, 2),
        "o3": round(40 + 180 * sun + jitter, 1),
    }


@dataclass
class Sent:
    """What a station put on the wire, as (source, time, values), and what it was answered."""

    records: list[tuple[str, int, dict[str, float]]] = field(default_factory=list)
    clock_pushes: list[hj212.Packet] = field(default_factory=list)


def day_records(plan: Plan, day_ns: int) -> list[tuple[str, int, dict[str, float]]]:
    """The station's records of the day in time order, then 00:00 and 00:10 of the next day
    (its data past the day's end closes the last hour and the day)."""
    out: list[tuple[str, int, dict[str, float]]] = []
    for minute in range(0, 24 * 60 + 20, 10):
        hour, at = divmod(minute, 60)
        if minute < 24 * 60 and (hour, at) in plan.missing:
            if hour in plan.rtd_fill:  # the real-time data of those ten minutes
                for extra in range(10):
                    ts = day_ns + (minute + extra) * NS_MIN
                    out.append(("rtd", ts, values_at(plan, minute + extra)))
            continue
        out.append(("minute", day_ns + minute * NS_MIN, values_at(plan, minute % 1440)))
    return out


async def send_day(plan: Plan, port: int, day_ns: int) -> Sent:
    """One TCP connection: each packet sent and its 9014 awaited (matched by QN); a CN 1012 the
    gateway pushes sets the station's clock."""
    sent = Sent()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    slow_ns = plan.clock_slow_s * NS_S
    try:
        for index, (source, ts_ns, values) in enumerate(day_records(plan, day_ns)):
            cn = hj212.CN_MINUTE if source == "minute" else "2011"
            qn_ts = time.time_ns() - slow_ns + index * 1_000_000  # its clock; one QN a packet
            packet = hj212.data_packet(plan.mn, cn, ts_ns, values, pw=PW, qn_ts_ns=qn_ts)
            writer.write(hj212.build(packet))
            await writer.drain()
            sent.records.append((source, ts_ns, values))
            while True:
                answer = hj212.parse_frame(await asyncio.wait_for(reader.readuntil(b"\r\n"), 20))
                if answer.cn == "1012":
                    sent.clock_pushes.append(answer)
                    slow_ns = 0  # the station sets its clock from the SystemTime it was sent
                    continue
                assert answer.cn != "9011", f"{plan.station} refused: {answer.cp_dict()}"
                if answer.cn == "9014" and answer.qn == packet.qn:
                    break
    finally:
        writer.close()
        await writer.wait_closed()
    return sent


def covered_means(
    records: list[tuple[str, int, dict[str, float]]], hour_ns: int, interval_s: int
) -> tuple[dict[str, Fraction], dict[str, int]]:
    """Each record covers its interval from its time, but not past the next record of its kind
    nor the hour's end; real-time data counts only where interval data leaves the hour
    uncovered (none of its minutes overlap here). Valid at ≥ 45 minutes (GB 3095 Table 4)."""
    end_ns = hour_ns + NS_H
    minute_rows = [(ts, v) for s, ts, v in records if s == "minute" and hour_ns <= ts < end_ns]
    rtd_rows = [(ts, v) for s, ts, v in records if s == "rtd" and hour_ns <= ts < end_ns]
    weights: list[tuple[int, dict[str, float]]] = []
    for rows, step_ns in ((minute_rows, interval_s * NS_S), (rtd_rows, NS_MIN)):
        for i, (ts, values) in enumerate(rows):
            stop = min(ts + step_ns, end_ns)
            if i + 1 < len(rows):
                stop = min(stop, rows[i + 1][0])
            weights.append((stop - ts, values))
    covered_ns = sum(w for w, _ in weights)
    minutes = {p: round(covered_ns / NS_MIN) for p in air.POLLUTANTS}
    if covered_ns < 45 * NS_MIN:
        return {}, minutes
    means = {
        p: sum((Fraction(w) * Fraction(repr(v[p])) for w, v in weights), Fraction(0)) / covered_ns
        for p in air.POLLUTANTS
    }
    return means, minutes


def expectation(
    sent: dict[str, Sent], day_ns: int, audited: set[tuple[str, int]]
) -> tuple[dict[tuple[str, int], dict[str, object]], dict[str, dict[str, object]]]:
    """(station, hour) → air_hourly fields, and station → air_daily fields; an audited hour's
    data left out as if it were not there."""
    hourly: dict[tuple[str, int], dict[str, object]] = {}
    daily: dict[str, dict[str, object]] = {}
    for plan in PLANS:
        means: list[dict[str, Fraction]] = []
        runs: dict[str, int] = {}
        for h in range(24):
            hour_ns = day_ns + h * NS_H
            exact, minutes = covered_means(sent[plan.station].records, hour_ns, 600)
            fields: dict[str, object] = {
                "aqi_standard": air.AQI_STANDARD,
                "limits_standard": air.LIMITS_STANDARD,
                "grade": 2,
            }
            if (plan.station, h) in audited:  # no valid minute of any pollutant
                exact = {}
                minutes = dict.fromkeys(minutes, 0)
            fields.update({f"{p}_minutes": m for p, m in minutes.items()})
            means.append(dict(exact))
            for p in air.POLLUTANTS:  # moving means, from this day's hours (no earlier data)
                if p == "o3":
                    continue
                moving = air.mean([m.get(p) for m in means[-24:]], 20)
                if moving is not None:
                    exact[f"{p}_24h"] = moving
            o3_8h = air.mean([m.get("o3") for m in means[-8:]], 6)
            if o3_8h is not None:
                exact["o3_8h"] = o3_8h
            fields.update({k: float(v) for k, v in exact.items()})
            fields.update(air.rated(air.hourly_iaqi(exact)))
            fields["over"], runs = air.hourly_over(exact, runs)
            hourly[(plan.station, hour_ns)] = fields
        report = air.daily_report(means)
        report["complete"] = True
        report["heavy_days"] = 1 if report["heavy"] else 0  # the first day of data
        daily[plan.station] = report
    return hourly, daily


def _rows(influxd: Influxd, db: str, measurement: str, site: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for series in influxd.query(db, f"SELECT * FROM {measurement} WHERE site = '{site}'"):
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)))
    return out


def _differences(
    expected: dict[str, object], row: dict[str, Any] | None, what: str, exact: bool = False
) -> list[str]:
    """What `row` has wrong; `exact`: a field it has that `expected` has not is wrong too (an
    InfluxDB point holds exactly the hour computed last, nothing of an earlier computation)."""
    if row is None:
        return [f"{what}: missing"]
    wrong: list[str] = []
    for name, value in expected.items():
        got = row.get(name)
        if isinstance(value, bool) or not isinstance(value, float | set):
            ok = got == value
        elif isinstance(value, float):  # InfluxDB's JSON gives 112.0 as 112
            ok = isinstance(got, int | float) and abs(got - value) <= 1e-5
        else:  # `over`: its items in any order
            ok = set(str(got or "").split(",")) - {""} == value
        if not ok:
            wrong.append(f"{what} {name}: got {got!r}, expected {value!r}")
    absent = row if exact else ("aqi", "iaqi_o3_8h", *air.POLLUTANTS)
    for name in absent:  # absent here: absent there too
        if name not in (*expected, "time", "site", "station") and row.get(name) is not None:
            wrong.append(f"{what} {name}: got {row[name]!r}, expected none")
    return wrong


def china_day_before(now_ns: int) -> int:
    """00:00 China time of the natural day that ended at least an hour ago, as UTC ns."""
    local = datetime.fromtimestamp((now_ns - NS_H) / NS_S, CHINA)
    end = calendar.timegm((local.year, local.month, local.day, 0, 0, 0)) - 8 * 3600
    return (end - 86400) * NS_S


@pytest.fixture()
def service(mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:6]
    db, site = f"airiv_{tag}", f"airiv{tag}"
    influxd.create_db(db)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    pw_hash = hash_pw(PW, iterations=1000)
    stations = [
        {
            "id": p.station,
            "site": site,
            "mn": p.mn,
            "pw_hash": pw_hash,
            **({"minute_interval_min": 10} if p.interval_in_registry else {}),
        }
        for p in PLANS
    ]
    registry = parse_registry(
        {
            "site": [{"id": site, "name": "10-minute stations", "role": "producer"}],
            "station": stations,
        },
        "test",
    )
    state = StateDB(state_url)
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
        "HAZWATCH_API_TOKEN": TOKEN,
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
        yield {"db": db, "site": site, "api": api, "gw_port": gw_port}
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


def test_a_day_of_10_minute_data_through_the_gateway_gives_the_hourly_and_daily_values(
    service: dict[str, Any], influxd: Influxd
) -> None:
    db, site, api = service["db"], service["site"], service["api"]
    day_ns = china_day_before(time.time_ns())

    async def both() -> list[Sent]:
        return list(await asyncio.gather(*(send_day(p, service["gw_port"], day_ns) for p in PLANS)))

    sent = dict(zip((p.station for p in PLANS), asyncio.run(both()), strict=True))
    # the slow station was sent the time once, the other never
    assert [len(sent[p.station].clock_pushes) for p in PLANS] == [0, 1]
    system_time = sent["aq-11"].clock_pushes[0].cp_dict()["SystemTime"]
    pushed = datetime.strptime(system_time[:14], "%Y%m%d%H%M%S").replace(tzinfo=CHINA)
    assert abs(pushed.timestamp() - time.time()) < 120  # the time, not the station's slow one

    def api_hours(station: str) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{api}/api/air/{station}/hourly",
            params={"from": str(day_ns // 10**6), "to": str((day_ns + 24 * NS_H) // 10**6)},
            timeout=10,
        )
        return list(answer.json()) if answer.status_code == 200 else []

    def check(audited: set[tuple[str, int]]) -> list[str]:
        """Differences from the expectation: the hours and days in InfluxDB, exactly (a point
        computed again holds nothing of before: an audited hour has no mean, no AQI, its
        minutes 0), and the hours the service serves."""
        hourly, daily = expectation(sent, day_ns, audited)
        served = [r for p in PLANS for r in api_hours(p.station)]
        stored = _rows(influxd, db, "air_hourly", site)
        days = {r["station"]: r for r in _rows(influxd, db, "air_daily", site)}
        wrong: list[str] = []
        for rows, where, exact in ((stored, "in InfluxDB", True), (served, "served", False)):
            hours = {
                (r["station"], int(r["time"])): r
                for r in rows
                if day_ns <= int(r["time"]) < day_ns + 24 * NS_H
            }
            wrong += [
                w
                for (station, hour_ns), fields in hourly.items()
                for w in _differences(
                    fields,
                    hours.get((station, hour_ns)),
                    f"{station} {(hour_ns - day_ns) // NS_H}h {where}",
                    exact,
                )
            ]
        wrong += [
            w for s, f in daily.items() for w in _differences(f, days.get(s), f"{s} day", True)
        ]
        return wrong

    def settled(audited: set[tuple[str, int]], what: str) -> None:
        try:
            wait_for(lambda: not check(audited), 90, what)
        except TimeoutError:
            wrong = check(audited)
            pytest.fail(f"{len(wrong)} differences, first: {wrong[:6]}")

    settled(set(), "air_hourly and air_daily equal to the expectation")
    hourly, daily = expectation(sent, day_ns, set())
    # what the day's story says, in numbers: 10-minute data makes valid hours (50 minutes with
    # one record missing), an hour with two missing is invalid, real-time data fills a gap
    a_hour = {h: hourly[("aq-10", day_ns + h * NS_H)] for h in (3, 5, 7)}
    assert [a_hour[h]["pm25_minutes"] for h in (3, 5, 7)] == [40, 50, 60]
    assert "pm25" not in a_hour[3] and "aqi" in a_hour[5] and "aqi" in a_hour[7]
    assert "pm25" not in hourly[("aq-11", day_ns + 14 * NS_H)]
    for station in ("aq-10", "aq-11"):
        assert daily[station]["heavy"] is True and int(daily[station]["aqi"]) > 200  # type: ignore[call-overload]
        assert {"pm25_24h", "pm10_24h"} <= daily[station]["over"]  # type: ignore[operator]
    assert daily["aq-10"]["pm25_hours"] == 23 and daily["aq-11"]["pm25_hours"] == 23

    # an officer marks one hour of aq-10 invalid: it is left out, and the day computed again
    start = datetime.fromtimestamp((day_ns + AUDITED_H * NS_H) / NS_S, UTC)
    answer = httpx.post(
        f"{api}/api/air/marks/add",
        json={
            "site": site,
            "station": "aq-10",
            "pollutant": "*",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "reason": "fault",
            "note": "PM 采样泵故障，数据无效",
            "by": "审核员 张工",
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    settled({("aq-10", AUDITED_H)}, "the audited hour left out and the day computed again")
    _, audited_daily = expectation(sent, day_ns, {("aq-10", AUDITED_H)})
    assert audited_daily["aq-10"]["pm25_hours"] == 22
    assert audited_daily["aq-10"]["pm25"] != daily["aq-10"]["pm25"]

    # the API serves the same day, a heavy-pollution day, the first in a row
    report = httpx.get(
        f"{api}/api/air/aq-10/daily", params={"from": str(day_ns // 10**6)}, timeout=10
    ).json()
    (day,) = [d for d in report["days"] if d["time"] == day_ns]
    assert day["aqi"] == audited_daily["aq-10"]["aqi"] and day["heavy_days"] == 1
    assert day["indicative"] is True
