"""The LLRP connector's own pieces: reader frames to hazwatch reads, its ROSpec, its outbox.

Frames are written by hand from the LLRP 1.0.1 binary encoding (tests/llrp_wire.py), decoded
by the connector's library, converted by the connector and decoded by hazwatch's decoder:
the path a real reader's report takes, without a reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from llrpkit.inventory import TagReport, build_rospec
from llrpkit.protocol import decode_message, messages

from hazwatch.base.errors import ConfigError
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.rfid import RfidRead
from hazwatch.edge.llrp import (
    ROSPEC_ID,
    LlrpProgram,
    LlrpSetup,
    Outbox,
    ReadNotes,
    parse_reader_address,
    read_payloads,
)
from tests import llrp_wire as wire

EPC = bytes.fromhex("E28068940000500312AB34CD")
T_US = 1_796_400_000_123_456  # 2026-12-04T14:40:00.123456Z
TOPIC = "hw/p1/rfid/st-in/read"


def reads_of_frame(
    frame: bytes, received_us: int = T_US, notes: ReadNotes | None = None
) -> list[RfidRead]:
    """A frame as the connector takes it, decoded again by hazwatch: RfidRead records."""
    report = decode_message(frame)
    assert isinstance(report, messages.RO_ACCESS_REPORT)
    out = []
    for trd in report.tag_report_datas:
        for payload in read_payloads(TagReport.from_param(trd), received_us, notes):
            record = decode(TOPIC, payload, NoRegistry(), now_ns=time.time_ns()).record
            assert isinstance(record, RfidRead)
            out.append(record)
    return out


def test_a_report_of_the_standard_parameters_is_one_read() -> None:
    frame = wire.ro_access_report(
        wire.tag_report_data(EPC, antenna=2, peak_rssi=-57, first_us=T_US, last_us=T_US, seen=1)
    )
    assert wire.header(frame) == wire.Header(1, 61, len(frame), 0)
    (read,) = reads_of_frame(frame)
    assert (read.epc, read.ts, read.rssi, read.antenna) == (EPC.hex().upper(), T_US * 1000, -57, 2)


def test_impinj_peak_rssi_gives_the_sub_dbm_value() -> None:
    trd = wire.tag_report_data(
        EPC, antenna=1, peak_rssi=-52, first_us=T_US, impinj_rssi_centi=-5206
    )
    (read,) = reads_of_frame(wire.ro_access_report(trd))
    assert read.rssi == -52.06


def test_several_tags_of_one_report_and_a_longer_epc() -> None:
    epc128 = bytes.fromhex("3034257BF400B7800004CB2F12345678")
    frame = wire.ro_access_report(
        wire.tag_report_data(EPC, antenna=1, first_us=T_US),
        wire.tag_report_data(epc128, antenna=3, peak_rssi=-70, first_us=T_US + 5),
    )
    reads = reads_of_frame(frame)
    assert [(r.epc, r.antenna, r.ts) for r in reads] == [
        (EPC.hex().upper(), 1, T_US * 1000),
        (epc128.hex().upper(), 3, (T_US + 5) * 1000),
    ]
    assert reads[0].rssi is None


def test_an_aggregated_report_gives_its_first_and_last_sighting() -> None:
    notes = ReadNotes()
    trd = wire.tag_report_data(
        EPC, antenna=1, peak_rssi=-50, first_us=T_US, last_us=T_US + 2_500_000, seen=40
    )
    reads = reads_of_frame(wire.ro_access_report(trd), notes=notes)
    assert [r.ts for r in reads] == [T_US * 1000, (T_US + 2_500_000) * 1000]
    assert notes.aggregated == 1


def test_a_reader_without_a_utc_clock_gets_the_receipt_time() -> None:
    notes = ReadNotes()
    trd = wire.tag_report_data(EPC, antenna=1, first_uptime_us=12_345_678)
    (read,) = reads_of_frame(wire.ro_access_report(trd), received_us=T_US + 7, notes=notes)
    assert read.ts == (T_US + 7) * 1000
    assert notes.no_utc_time == 1


def test_values_outside_hazwatchs_bounds_are_left_out_not_the_read() -> None:
    notes = ReadNotes()
    trd = wire.tag_report_data(EPC, antenna=70, peak_rssi=55, first_us=T_US)
    (read,) = reads_of_frame(wire.ro_access_report(trd), notes=notes)
    assert (read.rssi, read.antenna) == (None, None)
    assert (notes.rssi_dropped, notes.antenna_dropped) == (1, 1)


def test_a_reader_clock_hazwatch_refuses_is_still_sent_for_its_dead_letter() -> None:
    # a reader that lost its clock reports 1970: the read goes, hazwatch says why it refuses it
    trd = wire.tag_report_data(EPC, antenna=1, first_us=5_000_000)
    report = decode_message(wire.ro_access_report(trd))
    assert isinstance(report, messages.RO_ACCESS_REPORT)
    (payload,) = read_payloads(TagReport.from_param(report.tag_report_datas[0]), T_US)
    assert orjson.loads(payload)["ts"] == "1970-01-01T00:00:05.000000Z"
    with pytest.raises(Exception, match="before 2000"):
        decode(TOPIC, payload, NoRegistry(), now_ns=time.time_ns())


def test_the_rospec_on_the_wire_asks_for_what_the_reads_need() -> None:
    """The ADD_ROSPEC the connector sends, decoded by hand: its antennas, one report per tag,
    and the content a read is made of (antenna, peak RSSI, first and last seen)."""
    spec = build_rospec(ro_spec_id=ROSPEC_ID, antennas=[1, 2], report_every_n=1)
    frame = messages.ADD_ROSPEC(ro_spec=spec).to_bytes(message_id=7)
    head = wire.header(frame)
    assert (head.version, head.msg_type, head.length, head.msg_id) == (1, 20, len(frame), 7)
    asked = wire.rospec(frame)
    assert asked["rospec_id"] == ROSPEC_ID
    assert asked["antennas"] == [1, 2]
    assert (asked["trigger"], asked["n"]) == (2, 1)  # Upon_N_Tags_Or_End_Of_ROSpec, N = 1
    assert {"antenna_id", "peak_rssi", "first_seen_timestamp", "last_seen_timestamp"} <= set(
        asked["content"]
    )


def test_the_outbox_refuses_new_reads_when_full_and_keeps_the_old(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_reads=3)
    assert box.add([(TOPIC, b"1"), (TOPIC, b"2")]) == 2
    assert box.add([(TOPIC, b"3"), (TOPIC, b"4"), (TOPIC, b"5")]) == 1
    assert (box.count, box.refused) == (3, 2)
    rows = box.after(0, 10)
    assert [p for _, _, p in rows] == [b"1", b"2", b"3"]
    box.remove([rows[0][0]])
    assert [p for _, _, p in box.after(0, 10)] == [b"2", b"3"]
    box.close()


def test_the_outbox_survives_a_restart_and_never_reuses_a_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.add([(TOPIC, b"a"), (TOPIC, b"b")])
    last = box.after(0, 10)[-1][0]
    box.remove([s for s, _, _ in box.after(0, 10)])
    assert box.count == 0
    box.add([(TOPIC, b"c")])
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    ((seq, topic, payload),) = again.after(0, 10)
    assert (topic, payload, again.count) == (TOPIC, b"c", 1)
    assert seq > last  # a reader of "after the last seq handed out" never misses it
    again.close()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("10.0.0.7", ("10.0.0.7", 5084)),
        ("reader-3.local:5085", ("reader-3.local", 5085)),
        ("[fe80::1]:15084", ("fe80::1", 15084)),
        ("fe80::1", ("fe80::1", 5084)),
    ],
)
def test_reader_addresses(text: str, want: tuple[str, int]) -> None:
    assert parse_reader_address(text) == want


@pytest.mark.parametrize("text", ["", "host:port", "host:0", ":5084"])
def test_bad_reader_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_reader_address(text)


def test_a_setup_the_reader_cannot_run_is_refused_before_connecting(tmp_path: Path) -> None:
    base = {
        "reader_host": "127.0.0.1",
        "site": "p1",
        "reader": "st-in",
        "mqtt_url": "mqtt://127.0.0.1:1",
        "outbox": tmp_path / "o.sqlite",
    }
    with pytest.raises(ConfigError, match="session"):
        LlrpProgram(LlrpSetup(**base, session=4))
    with pytest.raises(ConfigError, match="antenna"):
        LlrpProgram(LlrpSetup(**base, antennas=(0,)))
    with pytest.raises(ConfigError, match="MQTT URL"):
        LlrpProgram(LlrpSetup(**{**base, "mqtt_url": "http://x"}))
