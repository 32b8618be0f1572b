"""The consumer's PUBLISH fast path: byte streams split at every point, checked packet by packet.

The client reads from a socket stand-in that returns what has arrived so far (a non-blocking
socket's contract); what it delivers must be exactly the stream's PUBLISHes, in order, with
paho itself still handling every other packet between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from hazwatch.ingest import consumer
from hazwatch.ingest.consumer import _BufferedClient, scan_publishes

# What the client is seen to do: ("publish", mid, topic, payload, qos) from the fast path or
# its decoder, ("paho publish", …) from paho's own on_message (QoS 2), ("suback", mid),
# ("pingresp",).
Event = tuple[object, ...]


class ArrivingSocket:
    """The reading side of a non-blocking socket: recv() returns up to `bufsize` bytes of what
    has arrived and raises BlockingIOError when nothing has. Writes are kept."""

    def __init__(self) -> None:
        self.unread = bytearray()
        self.sent = bytearray()
        self.recv_calls = 0

    def arrive(self, data: bytes) -> None:
        self.unread += data

    def recv(self, bufsize: int) -> bytes:
        self.recv_calls += 1
        if not self.unread:
            raise BlockingIOError
        data = bytes(self.unread[:bufsize])
        del self.unread[:bufsize]
        return data

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def close(self) -> None:
        pass


# Packets, encoded as a broker sends them.
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def publish(
    topic: str,
    payload: bytes,
    qos: int,
    mid: int,
    mqtt5: bool,
    properties: bytes = b"",
    flags: int = 0,
) -> bytes:
    raw_topic = topic.encode()
    body = len(raw_topic).to_bytes(2, "big") + raw_topic
    if qos:
        body += mid.to_bytes(2, "big")
    if mqtt5:
        body += varint(len(properties)) + properties
    return packet(0x30 | qos << 1 | flags, body + payload)


def suback(mid: int, mqtt5: bool) -> bytes:
    return packet(0x90, mid.to_bytes(2, "big") + (b"\x00" if mqtt5 else b"") + b"\x01")


PINGRESP = b"\xd0\x00"
PUBREL_9 = b"\x62\x02\x00\x09"


def mqtt5_string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


# Message expiry (0x02), content type (0x03), a user property (0x26): what a broker may add.
SOME_PROPERTIES = b"".join(
    [
        b"\x02\x00\x00\x0e\x10",
        b"\x03" + mqtt5_string("application/json"),
        b"\x26" + mqtt5_string("origin") + mqtt5_string("gateway-7"),
    ]
)
# Longer than 127 bytes: its length takes two bytes.
LONG_PROPERTIES = b"\x26" + mqtt5_string("trace") + mqtt5_string("x" * 150)

INNER = publish("hw/inner/x/y/z", b"not a message of ours", 1, 77, mqtt5=False)

# A stream as data: each step is a packet and what the client must be seen doing with it.
Step = tuple[bytes, list[Event]]


def pub(topic: str, payload: bytes, qos: int, mid: int, mqtt5: bool, **kw: object) -> Step:
    data = publish(topic, payload, qos, mid, mqtt5, **kw)  # type: ignore[arg-type]
    return data, [("publish", mid if qos else 0, topic, payload, qos)]


def small_stream(mqtt5: bool) -> list[Step]:
    """Every kind of packet the fast path must take or leave, each small."""
    steps: list[Step] = [
        (suback(1, mqtt5), [("suback", 1)]),
        pub("hw/s1/rfid/rfi-01/read", b'{"epc":"E2801160","rssi":-52.5}', 1, 1, mqtt5),
        (PINGRESP, [("pingresp",)]),
        pub("hw/s1/air/air-01/reading", b"", 0, 0, mqtt5),  # empty payload, QoS 0
        pub("hw/s1/scale/sca-01/weight", b"", 1, 65535, mqtt5),  # empty payload, QoS 1
        pub("hw/s1/air/air-02/reading", b'{"pm25":12.5}', 1, 2, mqtt5, flags=0x08),  # dup
        pub("hw/s1/air/air-03/status", b'{"online":true}', 1, 3, mqtt5, flags=0x01),  # retain
        pub("hw/s1/camera/cam-01/frame", b"y" * 200, 1, 4, mqtt5),  # two-byte length
        pub("hw/s1/terminal/ter-01/batch", "élan".encode(), 0, 0, mqtt5),
        (suback(2, mqtt5), [("suback", 2)]),
        # QoS 2 is paho's: it answers PUBREC and delivers on the PUBREL.
        (publish("hw/s1/q2/dev/x", b"exactly once", 2, 9, mqtt5), []),
        (PUBREL_9, [("paho publish", 9, "hw/s1/q2/dev/x", b"exactly once", 2)]),
        # A payload that is itself a PUBLISH: a reader that lost its place would deliver it.
        pub("hw/s1/bridge/br-01/raw", INNER, 1, 8, mqtt5),
        pub("hw/s1/rfid/rfi-02/read", b"z" * 120, 1, 5, mqtt5),  # the last one a fast one
    ]
    if mqtt5:
        steps += [
            pub("hw/s1/a/b/c", b"with properties", 1, 6, mqtt5, properties=SOME_PROPERTIES),
            pub("hw/s1/a/b/d", b"long properties", 0, 0, mqtt5, properties=LONG_PROPERTIES),
        ]
    return steps


def big_stream(mqtt5: bool) -> list[Step]:
    """Three-byte lengths, and a payload larger than one read of the socket."""
    assert consumer._RECV_BYTES < 300 * 1024
    return [
        pub("hw/s1/rfid/rfi-01/read", b"a" * 100, 1, 1, mqtt5),
        pub("hw/s1/camera/cam-01/frame", bytes(range(256)) * 80, 1, 2, mqtt5),  # 20 KiB
        (PINGRESP, [("pingresp",)]),
        pub("hw/s1/camera/cam-01/frame", INNER * (200 * 1024 // len(INNER)), 1, 3, mqtt5),
        pub("hw/s1/rfid/rfi-01/read", b"c" * 100, 0, 0, mqtt5),
        pub("hw/s1/camera/cam-02/frame", b"d" * (300 * 1024), 1, 4, mqtt5),
        (suback(5, mqtt5), [("suback", 5)]),
        pub("hw/s1/rfid/rfi-01/read", b"e" * 100, 1, 6, mqtt5),
    ]


def make_client(mqtt5: bool) -> tuple[_BufferedClient, ArrivingSocket, list[Event]]:
    events: list[Event] = []
    client = _BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id="fastpath-test",
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        manual_ack=True,
    )
    sock = ArrivingSocket()
    client._sock = sock  # type: ignore[assignment]

    def on_publish_batch(publishes: list[consumer.PublishPacket]) -> None:
        events.extend(("publish", *p) for p in publishes)

    def on_message(c: object, u: object, message: mqtt.MQTTMessage) -> None:
        events.append(("paho publish", message.mid, message.topic, message.payload, message.qos))

    def on_log(c: object, u: object, level: int, text: str) -> None:
        if text == "Received PINGRESP":
            events.append(("pingresp",))

    client.on_publish_batch = on_publish_batch
    client.on_message = on_message
    client.on_subscribe = lambda c, u, mid, codes, props: events.append(("suback", mid))
    client.on_log = on_log
    return client, sock, events


def feed(steps: list[Step], cuts: Iterable[int], mqtt5: bool) -> tuple[list[Event], list[Event]]:
    """The stream arrives in pieces cut at `cuts`; after each, the client reads all it can.
    Returns (what it did, what it should have done)."""
    stream = b"".join(data for data, _ in steps)
    expected = [event for _, events in steps for event in events]
    client, sock, events = make_client(mqtt5)
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for start, end in itertools.pairwise(bounds):
        sock.arrive(stream[start:end])
        while sock.unread:  # what select() would do: read again while there is more
            assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
            # select() does not see our buffer: nothing may wait in it after a read.
            assert client._rx_pos >= len(client._rx_buf), "bytes left in the buffer"
    assert client._in_packet["command"] == 0, "a packet left part-read"
    return events, expected


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_every_packet_in_one_read_arrives_in_order(mqtt5: bool) -> None:
    for steps in (small_stream(mqtt5), big_stream(mqtt5)):
        events, expected = feed(steps, [], mqtt5)
        assert events == expected


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_stream_split_in_two_at_every_byte(mqtt5: bool) -> None:
    steps = small_stream(mqtt5)
    length = sum(len(data) for data, _ in steps)
    for cut in range(1, length):
        events, expected = feed(steps, [cut], mqtt5)
        assert events == expected, f"split at byte {cut}"


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_big_packets_split_around_every_header(mqtt5: bool) -> None:
    """Cuts in and next to each packet's fixed and variable header, and just before its end."""
    steps = big_stream(mqtt5)
    start = 0
    for data, _ in steps:
        end = start + len(data)
        for cut in [*range(start + 1, start + 30), *range(end - 3, end)]:
            events, expected = feed(steps, [cut], mqtt5)
            assert events == expected, f"split at byte {cut}"
        start += len(data)


