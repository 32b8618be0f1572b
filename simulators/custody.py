"""Waste-lifecycle scenario: batches from producer via transporter to disposal site, over MQTT.

Never decide a verdict with hazwatch's code here (nothing of hazwatch.streams.custody but the
rule declarations is imported): the plan records what physically happened, the ground truth
(simulators/truth.py) that tests hold hazwatch's custody events, verdicts and ledger against.

By default a reader reports a container as a real one does (simulators/reads.py): a burst of
reads for the seconds it is in the field, cross-reads at the door beside it, drums parked in
the storage door's field, daily stocktakes with a handheld, a vehicle reader's inventories in
transit. `reads=ONE_READ` keeps the old story of one read per stage: what a reader set to
report each tag once would send, and what the custody tests written before passes used.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from hazwatch.devices.timeparse import CHINA
from hazwatch.simulators.clocks import DeviceClock, parse_clocks
from hazwatch.simulators.fleet import Progress, no_progress
from hazwatch.simulators.mqtt import device_client, status_topic
from hazwatch.simulators.payloads import FIRMWARE
from hazwatch.simulators.reads import NS_PER_S, Portal, Radio, ReadModel, Sighting
from hazwatch.simulators.scenarios import Scenario, register_scenario
from hazwatch.simulators.truth import BatchTruth, Entry, GroundTruth, PassTruth
from hazwatch.streams.custody.rules import RULE_SPECS

MS = 1_000_000
MIN = 60 * NS_PER_S
HOUR = 60 * MIN
DAY = 24 * HOUR
PRODUCER, TRANSPORTER, RECEIVER, OTHER_RECEIVER, FAR = "jy-0012", "tr-01", "dp-01", "dp-02", "kf-99"
# The sample registry (tests/data/registry.toml, docs/registry.example.toml) names these devices.
TERMINAL = (PRODUCER, "terminal", "t1")
GEN_SCALE = (PRODUCER, "scale", "s1")
STORE_IN = (PRODUCER, "rfid", "gate-03")
STORE_OUT = (PRODUCER, "rfid", "gate-04")
HANDHELD = (PRODUCER, "rfid", "hh-01")  # the storage room's stocktake handheld
VEHICLE = (TRANSPORTER, "rfid", "veh-01")
GATE = {RECEIVER: (RECEIVER, "rfid", "rg-1"), OTHER_RECEIVER: (OTHER_RECEIVER, "rfid", "rg-2")}
GATE_SCALE = {RECEIVER: (RECEIVER, "scale", "s2"), OTHER_RECEIVER: (OTHER_RECEIVER, "scale", "s3")}
LINE = {RECEIVER: (RECEIVER, "rfid", "line-1"), OTHER_RECEIVER: (OTHER_RECEIVER, "rfid", "line-2")}
FAR_READER = (FAR, "rfid", "in-9")
# Readers whose fields overlap, as the sample registry declares them (`overlaps`): the storage
# room's in and out doors stand side by side, each sees what passes the other, weakly.
OVERLAPS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    (PRODUCER, "gate-03"): ((PRODUCER, "gate-04"),),
    (PRODUCER, "gate-04"): ((PRODUCER, "gate-03"),),
}
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
    "hh-01": "storage_in",
    "veh-01": "vehicle",
    "rg-1": "receiver_gate",
    "rg-2": "receiver_gate",
    "line-1": "disposal",
    "line-2": "disposal",
    "in-9": "storage_in",
}
REALISTIC = ReadModel()
# Messages of different devices closer than this may reach the broker in either order (as
# from real devices on their own connections); further apart, they arrive in sending order
# (a registration before its container's first read, 10 s later in the compressed story).
ORDER_SLACK_NS = 5 * NS_PER_S
# The custody settings (hazwatch's [custody] table) that go with Timing.compressed().
COMPRESSED_LIMITS = {"manifest_window_h": 0.01, "max_speed_kmh": 2000.0}
ONE_READ = None  # plan(reads=ONE_READ): one read per stage, as before passes


@dataclass(frozen=True, slots=True)
class Timing:
    """When each step of a pair of batches' story happens. The defaults are a working pace
    (a pair every two hours, a day in storage, four hours on the road); `compressed()` tells
    the same story in two and a half minutes, for the demo and for live tests."""

    spacing_s: float = 2 * 3600.0  # between pairs (plan's spacing_h sets it)
    within_pair_s: float = 60.0  # between the two batches of a pair
    weigh_before_s: float = 120.0  # weighed at generation, before registration
    store_after_s: float = 3600.0
    clone_after_s: float = 4200.0  # cloned_tag: the same tag read at the far site
    manifest_after_s: float = 20 * 3600.0  # from the pair's start
    dispatch_after_s: float = 24 * 3600.0  # from the pair's start
    split_delay_s: float = 6 * 3600.0  # manifest_split: one batch leaves this much later
    overdue_stay_s: float = 370 * 86400.0  # storage_overdue: dispatched after this
    load_after_s: float = 600.0  # on the vehicle after dispatch
    second_vehicle_s: float = 2 * 3600.0  # the one-read story's second vehicle read
    unload_before_s: float = 120.0
    transit_s: float = 4 * 3600.0
    overdue_transit_s: float = 30 * 3600.0  # transit_overdue
    transit_limit_h: float = 24.0  # the manifests' transit limit
    weigh_after_s: float = 60.0  # reweighed at the receiver's gate
    # backward_stage: back on the vehicle after receipt (longer after the unloading than a
    # vehicle reader's pass gap, 60 s by default, or it is the same trip's pass)
    back_after_s: float = 3600.0
    dispose_after_s: float = 2 * 3600.0
    reuse_after_s: float = 12 * 3600.0  # disposed_tag: the tag comes back to storage
    unknown_after_s: float = 5 * 3600.0  # unknown_tag: reads of unregistered tags
    unknown_gap_s: float = 3600.0

    @classmethod
    def compressed(cls) -> Timing:
        """A pair every 20 s; storage 45 s, transit 50 s (limit 90 s), disposal 20 s after.
        The custody settings shrink with it (COMPRESSED_LIMITS: a manifest's batches leave
        within 36 s, a truck may do 2000 km/h, so that 22 km in 50 s is no clone): then
        every rule but storage_overdue (a year in storage) fires, and only where injected."""
        return cls(
            spacing_s=20.0,
            within_pair_s=4.0,
            weigh_before_s=8.0,
            store_after_s=15.0,
            clone_after_s=25.0,
            manifest_after_s=30.0,
            dispatch_after_s=60.0,
            split_delay_s=50.0,
            load_after_s=8.0,
            second_vehicle_s=20.0,
            unload_before_s=3.0,
            transit_s=50.0,
            overdue_transit_s=150.0,
            transit_limit_h=0.025,
            weigh_after_s=5.0,
            back_after_s=70.0,
            dispose_after_s=20.0,
            reuse_after_s=75.0,  # 55 s after disposal: 22 km away at 2000 km/h is 40 s
            unknown_after_s=20.0,
            unknown_gap_s=30.0,
        )

    def ns(self, name: str) -> int:
        return int(getattr(self, name) * NS_PER_S)


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the plan: sent at `sent_ns` (true time), stamped `ts_ns` by the device's
    clock (the same unless a clock is off). `kind`/`pass_id`/`epc` say what a read is."""

    ts_ns: int
    topic: str
    payload: bytes
    device: tuple[str, str, str]  # site, family, device id
    sent_ns: int = 0
    kind: str = ""  # a read's: pass | cross | parked | stocktake | transit | single
    pass_id: int = 0
    epc: str = ""


