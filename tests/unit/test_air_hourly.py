"""The air_hourly processor fed decoded HJ 212 packets: means, validity, idempotency, alerts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.streams.air import aqi
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.store import COLUMNS, AirStore

NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
HOUR0 = 1_795_478_400 * 10**9  # 2026-11-24T00:00Z
NOW = HOUR0 + 3 * 24 * NS_H
LATER = NOW + 16 * NS_MIN  # the station has been quiet long enough for its hours to close


def minute(ts_ns: int, values: dict[str, float], flags: dict[str, str] | None = None) -> Decoded:
    packet = hj212.data_packet("MN1", "2051", ts_ns, values, flags=flags)
    return decode("hw/s1/air/aq-1/hj212", hj212.build(packet), NoRegistry(), now_ns=NOW)


@pytest.fixture()
def processor(tmp_path: Path) -> tuple[AirProcessor, ListSink]:
    sink = ListSink()
    return AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 's.db'}")), sink), sink


def test_hour_mean_closes_when_data_passes_the_hour(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, _ = processor
    batch = [minute(HOUR0 + m * NS_MIN, {"pm25": float(m), "no2": 40.0}) for m in range(60)]
    assert proc.process(batch, HOUR0 + NS_H) == []  # the hour is not over for the station yet
    points = proc.process([minute(HOUR0 + NS_H + 6 * NS_MIN, {"pm25": 1.0})], HOUR0 + NS_H)
    (point,) = points
    assert point.measurement == "air_hourly" and point.ts_ns == HOUR0
    assert point.tags == {"site": "s1", "station": "aq-1"}
    assert point.fields["pm25"] == pytest.approx(29.5)
    assert point.fields["pm25_minutes"] == 60
    assert point.fields["iaqi_pm25"] == 43 and point.fields["iaqi_no2"] == 20
    assert point.fields["aqi"] == 43 and point.fields["level"] == 1
    assert point.fields["primary"] == ""


def test_fewer_than_45_valid_minutes_is_no_mean(processor: tuple[AirProcessor, ListSink]) -> None:
    proc, _ = processor
    batch = [minute(HOUR0 + m * NS_MIN, {"pm25": 50.0}) for m in range(44)]
    # flagged data (M: maintenance) does not count toward validity
    batch += [minute(HOUR0 + m * NS_MIN, {"pm25": 999.0}, {"pm25": "M"}) for m in range(44, 60)]
    (point,) = proc.process(batch, NOW) + proc.tick(LATER)
    assert "pm25" not in point.fields and "aqi" not in point.fields
    assert point.fields["pm25_minutes"] == 44


def test_redelivery_counts_a_reading_once(processor: tuple[AirProcessor, ListSink]) -> None:
    proc, _ = processor
    batch = [minute(HOUR0 + m * NS_MIN, {"pm25": float(m % 7)}) for m in range(60)]
    proc.process(batch, HOUR0)
    proc.process(batch[:30], HOUR0)  # redelivered
    (first,) = proc.tick(LATER)
    # redelivered after the hour closed: the same point again (overwrites in InfluxDB)
    (again,) = proc.process(batch, LATER) + proc.tick(LATER + 16 * NS_MIN)
    assert first.fields == again.fields and first.ts_ns == again.ts_ns
    rows = proc.store.db.query("SELECT COUNT(*) FROM air_reading")
    assert rows[0][0] == 60


def test_late_data_recomputes_the_hour(processor: tuple[AirProcessor, ListSink]) -> None:
    proc, _ = processor
    batch = [minute(HOUR0 + m * NS_MIN, {"pm25": 10.0}) for m in range(50)]
    assert proc.process(batch, NOW) == []
    (early,) = proc.tick(LATER)
    assert early.fields["pm25"] == 10.0
    proc.process([minute(HOUR0 + m * NS_MIN, {"pm25": 70.0}) for m in range(50, 60)], LATER)
    (late,) = proc.tick(LATER + 16 * NS_MIN)
    assert late.ts_ns == HOUR0 and late.fields["pm25"] == pytest.approx(20.0)


def test_24h_and_o3_8h_moving_means_and_alerts(processor: tuple[AirProcessor, ListSink]) -> None:
    proc, sink = processor
    batch = []
    for h in range(24):
        for m in range(0, 60):
            ts = HOUR0 + h * NS_H + m * NS_MIN
            # 99/101 and 9/11 by turns: means of 100 and 10 that no flatline audit marks
            wobble = 1.0 if m % 2 else -1.0
            batch.append(
                minute(ts, {"pm25": 100.0 + wobble, "o3": 150.0 + h, "so2": 10.0 + wobble})
            )
    points = proc.process(batch, NOW) + proc.tick(LATER)
    last = max(points, key=lambda p: p.ts_ns)
    assert last.ts_ns == HOUR0 + 23 * NS_H
    assert last.fields["pm25_24h"] == 100.0
    assert last.fields["o3_8h"] == pytest.approx(sum(150.0 + h for h in range(16, 24)) / 8)
    # pm25 100 by HJ 633-2026 (2026-11) → (150-100)/(115-60)*(100-60)+100 = 136.4 → 137
    assert last.fields["iaqi_pm25"] == 137 and last.fields["aqi"] == 137
    assert last.fields["primary"] == "pm25"
    rules = {(s.rule, s.subject) for s in sink.raised}
    assert ("aqi_level", "s1/aq-1") in rules
    assert ("air_exceedance", "s1/aq-1/pm25_24h") in rules
    assert proc.store.stations()[0]["aqi"] == 137
    assert len(proc.store.hourly("aq-1", HOUR0, NOW)) == 24


def test_alerts_go_to_the_real_alert_store(tmp_path: Path) -> None:
    from hazwatch.alerts.store import AlertStore

    db = StateDB(f"sqlite:///{tmp_path / 's.db'}")
    store = AlertStore(db)
    proc = AirProcessor(AirStore(db), store)
    batch = [minute(HOUR0 + m * NS_MIN, {"no2": 250.0}) for m in range(60)]
    proc.process(batch, NOW)
    (point,) = proc.tick(LATER)
    assert point.fields["iaqi_no2"] == 105  # (150-100)/(700-200)*(250-200)+100
    rules = sorted(a.rule for a in store.list())
    # 250.0 sixty times: one hour of one value is no flatline (the audit wants flatline_hours)
    assert rules == ["air_exceedance", "aqi_level"]


def test_spike_and_flatline_and_silence_is_not_the_air_parts(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, sink = processor
    # CO 0.8 (8 steps of 0.1) in every reading for 6 hours: a flatline (flatline_hours)
    batch = [minute(HOUR0 + m * NS_MIN, {"pm25": 30.0 + m % 5, "co": 0.8}) for m in range(360)]
    batch[330] = minute(HOUR0 + 330 * NS_MIN, {"pm25": 900.0, "co": 0.8})
    proc.process(batch, NOW)
    proc.tick(LATER)
    found = {(s.rule, s.subject) for s in sink.raised}
    assert ("sensor_spike", "s1/aq-1/pm25") in found
    assert ("sensor_flatline", "s1/aq-1/co") in found
    assert ("sensor_flatline", "s1/aq-1/pm25") not in found
    before = len(sink.raised)
    proc.tick(NOW + 31 * NS_MIN)  # a silent station is device_offline (test_presence.py)
    assert len(sink.raised) == before


def test_tick_prunes_readings_and_means_behind_the_newest(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, _ = processor
    old = [minute(HOUR0 + m * NS_MIN, {"pm25": 10.0}) for m in range(60)]
    new = [minute(HOUR0 + 50 * NS_H + m * NS_MIN, {"pm25": 10.0}) for m in range(66)]
    proc.process(old, NOW)
    proc.process(new, NOW)
    proc.tick(NOW)
    hours = {r[0] for r in proc.store.db.query("SELECT hour_ns FROM air_hour")}
    assert hours == {HOUR0 + 50 * NS_H}
    assert proc.store.db.query("SELECT MIN(ts_ns) FROM air_reading")[0][0] == HOUR0 + 50 * NS_H
    assert len(proc.store.hourly("aq-1", HOUR0, NOW)) == 2  # results are kept for the API


def test_json_readings_count_like_hj212_ones(processor: tuple[AirProcessor, ListSink]) -> None:
    proc, _ = processor
    batch = [
        decode(
            "hw/s1/air/aq-2/reading",
            b'{"ts": %d, "pm25": 40.0, "flag": "%s"}'
            % ((HOUR0 + m * NS_MIN) // 10**6, b"N" if m < 50 else b"D"),
            NoRegistry(),
            now_ns=NOW,
        )
        for m in range(60)
    ]
    proc.process(batch, NOW)
    (point,) = proc.tick(LATER)
    assert point.tags["station"] == "aq-2"
    assert point.fields["pm25"] == 40.0 and point.fields["pm25_minutes"] == 50  # D: fault


def reading(ts_ns: int, values: dict[str, float], station: str = "aq-1") -> Decoded:
    """A JSON real-time reading (source `rtd`)."""
    body = {"ts": ts_ns // 10**6, **values}
    return decode(f"hw/s1/air/{station}/reading", orjson.dumps(body), NoRegistry(), now_ns=NOW)


def three_hours() -> list[Decoded]:
    """3 h 10 min of two stations: aq-1's minute data, pm25 flagged (M) now and then, and
    aq-2's real-time readings, interleaved."""
    data = []
    for m in range(190):
        values = {
            "pm25": 20.0 + (m * 7) % 31,
            "pm10": 50.0 + m % 13,
            "so2": 8.0 + m % 3,
            "no2": 30.0 + (m * 5) % 17,
            "co": 0.5 + (m % 4) / 10,
            "o3": 90.0 + m % 40,
        }
        data.append(minute(HOUR0 + m * NS_MIN, values, {"pm25": "M"} if m % 11 == 0 else None))
        data.append(
            reading(HOUR0 + m * NS_MIN + 30 * 10**9, {"pm25": 60.0 - m % 23, "co": 1.5}, "aq-2")
        )
    return data


