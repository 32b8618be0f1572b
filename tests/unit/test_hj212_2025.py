"""HJ 212-2025 beside 2017: the 2025 text's own examples (A.1 CRC, A.2 SM4), editions, answers,
station access (PW, open, SM4), units, unknown factors and commands kept; GB/T 32907's vector."""

from __future__ import annotations

import pytest

from hazwatch.base.errors import PayloadError
from hazwatch.devices import hj212
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.registry import RegistryContext, parse_registry
from hazwatch.devices.station_secrets import hash_pw
from hazwatch.streams.hj212.rules import AUTH_REFUSED, RefusedPeers
from hazwatch.streams.hj212.settings import LinkSettings

# HJ 212-2025 appendix A.1: the CRC example (an empty CP), CRC 2200 of the 87-byte segment.
A1 = (
    b"##0087QN=20240601085857223;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=9;"
    b"CP=&&&&2200\r\n"
)
# Appendix A.2: key 16 x 0x30; example 1 in plaintext, example 2 the same SM4-encrypted, with
# the length field as printed there (the plaintext's 295) and the plaintext's CRC.
A2_KEY = bytes([0x30] * 16)
A2_HEAD = b"QN=20240520210700000;ST=31;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=9;"
A2_CP = (
    b"DataTime=20240520210600;a01011-Min=1.35,a01011-Avg=1.35,a01011-Max=1.35,a01011-Flag=N;"
    b"a01012-Min=9.3,a01012-Avg=9.3,a01012-Max=9.3,a01012-Flag=N;a01014-Min=3.20,"
    b"a01014-Avg=3.211,a01014-Max=3.212,a01014-Flag=N"
)
A2_PLAIN = b"##0295" + A2_HEAD + b"CP=&&" + A2_CP + b"&&2200\r\n"
A2_CIPHER_HEX = (
    "E43E159ACFAB242CB53155FB8B9281A1A242577ABFAED881BE88B72D69FC55ED1A80119FAAC8B3CD33D285CC"
    "76F57F2CA7F88B9573C6647E0F07E24609BD6B63EB20C5B9784F28E71D2F4994FF61D9E1C2B3075592B4D1E0"
    "9C4D8BB27BE97B559E3DA6643781A6F477769DEEB009B10DFFF3426922725D607DC4480F0CAC5F70DB2587B1"
    "24BCB281592721D6E4BC180A97E5E111499CBE822E31C8D7761553543AA24207C290997BBDE64F9266BC5F52"
    "9A172E381C1D898CA1A0D771A914A7B2D7467C70B94F1D4A7B0350A48DBF8B41"
)
A2_BLOCK = b"{" + b",".join(b"0x%02X" % b for b in bytes.fromhex(A2_CIPHER_HEX)) + b"}"
A2_ENCRYPTED = b"##0295" + A2_HEAD + b"CP=&&" + A2_BLOCK + b"&&2200\r\n"
NOW_NS = 1_795_600_000 * 10**9
TS = 1_795_478_400 * 10**9  # 2026-11-24 08:00 China time
PW_HASH = hash_pw("123456", iterations=1000)


def test_a1_crc_example_is_a_2025_packet_that_wants_an_answer() -> None:
    packet = hj212.parse_frame(A1)
    assert hj212.crc16(A1[6:-6]) == 0x2200 and len(A1[6:-6]) == 87
    assert (packet.edition, packet.wants_ack, packet.is_split) == ("2025", True, False)
    answer = hj212.response_for(packet)
    assert answer is not None and answer.cn == "9011" and answer.flag == 8  # 2025, no ack


def test_sm4_is_gbt_32907s_example() -> None:
    # GB/T 32907-2016 appendix A, example 1: key = plaintext = 0123456789abcdeffedcba9876543210
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert hj212._sm4(key, False, key).hex() == "681edf34d206965e86b3e94f536e4246"
    assert hj212._sm4(key, True, bytes.fromhex("681edf34d206965e86b3e94f536e4246")) == key


def test_a2_encrypted_example_decrypts_to_its_plaintext_example() -> None:
    plain = hj212.parse_frame(A2_PLAIN)
    assert hj212.crc16(A2_HEAD + b"CP=&&" + A2_CP + b"&&") == 0x2200
    (packet,) = hj212.parse_packets(A2_ENCRYPTED, lambda mn: A2_KEY)  # framed by its `}&&CRC`
    assert packet.encrypted and packet.cp == plain.cp and packet.edition == "2025"
    # what hazwatch writes is the standard's text, the length field counting the bytes sent
    built = hj212.build(plain, A2_KEY)
    assert built[6:] == A2_ENCRYPTED[6:] and int(built[2:6]) == len(built) - 12
    assert hj212.parse_frame(built, lambda mn: A2_KEY) == packet


