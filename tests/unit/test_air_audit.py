"""The air data audit (数据审核) as small stories: each automatic mark's smallest example,
hand-computed; marks excluding data from hours, recomputation and revocation; maintenance
windows; flagged values kept; the API and the CLI, bad input refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hazwatch.alerts.model import ListSink
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.commands import air_audit as audit_cli
from hazwatch.commands import alerts as alerts_cli
from hazwatch.devices import hj212
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.registry import Instrument, parse_registry
from hazwatch.parts import air as wiring_air
from hazwatch.streams.air import audit
from hazwatch.streams.air.auditor import Auditor
from hazwatch.streams.air.marks import MarkConflict
from hazwatch.streams.air.processor import AirProcessor
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.air.store import AirStore

NS_MIN = 60 * 10**9
NS_H = 60 * NS_MIN
HOUR0 = 1_795_478_400 * 10**9  # 2026-11-24T00:00Z = 08:00 China time
NOW = HOUR0 + 3 * 24 * NS_H
SETTINGS = HourlySettings()
TOKEN = "audit-token"


def minute(ts_ns: int, values: dict[str, float], flags: dict[str, str] | None = None) -> Decoded:
    packet = hj212.data_packet("MN1", "2051", ts_ns, values, flags=flags)
    return decode("hw/s1/air/aq-1/hj212", hj212.build(packet), NoRegistry(), now_ns=NOW)


def hourly(hour: int, pollutant: str, value: float) -> tuple[str, int, str, float]:
    return ("minute", HOUR0 + hour * NS_H, pollutant, value)


# ------------------------------------------------------------------ automatic marks, pure


def test_flatline_needs_flatline_hours_of_one_value() -> None:
    # hourly data (one value an hour): CO 0.8 mg/m³ = 8 steps of 0.1, above the 3-step floor
    six = [hourly(h, "co", 0.8) for h in range(6)]
    marks, run = audit.flatline_marks(HOUR0 + 5 * NS_H, six, {}, SETTINGS)
    assert [(m.pollutant, m.start_ns, m.end_ns, m.reason) for m in marks] == [
        ("co", HOUR0 + 5 * NS_H, HOUR0 + 6 * NS_H, "flatline")
    ]
    assert run == {"co": [HOUR0 + h * NS_H for h in range(5)]}  # the run's other hours
    # five hours are not six; a sixth hour of 0.9 breaks the run
    assert audit.flatline_marks(HOUR0 + 4 * NS_H, six[:5], {}, SETTINGS)[0] == []
    broken = [*six[:5], hourly(5, "co", 0.9)]
    assert audit.flatline_marks(HOUR0 + 4 * NS_H, broken, {}, SETTINGS)[0] == []


def test_clean_air_on_the_lowest_steps_is_no_flatline_unless_the_analyser_is_finer() -> None:
    # CO 0.1 mg/m³ for 6 hours: 1 step of the default 0.1 resolution, within 3 steps of zero
    clean = [hourly(h, "co", 0.1) for h in range(6)]
    assert audit.flatline_marks(HOUR0, clean, {}, SETTINGS)[0] == []
    so2 = [hourly(h, "so2", 3.0) for h in range(6)]  # 3 steps of 1 µg/m³: still the floor
    assert audit.flatline_marks(HOUR0, so2, {}, SETTINGS)[0] == []
    # an analyser of 0.01 mg/m³ resolution (registry) reading 0.1 for 6 hours: 10 steps, stuck
    fine = {"co": Instrument("co", resolution=0.01)}
    (mark,) = audit.flatline_marks(HOUR0, clean, fine, SETTINGS)[0]
    assert mark.reason == "flatline" and "resolution 0.01" in mark.note


def test_spike_marks_only_the_jump() -> None:
    # 9 readings of 30 and one of 900: median 30, threshold max(5 × 30, 30 + 100) = 150
    readings = [("minute", HOUR0 + m * NS_MIN, "pm25", 30.0) for m in range(9)]
    readings.append(("minute", HOUR0 + 9 * NS_MIN, "pm25", 900.0))
    (mark,) = audit.spike_marks(readings, SETTINGS)
    assert (mark.start_ns, mark.end_ns) == (HOUR0 + 9 * NS_MIN, HOUR0 + 9 * NS_MIN + 1)
    # 149 is under the threshold, and nine readings are too few to judge (spike_min_readings)
    readings[-1] = ("minute", HOUR0 + 9 * NS_MIN, "pm25", 149.0)
    assert audit.spike_marks(readings, SETTINGS) == []
    nine = [*readings[:8], ("minute", HOUR0 + 9 * NS_MIN, "pm25", 900.0)]
    assert audit.spike_marks(nine, SETTINGS) == []


def test_pm25_over_pm10_beyond_the_tolerance() -> None:
    # 62 - 48 = 14 > max(10, 0.1 × 48 = 4.8): both particles of the hour invalid
    marks = audit.inversion_marks(HOUR0, {"pm25": 62.0, "pm10": 48.0}, SETTINGS)
    assert [(m.pollutant, m.reason) for m in marks] == [
        ("pm25", "pm_inversion"),
        ("pm10", "pm_inversion"),
    ]
    assert audit.inversion_marks(HOUR0, {"pm25": 58.0, "pm10": 48.0}, SETTINGS) == []  # 10
    # at 300 µg/m³ the tolerance is 0.1 × 300 = 30: 325 over 300 is within it
    assert audit.inversion_marks(HOUR0, {"pm25": 325.0, "pm10": 300.0}, SETTINGS) == []


def test_outside_the_analysers_range() -> None:
    so2 = {"so2": Instrument("so2", range_low=0, range_high=500)}
    readings = [
        ("minute", HOUR0, "so2", 500.0),
        ("minute", HOUR0 + NS_MIN, "so2", 650.0),
        ("minute", HOUR0 + 2 * NS_MIN, "so2", 700.0),
        ("minute", HOUR0 + 3 * NS_MIN, "so2", 20.0),
    ]
    (mark,) = audit.range_marks(readings, so2)  # one run of two readings; 500 is in range
    assert (mark.start_ns, mark.end_ns) == (HOUR0 + NS_MIN, HOUR0 + 2 * NS_MIN + 1)
    assert "650…700" in mark.note and "0…500" in mark.note
    assert audit.range_marks(readings, {}) == []  # no range in the registry: nothing to judge


def test_registry_instruments_and_their_errors() -> None:
    doc = {
        "site": [{"id": "s1", "name": "厂区"}],
        "station": [
            {
                "id": "aq-1",
                "site": "s1",
                "instruments": [{"pollutant": "co", "resolution": 0.01, "range_high": 50}],
            }
        ],
    }
    (station,) = parse_registry(doc).stations.values()
    assert station.instruments == (Instrument("co", 0.01, None, 50.0),)
    again = parse_registry(json.loads(json.dumps(parse_registry(doc).to_document())))
    assert again.stations == parse_registry(doc).stations  # stored and read back
    bad = doc["station"][0]["instruments"]
    for entry, why in (
        ({"pollutant": "tvoc"}, "must be one of"),
        ({"pollutant": "co", "resolution": 0}, "resolution"),
        ({"pollutant": "co", "range_low": 10, "range_high": 5}, "must be above range_low"),
        ({"pollutant": "co", "step": 1}, "'step' is not an instrument field"),
    ):
        bad[0] = entry
        with pytest.raises(ConfigError, match=why):
            parse_registry(doc)


# ------------------------------------------------------------------ hours without marked data


@pytest.fixture()
def processor(tmp_path: Path) -> AirProcessor:
    return AirProcessor(AirStore(StateDB(f"sqlite:///{tmp_path / 's.db'}")), ListSink())


def two_hours(proc: AirProcessor) -> None:
    """Hours 0 and 1 of PM2.5 40 + m % 3 (mean 41) and NO2 20 + m % 2, closed."""
    batch = [
        minute(HOUR0 + m * NS_MIN, {"pm25": 40.0 + m % 3, "no2": 20.0 + m % 2}) for m in range(120)
    ]
    proc.process(batch, NOW)
    proc.tick(NOW + 16 * NS_MIN)


def result(proc: AirProcessor, hour: int) -> dict[str, object]:
    (row,) = proc.store.hourly("aq-1", HOUR0 + hour * NS_H, HOUR0 + (hour + 1) * NS_H)
    return row


def test_a_marked_span_is_excluded_and_the_hour_recomputed_then_restored(
    processor: AirProcessor,
) -> None:
    proc = processor
    two_hours(proc)
    assert result(proc, 0)["pm25"] == 41.0 and result(proc, 0)["pm25_minutes"] == 60
    marks = proc.auditor.marks
    # minutes 0…19 of PM2.5 invalid: 40 valid minutes are fewer than 45, the hour has no mean
    change = marks.add(
        "s1",
        "aq-1",
        audit.Mark("pm25", HOUR0, HOUR0 + 20 * NS_MIN, "fault", "采样泵故障"),
        by="张工",
        now_ns=NOW,
    )
    assert change.recomputed == [HOUR0] and change.pruned == []
    proc.tick(NOW + 17 * NS_MIN)
    row = result(proc, 0)
    assert "pm25" not in row and row["pm25_minutes"] == 40 and row["no2_minutes"] == 60
    assert result(proc, 1)["pm25"] == 41.0  # the next hour is untouched
    # the raw readings stay: the mark only says why they are left out
    kept = proc.store.readings("s1", "aq-1", HOUR0, HOUR0 + NS_H)
    assert sum(1 for r in kept if r[2] == "pm25") == 60
    # revoked: the data count again, the mark stays on record with who and why
    revoked = marks.revoke(change.row["id"], by="李工", note="泵正常，复核有效", now_ns=NOW)
    assert revoked.row["revoked_by"] == "李工" and revoked.recomputed == [HOUR0]
    proc.tick(NOW + 18 * NS_MIN)
    assert result(proc, 0)["pm25"] == 41.0
    with pytest.raises(MarkConflict):
        marks.revoke(change.row["id"], by="李工", note="again", now_ns=NOW)


def test_a_whole_hour_of_every_pollutant_marked_keeps_a_point_with_zero_minutes(
    processor: AirProcessor,
) -> None:
    proc = processor
    two_hours(proc)
    proc.auditor.marks.add(
        "s1", "aq-1", audit.Mark("*", HOUR0, HOUR0 + NS_H, "power", "停电"), by="张工", now_ns=NOW
    )
    # hour 0 again, and the hours whose moving means it fed
    point = min(proc.tick(NOW + 17 * NS_MIN), key=lambda p: p.ts_ns)
    assert point.ts_ns == HOUR0 and "aqi" not in point.fields
    assert point.fields["pm25_minutes"] == 0 and point.fields["no2_minutes"] == 0


def test_maintenance_window_is_excluded_like_m_flagged_data(processor: AirProcessor) -> None:
    proc = processor
    two_hours(proc)
    change = proc.auditor.marks.add_maintenance(
        "s1",
        "aq-1",
        kind="calibration",
        start_ns=HOUR0 + 30 * NS_MIN,
        end_ns=HOUR0 + 50 * NS_MIN,
        pollutant="no2",
        note="NO2 零点/跨度校准",
        by="王工",
        now_ns=NOW,
    )
    assert change.row["kind"] == "calibration" and change.recomputed == [HOUR0]
    proc.tick(NOW + 17 * NS_MIN)
    row = result(proc, 0)
    assert row["no2_minutes"] == 40 and "no2" not in row and row["pm25"] == 41.0
    (mark,) = proc.auditor.marks.marks(start_ns=HOUR0, end_ns=NOW, origin="maintenance")
    assert mark["maintenance_id"] == change.row["id"] and mark["reason"] == "maintenance"
    # a consumable change with no window records, and marks nothing
    plain = proc.auditor.marks.add_maintenance(
        "s1",
        "aq-1",
        kind="consumable",
        start_ns=HOUR0 + 2 * NS_H,
        end_ns=HOUR0 + 2 * NS_H,
        pollutant="*",
        note="更换 PM2.5 滤膜",
        by="王工",
        now_ns=NOW,
    )
    assert plain.recomputed == []
    records = proc.auditor.marks.maintenance(start_ns=HOUR0, end_ns=NOW)
    assert [r["kind"] for r in records] == ["calibration", "consumable"]


def test_flagged_values_are_kept_with_their_flag_once(processor: AirProcessor) -> None:
    proc = processor
    batch = [minute(HOUR0 + m * NS_MIN, {"pm25": 50.0}) for m in range(50)]
    batch += [minute(HOUR0 + m * NS_MIN, {"pm25": 999.0}, {"pm25": "C"}) for m in range(50, 60)]
    proc.process(batch, NOW)
    proc.process(batch[50:], NOW)  # redelivered: kept once
    (point,) = proc.tick(NOW + 16 * NS_MIN)
    assert point.fields["pm25"] == 50.0 and point.fields["pm25_minutes"] == 50
    (mark,) = proc.auditor.marks.marks(start_ns=HOUR0, end_ns=NOW, origin="flag")
    assert mark["reason"] == "flag_C" and mark["readings"] == 10
    assert (mark["start_ns"], mark["end_ns"]) == (HOUR0 + 50 * NS_MIN, HOUR0 + 59 * NS_MIN + 1)
    assert "999" in mark["note"]


def test_a_flatline_marks_every_hour_of_its_run_and_a_revoked_one_stays_revoked(
    processor: AirProcessor,
) -> None:
    proc = processor
    # CO 0.8 in every minute for 6 hours and 6 minutes (the 7th hour is in the run too)
    batch = [minute(HOUR0 + m * NS_MIN, {"co": 0.8, "pm25": 30.0 + m % 4}) for m in range(366)]
    proc.process(batch, NOW)
    proc.tick(NOW + 16 * NS_MIN)
    flat = proc.auditor.marks.marks(start_ns=HOUR0, end_ns=NOW, origin="auto")
    assert sorted(m["start_ns"] for m in flat if m["reason"] == "flatline") == [
        HOUR0 + h * NS_H for h in range(7)
    ]
    assert all("co" not in result(proc, h) for h in range(7))
    assert result(proc, 0)["co_minutes"] == 0 and result(proc, 0)["pm25"] == 31.5
    # an engineer judges hour 2's CO valid: revoked, it counts, and recomputing keeps it so
    hour2 = next(m for m in flat if m["start_ns"] == HOUR0 + 2 * NS_H)
    proc.auditor.marks.revoke(hour2["id"], by="张工", note="现场核实", now_ns=NOW)
    proc.tick(NOW + 17 * NS_MIN)
    assert result(proc, 2)["co"] == 0.8
    again = proc.auditor.marks.marks(start_ns=HOUR0 + 2 * NS_H, end_ns=HOUR0 + 3 * NS_H)
    assert [(m["reason"], m["revoked_by"]) for m in again] == [("flatline", "张工")]


def test_instruments_come_from_the_registry(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 's.db'}")
    store = AirStore(db)
    so2 = {"so2": Instrument("so2", range_high=100)}
    proc = AirProcessor(store, auditor=Auditor(store, instruments=lambda site, station: so2))
    batch = [minute(HOUR0 + m * NS_MIN, {"so2": 20.0 + m % 2}) for m in range(60)]
    batch[10] = minute(HOUR0 + 10 * NS_MIN, {"so2": 180.0})
    proc.process(batch, NOW)
    (point,) = proc.tick(NOW + 16 * NS_MIN)
    assert point.fields["so2_minutes"] == 59
    found = proc.auditor.marks.marks(start_ns=HOUR0, end_ns=NOW, origin="auto")
    # 180 is over the range (0…100) and a spike (over max(5 × 20.5, 20.5 + 100))
    assert {(m["reason"], m["start_ns"]) for m in found} == {
        ("out_of_range", HOUR0 + 10 * NS_MIN),
        ("spike", HOUR0 + 10 * NS_MIN),
    }


# ------------------------------------------------------------------ API and CLI


@pytest.fixture()
def api(tmp_path: Path) -> tuple[TestClient, AirProcessor]:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    proc = AirProcessor(AirStore(db))
    two_hours(proc)
    ctx = ApiContext(
        db=db,
        reader=None,  # type: ignore[arg-type]
        alerts=AlertStore(db),
        data_dir=tmp_path,
        api_token=TOKEN,
        air=proc.store,
        air_audit=proc.auditor.marks,
    )
    return TestClient(create_app(ctx, wiring_air.routers())), proc


AUTH = {"Authorization": f"Bearer {TOKEN}"}
MARK = {
    "site": "s1",
    "station": "aq-1",
    "pollutant": "pm25",
    "start": "2026-11-24T08:00:00+08:00",
    "end": "2026-11-24T08:20:00+08:00",
    "reason": "fault",
    "note": "采样泵故障",
    "by": "张工",
}


def test_api_marks_lists_and_unmarks(api: tuple[TestClient, AirProcessor]) -> None:
    client, proc = api
    assert client.post("/api/air/marks/add", json=MARK).status_code == 401  # the token
    made = client.post("/api/air/marks/add", json=MARK, headers=AUTH).json()
    assert made["recomputed"] == ["2026-11-24T00:00:00.000Z"]
    assert made["mark"]["reason_text"] == "仪器故障" and made["mark"]["in_force"]
    proc.tick(NOW + 17 * NS_MIN)
    assert "pm25" not in result(proc, 0)
    listed = client.get("/api/air/marks", params={"station": "aq-1", "from": str(HOUR0 // 10**6)})
    (row,) = listed.json()["marks"]
    assert row["id"] == made["mark"]["id"] and row["by"] == "张工"
    path = f"/api/air/marks/{row['id']}/unmark"
    body = {"by": "李工", "note": "复核有效"}
    assert client.post(path, json=body, headers=AUTH).json()["mark"]["revoked_by"] == "李工"
    assert client.post(path, json=body, headers=AUTH).status_code == 409
    assert client.post("/api/air/marks/999/unmark", json=body, headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("change", "where", "why"),
    [
        ({"reason": "looks odd"}, "reason", "Input should be"),
        ({"note": "  "}, "note", "note must say why"),
        ({"by": "auto"}, "by", "the audit's own name"),
        ({"pollutant": "tvoc"}, "pollutant", "Input should be"),
        ({"end": "2026-11-24T07:00:00+08:00"}, "end", "end must be after start"),
        ({"start": "2026-11-24T08:00:00"}, "start", "String should match pattern"),
        ({"start": "1990-01-01T00:00:00Z"}, "start", "must be a time within"),
    ],
)
def test_api_refuses_bad_marks_naming_the_field(
    api: tuple[TestClient, AirProcessor], change: dict[str, str], where: str, why: str
) -> None:
    client, _ = api
    response = client.post("/api/air/marks/add", json={**MARK, **change}, headers=AUTH)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"][-1] == where and why in error["msg"]


def test_api_unknown_station_and_maintenance(api: tuple[TestClient, AirProcessor]) -> None:
    client, _ = api
    nope = client.post("/api/air/marks/add", json={**MARK, "station": "aq-9"}, headers=AUTH)
    assert nope.status_code == 404 and "s1/aq-9" in nope.json()["detail"]
    record = {
        "site": "s1",
        "station": "aq-1",
        "kind": "inspection",
        "start": "2026-11-24T09:00:00+08:00",
        "end": "2026-11-24T09:10:00+08:00",
        "note": "月度巡检",
        "by": "王工",
    }
    made = client.post("/api/air/maintenance/add", json=record, headers=AUTH).json()
    assert made["record"]["kind_text"] == "巡检" and made["recomputed"]
    listed = client.get("/api/air/maintenance", params={"from": str(HOUR0 // 10**6)}).json()
    assert [r["note"] for r in listed["records"]] == ["月度巡检"]
    bad = client.post("/api/air/maintenance/add", json={**record, "kind": "cleaning"}, headers=AUTH)
    assert bad.status_code == 422


@pytest.fixture()
def cli(
    api: tuple[TestClient, AirProcessor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> typer.Typer:
    client, _ = api
    monkeypatch.setenv("HAZWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HAZWATCH_API_TOKEN", TOKEN)
    monkeypatch.delenv("HAZWATCH_LANG", raising=False)

    def in_process(base: str) -> TestClient:
        return TestClient(client.app, base_url=base, headers=alerts_cli.auth_headers())

    monkeypatch.setattr(alerts_cli, "_client", in_process)
    root = typer.Typer()
    root.callback()(lambda: None)
    audit_cli.register(root)
    return root


def test_cli_marks_an_hour_lists_in_chinese_and_unmarks(cli: typer.Typer) -> None:
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["air", "audit", "mark", "s1/aq-1", "--hour", "2026-11-24 08", "--reason", "power",
         "--note", "站房停电", "--by", "张工", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["mark"]["start"], doc["mark"]["end"]) == (
        "2026-11-24T00:00:00.000Z",
        "2026-11-24T01:00:00.000Z",
    )
    listed = runner.invoke(cli, ["air", "audit", "list", "--from", "2026-11-24 00:00"])
    assert listed.exit_code == 0, listed.output
    for word in ("审核标记", "原因", "停电", "人工", "2026-11-24 08:00"):
        assert word in listed.output
    mark_id = str(doc["mark"]["id"])
    undo = ["air", "audit", "unmark", mark_id, "--note", "误标", "--by", "李工"]
    assert runner.invoke(cli, undo).exit_code == 0
    again = runner.invoke(cli, undo)
    assert again.exit_code == 3 and "revoked already" in again.output


def test_cli_bad_input_is_one_line_and_an_exit_code(cli: typer.Typer) -> None:
    runner = CliRunner()
    base = ["air", "audit", "mark", "s1/aq-1", "--reason", "fault", "--note", "x", "--by", "张工"]
    unknown = runner.invoke(cli, [*base[:3], "s1/aq-9", *base[4:], "--hour", "2026-11-24 08"])
    assert unknown.exit_code == 1 and "no air station s1/aq-9" in unknown.output
    bad = runner.invoke(cli, [*base, "--from", "yesterday", "--to", "today"])
    assert bad.exit_code == 2 and "start" in bad.output
    with pytest.raises(ConfigError, match="SITE/STATION"):
        audit_cli._station("aq-1")
    with pytest.raises(ConfigError, match="not a real time"):
        audit_cli.instant("2026-02-30 08:00", "from")
    add = ["air", "maintenance", "add", "s1/aq-1", "--kind", "consumable", "--from",
           "2026-11-24 10:00", "--note", "更换干燥剂", "--by", "王工"]  # fmt: skip
    assert runner.invoke(cli, add).exit_code == 0
    listed = runner.invoke(cli, ["air", "maintenance", "list", "--from", "2026-11-24 00:00"])
    assert "耗材更换" in listed.output and "更换干燥剂" in listed.output


def test_the_air_pages_audit_words_are_the_audits_own() -> None:
    """The air page words a mark's reason and a record's kind from i18n.js (`air.reason.*`,
    `air.kind.*`) in either language: the same words as streams/air/audit.py."""
    import re

    from hazwatch.api.app import static_dir

    script = (Path(static_dir()) / "screen" / "i18n.js").read_text(encoding="utf-8")
    for prefix, table in (("reason", audit.REASONS), ("kind", audit.MAINTENANCE_KINDS)):
        found = re.findall(rf'"air\.{prefix}\.(\w+)": "([^"]+)"', script)
        zh, en = dict(found[: len(found) // 2]), dict(found[len(found) // 2 :])
        assert zh == {k: v[0] for k, v in table.items()}, prefix
        assert en == {k: v[1] for k, v in table.items()}, prefix
