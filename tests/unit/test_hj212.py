"""HJ 212-2017/2025 codec: the standards' examples, hand-built packets, corruption, splits, SM4,
editions, station access and units, points."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hazwatch.base.errors import PayloadError
from hazwatch.devices import hj212
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.topics import parse_topic

# HJ 212-2017 section 6.2 / appendix: the example packet of the standard (CN 1062, set RtdInterval).
STANDARD_EXAMPLE = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)
# Hand-built; length and CRC computed once with the appendix's bitwise loop and frozen here.
HAND_RTD = (
    b"##0191QN=20261124080000000;ST=22;CN=2011;PW=123456;MN=41900100000007;Flag=5;"
    b"CP=&&DataTime=20261124080000;a34004-Rtd=35.5,a34004-Flag=N;a21005-Rtd=0.8,a21005-Flag=N;"
    b"a01006-Rtd=101.32,a01006-Flag=N&&0500\r\n"
)
NOW_NS = 1_795_600_000 * 10**9  # 2026-11-25, after every packet here


class Registry(NoRegistry):
    def __init__(self, mn: str | None, zone_h: float = 8.0) -> None:
        self.mn, self.zone_h = mn, zone_h

    def station_mn(self, site: str, station: str) -> str | None:
        return self.mn

    def station_zone_h(self, site: str, station: str) -> float:
        return self.zone_h


def test_standard_example_crc_and_round_trip() -> None:
    packet = hj212.parse_frame(STANDARD_EXAMPLE)
    assert (packet.qn, packet.st, packet.cn, packet.pw) == (
        "20160801085857223",
        "32",
        "1062",
        "100000",
    )
    assert packet.mn == "010000A8900016F000169DC0"
    assert packet.flag == 5 and packet.wants_ack and not packet.is_split
    assert packet.cp == (("RtdInterval", "30"),)
    assert hj212.build(packet) == STANDARD_EXAMPLE
    assert hj212.crc16(STANDARD_EXAMPLE[6:-6]) == 0x1C80


def test_table_crc_equals_appendix_loop() -> None:
    for data in (b"", b"a", STANDARD_EXAMPLE, bytes(range(256)) * 3):
        assert hj212.crc16(data) == hj212.crc16_bitwise(data)


def test_hand_built_rtd_round_trips_and_becomes_points() -> None:
    raw = HAND_RTD
    packet = hj212.parse_frame(raw)
    assert hj212.build(packet) == raw
    decoded = decode("hw/jy-0012/air/aq-07/hj212", raw, Registry("41900100000007"), now_ns=NOW_NS)
    point, link = decoded.points
    assert link.measurement == "hj212_packet" and link.fields["edition"] == "2017"
    assert point.measurement == "air"
    assert point.tags == {"site": "jy-0012", "station": "aq-07", "interval": "rtd"}
    assert point.fields == {
        "pm25": 35.5,
        "pm25_flag": "N",
        "co": 0.8,
        "co_flag": "N",
        "pressure": 1013.2,  # kPa → hPa
        "pressure_flag": "N",
    }
    # DataTime 08:00 in UTC+8 is 00:00 UTC
    assert point.ts_ns == 1_795_478_400 * 10**9


@pytest.mark.parametrize(
    ("cn", "interval"), [("2051", "minute"), ("2061", "hour"), ("2031", "day")]
)
def test_interval_data_has_min_max_and_interval_tag(cn: str, interval: str) -> None:
    ts = 1_795_478_400 * 10**9
    packet = hj212.data_packet(
        "MN7", cn, ts, {"pm25": 40.0, "o3": 90.0}, spread={"pm25": (30.0, 52.5)}, flags={"o3": "M"}
    )
    raw = hj212.build(packet)
    assert hj212.parse_frame(raw) == packet
    point = decode("hw/s/air/a1/hj212", raw, NoRegistry(), now_ns=NOW_NS).points[0]
    assert point.tags["interval"] == interval
    assert point.fields["pm25"] == 40.0
    assert point.fields["pm25_min"] == 30.0 and point.fields["pm25_max"] == 52.5
    assert point.fields["o3_flag"] == "M"


def test_station_zone_from_registry() -> None:
    raw = HAND_RTD
    point = decode("hw/s/air/a1/hj212", raw, Registry(None, zone_h=0), now_ns=NOW_NS).points[0]
    assert point.ts_ns == 1_795_507_200 * 10**9  # 08:00 UTC


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (STANDARD_EXAMPLE.replace(b"##0101", b"##0102"), "bad_length"),
        (STANDARD_EXAMPLE.replace(b"##0101", b"##01x1"), "bad_length"),
        (STANDARD_EXAMPLE.replace(b"1C80", b"1C81"), "bad_crc"),
        (STANDARD_EXAMPLE.replace(b"1C80", b"1CZ0"), "bad_crc"),
        (STANDARD_EXAMPLE[:-2], "bad_length"),
        (STANDARD_EXAMPLE[:50], "bad_length"),
        (b"$$" + STANDARD_EXAMPLE[2:], "bad_header"),
    ],
)
def test_framing_defects(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        hj212.parse_packets(raw)
    assert info.value.reason == reason


def frame_of(segment: str) -> bytes:
    return hj212.frame(segment.encode())


HEAD = "QN=20261124080000000;ST=22;CN=2011;PW=123456;MN=MN7;Flag=5;"


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        (HEAD + "CP=&&DataTime=20261124080000;a34004-Rtd=abc&&", "bad_field"),
        (HEAD + "CP=&&DataTime=20261124080000;a34004-Rtd=-5&&", "out_of_range"),
        (HEAD + "CP=&&DataTime=20261124080000;a34004-Rtd=5,a34004-Flag=X&&", "bad_field"),
        (HEAD + "CP=&&DataTime=20261124080000;a34004-Avg=5&&", "bad_field"),
        (HEAD + "CP=&&DataTime=20261124080000;a34004-F-o=5&&", "bad_field"),
        (HEAD + "CP=&&DataTime=2026112408;a34004-Rtd=5&&", "bad_field"),
        (HEAD + "CP=&&DataTime=20261324080000;a34004-Rtd=5&&", "bad_field"),
        (HEAD + "CP=&&a34004-Rtd=5&&", "bad_field"),
        (HEAD + "CP=&&DataTime=20261124080000;a34004-Rtd5&&", "bad_field"),
        (HEAD.replace("QN=20261124080000000", "QN=123") + "CP=&&&&", "bad_field"),
        (HEAD.replace("Flag=5", "Flag=7") + "CP=&&&&", "bad_field"),  # split bit, no PNUM
        (HEAD.replace(";MN=MN7", "") + "CP=&&&&", "bad_field"),
        (HEAD + "XX=1;CP=&&&&", "bad_field"),
        (HEAD + "CP=&&DataTime=20261124080000", "bad_field"),
    ],
)
def test_field_defects(segment: str, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode("hw/s/air/a1/hj212", frame_of(segment), NoRegistry(), now_ns=NOW_NS)
    assert info.value.reason == reason


def test_wrong_mn_for_the_topic_station_is_refused() -> None:
    raw = HAND_RTD
    with pytest.raises(PayloadError) as info:
        decode("hw/jy-0012/air/aq-07/hj212", raw, Registry("41900100000008"), now_ns=NOW_NS)
    assert info.value.reason == "wrong_mn"


def test_responses() -> None:
    data = hj212.parse_frame(HAND_RTD)
    ack = hj212.response_for(data)
    assert ack is not None
    assert (ack.cn, ack.qn, ack.st, ack.flag, ack.cp) == ("9014", data.qn, "91", 4, ())
    assert hj212.parse_frame(hj212.build(ack)) == ack
    request = hj212.parse_frame(STANDARD_EXAMPLE)
    answer = hj212.response_for(request)
    assert answer is not None and answer.cn == "9011" and answer.cp == (("QnRtn", "1"),)
    assert hj212.execute_response(request).cp == (("ExeRtn", "1"),)
    no_ack = hj212.Packet(data.qn, "22", "2011", "1", "MN", 4, data.cp)
    assert hj212.response_for(no_ack) is None
    # Responses are accepted on the topic and make no points.
    assert decode("hw/s/air/a1/hj212", hj212.build(ack), NoRegistry(), now_ns=NOW_NS).points == []


def big_packet() -> hj212.Packet:
    values = {"pm25": 35.0, "pm10": 70.0, "so2": 8.0, "no2": 30.0, "co": 0.7, "o3": 120.0}
    values |= {"temp": 21.5, "rh": 55.0, "pressure": 1012.0, "wind_speed": 2.1, "wind_dir": 180.0}
    return hj212.data_packet("41900100000007", "2051", 1_795_478_400 * 10**9, values)


def test_split_packets_reassemble_in_any_order() -> None:
    packet = big_packet()
    parts = hj212.split(packet, 200)
    assert len(parts) > 2
    assert all(len(hj212.data_segment(p)) <= 200 for p in parts)
    frames = [hj212.build(p) for p in parts]
    assert [hj212.parse_frame(f).pno for f in frames] == list(range(1, len(parts) + 1))
    joined = hj212.parse_packets(b"".join(reversed(frames)))
    assert joined == [packet]
    whole = decode("hw/s/air/a1/hj212", hj212.build(packet), NoRegistry(), now_ns=NOW_NS)
    pieces = decode("hw/s/air/a1/hj212", b"".join(frames), NoRegistry(), now_ns=NOW_NS)
    assert pieces.points == whole.points


def test_split_with_a_missing_part_is_refused() -> None:
    frames = [hj212.build(p) for p in hj212.split(big_packet(), 200)]
    with pytest.raises(PayloadError) as info:
        hj212.parse_packets(b"".join(frames[:-1]))
    assert info.value.reason == "incomplete_split"


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_any_single_changed_byte_is_caught(data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from([HAND_RTD, STANDARD_EXAMPLE]))
    index = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]))
    corrupted = raw[:index] + bytes([new]) + raw[index + 1 :]
    # the CRC's hex digits in the other case are the same number (either case is accepted)
    assume(
        not (
            len(raw) - 6 <= index < len(raw) - 2
            and bytes([new]).upper() == raw[index : index + 1].upper()
        )
    )

    def accept(payload: bytes) -> object:
        if raw is STANDARD_EXAMPLE:  # a command (CN 1062): the codec, not the air topic kind
            return hj212.parse_packets(payload)
        registry = Registry("41900100000007")
        return decode("hw/jy-0012/air/aq-07/hj212", payload, registry, now_ns=NOW_NS)

    accept(raw)  # the intact packet passes
    with pytest.raises(PayloadError):
        accept(corrupted)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["pm25", "pm10", "so2", "no2", "o3", "rh"]),
        st.floats(0, 100).map(lambda v: round(v, 1)),
        min_size=1,
    ),
    st.sampled_from(["2011", "2051", "2061", "2031"]),
)
def test_built_packets_round_trip(values: dict[str, float], cn: str) -> None:
    packet = hj212.data_packet("MN1", cn, 1_795_478_400 * 10**9, values)
    raw = hj212.build(packet)
    assert hj212.parse_frame(raw) == packet
    data = hj212.station_data(packet, 8.0)
    got = {n: (f.rtd if cn == "2011" else f.avg) for n, f in data.factors.items()}
    assert got == values


def test_topic_kind_is_registered() -> None:
    from hazwatch.devices.families import FAMILIES

    assert "hj212" in FAMILIES["air"].kinds
    assert parse_topic("hw/s/air/a1/hj212").kind == "hj212"
