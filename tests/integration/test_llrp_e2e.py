"""The LLRP connector against llrpkit's reader emulator over real TCP, into a real Mosquitto.

Never a mock: the emulator is a TCP server speaking LLRP, the broker is Mosquitto. Between the
connector and the emulator a TCP proxy forwards whole LLRP messages and decodes, by hand from
the standard (tests/llrp_wire.py), every RO_ACCESS_REPORT it forwards: that is the ground
truth of what the connector was given. It also cuts the connection in the middle of a message,
as a reader losing power or its network does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from llrpkit.emulator import LLRPEmulator
from llrpkit.emulator.core import EmulatedTag
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.rfid import RfidRead
from hazwatch.edge.llrp import LlrpProgram, LlrpSetup, LlrpStats
from tests import llrp_wire as wire
from tests.services import Mosquitto, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# A storage-room door: two antennas, three drums carried through, one parked by the door.
DOOR_TAGS = [
    EmulatedTag(epc=bytes.fromhex("E28068940000500312AB3401"), antennas=(1,), rssi_dbm=-48.0),
    EmulatedTag(epc=bytes.fromhex("E28068940000500312AB3402"), antennas=(1, 2), rssi_dbm=-55.0),
    EmulatedTag(epc=bytes.fromhex("E28068940000500312AB3403"), antennas=(2,), rssi_dbm=-61.0),
    EmulatedTag(epc=bytes.fromhex("E28068940000500312AB3404"), antennas=(2,), rssi_dbm=-67.0),
]

Read = tuple[str, int, float | None, int | None]  # epc, ts (ns), rssi, antenna


class Rig:
    """The emulator and the proxy in front of it, on an event loop (and thread) of their own."""

    def __init__(self, tags: list[EmulatedTag], reads_per_sec: float = 150.0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emulator = LLRPEmulator(tags=tags, reads_per_sec=reads_per_sec, antenna_count=2)
        self.truth: list[Read] = []  # reads of every complete report forwarded to the connector
        self.to_reader: list[int] = []  # message types the connector sent
        self.from_reader: list[int] = []  # message types the emulator sent
        self.connections = 0
        self._cut_after: int | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._run(self.emulator.start())
        self._server = self._run(asyncio.start_server(self._proxy, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def cut_after(self, reports: int) -> None:
        """Drop the connection `reports` reports from now, halfway through the next message."""
        self.loop.call_soon_threadsafe(setattr, self, "_cut_after", reports)

    def reports(self) -> int:
        return self.from_reader.count(wire.RO_ACCESS_REPORT)

    async def _proxy(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.emulator.port)
        self._writers += [down_w, up_w]

        async def to_reader() -> None:
            buffer = b""
            while data := await down_r.read(65536):
                frames, buffer = wire.split_frames(buffer + data)
                self.to_reader += [wire.header(f).msg_type for f in frames]
                up_w.write(data)
                await up_w.drain()

        async def from_reader() -> None:
            buffer = b""
            while data := await up_r.read(65536):
                frames, buffer = wire.split_frames(buffer + data)
                for frame in frames:
                    if self._cut_after == 0 and wire.header(frame).msg_type == 61:
                        self._cut_after = None
                        down_w.write(frame[: len(frame) // 2])  # half a message, then nothing
                        await down_w.drain()
                        return
                    down_w.write(frame)
                    await down_w.drain()
                    self.from_reader.append(wire.header(frame).msg_type)
                    if wire.header(frame).msg_type == wire.RO_ACCESS_REPORT:
                        self.truth += [expected(tag) for tag in wire.tag_reports(frame)]
                        if self._cut_after is not None:
                            self._cut_after -= 1

        try:
            await asyncio.wait(
                [asyncio.create_task(to_reader()), asyncio.create_task(from_reader())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (down_w, up_w):
                w.close()

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            for w in self._writers:
                w.close()
            await self.emulator.stop()

        self._run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def expected(tag: dict[str, Any]) -> Read:
    """The read hazwatch must decode from one hand-decoded TagReportData (first == last seen
    and one sighting, as the emulator reports: one read)."""
    assert tag["seen"] in (None, 1)
    return (tag["epc"].hex().upper(), tag["first_us"] * 1000, tag["peak_rssi"], tag["antenna"])


class Subscriber:
    """A persistent-session QoS 1 subscriber (paho, reconnecting by itself) on one reader."""

    def __init__(self, broker: Mosquitto, site: str, reader: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.redelivered = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"llrp-test-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.1, 1)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(f"hw/{site}/rfid/{reader}/+", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.redelivered += int(msg.dup)  # the broker sent it again to this subscriber

    def reads(self) -> list[Read]:
        with self._lock:
            messages = list(self.messages)
        out = []
        for topic, payload in messages:
            if not topic.endswith("/read"):
                continue
            record = decode(topic, payload, NoRegistry(), now_ns=time.time_ns()).record
            assert isinstance(record, RfidRead)
            out.append((record.epc, record.ts, record.rssi, record.antenna))
        return out

    def statuses(self) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if t.endswith("/status")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def rig() -> Iterator[Rig]:
    r = Rig(DOOR_TAGS)
    yield r
    r.close()


def setup_for(rig: Rig, broker: Mosquitto, tmp_path: Path, **more: Any) -> LlrpSetup:
    return LlrpSetup(
        reader_host="127.0.0.1",
        reader_port=rig.port,
        site=f"p{uuid.uuid4().hex[:6]}",
        reader="st-in",
        mqtt_url=broker.url,
        outbox=tmp_path / "outbox.sqlite",
        reconnect_max_s=1.0,
        **more,
    )


class Running:
    """LlrpProgram.run() in a thread, as `hazwatch rfid-llrp` runs it in its process."""

    def __init__(self, program: LlrpProgram) -> None:
        self.program = program
        self.stats: LlrpStats | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.stats = self.program.run()

    def stop(self) -> LlrpStats:
        self.program.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the connector did not stop"
        assert self.stats is not None
        return self.stats


def all_arrived(sub: Subscriber, rig: Rig) -> bool:
    return not Counter(rig.truth) - Counter(sub.reads())


def same_reads(got: list[Read], truth: list[Read]) -> None:
    assert Counter(got) == Counter(truth), (
        f"missing {sorted((Counter(truth) - Counter(got)).elements())[:5]}, "
        f"extra {sorted((Counter(got) - Counter(truth)).elements())[:5]}"
    )


def test_reads_of_the_emulated_reader_arrive_as_hazwatch_reads(
    mosquitto: Mosquitto, rig: Rig, tmp_path: Path
) -> None:
    setup = setup_for(rig, mosquitto, tmp_path)
    sub = Subscriber(mosquitto, setup.site, setup.reader)
    running = Running(LlrpProgram(setup))
    wait_for(lambda: rig.reports() >= 300, 20, "300 reports from the emulator")
    stats = running.stop()
    wait_for(lambda: all_arrived(sub, rig), 10, "every read on MQTT")
    sub.close()

    same_reads(sub.reads(), rig.truth)  # each read once, as the reader reported it
    assert {epc for epc, *_ in rig.truth} == {t.epc.hex().upper() for t in DOOR_TAGS}
    # the Impinj extension's sub-dBm RSSI (ImpinjPeakRSSI), not the whole-dBm PeakRSSI
    assert any(rssi is not None and rssi != round(rssi) for *_, rssi, _ in rig.truth)
    assert (stats.reads, stats.published, stats.pending) == (len(rig.truth),) * 2 + (0,)
    # the LLRP exchange: capabilities, Impinj extensions, our ROSpec added, enabled, started;
    # at the stop, stopped and deleted, and the connection closed politely
    sent = rig.to_reader
    assert sent[:2] == [wire.GET_READER_CAPABILITIES, 1023]
    assert [t for t in sent if t in (20, 21, 22, 23, 24, 14)] == [21, 20, 24, 22, 23, 21, 14]
    assert rig.emulator._rospecs == {}  # nothing left inventorying on the reader
    online = [orjson.loads(s)["online"] for s in sub.statuses()]
    assert online[0] is True and online[-1] is False


def test_a_reader_that_drops_mid_inventory_is_reconnected_and_nothing_is_lost(
    mosquitto: Mosquitto, rig: Rig, tmp_path: Path
) -> None:
    setup = setup_for(rig, mosquitto, tmp_path)
    sub = Subscriber(mosquitto, setup.site, setup.reader)
    running = Running(LlrpProgram(setup))
    wait_for(lambda: rig.reports() >= 100, 20, "100 reports")
    for drop in (1, 2):
        rig.cut_after(50)
        wait_for(lambda d=drop: rig.connections > d, 20, f"reconnection {drop}")
        seen = rig.reports()
        wait_for(lambda s=seen: rig.reports() >= s + 100, 20, "reports after the reconnection")
    stats = running.stop()
    wait_for(lambda: all_arrived(sub, rig), 10, "every read on MQTT")
    sub.close()

    # every report the connector was given whole is published once; the half message is not
    # a report it took (the reader sends that tag again in its next rounds)
    same_reads(sub.reads(), rig.truth)
    assert stats.reader_drops >= 2 and stats.reader_connects >= 3
    assert stats.lost_in_client == 0


def test_a_broker_restart_loses_no_read_and_doubles_at_most_those_in_flight(
    rig: Rig, tmp_path: Path
) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        setup = setup_for(rig, broker, tmp_path, window=50)
        sub = Subscriber(broker, setup.site, setup.reader)
        running = Running(LlrpProgram(setup))
        wait_for(lambda: len(sub.reads()) >= 100, 20, "100 reads through the broker")
        broker.stop()  # SIGTERM: mosquitto saves its persistent sessions and queues
        taken = rig.reports()
        wait_for(lambda: rig.reports() >= taken + 200, 20, "200 reports while it is down")
        assert running.program.outbox.count > 0  # kept on disk meanwhile
        broker.start()
        wait_for(lambda: rig.reports() >= taken + 400, 20, "reports after it is back")
        stats = running.stop()
        wait_for(lambda: all_arrived(sub, rig), 20, "every read on MQTT")
        time.sleep(0.5)  # a duplicate would come right behind its original
        sub.close()
    finally:
        broker.stop()

    got, truth = Counter(sub.reads()), Counter(rig.truth)
    assert not truth - got, f"lost {sorted((truth - got).elements())[:5]}"
    doubled = sum((got - truth).values())
    # QoS 1 is at least once: a read the broker had when it went down, whose PUBACK did not
    # reach the connector, is sent again (DUP). No more than the window can be in flight.
    assert doubled <= setup.window, doubled
    assert stats.pending == 0 and stats.broker_connects >= 2
    print(
        f"broker restart: {len(rig.truth)} reads, {doubled} delivered twice "
        f"({sub.redelivered} of them redelivered by the broker to the subscriber)"
    )


def test_sigterm_stops_the_command_cleanly_and_the_outbox_outlives_a_broker_outage(
    rig: Rig, tmp_path: Path
) -> None:
    """`hazwatch rfid-llrp` in its own process: with the broker down the reads it takes stay
    in the outbox when SIGTERM stops it; the next start hands them to the broker."""
    broker = Mosquitto(tmp_path / "broker")  # its port, not started yet
    site, outbox = f"p{uuid.uuid4().hex[:6]}", tmp_path / "outbox.sqlite"
    command = [
        sys.executable, "-m", "hazwatch", "rfid-llrp",
        "--host", f"127.0.0.1:{rig.port}", "--reader", "st-in", "--site", site,
        "--mqtt-url", broker.url, "--outbox", str(outbox), "--drain-s", "1",
    ]  # fmt: skip
    env = {**os.environ, "HAZWATCH_DATA_DIR": str(tmp_path / "data")}

    first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: rig.reports() >= 200, 30, "200 reports taken with no broker")
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=20)
    assert first.returncode == 0, err
    taken = list(rig.truth)
    assert "reads taken" in err and f"{len(taken)} reads taken" in err, err
    assert rig.emulator._rospecs == {}  # the ROSpec stopped and deleted on the way out

    broker.start()
    try:
        sub = Subscriber(broker, site, "st-in")
        second = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(sub.reads()) >= len(taken) + 50, 30, "the kept reads, then more")
        second.send_signal(signal.SIGTERM)
        _, err2 = second.communicate(timeout=20)
        assert second.returncode == 0, err2
        wait_for(lambda: all_arrived(sub, rig), 10, "every read")
        sub.close()
    finally:
        broker.stop()
    same_reads(sub.reads(), rig.truth)
    assert "0 left in" in err2, err2


def test_a_stop_while_a_silent_reader_keeps_the_connector_waiting_is_prompt(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A host that takes the TCP connection and never sends the ConnectionAttemptEvent (a
    reader booting, a wrong port): a stop does not wait out the connect timeout."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        setup = LlrpSetup(
            reader_host="127.0.0.1",
            reader_port=silent.getsockname()[1],
            site="p1",
            reader="st-in",
            mqtt_url=mosquitto.url,
            outbox=tmp_path / "outbox.sqlite",
            response_timeout_s=30.0,  # llrpkit would wait 60 s for the event
        )
        running = Running(LlrpProgram(setup))
        wait_for(lambda: silent.accept(), 10, "the connector's TCP connection")
        started = time.monotonic()
        stats = running.stop()
        assert time.monotonic() - started < 5
        assert stats.reader_connects == 0
