"""The LLRP connector: an LLRP-only RFID reader's tag reports as hazwatch's `rfid/{reader}/read`.

Never lose a read taken from the reader: it is on disk (the outbox) before the next report is
taken, and leaves the outbox only when the broker has acknowledged it (QoS 1 PUBACK).

What it speaks (EPCglobal/GS1 Low Level Reader Protocol 1.0.1, TCP port 5084, through
`llrpkit`): on every connection GET_READER_CAPABILITIES (the reader's antennas), the Impinj
extensions when the reader is an Impinj (sub-dBm peak RSSI), DELETE/ADD/ENABLE/START_ROSPEC
of its own ROSpec: every antenna asked for, report upon every tag (ROReportTrigger
Upon_N_Tags_Or_End_Of_ROSpec, N = 1), tag report content EPC, AntennaID, PeakRSSI,
ChannelIndex, First/LastSeenTimestampUTC and TagSeenCount. Each TagReportData of an
RO_ACCESS_REPORT becomes one read message (two when the reader aggregated sightings, see
`read_payloads`). Why llrpkit and not sllurp, and what the connector guarantees: the
"LLRP readers" section of docs/payloads.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from llrpkit.client import LLRPClient, check_status
from llrpkit.constants import LLRP_PORT
from llrpkit.exceptions import LLRPError, LLRPStatusError
from llrpkit.inventory import TagReport, build_rospec
from llrpkit.protocol import enums, messages
from llrpkit.reader import Reader
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.base.errors import ConfigError
from hazwatch.base.retry import Backoff, RetryPolicy
from hazwatch.devices.topics import build_topic

log = logging.getLogger("hazwatch.llrp")

# The ROSpec this connector owns on the reader ("HW"): deleted and added again on every
# connection, stopped and deleted when the connector stops. Other ROSpecs are left alone.
ROSPEC_ID = 0x4857
MICROS_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# RfidRead's bounds (devices/rfid.py): a value outside them is left out, the read is kept.
RSSI_RANGE = (-150.0, 20.0)
MAX_ANTENNA = 64


# ── reads ────────────────────────────────────────────────────────────────────────────────────


def _reader_time(micros: int) -> str | int:
    """A reader's UTC microseconds as RFC 3339 with microseconds (hazwatch keeps them all);
    epoch milliseconds when no calendar holds it (hazwatch then says why it refuses it)."""
    seconds, fraction = divmod(micros, MICROS_PER_S)
    try:
        when = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return micros // 1000
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}.{fraction:06d}Z"


@dataclass(slots=True)
class ReadNotes:
    """What the conversion had to decide, counted for the connector's summary."""

    no_utc_time: int = 0  # the reader sent no FirstSeen/LastSeenTimestampUTC: receipt time used
    aggregated: int = 0  # a TagReportData covering several sightings (two reads published)
    rssi_dropped: int = 0  # a peak RSSI outside −150…20 dBm, left out of the read
    antenna_dropped: int = 0  # an antenna id above 64, left out of the read


def read_payloads(tag: TagReport, received_us: int, notes: ReadNotes | None = None) -> list[bytes]:
    """hazwatch's read messages (devices/rfid.py RfidRead) for one TagReportData.

    `ts` is the reader's FirstSeenTimestampUTC: with one report per tag (N = 1) it is the one
    sighting the report stands for. A reader that aggregates anyway (TagSeenCount > 1 with a
    later LastSeenTimestampUTC) gives two reads, its first and its last sighting, so that a
    pass built from reads spans what the reader saw; the sightings between are not reported.
    Without a UTC timestamp (a reader with only an uptime clock) the receipt time is used.
    The EPC goes as the reader sent it: one that hazwatch refuses becomes a dead letter.
    """
    notes = notes if notes is not None else ReadNotes()
    body: dict[str, Any] = {"epc": tag.epc.hex().upper()}
    if tag.rssi_dbm is not None:
        if RSSI_RANGE[0] <= tag.rssi_dbm <= RSSI_RANGE[1]:
            body["rssi"] = round(tag.rssi_dbm, 2)
        else:
            notes.rssi_dropped += 1
    if tag.antenna is not None:
        if tag.antenna <= MAX_ANTENNA:
            body["antenna"] = tag.antenna
        else:
            notes.antenna_dropped += 1
    first, last = tag.first_seen_us, tag.last_seen_us
    if first is None and last is None:
        notes.no_utc_time += 1
        first = received_us
    times = [first if first is not None else last]
    if (
        first is not None
        and last is not None
        and last > first
        and tag.seen_count is not None
        and tag.seen_count > 1
    ):
        notes.aggregated += 1
        times.append(last)
    return [orjson.dumps({"ts": _reader_time(t), **body}) for t in times if t is not None]


