"""The HJ 212 TCP gateway over real TCP into a real Mosquitto: acks, dead letters, limits, splits.

Never wait blindly: effects are awaited on the socket or polled with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from hazwatch.devices import hj212
from hazwatch.devices.station_secrets import OPEN, StationAccess, StationSecret, hash_pw
from hazwatch.ingest.hj212_gateway import GatewayDeadLetter, GatewayLimits, Hj212Gateway
from tests.services import Mosquitto, free_port, port_open, terminate, wait_for

pytestmark = pytest.mark.integration
TS0 = (time.time_ns() // 60_000_000_000 - 120) * 60_000_000_000


def mqtt_client(broker: Mosquitto, name: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, identifier=f"{name}-{uuid.uuid4().hex[:6]}")


class Harness:
    def __init__(self, site: str, gateway: Hj212Gateway, received: list[aiomqtt.Message]) -> None:
        self.site = site
        self.gateway = gateway
        self.received = received
        self.dead: list[GatewayDeadLetter] = []

    async def until(self, check: Callable[[], object], what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    def payloads(self, station: str) -> list[bytes]:
        topic = f"hw/{self.site}/air/{station}/hj212"
        return [bytes(m.payload) for m in self.received if str(m.topic) == topic]  # type: ignore[arg-type]


@asynccontextmanager
async def harness(
    broker: Mosquitto,
    stations: dict[str, str],
    limits: GatewayLimits | None = None,
    access: dict[str, StationAccess] | None = None,
) -> AsyncIterator[Harness]:
    site = f"gw{uuid.uuid4().hex[:6]}"
    mapping = {mn: (site, station) for mn, station in stations.items()}
    received: list[aiomqtt.Message] = []
    async with mqtt_client(broker, "gw-pub") as pub, mqtt_client(broker, "gw-sub") as sub:
        await sub.subscribe(f"hw/{site}/air/+/hj212", qos=1)

        async def collect() -> None:
            async for message in sub.messages:
                received.append(message)

        async def publish(topic: str, payload: bytes) -> None:
            await pub.publish(topic, payload, qos=1)

        async def dead_letter(letter: GatewayDeadLetter) -> None:
            h.dead.append(letter)

        by_station = access or {}

        def access_of(site: str, station: str) -> StationAccess:
            return by_station.get(station, OPEN)

        gateway = Hj212Gateway(mapping.get, publish, dead_letter, limits, access=access_of)
        h = Harness(site, gateway, received)
        collector = asyncio.create_task(collect())
        try:
            async with gateway:
                await gateway.start("127.0.0.1", 0)
                yield h
        finally:
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 60))


def packet(mn: str, minute: int, pm25: float = 35.0, ack: bool = True) -> hj212.Packet:
    ts = TS0 + minute * 60_000_000_000
    return hj212.data_packet(mn, "2051", ts, {"pm25": pm25, "no2": 40.0}, want_ack=ack)


async def read_ack(reader: asyncio.StreamReader, timeout: float = 5) -> hj212.Packet:
    return hj212.parse_frame(await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout))


def test_good_packet_is_published_raw_then_acked(mosquitto: Mosquitto) -> None:
    async def main() -> None:
        async with harness(mosquitto, {"MN1": "aq-1"}) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            sent = packet("MN1", 0)
            raw = hj212.build(sent)
            writer.write(raw)
            ack = await read_ack(reader)
            assert (ack.cn, ack.qn, ack.st) == ("9014", sent.qn, "91")
            # the ack comes after the broker has it: the subscriber sees it shortly
            await h.until(lambda: h.payloads("aq-1"), "packet on MQTT")
            assert h.payloads("aq-1") == [raw]
            # no ack requested: published, nothing answered
            writer.write(hj212.build(packet("MN1", 1, ack=False)))
            writer.write(hj212.build(packet("MN1", 2)))
            ack2 = await read_ack(reader)
            assert ack2.qn == packet("MN1", 2).qn
            await h.until(lambda: len(h.payloads("aq-1")) == 3, "three packets")
            writer.close()

    run(main)


def test_bad_packets_go_to_dead_letters_and_good_ones_still_pass(mosquitto: Mosquitto) -> None:
    async def main() -> None:
        async with harness(mosquitto, {"MN1": "aq-1"}) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            good = hj212.build(packet("MN1", 3))
            bad_crc = good[:-6] + b"0000\r\n"
            unknown = hj212.build(packet("MN404", 4))
            truncated = hj212.build(packet("MN1", 5))[:80]
            writer.write(b"garbage" + bad_crc + unknown + truncated + good)
            refused = await read_ack(reader)  # the unknown MN is answered QnRtn=4 (MN 错误)
            assert refused.cn == "9011" and refused.cp == (("QnRtn", "4"),)
            ack = await read_ack(reader)
            assert ack.qn == packet("MN1", 3).qn
            await h.until(lambda: len(h.dead) == 4, "four dead letters")
            assert [d.reason for d in h.dead] == [
                "bad_header",
                "bad_crc",
                "unknown_mn",
                "bad_length",
            ]
            assert h.dead[1].raw == bad_crc and h.dead[2].raw == unknown
            assert h.dead[3].raw == truncated
            await h.until(lambda: h.payloads("aq-1"), "good packet")
            assert h.payloads("aq-1") == [good]
            writer.close()

    run(main)


def test_split_packet_is_published_as_one_payload(mosquitto: Mosquitto) -> None:
    async def main() -> None:
        async with harness(mosquitto, {"MN1": "aq-1"}) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            whole = hj212.data_packet(
                "MN1",
                "2051",
                TS0,
                {"pm25": 35.0, "pm10": 60.0, "so2": 7.0, "no2": 33.0, "co": 0.6, "o3": 88.0},
            )
            parts = hj212.split(whole, 220)
            assert len(parts) >= 3
            for part in parts:
                writer.write(hj212.build(part))
                ack = await read_ack(reader)  # every part is answered
                assert ack.qn == whole.qn
            await h.until(lambda: h.payloads("aq-1"), "reassembled packet")
            (payload,) = h.payloads("aq-1")
            assert hj212.parse_packets(payload) == [whole]
            writer.close()

    run(main)


def test_many_stations_at_once(mosquitto: Mosquitto) -> None:
    stations = {f"MN{i:03d}": f"aq-{i:03d}" for i in range(50)}

    async def station(h: Harness, mn: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
        for minute in range(20):
            writer.write(hj212.build(packet(mn, minute)))
            assert (await read_ack(reader)).qn == packet(mn, minute).qn
        writer.close()

    async def main() -> None:
        async with harness(mosquitto, stations) as h:
            async with asyncio.TaskGroup() as group:
                for mn in stations:
                    group.create_task(station(h, mn))
            await h.until(lambda: len(h.received) == 1000, "1000 packets")
            assert all(len(h.payloads(s)) == 20 for s in stations.values())
            assert h.gateway.stats.acks == 1000

    run(main)


async def _closed(reader: asyncio.StreamReader, wait_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), wait_s) == b""
    except TimeoutError:
        return False


def test_slow_and_half_open_connections_are_closed(mosquitto: Mosquitto) -> None:
    limits = GatewayLimits(idle_timeout_s=0.5, frame_timeout_s=0.5, max_buffer_bytes=2048)

    async def main() -> None:
        async with harness(mosquitto, {"MN1": "aq-1"}, limits) as h:
            # half-open: connects and says nothing
            r1, w1 = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            assert await asyncio.wait_for(r1.read(), 5) == b""
            # slow: starts a packet, trickles bytes, never finishes within the frame timeout
            r2, w2 = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            raw = hj212.build(packet("MN1", 0))
            started = time.monotonic()
            with pytest.raises(ConnectionError):
                for index in range(0, len(raw), 3):  # the slow sender's own pace, 3 bytes/0.1 s
                    w2.write(raw[index : index + 3])
                    await w2.drain()
                    if await _closed(r2, 0.1):
                        raise ConnectionResetError("closed by the gateway")
            assert time.monotonic() - started < 3
            # oversized: a length that would need more than the buffer limit
            r3, w3 = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            w3.write(b"##9999" + b"x" * 3000)
            assert await asyncio.wait_for(r3.read(), 5) == b""
            await h.until(lambda: any(d.reason == "too_large" for d in h.dead), "too_large")
            assert h.gateway.stats.timeouts >= 2
            # the gateway still serves others
            r4, w4 = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            w4.write(raw)
            assert (await read_ack(r4)).cn == "9014"
            for w in (w1, w2, w3, w4):
                w.close()

    run(main)


def test_cli_gateway(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    site = f"cli{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "HAZWATCH_MQTT_URL": mosquitto.url,
        "HAZWATCH_MQTT_CLIENT_ID": f"gw-{site}",
        "HAZWATCH_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "HAZWATCH_DATA_DIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "hazwatch"),
            "hj212-gateway",
            "--listen",
            f"127.0.0.1:{port}",
            "--station",
            f"MN77={site}/aq-77",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(port), 20, "hj212-gateway port")

        async def main() -> None:
            async with mqtt_client(mosquitto, "cli-sub") as sub:
                await sub.subscribe(f"hw/{site}/air/aq-77/hj212", qos=1)
                await sub.subscribe(f"hw/deadletter/+/{site}/air/aq-77/hj212", qos=1)
                await sub.subscribe("hw/deadletter/unknown_mn/#", qos=1)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                raw = hj212.build(packet("MN77", 0))
                writer.write(hj212.build(packet("MN78", 0)) + raw)
                assert (await read_ack(reader)).qn == packet("MN77", 0).qn
                topics: list[str] = []
                async for message in sub.messages:
                    topics.append(str(message.topic))
                    if len(topics) == 2:
                        break
                assert f"hw/{site}/air/aq-77/hj212" in topics
                assert "hw/deadletter/unknown_mn/unknown" in topics
                writer.close()

        run(main)
    finally:
        terminate(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "gateway.log").read_text()


def test_a_run_of_garbage_is_one_dead_letter_with_its_length_and_hash(
    mosquitto: Mosquitto,
) -> None:
    """12,290 dead letters for 50 MB of garbage was the bug: now one per run, bounded."""
    limits = GatewayLimits(max_bad_frames=100_000, keep_bytes=1000)
    garbage = bytes(b % 35 for b in range(256)) * (8 * 1024 * 1024 // 256)  # 8 MiB, no '#'
    assert b"#" not in garbage

    async def main() -> None:
        async with harness(mosquitto, {"MN1": "aq-1"}, limits) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            for start in range(0, len(garbage), 64 * 1024):
                writer.write(garbage[start : start + 64 * 1024])
                await writer.drain()
            good = hj212.build(packet("MN1", 0))
            writer.write(good)
            assert (await read_ack(reader)).qn == packet("MN1", 0).qn
            await h.until(lambda: h.dead, "the run's dead letter")
            (run,) = h.dead
            assert run.reason == "bad_header" and run.raw_len == len(garbage)
            assert run.raw == garbage[:1000]
            assert run.raw_sha256 == hashlib.sha256(garbage).hexdigest()
            assert run.source == "tcp://127.0.0.1"
            writer.close()

    run(main)


async def _gone(reader: asyncio.StreamReader) -> bool:
    """Closed by the gateway: EOF, or a reset (it closed with our bytes unread)."""
    try:
        return await _closed(reader, 5)
    except ConnectionError:
        return True


def test_a_connection_sending_too_many_bad_frames_is_closed(mosquitto: Mosquitto) -> None:
    limits = GatewayLimits(max_bad_frames=5, bad_window_s=60)

    async def main() -> None:
        async with harness(mosquitto, {"MN1": "aq-1"}, limits) as h:
            closed_before = h.gateway.stats.closed_bad_frames
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            good = hj212.build(packet("MN1", 0))
            bad_crc = good[:-6] + b"0000\r\n"
            with contextlib.suppress(ConnectionError):
                for _ in range(1000):  # 1000 bad frames: closed after the 6th
                    writer.write(bad_crc)
                    await writer.drain()
            assert await _gone(reader)
            assert h.gateway.stats.closed_bad_frames == closed_before + 1
            assert 6 <= len(h.dead) <= 7  # (the last may be cut by the close)
            # garbage counts too: one bad frame per started max_buffer_bytes
            r2, w2 = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            sent = 0
            with contextlib.suppress(ConnectionError):
                for _ in range(3000):  # up to 48 MiB of garbage
                    w2.write(b"x" * 16 * 1024)
                    await w2.drain()
                    sent += 16 * 1024
            assert await _gone(r2)
            assert sent < 8 * 1024 * 1024  # closed after ~6 x 16 KiB, not after 48 MiB
            assert h.dead[-1].reason == "bad_header"
            assert h.dead[-1].raw_len is not None and h.dead[-1].raw_len <= 8 * 16 * 1024
            assert h.gateway.stats.closed_bad_frames == closed_before + 2
            # the gateway still serves others
            r3, w3 = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            w3.write(good)
            assert (await read_ack(r3)).cn == "9014"
            for w in (writer, w2, w3):
                w.close()

    run(main)


SM4_KEY = bytes([0x30] * 16)  # HJ 212-2025 A.2's example key


def test_a_2017_and_a_2025_station_on_one_gateway_and_a_wrong_pw_refused(
    mosquitto: Mosquitto,
) -> None:
    """Each station answered by its own edition; the 2025 one SM4-encrypted; PW=000000 for a
    registered station's MN is not published, dead-lettered, answered QnRtn=3 (issue #20 5e)."""
    secret = StationSecret(hash_pw("123456", iterations=1000), SM4_KEY)
    access = {
        "aq-17": StationAccess(registered=True, secret=secret),
        "aq-25": StationAccess(registered=True, secret=secret, encrypted=True),
    }

    async def main() -> None:
        async with harness(mosquitto, {"MN17": "aq-17", "MN25": "aq-25"}, access=access) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            old = hj212.data_packet("MN17", "2051", TS0, {"pm25": 35.0})
            new = hj212.data_packet("MN25", "2051", TS0, {"pm25": 41.0}, edition="2025")
            forged = hj212.data_packet("MN17", "2011", TS0, {"pm25": 999.0}, pw="000000")
            writer.write(hj212.build(old) + hj212.build(new, SM4_KEY) + hj212.build(forged))
            first, second, third = [await read_ack(reader) for _ in range(3)]
            assert (first.cn, first.flag, first.qn) == ("9014", 4, old.qn)  # 2017: Flag=4
            assert (second.cn, second.flag, second.qn) == ("9014", 8, new.qn)  # 2025: Flag=8
            assert (third.cn, third.cp) == ("9011", (("QnRtn", "3"),))
            await h.until(lambda: len(h.received) == 2 and h.dead, "two packets, one refusal")
            assert h.payloads("aq-17") == [hj212.build(old)]
            (sent,) = h.payloads("aq-25")
            assert b"{0x" in sent  # published as the station sent it, encrypted
            assert hj212.parse_frame(sent, lambda mn: SM4_KEY).cp == new.cp
            (letter,) = h.dead
            assert letter.reason == "auth_refused" and "wrong PW" in letter.message
            assert "123456" not in letter.message and h.gateway.stats.refused == 1
            # a heartbeat asking for an answer is answered 9013, a time request with 1012
            beat = hj212.Packet(new.qn, "22", "9015", "123456", "MN25", 9)
            asks = hj212.Packet(new.qn, "22", "1013", "123456", "MN25", 9)
            writer.write(hj212.build(beat) + hj212.build(asks))
            answers = [await read_ack(reader) for _ in range(3)]
            assert [a.cn for a in answers] == ["9013", "9011", "1012"]
            assert "SystemTime" in answers[2].cp_dict()
            writer.close()

    run(main)