Results = dict[tuple[str, int], dict[str, object]]


def results(points: list[Point]) -> Results:
    """Each hour's last point (InfluxDB keeps one per identity)."""
    return {(p.tags["station"], p.ts_ns): dict(p.fields) for p in points}


def reference(tmp_path: Path, batches: list[list[Decoded]]) -> Results:
    """What one processor that runs all along makes of these batches, after a final tick."""
    proc = AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 'reference.db'}")))
    points = [p for batch in batches for p in proc.process(batch, NOW)]
    return results(points + proc.tick(LATER))


def test_pollutant_columns_are_the_aqi_pollutants() -> None:
    assert COLUMNS == aqi.POLLUTANTS


def test_a_reading_is_one_row_with_its_valid_pollutants(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, _ = processor
    proc.process([minute(HOUR0, {"pm25": 40.0, "no2": 30.0, "temp": 12.0}, {"no2": "D"})], NOW)
    rows = proc.store.db.query("SELECT * FROM air_reading")
    assert [tuple(r) for r in rows] == [
        ("s1", "aq-1", "minute", HOUR0, None, None, None, None, None, 40.0)
    ]
    # nothing valid (flagged, or no pollutant of the AQI): no row
    proc.process([minute(HOUR0 + NS_MIN, {"pm25": 40.0}, {"pm25": "M"})], NOW)
    proc.process([reading(HOUR0 + NS_MIN, {"tvoc": 0.4})], NOW)
    assert proc.store.db.query("SELECT COUNT(*) FROM air_reading")[0][0] == 1


def test_a_reading_split_over_messages_keeps_each_first_value(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, _ = processor
    proc.process([reading(HOUR0, {"pm25": 40.0})], NOW)
    # the same reading's other pollutant in another message, and a redelivery with another value
    proc.process([reading(HOUR0, {"no2": 30.0}), reading(HOUR0, {"pm25": 99.0})], NOW)
    row = proc.store.db.query("SELECT no2, pm25 FROM air_reading")
    assert [tuple(r) for r in row] == [(30.0, 40.0)]


def test_hours_close_batch_by_batch_as_the_data_passes_them(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, _ = processor
    closed_at: dict[tuple[str, int], int] = {}
    for decoded in three_hours():
        for point in proc.process([decoded], NOW):
            closed_at[(point.tags["station"], point.ts_ns)] = decoded.points[0].ts_ns
    # each hour closes with the station's first reading 5 min (close_after_data_s) past its end
    assert closed_at == {
        (station, HOUR0 + h * NS_H): HOUR0 + (h + 1) * NS_H + 5 * NS_MIN + offset_ns
        for station, offset_ns in (("aq-1", 0), ("aq-2", 30 * 10**9))
        for h in range(3)
    }


def test_late_data_recloses_the_hour_in_the_same_batch(
    processor: tuple[AirProcessor, ListSink],
) -> None:
    proc, _ = processor
    data = [minute(HOUR0 + m * NS_MIN, {"pm25": 10.0}) for m in range(140) if m != 30]
    for decoded in data:  # one reading a batch: what the station knows is cached in memory
        proc.process([decoded], NOW)
    points = proc.process([minute(HOUR0 + 30 * NS_MIN, {"pm25": 70.0})], NOW)
    # the hour again, and the next one (its 24-h moving means use this one)
    again = {p.ts_ns: p.fields for p in points}
    assert set(again) == {HOUR0, HOUR0 + NS_H}
    assert again[HOUR0]["pm25"] == pytest.approx(11.0) and again[HOUR0]["pm25_minutes"] == 60


def test_a_new_processor_on_the_same_store_continues(tmp_path: Path) -> None:
    data = three_hours()
    batches = [data[start : start + 75] for start in range(0, len(data), 75)]
    url = f"sqlite:///{tmp_path / 's.db'}"
    points = []
    first = AirProcessor(AirStore(StateDB(url)))
    for batch in batches[:3]:
        points += first.process(batch, NOW)
    del first  # gone between two batches (crash, restart): what it knew in memory with it
    second = AirProcessor(AirStore(StateDB(url)))
    for batch in batches[3:]:
        points += second.process(batch, NOW)
    points += second.tick(LATER)
    assert results(points) == reference(tmp_path, batches)


def test_two_workers_sharing_a_station_give_one_workers_result(tmp_path: Path) -> None:
    data = three_hours()
    data = data[:200] + data[240:] + data[200:240]  # and 20 min of hour 1 arrive late
    batches = [data[start : start + 20] for start in range(0, len(data), 20)]
    url = f"sqlite:///{tmp_path / 's.db'}"
    workers = [AirProcessor(AirStore(StateDB(url))), AirProcessor(AirStore(StateDB(url)))]
    points = []
    for index, batch in enumerate(batches):  # a shared subscription deals batches out
        points += workers[index % 2].process(batch, NOW)
    for worker in workers:
        points += worker.tick(LATER)
    assert results(points) == reference(tmp_path, batches)


def test_the_aqi_threshold_and_the_spikes_readings_are_settings(tmp_path: Path) -> None:
    from hazwatch.streams.air.rules import RULE_AQI, RULE_SPIKE, aqi_severity
    from hazwatch.streams.air.settings import HourlySettings

    # AQI 105 (level 3): over the default 100; under a threshold of 120; a threshold of 50
    # makes level 2 alert too, with the declared (lowest) severity, not a critical one
    assert aqi_severity(105, 3) == "warning" and aqi_severity(105, 3, 120) is None
    assert aqi_severity(80, 2, 50) == "warning" and aqi_severity(180, 4, 50) == "major"
    sink = ListSink()
    settings = HourlySettings(aqi_alert_above=120, spike_min_readings=61)
    db = StateDB(f"sqlite:///{tmp_path / 's.db'}")
    proc = AirProcessor(AirStore(db), sink, settings=settings)
    batch = [minute(HOUR0 + m * NS_MIN, {"no2": 250.0 + m % 3}) for m in range(60)]
    batch[30] = minute(HOUR0 + 30 * NS_MIN, {"no2": 2000.0})
    proc.process(batch, NOW)
    proc.tick(LATER)
    rules = {s.rule for s in sink.raised}
    assert RULE_AQI not in rules  # AQI 105 ≤ 120
    assert RULE_SPIKE not in rules  # 60 readings < 61: no median to judge by
