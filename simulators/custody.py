"""Waste-lifecycle scenario: batches from producer via transporter to disposal site, over MQTT.

Never decide a verdict here: the plan only records what it did (the ground truth) for tests.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hazwatch.simulators.fleet import Progress, no_progress
from hazwatch.simulators.mqtt import device_client
from hazwatch.simulators.scenarios import Scenario, register_scenario
from hazwatch.streams.custody.rules import RULE_SPECS

MIN = 60 * 1_000_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
PRODUCER, TRANSPORTER, RECEIVER, OTHER_RECEIVER, FAR = "jy-0012", "tr-01", "dp-01", "dp-02", "kf-99"
# The sample registry (tests/data/registry.toml, docs/registry.example.toml) names these devices.
TERMINAL = (PRODUCER, "terminal", "t1")
GEN_SCALE = (PRODUCER, "scale", "s1")
STORE_IN = (PRODUCER, "rfid", "gate-03")
STORE_OUT = (PRODUCER, "rfid", "gate-04")
VEHICLE = (TRANSPORTER, "rfid", "veh-01")
GATE = {RECEIVER: (RECEIVER, "rfid", "rg-1"), OTHER_RECEIVER: (OTHER_RECEIVER, "rfid", "rg-2")}
GATE_SCALE = {RECEIVER: (RECEIVER, "scale", "s2"), OTHER_RECEIVER: (OTHER_RECEIVER, "scale", "s3")}
LINE = {RECEIVER: (RECEIVER, "rfid", "line-1"), OTHER_RECEIVER: (OTHER_RECEIVER, "rfid", "line-2")}
FAR_READER = (FAR, "rfid", "in-9")
WASTES = [
    ("900-249-08", "废矿物油", "HW08"),
    ("900-041-49", "废包装桶", "HW49"),
    ("336-064-17", "废酸洗液", "HW17"),
]
# Every custody rule this scenario can break on purpose, as declared: each rule about a batch
# (`plan` breaks one batch per rule), and unknown_tag (extra reads of unregistered tags).
BATCH_VIOLATIONS = tuple(spec.id for spec in RULE_SPECS if spec.subject == "batch")
VIOLATIONS = (*BATCH_VIOLATIONS, *(spec.id for spec in RULE_SPECS if spec.subject == "epc"))
STAGE_OF = {
    "storage_in": "STORED",
    "storage_out": "DISPATCHED",
    "vehicle": "IN_TRANSIT",
    "receiver_gate": "RECEIVED",
    "disposal": "DISPOSED",
}
LOCATION = {
    "gate-03": "storage_in",
    "gate-04": "storage_out",
    "veh-01": "vehicle",
    "rg-1": "receiver_gate",
    "rg-2": "receiver_gate",
    "line-1": "disposal",
    "line-2": "disposal",
    "in-9": "storage_in",
}


@dataclass(frozen=True, slots=True)
class Message:
    ts_ns: int
    topic: str
    payload: bytes
    device: tuple[str, str, str]  # site, family, device id


@dataclass
class BatchTruth:
    """What the simulator did with one batch."""

    batch: str
    epc: str
    waste_code: str
    waste_name: str
    category: str
    gen_kg: float
    recv_kg: float
    manifest: str
    receiver: str  # the manifest's receiver
    violation: str | None = None
    # (stage, ts_ns, site, device) in time order, GENERATED first
    stages: list[tuple[str, int, str, str]] = field(default_factory=list)


@dataclass
class Plan:
    messages: list[Message]
    batches: dict[str, BatchTruth]
    unknown_epcs: list[str]
    start_ns: int

    def broken(self) -> dict[str, str]:
        return {b: t.violation for b, t in self.batches.items() if t.violation}


def _topic(device: tuple[str, str, str], kind: str) -> str:
    return f"hw/{device[0]}/{device[1]}/{device[2]}/{kind}"


def plan(
    batches: int = 200,
    violations: int = 20,
    *,
    kinds: Sequence[str] = VIOLATIONS,
    seed: int = 7,
    start_ns: int | None = None,
    spacing_h: float = 2.0,
) -> Plan:
    """The whole story as messages in device-time order, and its ground truth.

    `violations` batches break one rule each, cycling through the batch-level `kinds`; when
    `unknown_tag` is among `kinds`, two reads of unregistered tags are added as well.
    """
    rng = random.Random(seed)
    batch_kinds = [k for k in kinds if k in BATCH_VIOLATIONS]
    start = start_ns if start_ns is not None else time.time_ns() - 400 * DAY
    start -= start % 1_000_000  # millisecond device clocks
    messages: list[Message] = []
    truth: dict[str, BatchTruth] = {}
    victims: dict[int, str] = {}
    if batch_kinds and violations:
        step = max(2, batches // violations)
        for j in range(min(violations, batches // 2)):
            victims[(j * step + 1) | 1] = batch_kinds[j % len(batch_kinds)]

    def emit(ts: int, device: tuple[str, str, str], kind: str, body: dict[str, Any]) -> None:
        payload = orjson.dumps({"ts": ts // 1_000_000, **body})
        messages.append(Message(ts, _topic(device, kind), payload, device))

    def read(truth_b: BatchTruth, ts: int, device: tuple[str, str, str]) -> None:
        emit(ts, device, "read", {"epc": truth_b.epc, "rssi": -55.0, "antenna": 1})
        stage = STAGE_OF[LOCATION[device[2]]]
        truth_b.stages.append((stage, ts - ts % 1_000_000, device[0], device[2]))

    solo = {i for i, k in victims.items() if k == "storage_overdue"}
    solo |= {i ^ 1 for i in solo}
    for pair in range(0, batches, 2):
        members = [i for i in (pair, pair + 1) if i < batches]
        groups = [[i] for i in members] if any(i in solo for i in members) else [members]
        for group in groups:
            manifest = f"MF{group[0]:05d}"
            t_pair = start + int(pair / 2 * spacing_h * HOUR)
            ids = [f"B{i:05d}" for i in group]
            emit(
                t_pair + 20 * HOUR,
                TERMINAL,
                "manifest",
                {
                    "manifest": manifest,
                    "batches": ids,
                    "receiver": RECEIVER,
                    "producer": PRODUCER,
                    "transporter": TRANSPORTER,
                    "vehicle": "豫A12345",
                    "transit_limit_h": 24,
                },
            )
            for i in group:
                kind = victims.get(i)
                code, name, category = WASTES[i % len(WASTES)]
                gen_kg = round(rng.uniform(20, 100), 1)
                if kind == "storage_over_capacity":
                    gen_kg = 3100.0
                elif kind == "storage_overdue":
                    gen_kg = 30.0
                recv_kg = round(gen_kg * (0.8 if kind == "weight_mismatch" else 1.0), 1)
                if kind == "weight_mismatch":
                    recv_kg = round(recv_kg - 3, 1)
                b = BatchTruth(
                    f"B{i:05d}", f"E280{i:020X}", code, name, category, gen_kg, recv_kg,
                    manifest, RECEIVER, kind,
                )  # fmt: skip
                truth[b.batch] = b
                t = t_pair + (i - pair) * MIN
                emit(t - 2 * MIN, GEN_SCALE, "weight", {"epc": b.epc, "net_kg": gen_kg})
                emit(
                    t,
                    TERMINAL,
                    "batch",
                    {
                        "epc": b.epc,
                        "batch": b.batch,
                        "waste_code": code,
                        "waste_name": name,
                        "waste_category": category,
                        "form": "liquid",
                        "hazard": ["T"],
                        "producer": PRODUCER,
                        "container_type": "200L钢桶",
                        "handler": "张三",
                    },
                )
                b.stages.append(("GENERATED", t, PRODUCER, "t1"))
                if kind != "skipped_stage":
                    read(b, t + 60 * MIN, STORE_IN)
                if kind == "cloned_tag":
                    read(b, t + 70 * MIN, FAR_READER)
                dispatch = t_pair + 24 * HOUR + (i - pair) * MIN
                if kind == "storage_overdue":
                    dispatch = t + 370 * DAY
                elif kind == "manifest_split":
                    dispatch += 6 * HOUR
                read(b, dispatch, STORE_OUT)
                read(b, dispatch + 10 * MIN, VEHICLE)
                read(b, dispatch + 2 * HOUR, VEHICLE)
                arrive = dispatch + (30 if kind == "transit_overdue" else 4) * HOUR
                site = OTHER_RECEIVER if kind == "wrong_receiver" else RECEIVER
                read(b, arrive, GATE[site])
                emit(arrive + MIN, GATE_SCALE[site], "weight", {"epc": b.epc, "net_kg": recv_kg})
                if kind == "backward_stage":
                    read(b, arrive + HOUR, VEHICLE)
                read(b, arrive + 2 * HOUR, LINE[site])
                if kind == "disposed_tag":
                    read(b, arrive + 12 * HOUR, STORE_IN)
                b.stages.sort(key=lambda s: s[1])
    unknown: list[str] = []
    if "unknown_tag" in kinds:
        for j in range(2):
            epc = f"E2FF{rng.getrandbits(80):020X}"
            unknown.append(epc)
            emit(start + (5 + j) * HOUR, STORE_IN, "read", {"epc": epc})
    messages.sort(key=lambda m: (m.ts_ns, m.topic))
    return Plan(messages, truth, unknown, start)


@dataclass
class CustodyReport:
    published: int = 0
    plan: Plan | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.plan is not None and self.published == len(self.plan.messages)

    def summary(self) -> list[tuple[str, str]]:
        assert self.plan is not None
        broken = self.plan.broken()
        return [
            ("batches", str(len(self.plan.batches))),
            ("violations injected", ", ".join(f"{b}:{r}" for b, r in sorted(broken.items()))),
            ("unknown tags", ", ".join(self.plan.unknown_epcs) or "-"),
            ("messages published", f"{self.published} in {self.elapsed_s:.1f} s"),
        ]


class CustodyLifecycle:
    """A scenario step: publishes a plan's messages through one client per device (QoS 1).

    `time_scale` is simulated seconds per real second (0: as fast as the broker takes them);
    a single wait is capped at `max_wait_s` so a year in storage does not take a year.
    """

    label = "custody"

    def __init__(
        self,
        the_plan: Plan,
        *,
        time_scale: float = 0.0,
        max_wait_s: float = 1.0,
        rate_msg_s: float = 0.0,
    ) -> None:
        self.plan = the_plan
        self.time_scale = time_scale
        self.max_wait_s = max_wait_s
        self.rate_msg_s = rate_msg_s

    async def run(self, mqtt_url: str, progress: Progress = no_progress) -> CustodyReport:
        report = CustodyReport(plan=self.plan)
        started = time.monotonic()
        devices = sorted({m.device for m in self.plan.messages})
        clients = {
            d: device_client(mqtt_url, *d, client_id=f"sim-custody-{'-'.join(d)}") for d in devices
        }
        entered = []
        try:
            for device, client in clients.items():
                await client.__aenter__()
                entered.append(device)
            previous = self.plan.messages[0].ts_ns if self.plan.messages else 0
            total = len(self.plan.messages)
            for index, message in enumerate(self.plan.messages):
                wait = 0.0
                if self.time_scale > 0:
                    wait = min(self.max_wait_s, (message.ts_ns - previous) / 1e9 / self.time_scale)
                if self.rate_msg_s > 0:
                    wait = max(wait, 1.0 / self.rate_msg_s)
                if wait > 0:
                    await asyncio.sleep(wait)
                previous = message.ts_ns
                await clients[message.device].publish(message.topic, message.payload, qos=1)
                report.published += 1
                if index % 200 == 0:
                    progress(index / max(1, total), f"{index}/{total} messages")
            progress(1.0, f"{total}/{total} messages")
        finally:
            for device in entered:
                await clients[device].__aexit__(None, None, None)
        report.elapsed_s = time.monotonic() - started
        return report


def custody_scenario(**options: Any) -> Scenario:
    """`hazwatch simulate --scenario custody`: `count` batches (default 200), one in ten broken.

    `rate` caps messages per second (0: as fast as the broker takes them); `day_s` (keyword
    only) makes a simulated day last that many seconds (a wait is capped at one second).
    """
    count = int(options.get("count") or 200)
    seed = int(options.get("seed") or 7)
    day_s = options.get("day_s")
    the_plan = plan(count, max(1, count // 10), seed=seed)
    step = CustodyLifecycle(
        the_plan,
        time_scale=86400.0 / float(day_s) if day_s else 0.0,
        rate_msg_s=float(options.get("rate") or 0.0),
    )
    return Scenario(
        "custody", [step], "waste batches from producer to disposal, violations injected"
    )


register_scenario("custody", custody_scenario)
