"""TCP gateway for HJ 212-2017 stations: frames packets, checks CRC and MN, publishes them on MQTT.

Never answer a station before its packet is on the broker (QoS 1 acked); never let one connection
hold unbounded memory or a slot forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from devices import hj212
from devices.errors import PayloadError
from devices.topics import build_topic

log = logging.getLogger("hazwatch.hj212_gateway")

PUBLISHED = Counter("hazwatch_hj212_published_total", "HJ 212 packets put on MQTT by the gateway")
DEAD = Counter("hazwatch_hj212_deadletters_total", "HJ 212 bytes the gateway refused", ["reason"])
OPEN = Gauge("hazwatch_hj212_connections", "Stations connected to the HJ 212 gateway")

# MN -> (site, station), or None when no registry entry has that MN.
StationLookup = Callable[[str], "tuple[str, str] | None"]
# Publishes one payload at QoS 1 and returns once the broker has acknowledged it.
Publish = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GatewayDeadLetter:
    received_ns: int
    topic: str  # hw/{site}/air/{station}/hj212 when the MN is known, else tcp://peer
    reason: str
    message: str
    raw: bytes


DeadLetterSink = Callable[[GatewayDeadLetter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    idle_timeout_s: float = 600.0  # no byte for this long: a half-open connection, closed
    frame_timeout_s: float = 60.0  # a started packet must be complete within this
    max_buffer_bytes: int = 16 * 1024  # bytes held for one connection at most
    max_connections: int = 2000
    write_timeout_s: float = 10.0  # a station that does not read its acks is dropped
    split_timeout_s: float = 120.0  # parts of a split packet must all arrive within this


@dataclass(slots=True)
class GatewayStats:
    connections: int = 0
    open_connections: int = 0
    packets: int = 0
    published: int = 0
    acks: int = 0
    dead_letters: int = 0
    rejected_connections: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class _Split:
    started: float
    frames: dict[int, bytes] = field(default_factory=dict)
    packets: dict[int, hj212.Packet] = field(default_factory=dict)


class Hj212Gateway:
    """An asyncio TCP server; `async with Hj212Gateway(...) as gw: await gw.start(host, port)`."""

    def __init__(
        self,
        lookup: StationLookup,
        publish: Publish,
        dead_letter: DeadLetterSink,
        limits: GatewayLimits | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.lookup = lookup
        self.publish = publish
        self.dead_letter = dead_letter
        self.limits = limits or GatewayLimits()
        self.clock = clock
        self.stats = GatewayStats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Hj212Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=64 * 1024)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    # one connection
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.stats.open_connections >= self.limits.max_connections:
            self.stats.rejected_connections += 1
            writer.close()
            return
        self._tasks.add(task)
        self.stats.connections += 1
        self.stats.open_connections += 1
        OPEN.inc()
        peer = writer.get_extra_info("peername")
        peer_name = f"tcp://{peer[0]}:{peer[1]}" if peer else "tcp://unknown"
        try:
            await Connection(self, reader, writer, peer_name).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection %s failed", peer_name)
        finally:
            self.stats.open_connections -= 1
            OPEN.dec()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


class Connection:
    def __init__(
        self,
        gateway: Hj212Gateway,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.gw = gateway
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.buffer = bytearray()
        self.frame_started: float | None = None
        self.splits: dict[tuple[str, str, str], _Split] = {}

    async def run(self) -> None:
        limits = self.gw.limits
        while True:
            timeout = limits.idle_timeout_s
            if self.frame_started is not None:
                timeout = min(
                    timeout, self.frame_started + limits.frame_timeout_s - time.monotonic()
                )
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), max(timeout, 0.001))
            except TimeoutError:
                self.gw.stats.timeouts += 1
                if self.buffer:
                    await self._dead(bytes(self.buffer), "bad_length", "packet never completed")
                return
            if not chunk:
                if self.buffer.strip():
                    await self._dead(
                        bytes(self.buffer), "bad_length", "connection closed mid-packet"
                    )
                return
            self.buffer += chunk
            await self._drain_frames()
            if len(self.buffer) > limits.max_buffer_bytes:
                await self._dead(
                    bytes(self.buffer),
                    "too_large",
                    f"over {limits.max_buffer_bytes} bytes without a whole packet",
                )
                return
            await self._expire_splits()

    async def _drain_frames(self) -> None:
        while self.buffer:
            start = self.buffer.find(hj212.HEADER)
            if start < 0:
                keep = 1 if self.buffer.endswith(b"#") else 0  # maybe the first half of "##"
                junk = bytes(self.buffer[: len(self.buffer) - keep])
                del self.buffer[: len(junk)]
                if junk.strip(b"\r\n"):
                    await self._dead(junk, "bad_header", "bytes outside any packet")
                if not self.buffer:
                    self.frame_started = None
                return
            if start > 0:
                await self._cut(start, "bad_header", "bytes outside any packet")
                continue
            try:
                length = hj212.frame_length(bytes(self.buffer[:6]))
            except PayloadError as exc:
                await self._resync(exc)
                continue
            if length is None or len(self.buffer) < length:
                # Does a new packet start inside what we wait for? Then this one was cut short.
                nxt = self.buffer.find(hj212.HEADER, 2)
                if nxt > 0:
                    await self._cut(nxt, "bad_length", "packet cut short by the next one")
                    continue
                if self.frame_started is None:
                    self.frame_started = time.monotonic()
                return
            candidate = bytes(self.buffer[:length])
            try:
                packet = hj212.parse_frame(candidate)
            except PayloadError as exc:
                nxt = candidate.find(hj212.HEADER, 2)
                if nxt > 0:
                    await self._cut(nxt, exc.reason, str(exc))
                else:
                    del self.buffer[:length]
                    await self._dead(candidate, exc.reason, str(exc))
                continue
            del self.buffer[:length]
            self.frame_started = None
            await self._packet(packet, candidate)
        self.frame_started = None

    async def _cut(self, at: int, reason: str, message: str) -> None:
        bad = bytes(self.buffer[:at])
        del self.buffer[:at]
        if bad.strip(b"\r\n"):
            await self._dead(bad, reason, message)

    async def _resync(self, exc: PayloadError) -> None:
        nxt = self.buffer.find(hj212.HEADER, 2)
        await self._cut(nxt if nxt > 0 else len(self.buffer), exc.reason, str(exc))

    async def _packet(self, packet: hj212.Packet, raw: bytes) -> None:
        self.gw.stats.packets += 1
        where = self.gw.lookup(packet.mn)
        if where is None:
            await self._dead(raw, "unknown_mn", f"MN {packet.mn} is in no registry entry")
            return
        topic = build_topic(where[0], "air", where[1], hj212.KIND)
        if not packet.is_split:
            await self.gw.publish(topic, raw)
            self.gw.stats.published += 1
            PUBLISHED.inc()
            await self._answer(packet)
            return
        key = (packet.mn, packet.qn, packet.cn)
        split = self.splits.setdefault(key, _Split(time.monotonic()))
        assert packet.pno is not None and packet.pnum is not None
        split.frames[packet.pno] = raw
        split.packets[packet.pno] = packet
        if len(split.frames) < packet.pnum:
            await self._answer(packet)  # a station may wait for each part's answer
            return
        del self.splits[key]
        payload = b"".join(split.frames[n] for n in sorted(split.frames))
        try:
            hj212.reassemble(split.packets.values())
        except PayloadError as exc:
            await self._dead(payload, exc.reason, str(exc), topic)
            return
        await self.gw.publish(topic, payload)
        self.gw.stats.published += 1
        PUBLISHED.inc()
        await self._answer(packet)

    async def _answer(self, packet: hj212.Packet) -> None:
        response = hj212.response_for(packet)
        if response is None:
            return
        self.writer.write(hj212.build(response))
        await asyncio.wait_for(self.writer.drain(), self.gw.limits.write_timeout_s)
        self.gw.stats.acks += 1

    async def _expire_splits(self) -> None:
        now = time.monotonic()
        for key, split in list(self.splits.items()):
            if now - split.started > self.gw.limits.split_timeout_s:
                del self.splits[key]
                payload = b"".join(split.frames[n] for n in sorted(split.frames))
                await self._dead(payload, "incomplete_split", f"split packet {key[1]} incomplete")

    async def _dead(self, raw: bytes, reason: str, message: str, topic: str | None = None) -> None:
        self.gw.stats.dead_letters += 1
        DEAD.labels(reason).inc()
        letter = GatewayDeadLetter(self.gw.clock(), topic or self.peer, reason, message, raw)
        try:
            await self.gw.dead_letter(letter)
        except Exception:
            log.exception("dead letter from %s could not be stored: %s", self.peer, reason)