def test_a_station_whose_clock_drifts_is_sent_the_time(mosquitto: Mosquitto) -> None:
    """Its QN two hours behind the gateway's clock: answered, then CN 1012 once, not twice."""

    async def main() -> None:
        limits = GatewayLimits(clock_drift_s=120.0)
        async with harness(mosquitto, {"MN1": "aq-1"}, limits) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.port)
            writer.write(hj212.build(packet("MN1", 0)) + hj212.build(packet("MN1", 1)))
            answers = [await read_ack(reader) for _ in range(3)]
            assert [a.cn for a in answers] == ["9014", "1012", "9014"]
            assert h.gateway.stats.clock_pushes == 1
            writer.close()

    run(main)


def _gateway_registry(tmp_path: Path, site: str) -> Path:
    """A registry of one HJ 212-2025 station with a hardware serial, its PW and first SM4 key
    in the secrets file (A.2's key, 16 × '0')."""
    (tmp_path / "secrets.toml").write_text(
        f'[[station]]\nsite = "{site}"\nid = "aq-25"\npw = "123456"\nsm4_key = "{SM4_KEY.hex()}"\n',
        encoding="utf-8",
    )
    path = tmp_path / "registry.toml"
    path.write_text(
        f'secrets = "secrets.toml"\n[[site]]\nid = "{site}"\nname = "微站"\n'
        f'[[station]]\nid = "aq-25"\nsite = "{site}"\nmn = "MN2025"\nserial = "SN6970001"\n'
        'edition = "2025"\nencrypted = true\n',
        encoding="utf-8",
    )
    return path


