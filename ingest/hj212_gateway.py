"""TCP gateway for HJ 212-2017 and HJ 212-2025 stations: frames packets, checks CRC (decrypting an
SM4 CP), MN and PW, publishes them on MQTT, answers each by its own edition; gives a data logger
its MN from its hardware serial (CN 1001 → 1002) and a station a new SM4 key (CN 1014).

Never answer a station before its packet is on the broker (QoS 1 acked); never publish a packet
whose station did not authenticate; never let one connection hold unbounded memory or a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from hazwatch.base.errors import PayloadError
from hazwatch.devices import hj212
from hazwatch.devices.station_secrets import OPEN as OPEN_ACCESS
from hazwatch.devices.station_secrets import KeyIssue, StationAccess
from hazwatch.devices.topics import build_topic
from hazwatch.ingest.deadletters import DeadLetter

log = logging.getLogger("hazwatch.hj212_gateway")

PUBLISHED = Counter("hazwatch_hj212_published_total", "HJ 212 packets put on MQTT by the gateway")
DEAD = Counter("hazwatch_hj212_deadletters_total", "HJ 212 bytes the gateway refused", ["reason"])
LOST = Counter(
    "hazwatch_hj212_deadletters_lost_total",
    "HJ 212 dead letters the state store could not take even after retries",
    ["reason"],
)
OPEN = Gauge("hazwatch_hj212_connections", "Stations connected to the HJ 212 gateway")
REFUSED = Counter(
    "hazwatch_hj212_refused_total",
    "HJ 212 packets refused for their station's MN, PW or encryption, by peer address",
    ["peer", "reason"],
)
MAX_PEER_LABELS = 1000  # peers named in REFUSED; the rest count as "other"
CLOSED_BAD = Counter(
    "hazwatch_hj212_closed_bad_frames_total",
    "Gateway connections closed for more bad frames than the limit within the window",
)

# MN -> (site, station), or None when no registry entry has that MN.
StationLookup = Callable[[str], "tuple[str, str] | None"]
# Publishes one payload at QoS 1 and returns once the broker has acknowledged it.
AsyncPublisher = Callable[[str, bytes], Awaitable[None]]
# (site, station) -> what its packets must present (PW, SM4 key)
AccessLookup = Callable[[str, str], StationAccess]
# (peer address, reason, MN, receive time ns): a packet was refused
RefusalSink = Callable[[str, str, str, int], Awaitable[None]]
# hardware serial (i23005-Info of CN 1001) -> (site, station, the MN the registry gives it)
SerialLookup = Callable[[str], "tuple[str, str, str] | None"]


class KeyUpdates(Protocol):
    """The SM4 keys hazwatch issues to stations (CN 1014), as the gateway sends them."""

    async def due(self, site: str, station: str, now_ns: int) -> KeyIssue | None:
        """A new key to send the station now (counted as sent), None when none is due."""
        ...

    async def answered(
        self, site: str, station: str, qn: str, ok: bool, note: str, now_ns: int
    ) -> bool:
        """The station's answer to the CN 1014 of `qn` (9012 ExeRtn=1: the key is in force);
        False when no key was issued with that QN."""
        ...

    async def requested(self, site: str, station: str, now_ns: int) -> None:
        """The station asked for a new key (CN 1014 from it): one is issued if none waits."""
        ...


# What the gateway refused is a dead letter like any other (hazwatch.ingest.deadletters): topic
# hw/{site}/air/{station}/hj212 when the MN is known, else tcp://peer; source tcp://{address}.
GatewayDeadLetter = DeadLetter

DeadLetterSink = Callable[[GatewayDeadLetter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    idle_timeout_s: float = 600.0  # no byte for this long: a half-open connection, closed
    frame_timeout_s: float = 60.0  # a started packet must be complete within this
    max_buffer_bytes: int = 16 * 1024  # bytes held for one connection at most
    max_connections: int = 2000
    write_timeout_s: float = 10.0  # a station that does not read its acks is dropped
    split_timeout_s: float = 120.0  # parts of a split packet must all arrive within this
    # A connection that sends more bad frames than this within bad_window_s is closed: a
    # station that lost its framing, or not a station. Bytes outside any packet count as one
    # bad frame per started max_buffer_bytes.
    max_bad_frames: int = 20
    bad_window_s: float = 60.0
    keep_bytes: int = 64 * 1024  # of a run of bytes outside any packet, kept for a person
    # a station whose QN (its clock) is further than this from the gateway's is sent CN 1012
    # with the time, at most once per clock_push_every_s; None: never pushed (the service
    # sets 120 s: hazwatch/gateway.py)
    clock_drift_s: float | None = None
    clock_push_every_s: float = 3600.0


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
    closed_bad_frames: int = 0
    refused: int = 0
    clock_pushes: int = 0
    mn_assigned: int = 0
    keys_sent: int = 0
    keys_confirmed: int = 0


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
        publish: AsyncPublisher,
        dead_letter: DeadLetterSink,
        limits: GatewayLimits | None = None,
        clock: Callable[[], int] = time.time_ns,
        access: AccessLookup | None = None,
        on_refused: RefusalSink | None = None,
        by_serial: SerialLookup | None = None,
        keys: KeyUpdates | None = None,
    ) -> None:
        self.lookup = lookup
        self.publish = publish
        self.dead_letter = dead_letter
        self.limits = limits or GatewayLimits()
        self.clock = clock
        # None: every station open (what a caller without a registry gets; the service passes
        # the registry's access)
        self.access: AccessLookup = access or (lambda site, station: OPEN_ACCESS)
        self.on_refused = on_refused
        self.by_serial = by_serial  # None: CN 1001 uploads are refused (no registry of serials)
        self.keys = keys  # None: no new keys are issued
        self.zone_of: Callable[[str, str], float] = lambda site, station: 8.0
        self.stats = GatewayStats()
        self._peer_labels: set[str] = set()
        self._clock_pushed: dict[str, float] = {}  # MN -> when 1012 was last pushed (monotonic)
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
            source = f"tcp://{peer[0]}" if peer else "tcp://unknown"
            await Connection(self, reader, writer, peer_name, source).run()
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
        source: str | None = None,
    ) -> None:
        self.gw = gateway
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.source = source or peer  # the peer's address: reconnecting gets no new burst
        self.buffer = bytearray()
        self.frame_started: float | None = None
        self.splits: dict[tuple[str, str, str], _Split] = {}
        self.junk: _Junk | None = None  # the run of bytes outside any packet, while it lasts
        self.bad_frames: deque[float] = deque()  # when each recent bad frame came (monotonic)
        self.too_many_bad = False

    async def run(self) -> None:
        try:
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            await self._end_junk()
            raise
        await self._end_junk()

    async def _serve(self) -> None:
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
            if self.too_many_bad:
                self.gw.stats.closed_bad_frames += 1
                CLOSED_BAD.inc()
                log.warning(
                    "closing %s: more than %d bad frames within %g s",
                    self.peer,
                    limits.max_bad_frames,
                    limits.bad_window_s,
                )
                return
            if len(self.buffer) > limits.max_buffer_bytes:
                await self._dead(
                    bytes(self.buffer),
                    "too_large",
                    f"over {limits.max_buffer_bytes} bytes without a whole packet",
                )
                return
            await self._expire_splits()

    async def _drain_frames(self) -> None:
        while self.buffer and not self.too_many_bad:
            start = self.buffer.find(hj212.HEADER)
            if start < 0:
                # Garbage, maybe more to come: one run, one dead letter when it ends (a packet
                # starts, the connection ends), not one per read.
                keep = 1 if self.buffer.endswith(b"#") else 0  # maybe the first half of "##"
                end = len(self.buffer) - keep
                self._add_junk(memoryview(self.buffer)[:end])
                del self.buffer[:end]
                if not self.buffer:
                    self.frame_started = None
                return
            if start > 0:
                self._add_junk(memoryview(self.buffer)[:start])
                del self.buffer[:start]
            if self.junk is not None:  # a packet starts: the garbage before it is one letter
                await self._end_junk()
                continue
            try:
                length = hj212.frame_end(self.buffer)
            except PayloadError as exc:
                await self._resync(exc)
                continue
            if length is None:
                # Does a new packet start inside what we wait for? Then this one was cut short.
                nxt = self.buffer.find(hj212.HEADER, 2)
                if nxt > 0:
                    await self._cut(nxt, "bad_length", _cut_short(bytes(self.buffer[:nxt])))
                    continue
                if self.frame_started is None:
                    self.frame_started = time.monotonic()
                return
            candidate = bytes(self.buffer[:length])
            try:
                packet = hj212.parse_frame(candidate, self._key_of)
            except PayloadError as exc:
                nxt = candidate.find(hj212.HEADER, 2)
                header = hj212.header_of(candidate) if exc.reason == "decrypt_failed" else None
                if header is not None and nxt < 0:
                    # a whole frame of a station whose key it does not have: refused as a
                    # wrong PW is (counted per peer, answered QnRtn=2), not as a framing fault
                    del self.buffer[:length]
                    self.frame_started = None
                    where = self.gw.lookup(header.mn)
                    topic = None if where is None else build_topic(where[0], "air", where[1],
                                                                   hj212.KIND)  # fmt: skip
                    await self._refuse(header, candidate, exc.reason, str(exc), topic)
                    continue
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

    def _key_of(self, mn: str) -> tuple[bytes, ...]:
        where = self.gw.lookup(mn)
        return () if where is None else self.gw.access(*where).secret.keys

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
        if packet.cn == hj212.CN_HARDWARE:
            await self._hardware(packet, raw)
            return
        where = self.gw.lookup(packet.mn)
        if where is None:
            await self._refuse(
                packet, raw, "unknown_mn", f"MN {packet.mn} is in no registry entry", None
            )
            return
        topic = build_topic(where[0], "air", where[1], hj212.KIND)
        access = self.gw.access(*where)
        why = access.refusal(packet.pw)
        if why is not None:
            reason = "unknown_mn" if not access.registered else "auth_refused"
            await self._refuse(
                packet, raw, reason, f"station {where[0]}/{where[1]} refused: {why}", topic
            )
            return
        if (
            access.encrypted
            and hj212.encrypted_cn(packet.cn)
            and packet.cp
            and not packet.encrypted
        ):
            await self._refuse(
                packet,
                raw,
                "decrypt_failed",
                f"station {where[0]}/{where[1]} is registered as encrypting its CP (SM4) and "
                f"sent CN {packet.cn} in plaintext",
                topic,
            )
            return
        if not packet.is_split:
            await self.gw.publish(topic, raw)
            self.gw.stats.published += 1
            PUBLISHED.inc()
            await self._answer(packet)
            await self._manage(packet, where, access)
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
        await self._manage(packet, where, access)

    async def _hardware(self, packet: hj212.Packet, raw: bytes) -> None:
        """CN 1001, a data logger's hardware serial: the registry's station with that serial is
        given its MN (CN 1002) once its PW is right; an unknown serial is refused."""
        serial = hj212.hardware_info(packet).get("serial", "")
        found = self.gw.by_serial(serial) if serial and self.gw.by_serial is not None else None
        if found is None:
            await self._refuse(
                packet,
                raw,
                "unknown_serial",
                f"hardware serial {serial!r} (i23005-Info) is no registry station's serial"
                if serial
                else "CN 1001 carries no hardware serial (i23005-Info)",
                None,
            )
            return
        site, station, mn = found
        topic = build_topic(site, "air", station, hj212.KIND)
        why = self.gw.access(site, station).refusal(packet.pw)
        if why is not None:
            await self._refuse(
                packet, raw, "auth_refused", f"station {site}/{station} refused: {why}", topic
            )
            return
        await self.gw.publish(topic, raw)
        self.gw.stats.published += 1
        PUBLISHED.inc()
        await self._answer(packet)
        where = (site, station)
        zone_h = self.gw.zone_of(*where)
        await self._send(hj212.set_mn(packet, mn, serial, self.gw.clock(), zone_h))
        self.gw.stats.mn_assigned += 1
        log.info("station %s/%s (serial %s) given MN %s (CN 1002)", site, station, serial, mn)

    async def _manage(
        self, packet: hj212.Packet, where: tuple[str, str], access: StationAccess
    ) -> None:
        """After a station's packet: its answer to a new key taken in, its request for one
        taken up, and a new key due sent (CN 1014, encrypted with the key in force)."""
        keys = self.gw.keys
        if keys is None:
            return
        now_ns = self.gw.clock()
        cp = packet.cp_dict()
        if packet.cn == hj212.CN_REQUEST_RESPONSE and cp.get("QnRtn", "1") != "1":
            note = f"the station refused it: QnRtn={cp.get('QnRtn')}"
            await keys.answered(*where, packet.qn, False, note, now_ns)
            return
        if packet.cn == hj212.CN_EXECUTE_RESPONSE:
            ok = cp.get("ExeRtn") == "1"
            note = "acknowledged: ExeRtn=1" if ok else f"not carried out: ExeRtn={cp.get('ExeRtn')}"
            if await keys.answered(*where, packet.qn, ok, note, now_ns) and ok:
                self.gw.stats.keys_confirmed += 1
                log.info("station %s/%s: the new SM4 key is in force (CN 1014)", *where)
            return
        if packet.cn in hj212.RESPONSE_CNS or packet.cn == hj212.CN_DATA_RESPONSE:
            return
        if packet.cn == hj212.CN_KEY and not packet.cp_dict().get("NewSK"):
            await keys.requested(*where, now_ns)
        key = access.secret.sm4_key
        if key is None:
            return
        issue = await keys.due(*where, now_ns)
        if issue is not None:
            self.writer.write(
                hj212.key_update(packet, issue.qn, issue.sk_created, issue.new_key, key)
            )
            await asyncio.wait_for(self.writer.drain(), self.gw.limits.write_timeout_s)
            self.gw.stats.keys_sent += 1
            log.info("station %s/%s: a new SM4 key sent (CN 1014, QN %s)", *where, issue.qn)

    async def _refuse(
        self, packet: hj212.Packet, raw: bytes, reason: str, message: str, topic: str | None
    ) -> None:
        """Not stored: a dead letter with the reason, the refusal QnRtn answered, counted."""
        self.gw.stats.refused += 1
        peer = self.source.removeprefix("tcp://")
        label = peer
        if peer not in self.gw._peer_labels:
            if len(self.gw._peer_labels) < MAX_PEER_LABELS:
                self.gw._peer_labels.add(peer)
            else:
                label = "other"
        REFUSED.labels(label, reason).inc()
        await self._emit(raw, reason, message, topic)
        if self.gw.on_refused is not None:
            await self.gw.on_refused(peer, reason, packet.mn, self.gw.clock())
        if packet.cn not in hj212.RESPONSE_CNS and packet.cn != hj212.CN_DATA_RESPONSE:
            code = hj212.QN_WRONG_MN if reason == "unknown_mn" else hj212.QN_WRONG_PW
            if reason in ("decrypt_failed", "unknown_serial"):
                code = hj212.QN_REFUSED
            await self._send(hj212.refusal(packet, code))

    async def _send(self, packet: hj212.Packet) -> None:
        self.writer.write(hj212.build(packet))
        await asyncio.wait_for(self.writer.drain(), self.gw.limits.write_timeout_s)

    async def _answer(self, packet: hj212.Packet) -> None:
        response = hj212.response_for(packet)
        if response is not None:
            await self._send(response)
            self.gw.stats.acks += 1
        now_ns = self.gw.clock()
        where = self.gw.lookup(packet.mn)
        zone_h = 8.0 if where is None else self.gw.zone_of(*where)
        if packet.cn == hj212.CN_TIME_REQUEST:
            await self._send(hj212.set_time(packet, now_ns, now_ns, zone_h))
            return
        sent_ns = hj212.qn_ns(packet.qn, zone_h)
        if sent_ns is None or packet.cn in hj212.RESPONSE_CNS:
            return
        drift_s = self.gw.limits.clock_drift_s
        if drift_s is not None and abs(sent_ns - now_ns) > drift_s * 1e9:
            last = self.gw._clock_pushed.get(packet.mn)
            if last is None or time.monotonic() - last > self.gw.limits.clock_push_every_s:
                self.gw._clock_pushed[packet.mn] = time.monotonic()
                self.gw.stats.clock_pushes += 1
                await self._send(hj212.set_time(packet, now_ns, now_ns, zone_h))

    async def _expire_splits(self) -> None:
        now = time.monotonic()
        for key, split in list(self.splits.items()):
            if now - split.started > self.gw.limits.split_timeout_s:
                del self.splits[key]
                payload = b"".join(split.frames[n] for n in sorted(split.frames))
                await self._dead(payload, "incomplete_split", f"split packet {key[1]} incomplete")

    async def _dead(self, raw: bytes, reason: str, message: str, topic: str | None = None) -> None:
        """A frame refused for its bytes (framing, CRC, fields): a bad frame of this peer."""
        await self._end_junk()  # the garbage before this came first
        if reason != "unknown_mn":  # a whole packet, just not registered: not a framing fault
            self._bad_frame()
        await self._emit(raw, reason, message, topic)

    async def _emit(
        self,
        raw: bytes,
        reason: str,
        message: str,
        topic: str | None = None,
        raw_len: int | None = None,
        raw_sha256: str | None = None,
    ) -> None:
        self.gw.stats.dead_letters += 1
        DEAD.labels(reason).inc()
        letter = GatewayDeadLetter(
            self.gw.clock(),
            topic or self.peer,
            reason,
            message,
            raw,
            raw_len=raw_len,
            raw_sha256=raw_sha256,
            source=self.source,
        )
        try:
            await self.gw.dead_letter(letter)
        except Exception:  # the sink retried what waiting could cure: this one is lost, counted
            LOST.labels(reason).inc()
            log.exception("dead letter from %s could not be stored: %s", self.peer, reason)

    # bad frames
    def _bad_frame(self) -> None:
        now = time.monotonic()
        window = self.bad_frames
        window.append(now)
        while window and now - window[0] > self.gw.limits.bad_window_s:
            window.popleft()
        if len(window) > self.gw.limits.max_bad_frames:
            self.too_many_bad = True

    def _add_junk(self, data: memoryview) -> None:
        """Bytes outside any packet, added to the current run (CR LF alone between packets
        is no garbage). Counted as a bad frame per started max_buffer_bytes."""
        if self.junk is None:
            if not bytes(data).strip(b"\r\n"):  # (at most one read past the buffer limit)
                return
            self.junk = _Junk(self.gw.limits.keep_bytes)
        chunk = self.gw.limits.max_buffer_bytes
        before = self.junk.length
        self.junk.add(data)
        # one when the run starts, one more each time it passes a multiple of the chunk
        for _ in range(_chunks(self.junk.length, chunk) - _chunks(before, chunk)):
            self._bad_frame()

    async def _end_junk(self) -> None:
        junk, self.junk = self.junk, None
        if junk is None or not junk.length:
            return
        await self._emit(
            bytes(junk.kept),
            "bad_header",
            f"{junk.length} bytes outside any packet",
            raw_len=junk.length,
            raw_sha256=junk.hasher.hexdigest(),
        )


def _cut_short(rest: bytes) -> str:
    """Why the bytes before the next packet's `##` are no whole packet."""
    try:
        return hj212.short_frame(rest) + " (the next packet starts)"
    except PayloadError:
        return "packet cut short by the next one"


def _chunks(length: int, chunk: int) -> int:
    return -(-length // chunk)  # started chunks: ceil


class _Junk:
    """A run of garbage: its first `keep` bytes, its length and hash; never all of it."""

    __slots__ = ("hasher", "keep", "kept", "length")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.kept = bytearray()
        self.length = 0
        self.hasher: Any = hashlib.sha256()

    def add(self, data: memoryview) -> None:
        room = self.keep - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.hasher.update(data)
        self.length += len(data)
