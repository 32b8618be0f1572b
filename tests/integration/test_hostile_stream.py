"""Hostile devices among good ones, through `hazwatch serve`, real Mosquitto and real InfluxDB
(issue #21): every good message stored exactly once, every bad one a dead letter with a
reason, nothing else written, the service alive and the backlog drained; again after kill -9.

The inputs are the hypothesis strategies of tests/unit/test_hostile_payloads.py, per decoder.
CI sends HOSTILE_PER_DECODER of each (derandomized); HAZWATCH_FUZZ_FULL=1 sends 10,000 each.
Each message gets a device id of its own, so that every point and every dead letter can be
traced to the one message that made it. Whether a message is good is what the decoders say
at the test's clock: the unit tests hold the decoders to their rules, this test holds the
running service to the decoders.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.base.errors import PayloadError
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for
from tests.unit.test_hostile_payloads import JSON_KINDS, good_messages, hj212_inputs, json_inputs

pytestmark = pytest.mark.integration

FULL = os.environ.get("HAZWATCH_FUZZ_FULL") == "1"
HOSTILE_PER_DECODER = 10_000 if FULL else 150
DECODERS = {**{kind: json_inputs(kind) for kind in JSON_KINDS}, "hj212": hj212_inputs}
# the measurements a device's message becomes (what "nothing else written" is checked on)
DEVICE_MEASUREMENTS = (
    "waste_read",
    "waste_weight",
    "waste_batch",
    "waste_manifest",
    "air",
    "video_frame",
    "device_status",
)

Identity = tuple[str, frozenset[tuple[str, str]], int]
NO_DEVICE_TIME = -1


def collect(strategy: st.SearchStrategy[tuple[str, bytes]], n: int) -> list[tuple[str, bytes]]:
    """n inputs drawn by hypothesis (generation only: nothing here can fail to shrink)."""
    found: list[tuple[str, bytes]] = []

    @settings(
        max_examples=n,
        derandomize=not FULL,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(item: tuple[str, bytes]) -> None:
        found.append(item)

    draw()
    return found


def own_device(topic: str, site: str, n: int) -> str | None:
    """The same family and kind, on a device of its own and the test's site; None for a
    hostile topic of another shape (sent as it is, when MQTT allows it at all)."""
    parts = topic.split("/")
    if len(parts) != 5:
        return None
    return f"hw/{site}/{parts[2]}/{parts[3]}-{n}/{parts[4]}"


def publishable(topic: str) -> bool:
    """What Mosquitto takes from a client at all (it disconnects one that sends the rest):
    no wildcards, fewer than 200 levels, no control or non-characters (its UTF-8 check)."""
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    if not 0 < size <= 65535 or "+" in topic or "#" in topic or topic.count("/") >= 200:
        return False  # (200: Mosquitto's limit of topic levels)
    for char in topic:
        code = ord(char)
        if code <= 0x1F or 0x7F <= code <= 0x9F or 0xFDD0 <= code <= 0xFDEF:
            return False
        if code & 0xFFFF in (0xFFFE, 0xFFFF):
            return False
    return True


def build_stream(site: str) -> tuple[list[tuple[str, bytes]], set[Identity], set[str]]:
    """(stream, identities the good messages make, topics of the bad ones), interleaved."""
    inputs: list[tuple[str, bytes]] = []
    for strategy in DECODERS.values():
        inputs += collect(strategy, HOSTILE_PER_DECODER)
    goods = list(good_messages())
    mixed: list[tuple[str, bytes]] = []
    for i, item in enumerate(inputs):
        mixed.append(item)
        if i % 3 == 0:
            mixed.append(goods[(i // 3) % len(goods)])
    stream: list[tuple[str, bytes]] = []
    expected: set[Identity] = set()
    bad: set[str] = set()
    ctx, now_ns = NoRegistry(), time.time_ns()
    for n, (original, payload) in enumerate(mixed):
        topic = own_device(original, site, n)
        if topic is None:  # another shape: dead-lettered under a topic the test cannot own
            if publishable(original):
                stream.append((original, payload))
            continue
        if not publishable(topic):
            continue
        stream.append((topic, payload))
        try:
            decoded = decode(topic, payload, ctx, now_ns=now_ns)
        except PayloadError:
            bad.add(topic)
            continue
        for point in decoded.points:
            if point.measurement in DEVICE_MEASUREMENTS:
                tags = frozenset((k, v) for k, v in point.tags.items() if v != "")
                # no device time: stamped with the receiver's clock, which the test cannot know
                ts_ns = NO_DEVICE_TIME if point.ts_ns == now_ns else point.ts_ns
                expected.add((point.measurement, tags, ts_ns))
    return stream, expected, bad


def publish(port: int, stream: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{uuid.uuid4().hex[:6]}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    window: list[mqtt.MQTTMessageInfo] = []
    for topic, payload in stream:
        window.append(client.publish(topic, payload, qos=1))
        if len(window) >= 20_000:  # message ids are 16 bits: never 65,535 in flight
            for info in window:
                info.wait_for_publish(120)
            window.clear()
    for info in window:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def stored(influxd: Influxd, db: str, site: str) -> Counter[Identity]:
    found: Counter[Identity] = Counter()
    for measurement in DEVICE_MEASUREMENTS:
        q = f"SELECT * FROM \"{measurement}\" WHERE site = '{site}' GROUP BY *"
        for series in influxd.query(db, q):
            tags = frozenset((k, v) for k, v in (series.get("tags") or {}).items() if v != "")
            for row in series.get("values", []):
                found[(measurement, tags, int(row[0]))] += 1
                if measurement == "device_status":  # may carry no device time (receiver's)
                    found[(measurement, tags, NO_DEVICE_TIME)] += 1
    return found


def dead_letters(service: HazwatchProcess, site: str) -> tuple[Counter[str], int]:
    """(dead letters stored, by topic; how many the per-source rate limit counted instead).

    Past 1,000 sources a minute the rate limit lets the rest share one burst: of a flood of
    this many devices, some letters are counted as suppressed rather than stored whole.
    """
    from hazwatch.base.statedb import StateDB

    db = StateDB(f"sqlite:///{service.workdir / 'data' / 'state.db'}")
    try:
        rows = db.query(
            "SELECT topic, reason FROM deadletters WHERE topic LIKE ?", (f"hw/{site}/%",)
        )
        suppressed = db.query("SELECT COALESCE(SUM(suppressed), 0) FROM deadletter_suppressed")
    finally:
        db.close()
    internal = [r for r in rows if r[1] == "internal_error"]
    assert not internal, f"hazwatch failed on inputs: {internal[:5]}"
    return Counter(str(r[0]) for r in rows), int(suppressed[0][0])


def accounted(service: HazwatchProcess, site: str, bad: set[str]) -> bool:
    letters, suppressed = dead_letters(service, site)
    return len(set(letters) & bad) + suppressed >= len(bad)


@pytest.fixture()
def db(influxd: Influxd) -> str:
    name = f"h_{uuid.uuid4().hex[:8]}"
    influxd.create_db(name)
    return name


def service_for(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str) -> HazwatchProcess:
    return HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        # this test floods on purpose: the rate alone must not be what it checks health by
        health_max_deadletters_per_min="1000000000",
        # no registry: its HJ 212 stations are taken only because this says so (#20)
        hj212__accept_unregistered="true",
    )


def settle(
    service: HazwatchProcess,
    influxd: Influxd,
    db: str,
    site: str,
    expected: set[Identity],
    bad: set[str],
) -> None:
    timeout = 600 if FULL else 120
    try:
        wait_for(lambda: set(stored(influxd, db, site)) >= expected, timeout, "good stored")
    except TimeoutError:
        missing = expected - set(stored(influxd, db, site))
        letters, suppressed = dead_letters(service, site)
        sample = sorted(missing, key=str)[:5]
        raise AssertionError(
            f"{len(missing)} of {len(expected)} good points missing, e.g. {sample}; "
            f"{sum(letters.values())} dead letters, {suppressed} suppressed; "
            f"log:\n{service.log_tail(40)}"
        ) from None
    wait_for(lambda: accounted(service, site, bad), timeout, "every bad one dead or counted")
    found = stored(influxd, db, site)
    extra = {
        identity
        for identity in set(found) - expected
        if identity[2] != NO_DEVICE_TIME
        and (identity[0], identity[1], NO_DEVICE_TIME) not in expected
    }
    assert not extra, f"something else was written: {sorted(extra, key=str)[:5]}"
    letters, suppressed = dead_letters(service, site)
    assert set(letters) <= bad, f"good ones dead-lettered: {sorted(set(letters) - bad)[:5]}"
    assert len(letters) >= min(len(bad), 1000)  # the first 1,000 sources' letters kept whole
    health = service.health()
    assert health["status"] == "up", health
    assert health["ingest"]["oldest_unacked_s"] < 5  # type: ignore[index]


def test_hostile_stream_through_the_service(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    site = f"hs{uuid.uuid4().hex[:5]}"
    stream, expected, bad = build_stream(site)
    assert len(bad) > len(DECODERS) * HOSTILE_PER_DECODER // 2  # most inputs are hostile
    assert len(expected) > 100
    service = service_for(tmp_path, mosquitto, influxd, db)
    service.start()
    try:
        started = time.monotonic()
        publish(mosquitto.port, stream)
        settle(service, influxd, db, site, expected, bad)
        elapsed = time.monotonic() - started
        print(
            f"\nhostile stream: {len(stream)} messages ({len(bad)} bad) in {elapsed:.1f} s; "
            f"{HOSTILE_PER_DECODER} hostile inputs per decoder × {len(DECODERS)} decoders"
        )
    finally:
        service.stop()


def test_hostile_stream_redelivered_after_kill_9(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    """Queued for the persistent session while hazwatch is down, killed mid-drain: the
    redelivered hostile messages stall nothing and double nothing."""
    site = f"hk{uuid.uuid4().hex[:5]}"
    stream, expected, bad = build_stream(site)
    service = service_for(tmp_path, mosquitto, influxd, db)
    service.start()
    service.stop()
    publish(mosquitto.port, stream)
    service.start(wait_connected=False)
    wait_for(lambda: len(stored(influxd, db, site)) > 20, 60, "draining started")
    service.kill()
    service.start()
    try:
        settle(service, influxd, db, site, expected, bad)
        service.stop()
        service.start()  # and a clean restart after it: nothing left to redeliver, nothing stuck
        health = service.health()
        assert health["status"] == "up", health
        assert orjson.dumps(health)
    finally:
        service.stop()


def test_hostile_hj212_over_the_tcp_gateway(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, db: str
) -> None:
    """HJ 212 stations over TCP: each hostile input on a connection of its own, between
    stations sending good packets. Every good packet is stored; what else is stored belongs
    to a registered station and is storable; the gateway and the service stay up."""
    import socket
    import subprocess
    import sys

    from hazwatch.devices import hj212
    from tests.services import free_port, port_open, terminate
    from tests.unit.test_hostile_payloads import GOOD_HJ212

    site = f"ht{uuid.uuid4().hex[:5]}"
    mns = sorted({p.mn for p in GOOD_HJ212})
    stations = {mn: f"gw{i}" for i, mn in enumerate(mns)}
    service = service_for(tmp_path, mosquitto, influxd, db)
    service.start()
    port = free_port()
    args = [sys.executable, "-m", "hazwatch", "hj212-gateway", "--listen", f"127.0.0.1:{port}"]
    for mn, station in stations.items():
        args += ["--station", f"{mn}={site}/{station}"]
    env = {**service.env, "HAZWATCH_MQTT_CLIENT_ID": f"gw-{site}"}
    log = (tmp_path / "gateway.log").open("wb")
    gateway = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port), 30, "hj212-gateway port")
        ctx, now_ns = NoRegistry(), time.time_ns()
        expected: set[Identity] = set()
        goods: list[bytes] = []
        for packet in GOOD_HJ212:
            if packet.is_split:
                continue
            frame = hj212.build(packet)
            topic = f"hw/{site}/air/{stations[packet.mn]}/hj212"
            for point in decode(topic, frame, ctx, now_ns=now_ns).points:
                if point.measurement != "air":  # (each packet's hj212_packet point too)
                    continue
                tags = frozenset((k, v) for k, v in point.tags.items() if v != "")
                expected.add((point.measurement, tags, point.ts_ns))
            goods.append(frame)
        assert len(expected) > 20
        inputs = collect(hj212_inputs, HOSTILE_PER_DECODER)

        def send(raw: bytes) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(raw)
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(2)
                try:
                    while conn.recv(65536):  # acks, until the gateway is done with us
                        pass
                except (TimeoutError, ConnectionResetError):
                    pass

        started = time.monotonic()
        for i, (_, raw) in enumerate(inputs):
            send(raw)
            if i % 3 == 0:
                send(goods[(i // 3) % len(goods)])
        for frame in goods:  # every good packet at least once, after the hostile ones
            send(frame)
        assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()

        def stored_air() -> Counter[Identity]:
            return Counter({k: v for k, v in stored(influxd, db, site).items() if k[0] == "air"})

        wait_for(lambda: set(stored_air()) >= expected, 120, "every good packet stored")
        print(
            f"\nhostile HJ 212 over TCP: {len(inputs)} hostile inputs, each on its own "
            f"connection, and {len(inputs) // 3 + len(goods)} good ones, "
            f"in {time.monotonic() - started:.1f} s"
        )
        names = set(stations.values())
        for _, tags, ts_ns in stored_air():
            assert dict(tags)["station"] in names
            assert 946_684_800 * 10**9 <= ts_ns <= time.time_ns() + 300 * 10**9
        dead_letters(service, site)  # asserts that hazwatch failed on none (internal_error)
        assert service.health()["status"] == "up"
    finally:
        terminate(gateway)
        log.close()
        service.stop()