def test_a_2025_station_gets_its_mn_by_its_serial_and_a_new_key_over_the_gateway(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """`hazwatch hj212-gateway` composed as the CLI runs it (GatewayService, its state store):
    the simulator's 2025 station uploads its hardware serial with MN= empty (CN 1001), is
    answered 9013 and given its MN (CN 1002); `hazwatch hj212 rotate-key MN` issues a new SM4
    key, the gateway sends it (CN 1014, encrypted with the key in force), the station answers
    9011/9012 and encrypts with the new key from then on; the old key is refused after. An
    unknown serial is refused (QnRtn=2) and dead-lettered with the reason."""
    from hazwatch.base.statedb import StateDB
    from hazwatch.devices.registry import load_file, save
    from hazwatch.devices.station_secrets import KeyRotations
    from hazwatch.gateway import GatewayService
    from hazwatch.ingest.deadletters import DeadLetterStore
    from hazwatch.settings import Settings, deadletter_limits
    from hazwatch.simulators.hj212_station import (
        AirReport,
        AirSimConfig,
        StationSpec,
        run_tcp_station,
    )

    site = f"gk{uuid.uuid4().hex[:5]}"
    state = f"sqlite:///{tmp_path / 'state.db'}"
    settings = Settings(mqtt_url=mosquitto.url, state_url=state, data_dir=tmp_path / "data")
    db = StateDB(state)
    save(db, load_file(_gateway_registry(tmp_path, site)), "test", time.time_ns())
    env = {**os.environ, "HAZWATCH_STATE_URL": state, "HAZWATCH_DATA_DIR": str(tmp_path)}
    issued = subprocess.run(
        [sys.executable, "-m", "hazwatch", "hj212", "rotate-key", "MN2025"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    assert "CN 1014" in issued.stdout
    received: list[bytes] = []

    async def main() -> None:
        with GatewayService(settings, host="127.0.0.1", port=0) as service:
            async with mqtt_client(mosquitto, "gk-sub") as sub:
                await sub.subscribe(f"hw/{site}/air/aq-25/hj212", qos=1)

                async def collect() -> None:
                    async for message in sub.messages:
                        received.append(bytes(message.payload))  # type: ignore[arg-type]

                collector = asyncio.create_task(collect())
                spec = StationSpec(site, "aq-25", "", edition="2025", sm4_key=SM4_KEY,
                                   serial="SN6970001")  # fmt: skip
                config = AirSimConfig(start_ns=TS0, minutes=6)
                report = AirReport()
                await run_tcp_station("127.0.0.1", service.port, spec, config, report)
                assert report.errors == [] and all(p.acked for p in report.packets)
                assert report.assigned_mn == {"aq-25": "MN2025"} and report.key_updates == 1
                # 1001, the 9011/9012 of 1002 and of 1014, and six minutes of data
                await wait_until(lambda: len(received) >= 11, "the station's packets on MQTT")
                # a forger with the old key, and an unknown serial, on one connection
                reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
                late = hj212.data_packet("MN2025", "2051", TS0 + 10 * 60_000_000_000,
                                         {"pm25": 30.0}, edition="2025")  # fmt: skip
                stranger = hj212.Packet(hj212.qn_of(TS0), "91", "1001", "123456", "", 9,
                                        (("i23005-Info", "SN-UNKNOWN"),))  # fmt: skip
                writer.write(hj212.build(late, SM4_KEY) + hj212.build(stranger))
                first, second = await read_ack(reader), await read_ack(reader)
                assert (first.cn, first.cp) == ("9011", (("QnRtn", "2"),))
                assert (second.cn, second.cp) == ("9011", (("QnRtn", "2"),))
                writer.close()
                collector.cancel()
                await asyncio.gather(collector, return_exceptions=True)
                stats = service.gateway.stats
                assert (stats.mn_assigned, stats.keys_sent, stats.keys_confirmed) == (1, 1, 1)

    async def wait_until(check: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + 10
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            await asyncio.sleep(0.02)

    run(main)
    (rotation,) = KeyRotations(db).state_of(site, "aq-25")
    assert rotation["state"] == "active" and rotation["sends"] == 1
    new_key = KeyRotations(db).overlay(site, "aq-25", StationSecret(sm4_key=SM4_KEY)).sm4_key
    assert new_key is not None and new_key != SM4_KEY and len(new_key) == 16
    frames = [hj212.parse_frame(raw, lambda mn: (SM4_KEY, new_key)) for raw in received]
    cns = [f.cn for f in frames]
    assert cns[0] == "1001" and cns.count("2051") == 6 and {"9011", "9012"} <= set(cns)
    data = [raw for raw, f in zip(received, frames, strict=True) if f.cn == "2051"]
    # before the key update its data decrypt with the old key, after it only with the new one
    old_ones = [raw for raw in data if _decrypts(raw, SM4_KEY)]
    new_ones = [raw for raw in data if _decrypts(raw, new_key)]
    assert old_ones and new_ones and len(old_ones) + len(new_ones) == 6
    assert data.index(new_ones[0]) == len(old_ones)  # one switch, never back
    letters = DeadLetterStore(db, deadletter_limits(settings)).latest(10)
    reasons = {letter.reason: letter.message for letter in letters}
    assert "SN-UNKNOWN" in reasons["unknown_serial"]
    assert "decrypt_failed" in reasons
    everything = " ".join(reasons.values()) + issued.stdout + issued.stderr
    assert new_key.decode() not in everything and SM4_KEY.hex() not in everything


def _decrypts(raw: bytes, key: bytes) -> bool:
    from hazwatch.base.errors import PayloadError

    try:
        hj212.parse_frame(raw, lambda mn: key)
    except PayloadError:
        return False
    return True