@pytest.mark.parametrize("mqtt5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_four_byte_length(mqtt5: bool) -> None:
    huge = pub("hw/s1/camera/cam-01/clip", b"v" * (2 * 1024 * 1024), 1, 1, mqtt5)
    assert [byte >= 0x80 for byte in huge[0][1:5]] == [True, True, True, False]  # 4 bytes
    steps = [huge, pub("hw/s1/rfid/rfi-01/read", b"after", 1, 2, mqtt5)]
    for cuts in ([], [1], [2], [3], [4], [5], [6], [len(huge[0]) - 1], [len(huge[0])]):
        events, expected = feed(steps, cuts, mqtt5)
        assert events == expected, f"cut at {cuts}"


@settings(max_examples=150, deadline=None)
@given(mqtt5=st.booleans(), big=st.booleans(), data=st.data())
def test_a_stream_in_any_pieces(mqtt5: bool, big: bool, data: st.DataObject) -> None:
    steps = big_stream(mqtt5) if big else small_stream(mqtt5)
    length = sum(len(step) for step, _ in steps)
    cuts = data.draw(st.lists(st.integers(1, length - 1), max_size=12), label="cuts")
    events, expected = feed(steps, cuts, mqtt5)
    assert events == expected


def test_fast_path_decodes_whole_buffers_and_paho_only_the_rest() -> None:
    """A buffer of whole QoS 0/1 PUBLISHes never reaches paho's per-packet reader."""
    steps = [pub(f"hw/s1/rfid/rfi-{n:02d}/read", b"p" * n, 1, n + 1, True) for n in range(300)]
    stream = b"".join(data for data, _ in steps)
    publishes, end = scan_publishes(stream, 0, True)
    assert end == len(stream)
    assert [("publish", *p) for p in publishes] == [e for _, events in steps for e in events]

    client, sock, events = make_client(True)
    paho_packets = 0
    real_handle = client._packet_handle

    def counting_handle() -> MQTTErrorCode:
        nonlocal paho_packets
        paho_packets += 1
        return real_handle()

    client._packet_handle = counting_handle  # type: ignore[method-assign]
    sock.arrive(stream)
    client.loop_read()
    assert len(events) == 300 and paho_packets == 0


def test_one_read_takes_one_buffer_and_the_end_of_the_packet_it_cuts() -> None:
    """The consumer's backlog check runs between reads: a read must not run on while the
    broker keeps sending, even when paho would read several packets (messages in flight)."""
    client, sock, events = make_client(True)
    for mid in (1, 2, 3):  # QoS 2 messages waiting for their PUBREL: paho reads 3 a round
        sock.arrive(publish("hw/s1/q2/dev/x", b"", 2, mid, True))
        client.loop_read()
    assert len(client._in_messages) == 3
    one = publish("hw/s1/rfid/rfi-01/read", b"r" * 120, 1, 1, True)
    sock.arrive(one * (4 * consumer._RECV_BYTES // len(one)))
    while sock.unread:
        before = len(sock.unread)
        client.loop_read()
        assert before - len(sock.unread) <= consumer._RECV_BYTES + len(one)
        assert client._rx_pos >= len(client._rx_buf)
    assert len(events) == 4 * consumer._RECV_BYTES // len(one)


def test_fast_path_keeps_the_keepalive_clock() -> None:
    client, sock, events = make_client(True)
    setattr(client, consumer._RX_CLOCK, 0.0)
    sock.arrive(publish("hw/s1/a/b/c", b"x", 1, 1, True))
    client.loop_read()
    assert events and getattr(client, consumer._RX_CLOCK) > 0.0


def test_a_pingresp_reaches_paho_between_publishes() -> None:
    client, sock, events = make_client(True)
    client._ping_t = 123.0  # waiting for a PINGRESP
    sock.arrive(publish("hw/s1/a/b/c", b"x", 1, 1, True) + PINGRESP)
    client.loop_read()
    assert client._ping_t == 0
    assert events == [("publish", 1, "hw/s1/a/b/c", b"x", 1), ("pingresp",)]


@pytest.mark.parametrize(
    ("mqtt5", "bad", "why"),
    [
        (False, publish("", b"no topic", 1, 1, False), "an empty topic in MQTT 3.1.1"),
        (False, packet(0x32, b"\x00\x40abc\x00\x01"), "a topic longer than the packet"),
        (False, packet(0x36, b"\x00\x01a\x00\x01"), "QoS 3"),
        (False, b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 8, "a length of five bytes"),
        (True, packet(0x32, b"\x00\x01a\x00\x01\x09\x02\x00"), "properties past the end"),
        (True, packet(0x32, b"\x00\x01a\x00\x01"), "no properties length"),
    ],
)
def test_malformed_publish_disconnects_through_paho_after_the_good_ones(
    mqtt5: bool, bad: bytes, why: str
) -> None:
    client, sock, events = make_client(mqtt5)
    disconnects: list[object] = []
    client.on_disconnect = lambda c, u, flags, rc, props: disconnects.append(rc)
    good = publish("hw/s1/a/b/c", b"fine", 1, 1, mqtt5)
    sock.arrive(good + bad + good)
    rc = client.loop_read()
    assert rc != MQTTErrorCode.MQTT_ERR_SUCCESS, why
    assert events == [("publish", 1, "hw/s1/a/b/c", b"fine", 1)], why
    assert client._sock is None and len(disconnects) == 1, why


def test_a_closed_connection_is_reported_by_paho() -> None:
    client, sock, _ = make_client(True)
    disconnects: list[object] = []
    client.on_disconnect = lambda c, u, flags, rc, props: disconnects.append(rc)
    sock.recv = lambda bufsize: b""  # type: ignore[method-assign]  # the broker closed it
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert client._sock is None and len(disconnects) == 1


def test_a_reconnect_forgets_bytes_of_the_old_connection() -> None:
    client, _, _ = make_client(True)
    client._rx_buf = publish("hw/s1/a/b/c", b"stale", 1, 1, True)
    client._rx_pos = 0
    client._host = "127.0.0.1"
    client._port = 1  # nothing listens: reconnect() fails after resetting
    with pytest.raises(OSError):
        client.reconnect()
    assert client._rx_buf == b"" and client._rx_pos == 0


def test_ack_many_writes_the_pubacks_paho_would() -> None:
    client, sock, _ = make_client(True)
    client.ack_many([1, 258, 65535])
    client.loop_write()
    assert bytes(sock.sent) == b"\x40\x02\x00\x01" + b"\x40\x02\x01\x02" + b"\x40\x02\xff\xff"
