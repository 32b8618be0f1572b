"""Payloads over the size limit: never held whole, handed on as their first bytes, length, hash.

The consumer reads from a socket stand-in cut at any point; what reaches its backlog must be
every normal message unchanged and every oversize one cut, with the whole payload's length and
SHA-256, while paho's own packet buffer never holds more than the limit.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTErrorCode

from hazwatch.ingest.consumer import ConsumerConfig, MqttConsumer, RawMessage
from tests.unit.test_consumer_fastpath import SOME_PROPERTIES, ArrivingSocket, publish, suback

LIMIT = 4096
KEEP = 1000

# (topic, payload, qos, mid, properties) of each PUBLISH in a stream
Message = tuple[str, bytes, int, int, bytes]


def stream_of(messages: list[Message], mqtt5: bool) -> bytes:
    return b"".join(
        publish(topic, payload, qos, mid, mqtt5, properties=props if mqtt5 else b"")
        for topic, payload, qos, mid, props in messages
    )


def make_consumer(mqtt5: bool) -> tuple[MqttConsumer, ArrivingSocket]:
    config = ConsumerConfig(
        host="127.0.0.1",
        port=1,
        client_id="oversize-test",
        subscription="hw/+/+/+/+",
        protocol="5" if mqtt5 else "3.1.1",
        max_payload_bytes=LIMIT,
        keep_payload_bytes=KEEP,
    )
    consumer = MqttConsumer(config, lambda batch: None)
    sock = ArrivingSocket()
    consumer.client._sock = sock  # type: ignore[assignment]
    return consumer, sock


def receive(data: bytes, cuts: Iterable[int], mqtt5: bool) -> tuple[MqttConsumer, list[RawMessage]]:
    consumer, sock = make_consumer(mqtt5)
    client = consumer.client
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, end in itertools.pairwise(bounds):
        sock.arrive(data[start:end])
        while sock.unread:
            assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
            # paho never accumulates an oversize packet
            assert len(client._in_packet["packet"]) <= LIMIT + 100
    assert client._in_packet["command"] == 0 and client._big is None, "a packet left part-read"
    return consumer, list(consumer._pending)


def expected(messages: list[Message]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for topic, payload, qos, mid, _ in messages:
        if len(payload) > LIMIT:
            size = (len(payload), hashlib.sha256(payload).hexdigest())
            out.append((mid if qos else 0, topic, payload[:KEEP], qos, size))
        else:
            out.append((mid if qos else 0, topic, payload, qos, None))
    return out


def seen(raws: list[RawMessage]) -> list[tuple[object, ...]]:
    return [(r.mid, r.topic, r.payload, r.qos, r.oversize) for r in raws]


def mixed() -> list[Message]:
    return [
        ("hw/s1/rfid/r1/read", b'{"epc":"E1"}', 1, 1, b""),
        ("hw/s1/camera/c1/frame", bytes(range(256)) * 4000, 1, 2, SOME_PROPERTIES),  # ~1 MB
        ("hw/s1/rfid/r1/read", b'{"epc":"E2"}', 0, 0, b""),
        ("hw/s1/air/a1/reading", b"p" * (LIMIT + 1), 1, 3, b""),  # just over
        ("hw/s1/air/a1/reading", b"q" * LIMIT, 1, 4, SOME_PROPERTIES),  # exactly the limit
        ("hw/s1/air/a1/reading", b"r" * 100_000, 0, 0, b""),
        # a long topic: the packet is over the limit, its payload is not
        ("hw/s1/air/" + "t" * 5000 + "/reading", b"s" * 3000, 1, 5, SOME_PROPERTIES),
        ("hw/s1/rfid/r1/read", b'{"epc":"E3"}', 1, 6, b""),
    ]


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_oversize_payloads_are_cut_and_described_in_one_read(mqtt5: bool) -> None:
    messages = mixed()
    consumer, raws = receive(stream_of(messages, mqtt5), [], mqtt5)
    assert seen(raws) == expected(messages)
    assert consumer._oversize_held == 3 * KEEP


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_cuts_in_and_around_each_header(mqtt5: bool) -> None:
    messages = mixed()
    data = stream_of(messages, mqtt5)
    starts = list(itertools.accumulate(len(stream_of([m], mqtt5)) for m in messages))
    for start in [0, *starts[:-1]]:
        for cut in range(start + 1, start + 12):
            _, raws = receive(data, [cut], mqtt5)
            assert seen(raws) == expected(messages), f"cut at {cut}"


@settings(max_examples=60, deadline=None)
@given(mqtt5=st.booleans(), data=st.data())
def test_a_stream_in_any_pieces(mqtt5: bool, data: st.DataObject) -> None:
    messages = mixed()
    stream = stream_of(messages, mqtt5)
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=10), label="cuts")
    _, raws = receive(stream, cuts, mqtt5)
    assert seen(raws) == expected(messages)


def test_a_20_mb_payload_is_read_through_without_being_held() -> None:
    payload = b"x" * 20_000_000
    messages: list[Message] = [
        ("hw/s1/air/a1/reading", payload, 1, 7, b""),
        ("hw/s1/air/a1/reading", b"{}", 1, 8, b""),
    ]
    stream = stream_of(messages, True)
    consumer, raws = receive(stream, [3, 300_000, 10_000_000], True)
    assert seen(raws) == expected(messages)
    # the client's buffer holds one receive at a time, never the packet
    assert len(consumer.client._rx_buf) <= 256 * 1024


def test_a_packet_that_ends_inside_its_header_disconnects() -> None:
    consumer, sock = make_consumer(True)
    # remaining length 5000, topic length 0xFFFF: the header cannot fit
    body = b"\xff\xff" + b"t" * 4998
    sock.arrive(b"\x30" + bytes([0x88, 0x27]) + body)
    assert consumer.client.loop_read() == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert consumer.client._sock is None and consumer.client._big is None
    assert not consumer._pending


def test_other_packets_after_an_oversize_one_still_reach_paho() -> None:
    events: list[int] = []
    consumer, sock = make_consumer(True)
    consumer.client.on_subscribe = lambda c, u, mid, codes, props: events.append(mid)
    messages: list[Message] = [("hw/s1/air/a1/reading", b"z" * 50_000, 1, 1, b"")]
    sock.arrive(stream_of(messages, True)[:10])
    assert consumer.client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    sock.arrive(stream_of(messages, True)[10:] + suback(3, True))
    while sock.unread:
        consumer.client.loop_read()
    assert events == [3]
    assert seen(list(consumer._pending)) == expected(messages)