def test_a2_tail_under_16_bytes_stays_plaintext() -> None:
    cp = A2_CP[:147].decode()  # A.2 example 3/4: 9 blocks and a 3-byte tail
    text = hj212.sm4_encrypt_cp(cp, A2_KEY)
    assert text.endswith("}" + cp[144:]) and text.count("0x") == 144
    assert hj212.sm4_decrypt_cp(text.encode(), A2_KEY, "MN") == cp


@pytest.mark.parametrize(("key", "why"), [(None, "no SM4 key"), (bytes(16), "wrong key")])
def test_a_cp_that_does_not_decrypt_is_refused_saying_so(key: bytes | None, why: str) -> None:
    with pytest.raises(PayloadError) as info:
        hj212.parse_frame(A2_ENCRYPTED, lambda mn: key)
    assert info.value.reason == "decrypt_failed" and why in str(info.value)


def test_lower_case_crc_is_accepted() -> None:
    raw = A1.replace(b"2200", b"2200".lower())  # digits only: use a packet with letters
    hand = hj212.build(hj212.data_packet("MN7", "2011", TS, {"pm25": 35.5}))
    lower = hand[:-6] + hand[-6:-2].lower() + b"\r\n"
    assert hj212.parse_frame(lower) == hj212.parse_frame(hand) and hj212.parse_frame(raw)


def test_a_frame_without_crlf_is_named_so_not_truncated() -> None:
    with pytest.raises(PayloadError) as info:
        hj212.parse_packets(A1[:-2])
    assert "without CR LF" in str(info.value) and "truncated" not in str(info.value)
    with pytest.raises(PayloadError, match="truncated"):
        hj212.parse_packets(A1[:40])


def test_a_length_counted_in_utf8_bytes_carries_chinese() -> None:
    packet = hj212.Packet(
        "20261124080000000", "91", "3020", "123456", "MN7", 9, (("Info", "厂界东侧"),)
    )
    raw = hj212.build(packet)
    assert int(raw[2:6]) == len(raw) - 12 and hj212.parse_frame(raw) == packet


def test_unknown_factor_codes_and_commands_are_kept() -> None:
    segment = (
        "QN=20261124080000000;ST=22;CN=2011;PW=123456;MN=MN7;Flag=9;CP=&&DataTime=20261124080000;"
        "a34004-Rtd=35,a34004-Flag=N;a34001-Rtd=120.5,a34001-Flag=N;LA-Rtd=56.2;a21001-Rtd=0.02;"
        "a21002-Rtd=40;a21003-Rtd=12;a34004-SampleTime=60&&"
    )
    decoded = decode(
        "hw/s/air/a1/hj212", hj212.frame(segment.encode()), NoRegistry(), now_ns=NOW_NS
    )
    air = decoded.points[0]
    assert air.fields["pm25"] == 35.0 and air.fields["a34001"] == 120.5
    assert (air.fields["LA"], air.fields["a21001"], air.fields["a21003"]) == (56.2, 0.02, 12.0)
    boot = hj212.Packet(
        "20261124080000000", "22", "2081", "123456", "MN7", 9, (("RestartTime", "20261124075900"),)
    )
    (link,) = decode("hw/s/air/a1/hj212", hj212.build(boot), NoRegistry(), now_ns=NOW_NS).points
    assert link.tags["cn"] == "2081" and link.fields["cp"] == "RestartTime=20261124075900"
    assert hj212.response_for(boot) is not None and hj212.response_for(boot).cn == "9014"  # type: ignore[union-attr]


def test_each_packet_is_answered_by_its_own_edition() -> None:
    old = hj212.data_packet("MN7", "2051", TS, {"pm25": 35.0})
    new = hj212.data_packet("MN7", "2051", TS, {"pm25": 35.0}, edition="2025")
    assert (old.flag, new.flag) == (5, 9)
    assert hj212.response_for(old).flag == 4 and hj212.response_for(new).flag == 8  # type: ignore[union-attr]
    beat = hj212.Packet(new.qn, "22", "9015", "123456", "MN7", 9)
    answer = hj212.response_for(beat)
    assert answer is not None and (answer.cn, answer.flag, answer.qn) == ("9013", 8, beat.qn)
    asks = hj212.Packet(new.qn, "22", "1013", "123456", "MN7", 9, (("PolId", "a34004"),))
    told = hj212.set_time(asks, TS, TS)
    assert told.cn == "1012" and told.cp == (("PolId", "a34004"), ("SystemTime", "20261124080000"))
    assert told.edition == "2025"