# ── the outbox ───────────────────────────────────────────────────────────────────────────────


class Outbox:
    """Reads taken from the reader and not yet acknowledged by the broker, in one SQLite file.

    Bounded by `max_reads`: when full, new reads are refused and counted (`refused`), never
    one already kept (as the camera agent's evidence folder). WAL with synchronous=NORMAL: a
    kept read survives the connector's crash or kill; a power cut may lose the last commits.
    Used by one thread at a time (the connector's event loop once it runs).
    """

    def __init__(self, path: Path, max_reads: int = 1_000_000) -> None:
        if max_reads < 1:
            raise ConfigError(f"the outbox must hold at least one read, got {max_reads}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_reads = path, max_reads
        # built where the program is set up, used by its event loop's thread: one at a time
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # AUTOINCREMENT: a seq is never reused, even once the outbox has emptied
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL)"
        )
        self.count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        self.refused = 0

    def add(self, rows: Sequence[tuple[str, bytes]]) -> int:
        """Keep `rows` (topic, payload) in one transaction; how many were kept."""
        room = max(0, self.max_reads - self.count)
        kept = rows[:room]
        if len(kept) < len(rows):
            before = self.refused
            self.refused += len(rows) - len(kept)
            if before == 0 or self.refused // 1000 != before // 1000:
                log.warning(
                    "outbox %s is full (%d reads the broker has not acknowledged): %d reads "
                    "refused so far",
                    self.path,
                    self.count,
                    self.refused,
                )
        if kept:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO outbox (topic, payload) VALUES (?, ?)", kept)
            self.count += len(kept)
        return len(kept)

    def after(self, seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """The oldest `limit` reads kept after `seq`."""
        rows = self._db.execute(
            "SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [(int(s), str(t), bytes(p)) for s, t, p in rows]

    def remove(self, seqs: Sequence[int]) -> None:
        """The broker has these: forget them."""
        if not seqs:
            return
        removed = 0
        with self._db:
            self._db.execute("BEGIN")
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                removed += self._db.execute(
                    f"DELETE FROM outbox WHERE seq IN ({marks})", chunk
                ).rowcount
        self.count -= removed

    def close(self) -> None:
        self._db.close()


# ── MQTT ─────────────────────────────────────────────────────────────────────────────────────


class ReadPublisher:
    """paho-mqtt client of one reader: QoS 1 reads, retained status with a last will.

    A read handed to paho stays in paho until its PUBACK, and paho sends it again (DUP) after
    a reconnect; `acked()` tells which outbox seqs the broker has. At most `window` reads are
    handed to paho at a time: the rest wait in the outbox, on disk.
    """

    def __init__(self, url: str, client_id: str, status_topic: str, window: int = 200) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(f"the MQTT URL must be mqtt://… or mqtts://…, got {url!r}")
        self.status_topic, self.window = status_topic, window
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        if parts.username:
            self._client.username_pw_set(
                unquote(parts.username), unquote(parts.password) if parts.password else None
            )
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._client.will_set(status_topic, orjson.dumps({"online": False}), qos=1, retain=True)
        self._client.reconnect_delay_set(1, 30)
        self._client.max_inflight_messages_set(window)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.connected = threading.Event()
        self.connects = 0
        self._acks: deque[int] = deque()  # mids, appended by paho's thread
        self._seq_of: dict[int, int] = {}  # mid -> outbox seq; the event loop's thread only
        self._status: bytes | None = None
        self._closing = False
        self.on_ack: Any = None  # called from paho's thread after a PUBACK (wakes the pump)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self.connects += 1
        self.connected.set()
        if self._status is not None:
            self._client.publish(self.status_topic, self._status, qos=1, retain=True)
        if self.on_ack is not None:
            self.on_ack()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("broker connection lost (%s); paho reconnects", reason)
        self.connected.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.append(mid)
        if self.on_ack is not None:
            self.on_ack()

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    @property
    def inflight(self) -> int:
        return len(self._seq_of)

    def publish(self, seq: int, topic: str, payload: bytes) -> bool:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return False  # not queued by paho: it stays in the outbox for the next try
        self._seq_of[info.mid] = seq
        return True

    def acked(self) -> list[int]:
        """Outbox seqs the broker has acknowledged since the last call."""
        seqs = []
        while self._acks:
            seq = self._seq_of.pop(self._acks.popleft(), None)
            if seq is not None:  # None: a status message
                seqs.append(seq)
        return seqs

    def status(self, online: bool, firmware: str | None = None) -> mqtt.MQTTMessageInfo | None:
        """The reader's retained status (devices/status.py), sent again after a reconnect."""
        body: dict[str, Any] = {"online": online, "ts": time.time_ns() // 1_000_000}
        if firmware:
            body["fw"] = "".join(c for c in firmware if c.isprintable())[:64]
        self._status = orjson.dumps(body)
        if not self.connected.is_set():
            return None
        return self._client.publish(self.status_topic, self._status, qos=1, retain=True)

    def close(self, firmware: str | None = None, timeout_s: float = 2.0) -> None:
        """Say the reader is offline (no one reads it now) and disconnect."""
        info = self.status(False, firmware)
        deadline = time.monotonic() + timeout_s
        while info is not None and not _published(info) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()


def _published(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker has acknowledged a publish (paho's is_published() raises for one
    queued while disconnected; its own flag says whether it has gone out since)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return bool(info._published)


# ── the program ──────────────────────────────────────────────────────────────────────────────


def parse_reader_address(address: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` of a reader's LLRP interface (port 5084 by default)."""
    text = address.strip()
    if not text:
        raise ConfigError("the reader address is empty")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else LLRP_PORT
    except ValueError:
        raise ConfigError(f"the reader address {address!r} has no valid port") from None
    if not host or not 0 < port < 65536:
        raise ConfigError(f"the reader address {address!r} is not HOST or HOST:PORT")
    return host, port


@dataclass(frozen=True, slots=True, kw_only=True)
class LlrpSetup:
    """What one reader's connector is given. The edge reads no hazwatch settings:
    `hazwatch rfid-llrp` fills this in."""

    reader_host: str
    site: str
    reader: str  # the reader's device id in the topic and the registry
    mqtt_url: str
    outbox: Path  # the SQLite outbox file
    reader_port: int = LLRP_PORT
    antennas: tuple[int, ...] = ()  # empty: every antenna the reader reports
    session: int = 1  # the Gen2 session of the inventory (0-3)
    outbox_max_reads: int = 1_000_000
    window: int = 200  # reads handed to the broker at once, unacknowledged
    seconds: float | None = None  # stop after this long (tests, a trial run)
    drain_s: float = 10.0  # at stop, how long to wait for the broker to take the outbox
    response_timeout_s: float = 5.0  # an LLRP request unanswered this long: the link is dead
    idle_probe_s: float = 10.0  # no report for this long: ask the reader something
    reconnect_max_s: float = 30.0
    summary_every_s: float = 60.0


@dataclass(slots=True)
class LlrpStats:
    reports: int = 0  # RO_ACCESS_REPORT messages taken
    tags: int = 0  # TagReportData in them
    reads: int = 0  # read messages kept in the outbox
    published: int = 0  # reads the broker acknowledged
    refused: int = 0  # reads the full outbox refused
    pending: int = 0  # reads in the outbox at the end (sent at the next start)
    reader_connects: int = 0  # inventories started
    reader_drops: int = 0  # connections lost or refused
    broker_connects: int = 0
    lost_in_client: int = 0  # reports llrpkit's queue dropped (the connector fell behind)
    notes: ReadNotes | None = None


class ReaderLost(Exception):
    """The reader closed the connection or stopped answering: reconnect."""


class LlrpProgram:
    """One reader's connector, built from an LlrpSetup: the LLRP session with the reader, the
    outbox and the MQTT publisher. `run()` until `stop()` (safe from a signal handler) or
    `setup.seconds`; it stops the ROSpec, closes the connection, then gives the broker up to
    `setup.drain_s` to take what the outbox holds (the rest is sent at the next start)."""

    def __init__(self, setup: LlrpSetup) -> None:
        if not 0 <= setup.session <= 3:
            raise ConfigError(f"the Gen2 session must be 0-3, got {setup.session}")
        if any(not 1 <= a <= MAX_ANTENNA for a in setup.antennas):
            raise ConfigError(f"antenna ids are 1-{MAX_ANTENNA}, got {list(setup.antennas)}")
        self.setup = setup
        self.topic = build_topic(setup.site, "rfid", setup.reader, "read")
        self.outbox = Outbox(setup.outbox, setup.outbox_max_reads)
        self.publisher = ReadPublisher(
            setup.mqtt_url,
            f"llrp-{setup.site}-{setup.reader}",
            build_topic(setup.site, "rfid", setup.reader, "status"),
            setup.window,
        )
        self.notes = ReadNotes()
        self.stats = LlrpStats(notes=self.notes)
        self.firmware = ""
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._last_seq = 0  # the newest outbox seq handed to paho

    # ── control ──

    def stop(self) -> None:
        """Ask the program to stop (from a signal handler or another thread)."""
        self._stop_requested = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stop.set)

    def run(self) -> LlrpStats:
        asyncio.run(self._main())
        return self.stats

    def _wake_soon(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._wake = asyncio.Event(), asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        if self.setup.seconds is not None:
            self._loop.call_later(self.setup.seconds, self._stop.set)
        self.publisher.on_ack = self._wake_soon
        self.publisher.start()
        pump = asyncio.create_task(self._pump(), name="llrp-mqtt-pump")
        summary = asyncio.create_task(self._summaries(), name="llrp-summary")
        try:
            await self._reader_loop()
            await self._drain_outbox()
        finally:
            summary.cancel()
            pump.cancel()
            await asyncio.gather(pump, summary, return_exceptions=True)
            self.publisher.close(self.firmware)
            self._settle()  # acks up to the disconnect: not sent again at the next start
            self.stats.pending = self.outbox.count
            self.stats.refused = self.outbox.refused
            self.stats.broker_connects = self.publisher.connects
            self.outbox.close()

    # ── outbox → broker ──

    def _settle(self) -> None:
        acked = self.publisher.acked()
        if acked:
            self.outbox.remove(acked)
            self.stats.published += len(acked)

    async def _pump(self) -> None:
        assert self._wake is not None
        while True:
            self._settle()
            room = self.publisher.window - self.publisher.inflight
            if room > 0 and self.publisher.connected.is_set():
                for seq, topic, payload in self.outbox.after(self._last_seq, room):
                    if not self.publisher.publish(seq, topic, payload):
                        break
                    self._last_seq = seq
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await self._wake.wait()
            self._wake.clear()

    async def _drain_outbox(self) -> None:
        deadline = time.monotonic() + self.setup.drain_s
        while self.outbox.count and time.monotonic() < deadline:
            self._wake_soon()
            await asyncio.sleep(0.02)
        if self.outbox.count:
            log.warning(
                "reader %s: %d reads not yet acknowledged by the broker stay in %s for the "
                "next start",
                self.setup.reader,
                self.outbox.count,
                self.outbox.path,
            )

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.setup.summary_every_s)
            s = self.stats
            log.info(
                "reader %s: %d reads taken, %d published, %d in the outbox, %d refused, "
                "%d connections, %d drops",
                self.setup.reader,
                s.reads,
                s.published,
                self.outbox.count,
                self.outbox.refused,
                s.reader_connects,
                s.reader_drops,
            )

    # ── reader → outbox ──

    async def _reader_loop(self) -> None:
        assert self._stop is not None
        backoff = Backoff(
            RetryPolicy(
                max_s=None,
                first_delay_s=0.5,
                max_delay_s=self.setup.reconnect_max_s,
                jitter=0.2,
            )
        )
        while not self._stop.is_set():
            try:
                await self._session(backoff)
            except (LLRPError, OSError, ReaderLost) as exc:
                self.stats.reader_drops += 1
                self.publisher.status(False, self.firmware)
                pause = backoff.failed()
                log.warning(
                    "reader %s at %s:%d: %s; reconnecting in %.1f s",
                    self.setup.reader,
                    self.setup.reader_host,
                    self.setup.reader_port,
                    exc,
                    pause,
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stop.wait()

    async def _session(self, backoff: Backoff) -> None:
        """One connection: start the inventory, take reports until stopped or lost."""
        s = self.setup
        reader = Reader(
            s.reader_host,
            s.reader_port,
            response_timeout=s.response_timeout_s,
            connect_timeout=s.response_timeout_s * 2,
        )
        if not await self._until_stopped(reader.connect()):
            # stopped while connecting (a reader that is off can take a while to say so)
            with contextlib.suppress(LLRPError, OSError):
                await reader.close()
            return
        # connected: the ConnectionAttemptEvent, capabilities, Impinj extensions are done
        client = reader.client
        try:
            antennas = self._antennas(reader.max_antennas)
            self.firmware = reader.firmware
            with contextlib.suppress(LLRPStatusError):  # none left from a previous run
                await client.transact(messages.DELETE_ROSPEC(ro_spec_id=ROSPEC_ID))
            rospec = build_rospec(
                ro_spec_id=ROSPEC_ID,
                antennas=antennas,
                session=s.session,
                report_every_n=1,
                enable_impinj_reports=reader.impinj_extensions_enabled,
            )
            check_status(await client.transact(messages.ADD_ROSPEC(ro_spec=rospec)))
            check_status(await client.transact(messages.ENABLE_ROSPEC(ro_spec_id=ROSPEC_ID)))
            check_status(await client.transact(messages.START_ROSPEC(ro_spec_id=ROSPEC_ID)))
            self.stats.reader_connects += 1
            backoff.succeeded()
            self.publisher.status(True, self.firmware)
            log.info(
                "reader %s: inventory on antennas %s (model %s, firmware %r%s)",
                s.reader,
                ",".join(map(str, antennas)),
                reader.model_number,
                reader.firmware,
                ", Impinj extensions" if reader.impinj_extensions_enabled else "",
            )
            await self._take_reports(client)
        finally:
            self._take_queued(client)  # what arrived before the end is taken, whatever ended it
            if client.connected:
                with contextlib.suppress(LLRPError, OSError):
                    await client.transact(messages.STOP_ROSPEC(ro_spec_id=ROSPEC_ID), timeout=2)
                    await client.transact(messages.DELETE_ROSPEC(ro_spec_id=ROSPEC_ID), timeout=2)
            with contextlib.suppress(LLRPError, OSError):
                await reader.close()
            self._take_queued(client)
            self.stats.lost_in_client += client.dropped_reports

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` unless a stop comes first (then it is cancelled): whether it ran."""
        assert self._stop is not None
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LLRPError, OSError):
                await task
            return False
        task.result()  # its exception, if it failed
        return True

    def _antennas(self, reported: int) -> list[int]:
        if not self.setup.antennas:
            if reported < 1:
                raise ConfigError(f"reader {self.setup.reader} reports no antenna")
            return list(range(1, reported + 1))
        beyond = [a for a in self.setup.antennas if a > reported]
        if beyond:
            raise ConfigError(
                f"reader {self.setup.reader} has {reported} antennas; no antenna {beyond}"
            )
        return list(self.setup.antennas)

    async def _take_reports(self, client: LLRPClient) -> None:
        assert self._stop is not None
        idle_since = time.monotonic()
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(0.25):
                    report = await client.reports.get()
            except TimeoutError:
                self._note_events(client)
                if not client.connected:
                    raise ReaderLost("the reader closed the connection") from None
                if time.monotonic() - idle_since > self.setup.idle_probe_s:
                    # no report for a while: a reader that does not answer is gone
                    check_status(
                        await client.transact(
                            messages.GET_READER_CONFIG(
                                antenna_id=0,
                                requested_data=enums.GetReaderConfigRequestedData.Identification,
                                gpi_port_num=0,
                                gpo_port_num=0,
                            )
                        )
                    )
                    idle_since = time.monotonic()
                continue
            idle_since = time.monotonic()
            self._take([report])
            self._take_queued(client)

    def _take_queued(self, client: LLRPClient) -> None:
        queued: list[messages.RO_ACCESS_REPORT] = []
        while True:
            try:
                queued.append(client.reports.get_nowait())
            except asyncio.QueueEmpty:
                break
        if queued:
            self._take(queued)

    def _take(self, reports: list[messages.RO_ACCESS_REPORT]) -> None:
        received_us = time.time_ns() // 1000
        rows: list[tuple[str, bytes]] = []
        for report in reports:
            self.stats.reports += 1
            for trd in report.tag_report_datas:
                self.stats.tags += 1
                for payload in read_payloads(TagReport.from_param(trd), received_us, self.notes):
                    rows.append((self.topic, payload))
        self.stats.reads += self.outbox.add(rows)
        self._wake_soon()

    def _note_events(self, client: LLRPClient) -> None:
        """Log what the reader says about itself (its queue is bounded: read it)."""
        while True:
            try:
                event = client.events.get_nowait()
            except asyncio.QueueEmpty:
                return
            if not isinstance(event, messages.READER_EVENT_NOTIFICATION):
                continue
            data = event.reader_event_notification_data
            if data.reader_exception_event is not None:
                log.warning("reader %s: %s", self.setup.reader, data.reader_exception_event.message)
            if data.report_buffer_overflow_error_event is not None:
                log.error("reader %s: its report buffer overflowed (reads lost)", self.setup.reader)
            if data.antenna_event is not None:
                log.warning(
                    "reader %s: antenna %d %s",
                    self.setup.reader,
                    data.antenna_event.antenna_id,
                    "connected" if data.antenna_event.event_type else "disconnected",
                )
