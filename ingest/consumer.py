"""The MQTT consumer on the hot path: paho-mqtt with manual acks, batches handed to a handler.

Never ack a message before the handler returned for its batch (what it produced is durable),
and never ack a message id from an earlier connection (ids are reused after a reconnect).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import ssl
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import Counter, Gauge

from hazwatch.base.retry import Backoff, RetryPolicy
from hazwatch.ingest import failures

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket

log = logging.getLogger("hazwatch.consumer")

UNACKED = Gauge("hazwatch_unacked_messages", "Messages received and not yet acknowledged")
POISONED = Counter(
    "hazwatch_poison_batch_messages_total",
    "Messages of batches that failed repeatedly (not a store outage), dead-lettered and acked",
)
RECONNECTS = Counter("hazwatch_mqtt_reconnects_total", "Reconnections to the MQTT broker")
BATCH_RETRIES = Counter(
    "hazwatch_batch_retries_total", "Batches whose handler failed and ran again"
)
OVERSIZE = Counter(
    "hazwatch_mqtt_oversize_payloads_total",
    "Payloads over the size limit: only their first bytes, length and hash kept",
)


class RawMessage(NamedTuple):
    """A message as received: nothing parsed yet. `received_ns` is the consumer's clock.

    A named tuple: the consumer makes one per message on the network thread, and a tuple is
    the cheapest object that still reads as `message.topic`.
    """

    mid: int
    topic: str
    payload: bytes
    qos: int
    received_ns: int
    generation: int  # which connection it came on; acks go only to that connection
    # (full length, SHA-256 hex) of a payload over the size limit, whose first bytes alone
    # `payload` holds (refused before it was copied whole); None for every normal message
    oversize: tuple[int, str] | None = None


# (mid, topic, payload, qos) of one PUBLISH, as decoded from the wire.
PublishPacket = tuple[int, str, bytes, int]


class MessageBatch(list[RawMessage]):
    """Messages handed to the handler at once. `seq` numbers batches in the order they were
    received (0, 1, 2, …): a handler running several batches at once keeps that order where
    it matters (hazwatch.ingest.pipeline runs the stream processors in it)."""

    seq: int = -1


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    host: str
    port: int
    client_id: str
    subscription: str
    tls: bool = False
    username: str | None = None
    password: str | None = None
    protocol: str = "5"  # "5" or "3.1.1"
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 10_000
    keepalive_s: int = 30
    batch_max_messages: int = 2000
    batch_max_wait_s: float = 0.05
    # Stop reading from the socket when this many messages wait (MQTT 3.1.1 has no
    # receive maximum, so this is the memory bound there).
    max_backlog: int = 20_000
    # Batches handled at once: while one waits for InfluxDB, the next is decoded.
    batch_workers: int = 3
    # A payload over this is never held whole: its first keep_payload_bytes go on as the
    # message's payload with its length and SHA-256 (RawMessage.oversize), the pipeline makes
    # it a too_large dead letter (Settings.max_payload_bytes, deadletter_keep_kb).
    max_payload_bytes: int = 64 * 1024
    keep_payload_bytes: int = 64 * 1024
    # Stop reading while the kept beginnings of oversize payloads waiting for the handler
    # take more than this (a flood of them would otherwise fill memory at receive_maximum x
    # keep_payload_bytes).
    max_oversize_backlog_bytes: int = 32 * 1024 * 1024
    # A batch whose handler failed this many times for a reason that is not transient (no
    # store outage: a bug) goes to `on_poison` and is acked, instead of stalling the line.
    poison_after_failures: int = 3


_RECV_BYTES = 262_144


def _find_malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None elsewhere (musl, macOS)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


# glibc keeps what a flood of big payloads made (their beginnings, the dead letters, their
# JSON on the way out) in its arenas after Python freed it: 100+ MB that no later message
# reuses. malloc_trim gives it back; called a second after oversize messages were acked.
_MALLOC_TRIM = _find_malloc_trim()
TRIM_DELAY_S = 1.0
# Where paho keeps the time bytes last came in (keepalive): renamed in paho 2.2.
_RX_CLOCK = (
    "_last_bytes_received"
    if "_last_bytes_received" in mqtt.Client.__init__.__code__.co_names
    else "_last_msg_in"
)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """MQTT variable byte integer at buf[pos:end]: (value, position after it).

    None when it runs past `end` or past its 4 bytes (incomplete or malformed: either way
    not for the fast path to judge).
    """
    value = shift = 0
    for i in range(pos, min(pos + 4, end)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    return None


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def scan_publishes(buf: bytes, pos: int, mqtt5: bool) -> tuple[list[PublishPacket], int]:
    """Decode the whole QoS 0/1 PUBLISH packets at buf[pos:], up to the first byte that is not
    one: another packet type, QoS 2, an incomplete or a malformed packet. Returns them and the
    position of that byte, where paho's own reader takes over (and reports what is wrong).

    Publish properties are skipped: hazwatch sets no topic alias maximum, so the broker
    sends no alias, and it uses none of the others.
    """
    found: list[PublishPacket] = []
    append = found.append
    end = len(buf)
    while pos + 1 < end:
        first = buf[pos]
        if first & 0xF4 != 0x30:  # PUBLISH with QoS 0 or 1 (dup and retain ignored)
            break
        # Remaining length: one byte up to 127, two up to 16 KiB; longer ones in _varint.
        length = buf[pos + 1]
        if length < 0x80:
            start = pos + 2
        elif pos + 2 < end and buf[pos + 2] < 0x80:
            length = (length & 0x7F) | (buf[pos + 2] << 7)
            start = pos + 3
        else:
            decoded = _varint(buf, pos + 1, end)
            if decoded is None:
                break
            length, start = decoded
        stop = start + length
        if stop > end or length < 2:
            break
        topic = start + 2
        topic_end = topic + ((buf[start] << 8) | buf[start + 1])
        # Each branch checks that the header fits (MQTT 5: and the properties' length byte)
        # before reading it.
        if first & 0x02:
            body = topic_end + 2
            if body + mqtt5 > stop:
                break
            mid = (buf[topic_end] << 8) | buf[topic_end + 1]
            qos = 1
        else:
            body = topic_end
            if body + mqtt5 > stop:
                break
            mid = qos = 0
        if mqtt5:
            props = buf[body]
            if props < 0x80:
                body += 1 + props
            else:
                decoded = _varint(buf, body, stop)
                if decoded is None:
                    break
                body = decoded[1] + decoded[0]
            if body > stop:
                break
        elif topic_end == topic:  # MQTT 3.1.1 forbids an empty topic
            break
        append((mid, buf[topic:topic_end].decode("utf-8", "replace"), buf[body:stop], qos))
        pos = stop
    return found, pos


class _Malformed(Exception):
    pass


# topic length, topic, packet id, properties length: the most a PUBLISH's variable header
# holds before its properties
_MAX_HEADER = 2 + 65_535 + 2 + 4


class _OversizePublish:
    """A QoS 0/1 PUBLISH too long to hold, read through as it arrives: its header parsed,
    its properties skipped, the first `keep` bytes of its payload kept and the whole of it
    hashed, chunk by chunk from the receive buffer (never accumulated, never copied whole).

    A payload of at most `max_payload` (the packet was long for its topic or properties) is
    kept whole, as any other message.
    """

    __slots__ = (
        "hasher",
        "head",
        "keep",
        "kept",
        "left",
        "max_payload",
        "mid",
        "mqtt5",
        "payload_len",
        "qos",
        "remaining",
        "skip",
        "topic",
    )

    def __init__(self, first: int, remaining: int, mqtt5: bool, max_payload: int, keep: int):
        self.remaining = remaining
        self.left = remaining  # bytes of the packet still to come
        self.qos = 1 if first & 0x02 else 0
        self.mqtt5 = mqtt5
        self.max_payload = max_payload
        self.keep = keep
        self.head = bytearray()  # the variable header, until it is whole
        self.topic = ""
        self.mid = 0
        self.skip = -1  # property bytes still to skip; -1 while the header is not whole
        self.payload_len = -1
        self.kept = bytearray()
        self.hasher: Any = None

    def feed(self, data: memoryview) -> None:
        """The next `data` of the packet (never past its end)."""
        self.left -= len(data)
        while data:
            if self.skip < 0:
                needed = self._header_needs()
                if needed:
                    self.head += data[:needed]
                    data = data[needed:]
                continue
            if self.skip:
                skipped = min(self.skip, len(data))
                self.skip -= skipped
                data = data[skipped:]
                continue
            room = self.keep - len(self.kept)
            if room > 0:
                self.kept += data[:room]
            if self.hasher is not None:
                self.hasher.update(data)
            break
        if self.left == 0:
            if self.skip < 0:
                self._header_needs()  # whole with the last byte: parsed now
            if self.skip:
                raise _Malformed("the packet ends inside its header")

    def _header_needs(self) -> int:
        """How many more header bytes are needed; 0 once it is whole (and parsed)."""
        head = self.head
        if len(head) < 2:
            return 2 - len(head)
        end = 2 + ((head[0] << 8) | head[1]) + 2 * self.qos
        props = 0
        if self.mqtt5:
            for i in range(end, end + 4):
                if len(head) <= i:
                    return i + 1 - len(head)
                props |= (head[i] & 0x7F) << (7 * (i - end))
                if not head[i] & 0x80:
                    end = i + 1
                    break
            else:
                raise _Malformed("properties length over 4 bytes")
        if len(head) < end:
            return end - len(head)
        if self.skip < 0:  # whole: parse it once
            topic_end = 2 + ((head[0] << 8) | head[1])
            self.topic = head[2:topic_end].decode("utf-8", "replace")
            if self.qos:
                self.mid = (head[topic_end] << 8) | head[topic_end + 1]
            self.payload_len = self.remaining - end - props
            if self.payload_len < 0:
                raise _Malformed("header longer than the packet")
            self.skip = props
            if self.payload_len > self.max_payload:
                self.hasher = hashlib.sha256()
            else:
                self.keep = self.payload_len
        return 0

    def oversize(self) -> tuple[int, str] | None:
        if self.hasher is None:
            return None
        return self.payload_len, self.hasher.hexdigest()


class _BufferedClient(mqtt.Client):
    """paho-mqtt with a fast path for the messages that make up nearly all of the traffic.

    paho reads a packet as a header byte, the length byte by byte, then the body, each
    through a system call, and runs its generic dispatch for each. This reads up to 256 KiB
    at a time; between packets, every whole QoS 0/1 PUBLISH in that buffer is decoded in one
    tight loop (`scan_publishes`) and handed over in one `on_publish_batch` call. Everything
    else (CONNACK, SUBACK, PINGRESP, PUBACK of our own publishes, QoS 2, DISCONNECT, a
    packet split across reads, anything malformed) goes to paho's own reader, served from
    the same buffer. One loop_read() takes at most one buffer and the rest of the packet
    that buffer cuts.
    """

    _rx_buf = b""
    _rx_pos = 0
    _rx_fills_left = 0
    _big: _OversizePublish | None = None

    # Set by MqttConsumer: called with the (mid, topic, payload, qos) of received PUBLISHes,
    # in order, from the network thread. Without it paho delivers through on_message.
    on_publish_batch: Callable[[list[PublishPacket]], None] | None = None
    # A PUBLISH longer than this is read through by _OversizePublish, not by paho (which
    # would hold it whole, then copy it three times); 0: paho reads every packet.
    max_payload_bytes = 0
    keep_payload_bytes = 64 * 1024
    # Called with (mid, topic, first bytes, qos, (length, sha256)) of such a payload.
    on_oversize: Callable[[int, str, bytes, int, tuple[int, str]], None] | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        """paho's reads, served from the buffer. A new packet's first byte refills it; the
        rest of a packet cut by the end of the buffer is read exactly, so that reading stops
        at that packet's end."""
        packet = self._in_packet
        if (
            packet["have_remaining"]
            and bufsize > self.max_payload_bytes > 0
            and bufsize == packet["remaining_length"]
            and packet["command"] & 0xF4 == 0x30
            and self.on_publish_batch is not None
        ):
            # paho is about to read a long PUBLISH's body into memory: it is read through
            # by _OversizePublish instead, from the next _packet_read on.
            self._big = _OversizePublish(
                packet["command"],
                bufsize,
                self._protocol == mqtt.MQTTv5,
                self.max_payload_bytes,
                self.keep_payload_bytes,
            )
            self._in_packet = _fresh_in_packet()
            raise BlockingIOError  # paho: "nothing more for now"
        pos = self._rx_pos
        buf = self._rx_buf
        if pos >= len(buf):
            wanted = _RECV_BYTES if self._in_packet["command"] == 0 else bufsize
            buf = super()._sock_recv(wanted)  # raises BlockingIOError when nothing is there
            if not buf:
                return b""
            self._rx_buf = buf
            pos = 0
        end = pos + bufsize
        self._rx_pos = end
        return buf[pos:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """One buffer's worth, plus the end of the packet it cuts, then back to the caller:
        MqttConsumer checks its backlog between reads (backpressure)."""
        self._rx_fills_left = 1
        rc = super().loop_read(max_packets)
        # select() will not wake for bytes already in our buffer: drain them now.
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._rx_pos < len(self._rx_buf):
            if self._sock is None:
                break
            rc = super().loop_read(1)
        return rc

    def _packet_read(self) -> MQTTErrorCode:
        if self._big is not None:
            return self._read_big()
        deliver = self.on_publish_batch
        if deliver is None or self._in_packet["command"] != 0:
            # No fast path, or paho is part way through a packet: it finishes it.
            return super()._packet_read()
        if self._rx_pos >= len(self._rx_buf):
            if not self._rx_fills_left:
                return MQTTErrorCode.MQTT_ERR_AGAIN  # paho's "nothing more for now"
            self._rx_fills_left -= 1
            failed = self._refill()
            if failed is not None:
                return failed
        publishes, self._rx_pos = scan_publishes(
            self._rx_buf, self._rx_pos, self._protocol == mqtt.MQTTv5
        )
        if publishes:
            self._mark_received()
            deliver(publishes)
            if self._rx_pos >= len(self._rx_buf):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        # Not a QoS 0/1 PUBLISH, or not whole yet: paho reads it, from the buffer.
        return super()._packet_read()

    def _refill(self) -> MQTTErrorCode | None:
        """One receive into the buffer; the error as paho's reader reports it (so it
        disconnects the same way), or None when bytes came."""
        try:
            data = super()._sock_recv(_RECV_BYTES)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not data:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        self._rx_buf = data
        self._rx_pos = 0
        return None

    def _read_big(self) -> MQTTErrorCode:
        """The rest of a long PUBLISH, a receive buffer at a time; at most ~25 MB per call,
        like paho's own reader, so that acks and keepalive go on during a huge packet."""
        big = self._big
        assert big is not None
        reads_left = 100
        while True:
            pos, buf = self._rx_pos, self._rx_buf
            if pos < len(buf):
                end = min(len(buf), pos + big.left)
                try:
                    big.feed(memoryview(buf)[pos:end])
                except _Malformed as exc:
                    self._big = None
                    self._easy_log(mqtt.MQTT_LOG_ERR, "malformed PUBLISH: %s", exc)
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                self._rx_pos = end
                if big.left == 0:
                    self._big = None
                    self._deliver_big(big)
                    return MQTTErrorCode.MQTT_ERR_SUCCESS
            if not reads_left:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            reads_left -= 1
            failed = self._refill()
            if failed is not None:
                return failed
            self._mark_received()

    def _deliver_big(self, big: _OversizePublish) -> None:
        payload = bytes(big.kept)
        oversize = big.oversize()
        if oversize is not None and self.on_oversize is not None:
            self.on_oversize(big.mid, big.topic, payload, big.qos, oversize)
        elif self.on_publish_batch is not None:
            self.on_publish_batch([(big.mid, big.topic, payload, big.qos)])

    def _mark_received(self) -> None:
        # paho's keepalive pings, and gives up, by the time bytes last came in.
        with self._msgtime_mutex:
            setattr(self, _RX_CLOCK, mqtt.time_func())

    def _handle_publish(self) -> MQTTErrorCode:
        """A PUBLISH that paho read (split across reads): the fast path's decoder, one message.

        A malformed one and QoS 2 go through paho unchanged (it disconnects on the first).
        """
        deliver = self.on_publish_batch
        if deliver is None:
            return super()._handle_publish()
        body = bytes(self._in_packet["packet"])
        # The fixed header again, so the packet goes through the same decoder.
        header = bytes([self._in_packet["command"]]) + _encode_varint(len(body))
        publishes, _ = scan_publishes(header + body, 0, self._protocol == mqtt.MQTTv5)
        if not publishes:
            return super()._handle_publish()
        deliver(publishes)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def reconnect(self) -> MQTTErrorCode:
        # Bytes of an earlier connection must never be read as this one's.
        self._reset_rx()
        return super().reconnect()

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK a batch of QoS 1 message ids in one write instead of one per message.

        paho's ack() queues one packet and, outside its own loop thread, writes it at once:
        two system calls per message. The PUBACKs here are the ones ack() would send
        (fixed header 0x40, length 2, packet id; MQTT 5 lets a success PUBACK omit its
        reason code), queued as one buffer for the network thread to write.
        """
        if not mids:
            return
        data = struct.pack(f">{len(mids)}I", *[0x4002_0000 | mid for mid in mids])
        self._packet_queue(mqtt.PUBACK, data, 0, 0)

    def _reset_rx(self) -> None:
        self._rx_buf = b""
        self._rx_pos = 0
        self._big = None


def _fresh_in_packet() -> _InPacket:
    """paho's state between packets (as its _packet_read leaves it)."""
    return {
        "command": 0,
        "have_remaining": 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": 0,
        "packet": bytearray(b""),
        "to_process": 0,
        "pos": 0,
    }


Handler = Callable[[list[RawMessage]], None]
# (batch, the last failure, its traceback): dead-letter every message of a poison batch
PoisonHandler = Callable[[list[RawMessage], BaseException, str], None]


class MqttConsumer:
    """Receives on a persistent session and hands batches to `handler` on a worker thread.

    The handler returns only when the batch is durable; then the batch is acked. When the
    handler raises, the same batch is retried with backoff (nothing is acked, reading stops
    once the backlog is full: backpressure) — unless it failed `poison_after_failures` times
    for a reason `is_transient` does not call transient: then `on_poison` dead-letters it and
    it is acked.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        handler: Handler,
        *,
        on_poison: PoisonHandler | None = None,
        is_transient: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.on_poison = on_poison
        self.is_transient = is_transient or failures.is_transient
        self._cond = threading.Condition()
        self._pending: list[RawMessage] = []
        self._oldest_ns = 0
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._stopping = threading.Event()
        self._next_seq = 0
        self._drained = threading.Event()
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.received = 0
        self.acked = 0
        self._in_handler = 0
        self._oversize_held = 0  # bytes of oversize payloads' beginnings not yet acked
        self._trim_at = 0.0  # monotonic time to give freed memory back to the system; 0: no
        self._in_hand: dict[int, list[int]] = {}  # batch seq → [oldest received_ns, retries]
        self._workers_left = 0
        self._threads: list[threading.Thread] = []
        self.client = self._make_client()

    # paho client setup
    def _make_client(self) -> _BufferedClient:
        cfg = self.config
        if cfg.protocol == "5":
            client = _BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            client = _BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.client_id,
                clean_session=False,
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set_context(ssl.create_default_context())
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(1000)  # our own publishes (dead letters, alerts)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish_batch = self._on_publishes
        client.on_oversize = self._on_oversize
        client.max_payload_bytes = cfg.max_payload_bytes
        client.keep_payload_bytes = min(cfg.keep_payload_bytes, cfg.max_payload_bytes)
        return client

    def _connect_properties(self) -> Properties | None:
        if self.config.protocol != "5":
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("mqtt connect refused: %s", reason_code)
            return
        self.last_error = None
        session = getattr(flags, "session_present", False)
        log.info(
            "connected to mqtt %s:%s as %s (session present: %s)",
            self.config.host,
            self.config.port,
            self.config.client_id,
            session,
        )
        if self.config.protocol == "5":
            # Retained statuses only for a new subscription, not on every reconnect.
            options = SubscribeOptions(
                qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            )
            client.subscribe(self.config.subscription, options=options)
        else:
            client.subscribe(self.config.subscription, qos=1)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        with self._gen_lock:
            self._generation += 1
        client._reset_rx()
        self.connected.clear()
        if not self._stopping.is_set():
            self.last_error = f"disconnected from the broker: {reason_code}"
            log.warning("mqtt disconnected: %s", reason_code)

    def _on_message(self, client, userdata, message):  # type: ignore[no-untyped-def]
        # Only QoS 2 comes this way (paho's own path); treated like the rest.
        self._on_publishes([(message.mid, message.topic, message.payload, message.qos)])

    def _on_publishes(self, publishes: list[PublishPacket]) -> None:
        now = time.time_ns()
        generation = self._generation
        new = tuple.__new__  # RawMessage's own __new__ is a Python call per message
        limit = self.config.max_payload_bytes
        raws = [
            new(RawMessage, (mid, topic, payload, qos, now, generation, None))
            if len(payload) <= limit
            else self._cut(mid, topic, payload, qos, now, generation)
            for mid, topic, payload, qos in publishes
        ]
        self._enqueue(raws, now)

    def _cut(
        self, mid: int, topic: str, payload: bytes, qos: int, now: int, generation: int
    ) -> RawMessage:
        """A payload over the limit that came whole in one receive buffer (≤ 256 KiB): only
        its first bytes go on, with its length and hash."""
        whole = memoryview(payload)
        oversize = (len(payload), hashlib.sha256(whole).hexdigest())
        head = bytes(whole[: self.client.keep_payload_bytes])
        return self._oversize_message(mid, topic, head, qos, now, generation, oversize)

    def _on_oversize(
        self, mid: int, topic: str, head: bytes, qos: int, oversize: tuple[int, str]
    ) -> None:
        """A payload over the limit read through by the client, never held whole."""
        now = time.time_ns()
        raw = self._oversize_message(mid, topic, head, qos, now, self._generation, oversize)
        self._enqueue([raw], now)

    def _oversize_message(
        self,
        mid: int,
        topic: str,
        head: bytes,
        qos: int,
        now: int,
        generation: int,
        oversize: tuple[int, str],
    ) -> RawMessage:
        OVERSIZE.inc()
        with self._cond:
            self._oversize_held += len(head)
        return RawMessage(mid, topic, head, qos, now, generation, oversize)

    def _enqueue(self, raws: list[RawMessage], now: int) -> None:
        with self._cond:
            pending = self._pending
            if not pending:
                self._oldest_ns = now
            pending += raws
            self.received += len(raws)
            full_batches = len(pending) // self.config.batch_max_messages
            if full_batches:
                self._cond.notify(full_batches)

    # lifecycle
    def start(self) -> None:
        self._workers_left = self.config.batch_workers
        targets = [("mqtt-net", self._network_loop)] + [
            (f"mqtt-batch-{n}", self._batch_loop) for n in range(self.config.batch_workers)
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 30.0) -> None:
        """Stop reading, hand the last batch to the handler, ack it, then disconnect."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._drained.wait(timeout)
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def backlog(self) -> int:
        return len(self._pending) + self._in_handler

    def unacked(self) -> tuple[float, int]:
        """(age in seconds of the oldest message received and not yet acked, the most times
        a batch in hand has been retried): what /api/health judges a stalled line by."""
        now = time.time_ns()
        with self._cond:
            oldest = [entry[0] for entry in self._in_hand.values()]
            if self._pending:
                oldest.append(self._pending[0].received_ns)
            retries = max((entry[1] for entry in self._in_hand.values()), default=0)
        age_s = (now - min(oldest)) / 1e9 if oldest else 0.0
        return max(age_s, 0.0), retries

    # network thread: connect, read (unless the backlog is full), write acks, reconnect
    def _network_loop(self) -> None:
        cfg = self.config
        # paho writes queued packets from the caller's thread unless it believes a loop
        # thread owns the socket; this thread does, so acks from the batch thread are
        # written here.
        self.client._thread = threading.current_thread()
        # jitter: many workers losing one broker must not all come back in the same instant
        backoff = Backoff(RetryPolicy(max_s=None, first_delay_s=0.2, max_delay_s=10.0, jitter=0.5))
        connected_once = False
        while not self._drained.is_set():
            if self._trim_at and time.monotonic() >= self._trim_at:
                self._trim_at = 0.0
                if _MALLOC_TRIM is not None:
                    _MALLOC_TRIM()
            if self._stopping.is_set():
                # Read nothing more; keep writing until the last batch's acks are out.
                if self.client.want_write():
                    self.client.loop_write()
                else:
                    self._drained.wait(0.01)
                continue
            if not self.connected.is_set() and self.client.socket() is None:
                try:
                    if connected_once:
                        RECONNECTS.inc()
                        self.client.reconnect()
                    else:
                        if cfg.protocol == "5":
                            self.client.connect(
                                cfg.host,
                                cfg.port,
                                keepalive=cfg.keepalive_s,
                                clean_start=False,
                                properties=self._connect_properties(),
                            )
                        else:  # 3.1.1: clean_session=False was set on the client
                            self.client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
                        connected_once = True
                    backoff.succeeded()
                except Exception as exc:  # never let the network thread die
                    self.last_error = f"cannot reach the broker {cfg.host}:{cfg.port}: {exc}"
                    pause = backoff.failed()
                    log.warning("%s; retrying in %.1f s", self.last_error, pause)
                    self._stopping.wait(pause)
                    continue
            if (
                len(self._pending) >= cfg.max_backlog
                or self._oversize_held > cfg.max_oversize_backlog_bytes
            ):
                # Backpressure: keep the connection alive and acks flowing, read nothing.
                self.client.loop_write()
                self.client.loop_misc()
                with self._cond:
                    self._cond.wait(0.05)
                continue
            rc = self.client.loop(timeout=0.1)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                self.connected.clear()
                self._stopping.wait(backoff.failed())
        for _ in range(100):
            if self.client.socket() is None or not self.client.want_write():
                break
            self.client.loop_write()
        if self.client.socket() is not None:
            self.client.disconnect()
            self.client.loop_write()

    # batch thread: hand batches to the handler, then ack them
    def _take_batch(self) -> MessageBatch | None:
        cfg = self.config
        with self._cond:
            while True:
                if self._pending:
                    waited_s = (time.time_ns() - self._oldest_ns) / 1e9
                    if (
                        len(self._pending) >= cfg.batch_max_messages
                        or waited_s >= cfg.batch_max_wait_s
                        or self._stopping.is_set()
                    ):
                        batch = MessageBatch(self._pending[: cfg.batch_max_messages])
                        batch.seq = self._next_seq
                        self._next_seq += 1
                        del self._pending[: cfg.batch_max_messages]
                        if self._pending:
                            self._oldest_ns = self._pending[0].received_ns
                        self._in_handler += len(batch)
                        return batch
                    self._cond.wait(max(cfg.batch_max_wait_s - waited_s, 0.001))
                elif self._stopping.is_set():
                    return None
                else:
                    self._cond.wait(0.2)

    def _batch_loop(self) -> None:
        try:
            while True:
                batch = self._take_batch()
                if batch is None:
                    break
                UNACKED.set(self.backlog)
                backoff = Backoff(RetryPolicy(max_s=None, first_delay_s=0.1, max_delay_s=5.0))
                # [oldest received_ns, retries so far] of this batch, for health()
                in_hand = [batch[0].received_ns if batch else time.time_ns(), 0]
                with self._cond:
                    self._in_hand[batch.seq] = in_hand
                permanent = 0  # failures of this batch that were not a store outage
                while True:
                    try:
                        self.handler(batch)
                        break
                    except Exception as exc:
                        BATCH_RETRIES.inc()
                        in_hand[1] += 1
                        if not self.is_transient(exc):
                            permanent += 1
                        if self._poisoned(batch, exc, permanent):
                            break
                        self.last_error = f"batch handler failed: {exc}"
                        pause = backoff.failed()
                        log.exception("batch of %d failed; retrying in %.1f s", len(batch), pause)
                        if self._stopping.wait(pause):
                            # Shutting down: leave the batch unacked; the broker redelivers.
                            return
                self._ack(batch)
                with self._cond:
                    self._in_handler -= len(batch)
                    if self._oversize_held:
                        held = sum(len(m.payload) for m in batch if m.oversize is not None)
                        if held:
                            self._oversize_held -= held
                            self._trim_at = time.monotonic() + TRIM_DELAY_S
                    self._in_hand.pop(batch.seq, None)
                UNACKED.set(self.backlog)
        finally:
            with self._cond:
                self._workers_left -= 1
                if self._workers_left == 0:
                    self._drained.set()

    def _poisoned(self, batch: MessageBatch, exc: BaseException, count: int) -> bool:
        """True when the batch has been handed to on_poison (dead-lettered): ack it."""
        if self.on_poison is None or count < self.config.poison_after_failures:
            return False
        try:
            self.on_poison(batch, exc, "".join(traceback.format_exception(exc)))
        except Exception:
            log.exception("could not dead-letter a poison batch of %d; retrying it", len(batch))
            return False
        POISONED.inc(len(batch))
        log.error("batch of %d failed %d times (%s): dead-lettered", len(batch), count, exc)
        return True

    def _ack(self, batch: list[RawMessage]) -> None:
        with self._gen_lock:
            generation = self._generation
            mids = [m.mid for m in batch if m.qos == 1 and m.generation == generation]
            self.client.ack_many(mids)
            self.acked += len(mids)
        # Messages of an earlier connection are redelivered by the broker (same identity,
        # so the second write overwrites the first).

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish hazwatch's own output (dead letters, alerts); queued while offline."""
        self.client.publish(topic, payload, qos=qos)