def test_a_flag_naming_no_edition_is_refused() -> None:
    segment = "QN=20261124080000000;ST=22;CN=2011;PW=1;MN=MN7;Flag=17;CP=&&&&"
    with pytest.raises(PayloadError, match="version bits"):
        hj212.parse_frame(hj212.frame(segment.encode()))


def registry(**station: object) -> RegistryContext:
    doc = {
        "site": [{"id": "s1"}],
        "station": [
            {"id": "aq-1", "site": "s1", "mn": "MN1", **station},
            {"id": "aq-2", "site": "s1"},
        ],
    }
    return RegistryContext(None, parse_registry(doc, "test"))


def packet_raw(pw: str = "123456", key: bytes | None = None, **values: float) -> bytes:
    return hj212.build(
        hj212.data_packet("MN1", "2051", TS, values or {"pm25": 35.0}, pw=pw, edition="2025"), key
    )


@pytest.mark.parametrize(
    ("station", "raw", "reason"),
    [
        ({"pw_hash": PW_HASH}, packet_raw(pw="000000"), "auth_refused"),  # PW=000000, PM2.5 999
        ({}, packet_raw(), "auth_refused"),  # no PW in the registry, not open
        ({"pw_hash": PW_HASH, "encrypted": True}, packet_raw(), "decrypt_failed"),
    ],
)
def test_a_station_that_does_not_authenticate_is_not_stored(
    station: dict[str, object], raw: bytes, reason: str
) -> None:
    with pytest.raises(PayloadError) as info:
        decode("hw/s1/air/aq-1/hj212", raw, registry(**station), now_ns=NOW_NS)
    assert info.value.reason == reason


def test_an_unregistered_station_is_refused_and_an_open_one_taken() -> None:
    with pytest.raises(PayloadError) as info:
        decode("hw/s1/air/aq-9/hj212", packet_raw(), registry(open=True), now_ns=NOW_NS)
    assert info.value.reason == "unknown_mn"
    assert decode("hw/s1/air/aq-1/hj212", packet_raw(), registry(open=True), now_ns=NOW_NS).points
    ok = decode("hw/s1/air/aq-1/hj212", packet_raw(), registry(pw_hash=PW_HASH), now_ns=NOW_NS)
    assert ok.points[0].fields["pm25"] == 35.0


def test_an_encrypted_station_decrypts_with_its_key_from_the_secrets() -> None:
    ctx = registry(pw_hash=PW_HASH, encrypted=True)
    ctx.current.secrets[("s1", "aq-1")] = type(ctx.current.secrets[("s1", "aq-1")])(PW_HASH, A2_KEY)
    decoded = decode("hw/s1/air/aq-1/hj212", packet_raw(key=A2_KEY), ctx, now_ns=NOW_NS)
    assert decoded.points[0].fields["pm25"] == 35.0
    assert decoded.points[1].fields["encrypted"] == 1.0


def test_registry_units_apply_on_the_way_in_and_a_wrong_magnitude_is_flagged() -> None:
    ctx = registry(open=True, units={"pm25": "ng/m3", "co": "ug/m3"})
    # 35,000 ng/m3 is 35 µg/m3; CO 800 µg/m3 is 0.8 mg/m3
    point = decode(
        "hw/s1/air/aq-1/hj212", packet_raw(pm25=35000.0, co=800.0), ctx, now_ns=NOW_NS
    ).points[0]
    assert (point.fields["pm25"], point.fields["co"]) == (35.0, 0.8)
    # a station registered µg/m3 that sends 1500 for PM2.5: kept, flagged
    flagged = decode(
        "hw/s1/air/aq-1/hj212", packet_raw(pm25=1500.0), registry(open=True), now_ns=NOW_NS
    )
    assert flagged.points[0].fields["unit_suspect"] == "pm25"


def test_secrets_are_never_in_the_registry_document() -> None:
    ctx = registry(pw_hash=PW_HASH)
    document = str(ctx.current.to_document())
    assert "pbkdf2" not in document and "pw" not in document.replace("'open'", "")
    assert "pbkdf2" not in repr(ctx.current.secrets)


def test_a_peer_that_keeps_being_refused_raises_an_alert() -> None:
    peers = RefusedPeers(LinkSettings(refused_alert_count=3, refused_window_s=60))
    s = 10**9
    assert peers.refused("10.0.0.9", "auth_refused", "MN1", 0) is None
    assert peers.refused("10.0.0.9", "auth_refused", "MN1", 70 * s) is None  # the first expired
    assert peers.refused("10.0.0.9", "unknown_mn", "MN2", 80 * s) is None
    alert = peers.refused("10.0.0.9", "auth_refused", "MN1", 90 * s)
    assert alert is not None and (alert.rule, alert.subject) == (AUTH_REFUSED, "10.0.0.9")