@dataclass
class Plan(GroundTruth):
    """The messages of a story in sending order, and what physically happened (GroundTruth)."""

    messages: list[Message] = field(default_factory=list)


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _topic(device: tuple[str, str, str], kind: str) -> str:
    return f"hw/{device[0]}/{device[1]}/{device[2]}/{kind}"


@dataclass
class _Pending:
    """A message before its device clock and payload are applied."""

    sent_ns: int
    device: tuple[str, str, str]
    kind: str  # topic kind
    body: dict[str, Any]
    read_kind: str = ""
    pass_id: int = 0
    epc: str = ""


class _Story:
    """Builds a plan: the batches' steps as messages, the physical passes as ground truth."""

    def __init__(
        self,
        reads: ReadModel | None,
        timing: Timing,
        clocks: Mapping[str, DeviceClock],
        seed: int,
        start: int,
    ) -> None:
        self.reads, self.timing, self.start = reads, timing, start
        # a clock counts from the plan's start unless it was started already (a live run's)
        self.clocks = {d: c if c.origin_ns else c.starting(start) for d, c in clocks.items()}
        self.radio = Radio(reads or ReadModel(), seed=seed)
        self.pending: list[_Pending] = []
        self.passes: dict[int, PassTruth] = {}
        self.steps: dict[str, list[tuple[str, str, str, list[int]]]] = {}  # batch → steps
        self.last_at: dict[int, int] = {}  # pass id → true time of its last read so far
        # passes of a batch's tag that are not its container: a clone's, a reused tag's
        self.foreign: set[int] = set()
        self.rooms: dict[str, list[tuple[str, int, int]]] = {}  # epc → (site, from, to)
        self.single = 0  # pass ids of one-read reads (negative, not the radio's)

    def emit(self, ts: int, device: tuple[str, str, str], kind: str, body: dict[str, Any]) -> None:
        self.pending.append(_Pending(ts, device, kind, body))

    def sightings(self, found: list[Sighting], batch: str | None) -> list[int]:
        """Queue reads as messages; returns the ids of the passes they belong to."""
        ids: list[int] = []
        for s in found:
            device = (s.site, "rfid", s.reader)
            body = {"epc": s.epc, "rssi": s.rssi, "antenna": s.antenna}
            self.pending.append(_Pending(s.at_ns, device, "read", body, s.kind, s.pass_id, s.epc))
            if s.kind == "cross":
                continue
            self.last_at[s.pass_id] = max(s.at_ns, self.last_at.get(s.pass_id, s.at_ns))
            if s.pass_id not in self.passes:
                self.passes[s.pass_id] = PassTruth(
                    s.pass_id, s.epc, batch, s.site, s.reader, s.kind, LOCATION[s.reader]
                )
                ids.append(s.pass_id)
        return ids

    def one_read(
        self, epc: str, ts: int, device: tuple[str, str, str], batch: str | None, bare: bool = False
    ) -> int:
        """One read (`bare`: the EPC alone, as the one-read story's unknown tags are sent)."""
        self.single -= 1
        body: dict[str, Any] = {"epc": epc} if bare else {"epc": epc, "rssi": -55.0, "antenna": 1}
        self.last_at[self.single] = ts
        self.pending.append(_Pending(ts, device, "read", body, "single", self.single, epc))
        self.passes[self.single] = PassTruth(
            self.single, epc, batch, device[0], device[2], "single", LOCATION[device[2]]
        )
        return self.single

    def visit(
        self, b: BatchTruth | None, epc: str, ts: int, device: tuple[str, str, str], portal: str
    ) -> list[int]:
        """The container carried past `device` (closest at `ts`): one read, or a pass."""
        batch = b.batch if b else None
        if self.reads is None:
            ids = [self.one_read(epc, ts, device, batch)]
        else:
            where: Portal = getattr(self.reads, portal)
            overlapping = OVERLAPS.get((device[0], device[2]), ())
            ids = self.sightings(
                self.radio.passing(
                    epc, device[0], device[2], ts, where,
                    outward=device == STORE_OUT, overlapping=overlapping,
                ),
                batch,
            )  # fmt: skip
        if b is not None:
            self.steps.setdefault(b.batch, []).append(
                (STAGE_OF[LOCATION[device[2]]], device[0], device[2], ids)
            )
        return ids

    def transit(self, b: BatchTruth, load: int, unload: int, *, back: bool = False) -> None:
        """On the vehicle from `load` to `unload`: the one-read story reads it twice."""
        if self.reads is None:
            ids = [self.one_read(b.epc, load, VEHICLE, b.batch)]
            if not back:
                second = load - self.timing.ns("load_after_s") + self.timing.ns("second_vehicle_s")
                ids.append(self.one_read(b.epc, second, VEHICLE, b.batch))
        else:
            found = self.radio.transit(b.epc, VEHICLE[0], VEHICLE[2], load, unload, self.start)
            ids = self.sightings(found, b.batch)
        self.steps.setdefault(b.batch, []).append(("IN_TRANSIT", VEHICLE[0], VEHICLE[2], ids))

    def park(self, b: BatchTruth, store_ids: list[int], leave: int) -> None:
        """Perhaps set down inside the storage door, in its field, for a while."""
        if self.reads is None or self.radio.rng.random() >= self.reads.parked_p:
            return
        last = max(self.last_at[i] for i in store_ids)
        begin = last + int(self.radio.rng.uniform(2, 5) * NS_PER_S)
        end = min(begin + int(self.radio.rng.uniform(*self.reads.parked_s) * NS_PER_S), leave)
        if end <= begin:
            return
        found = self.radio.parked(
            b.epc, STORE_IN[0], STORE_IN[2], begin, end, self.reads.door.antennas, self.reads.door
        )
        self.sightings(found, b.batch)

    def in_room(self, epc: str, site: str, begin: int, end: int) -> None:
        self.rooms.setdefault(epc, []).append((site, begin, end))

    def stocktakes(self, until: int, batch_of: Mapping[str, str]) -> None:
        """The handheld reads every container in the storage room, every day at the set time."""
        if self.reads is None or not self.rooms:
            return
        m = self.reads
        every = int(m.stocktake_every_s * NS_PER_S)
        first = min(begin for stays in self.rooms.values() for _, begin, _ in stays)
        local_day = datetime.fromtimestamp(first // NS_PER_S, CHINA).replace(
            hour=0, minute=0, second=0
        )
        t = int(local_day.timestamp()) * NS_PER_S + int(m.stocktake_at_s * NS_PER_S)
        while t < first:
            t += every
        stays = {
            epc: [(begin, end) for site, begin, end in st if site == HANDHELD[0]]
            for epc, st in self.rooms.items()
        }
        while t < until:
            present = sorted(e for e, st in stays.items() if any(b <= t < e_ for b, e_ in st))
            if present:
                self.radio.rng.shuffle(present)
                found = self.radio.stocktake(present, HANDHELD[0], HANDHELD[2], t)
                # read only while it is really in the room (it may leave during a long round)
                for epc in present:
                    mine = [s for s in found if s.epc == epc and any(
                        b <= s.at_ns < e_ for b, e_ in stays[epc]
                    )]  # fmt: skip
                    if mine:
                        self.sightings(mine, batch_of.get(epc))
            t += every

    def finish(self) -> list[Message]:
        """Device clocks applied, read times made unique per reader and tag, payloads built."""
        self.pending.sort(key=lambda p: (p.sent_ns, _topic(p.device, p.kind)))
        last_ms: dict[tuple[tuple[str, str, str], str], int] = {}
        messages: list[Message] = []
        for p in self.pending:
            clock = self.clocks.get(p.device[2])
            ts = clock.device_ns(p.sent_ns) if clock else p.sent_ns
            ts -= ts % MS  # millisecond device clocks
            if p.kind == "read":
                key = (p.device, p.epc)
                if key in last_ms and ts <= last_ms[key]:
                    ts = last_ms[key] + MS  # two reads of one tag in one ms are one read
                last_ms[key] = ts
            payload = orjson.dumps({"ts": ts // MS, **p.body})
            messages.append(
                Message(ts, _topic(p.device, p.kind), payload, p.device, p.sent_ns,
                        p.read_kind, p.pass_id, p.epc)
            )  # fmt: skip
            if p.read_kind and p.read_kind != "cross":
                self.passes[p.pass_id].add(p.sent_ns, ts, p.body.get("rssi"), p.body.get("antenna"))
            elif p.read_kind == "cross":
                self.passes[p.pass_id].cross_reads += 1
        return messages

    def entries(self, b: BatchTruth) -> list[Entry]:
        """The stages the batch's tag entered, from its steps: a step at the stage and site it
        is already in (the second vehicle read of the one-read story) is the same stay, not a
        new one; an entry by a clone or a reused tag is marked not `physical`."""
        _, at, site0, terminal = b.stages[0]
        clock = self.clocks.get(terminal)
        ts0 = clock.device_ns(at) if clock else at
        entered = [Entry("GENERATED", site0, terminal, at, at, ts0 - ts0 % MS, 0, ())]
        steps = []
        for stage, site, reader, step_ids in self.steps.get(b.batch, []):
            passes = [self.passes[i] for i in step_ids if self.passes[i].reads]
            if passes:
                steps.append((min(p.first_ns for p in passes), stage, site, reader, passes))
        for _, stage, site, reader, passes in sorted(steps, key=lambda s: s[0]):
            first = min(passes, key=lambda p: p.first_ns)
            ids = tuple(p.pass_id for p in passes)
            reads = sum(p.reads for p in passes)
            last = entered[-1]
            if (last.stage, last.site) == (stage, site):
                entered[-1] = last.extended(max(p.last_ns for p in passes), reads, ids)
                continue
            entered.append(
                Entry(stage, site, reader, first.first_ns, max(p.last_ns for p in passes),
                      first.first_ts_ns, reads, ids, not self.foreign.intersection(ids))
            )  # fmt: skip
        return entered


def plan(
    batches: int = 200,
    violations: int = 20,
    *,
    kinds: Sequence[str] = VIOLATIONS,
    seed: int = 7,
    start_ns: int | None = None,
    spacing_h: float | None = None,
    reads: ReadModel | None = REALISTIC,
    timing: Timing | None = None,
    clocks: Mapping[str, DeviceClock] | None = None,
    prefix: str = "",
    epc_base: int = 0,
) -> Plan:
    """The whole story as messages in sending order, and its ground truth.

    `violations` batches break one rule each, cycling through the batch-level `kinds`; when
    `unknown_tag` is among `kinds`, two unregistered tags pass the storage door as well.
    `reads`: how readers report (ONE_READ: one read per stage); `timing`: the story's pace;
    `clocks`: device id → its clock (the messages' `ts`); `prefix` and `epc_base` make batch,
    manifest and tag ids of one run distinct from another's.
    """
    rng = random.Random(seed)
    t_ = timing or Timing()
    if spacing_h is not None:
        t_ = dataclasses.replace(t_, spacing_s=spacing_h * 3600.0)
    ns = t_.ns
    batch_kinds = [k for k in kinds if k in BATCH_VIOLATIONS]
    start = start_ns if start_ns is not None else time.time_ns() - 400 * DAY
    start -= start % MS  # millisecond device clocks
    story = _Story(reads, t_, clocks or {}, seed, start)
    truth: dict[str, BatchTruth] = {}
    victims: dict[int, str] = {}
    if batch_kinds and violations:
        step = max(2, batches // violations)
        for j in range(min(violations, batches // 2)):
            victims[(j * step + 1) | 1] = batch_kinds[j % len(batch_kinds)]
    emit = story.emit

    solo = {i for i, k in victims.items() if k == "storage_overdue"}
    solo |= {i ^ 1 for i in solo}
    for pair in range(0, batches, 2):
        members = [i for i in (pair, pair + 1) if i < batches]
        groups = [[i] for i in members] if any(i in solo for i in members) else [members]
        for group in groups:
            manifest = f"{prefix}MF{group[0]:05d}"
            t_pair = start + int(pair / 2 * ns("spacing_s"))
            ids = [f"{prefix}B{i:05d}" for i in group]
            emit(
                t_pair + ns("manifest_after_s"),
                TERMINAL,
                "manifest",
                {
                    "manifest": manifest,
                    "batches": ids,
                    "receiver": RECEIVER,
                    "producer": PRODUCER,
                    "transporter": TRANSPORTER,
                    "vehicle": "豫A12345",
                    "transit_limit_h": _whole(t_.transit_limit_h),
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
                    f"{prefix}B{i:05d}", f"E280{epc_base + i:020X}", code, name, category,
                    gen_kg, recv_kg, manifest, RECEIVER, kind,
                )  # fmt: skip
                truth[b.batch] = b
                t = t_pair + (i - pair) * ns("within_pair_s")
                emit(
                    t - ns("weigh_before_s"), GEN_SCALE, "weight", {"epc": b.epc, "net_kg": gen_kg}
                )
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
                dispatch = t_pair + ns("dispatch_after_s") + (i - pair) * ns("within_pair_s")
                if kind == "storage_overdue":
                    dispatch = t + ns("overdue_stay_s")
                elif kind == "manifest_split":
                    dispatch += ns("split_delay_s")
                stored = t + ns("store_after_s")
                if kind != "skipped_stage":
                    store_ids = story.visit(b, b.epc, stored, STORE_IN, "door")
                    if kind != "cloned_tag":  # (a clone's parking, stocktakes: see truth.py)
                        story.park(b, store_ids, dispatch - 10 * NS_PER_S)
                        story.in_room(
                            b.epc, PRODUCER, stored + 10 * NS_PER_S, dispatch - 10 * NS_PER_S
                        )
                if kind == "cloned_tag":
                    clone = story.visit(b, b.epc, t + ns("clone_after_s"), FAR_READER, "door")
                    story.foreign.update(clone)
                story.visit(b, b.epc, dispatch, STORE_OUT, "door")
                load = dispatch + ns("load_after_s")
                arrive = dispatch + ns(
                    "overdue_transit_s" if kind == "transit_overdue" else "transit_s"
                )
                story.transit(b, load, arrive - ns("unload_before_s"))
                site = OTHER_RECEIVER if kind == "wrong_receiver" else RECEIVER
                story.visit(b, b.epc, arrive, GATE[site], "gate")
                emit(arrive + ns("weigh_after_s"), GATE_SCALE[site], "weight",
                     {"epc": b.epc, "net_kg": recv_kg})  # fmt: skip
                dispose = arrive + ns("dispose_after_s")
                if kind == "backward_stage":
                    back = arrive + ns("back_after_s")
                    burst = int((reads.transit_burst_s if reads else 0) * NS_PER_S)
                    story.transit(b, back, back + burst, back=True)
                    dispose = max(dispose, back + 20 * NS_PER_S)
                story.visit(b, b.epc, dispose, LINE[site], "line")
                if kind == "disposed_tag":
                    reuse = arrive + ns("reuse_after_s")
                    story.foreign.update(story.visit(b, b.epc, reuse, STORE_IN, "door"))
                    story.in_room(b.epc, PRODUCER, reuse + 10 * NS_PER_S, 2**62)
    unknown: list[str] = []
    if "unknown_tag" in kinds:
        for j in range(2):
            epc = f"E2FF{rng.getrandbits(80):020X}"
            unknown.append(epc)
            at = start + ns("unknown_after_s") + j * ns("unknown_gap_s")
            if reads is None:
                story.one_read(epc, at, STORE_IN, None, bare=True)
            else:
                story.visit(None, epc, at, STORE_IN, "door")
    end = max((p.sent_ns for p in story.pending), default=start)
    story.stocktakes(end, {b.epc: b.batch for b in truth.values()})
    messages = story.finish()
    for b in truth.values():
        b.entered = story.entries(b)
        b.stages[1:] = [(e.stage, e.ts_ns, e.site, e.device) for e in b.entered[1:]]
    return Plan(
        batches=truth,
        unknown_epcs=unknown,
        start_ns=start,
        passes=story.passes,
        read_model=reads,
        timing_name="compressed" if t_ == Timing.compressed() else "default",
        clocks={d: c.describe() for d, c in (clocks or {}).items()},
        messages=messages,
    )


@dataclass
class CustodyReport:
    published: int = 0
    plan: Plan | None = None
    elapsed_s: float = 0.0
    truth_path: Path | None = None
    expected: int | None = None  # messages it had to publish (None: all of the plan's)

    @property
    def ok(self) -> bool:
        if self.plan is None:
            return False
        return self.published == (
            len(self.plan.messages) if self.expected is None else self.expected
        )

    def summary(self) -> list[tuple[str, str]]:
        assert self.plan is not None
        broken = self.plan.broken()
        reads = self.plan.read_counts()
        rate = self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0
        rows = [
            ("batches", str(len(self.plan.batches))),
            ("violations injected", ", ".join(f"{b}:{r}" for b, r in sorted(broken.items()))),
            ("unknown tags", ", ".join(self.plan.unknown_epcs) or "-"),
            ("reads", "one per stage" if self.plan.read_model is None else "bursts (realistic)"),
        ]
        rows += [(f"  {kind} reads", f"{n:,}") for kind, n in sorted(reads.items())]
        rows += [
            (
                "clocks",
                ", ".join(f"{d} {c}" for d, c in sorted(self.plan.clocks.items())) or "exact",
            ),
            ("messages published", f"{self.published} in {self.elapsed_s:.1f} s ({rate:,.0f}/s)"),
        ]
        if self.plan.timing_name == "compressed":
            limits = ", ".join(f"{k} = {v:g}" for k, v in COMPRESSED_LIMITS.items())
            rows.append(("timing", f"compressed: judge with [custody] {limits}"))
        if self.truth_path is not None:
            rows.append(("ground truth", str(self.truth_path)))
        return rows


class CustodyLifecycle:
    """A scenario step: publishes a plan's messages through one client per device (QoS 1).

    `time_scale` is simulated seconds per real second (0: as fast as the broker takes them); a
    single wait is capped at `max_wait_s` so a year in storage does not take a year. `live`:
    each message when the wall clock reaches its time, as the devices would send it (a plan
    that starts now). Up to `window` publishes
    are in flight at once, each device's in its order, and only messages sent within
    `ORDER_SLACK_NS` of each other: what happened a second apart (a registration and its
    tag's first read an hour later) arrives in that order, as from the devices themselves.
    All in flight are acknowledged before a wait.
    """

    label = "custody"

    def __init__(
        self,
        the_plan: Plan,
        *,
        time_scale: float = 0.0,
        max_wait_s: float = 1.0,
        rate_msg_s: float = 0.0,
        window: int = 100,
        truth_path: Path | None = None,
        live: bool = False,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.live = live
        self.plan = the_plan
        self.time_scale = time_scale
        self.max_wait_s = max_wait_s
        self.rate_msg_s = rate_msg_s
        self.window = window
        self.truth_path = truth_path
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    async def run(self, mqtt_url: str, progress: Progress = no_progress) -> CustodyReport:
        report = CustodyReport(plan=self.plan, truth_path=self.truth_path)
        if self.truth_path is not None:
            self.plan.write(self.truth_path)
        started = time.monotonic()
        messages = self.plan.messages
        async with _Clients(mqtt_url, "sim-custody", self.window) as clients:
            total = len(messages)
            base_real, base_sim = time.monotonic(), messages[0].sent_ns if messages else 0
            inflight: list[asyncio.Future[None]] = []
            oldest = 0  # sent_ns of the first message in flight

            async def flush() -> None:
                nonlocal inflight
                await asyncio.gather(*inflight)
                report.published += len(inflight)
                inflight = []

            for index, message in enumerate(messages):
                if self.stopping:
                    break
                wait = 0.0
                if self.live:  # each message when the wall clock reaches its time
                    wait = (message.sent_ns - time.time_ns()) / 1e9
                elif self.time_scale > 0:
                    due = base_real + (message.sent_ns - base_sim) / 1e9 / self.time_scale
                    wait = due - time.monotonic()
                    if wait > self.max_wait_s:  # skip ahead: the rest of the wait is not waited
                        base_real -= wait - self.max_wait_s
                        wait = self.max_wait_s
                if self.rate_msg_s > 0:
                    wait = max(wait, 1.0 / self.rate_msg_s)
                if wait > 0:
                    await flush()
                    await asyncio.sleep(wait)
                elif inflight and message.sent_ns - oldest > ORDER_SLACK_NS:
                    await flush()
                if not inflight:
                    oldest = message.sent_ns
                client = await clients.get(message.device)
                inflight.append(
                    asyncio.ensure_future(client.publish(message.topic, message.payload, qos=1))
                )
                if len(inflight) >= self.window:
                    await flush()
                if index % 500 == 0:
                    progress(index / max(1, total), f"{index}/{total} messages")
            await flush()
            progress(1.0, f"{report.published}/{total} messages")
        report.elapsed_s = time.monotonic() - started
        return report


class _Clients:
    """One MQTT client per device, connected on first use, all closed on exit. With `clocks`
    (a live run), each device says it is online (retained, stamped by its clock) when it
    connects and offline when it stops, as the fleet's devices do."""

    def __init__(
        self,
        url: str,
        prefix: str,
        window: int,
        clocks: Mapping[str, DeviceClock] | None = None,
    ) -> None:
        self.url, self.prefix, self.window = url, prefix, window
        self.clocks = clocks
        self.clients: dict[tuple[str, str, str], Any] = {}

    async def get(self, device: tuple[str, str, str]) -> Any:
        client = self.clients.get(device)
        if client is None:
            client = device_client(self.url, *device, client_id=f"{self.prefix}-{'-'.join(device)}")
            client.pending_calls_threshold = 2 * self.window + 10
            # paho sends at most 20 unacked QoS 1 messages by default: let a window be in flight
            client._client.max_inflight_messages_set(self.window)
            await client.__aenter__()
            self.clients[device] = client
            await self._status(device, client, online=True)
        return client

    async def _status(self, device: tuple[str, str, str], client: Any, *, online: bool) -> None:
        if self.clocks is None:
            return
        clock = self.clocks.get(device[2])
        now = time.time_ns()
        ts = clock.device_ns(now) if clock else now
        body = {"online": online, "ts": ts // MS, "fw": FIRMWARE.get(device[1], "")}
        await client.publish(status_topic(*device), orjson.dumps(body), qos=1, retain=True)

    async def __aenter__(self) -> _Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for device, client in self.clients.items():
            try:
                await self._status(device, client, online=False)
                await client.__aexit__(None, None, None)
            except Exception:  # already gone: closing the others matters more
                pass


# The rules the compressed story can break live (storage_overdue needs a year in storage),
# one per pair (a pair every 20 s), in this order: a broken chain within the first minute,
# then the slowest to show, so that every one has shown within four minutes. (Seconds from
# the victim's registration to its verdict.)
LIVE_VIOLATIONS = (
    "cloned_tag",  # ~25 s: read at the far site
    "backward_stage",  # ~190 s: back on the truck after receipt
    "disposed_tag",  # ~185 s: in storage after disposal
    "transit_overdue",  # ~150 s: past the manifest's 90 s
    "skipped_stage",  # ~60 s: dispatched, never stored
    "weight_mismatch",  # ~115 s: at the receiver's scale
    "wrong_receiver",  # ~110 s
    "manifest_split",  # ~96 s
    "storage_over_capacity",  # ~15 s
    "unknown_tag",
)


class LiveCustody:
    """A scenario step for the demo and live tests: the compressed story without end, each
    message sent when its time comes, stamped by its device's clock (clocks count from the
    run's start). A plan of `chunk` batches is made as the last one runs out, its broken
    batches the next `violations` of `kinds` in turn; `plans` keeps each (the ground truth)."""

    label = "custody (live)"

    def __init__(
        self,
        *,
        chunk: int = 18,
        violations: int = 9,
        kinds: Sequence[str] = (),
        reads: ReadModel | None = None,
        clocks: Mapping[str, DeviceClock] | None = None,
        seed: int = 0,
        duration_s: float | None = None,
        keep_plans: bool = True,
    ) -> None:
        self.chunk, self.violations = chunk, violations
        self.kinds = tuple(kinds) or LIVE_VIOLATIONS
        self.reads = reads or ReadModel.compressed()
        self.clocks = dict(clocks or {})
        self.seed = seed or time.time_ns() // NS_PER_S
        self.duration_s = duration_s
        self.keep_plans = keep_plans
        self.plans: list[Plan] = []
        self.published = 0
        self.stopping = False
        self.run_tag = f"{self.seed % 0xFFFFF:05X}"

    def stop(self) -> None:
        self.stopping = True

    def _plan(self, number: int, start_ns: int, clocks: Mapping[str, DeviceClock]) -> Plan:
        batch_kinds = [k for k in self.kinds if k in BATCH_VIOLATIONS]
        turn = (number * self.violations) % max(1, len(batch_kinds))
        kinds = [*batch_kinds[turn:], *batch_kinds[:turn]]
        if "unknown_tag" in self.kinds and number % 3 == 0:  # two unknown tags now and then
            kinds.append("unknown_tag")
        return plan(
            self.chunk,
            self.violations,
            kinds=kinds,
            seed=self.seed * 1000 + number,
            start_ns=start_ns,
            reads=self.reads,
            timing=Timing.compressed(),
            clocks=clocks,
            prefix=f"L{self.run_tag}-{number:03d}-",
            epc_base=(int(self.run_tag, 16) << 40) + number * 1000,
        )

    async def run(self, mqtt_url: str, progress: Progress = no_progress) -> CustodyReport:
        report = CustodyReport()
        started = time.monotonic()
        origin = time.time_ns()
        clocks = {d: c.starting(origin) for d, c in self.clocks.items()}
        span = int(self.chunk / 2 * Timing.compressed().spacing_s * NS_PER_S)
        queue: list[tuple[int, int, Message]] = []
        number = order = 0
        async with _Clients(mqtt_url, "sim-live", 1, clocks) as clients:
            while not self.stopping:
                now = time.time_ns()
                if self.duration_s is not None and now - origin >= self.duration_s * NS_PER_S:
                    break
                if number * span <= now - origin + 5 * NS_PER_S:  # the next chunk, 5 s ahead
                    made = self._plan(number, origin + number * span, clocks)
                    for message in made.messages:
                        heapq.heappush(queue, (message.sent_ns, order, message))
                        order += 1
                    if self.keep_plans:
                        self.plans.append(made)
                    report.plan = made
                    number += 1
                while queue and queue[0][0] <= time.time_ns() and not self.stopping:
                    _, _, message = heapq.heappop(queue)
                    client = await clients.get(message.device)
                    await client.publish(message.topic, message.payload, qos=1)
                    self.published += 1
                nxt = queue[0][0] if queue else time.time_ns() + NS_PER_S // 10
                await asyncio.sleep(max(0.0, min(0.1, (nxt - time.time_ns()) / 1e9)))
                if self.duration_s:
                    done = min(1.0, (time.monotonic() - started) / self.duration_s)
                    progress(done, f"{self.published} messages")
        report.published = report.expected = self.published
        report.elapsed_s = time.monotonic() - started
        return report


def custody_scenario(**options: Any) -> Scenario:
    """`hazwatch simulate --scenario custody`: `count` batches (default 200), `violations` of
    them broken (default one in ten), read in bursts as real readers report (`reads="single"`:
    one read per stage).

    `rate` caps messages per second (0: as fast as the broker takes them); `day_s` (keyword
    only) makes a simulated day last that many seconds (a wait is capped at one second);
    `timing="compressed"` with `live=True` sends the two-and-a-half-minute story in real time
    (start now); `clocks` maps device ids to DeviceClocks or specs; `truth` is a path the
    ground truth is written to (JSON) before the first message is sent.
    """
    count = int(options.get("count") or 200)
    seed = int(options.get("seed") or 7)
    day_s = options.get("day_s")
    reads_option = options.get("reads") or "bursts"
    if reads_option not in ("bursts", "single"):
        raise ValueError(f"reads must be bursts or single, got {reads_option!r}")
    timing_option = options.get("timing") or "default"
    if timing_option not in ("default", "compressed"):
        raise ValueError(f"timing must be default or compressed, got {timing_option!r}")
    live = bool(options.get("live"))
    compressed = timing_option == "compressed"
    raw_clocks = options.get("clocks") or {}
    clocks = (
        parse_clocks(raw_clocks)
        if isinstance(raw_clocks, list | tuple)
        else {d: c if isinstance(c, DeviceClock) else parse_clocks([f"{d}={c}"])[d]
              for d, c in dict(raw_clocks).items()}
    )  # fmt: skip
    model: ReadModel | None = None
    if reads_option == "bursts":
        model = ReadModel.compressed() if compressed else ReadModel()
    violations = options.get("violations")
    timing = Timing.compressed() if compressed else Timing()
    the_plan = plan(
        count,
        max(1, count // 10) if violations is None else int(violations),
        kinds=LIVE_VIOLATIONS if compressed else VIOLATIONS,
        seed=seed,
        reads=model,
        timing=timing,
        # the first weighing comes before the first registration: start when it is due
        start_ns=time.time_ns() + int(timing.weigh_before_s + 2) * NS_PER_S if live else None,
        clocks=clocks,
    )
    truth = options.get("truth")
    step = CustodyLifecycle(
        the_plan,
        time_scale=86400.0 / float(day_s) if day_s else 0.0,
        live=live,
        rate_msg_s=float(options.get("rate") or 0.0),
        window=1 if live else 100,
        truth_path=Path(truth) if truth else None,
    )
    return Scenario(
        "custody", [step], "waste batches from producer to disposal, violations injected"
    )


register_scenario("custody", custody_scenario)
