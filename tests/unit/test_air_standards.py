"""The air standards in force (#20): HJ 633-2026 and GB 3095-2026 beside their 2012 editions,
each datum rated by the edition of its own time, valid hours for every interval, daily reports
and graded exceedances. Every expected number is worked out here from the standard's formula
(HJ 633 formula 1: IAQI = (IAQI_hi − IAQI_lo)/(BP_hi − BP_lo)·(C − BP_lo) + IAQI_lo, rounded
up), never taken from the code.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hazwatch.alerts.model import ListSink, Severity
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.streams.air import aqi, daily, standards
from hazwatch.streams.air.processor import AirProcessor, StationAir, hour_means
from hazwatch.streams.air.rules import exceedance_severity
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.air.standards import (
    HJ633_2012,
    HJ633_2026,
    aqi_edition_at,
    limits_at,
    round_concentration,
)
from hazwatch.streams.air.store import AirStore

NS_S = 10**9
NS_MIN = 60 * NS_S
NS_H = 60 * NS_MIN
SWITCH_2026 = 1_772_294_400 * NS_S  # 2026-03-01T00:00+08:00 = 2026-02-28T16:00Z
SWITCH_2031 = 1_924_963_200 * NS_S  # 2031-01-01T00:00+08:00 = 2030-12-31T16:00Z
DAY0 = 1_795_449_600 * NS_S  # 2026-11-24T00:00+08:00 (2026-11-23T16:00Z), a natural day in China


def formula(c: float, bp_lo: float, bp_hi: float, i_lo: int, i_hi: int) -> int:
    return math.ceil(round((i_hi - i_lo) / (bp_hi - bp_lo) * (c - bp_lo) + i_lo, 6))


# The editions and when they rate


def test_the_switch_instants_are_midnight_china_time() -> None:
    assert aqi_edition_at(SWITCH_2026 - 1) is HJ633_2012
    assert aqi_edition_at(SWITCH_2026) is HJ633_2026
    assert limits_at(SWITCH_2026 - 1).name == "GB 3095-2012"
    assert limits_at(SWITCH_2026).label_zh == "GB 3095-2026 过渡阶段浓度限值"
    assert limits_at(SWITCH_2031 - 1).label_zh == "GB 3095-2026 过渡阶段浓度限值"
    assert limits_at(SWITCH_2031).label_zh == "GB 3095-2026 浓度限值"


def test_hj633_2026_table_3_pm_breakpoints() -> None:
    # PM2.5 60 is the top of 良 in 2026 (…/35/60/115/…); in 2012 it was inside 良 (35..75)
    assert aqi.iaqi("pm25_24h", 60, HJ633_2026) == 100
    assert aqi.iaqi("pm25_24h", 60, HJ633_2012) == formula(60, 35, 75, 50, 100) == 82
    # PM10 120 tops 良 in 2026 (…/50/120/250/…); 2012: 50 + 50/100·70 = 85
    assert aqi.iaqi("pm10_24h", 120, HJ633_2026) == 100
    assert aqi.iaqi("pm10_24h", 120, HJ633_2012) == 85
    assert aqi.iaqi("pm25_24h", 80, HJ633_2026) == formula(80, 60, 115, 100, 150) == 119
    assert HJ633_2026.breakpoints["pm25_24h"] == (0, 35, 60, 115, 150, 250, 350, 500)
    assert HJ633_2026.breakpoints["pm10_24h"] == (0, 50, 120, 250, 350, 420, 500, 600)
    others = {k: v for k, v in HJ633_2012.breakpoints.items() if not k.startswith("pm")}
    assert {k: HJ633_2026.breakpoints[k] for k in others} == others  # the rest unchanged


def test_so2_1h_and_o3_8h_past_their_tables() -> None:
    # 2026: SO2 1-h above 800 rates 200; 2012 left it to the 24-h mean
    assert aqi.hourly_aqi({"so2": 801}, edition=HJ633_2026).iaqi == {"so2": 200}
    assert aqi.hourly_aqi({"so2": 801}, edition=HJ633_2012).iaqi == {}
    by_24h = aqi.hourly_aqi({"so2": 801}, so2_24h=100, edition=HJ633_2012)
    assert by_24h.iaqi == {"so2": formula(100, 50, 150, 50, 100)}  # 75
    # 2026 daily: O3 daily max 8-h above 800 rates 300; 2012 rated O3 by its 1-h maximum
    assert aqi.daily_aqi({}, o3_8h_max=801, edition=HJ633_2026).iaqi == {"o3_8h": 300}
    old = aqi.daily_aqi({}, o3_8h_max=801, o3_1h_max=500, edition=HJ633_2012)
    assert old.iaqi == {"o3": formula(500, 400, 800, 200, 300)}  # 225


def test_concentrations_are_rounded_before_rating_in_2026() -> None:
    # item 6: PM2.5 60.4 → 60 → IAQI 100 (良); unrounded it would be 100 + 50/55·0.4 → 101
    result = aqi.hourly_aqi({"pm25": 60.4}, edition=HJ633_2026)
    assert result.aqi == 100 and result.level is not None and result.level.category_zh == "良"
    assert formula(60.4, 60, 115, 100, 150) == 101
    # 2012 did not round: 50 + 50/40·25.4 = 81.75 → 82 (and 60 → 81.25 → 82 alike)
    assert aqi.hourly_aqi({"pm25": 60.4}, edition=HJ633_2012).aqi == 82
    # GB/T 8170: a 5 with nothing after it goes to the even digit; CO to one decimal
    assert [round_concentration("pm25", v) for v in (60.5, 61.5, 60.51, 35.49)] == [60, 62, 61, 35]
    assert [round_concentration("co", v) for v in (2.05, 2.15, 2.04)] == [2.0, 2.2, 2.0]
    assert aqi.daily_aqi({"co": 4.04}, edition=HJ633_2026).iaqi == {"co": 100}  # 4.0 tops 良


def test_iaqi_and_aqi_are_rounded_up() -> None:
    # PM10 51: 50 + 50/70·1 = 50.71 → 51; NO2 1-h 101: 50 + 50/100·1 = 50.5 → 51
    assert aqi.iaqi("pm10_24h", 51, HJ633_2026) == 51
    result = aqi.hourly_aqi({"no2": 101, "pm10": 51}, edition=HJ633_2026)
    assert result.iaqi == {"no2": 51, "pm10": 51} and result.aqi == 51


def test_primary_pollutants_tie_and_no_exceeding_item_in_2026() -> None:
    tie = aqi.hourly_aqi({"pm10": 120, "pm25": 60, "no2": 20}, edition=HJ633_2026)
    assert tie.aqi == 100 and tie.primary == ("pm10", "pm25")
    clean = aqi.hourly_aqi({"pm25": 35}, edition=HJ633_2026)
    assert clean.aqi == 50 and clean.primary == ()  # AQI ≤ 50: no primary pollutant
    over = aqi.hourly_aqi({"pm25": 80}, edition=HJ633_2026)
    assert over.aqi == 119 and over.exceeding == ()  # 2026 dropped 超标污染物
    assert aqi.hourly_aqi({"pm25": 80}, edition=HJ633_2012).exceeding == ("pm25",)


def test_real_time_report_is_six_1h_items_in_2026() -> None:
    # O3's 8-h moving mean is not an item of the 2026 real-time report; it was in 2012
    now = aqi.hourly_aqi({"o3": 150}, o3_8h=180, edition=HJ633_2026)
    assert now.iaqi == {"o3": formula(150, 0, 160, 0, 50)}  # 47
    then = aqi.hourly_aqi({"o3": 150}, o3_8h=180, edition=HJ633_2012)
    assert then.iaqi["o3_8h"] == formula(180, 160, 215, 100, 150)  # 119


def test_levels_names_and_colours() -> None:
    names = [(lv.number, lv.category_zh, lv.rgb) for lv in aqi.LEVELS]
    assert names == [
        (1, "优", "#00e400"),
        (2, "良", "#ffff00"),
        (3, "轻度污染", "#ff7e00"),
        (4, "中度污染", "#ff0000"),
        (5, "重度污染", "#99004c"),
        (6, "严重污染", "#7e0023"),
    ]
    assert aqi.level_of(201).category_zh == "重度污染"


def test_gb3095_2026_limits_by_phase_and_grade() -> None:
    transition, final = limits_at(SWITCH_2026), limits_at(SWITCH_2031)
    ii = transition.limits[2]
    assert (ii["so2_24h"], ii["so2_1h"], ii["no2_24h"], ii["no2_1h"]) == (150, 500, 80, 200)
    assert (ii["co_24h"], ii["co_1h"], ii["o3_8h"], ii["o3_1h"]) == (4, 10, 160, 200)
    assert (ii["pm10_24h"], ii["pm25_24h"]) == (120, 60)
    assert transition.limits[1]["pm25_24h"] == 35
    assert (final.limits[2]["pm25_24h"], final.limits[1]["pm25_24h"]) == (50, 25)
    assert final.limits[2]["pm10_24h"] == 100
    assert standards.grade_of("一类区") == 1 and standards.grade_of("二类区") == 2
    with pytest.raises(ValueError, match="functional zone"):
        standards.grade_of("三类区")


# Valid hours for every interval (item 5)


def _rows(source: str, start_ns: int, step_min: int, values: list[float], p: str = "pm25"):
    return [(source, start_ns + i * step_min * NS_MIN, p, v) for i, v in enumerate(values)]


def test_ten_minute_data_makes_a_valid_hour() -> None:
    h = DAY0
    means, minutes = hour_means(_rows("minute", h, 10, [10, 20, 30, 40, 50, 60]), 45, h)
    assert minutes == {"pm25": 60} and means == {"pm25": 35.0}
    # one record missing (no 00:20): the rest cover 50 minutes, each weighted by its 10
    rows = [r for r in _rows("minute", h, 10, [10, 20, 30, 40, 50, 60]) if r[1] != h + 20 * NS_MIN]
    means, minutes = hour_means(rows, 45, h)
    assert minutes == {"pm25": 50} and means["pm25"] == pytest.approx((10 + 20 + 40 + 50 + 60) / 5)
    # four of six: 40 minutes, not a valid hour
    means, minutes = hour_means(_rows("minute", h, 10, [1, 2, 3, 4]), 45, h)
    assert minutes == {"pm25": 40} and means == {}
    # five-minute data, twelve records
    means, minutes = hour_means(_rows("minute", h, 5, [float(i) for i in range(12)]), 45, h)
    assert minutes == {"pm25": 60} and means["pm25"] == pytest.approx(5.5)


def test_real_time_data_fills_what_interval_data_does_not_cover() -> None:
    h = DAY0
    interval = _rows("minute", h, 10, [10, 20, 30])  # 00:00–00:30
    rtd = _rows("rtd", h, 1, [99.0] * 30) + _rows("rtd", h + 30 * NS_MIN, 1, [40.0] * 30)
    means, minutes = hour_means(interval + rtd, 45, h)
    # the interval records hold 00:00–00:30 (rtd there is not counted), rtd the rest:
    # (10·10 + 10·20 + 10·30 + 30·40) / 60 = 30
    assert minutes == {"pm25": 60} and means["pm25"] == pytest.approx(30.0)
    # the registry's interval wins over the spacing: 15-minute records at :00 and :30
    two = _rows("minute", h, 30, [10, 20])
    assert hour_means(two, 45, h, {"minute": 900})[1] == {"pm25": 30}


# The processor: each hour and day by the standards of its own time


def _packet(ts_ns: int, values: dict[str, float], cn: str = "2051") -> Decoded:
    raw = hj212.build(hj212.data_packet("MN1", cn, ts_ns, values))
    return decode("hw/s1/air/aq-1/hj212", raw, NoRegistry(), now_ns=ts_ns)


def _processor(tmp_path: Path, zone: str = "二类区") -> tuple[AirProcessor, ListSink]:
    sink = ListSink()
    store = AirStore(StateDB(f"sqlite:///{tmp_path / 's.db'}"))
    info = StationAir(functional_zone=zone)
    return AirProcessor(store, sink, stations=lambda site, station: info), sink


def _ten_minute_hours(
    start_ns: int, hours: int, values: dict[str, float], vary: float = 0.1
) -> list[Decoded]:
    """Ten-minute records, values varying a little (a constant would be the audit's flatline)."""
    return [
        _packet(
            start_ns + h * NS_H + k * 10 * NS_MIN,
            {p: v + vary * ((h * 6 + k) % 3) for p, v in values.items()},
        )
        for h in range(hours)
        for k in range(6)
    ]


def test_the_hours_either_side_of_2026_03_01_are_rated_by_their_own_edition(
    tmp_path: Path,
) -> None:
    proc, _ = _processor(tmp_path)
    first = SWITCH_2026 - NS_H  # 23:00–24:00 China time on 2026-02-28
    batch = _ten_minute_hours(first, 2, {"pm25": 70.0}, vary=0)
    points = proc.process(batch, first + 3 * NS_H) + proc.tick(first + 4 * NS_H)
    hours = {p.ts_ns: p.fields for p in points if p.measurement == "air_hourly"}
    # PM2.5 70: 2012 → 50 + 50/40·35 = 93.75 → 94 (良); 2026 → 100 + 50/55·10 = 109.1 → 110
    assert hours[first]["aqi"] == 94 and hours[first]["aqi_standard"] == "HJ 633-2012"
    assert hours[SWITCH_2026]["aqi"] == 110 and hours[SWITCH_2026]["aqi_standard"] == "HJ 633-2026"
    assert hours[SWITCH_2026]["limits_standard"] == "GB 3095-2026 过渡阶段浓度限值"
    assert hours[first]["limits_standard"] == "GB 3095-2012 浓度限值"


def _day_of_hours(day_ns: int, values: dict[str, float], hours: int = 24) -> list[Decoded]:
    return _ten_minute_hours(day_ns, hours, values)


def test_daily_report_and_heavy_pollution_days(tmp_path: Path) -> None:
    proc, _ = _processor(tmp_path)
    # three natural days of PM2.5 ≈ 160 (three values 160, 160.1, 160.2 in turn), then data of
    # the fourth day's first hour so the third day is over
    batch = []
    for d in range(3):
        batch += _day_of_hours(DAY0 + d * daily.NS_PER_DAY, {"pm25": 160.0, "no2": 30.0})
    batch += _day_of_hours(DAY0 + 3 * daily.NS_PER_DAY, {"pm25": 20.0}, hours=2)
    points = proc.process(batch, DAY0 + 4 * daily.NS_PER_DAY) + proc.tick(
        DAY0 + 4 * daily.NS_PER_DAY
    )
    days = {p.ts_ns: p.fields for p in points if p.measurement == "air_daily"}
    assert sorted(days) == [DAY0 + d * daily.NS_PER_DAY for d in range(3)]
    first = days[DAY0]
    # the day's mean: 144 records 160, 160.1, 160.2 in turn → 160.1 → rounded 160;
    # IAQI 200 + 100/100·10 = 210 (重度污染) → a heavy day
    assert first["pm25"] == pytest.approx(160.1) and first["pm25_hours"] == 24
    assert first["iaqi_pm25"] == formula(160, 150, 250, 200, 300) == 210
    assert first["aqi"] == 210 and first["level"] == 5 and first["primary"] == "pm25"
    assert first["aqi_standard"] == "HJ 633-2026" and first["over"] == "pm25_24h"
    assert [days[DAY0 + d * daily.NS_PER_DAY]["heavy_days"] for d in range(3)] == [1, 2, 3]
    assert all(days[t]["heavy"] and days[t]["complete"] for t in days)
    # the fourth day is not over: kept (so far), not written as air_daily
    (so_far,) = proc.store.daily("aq-1", DAY0 + 3 * daily.NS_PER_DAY, DAY0 + 5 * daily.NS_PER_DAY)
    assert so_far["complete"] is False and "pm25" not in so_far  # 2 hours < 20


def test_daily_means_need_20_hours_and_o3_its_daily_max_8h() -> None:
    o3 = [float(50 + 10 * i) if i < 20 else None for i in range(24)]
    hourly: dict[str, list[float | None]] = {"o3": o3, "so2": [10.0] * 19 + [None] * 5}
    report = daily.day_report(
        "s1",
        "aq-1",
        DAY0,
        hourly,
        edition=HJ633_2026,
        limits=limits_at(DAY0),
        grade=2,
    )
    assert "so2" not in report.means  # 19 hours < 20
    # 8-h means ending 08:00..24:00, each valid with ≥ 6 hours: the window from 14:00 holds
    # 14..19 (6 values, 190..240, mean 215), the largest; those from 15:00 on hold fewer than
    # 6; 15 valid windows (≥ 14)
    window = [50 + 10 * i for i in range(14, 20)]
    assert report.means["o3_8h"] == pytest.approx(sum(window) / 6) == pytest.approx(215)
    assert report.result.iaqi["o3_8h"] == formula(215, 160, 215, 100, 150) == 150
    assert "o3" not in report.result.iaqi  # 2026's daily report has no O3 1-h item


def test_grade_i_zone_is_judged_by_grade_i_limits(tmp_path: Path) -> None:
    proc, sink = _processor(tmp_path, zone="一类区")
    start = DAY0
    batch = _ten_minute_hours(start, 2, {"so2": 200.0}, vary=0)
    proc.process(batch, start + 3 * NS_H)
    proc.tick(start + 4 * NS_H)
    over = [s for s in sink.raised if s.rule == "air_exceedance"]
    # SO2 1-h 200 is over grade I's 150 (1.33×: warning), not grade II's 500
    assert {s.subject for s in over} == {"s1/aq-1/so2_1h"}
    assert over[0].details["limit"] == 150 and over[0].severity is Severity.WARNING


def test_exceedance_is_graded_by_how_far_and_how_long(tmp_path: Path) -> None:
    settings = HourlySettings()
    assert exceedance_severity(1.2, 1, settings) is Severity.WARNING
    assert exceedance_severity(1.5, 1, settings) is Severity.MAJOR
    assert exceedance_severity(1.2, 3, settings) is Severity.MAJOR
    assert exceedance_severity(2.0, 1, settings) is Severity.CRITICAL
    assert exceedance_severity(1.1, 6, settings) is Severity.CRITICAL
    proc, sink = _processor(tmp_path)
    start = DAY0
    # SO2 1-h 600 (1.2× grade II's 500) for 3 hours, then 1100 (2.2×), then 100; each hour
    # closes as the next one's data arrives
    for h, so2 in enumerate((600.0, 600.0, 600.0, 1100.0, 100.0, 100.0)):
        proc.process(_ten_minute_hours(start + h * NS_H, 1, {"so2": so2}, vary=0), start)
    subject = "s1/aq-1/so2_1h"
    raised = [s for s in sink.raised if s.rule == "air_exceedance" and s.subject == subject]
    assert [(s.severity, s.details["hours"]) for s in raised] == [
        (Severity.WARNING, 1),
        (Severity.WARNING, 2),
        (Severity.MAJOR, 3),
        (Severity.CRITICAL, 4),
    ]
    # the grade rose at hours 3 and 4: the open alert cleared first, to open at the new grade;
    # hour 5 within the limit clears it
    clears = [at for rule, subj, at in sink.cleared if subj == subject]
    assert clears == [start + 3 * NS_H, start + 4 * NS_H, start + 5 * NS_H]
    assert "GB 3095-2026 过渡阶段浓度限值 二级" in raised[-1].message


def test_api_serves_daily_reports_and_the_editions(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from hazwatch.alerts.store import AlertStore
    from hazwatch.api.app import create_app
    from hazwatch.api.deps import ApiContext
    from hazwatch.parts import air as wiring_air

    proc, _ = _processor(tmp_path)
    batch = _day_of_hours(DAY0, {"pm25": 160.0}) + _day_of_hours(
        DAY0 + daily.NS_PER_DAY, {"pm25": 20.0}, hours=2
    )
    proc.process(batch, DAY0 + 2 * daily.NS_PER_DAY)
    db = proc.store.db
    ctx = ApiContext(
        db=db,
        reader=None,  # type: ignore[arg-type]
        alerts=AlertStore(db),
        data_dir=tmp_path,
        lang="zh",
        air=proc.store,
    )
    client = TestClient(create_app(ctx, wiring_air.routers()))
    answer = client.get(
        "/api/air/aq-1/daily",
        params={"from": "2026-11-24T00:00:00+08:00", "to": "2026-11-26T00:00:00+08:00"},
    ).json()
    first, second = answer["days"]
    assert first["day"] == "2026-11-23T16:00:00.000Z" and first["aqi"] == 210
    assert first["category"] == "重度污染" and first["heavy_days"] == 1 and first["complete"]
    assert second["complete"] is False
    assert answer["heavy_days_now"] == 1 and "指示性" in answer["indicative"]
    assert client.get("/api/air/nowhere/daily").status_code == 404
    editions = client.get("/api/air/standards").json()
    assert [e["name"] for e in editions["aqi"]] == ["HJ 633-2012", "HJ 633-2026"]
    assert editions["aqi"][1]["from"] == "2026-02-28T16:00:00.000Z"
    assert [e["label"] for e in editions["limits"]][1:] == [
        "GB 3095-2026 过渡阶段浓度限值",
        "GB 3095-2026 浓度限值",
    ]
    assert editions["limits"][1]["grades"]["2"]["pm25_24h"] == 60
