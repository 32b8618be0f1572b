"""MqttConsumer's fast path against a real Mosquitto: thousands of QoS 1 messages, each delivered
once and in order, each acked, so the same session gets nothing again when it comes back.

Never mock the broker, and never sleep to wait: wait_for polls what the handler recorded.
"""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hazwatch.ingest.consumer import ConsumerConfig, MqttConsumer, RawMessage
from tests.services import Mosquitto, wait_for

pytestmark = pytest.mark.integration

QUEUED = 6000  # waiting for the session before the consumer connects: read in big buffers
LIVE = 2000  # sent while it is connected


class Recorder:
    """The consumer's handler: keeps (topic, payload, qos) of every message, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self._lock = threading.Lock()

    def __call__(self, batch: list[RawMessage]) -> None:
        with self._lock:
            self.messages.extend((m.topic, m.payload, m.qos) for m in batch)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)


def story(prefix: str, first: int, count: int) -> list[tuple[str, bytes]]:
    """Device messages of the usual ~130 bytes, with an empty one and a 20 KiB one now and
    then (a three-byte length, and a packet that no single read holds whole)."""
    families = ("rfid/rfi-01/read", "scale/sca-02/weight", "air/air-13/reading", "camera/c/frame")
    out = []
    for seq in range(first, first + count):
        topic = f"{prefix}/{families[seq % len(families)]}"
        if seq % 997 == 5:
            payload = b""
        elif seq % 251 == 7:
            payload = f'{{"seq":{seq},"jpeg":"'.encode() + b"J" * 20_480 + b'"}'
        else:
            payload = f'{{"seq":{seq},"epc":"E2801160600002084A{seq:06d}","rssi":-52.5,'.encode()
            payload += b'"antenna":2,"note":"' + b"n" * (seq % 60) + b'"}'
        out.append((topic, payload))
    return out


def create_session(broker: Mosquitto, client_id: str, protocol: str, topic: str) -> None:
    """Subscribe once on a persistent session and leave, so the broker queues for it."""
    subscribed = threading.Event()
    if protocol == "5":
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        connect = {"clean_start": False, "properties": props}
    else:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        connect = {}
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", broker.port, **connect)  # type: ignore[arg-type]
    client.loop_start()
    try:
        wait_for(subscribed.is_set, 10, f"{client_id} subscribed")
    finally:
        client.disconnect()
        client.loop_stop()


def publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, one publisher: the broker keeps their order."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()


def consumer_for(
    broker: Mosquitto, client_id: str, protocol: str, topic: str, handler: Recorder
) -> MqttConsumer:
    config = ConsumerConfig(
        host="127.0.0.1",
        port=broker.port,
        client_id=client_id,
        subscription=topic,
        protocol=protocol,
        batch_max_messages=250,
        batch_max_wait_s=0.02,
    )
    return MqttConsumer(config, handler)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_thousands_of_messages_arrive_once_in_order_and_all_are_acked(
    mosquitto: Mosquitto, protocol: str
) -> None:
    client_id = f"fastpath-{uuid.uuid4().hex[:8]}"
    prefix = f"fp/{client_id}"
    create_session(mosquitto, client_id, protocol, f"{prefix}/#")
    queued = story(prefix, 0, QUEUED)
    publish(mosquitto, queued)

    recorder = Recorder()
    consumer = consumer_for(mosquitto, client_id, protocol, f"{prefix}/#", recorder)
    consumer.start()
    try:
        wait_for(lambda: recorder.count() >= QUEUED, 60, f"{QUEUED} queued messages handled")
        live = story(prefix, QUEUED, LIVE)
        publish(mosquitto, live)
        total = QUEUED + LIVE
        wait_for(lambda: recorder.count() >= total, 60, f"{LIVE} live messages handled")
        wait_for(lambda: consumer.acked >= total, 30, f"{total} messages acked")
    finally:
        consumer.close()
    assert recorder.messages == [(t, p, 1) for t, p in queued + live]
    assert consumer.received == total and consumer.acked == total

    # Back on the same session: an unacked message would come again before this one.
    last = story(prefix, total, 1)
    publish(mosquitto, last)
    again = Recorder()
    consumer = consumer_for(mosquitto, client_id, protocol, f"{prefix}/#", again)
    consumer.start()
    try:
        wait_for(lambda: again.count() >= 1, 30, "the message sent while away")
        wait_for(lambda: consumer.acked >= 1, 30, "its ack")
    finally:
        consumer.close()
    assert again.messages == [(t, p, 1) for t, p in last]


class Buggy(Recorder):
    """A handler with a bug that every batch holding a `…/poison` topic meets, and a store that
    is down for the first `outages` calls (StoreUnavailable: transient)."""

    def __init__(self, outages: int = 0) -> None:
        super().__init__()
        self.outages = outages
        self.calls = 0
        self.poisoned: list[tuple[list[str], str, str]] = []

    def __call__(self, batch: list[RawMessage]) -> None:
        from hazwatch.base.errors import StoreUnavailable

        self.calls += 1
        if self.outages > 0:
            self.outages -= 1
            raise StoreUnavailable("InfluxDB down")
        if any(m.topic.endswith("/poison") for m in batch):
            raise TypeError("a bug this batch meets")
        super().__call__(batch)

    def on_poison(self, batch: list[RawMessage], exc: BaseException, trace: str) -> None:
        self.poisoned.append(([m.topic for m in batch], str(exc), trace))


def test_a_poison_batch_is_handed_over_and_acked_while_an_outage_only_retries(
    mosquitto: Mosquitto,
) -> None:
    """Issue #10 item 5: after three failures that are not a store outage the batch is
    dead-lettered (on_poison, with the traceback) and acked; the line goes on. A store outage,
    however long, never makes a batch poison."""
    client_id = f"poison-{uuid.uuid4().hex[:8]}"
    prefix = f"pz/{client_id}"
    create_session(mosquitto, client_id, "5", f"{prefix}/#")
    handler = Buggy(outages=6)
    config = ConsumerConfig(
        host="127.0.0.1",
        port=mosquitto.port,
        client_id=client_id,
        subscription=f"{prefix}/#",
        batch_max_messages=50,
        batch_max_wait_s=0.02,
    )
    consumer = MqttConsumer(config, handler, on_poison=handler.on_poison)
    consumer.start()
    try:
        wait_for(consumer.connected.is_set, 10, "connected")
        publish(mosquitto, [(f"{prefix}/ok/{i}", b"{}") for i in range(10)])
        wait_for(lambda: handler.count() == 10, 60, "through the outage")
        assert handler.poisoned == [] and handler.calls >= 7
        publish(mosquitto, [(f"{prefix}/1/poison", b"{}")])
        wait_for(lambda: handler.poisoned, 30, "the poison batch handed over")
        publish(mosquitto, [(f"{prefix}/ok/after", b"{}")])
        wait_for(lambda: handler.count() == 11, 30, "the line goes on")
        wait_for(lambda: consumer.acked == 12, 30, "all acked, the poison too")
    finally:
        consumer.close()
    ((topics, error, trace),) = handler.poisoned
    assert topics == [f"{prefix}/1/poison"] and error == "a bug this batch meets"
    assert "TypeError" in trace and "Traceback" in trace
