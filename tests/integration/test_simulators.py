"""Simulators against a real Mosquitto: everything sent arrives, faults as reported, wills fire.

Never mock the broker, and never sleep to wait: a paho subscriber collects and wait_for polls.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import orjson
import paho.mqtt.client as paho
import pytest

from hazwatch.base.errors import PayloadError
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.simulators.faults import FaultPlan
from hazwatch.simulators.fleet import Fleet, FleetConfig, drop_connection
from hazwatch.simulators.mqtt import device_client, status_topic
from hazwatch.simulators.payloads import FAMILIES
from tests.services import Mosquitto, free_port, wait_for

pytestmark = pytest.mark.integration
CTX = NoRegistry()


class Collector:
    """A paho subscriber that keeps every message (topic, payload, retain flag) it receives."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"collector-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        wait_for(self._subscribed.is_set, 10, f"subscription to {topic}")

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def data(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(t, p) for t, p, _ in self.messages if not t.endswith("/status")]

    def status(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


Collect = Callable[[str], Collector]


@pytest.fixture()
def collect(mosquitto: Mosquitto) -> Iterator[Collect]:
    collectors: list[Collector] = []

    def start(topic: str) -> Collector:
        collectors.append(Collector(mosquitto, topic))
        return collectors[-1]

    yield start
    for collector in collectors:
        collector.close()


def unique_site(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def test_every_message_of_every_family_arrives(mosquitto: Mosquitto, collect: Collect) -> None:
    site = unique_site("all")
    sub = collect(f"hw/{site}/#")
    config = FleetConfig(site=site, devices=2, rate=0, count=1500, duration_s=None, seed=11)
    report = asyncio.run(Fleet(config).run(mosquitto.url))

    assert report.sent == report.acked == report.generated == 1500
    assert report.ok and not report.faults
    assert set(report.accepted_by_family) == set(FAMILIES)
    wait_for(lambda: len(sub.data()) >= 1500, 20, "1500 messages at the subscriber")
    sent = Counter((m.topic, m.payload) for m in report.messages)
    assert Counter(sub.data()) == sent
    now_ns = time.time_ns()
    identities = set()
    for topic, payload in sub.data():
        point = decode(topic, payload, CTX, now_ns=now_ns).points[0]
        identities.add(point.identity())
    assert len(identities) == 1500  # every message is its own point
    for family, device in report.devices:
        topic = status_topic(site, family, device)
        wait_for(lambda t=topic: len(sub.status(t)) >= 2, 10, f"{topic} online and offline")
        assert [orjson.loads(p)["online"] for p, _ in sub.status(topic)] == [True, False]


def test_faults_arrive_as_the_ground_truth_says(mosquitto: Mosquitto, collect: Collect) -> None:
    site = unique_site("faults")
    sub = collect(f"hw/{site}/#")
    plan = FaultPlan.parse(
        "duplicate:0.05,bad_json:0.03,future_ts:0.03,clock_behind:0.03,lost_tag:0.03,"
        "missing_field:0.03,out_of_range:0.03,bad_type:0.02,bad_ts:0.02"
    )
    config = FleetConfig(site=site, devices=1, rate=0, count=2000, duration_s=None, faults=plan)
    report = asyncio.run(Fleet(config).run(mosquitto.url))

    kinds = report.faults_by_kind()
    assert report.ok and report.sent == report.acked
    assert report.sent == report.generated - kinds["lost_tag"] + kinds["duplicate"]
    assert all(kinds[k] > 0 for k in plan.rates), kinds
    wait_for(lambda: len(sub.data()) >= report.sent, 20, f"{report.sent} messages")
    received = Counter(sub.data())
    assert sum(received.values()) == report.sent

    for fault in report.faults:
        key = (fault.message.topic, fault.message.payload)
        expected = {"duplicate": 2, "lost_tag": 0}.get(fault.kind, 1)
        assert received[key] == expected, fault

    now_ns = time.time_ns()
    reasons: Counter[str] = Counter()
    accepted = set()
    for (topic, payload), times in received.items():
        try:
            accepted.add(decode(topic, payload, CTX, now_ns=now_ns).points[0].identity())
        except PayloadError as exc:
            reasons[exc.reason] += times
    assert reasons == report.expected_dead_letters()
    expected_ids = {
        decode(m.topic, m.payload, CTX, now_ns=now_ns).points[0].identity() for m in report.messages
    }
    assert accepted == expected_ids
    assert len(expected_ids) == report.accepted


def test_outage_fires_the_last_will_then_the_device_comes_back(
    mosquitto: Mosquitto, collect: Collect
) -> None:
    site = unique_site("outage")
    topic = status_topic(site, "scale", "s-01")
    sub = collect(topic)
    config = FleetConfig(
        site=site,
        families=("scale",),
        rate=0,
        count=300,
        duration_s=None,
        faults=FaultPlan({"outage": 0.02}),
        seed=4,
    )
    report = asyncio.run(Fleet(config).run(mosquitto.url))
    outages = report.faults_by_kind()["outage"]
    assert outages >= 1 and report.ok
    will = orjson.dumps({"online": False})
    # online, then per outage: the will and online again, then the clean stop's offline (with ts)
    wait_for(lambda: len(sub.status(topic)) >= 2 * outages + 2, 10, "status messages")
    states = [orjson.loads(p) for p, _ in sub.status(topic)]
    assert [p for p, _ in sub.status(topic)].count(will) == outages
    assert [s["online"] for s in states] == [True] + [False, True] * outages + [False]
    assert "ts" in states[-1] and "ts" not in states[1]


def test_a_dropped_connection_leaves_the_retained_will(
    mosquitto: Mosquitto, collect: Collect
) -> None:
    site = unique_site("will")
    topic = status_topic(site, "rfid", "gate-01")

    async def crash() -> None:
        client = device_client(mosquitto.url, site, "rfid", "gate-01")
        await client.__aenter__()
        await client.publish(topic, orjson.dumps({"online": True}), qos=1, retain=True)
        await drop_connection(client)

    asyncio.run(crash())
    late = collect(topic)  # subscribes after the fact: only a retained message can reach it
    retained = wait_for(lambda: late.status(topic), 10, "the retained will")
    assert retained == [(orjson.dumps({"online": False}), True)]


def hazwatch(*args: str) -> subprocess.CompletedProcess[str]:
    code = "from hazwatch.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_cli_simulate_prints_a_summary(mosquitto: Mosquitto, collect: Collect) -> None:
    site = unique_site("cli")
    sub = collect(f"hw/{site}/#")
    result = hazwatch(
        "simulate",
        *("--mqtt-url", mosquitto.url, "--site", site, "--devices", "1", "--rate", "0"),
        *("--count", "250", "--faults", "duplicate:0.04,bad_json:0.02", "--seed", "3"),
    )
    assert result.returncode == 0, result.stderr
    rows = dict(
        (cells[0], cells[1])
        for line in result.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃ ").split("│")]) == 2
    )
    assert rows["generated"] == "250"
    assert rows["sent"] == rows["acked"]
    assert int(rows["fault duplicate"]) > 0 and int(rows["dead letters bad_json"]) > 0
    sent = int(rows["sent"])
    wait_for(lambda: len(sub.data()) >= sent, 10, f"{sent} messages from the CLI")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--faults", "nope:0.1"), "unknown fault 'nope'"),
        (("--families", "rfid,toaster"), "unknown family 'toaster'"),
        (("--rate", "-5"), "rate must be"),
        (("--scenario", "nowhere"), "unknown scenario 'nowhere'"),
        (("--mqtt-url", "http://broker"), "HAZWATCH_MQTT_URL"),
    ],
)
def test_cli_bad_options_are_one_line_and_exit_2(
    mosquitto: Mosquitto, args: tuple[str, ...], says: str
) -> None:
    result = hazwatch("simulate", "--mqtt-url", mosquitto.url, "--duration", "1", *args)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_unreachable_broker_is_one_line() -> None:
    port = free_port()  # nothing listens there
    result = hazwatch("simulate", "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--duration", "1")
    assert result.returncode == 2
    assert "cannot connect to the MQTT broker" in result.stderr
    assert "Traceback" not in result.stderr


def test_stop_ends_an_endless_run_with_its_report(mosquitto: Mosquitto) -> None:
    fleet = Fleet(FleetConfig(site=unique_site("stop"), rate=200, duration_s=math.inf))
    calls: list[float] = []

    def progress(fraction: float, text: str) -> None:
        calls.append(fraction)
        if len(calls) == 4:  # the ticker runs every 0.1 s: stop after ~0.3 s of publishing
            fleet.stop()

    report = asyncio.run(asyncio.wait_for(fleet.run(mosquitto.url, progress), 20))
    assert report.ok and 0 < report.sent == report.acked
    assert report.status_sent == report.status_acked == 2 * len(report.devices)
