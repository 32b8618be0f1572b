"""The MQTT consumer on the hot path: paho-mqtt with manual acks, batches handed to a handler.

Never ack a message before the handler returned for its batch (what it produced is durable),
and never ack a message id from an earlier connection (ids are reused after a reconnect).
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import Counter, Gauge

log = logging.getLogger("hazwatch.consumer")

UNACKED = Gauge("hazwatch_unacked_messages", "Messages received and not yet acknowledged")
RECONNECTS = Counter("hazwatch_mqtt_reconnects_total", "Reconnections to the MQTT broker")
BATCH_RETRIES = Counter(
    "hazwatch_batch_retries_total", "Batches whose handler failed and ran again"
)


@dataclass(slots=True)
class RawMessage:
    """A message as received: nothing parsed yet. `received_ns` is the consumer's clock."""

    mid: int
    topic: str
    payload: bytes
    qos: int
    received_ns: int
    generation: int  # which connection it came on; acks go only to that connection


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
    receive_maximum: int = 2000
    keepalive_s: int = 30
    batch_max_messages: int = 1000
    batch_max_wait_s: float = 0.05
    # Stop reading from the socket when this many messages wait (MQTT 3.1.1 has no
    # receive maximum, so this is the memory bound there).
    max_backlog: int = 20_000
    # Batches handled at once: while one waits for InfluxDB, the next is decoded.
    batch_workers: int = 2


class _BufferedClient(mqtt.Client):
    """paho's reader asks the socket for one byte, then the length bytes, then the body:
    three system calls per message. This reads up to 256 KiB at a time and serves paho
    from that buffer, and keeps reading while the buffer holds whole packets."""

    _rx_buf = b""
    _rx_pos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rx_pos
        buf = self._rx_buf
        if pos >= len(buf):
            buf = super()._sock_recv(262_144)  # raises BlockingIOError when nothing is there
            if not buf:
                return b""
            self._rx_buf = buf
            pos = 0
        end = pos + bufsize
        self._rx_pos = end
        return buf[pos:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # select() will not wake for bytes already in our buffer: drain them now.
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._rx_pos < len(self._rx_buf):
            if self._sock is None:
                break
            rc = super().loop_read(1)
        return rc

    # Set by MqttConsumer: called with (mid, topic, payload, qos) for every PUBLISH.
    on_publish_fast: Callable[[int, str, bytes, int], None] | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        """A lean PUBLISH decoder for the hot path (QoS 0 and 1).

        paho builds an MQTTMessage and parses MQTT 5 properties into a Properties object
        for every message, about half of its per-message cost. hazwatch uses no publish
        properties (it sets no topic alias maximum, so the broker sends none), so they are
        skipped; QoS 2 and a client without the fast callback go through paho unchanged.
        """
        handler = self.on_publish_fast
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if handler is None or qos == 2:
            return super()._handle_publish()
        packet: bytes = self._in_packet["packet"]
        topic_len = int.from_bytes(packet[0:2], "big")
        pos = 2 + topic_len
        topic = packet[2:pos].decode("utf-8", "replace")
        mid = 0
        if qos:
            mid = int.from_bytes(packet[pos : pos + 2], "big")
            pos += 2
        if self._protocol == mqtt.MQTTv5:
            length = shift = 0
            while True:  # variable byte integer: the properties' length
                byte = packet[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            pos += length
        handler(mid, topic, packet[pos:], qos)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK a batch of QoS 1 message ids in one write instead of one per message.

        paho's ack() queues one packet and, outside its own loop thread, writes it at once:
        two system calls per message. The PUBACKs here are the ones ack() would send
        (fixed header 0x40, length 2, packet id; MQTT 5 lets a success PUBACK omit its
        reason code), queued as one buffer for the network thread to write.
        """
        if not mids:
            return
        data = b"".join([b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids])
        self._packet_queue(mqtt.PUBACK, data, 0, 0)

    def _reset_rx(self) -> None:
        self._rx_buf = b""
        self._rx_pos = 0


Handler = Callable[[list[RawMessage]], None]


class MqttConsumer:
    """Receives on a persistent session and hands batches to `handler` on a worker thread.

    The handler returns only when the batch is durable; then the batch is acked. When the
    handler raises, the same batch is retried with backoff (nothing is acked, reading stops
    once the backlog is full: backpressure).
    """

    def __init__(self, config: ConsumerConfig, handler: Handler) -> None:
        self.config = config
        self.handler = handler
        self._cond = threading.Condition()
        self._pending: list[RawMessage] = []
        self._oldest_ns = 0
        self._generation = 0
        self._gen_lock = threading.Lock()
        self._stopping = threading.Event()
        self._drained = threading.Event()
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.received = 0
        self.acked = 0
        self._in_handler = 0
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
        client.on_publish_fast = self._on_publish
        return client

    def _connect_properties(self) -> Properties | None:
        if self.config.protocol != "5":
            return None
        props = Properties(PacketTypes.CONNECT)
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
        self._on_publish(message.mid, message.topic, message.payload, message.qos)

    def _on_publish(self, mid: int, topic: str, payload: bytes, qos: int) -> None:
        now = time.time_ns()
        raw = RawMessage(mid, topic, payload, qos, now, self._generation)
        with self._cond:
            if not self._pending:
                self._oldest_ns = now
            self._pending.append(raw)
            self.received += 1
            if len(self._pending) >= self.config.batch_max_messages:
                self._cond.notify()

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

    # network thread: connect, read (unless the backlog is full), write acks, reconnect
    def _network_loop(self) -> None:
        cfg = self.config
        # paho writes queued packets from the caller's thread unless it believes a loop
        # thread owns the socket; this thread does, so acks from the batch thread are
        # written here.
        self.client._thread = threading.current_thread()
        delay = 0.2
        connected_once = False
        while not self._drained.is_set():
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
                    delay = 0.2
                except Exception as exc:  # never let the network thread die
                    self.last_error = f"cannot reach the broker {cfg.host}:{cfg.port}: {exc}"
                    log.warning("%s; retrying in %.1f s", self.last_error, delay)
                    self._stopping.wait(delay + random.uniform(0, delay / 2))
                    delay = min(delay * 2, 10.0)
                    continue
            if len(self._pending) >= cfg.max_backlog:
                # Backpressure: keep the connection alive and acks flowing, read nothing.
                self.client.loop_write()
                self.client.loop_misc()
                with self._cond:
                    self._cond.wait(0.05)
                continue
            rc = self.client.loop(timeout=0.1)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                self.connected.clear()
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
        for _ in range(100):
            if self.client.socket() is None or not self.client.want_write():
                break
            self.client.loop_write()
        if self.client.socket() is not None:
            self.client.disconnect()
            self.client.loop_write()

    # batch thread: hand batches to the handler, then ack them
    def _take_batch(self) -> list[RawMessage] | None:
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
                        batch = self._pending[: cfg.batch_max_messages]
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
                delay = 0.1
                while True:
                    try:
                        self.handler(batch)
                        break
                    except Exception as exc:
                        BATCH_RETRIES.inc()
                        self.last_error = f"batch handler failed: {exc}"
                        log.exception("batch of %d failed; retrying in %.1f s", len(batch), delay)
                        if self._stopping.wait(delay):
                            # Shutting down: leave the batch unacked; the broker redelivers.
                            return
                        delay = min(delay * 2, 5.0)
                self._ack(batch)
                with self._cond:
                    self._in_handler -= len(batch)
                UNACKED.set(self.backlog)
        finally:
            with self._cond:
                self._workers_left -= 1
                if self._workers_left == 0:
                    self._drained.set()

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
