"""Simulators against a real Mosquitto: everything sent arrives, faults as reported, wills fire.

Never mock the broker, and never sleep to wait: a paho subscriber collects and wait_for polls.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest

from hazwatch.base.errors import PayloadError
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.timeparse import CHINA
from hazwatch.simulators.faults import FaultPlan
from hazwatch.simulators.fleet import Fleet, FleetConfig, drop_connection
from hazwatch.simulators.mqtt import device_client, status_topic
from hazwatch.simulators.payloads import FAMILIES
from hazwatch.simulators.truth import months_between
from hazwatch.streams.custody.rules import RULE_SPECS as CUSTODY_RULE_SPECS
from hazwatch.streams.custody.store import CustodyStore
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, free_port, wait_for

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

    # each fault's bytes arrive as often as the truth says: twice a duplicate, never a lost
    # tag, once anything else; faults that made the same bytes (two reads of a burst with one
    # RSSI and antenna, their ts left out) arrive once each
    copies: Counter[tuple[str, bytes]] = Counter()
    for fault in report.faults:
        copies[(fault.message.topic, fault.message.payload)] += {
            "duplicate": 2, "lost_tag": 0,
        }.get(fault.kind, 1)  # fmt: skip
    for fault in report.faults:
        key = (fault.message.topic, fault.message.payload)
        assert received[key] == copies[key], fault

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


def hazwatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = "from hazwatch.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
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


# ---------------------------------------------------------------- custody against the truth

REGISTRY = Path(__file__).parents[1] / "data" / "registry.toml"
NS = 1_000_000_000


@dataclass
class CustodyRun:
    """`hazwatch simulate --scenario custody` run once into a `hazwatch serve`."""

    serve: HazwatchProcess
    truth: dict[str, Any]
    published: int
    stdout: str

    @property
    def state(self) -> str:
        return self.serve.env["HAZWATCH_STATE_URL"]

    def verdicts(self) -> dict[str, dict[str, Any]]:
        db = StateDB(self.state)
        try:
            return {r["batch"]: r for r in CustodyStore(db).batches(limit=1000)}
        finally:
            db.close()

    def events(self) -> dict[str, list[Any]]:
        db = StateDB(self.state)
        try:
            store = CustodyStore(db)
            return {b: store.events(b) for b in self.truth["batches"]}
        finally:
            db.close()


def _ingested(serve: HazwatchProcess) -> int:
    """Messages the service has taken, as its /metrics counts them."""
    text = httpx.get(f"{serve.api}/metrics", timeout=5).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("hazwatch_messages_total{")
        )
    )


@pytest.fixture(scope="module")
def custody_run(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CustodyRun]:
    """Twenty batches, every custody rule broken once, read in bursts as real readers report
    (cross-reads at the side-by-side doors, parked drums, stocktakes, vehicle inventories)."""
    tmp = tmp_path_factory.mktemp("custody-truth")
    db = f"truth_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    proc = HazwatchProcess.on_influx_v1(
        tmp / "hazwatch",
        mosquitto.url,
        influxd.url,
        db,
        state_url=f"sqlite:///{tmp / 'state.db'}",
        custody__unknown_tag_grace_s="0",  # the sample settings' tolerances
    )
    loaded = proc.cli("registry", "load", str(REGISTRY))
    assert loaded.returncode == 0, loaded.stderr
    proc.start()
    try:
        truth_path = tmp / "truth.json"
        result = hazwatch(
            "simulate",
            *("--scenario", "custody", "--count", "20", "--violations", "10", "--rate", "0"),
            *("--seed", "4", "--mqtt-url", mosquitto.url, "--truth", str(truth_path)),
            timeout=600,  # ~30,000 messages, at what a loaded 2-core machine publishes
        )
        assert result.returncode == 0, result.stderr
        published = int(result.stdout.split("messages published")[1].split("│")[1].split()[0])
        run = CustodyRun(proc, orjson.loads(truth_path.read_bytes()), published, result.stdout)
        wait_for(lambda: _ingested(proc) >= published, 300, f"{published} messages taken")
        batches = run.truth["batches"]
        wait_for(
            lambda: all(
                run.verdicts().get(b, {}).get("verdict", "open") != "open" for b in batches
            ),
            60,
            "every batch judged",
        )
        yield run
    finally:
        proc.stop()


def test_the_custody_scenario_publishes_reader_bursts_and_its_truth(
    custody_run: CustodyRun,
) -> None:
    truth = custody_run.truth
    counts = truth["read_counts"]
    assert counts["pass"] > 2000 and counts["cross"] > 500 and counts["transit"] > 1000
    assert counts["stocktake"] > 0
    assert custody_run.published > sum(counts.values())  # reads, and the rest of the story
    assert "bursts (realistic)" in custody_run.stdout
    assert {b["violation"] for b in truth["batches"].values()} - {None} == set(
        spec.id for spec in CUSTODY_RULE_SPECS if spec.subject == "batch"
    )
    assert len(custody_run.verdicts()) >= len(truth["batches"])


def test_custody_events_verdicts_and_ledger_are_the_ground_truth(
    custody_run: CustodyRun,
) -> None:
    truth = custody_run.truth
    batches: dict[str, dict[str, Any]] = truth["batches"]
    verdicts = custody_run.verdicts()
    assert {b: verdicts[b]["verdict"] for b in batches} == {
        b: t["verdict"] for b, t in batches.items()
    }
    assert {b: sorted({v["rule"] for v in verdicts[b]["violations"]}) for b in batches} == {
        b: [t["violation"]] if t["violation"] else [] for b, t in batches.items()
    }
    events = custody_run.events()
    for batch, t in batches.items():
        got = events[batch]
        assert dict(Counter(e.stage for e in got)) == t["expected_events"], batch
        entered = t["entered"]
        assert [(e.stage, e.site, e.device) for e in got] == [
            (e["stage"], e["site"], e["device"]) for e in entered
        ], batch
        for event, entry in zip(got, entered, strict=True):  # placed in the pass it was
            assert (
                entry["ts_ns"]
                <= event.ts_ns
                <= entry["ts_ns"] + (entry["until_ns"] - entry["at_ns"])
            ), (batch, event)
    first = min(e["at_ns"] for t in batches.values() for e in t["entered"])
    last = max(e["at_ns"] for t in batches.values() for e in t["entered"])
    for site, rows in truth["ledger"].items():
        out = custody_run.serve.cli(
            "ledger", "--site", site, "--from", _day(first), "--to", _day(last),
            "--format", "json",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        monthly = json.loads(out.stdout)["monthly"]
        assert _totals(monthly) == _totals(rows), site
        assert {r["month"] for r in monthly} <= set(months_between(first, last + 1))


def _totals(table: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """A monthly summary's non-zero totals by (month, waste code); months of nothing aside."""
    columns = ("generated_kg", "stored_month_end_kg", "transferred_kg", "disposed_kg")
    found = {(r["month"], r["waste_code"]): {c: r[c] for c in columns if r[c]} for r in table}
    return {key: row for key, row in found.items() if row}


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // NS, CHINA).strftime("%Y-%m-%d")
