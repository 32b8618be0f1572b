"""HJ 212 station management (#20 items 5b, 5c, 14): field-device information (CN 3020) and the
edition kept with the station and shown in /api/devices; the MN from a hardware serial (CN
1001 → 1002); new SM4 keys (CN 1014) issued, acknowledged and in force; a station's own hourly
and daily means compared with hazwatch's; no registry, no data unless accept_unregistered."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hazwatch.alerts.model import ListSink
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.api.routes import devices
from hazwatch.base.errors import ConfigError, PayloadError
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.registry import Registry, RegistryContext, parse_registry, save
from hazwatch.devices.station_secrets import KeyRotations, StationSecret
from hazwatch.parts import PartContext
from hazwatch.parts.hj212 import Hj212Part
from hazwatch.settings import Settings
from hazwatch.streams.air.store import AirStore
from hazwatch.streams.hj212.settings import LinkSettings

NS_S = 10**9
NS_H = 3600 * NS_S
HOUR0 = 1_795_478_400 * NS_S  # 2026-11-24T00:00Z = 08:00 China time
NOW = HOUR0 + 3 * NS_H
KEY = bytes([0x30] * 16)  # HJ 212-2025 A.2's example key
TOPIC = "hw/s1/air/aq-25/hj212"


def state(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'state.db'}")


def link_part(db: StateDB, alerts: object, **settings: object) -> Hj212Part:
    cfg = Settings(hj212=LinkSettings(**settings))  # type: ignore[arg-type]
    return Hj212Part(PartContext(cfg, db, alerts))  # type: ignore[arg-type]


def packet(cn: str, cp: tuple[tuple[str, str], ...], flag: int = 9) -> hj212.Packet:
    return hj212.Packet(hj212.qn_of(HOUR0), "22", cn, "123456", "MN25", flag, cp)


# ---------------------------------------------------------------- CN 3020 and the edition


def test_field_device_information_and_edition_are_kept_and_shown_in_api_devices(
    tmp_path: Path,
) -> None:
    db = state(tmp_path)
    save(db, parse_registry({"site": [{"id": "s1", "name": "站"}], "station": [
        {"id": "aq-25", "site": "s1", "mn": "MN25", "open": True}]}), "t", NOW)  # fmt: skip
    part = link_part(db, ListSink())
    info = packet(
        "3020",
        (("DataTime", "20261124081500"), ("PolId", "a34004"), ("i12001-Info", "1"),
         ("i13004-Info", "25.5")),
    )  # fmt: skip
    newer = packet("3020", (("DataTime", "20261124091500"), ("PolId", "a34004"),
                            ("i12001-Info", "0")))  # fmt: skip
    older = packet("3020", (("DataTime", "20261124071500"), ("PolId", "a34004"),
                            ("i13004-Info", "99")))  # fmt: skip
    batch = [decode(TOPIC, hj212.build(p), NoRegistry(), now_ns=NOW) for p in (info, newer, older)]
    part.processors()[0].process(batch, NOW)
    link = part.store.links()[("s1", "aq-25")]
    assert link["edition"] == "HJ 212-2025"
    items = link["device_info"]["a34004"]
    # the latest per device and parameter: i12001 from 09:15, i13004 not from the older 07:15
    assert {k: v["value"] for k, v in items.items()} == {"i12001": "0", "i13004": "25.5"}
    ctx = ApiContext(db=db, reader=None, alerts=AlertStore(db), data_dir=tmp_path,  # type: ignore[arg-type]
                     hj212=part.store)  # fmt: skip
    page = TestClient(create_app(ctx, [devices.router])).get("/api/devices").json()
    (row,) = [d for d in page["devices"] if d["device"] == "aq-25"]
    assert row["edition"] == "HJ 212-2025"
    assert row["device_info"]["a34004"]["i13004"]["value"] == "25.5"
    assert row["device_info"]["a34004"]["i12001"]["time"].startswith("2026-11-24T01:15:00")


def test_a_2017_station_is_shown_as_2017() -> None:
    old = hj212.data_packet("MN17", "2051", HOUR0, {"pm25": 30.0})
    assert old.edition == "2017" and old.flag == 5


# ---------------------------------------------------------------- CN 1001 → 1002


def test_the_registry_maps_a_hardware_serial_to_its_mn() -> None:
    doc = {"site": [{"id": "s1"}], "station": [
        {"id": "aq-25", "site": "s1", "mn": "MN25", "serial": "SN6970001"}]}  # fmt: skip
    ctx = RegistryContext(None, parse_registry(doc))
    assert ctx.station_by_serial("SN6970001") == ("s1", "aq-25")
    assert ctx.station_by_serial("SN-OTHER") is None
    twice = {**doc, "station": [*doc["station"], {"id": "aq-26", "site": "s1", "mn": "MN26",
                                                   "serial": "SN6970001"}]}  # fmt: skip
    with pytest.raises(ConfigError, match="already the serial"):
        parse_registry(twice)
    with pytest.raises(ConfigError, match="needs the station's mn"):
        parse_registry({"site": [{"id": "s1"}], "station": [
            {"id": "a", "site": "s1", "serial": "SN1"}]})  # fmt: skip


def test_a_1001_upload_with_no_mn_yet_is_read_and_answered_with_its_mn() -> None:
    upload = hj212.Packet(hj212.qn_of(HOUR0), "91", "1001", "123456", "", 9,
                          (("i23005-Info", "6970000000001ABCDEFG1234"),
                           ("i23006-Info", "A800200A8C6D")))  # fmt: skip
    parsed = hj212.parse_frame(hj212.build(upload))
    assert parsed.mn == "" and hj212.hardware_info(parsed) == {
        "serial": "6970000000001ABCDEFG1234", "cpu_id": "A800200A8C6D"}  # fmt: skip
    answer = hj212.response_for(parsed)
    assert answer is not None and (answer.cn, answer.mn, answer.flag) == ("9013", "", 8)
    command = hj212.set_mn(parsed, "010000A8900016F000169DC0", "6970000000001ABCDEFG1234", NOW)
    assert (command.cn, command.mn, command.flag) == ("1002", "010000A8900016F000169DC0", 9)
    assert command.cp == (("i23005-Info", "6970000000001ABCDEFG1234"),)
    with pytest.raises(PayloadError, match="MN must be"):  # only 1001 (and answers) may be MN-less
        hj212.parse_frame(hj212.build(hj212.Packet(upload.qn, "22", "2011", "1", "", 9)))


# ---------------------------------------------------------------- CN 1014


def test_a_new_key_is_sent_under_the_old_and_in_force_once_acknowledged(tmp_path: Path) -> None:
    db = state(tmp_path)
    rotations = KeyRotations(db, refresh_s=0)
    issue = rotations.issue("s1", "aq-25", KEY, NOW)
    assert len(issue.new_key) == 16 and issue.new_key.isalnum()
    assert issue.new_key.decode() not in repr(issue)
    pending = rotations.overlay("s1", "aq-25", StationSecret(sm4_key=KEY))
    assert pending.sm4_key == KEY and pending.next_sm4_key == issue.new_key
    assert pending.keys == (KEY, issue.new_key) and issue.new_key.hex() not in repr(pending)
    # the command: SKCreateTime and NewSK (appendix C's layout), its CP encrypted with KEY
    data = hj212.data_packet("MN25", "2051", HOUR0, {"pm25": 30.0}, edition="2025")
    frame = hj212.key_update(data, issue.qn, issue.sk_created, issue.new_key, KEY)
    assert b"NewSK" not in frame and b"{0x" in frame
    command = hj212.parse_frame(frame, lambda mn: KEY)
    assert (command.cn, command.qn, command.flag) == ("1014", issue.qn, 9)
    assert hj212.new_key_of(command) == (issue.qn, issue.new_key)
    # sent once, not again before resend_s, given up after max_sends
    assert rotations.due("s1", "aq-25", NOW, KEY, 120, 2) == issue
    assert rotations.due("s1", "aq-25", NOW + 60 * NS_S, KEY, 120, 2) is None
    assert rotations.due("s1", "aq-25", NOW + 121 * NS_S, KEY, 120, 2) is not None
    assert rotations.finish("s1", "aq-25", "20000101000000000", True, NOW) is False  # no such QN
    assert rotations.finish("s1", "aq-25", issue.qn, True, NOW + 122 * NS_S, "ExeRtn=1")
    now = rotations.overlay("s1", "aq-25", StationSecret(sm4_key=KEY))
    assert now.keys == (issue.new_key,)  # the old key is no longer taken
    # a packet under the new key decrypts; one under the old is refused
    assert hj212.parse_frame(hj212.build(data, issue.new_key), lambda mn: now.keys).cp == data.cp
    with pytest.raises(PayloadError) as refused:
        hj212.parse_frame(hj212.build(data, KEY), lambda mn: now.keys)
    assert refused.value.reason == "decrypt_failed"
    # a key changed in the secrets file again wins over the rotated one
    other = bytes(range(16))
    assert rotations.overlay("s1", "aq-25", StationSecret(sm4_key=other)).keys == (other,)
    (row,) = rotations.state_of("s1", "aq-25")
    assert row["state"] == "active" and row["sends"] == 2 and "sm4" not in str(row).lower()


def test_while_a_new_key_waits_both_keys_decrypt() -> None:
    data = hj212.data_packet("MN25", "2051", HOUR0, {"pm25": 30.0}, edition="2025")
    new = b"abcdefghijklmnop"
    assert hj212.parse_frame(hj212.build(data, new), lambda mn: (KEY, new)).cp == data.cp
    assert hj212.parse_frame(hj212.build(data, KEY), lambda mn: (KEY, new)).cp == data.cp


def test_an_unanswered_key_is_given_up_and_a_station_without_a_key_gets_none(
    tmp_path: Path,
) -> None:
    rotations = KeyRotations(state(tmp_path), refresh_s=0)
    with pytest.raises(ConfigError, match="no SM4 key"):
        rotations.issue("s1", "aq-17", None, NOW)
    issue = rotations.issue("s1", "aq-25", KEY, NOW)
    assert rotations.due("s1", "aq-25", NOW, KEY, 1, 1) is not None
    assert rotations.due("s1", "aq-25", NOW + 2 * NS_S, KEY, 1, 1) is None  # sent once: failed
    (row,) = rotations.state_of("s1", "aq-25")
    assert (row["qn"], row["state"]) == (issue.qn, "failed") and "unanswered" in row["note"]
    assert rotations.overlay("s1", "aq-25", StationSecret(sm4_key=KEY)).keys == (KEY,)


def test_the_service_decodes_with_the_issued_key_from_the_state_store(tmp_path: Path) -> None:
    db = state(tmp_path)
    (tmp_path / "s.toml").write_text(
        f'[[station]]\nsite = "s1"\nid = "aq-25"\npw = "123456"\nsm4_key = "{KEY.hex()}"\n'
    )
    doc = {"secrets": "s.toml", "site": [{"id": "s1", "name": "站"}], "station": [
        {"id": "aq-25", "site": "s1", "mn": "MN25", "encrypted": True}]}  # fmt: skip
    save(db, parse_registry(doc, str(tmp_path / "r.toml")), "t", NOW)
    issue = KeyRotations(db).issue("s1", "aq-25", KEY, NOW)
    KeyRotations(db).finish("s1", "aq-25", issue.qn, True, NOW)
    data = hj212.data_packet("MN25", "2051", HOUR0, {"pm25": 30.0}, edition="2025")
    decoded = decode(TOPIC, hj212.build(data, issue.new_key), RegistryContext(db), now_ns=NOW)
    assert decoded.points[0].fields["pm25"] == 30.0
    with pytest.raises(PayloadError, match="wrong key"):
        decode(TOPIC, hj212.build(data, KEY), RegistryContext(db), now_ns=NOW)


# ---------------------------------------------------------------- 2061 / 2031 vs hazwatch's own


def hourly(values: dict[str, float], cn: str = "2061", ts: int = HOUR0) -> bytes:
    return hj212.build(hj212.data_packet("MN25", cn, ts, values, edition="2025"))


def test_a_station_hour_far_from_hazwatchs_own_raises_a_data_quality_alert(
    tmp_path: Path,
) -> None:
    db = state(tmp_path)
    sink = ListSink()
    part = link_part(db, sink)
    (processor,) = part.processors()
    # the station's own hour arrives before hazwatch has closed that hour: it waits
    processor.process([decode(TOPIC, hourly({"pm25": 60.0, "no2": 40.5, "co": 1.25}),
                              NoRegistry(), now_ns=NOW)], NOW)  # fmt: skip
    processor.tick(NOW)
    assert sink.raised == []
    AirStore(db).close_hour("s1", "aq-25", HOUR0, {"pm25": (50.0, 60), "no2": (40.0, 60),
                                                   "co": (1.0, 60)})  # fmt: skip
    processor.tick(NOW + 5 * NS_S)
    # PM2.5 60 vs 50: 10 over max(10 % of 50 = 5, 1 µg/m³); NO2 40.5 vs 40 within max(4, 1);
    # CO 1.25 vs 1.0: 0.25 over max(0.1, 0.1 mg/m³ HJ 633's step)
    assert sorted(s.subject for s in sink.raised) == ["aq-25/co", "aq-25/pm25"]
    (pm,) = [s for s in sink.raised if s.subject == "aq-25/pm25"]
    assert pm.rule == "station_mean_mismatch" and pm.site == "s1"
    assert (pm.details["station_value"], pm.details["hazwatch_value"]) == (60.0, 50.0)
    assert pm.details["tolerance"] == 5.0 and pm.details["interval"] == "hour"
    assert "2026-11-24 08:00" in pm.message and "60" in pm.message and "50" in pm.message
    processor.tick(NOW + 10 * NS_S)
    assert len(sink.raised) == 2  # compared once
    states = {(m["pollutant"], m["state"]) for m in part.store.means("s1", "aq-25")}
    assert states == {("pm25", "mismatch"), ("no2", "matched"), ("co", "mismatch")}


def test_the_tolerance_is_the_analysers_resolution_when_that_is_larger(tmp_path: Path) -> None:
    db = state(tmp_path)
    save(db, parse_registry({"site": [{"id": "s1", "name": "站"}], "station": [
        {"id": "aq-25", "site": "s1", "mn": "MN25", "open": True, "instruments": [
            {"pollutant": "so2", "resolution": 3.0}]}]}), "t", NOW)  # fmt: skip
    sink = ListSink()
    part = link_part(db, sink, mean_tolerance_pct=10.0)
    (processor,) = part.processors()
    AirStore(db).close_hour("s1", "aq-25", HOUR0, {"so2": (10.0, 60)})
    processor.process([decode(TOPIC, hourly({"so2": 12.5}), NoRegistry(), now_ns=NOW)], NOW)
    processor.tick(NOW)
    assert sink.raised == []  # 2.5 within max(1.0, 3.0)


def test_a_station_day_is_compared_once_hazwatchs_day_is_complete(tmp_path: Path) -> None:
    db = state(tmp_path)
    sink = ListSink()
    part = link_part(db, sink)
    (processor,) = part.processors()
    day_ns = HOUR0 - 8 * NS_H  # 2026-11-24 00:00 China time
    air = AirStore(db)
    air.save_day("s1", "aq-25", day_ns, False, 80, 0, {"pm25": 40.0})
    processor.process([decode(TOPIC, hourly({"pm25": 52.0, "o3": 90.0}, "2031", day_ns),
                              NoRegistry(), now_ns=NOW)], NOW)  # fmt: skip
    processor.tick(NOW)
    assert sink.raised == []  # the day is not over for hazwatch yet
    air.save_day("s1", "aq-25", day_ns, True, 80, 0, {"pm25": 40.0, "o3_8h": 120.0})
    processor.tick(NOW + NS_S)
    (alert,) = sink.raised
    assert alert.subject == "aq-25/pm25" and alert.details["interval"] == "day"
    assert (alert.details["station_value"], alert.details["hazwatch_value"]) == (52.0, 40.0)
    assert "2026-11-24" in alert.message  # (O3's day is its 8-h maximum: not compared)


def test_a_station_mean_hazwatch_never_has_is_given_up(tmp_path: Path) -> None:
    db = state(tmp_path)
    sink = ListSink()
    part = link_part(db, sink, mean_wait_h=1.0)
    (processor,) = part.processors()
    processor.process([decode(TOPIC, hourly({"pm25": 60.0}), NoRegistry(), now_ns=NOW)], NOW)
    processor.tick(NOW + 2 * NS_H)
    assert sink.raised == [] and part.store.means("s1", "aq-25")[0]["state"] == "unmatched"


# ---------------------------------------------------------------- no registry


def test_without_a_registry_hj212_data_is_refused_unless_accept_unregistered() -> None:
    raw = hourly({"pm25": 30.0}, "2051")
    with pytest.raises(PayloadError) as refused:
        decode(TOPIC, raw, RegistryContext(None, Registry()), now_ns=NOW)
    assert refused.value.reason == "unknown_mn" and "no registry entry" in str(refused.value)
    taken = decode(TOPIC, raw, RegistryContext(None, Registry(), accept_unregistered=True),
                   now_ns=NOW)  # fmt: skip
    assert taken.points[0].fields["pm25"] == 30.0


def test_accept_unregistered_is_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link_part(state(tmp_path), ListSink())
    assert "accept_unregistered" not in caplog.text
    link_part(state(tmp_path), ListSink(), accept_unregistered=True)
    (line,) = [r for r in caplog.records if "accept_unregistered" in r.getMessage()]
    assert line.levelname == "WARNING" and "\n" not in line.getMessage()
