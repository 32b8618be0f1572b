"""The chain-of-custody state machine: registrations, manifests, reads, weighings → verdicts.

Never do I/O or read a clock here: time comes in as an argument, and each verdict is a pure
function of the inputs seen so far, whatever order they arrived in.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from hazwatch.alerts.model import Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of
from hazwatch.devices.clock_offset import Retime
from hazwatch.devices.registry import DEFAULT_STORAGE_LIMIT_DAYS, DEFAULT_STORAGE_LIMIT_KG
from hazwatch.devices.topics import ROOT
from hazwatch.streams.custody.occupancy import Occupancy, Stay
from hazwatch.streams.custody.settings import CustodyLimits

NS_PER_S = 1_000_000_000
NS_PER_H = 3600 * NS_PER_S
NS_PER_DAY = 24 * NS_PER_H

GENERATED, STORED, DISPATCHED, IN_TRANSIT, RECEIVED, DISPOSED = (
    "GENERATED",
    "STORED",
    "DISPATCHED",
    "IN_TRANSIT",
    "RECEIVED",
    "DISPOSED",
)
STAGES = (GENERATED, STORED, DISPATCHED, IN_TRANSIT, RECEIVED, DISPOSED)
STAGE_INDEX = {stage: i for i, stage in enumerate(STAGES)}
# Where a reader stands → the stage its read proves. A read at the generation point proves
# nothing new (the terminal's registration is GENERATED).
LOCATION_STAGE = {
    "storage_in": STORED,
    "storage_out": DISPATCHED,
    "vehicle": IN_TRANSIT,
    "receiver_gate": RECEIVED,
    "disposal": DISPOSED,
}

# What makes reads a stage entered (a pass: `classify`), for the rules about stages: a door's
# gap and minimum dwell, and the window of cross-reads (each kind's: settings.py).
PASS_THRESHOLDS = defaults_of(
    CustodyLimits, "door_gap_s", "door_min_dwell_s", "vehicle_gap_s", "cross_read_window_s"
)
# Each custody rule, declared once: the processor's alert severities, the simulator's faults
# and docs/rules.md are made from these. Thresholds are the defaults of the custody settings
# (settings.py CustodyLimits: the settings file's [custody] table) and of a site's storage
# limits (the registry's).
RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        "skipped_stage",
        "custody",
        Severity.MAJOR,
        "batch",
        "环节缺失：批次在某一环节被读到时，此前的环节没有记录（如未入库贮存即出库）",
        "a batch was read at a stage without the stage(s) before it (e.g. dispatched, never "
        "stored)",
        PASS_THRESHOLDS,
    ),
    RuleSpec(
        "backward_stage",
        "custody",
        Severity.MAJOR,
        "batch",
        "环节倒退：批次已到达后续环节，又在此前的环节被读到（如已入厂又在运输车上被读到）",
        "a batch was read at an earlier stage than one it had already reached",
        PASS_THRESHOLDS,
    ),
    RuleSpec(
        "unknown_tag",
        "custody",
        Severity.WARNING,
        "epc",
        "未登记标签：读到的电子标签不属于任何已登记的危废批次，宽限期过后仍未登记",
        "a tag read belongs to no registered batch, still none after the grace period",
        defaults_of(CustodyLimits, "unknown_tag_grace_s"),
    ),
    RuleSpec(
        "disposed_tag",
        "custody",
        Severity.MAJOR,
        "batch",
        "已处置标签再现：批次已处置，其标签又在其他环节被读到（疑似标签重复使用）",
        "a tag was read at another stage after its batch was disposed (a reused tag?)",
    ),
    RuleSpec(
        "weight_mismatch",
        "custody",
        Severity.MAJOR,
        "batch",
        "称重不符：接收单位入厂复称的净重与产生时称重之差超出允许偏差（百分比与千克数取大者）",
        "the net weight reweighed at the receiver's gate differs from the weight at generation "
        "by more than the tolerance (the larger of the percentage and the kilograms)",
        defaults_of(CustodyLimits, "weight_tolerance_pct", "weight_tolerance_kg"),
    ),
    RuleSpec(
        "storage_overdue",
        "custody",
        Severity.MAJOR,
        "batch",
        "贮存超期：批次在贮存场所的贮存时间超过该场所的贮存期限（出库时已超期，或至今仍未出库）",
        "a batch stayed in a storage site longer than the site's storage limit (it left late, "
        "or is still there)",
        {"storage_limit_days": DEFAULT_STORAGE_LIMIT_DAYS},
    ),
    RuleSpec(
        "transit_overdue",
        "custody",
        Severity.CRITICAL,
        "batch",
        "转移运输超时：出库后未在联单规定的运输时限内到达接收单位（联单未写时限时按默认时限）",
        "not received within the manifest's transit limit of dispatch (the default limit when "
        "the manifest names none)",
        defaults_of(CustodyLimits, "transit_limit_h"),
    ),
    RuleSpec(
        "wrong_receiver",
        "custody",
        Severity.CRITICAL,
        "batch",
        "接收单位不符：批次在转移联单所列接收单位以外的场所入厂",
        "received at a site other than the receiver its transfer manifest names",
    ),
    RuleSpec(
        "cloned_tag",
        "custody",
        Severity.CRITICAL,
        "batch",
        "疑似克隆标签：同一标签先后在两处固定读写器被读到，两地距离以最高车速在间隔时间内无法到达"
        "（另加站点范围的余量）",
        "the same tag was read at two fixed readers too far apart to travel between in the time "
        "between the reads at the highest speed (beyond a slack for the sites' extent)",
        defaults_of(CustodyLimits, "max_speed_kmh", "clone_slack_km"),
    ),
    RuleSpec(
        "manifest_split",
        "custody",
        Severity.MAJOR,
        "batch",
        "联单批次未同车出库：同一转移联单所列批次未在规定时间窗内与首个批次一同出库",
        "a batch of a manifest listing several was not dispatched within the window after the "
        "manifest's first batch",
        defaults_of(CustodyLimits, "manifest_window_h"),
    ),
    RuleSpec(
        "storage_over_capacity",
        "custody",
        Severity.MAJOR,
        "batch",
        "贮存超量：批次入库使该贮存场所的危废贮存量超过其贮存上限",
        "storing the batch took its storage site over the site's limit in kilograms",
        {"storage_limit_kg": DEFAULT_STORAGE_LIMIT_KG},
    ),
)
RULES = tuple(spec.id for spec in RULE_SPECS)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Registration:
    """A producer's terminal registered a batch (becomes GENERATED)."""

    event_id: str
    batch: str
    epc: str
    waste_code: str
    site: str
    device: str
    ts_ns: int
    waste_name: str | None = None
    category: str | None = None
    container_type: str | None = None
    handler: str | None = None
    producer: str | None = None
    # The device's clock (hazwatch.devices.clock_offset): ts_ns is the device's own time plus
    # clock_offset_ns (as the ingest pipeline measured it then), good to ± clock_error_ns;
    # clock_basis says how it was measured ("none": not known, the device's time as it is).
    clock_offset_ns: int = 0
    clock_error_ns: int = 0
    clock_basis: str = "none"


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """A transfer manifest (转移联单) listing batches for one receiver."""

    manifest: str
    batches: tuple[str, ...]
    receiver: str
    site: str
    ts_ns: int
    transit_limit_h: float | None = None
    transporter: str | None = None
    vehicle: str | None = None
    clock_offset_ns: int = 0  # the terminal's clock, as a Registration's
    clock_error_ns: int = 0
    clock_basis: str = "none"
    device: str = ""  # the terminal that sent it ("": stored before it was kept)


@dataclass(frozen=True, slots=True)
class Read:
    """A tag read at a reader whose location the registry knows (one inventory round's)."""

    event_id: str
    epc: str
    site: str
    device: str
    location: str
    ts_ns: int
    rssi: float | None = None  # dBm, as the reader measured it
    antenna: int | None = None
    clock_offset_ns: int = 0  # the reader's clock, as a Registration's
    clock_error_ns: int = 0
    clock_basis: str = "none"


@dataclass(frozen=True, slots=True)
class Weighing:
    event_id: str
    epc: str
    site: str
    device: str
    location: str  # generation | receiver_gate
    net_kg: float
    ts_ns: int
    clock_offset_ns: int = 0  # the scale's clock, as a Registration's
    clock_error_ns: int = 0
    clock_basis: str = "none"


# One read of a `Reads`: (EPC, the device's own time in ns, RSSI dBm or None, antenna or None).
TagRead = tuple[str, int, float | None, int | None]


@dataclass(frozen=True, slots=True)
class Reads:
    """One reader's tag reads of one ingest batch, all taken with one reading of its clock: the
    hot path's input (CustodyProcessor), so that no object is made per read.

    A read's time in custody is its device time + clock_offset_ns; its identity is (reader,
    EPC, device time), as its event id is (`read_event_id`): the same message delivered again
    gives the same reads, and the tracker's recent reads make it change nothing.
    """

    site: str
    device: str
    location: str
    reads: Sequence[TagRead]
    clock_offset_ns: int = 0  # the reader's clock, as a Registration's
    clock_error_ns: int = 0
    clock_basis: str = "none"

    @property
    def ts_ns(self) -> int:
        """The newest read's corrected time."""
        return max((r[1] for r in self.reads), default=0) + self.clock_offset_ns


def read_event_id(site: str, device: str, device_ts_ns: int, epc: str) -> str:
    """The event id of a read: its message's topic, the device's time and the EPC hashed, as
    hazwatch.streams.custody.processor.event_id makes it (a redelivery gets the same id)."""
    key = f"{ROOT}/{site}/rfid/{device}/read|{device_ts_ns}|{epc}"
    return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """A stage entered: the registration (GENERATED), or the pass that proves the stage.

    A pass's event has its time (`ts_ns`, first seen), its last read (`last_ns`), its reads,
    its peak RSSI and the antenna with the peak; a registration's has none of those.
    """

    event_id: str
    batch: str
    epc: str
    stage: str
    ts_ns: int
    site: str
    device: str
    net_kg: float | None = None
    manifest: str | None = None
    last_ns: int | None = None
    reads: int = 0
    peak_rssi: float | None = None
    antenna: int | None = None
    # the clock of its device when it was made (the pass's first read): ts_ns is corrected by
    # clock_offset_ns (the device's raw time is ts_ns − clock_offset_ns), ± clock_error_ns
    clock_offset_ns: int = 0
    clock_error_ns: int = 0
    clock_basis: str = "none"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A pass that is no custody event, kept to say what the reader saw and why it is none.

    `why`: `repeat` (at the stage and site the batch is already in), `short` (under the
    minimum dwell of its reader's kind), `cross_read` (a stronger pass of the same moment at
    an overlapping reader placed the tag there).
    """

    pass_id: str
    batch: str
    epc: str
    stage: str  # the stage its reader's location would prove
    ts_ns: int  # first seen
    site: str
    device: str
    last_ns: int
    reads: int
    peak_rssi: float | None
    antenna: int | None
    why: str
    note: str
    clock_error_ns: int = 0  # its time is good to ± this (CustodyEvent.clock_error_ns)


# A finding's number or name as its rule keeps it: JSON-able (custody store, alert details)
Param = str | int | float | list[str]


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    subject: str  # the batch, or the EPC for unknown_tag
    event_id: str
    at_ns: int
    site: str
    message: str  # the rule's English sentence (logs, the alert's message, `hazwatch trace`)
    # what the sentence says, as values: sites, devices, stages, numbers unrounded, and
    # `variant` for a rule of several sentences (streams/custody/text.py says them in Chinese
    # and English from these, not from the sentence); kept beside it in the custody store and
    # the alert's details (`params`)
    params: Mapping[str, Param] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Judgement:
    """A batch's trace and verdict at one moment."""

    batch: str
    epc: str
    waste_code: str
    stage: str
    since_ns: int
    verdict: str  # complete | open | broken
    events: tuple[CustodyEvent, ...]
    violations: tuple[Violation, ...]
    manifest: str | None
    site: str  # where it is now (site of its last event)
    due_ns: int | None = None  # when a time-based rule would next fire unless something happens
    diagnostics: tuple[Diagnostic, ...] = ()  # the batch's passes that are no custody event


@dataclass(slots=True)
class Changes:
    """What one call changed: to store, to write as points and to alert on."""

    # new or updated events, and the judgements made again (not those of batches whose
    # passes only went on: `grown`)
    events: dict[str, CustodyEvent] = field(default_factory=dict)
    batches: dict[str, Judgement] = field(default_factory=dict)
    raised: list[Violation] = field(default_factory=list)
    cleared: list[Violation] = field(default_factory=list)
    # event ids a batch no longer has (a late read merged two passes, moved a stage entry):
    # the store deletes their rows before it writes `events`
    dropped: set[str] = field(default_factory=set)
    notes: dict[str, Diagnostic] = field(default_factory=dict)  # new or updated diagnostics
    dropped_notes: set[str] = field(default_factory=set)
    # batches in `batches` whose stored verdict row (stage, verdict, since, site, manifest,
    # violations) did not change: only their events or diagnostics did (a pass going on)
    events_only: set[str] = field(default_factory=set)
    # the reads of `Reads` taken (not seen before), for the store to keep (custody_read_log)
    reads: list[Reads] = field(default_factory=list)
    # batches (not in `batches`) whose only change is a pass going on: the ids of their
    # events and diagnostics whose last read, reads and peak grew (Tracker._grow)
    grown: dict[str, set[str]] = field(default_factory=dict)
    # for the store: readers whose horizon moved (Tracker.take_readers)
    readers: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # a device's clock measured since (Tracker.apply's retimes) moved these inputs: the store
    # rewrites their rows; `retimed`: anything moved (its passes too, written at a checkpoint)
    moved: list[Registration | Weighing | ManifestInfo] = field(default_factory=list)
    retimed: bool = False

    def merge(self, other: Changes) -> None:
        rows = (self.batches.keys() - self.events_only) | (other.batches.keys() - other.events_only)
        self.events_only = (self.events_only | other.events_only) - rows
        for batch, ids in other.grown.items():
            self.grown.setdefault(batch, set()).update(ids)
        for batch in self.batches.keys() | other.batches.keys():
            self.grown.pop(batch, None)
        self.events.update(other.events)
        self.batches.update(other.batches)
        self.raised.extend(other.raised)
        self.cleared.extend(other.cleared)
        self.dropped = (self.dropped - other.events.keys()) | other.dropped
        self.notes.update(other.notes)
        self.dropped_notes = (self.dropped_notes - other.notes.keys()) | other.dropped_notes
        self.reads.extend(other.reads)
        self.moved.extend(other.moved)
        self.retimed = self.retimed or other.retimed


@dataclass(frozen=True, slots=True)
class SiteLimits:
    storage_limit_kg: float
    storage_limit_days: float


@dataclass(frozen=True, slots=True)
class Geography:
    """What the rules need: the custody settings' tolerances, and of the registry its sites'
    limits and distances (pure lookups)."""

    limits: CustodyLimits = field(default_factory=CustodyLimits)
    sites: Mapping[str, SiteLimits] = field(default_factory=dict)
    distance_km: Callable[[str, str], float | None] = lambda a, b: None
    # (site, reader, reader) of readers whose fields overlap, both ways round (cross-reads)
    overlaps: frozenset[tuple[str, str, str]] = frozenset()

    def site(self, site: str) -> SiteLimits:
        found = self.sites.get(site)
        return found if found is not None else SiteLimits(3000.0, 365.0)


# ---------------------------------------------------------------- reads become passes
#
# A reader reports a tag in every inventory round it is in the field: 25 times a second
# for 8 s as a drum is carried through a door, all day for a drum parked by one. A pass is
# one stay of one EPC in one reader's field: its reads with no gap longer than the gap of
# the reader's kind (settings.py). It is single-linkage clustering of the read times, so a
# pure function of the set of reads (`passes`): any arrival order gives the same passes, a
# late read merges into its pass or opens one by the same rule, a redelivered read (its
# event id seen, or for `Reads` its reader, EPC and device time among the recent reads)
# changes nothing. `PassSet` keeps a reader's passes merged as reads (or pieces of reads, or
# stored passes) arrive and always equals `passes` of the reads it was given.


class Pass(NamedTuple):
    """One EPC's reads at one reader with no gap longer than the reader's kind allows.

    A NamedTuple, not a frozen dataclass: one is made for every read on the hot path.
    """

    site: str
    device: str
    location: str
    first_ns: int
    last_ns: int
    reads: int
    peak_rssi: float | None  # the strongest read's RSSI (None: the reader sent none)
    antenna: int | None  # that read's antenna
    first_id: str  # the earliest read's event id (of equal times, the smallest id)
    peak_ns: int  # the strongest read's time and id: ties of RSSI go to the earlier read
    peak_id: str
    # the first read's clock (Read.clock_*): the pass's time is that read's
    clock_offset_ns: int = 0
    clock_error_ns: int = 0
    clock_basis: str = "none"

    @property
    def stage(self) -> str:
        return LOCATION_STAGE[self.location]


_NO_RSSI = float("-inf")


def pass_of(read: Read) -> Pass:
    """A read as a pass of one read."""
    return Pass(
        read.site,
        read.device,
        read.location,
        read.ts_ns,
        read.ts_ns,
        1,
        read.rssi,
        read.antenna,
        read.event_id,
        read.ts_ns,
        read.event_id,
        read.clock_offset_ns,
        read.clock_error_ns,
        read.clock_basis,
    )


def _peak_key(p: Pass) -> tuple[float, int, str, int]:
    """Smallest first: the strongest RSSI, then the earliest read, then the smallest id (a
    pass made from `Reads` keeps none: ""), then the smallest antenna, so that two reads
    equal in all of these give the same peak whichever came first."""
    rssi = p.peak_rssi if p.peak_rssi is not None else _NO_RSSI
    return (-rssi, p.peak_ns, p.peak_id, -1 if p.antenna is None else p.antenna)


@dataclass(frozen=True, slots=True)
class SeenPass:
    """A pass as the store keeps it (custody_pass): its reads merged, replayed at start with
    the reads stored after it (merging passes gives what merging their reads gives)."""

    epc: str
    seen: Pass

    @property
    def ts_ns(self) -> int:
        return self.seen.last_ns


Input = Registration | ManifestInfo | Read | Weighing | Reads | SeenPass


def merged(a: Pass, b: Pass) -> Pass:
    """The pass of the reads of both (same reader): commutative and associative."""
    first = a if (a.first_ns, a.first_id) <= (b.first_ns, b.first_id) else b
    peak = a if _peak_key(a) <= _peak_key(b) else b
    return Pass(
        a.site,
        a.device,
        a.location,
        first.first_ns,
        max(a.last_ns, b.last_ns),
        a.reads + b.reads,
        peak.peak_rssi,
        peak.antenna,
        first.first_id,
        peak.peak_ns,
        peak.peak_id,
        first.clock_offset_ns,
        first.clock_error_ns,
        first.clock_basis,
    )


def pass_order(p: Pass) -> tuple[int, int, str, str, str]:
    return (p.first_ns, STAGE_INDEX[p.stage], p.site, p.device, p.first_id)


def passes(reads: Iterable[Read], limits: CustodyLimits) -> list[Pass]:
    """The passes of a set of reads (of one EPC), in time order: the definition."""
    by_reader: dict[tuple[str, str, str], list[Read]] = {}
    for read in reads:
        if read.location in LOCATION_STAGE:
            by_reader.setdefault((read.site, read.device, read.location), []).append(read)
    found: list[Pass] = []
    for (_, _, location), group in by_reader.items():
        gap_ns = limits.pass_gap_ns(location)
        group.sort(key=lambda r: (r.ts_ns, r.event_id))
        current = pass_of(group[0])
        for read in group[1:]:
            if read.ts_ns - current.last_ns <= gap_ns:
                current = merged(current, pass_of(read))
            else:
                found.append(current)
                current = pass_of(read)
        found.append(current)
    found.sort(key=pass_order)
    return found


class PassSet:
    """The passes of one EPC at one reader, kept merged as reads (or passes) arrive.

    `track` keeps, for a tag of no batch yet, when each pass first arrived and whether it
    was alerted (unknown_tag); a batch's passes need neither.
    """

    __slots__ = ("alerted", "arrived", "changed", "firsts", "gap_ns", "gone", "items", "legacy")

    def __init__(self, gap_ns: int, *, track: bool = False) -> None:
        self.gap_ns = gap_ns
        self.items: list[Pass] = []
        self.firsts: list[int] = []
        self.arrived: list[int] | None = [] if track else None
        self.alerted: list[bool] | None = [] if track else None
        # for the store (Tracker.take_passes): the first reads of passes made or changed, and
        # of passes merged away, since it last took them
        self.changed: set[int] = set()
        self.gone: set[int] = set()
        # it holds reads given one by one (`Read`: a store's custody_input rows of before v5,
        # or a caller's): once its passes are stored whole, those rows must go
        self.legacy = False

    def add(self, new: Pass, arrived_ns: int = 0, alerted: bool = False) -> int:
        """Merge `new` with every pass within the gap of it; returns the merged pass's index."""
        items, firsts, gap = self.items, self.firsts, self.gap_ns
        hi = bisect_right(firsts, new.last_ns + gap)
        if hi and items[hi - 1].last_ns < new.first_ns - gap:
            lo = hi  # the common case: a read after every pass, or far from them
        else:
            lo = bisect_left(firsts, new.first_ns - gap)
            if lo and items[lo - 1].last_ns >= new.first_ns - gap:
                lo -= 1
        result = new
        for other in items[lo:hi]:
            result = merged(result, other)
        if hi > lo:
            self.gone.update(firsts[lo:hi])
        items[lo:hi] = [result]
        firsts[lo:hi] = [result.first_ns]
        self.changed.add(result.first_ns)
        if self.arrived is not None and self.alerted is not None:
            self.arrived[lo:hi] = [min([arrived_ns, *self.arrived[lo:hi]])]
            self.alerted[lo:hi] = [alerted or any(self.alerted[lo:hi])]
        return lo

    def add_read(self, read: Read, arrived_ns: int = 0) -> int:
        """Add one read; the index of the pass it only extended (one whose first read stays
        the first: its place among the others cannot have changed), or -1 otherwise."""
        items, ts, gap = self.items, read.ts_ns, self.gap_ns
        i = bisect_right(self.firsts, ts) - 1
        if i < 0:
            self.add(pass_of(read), arrived_ns)
            return -1
        p = items[i]
        if (
            ts - p.last_ns > gap  # a new pass, after this one
            or (i + 1 < len(items) and items[i + 1].first_ns - ts <= gap)  # joins the next
            or (ts == p.first_ns and read.event_id < p.first_id)  # a new first read
        ):
            self.add(pass_of(read), arrived_ns)
            return -1
        # the hot path: one more read of a pass going on (`merged` of it and the read)
        rssi = read.rssi if read.rssi is not None else _NO_RSSI
        peak = p.peak_rssi if p.peak_rssi is not None else _NO_RSSI
        if rssi > peak or (rssi == peak and (ts, read.event_id) < (p.peak_ns, p.peak_id)):
            p = p._replace(
                last_ns=max(p.last_ns, ts),
                reads=p.reads + 1,
                peak_rssi=read.rssi,
                antenna=read.antenna,
                peak_ns=ts,
                peak_id=read.event_id,
            )
        else:
            p = p._replace(last_ns=max(p.last_ns, ts), reads=p.reads + 1)
        items[i] = p
        self.changed.add(p.first_ns)
        if self.arrived is not None and arrived_ns < self.arrived[i]:
            self.arrived[i] = arrived_ns
        return i

    def extend(
        self,
        first_ns: int,
        last_ns: int,
        reads: int,
        rssi: float | None,
        antenna: int | None,
        peak_ns: int,
    ) -> int:
        """Merge a piece (reads of one ingest batch with no gap between them; its ids left
        out) into the pass it only goes on with: one that starts before it, within the gap,
        and does not reach the next. Its index, or -1 when the piece is anything else (a new
        pass, a new first read, a join): then `add` it as a whole Pass (`merged` of the two,
        as this is).
        """
        firsts, items, gap = self.firsts, self.items, self.gap_ns
        i = bisect_right(firsts, first_ns) - 1
        if i < 0:
            return -1
        p = items[i]
        if first_ns == p.first_ns or first_ns - p.last_ns > gap:
            return -1
        if i + 1 < len(items) and items[i + 1].first_ns - last_ns <= gap:
            return -1
        strength = rssi if rssi is not None else _NO_RSSI
        peak = p.peak_rssi if p.peak_rssi is not None else _NO_RSSI
        if strength > peak or (
            strength == peak
            and (peak_ns, "", -1 if antenna is None else antenna)
            < (p.peak_ns, p.peak_id, -1 if p.antenna is None else p.antenna)
        ):
            p = Pass(
                p.site, p.device, p.location, p.first_ns, max(p.last_ns, last_ns),
                p.reads + reads, rssi, antenna, p.first_id, peak_ns, "", p.clock_offset_ns,
                p.clock_error_ns, p.clock_basis,
            )  # fmt: skip
        else:
            p = Pass(
                p.site, p.device, p.location, p.first_ns, max(p.last_ns, last_ns),
                p.reads + reads, p.peak_rssi, p.antenna, p.first_id, p.peak_ns, p.peak_id,
                p.clock_offset_ns, p.clock_error_ns, p.clock_basis,
            )  # fmt: skip
        items[i] = p
        self.changed.add(p.first_ns)
        return i

    def taken(self) -> tuple[list[Pass], list[int]]:
        """The passes made or changed since last taken, and the first reads of passes merged
        away since (rows for the store to upsert and delete); forgets both."""
        firsts, items = self.firsts, self.items
        upserts: list[Pass] = []
        for first in sorted(self.changed):
            i = bisect_left(firsts, first)
            if i < len(firsts) and firsts[i] == first:
                upserts.append(items[i])
        deletes = []
        for first in sorted(self.gone):
            i = bisect_left(firsts, first)
            if i == len(firsts) or firsts[i] != first:
                deletes.append(first)
        self.changed = set()
        self.gone = set()
        return upserts, deletes

    def index_of(self, ts_ns: int) -> int | None:
        """The index of the pass that holds a read at `ts_ns`, if one does."""
        i = bisect_right(self.firsts, ts_ns) - 1
        return i if i >= 0 and self.items[i].last_ns >= ts_ns else None


def _stage_event_id(batch: str, stage: str, nth: int) -> str:
    """A stage entry's id: the batch's nth entry of the stage. Stable while a late read
    merges into or extends the pass that made it."""
    return hashlib.blake2b(f"{batch}|{stage}|{nth}".encode(), digest_size=10).hexdigest()


def _note_id(batch: str, p: Pass) -> str:
    key = f"{batch}|{p.site}|{p.device}|{p.first_id}"
    return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def _stronger(a: Pass, b: Pass) -> bool:
    """Whether `a` places the tag rather than `b`: peak RSSI, then reads, then reader id."""
    ra = a.peak_rssi if a.peak_rssi is not None else _NO_RSSI
    rb = b.peak_rssi if b.peak_rssi is not None else _NO_RSSI
    if (ra, a.reads) != (rb, b.reads):
        return (ra, a.reads) > (rb, b.reads)
    return (a.device, a.first_id) < (b.device, b.first_id)


Horizon = Callable[[str, str], int]  # (site, reader) → the time before which it sends no more
_NEVER = 2**63 - 1


@lru_cache(maxsize=16)
def _partners(overlaps: frozenset[tuple[str, str, str]]) -> dict[tuple[str, str], tuple[str, ...]]:
    """(site, reader) → the readers declared overlapping it (Geography.overlaps)."""
    found: dict[tuple[str, str], list[str]] = {}
    for site, a, b in sorted(overlaps):
        found.setdefault((site, a), []).append(b)
    return {k: tuple(v) for k, v in found.items()}


def _short_note(p: Pass, minimum: int) -> str:
    return (
        f"{(p.last_ns - p.first_ns) / NS_PER_S:.1f} s in the field, under the "
        f"{minimum / NS_PER_S:g} s minimum dwell at a {p.location} reader"
    )


def classify(
    info: Registration,
    found: Sequence[Pass],
    geo: Geography,
    horizon: Horizon | None = None,
) -> list[tuple[Pass, str, str]]:
    """Each pass (in time order) with what it is: `custody` (a stage entered), or why not
    (`short`, `cross_read`, `repeat`, `pending`) and a note saying so. Pure: the same passes
    and horizons, the same answer.

    In this order: a pass under its kind's minimum dwell is `short`; of two passes of the
    same moment (within cross_read_window_s) at readers declared overlapping, the weaker is
    `cross_read`; of the rest, in time order, one at the stage and site the batch is already
    in (a drum parked by the door, a stocktake) is a `repeat`, any other enters its stage (a
    return, out and in again, enters STORED again).

    Which of two overlapping passes is stronger can change while both go on, so a pass at a
    reader with overlapping readers is placed only once it is *settled* (`horizon`: the time
    before which a reader will report nothing more, Tracker.horizon): its reader is past its
    last read by the gap (it ended), and each overlapping reader past it by the window (no
    new pass there can contest it). Until then it is `pending`, and so are every pass it
    contests and every later pass of the batch: held, neither custody nor a diagnostic, so
    that a stage entry never goes to one reader and then moves to the other. Without
    `horizon`, every pass is settled.
    """
    return _classified(info, found, geo, horizon)[0]


def _classified(
    info: Registration, found: Sequence[Pass], geo: Geography, horizon: Horizon | None
) -> tuple[list[tuple[Pass, str, str]], list[int], list[int]]:
    """`classify`, with for each pass how far its last read may grow leaving every role (and
    note) as it is, and the indices of the passes not settled yet."""
    limits = geo.limits
    count = len(found)
    roles: dict[int, tuple[str, str]] = {}
    grow = [_NEVER] * count
    for i, p in enumerate(found):
        minimum = limits.min_dwell_ns(p.location)
        if p.last_ns - p.first_ns < minimum:
            roles[i] = ("short", _short_note(p, minimum))
            grow[i] = p.first_ns + minimum - 1
    pending_from = count
    unsettled: list[int] = []
    if geo.overlaps:
        window = int(limits.cross_read_window_s * NS_PER_S)
        partners = _partners(geo.overlaps)
        if horizon is not None:
            for i, p in enumerate(found):
                others = partners.get((p.site, p.device))
                if others is None:
                    continue
                # settled while its last read is at most `bound`
                bound = horizon(p.site, p.device) - limits.pass_gap_ns(p.location) - 1
                for other in others:
                    bound = min(bound, horizon(p.site, other) - window - 1)
                if p.last_ns > bound:
                    unsettled.append(i)
                    pending_from = min(pending_from, i)
                else:
                    grow[i] = min(grow[i], bound)
        waiting = set(unsettled)
        candidates = [i for i in range(count) if i not in roles]  # in first_ns order
        # the first reads of the candidates at each reader, to bound a pass's growth by the
        # next pass at an overlapping reader it would come to contest
        firsts_at: dict[tuple[str, str], list[int]] = {}
        for i in candidates:
            firsts_at.setdefault((found[i].site, found[i].device), []).append(found[i].first_ns)
        beaten: dict[int, int] = {}
        for n, i in enumerate(candidates):
            a = found[i]
            reach = a.last_ns + window
            for other in partners.get((a.site, a.device), ()):
                later = firsts_at.get((a.site, other), [])
                k = bisect_right(later, reach)
                if k < len(later):
                    grow[i] = min(grow[i], later[k] - window - 1)
            for j in candidates[n + 1 :]:
                b = found[j]
                if b.first_ns > reach:
                    break
                if a.site != b.site or (a.site, a.device, b.device) not in geo.overlaps:
                    continue
                # contested: any growth of either may change which is stronger
                grow[i] = min(grow[i], a.last_ns)
                grow[j] = min(grow[j], b.last_ns)
                if i in waiting or j in waiting:
                    pending_from = min(pending_from, i)
                loser, winner = (j, i) if _stronger(a, b) else (i, j)
                if loser not in beaten or _stronger(found[winner], found[beaten[loser]]):
                    beaten[loser] = winner
        for loser, winner in beaten.items():
            w = found[winner]
            rssi = "no RSSI" if w.peak_rssi is None else f"{w.peak_rssi:g} dBm"
            roles[loser] = (
                "cross_read",
                f"cross-read: {w.site}/{w.device} saw it at the same time, stronger "
                f"({rssi}, {w.reads} reads)",
            )
    at = (GENERATED, info.site)
    out: list[tuple[Pass, str, str]] = []
    for i, p in enumerate(found):
        if i >= pending_from:
            out.append((p, "pending", "not settled: the reader or an overlapping one goes on"))
        elif i in roles:
            out.append((p, *roles[i]))
        elif (p.stage, p.site) == at:
            out.append((p, "repeat", f"already {p.stage} at {p.site}"))
        else:
            at = (p.stage, p.site)
            out.append((p, "custody", ""))
    return out, grow, unsettled


# ---------------------------------------------------------------- per-batch state


PassKey = tuple[str, str, str, int]  # (site, reader, location, first read's time)


@dataclass(slots=True)
class _Batch:
    info: Registration
    # (site, reader, location) → the batch's passes there
    passes: dict[tuple[str, str, str], PassSet] = field(default_factory=dict)
    weighings: dict[str, Weighing] = field(default_factory=dict)
    # what the last derivation (_events) made of each pass, for the hot path (Tracker._grow):
    # (site, reader, location, first read's time) → (its role, "e" and the index of its
    # event in the judgement or "d" and its diagnostic's, how far its last read may grow
    # leaving every role as it is)
    roles: dict[PassKey, tuple[str, str, int, int]] | None = None
    places: int = 0  # fixed places it was seen at (cloned_tag reads a pass's last read then)
    wait: dict[PassKey, int] = field(default_factory=dict)  # unsettled passes → last read


def _first_weight(batch: _Batch, location: str) -> float | None:
    found = [w for w in batch.weighings.values() if w.location == location]
    if not found:
        return None
    return min(found, key=lambda w: (w.ts_ns, w.event_id)).net_kg


def _events(
    batch: _Batch, manifest: str | None, geo: Geography, horizon: Horizon | None = None
) -> tuple[list[CustodyEvent], tuple[Diagnostic, ...]]:
    """The batch's custody events (its registration, and a pass per stage entered) and the
    diagnostics of its other passes: a pure function of its inputs (and of the readers'
    horizons: a pass not settled is neither)."""
    info = batch.info
    events = [
        CustodyEvent(
            info.event_id,
            info.batch,
            info.epc,
            GENERATED,
            info.ts_ns,
            info.site,
            info.device,
            _first_weight(batch, "generation"),
            clock_offset_ns=info.clock_offset_ns,
            clock_error_ns=info.clock_error_ns,
            clock_basis=info.clock_basis,
        )
    ]
    found = [p for group in batch.passes.values() for p in group.items]
    found.sort(key=pass_order)
    received_kg = _first_weight(batch, "receiver_gate")
    entries: dict[str, int] = {}
    notes: list[Diagnostic] = []
    classified, grow, unsettled = _classified(info, found, geo, horizon)
    made: list[tuple[PassKey, str, str, int | str, int]] = []
    places = {info.site}
    for (p, role, note), limit in zip(classified, grow, strict=True):
        stage = p.stage
        key = (p.site, p.device, p.location, p.first_ns)
        if role == "pending":
            made.append((key, role, "", -1, limit))
            continue
        if role != "cross_read" and stage != IN_TRANSIT:
            places.add(p.site)
        if role != "custody":
            made.append((key, role, "d", len(notes), limit))
            notes.append(
                Diagnostic(
                    _note_id(info.batch, p), info.batch, info.epc, stage, p.first_ns, p.site,
                    p.device, p.last_ns, p.reads, p.peak_rssi, p.antenna, role, note,
                    p.clock_error_ns,
                )
            )  # fmt: skip
            continue
        nth = entries.get(stage, 0)
        entries[stage] = nth + 1
        event_id = _stage_event_id(info.batch, stage, nth)
        made.append((key, role, "e", event_id, limit))
        events.append(
            CustodyEvent(
                event_id,
                info.batch,
                info.epc,
                stage,
                p.first_ns,
                p.site,
                p.device,
                received_kg if stage == RECEIVED and nth == 0 else None,
                manifest if stage == DISPATCHED else None,
                p.last_ns,
                p.reads,
                p.peak_rssi,
                p.antenna,
                clock_offset_ns=p.clock_offset_ns,
                clock_error_ns=p.clock_error_ns,
                clock_basis=p.clock_basis,
            )
        )
    events.sort(key=lambda e: (e.ts_ns, STAGE_INDEX[e.stage], e.event_id))
    _simultaneous_in_stage_order(events)
    at = {e.event_id: k for k, e in enumerate(events)}
    batch.roles = {
        key: (role, kind, at[ref] if isinstance(ref, str) else ref, limit)
        for key, role, kind, ref, limit in made
    }
    batch.places = len(places)
    batch.wait = {
        (p.site, p.device, p.location, p.first_ns): p.last_ns for p in (found[i] for i in unsettled)
    }
    return events, tuple(notes)


def _simultaneous_in_stage_order(events: list[CustodyEvent]) -> None:
    """Events of different devices closer than their clocks' error are simultaneous: among
    them the stages keep their order (an insertion pass over the time order, in place).

    A time is good to ± its clock_error_ns: the tolerance while its device's offset is not
    known yet, the measurement's error once it is (devices/clock_offset.py). So neither a
    clock hazwatch could not correct yet nor the error of one it did makes a batch look read
    at a stage before the one before it (skipped_stage, backward_stage).
    """
    for i in range(1, len(events)):
        event = events[i]
        rank = STAGE_INDEX[event.stage]
        j = i
        while j > 0:
            before = events[j - 1]
            if STAGE_INDEX[before.stage] <= rank or (before.site, before.device) == (
                event.site,
                event.device,
            ):
                break
            if event.ts_ns - before.ts_ns > max(before.clock_error_ns, event.clock_error_ns):
                break
            events[j] = before
            j -= 1
        events[j] = event


def storage_interval(events: Iterable[CustodyEvent]) -> tuple[str, int, int | None, str] | None:
    """(site, in_ns, out_ns or None, stored event id) of a batch's first stay in storage."""
    stay: tuple[str, int, str] | None = None
    for event in events:
        if stay is None and event.stage == STORED:
            stay = (event.site, event.ts_ns, event.event_id)
        elif stay is not None and STAGE_INDEX[event.stage] > STAGE_INDEX[STORED]:
            return stay[0], stay[1], event.ts_ns, stay[2]
    return (stay[0], stay[1], None, stay[2]) if stay else None


class Case(NamedTuple):
    """What a batch is judged on: its registration, its events sorted by their own time, its
    manifest and when the manifest's batches left, its storage-capacity hit (a finding across
    batches, made by the tracker), the registry's limits and the time of judging.

    A NamedTuple, not a frozen dataclass: one is made each time a batch is judged, and a
    frozen dataclass sets each of its seven fields through object.__setattr__.
    """

    info: Registration
    events: list[CustodyEvent]
    manifest: ManifestInfo | None
    manifest_dispatches: Mapping[str, int]
    capacity_hit: Violation | None
    geo: Geography
    now_ns: int
    # found once for the rules that ask: the batch's first dispatch and its first receipt
    dispatch: CustodyEvent | None
    receipt: CustodyEvent | None
    # the batch's passes that are no custody event (the rules that ask where the tag was
    # seen, not which stage it entered, count them too)
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass(slots=True)
class Findings:
    """What the rules found of one batch: violations, and when a time-based rule would next
    fire unless something happens first."""

    subject: str
    violations: list[Violation] = field(default_factory=list)
    deadlines: list[int] = field(default_factory=list)

    def violate(
        self,
        rule: str,
        event: CustodyEvent | Diagnostic,
        message: str,
        params: Mapping[str, Param],
        at_ns: int | None = None,
    ) -> None:
        at = event.ts_ns if at_ns is None else at_ns
        event_id = event.event_id if isinstance(event, CustodyEvent) else event.pass_id
        self.violations.append(
            Violation(rule, self.subject, event_id, at, event.site, message, params)
        )


Check = Callable[[Case, Findings], None]
# Rule id → its check, in the order they are declared below; unknown_tag has none here (its
# subject is a read no batch owns: Tracker._orphans_due finds it).
CHECKS: dict[str, Check] = {}


def _checks(rule: str) -> Callable[[Check], Check]:
    """Register the decorated function as the check of a rule declared in RULE_SPECS."""
    if rule not in RULES:
        raise ValueError(f"{rule} is not declared in RULE_SPECS")

    def register(check: Check) -> Check:
        CHECKS[rule] = check
        return check

    return register


@_checks("skipped_stage")
def skipped_stage(case: Case, found: Findings) -> None:
    top = -1
    for event in case.events:
        index = STAGE_INDEX[event.stage]
        if index > top + 1:
            skipped = ", ".join(STAGES[top + 1 : index])
            found.violate(
                "skipped_stage",
                event,
                f"{event.stage} at {event.site}/{event.device} without {skipped}",
                {
                    "stage": event.stage,
                    "site": event.site,
                    "device": event.device,
                    "stages": list(STAGES[top + 1 : index]),
                },
            )
        if index > top:
            top = index


@_checks("backward_stage")
def backward_stage(case: Case, found: Findings) -> None:
    top = -1
    for event in case.events:
        if event.stage == DISPOSED:
            return  # what is read after disposal is disposed_tag's
        index = STAGE_INDEX[event.stage]
        if index < top:
            found.violate(
                "backward_stage",
                event,
                f"{event.stage} at {event.site}/{event.device} after the batch "
                f"reached {STAGES[top]}",
                {
                    "stage": event.stage,
                    "site": event.site,
                    "device": event.device,
                    "stage_top": STAGES[top],
                },
            )
        if index > top:
            top = index


@_checks("disposed_tag")
def disposed_tag(case: Case, found: Findings) -> None:
    disposed: CustodyEvent | None = None
    for event in case.events:
        if disposed is None:
            if event.stage == DISPOSED:
                disposed = event
        elif event.stage != DISPOSED:
            found.violate(
                "disposed_tag",
                event,
                f"tag {event.epc} read at {event.site}/{event.device} ({event.stage}) after "
                f"its batch was disposed at {disposed.site}",
                {
                    "epc": event.epc,
                    "site": event.site,
                    "device": event.device,
                    "stage": event.stage,
                    "disposed": disposed.site,
                },
            )


@_checks("cloned_tag")
def cloned_tag(case: Case, found: Findings) -> None:
    # every pass of the tag counts, custody or not (a repeat, a short glimpse): each says
    # where the tag was; a cross-read is at the same site as the pass that beat it
    max_speed_kmh = case.geo.limits.max_speed_kmh
    slack_km = case.geo.limits.clone_slack_km
    seen: list[CustodyEvent | Diagnostic] = [*case.events]
    seen += [d for d in case.diagnostics if d.why != "cross_read"]
    seen.sort(key=lambda e: (e.ts_ns, STAGE_INDEX[e.stage]))
    previous: CustodyEvent | Diagnostic | None = None  # the last pass at a fixed place
    for event in seen:
        if event.stage == IN_TRANSIT:
            continue  # a vehicle reader has no fixed place
        if previous is not None and previous.site != event.site:
            distance = case.geo.distance_km(previous.site, event.site)
            # from when it was last seen there to when it was first seen here, as long as
            # the two clocks' error allows (an offset not known yet, or its measurement's)
            left_ns = previous.last_ns if previous.last_ns is not None else previous.ts_ns
            error_ns = max(previous.clock_error_ns, event.clock_error_ns)
            hours = (event.ts_ns - left_ns + error_ns) / NS_PER_H
            if distance is not None and distance > max_speed_kmh * hours + slack_km:
                found.violate(
                    "cloned_tag",
                    event,
                    f"tag {event.epc} read at {previous.site} and {event.site}, "
                    f"{distance:.0f} km apart, {hours * 60:.0f} min between "
                    f"(faster than {max_speed_kmh:g} km/h)",
                    {
                        "epc": event.epc,
                        "site_a": previous.site,
                        "site_b": event.site,
                        "km": distance,
                        "minutes": hours * 60,
                        "speed_kmh": max_speed_kmh,
                    },
                )
        previous = event


@_checks("weight_mismatch")
def weight_mismatch(case: Case, found: Findings) -> None:
    events, limits = case.events, case.geo.limits
    generated_kg = events[0].net_kg if events and events[0].stage == GENERATED else None
    for event in events:
        if event.stage == GENERATED and event.event_id == case.info.event_id:
            generated_kg = event.net_kg
    receipt = case.receipt
    if generated_kg is None or receipt is None or receipt.net_kg is None:
        return
    tolerance = max(generated_kg * limits.weight_tolerance_pct / 100, limits.weight_tolerance_kg)
    if abs(receipt.net_kg - generated_kg) > tolerance:
        found.violate(
            "weight_mismatch",
            receipt,
            f"received {receipt.net_kg:g} kg, generated {generated_kg:g} kg "
            f"(tolerance {tolerance:.1f} kg)",
            {
                "received_kg": receipt.net_kg,
                "generated_kg": generated_kg,
                "tolerance_kg": tolerance,
            },
        )


@_checks("storage_overdue")
def storage_overdue(case: Case, found: Findings) -> None:
    events = case.events
    stay = storage_interval(events)
    if stay is None:
        return
    site, in_ns, out_ns, stored_id = stay
    limit_days = case.geo.site(site).storage_limit_days
    limit_ns = int(limit_days * NS_PER_DAY)
    if out_ns is not None and out_ns - in_ns > limit_ns:
        leave = next(e for e in events if e.ts_ns == out_ns and STAGE_INDEX[e.stage] > 1)
        found.violate(
            "storage_overdue",
            leave,
            f"left storage at {site} after {(out_ns - in_ns) / NS_PER_DAY:.0f} days "
            f"(limit {limit_days:g})",
            {
                "variant": "left",
                "site": site,
                "days": (out_ns - in_ns) / NS_PER_DAY,
                "limit_days": limit_days,
            },
        )
    elif out_ns is None and case.now_ns - in_ns <= limit_ns:
        found.deadlines.append(in_ns + limit_ns + 1)
    elif out_ns is None:
        stored = next(e for e in events if e.event_id == stored_id)
        found.violate(
            "storage_overdue",
            stored,
            f"still in storage at {site} after its limit of {limit_days:g} days",
            {"variant": "still", "site": site, "limit_days": limit_days},
            in_ns + limit_ns,
        )


@_checks("transit_overdue")
def transit_overdue(case: Case, found: Findings) -> None:
    events, manifest = case.events, case.manifest
    dispatch = case.dispatch
    if dispatch is None:
        return
    limit_h = case.geo.limits.transit_limit_h
    if manifest is not None and manifest.transit_limit_h is not None:
        limit_h = manifest.transit_limit_h
    limit_ns = int(limit_h * NS_PER_H)
    arrival = next((e for e in events if STAGE_INDEX[e.stage] >= STAGE_INDEX[RECEIVED]), None)
    if arrival is not None and arrival.ts_ns - dispatch.ts_ns > limit_ns:
        found.violate(
            "transit_overdue",
            arrival,
            f"arrived {(arrival.ts_ns - dispatch.ts_ns) / NS_PER_H:.1f} h after dispatch "
            f"(limit {limit_h:g} h)",
            {
                "variant": "arrived",
                "hours": (arrival.ts_ns - dispatch.ts_ns) / NS_PER_H,
                "limit_h": limit_h,
            },
        )
    elif arrival is None and case.now_ns - dispatch.ts_ns <= limit_ns:
        found.deadlines.append(dispatch.ts_ns + limit_ns + 1)
    elif arrival is None:
        found.violate(
            "transit_overdue",
            dispatch,
            f"not received within {limit_h:g} h of dispatch",
            {"variant": "not_received", "limit_h": limit_h},
            dispatch.ts_ns + limit_ns,
        )


@_checks("wrong_receiver")
def wrong_receiver(case: Case, found: Findings) -> None:
    manifest = case.manifest
    if manifest is None:
        return
    receipt = case.receipt
    if receipt is not None and receipt.site != manifest.receiver:
        found.violate(
            "wrong_receiver",
            receipt,
            f"received at {receipt.site}, manifest {manifest.manifest} names {manifest.receiver}",
            {"site": receipt.site, "manifest": manifest.manifest, "receiver": manifest.receiver},
        )


@_checks("manifest_split")
def manifest_split(case: Case, found: Findings) -> None:
    manifest, dispatches, events = case.manifest, case.manifest_dispatches, case.events
    if manifest is None or len(manifest.batches) <= 1 or not dispatches:
        return
    first_ns = min(dispatches.values())
    window_ns = int(case.geo.limits.manifest_window_h * NS_PER_H)
    own = dispatches.get(case.info.batch)
    if own is not None and own - first_ns > window_ns:
        dispatch = case.dispatch
        assert dispatch is not None
        found.violate(
            "manifest_split",
            dispatch,
            f"dispatched {(own - first_ns) / NS_PER_H:.1f} h after the first batch of "
            f"manifest {manifest.manifest}",
            {
                "variant": "late",
                "hours": (own - first_ns) / NS_PER_H,
                "manifest": manifest.manifest,
            },
        )
    elif own is None and case.now_ns - first_ns <= window_ns:
        found.deadlines.append(first_ns + window_ns + 1)
    elif own is None and events:
        found.violate(
            "manifest_split",
            events[-1],
            f"not dispatched with the other batches of manifest {manifest.manifest}",
            {"variant": "missing", "manifest": manifest.manifest},
            first_ns + window_ns,
        )


@_checks("storage_over_capacity")
def storage_over_capacity(case: Case, found: Findings) -> None:
    # a finding across the batches of a site: the tracker's storage sweep made it
    if case.capacity_hit is not None:
        found.violations.append(case.capacity_hit)


def judge(
    info: Registration,
    events: list[CustodyEvent],
    manifest: ManifestInfo | None,
    manifest_dispatches: Mapping[str, int],
    capacity_hit: Violation | None,
    geo: Geography,
    now_ns: int,
    diagnostics: tuple[Diagnostic, ...] = (),
) -> Judgement:
    """The verdict of one batch from its events sorted by their own time (pure)."""
    dispatch = next((e for e in events if e.stage == DISPATCHED), None)
    receipt = next((e for e in events if e.stage == RECEIVED), None)
    case = Case(
        info,
        events,
        manifest,
        manifest_dispatches,
        capacity_hit,
        geo,
        now_ns,
        dispatch,
        receipt,
        diagnostics,
    )
    found = Findings(info.batch)
    for check in CHECKS.values():
        check(case, found)
    violations = sorted(found.violations, key=lambda v: (v.at_ns, v.rule, v.event_id))
    last = events[-1] if events else None
    if violations:
        verdict = "broken"
    elif any(e.stage == DISPOSED for e in events):
        verdict = "complete"
    else:
        verdict = "open"
    return Judgement(
        info.batch,
        info.epc,
        info.waste_code,
        last.stage if last else GENERATED,
        last.ts_ns if last else info.ts_ns,
        verdict,
        tuple(events),
        tuple(violations),
        manifest.manifest if manifest else None,
        last.site if last else info.site,
        min(found.deadlines) if found.deadlines else None,
        diagnostics,
    )


_Frozen = TypeVar("_Frozen", CustodyEvent, Diagnostic, Judgement)


def _evolve(obj: _Frozen, **changes: Any) -> _Frozen:
    """dataclasses.replace for the hot path (a third of its time): a frozen slots dataclass
    with no __post_init__, copied slot by slot."""
    new = object.__new__(type(obj))
    for name in type(obj).__slots__:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(obj, name))
    return new


def _row(j: Judgement) -> tuple[object, ...]:
    """What the store keeps of a verdict (custody_batch), beside its events."""
    return (j.epc, j.waste_code, j.stage, j.since_ns, j.verdict, j.violations, j.manifest, j.site)


# ---------------------------------------------------------------- clocks measured late

_Timed = TypeVar("_Timed", bound=Registration | ManifestInfo | Weighing | Read)
# the device family each input comes from, whose clock it was stamped by
_FAMILY: dict[type, str] = {
    Registration: "terminal", ManifestInfo: "terminal", Weighing: "scale", Read: "rfid"
}  # fmt: skip


def _moved(item: _Timed, retime: Retime) -> _Timed | None:
    """The input as its device's clock, measured now, says it was (None: not one it moves)."""
    if not retime.applies(item.ts_ns - item.clock_offset_ns, item.clock_basis):
        return None
    reading = retime.reading
    return replace(
        item,
        ts_ns=item.ts_ns - item.clock_offset_ns + reading.offset_ns,
        clock_offset_ns=reading.offset_ns,
        clock_error_ns=reading.error_ns,
        clock_basis=reading.basis,
    )


def _retimed_passes(group: PassSet, retime: Retime) -> PassSet | None:
    """A reader's passes of one EPC with those the retime moves at their new times, merged
    again by them (None: it moves none). A pass's reads share its first read's clock."""
    reading = retime.reading
    items: list[Pass] = []
    for p in group.items:
        if retime.applies(p.first_ns - p.clock_offset_ns, p.clock_basis):
            shift = reading.offset_ns - p.clock_offset_ns
            p = p._replace(
                first_ns=p.first_ns + shift, last_ns=p.last_ns + shift, peak_ns=p.peak_ns + shift,
                clock_offset_ns=reading.offset_ns, clock_error_ns=reading.error_ns,
                clock_basis=reading.basis,
            )  # fmt: skip
        items.append(p)
    if items == group.items:
        return None
    again = PassSet(group.gap_ns, track=group.arrived is not None)
    for i, p in enumerate(items):
        if group.arrived is not None and group.alerted is not None:
            again.add(p, group.arrived[i], group.alerted[i])
        else:
            again.add(p)
    # the rows of the passes as they were go, those of the passes now are written
    again.gone = group.gone | set(group.firsts)
    again.legacy = group.legacy
    return again


def retimed_inputs(inputs: Iterable[Input], retimes: Sequence[Retime]) -> list[Input]:
    """Inputs as the retimes (in their order) say their devices' clocks were: those taken
    with what a retime replaces at the times its offset gives (`Reads` split where only some
    of its reads are)."""
    out: list[Input] = []
    for item in inputs:
        for retime in retimes:
            site, family, device = retime.key
            if isinstance(item, Reads):
                if family != "rfid" or (item.site, item.device) != (site, device):
                    continue
                basis = item.clock_basis
                hit = [r for r in item.reads if retime.applies(r[1], basis)]
                if not hit:
                    continue
                reading = retime.reading
                if len(hit) < len(item.reads):
                    rest = [r for r in item.reads if not retime.applies(r[1], basis)]
                    out.append(replace(item, reads=rest))
                item = Reads(
                    item.site, item.device, item.location, hit, reading.offset_ns,
                    reading.error_ns, reading.basis,
                )  # fmt: skip
            elif isinstance(item, SeenPass):
                continue  # stored passes are moved in the tracker (Tracker._retime)
            elif (item.site, item.device) == (site, device) and family == _FAMILY[type(item)]:
                item = _moved(item, retime) or item
        out.append(item)
    return out


# ---------------------------------------------------------------- the tracker


# How many of the newest reads of `Reads` the tracker keeps the identity of, so that one
# delivered again changes nothing. A redelivery is of a message not yet acknowledged: at most
# the broker's in-flight window of a session (ingest's receive maximum, 10,000 by default,
# docs/deployment.md), delivered again after a reconnect or a restart (the store keeps the
# same number: CustodyStore.read_logs). Ten times that, some 4 s of issue #18's door burst.
RECENT_READS = 100_000
_DEVICE_TIME = itemgetter(1)


class Tracker:
    """All batches' custody state in memory; `apply` and `check` return what changed."""

    def __init__(self, geo: Geography | None = None) -> None:
        self.geo = geo or Geography()
        self.batches: dict[str, _Batch] = {}
        self.epc_batch: dict[str, str] = {}  # shared with the decode context (batch_of)
        self.manifests: dict[str, ManifestInfo] = {}
        self.manifest_of: dict[str, str] = {}
        self.dispatches: dict[str, dict[str, int]] = {}  # manifest → batch → dispatch ns
        # epc of no batch → its passes per (site, reader, location), with when each arrived
        # and whether it was alerted (unknown_tag)
        self.orphans: dict[str, dict[tuple[str, str, str], PassSet]] = {}
        self.orphan_weighings: dict[str, dict[str, Weighing]] = {}
        self.seen: set[str] = set()
        self._ids_of: dict[str, list[str]] = {}  # epc → its ids in `seen` (to forget: evict)
        # batches evicted (`evict`) whose verdict an input since may change (a stay counted
        # with theirs): for the caller to load back from the store (`load_back`)
        self.wanted: set[str] = set()
        # a restart loads open work only (CustodyStore.live_inputs): the stays of batches
        # closed before this time are not counted until `restore_stays` (None: all are)
        self.stays_from: int | None = None
        self._judged: dict[str, Judgement] = {}  # `judged`, but for passes gone on since
        self._stale: dict[str, dict[PassKey, Pass]] = {}  # batch → those passes (_grow)
        self.rooms: dict[str, Occupancy] = {}  # storage site → its stays
        self.stay_site: dict[str, str] = {}
        self.open: set[str] = set()  # batches whose verdict may still change with time
        self.watermark_ns = 0  # the newest device time among the inputs
        self._notes: dict[str, tuple[Diagnostic, ...]] = {}  # made with the events, for judge
        # the identities (EPC, device time) of the last RECENT_READS reads of `Reads`, per
        # (site, reader), with the order they came in to forget the oldest
        self._recent: dict[tuple[str, str], dict[tuple[str, int], None]] = {}
        self._recent_reads: deque[tuple[dict[tuple[str, int], None], Sequence[TagRead]]] = deque()
        self._recent_count = 0
        # (site, reader) → [its newest read's corrected time, now_ns when it was last heard]
        self.readers: dict[tuple[str, str], list[int]] = {}
        self._horizons: dict[tuple[str, str], int] = {}  # (site, reader) → horizon, never back
        self._now = 0
        self.pending: set[str] = set()  # batches with a pass not settled (_Batch.wait)
        self._readers_moved: set[tuple[str, str]] = set()  # since take_readers
        # (epc, site, reader, location) → its passes, changed since take_passes last took them
        self._unsaved: dict[tuple[str, str, str, str], PassSet] = {}

    # inputs --------------------------------------------------------------
    def apply(
        self, inputs: Iterable[Input], now_ns: int, retimes: Sequence[Retime] = ()
    ) -> Changes:
        """Take inputs in any order; a repeated event id (a repeated read of `Reads`: the
        same reader, EPC and device time, among the last RECENT_READS) changes nothing.

        Time-based rules are judged here at the newest device time seen (never later than
        `now_ns`), so replaying old messages fast raises no overdue alert that their own next
        message would clear; `check` judges them at `now_ns` itself. `now_ns` is also when
        the inputs arrived: the readers' horizons (`horizon`) count their silence from it.

        `retimes`: devices whose clock offset was taken over since the last call (its first
        measured, or a new one after the clock stepped: hazwatch.devices.clock_offset), first
        applied to what was taken before (`_retime`), then to these inputs.
        """
        dirty: set[str] = set()
        # batches whose reads only extended passes going on → those passes, by key
        grown: dict[str, dict[PassKey, Pass]] = {}
        changes = Changes()
        if retimes:
            self._retime(retimes, dirty, changes)
            inputs = retimed_inputs(inputs, retimes)
        for item in inputs:
            if isinstance(item, Reads):
                self._take_reads(item, now_ns, dirty, grown, changes)
                continue
            if item.ts_ns > self.watermark_ns:
                self.watermark_ns = item.ts_ns
            if isinstance(item, ManifestInfo):
                key = f"manifest:{item.manifest}"
                if key in self.seen:
                    continue
                self.seen.add(key)
                self.manifests[item.manifest] = item
                for batch in item.batches:
                    self.manifest_of.setdefault(batch, item.manifest)
                    dirty.add(batch)
                continue
            if isinstance(item, SeenPass):
                self._take_pass(item, now_ns, dirty)
                continue
            if item.event_id in self.seen:
                continue
            self.seen.add(item.event_id)
            ids = self._ids_of.get(item.epc)
            if ids is None:
                self._ids_of[item.epc] = [item.event_id]
            else:
                ids.append(item.event_id)
            if isinstance(item, Registration):
                if item.batch in self.batches:
                    continue  # a second registration of the same batch keeps the first
                state = _Batch(item)
                self.batches[item.batch] = state
                self.epc_batch[item.epc] = item.batch
                for at, orphan in self.orphans.pop(item.epc, {}).items():
                    adopted = state.passes[at] = PassSet(orphan.gap_ns)
                    for i, seen in enumerate(orphan.items):
                        adopted.add(seen)
                        if orphan.alerted is not None and orphan.alerted[i]:
                            changes.cleared.append(
                                Violation(
                                    "unknown_tag", item.epc, seen.first_id, seen.first_ns,
                                    seen.site, "",
                                )
                            )  # fmt: skip
                    adopted.gone |= orphan.gone
                    adopted.legacy = orphan.legacy
                    self._unsaved[(item.epc, *at)] = adopted
                state.weighings.update(self.orphan_weighings.pop(item.epc, {}))
                dirty.add(item.batch)
                continue
            batch_id = self.epc_batch.get(item.epc)
            if isinstance(item, Weighing):
                if batch_id is None:
                    self.orphan_weighings.setdefault(item.epc, {})[item.event_id] = item
                else:
                    self.batches[batch_id].weighings[item.event_id] = item
                    dirty.add(batch_id)
                continue
            location = item.location
            if location not in LOCATION_STAGE:
                continue
            self._heard(item.site, item.device, item.ts_ns, now_ns)
            reader = (item.site, item.device, location)
            if batch_id is None:
                orphan_passes = self.orphans.setdefault(item.epc, {})
                here = orphan_passes.get(reader)
                if here is None:
                    gap_ns = self.geo.limits.pass_gap_ns(location)
                    here = orphan_passes[reader] = PassSet(gap_ns, track=True)
                here.add(pass_of(item), now_ns)
                here.legacy = True
            else:
                batch_passes = self.batches[batch_id].passes
                here = batch_passes.get(reader)
                if here is None:
                    here = batch_passes[reader] = PassSet(self.geo.limits.pass_gap_ns(location))
                i = here.add_read(item)
                here.legacy = True
                if i < 0:
                    dirty.add(batch_id)
                else:
                    p = here.items[i]
                    grown.setdefault(batch_id, {})[(*reader, p.first_ns)] = p
            self._unsaved[(item.epc, *reader)] = here
        at_ns = min(now_ns, self.watermark_ns)
        for batch_id, passes in grown.items():
            if batch_id not in dirty and not self._grow(batch_id, passes, at_ns, changes):
                dirty.add(batch_id)
        self._advance(now_ns)
        dirty |= self._settling()
        changes.merge(self._rejudge(dirty, at_ns))
        changes.raised.extend(self._orphans_due(now_ns))
        return changes

    # device clocks measured after their messages were taken --------------------------
    def _retime(self, retimes: Sequence[Retime], dirty: set[str], changes: Changes) -> None:
        """Read again by each retime's offset what was taken from its device by what that
        offset replaces (Retime.applies): its passes (at a reader), registrations and
        manifests (at a terminal), weighings (at a scale) move to the times the offset gives,
        and their batches are judged again (`dirty`). Every verdict is a function of its
        inputs' times, so it becomes what it would have been had the offset been known from
        the start: one broken by a time the device's clock got wrong is judged right, and its
        alerts clear (CustodyProcessor._alert). The passes of a reader are merged again by
        their new times, into the reads taken after (the caller applies those after this).
        """
        for retime in retimes:
            site, family, device = retime.key
            if family == "rfid":
                self._retime_reader(retime, dirty, changes)
            elif family == "terminal":
                for batch_id, state in self.batches.items():
                    info = state.info
                    if (info.site, info.device) == (site, device):
                        moved = _moved(info, retime)
                        if moved is not None:
                            state.info = moved
                            changes.moved.append(moved)
                            dirty.add(batch_id)
                for manifest_id, manifest in list(self.manifests.items()):
                    if (manifest.site, manifest.device) == (site, device):
                        moved_manifest = _moved(manifest, retime)
                        if moved_manifest is not None:
                            self.manifests[manifest_id] = moved_manifest
                            changes.moved.append(moved_manifest)
                            dirty.update(b for b in manifest.batches if b in self.batches)
            elif family == "scale":
                for batch_id, state in self.batches.items():
                    if self._retime_weighings(state.weighings, retime, changes):
                        dirty.add(batch_id)
                for weighings in self.orphan_weighings.values():
                    self._retime_weighings(weighings, retime, changes)
        changes.retimed = changes.retimed or bool(dirty) or bool(changes.moved)
        for item in changes.moved:
            if item.ts_ns > self.watermark_ns:
                self.watermark_ns = item.ts_ns

    def _retime_weighings(
        self, weighings: dict[str, Weighing], retime: Retime, changes: Changes
    ) -> bool:
        site, _, device = retime.key
        found = False
        for event_id, weighing in list(weighings.items()):
            if (weighing.site, weighing.device) == (site, device):
                moved = _moved(weighing, retime)
                if moved is not None:
                    weighings[event_id] = moved
                    changes.moved.append(moved)
                    found = True
        return found

    def _retime_reader(self, retime: Retime, dirty: set[str], changes: Changes) -> None:
        """A reader's passes at their new times, merged again; its newest read and horizon
        (when a pass there has ended) follow them, back too (a fast clock's ran ahead)."""
        site, _, device = retime.key
        newest: int | None = None
        moved_any = False
        places: list[tuple[str | None, str, dict[tuple[str, str, str], PassSet]]] = [
            (batch_id, state.info.epc, state.passes) for batch_id, state in self.batches.items()
        ]
        places += [(None, epc, groups) for epc, groups in self.orphans.items()]
        for batch_id, epc, groups in places:
            for at, group in groups.items():
                if at[0] != site or at[1] != device:
                    continue
                again = _retimed_passes(group, retime)
                if again is not None:
                    if batch_id is not None:
                        if batch_id in self._stale:
                            self._flush(batch_id)  # by the roles it was made with
                        dirty.add(batch_id)
                    groups[at] = again
                    self._unsaved[(epc, *at)] = again
                    group = again
                    moved_any = True
                last = max((p.last_ns for p in group.items), default=None)
                if last is not None and (newest is None or last > newest):
                    newest = last
        if not moved_any:
            return
        changes.retimed = True
        state = self.readers.get((site, device))
        if state is not None and newest is not None:
            state[0] = newest
            self._horizons.pop((site, device), None)  # made again from it (_advance)
            self._readers_moved.add((site, device))
        if newest is not None and newest > self.watermark_ns:
            self.watermark_ns = newest

    def _take_reads(
        self,
        group: Reads,
        now_ns: int,
        dirty: set[str],
        grown: dict[str, dict[PassKey, Pass]],
        changes: Changes,
    ) -> None:
        """The hot path: one reader's reads of an ingest batch, per EPC a piece of reads with
        no gap between them merged into its pass (`PassSet.extend`) or added as one."""
        site, device, location = group.site, group.device, group.location
        if location not in LOCATION_STAGE or not group.reads:
            return
        offset = group.clock_offset_ns
        window = self._recent.get((site, device))
        if window is None:
            window = self._recent[(site, device)] = {}
        by_epc: dict[str, list[TagRead]] = {}
        again = False
        unsorted: set[str] = set()  # EPCs whose reads came out of time order
        for read in group.reads:
            key = (read[0], read[1])
            if key in window:
                again = True  # delivered again
                continue
            window[key] = None
            same = by_epc.get(read[0])
            if same is None:
                by_epc[read[0]] = [read]
            else:
                if read[1] < same[-1][1]:
                    unsorted.add(read[0])
                same.append(read)
        for epc in unsorted:
            by_epc[epc].sort(key=_DEVICE_TIME)
        if not by_epc:
            return
        fresh = [r for same in by_epc.values() for r in same] if again else group.reads
        self._recent_reads.append((window, fresh))
        self._recent_count += len(fresh)
        while self._recent_count > RECENT_READS:
            old_window, old = self._recent_reads.popleft()
            self._recent_count -= len(old)
            for read in old:
                old_window.pop((read[0], read[1]), None)
        changes.reads.append(
            Reads(site, device, location, fresh, offset, group.clock_error_ns, group.clock_basis)
            if again
            else group
        )
        newest = max(map(_DEVICE_TIME, fresh)) + offset
        if newest > self.watermark_ns:
            self.watermark_ns = newest
        self._heard(site, device, newest, now_ns)
        gap = self.geo.limits.pass_gap_ns(location)
        reader = (site, device, location)
        error, basis = group.clock_error_ns, group.clock_basis
        epc_batch, batches, unsaved = self.epc_batch, self.batches, self._unsaved
        for epc, reads in by_epc.items():
            n = len(reads)
            batch_id = epc_batch.get(epc)
            if batch_id is None:
                here = self.orphans.setdefault(epc, {}).get(reader)
                if here is None:
                    here = self.orphans[epc][reader] = PassSet(gap, track=True)
            else:
                passes = batches[batch_id].passes
                here = passes.get(reader)
                if here is None:
                    here = passes[reader] = PassSet(gap)
            unsaved[(epc, site, device, location)] = here
            k = 0
            while k < n:
                # reads[start:k]: a piece with no gap; its peak as _peak_key orders them
                start = k
                head = peak = reads[k]
                best = _NO_RSSI if head[2] is None else head[2]
                last = head[1]
                k += 1
                while k < n:
                    read = reads[k]
                    if read[1] - last > gap:
                        break
                    last = read[1]
                    if read[2] is not None and read[2] > best:
                        peak, best = read, read[2]
                    k += 1
                if batch_id is not None:
                    i = here.extend(
                        head[1] + offset, last + offset, k - start, peak[2], peak[3],
                        peak[1] + offset,
                    )  # fmt: skip
                    if i >= 0:
                        p = here.items[i]
                        went_on = grown.get(batch_id)
                        if went_on is None:
                            went_on = grown[batch_id] = {}
                        went_on[(site, device, location, p.first_ns)] = p
                        continue
                    dirty.add(batch_id)
                whole = Pass(
                    site, device, location, head[1] + offset, last + offset, k - start, peak[2],
                    peak[3], read_event_id(site, device, head[1], epc), peak[1] + offset, "",
                    offset, error, basis,
                )  # fmt: skip
                here.add(whole, now_ns)

    def _take_pass(self, item: SeenPass, now_ns: int, dirty: set[str]) -> None:
        """A stored pass (replayed at start): merged into its reader's passes as a read is."""
        p = item.seen
        if p.location not in LOCATION_STAGE:
            return
        self._heard(p.site, p.device, p.last_ns, now_ns)
        reader = (p.site, p.device, p.location)
        gap = self.geo.limits.pass_gap_ns(p.location)
        batch_id = self.epc_batch.get(item.epc)
        if batch_id is None:
            here = self.orphans.setdefault(item.epc, {}).get(reader)
            if here is None:
                here = self.orphans[item.epc][reader] = PassSet(gap, track=True)
        else:
            here = self.batches[batch_id].passes.get(reader)
            if here is None:
                here = self.batches[batch_id].passes[reader] = PassSet(gap)
            dirty.add(batch_id)
        at = here.add(p, now_ns)
        if here.items[at].first_ns != p.first_ns:
            here.gone.add(p.first_ns)  # its row is merged into another's
        self._unsaved[(item.epc, *reader)] = here

    def remember(self, groups: Iterable[Reads]) -> None:
        """Take these reads as seen without applying them (the stored reads whose passes
        are stored: replayed at start, so that a redelivery of them changes nothing)."""
        for group in groups:
            window = self._recent.setdefault((group.site, group.device), {})
            reads = list(group.reads)
            for read in reads:
                window[(read[0], read[1])] = None
            self._recent_reads.append((window, reads))
            self._recent_count += len(reads)
        while self._recent_count > RECENT_READS:
            old_window, old = self._recent_reads.popleft()
            self._recent_count -= len(old)
            for read in old:
                old_window.pop((read[0], read[1]), None)

    def take_passes(
        self,
    ) -> tuple[
        list[tuple[str, Pass]],
        list[tuple[str, str, str, str, int]],
        list[tuple[str, str, str, str]],
    ]:
        """The passes made or changed since last taken, with their EPC; (EPC, site, reader,
        location, first read's time) of those merged away since; and (EPC, site, reader,
        location) of those among them that hold reads given as `Read`: what custody_pass must
        upsert and delete to hold every pass, and whose custody_input reads it then holds.
        Forgets the first two."""
        upserts: list[tuple[str, Pass]] = []
        deletes: list[tuple[str, str, str, str, int]] = []
        legacy: list[tuple[str, str, str, str]] = []
        for key, group in self._unsaved.items():
            made, gone = group.taken()
            epc, site, device, location = key
            if group.legacy:  # all of them: their custody_input rows go
                made = list(group.items)
                legacy.append(key)
            upserts.extend((epc, p) for p in made)
            deletes.extend((epc, site, device, location, first) for first in gone)
        self._unsaved = {}
        return upserts, deletes, legacy

    # the readers' horizons: when a pass has ended, and no new one can contest it ------------
    def _heard(self, site: str, device: str, ts_ns: int, now_ns: int) -> None:
        state = self.readers.get((site, device))
        if state is None:
            self.readers[(site, device)] = [ts_ns, now_ns]
        else:
            if ts_ns > state[0]:
                state[0] = ts_ns
            state[1] = now_ns
        self._readers_moved.add((site, device))

    def _advance(self, now_ns: int) -> None:
        """Move every reader's horizon on to `now_ns` (never back)."""
        self._now = max(self._now, now_ns)
        limits = self.geo.limits
        late = now_ns - int(limits.late_read_s * NS_PER_S)
        # the silence counted less the window: what a reader's report buffering and the
        # ingest batches delay a read by, so that a reader going on in order after a pause
        # does not reopen a pass taken as ended
        slack = int(limits.cross_read_window_s * NS_PER_S)
        horizons, moved = self._horizons, self._readers_moved
        for reader, (newest, heard) in self.readers.items():
            h = max(newest + max(0, now_ns - heard - slack), late)
            if h > horizons.get(reader, -_NEVER):
                horizons[reader] = h
                moved.add(reader)

    def horizon(self, site: str, device: str) -> int:
        """The time before which a reader will report nothing more, as far as hazwatch can
        tell: the newest read it reported, plus how long it has been silent since (in
        hazwatch's time, less cross_read_window_s), never less than `late_read_s` before now
        (older reads arrive as a backlog, placed as they come), never back. A reader not
        heard from yet: the latest `now_ns` given, less that window.

        A reader's reads arrive in its order (MQTT keeps a topic's): while each arrives
        within cross_read_window_s of when the reader's previous report did, no read comes
        before its reader's horizon, so a pass taken as ended stays ended.
        """
        found = self._horizons.get((site, device))
        if found is None:
            return self._now - int(self.geo.limits.cross_read_window_s * NS_PER_S)
        return found

    def take_readers(self) -> list[tuple[str, str, int, int, int]]:
        """(site, reader, newest read, when last heard, horizon) of the readers whose state
        moved since last taken, and ("", "", 0, 0, the latest now) for the readers not heard
        from: for the store, so that a restart places passes as before it."""
        rows = [("", "", 0, 0, self._now)]
        for site, device in sorted(self._readers_moved):
            newest, heard = self.readers[(site, device)]
            rows.append((site, device, newest, heard, self._horizons.get((site, device), 0)))
        self._readers_moved = set()
        return rows

    def restore_readers(self, rows: Iterable[tuple[str, str, int, int, int]]) -> None:
        """Take the readers' states the store kept (`take_readers`), never back."""
        for site, device, newest, heard, horizon in rows:
            if not site and not device:
                self._now = max(self._now, horizon)
                continue
            state = self.readers.setdefault((site, device), [newest, heard])
            state[0] = max(state[0], newest)
            state[1] = heard
            if horizon > self._horizons.get((site, device), -_NEVER):
                self._horizons[(site, device)] = horizon

    def _settling(self) -> set[str]:
        """The batches held by a pass that is settled now (classify): to judge again."""
        found: set[str] = set()
        if not self.pending:
            return found
        limits = self.geo.limits
        window = int(limits.cross_read_window_s * NS_PER_S)
        partners = _partners(self.geo.overlaps)
        horizon = self.horizon
        for batch_id in self.pending:
            for (site, device, location, _), last in self.batches[batch_id].wait.items():
                if horizon(site, device) <= last + limits.pass_gap_ns(location):
                    continue
                if all(horizon(site, o) > last + window for o in partners.get((site, device), ())):
                    found.add(batch_id)
                    break
        return found

    def _grow(
        self, batch_id: str, grown: dict[PassKey, Pass], at_ns: int, changes: Changes
    ) -> bool:
        """The hot path of a batch whose reads only extended passes going on: when what each
        pass is (custody or why not) does not change, the verdict cannot either, only the
        events' and diagnostics' last read, reads and peak. False: judge it whole.

        Exact, not an estimate: the checks read a pass's first read (the event's time), its
        role and the batch's other inputs, none of which changed; a pass's role stays while
        its last read is within the bound `_classified` gave it (a short pass's minimum
        dwell, an overlapping reader's next pass, its horizons, a contested pass's strength);
        the one check that reads a last read (cloned_tag: from the last read at one place to
        the first at the next) is judged whole when the batch was seen at more than one
        place; and a batch whose time-based rules are due (due_ns) is judged whole, at the
        time they fire.

        Nothing is made here: the passes that went on are kept, and the judgement takes
        their figures when it is next read (`judged`, `judgement`); `changes.grown` names
        the events and diagnostics that went on.
        """
        old = self._judged.get(batch_id)
        state = self.batches[batch_id]
        roles = state.roles
        if old is None or roles is None or state.places > 1:
            return False
        if old.due_ns is not None and old.due_ns <= at_ns:
            return False
        ids = changes.grown.get(batch_id)
        stale = self._stale.get(batch_id)
        events, notes = old.events, old.diagnostics
        for key, p in grown.items():
            made = roles.get(key)
            if made is None:
                return False
            role, kind, index, limit = made
            if role == "pending":
                if key in state.wait:
                    state.wait[key] = p.last_ns
                continue
            if p.last_ns > limit:
                return False  # (the passes kept so far are taken when judged whole)
            if stale is None:
                stale = self._stale[batch_id] = {}
            stale[key] = p
            if ids is None:
                ids = changes.grown[batch_id] = set()
            ids.add(events[index].event_id if kind == "e" else notes[index].pass_id)
        return True

    def _flush(self, batch_id: str) -> Judgement | None:
        """The batch's judgement with the figures of the passes that went on since made."""
        stale = self._stale.pop(batch_id, None)
        old = self._judged.get(batch_id)
        if stale is None or old is None:
            return old
        roles = self.batches[batch_id].roles
        assert roles is not None
        events = list(old.events)
        notes = list(old.diagnostics)
        for key, p in stale.items():
            role, kind, index, _ = roles[key]
            if kind == "e":
                events[index] = _evolve(
                    events[index], last_ns=p.last_ns, reads=p.reads, peak_rssi=p.peak_rssi,
                    antenna=p.antenna,
                )  # fmt: skip
            else:
                note = notes[index].note
                if role == "short":
                    note = _short_note(p, self.geo.limits.min_dwell_ns(p.location))
                notes[index] = _evolve(
                    notes[index], last_ns=p.last_ns, reads=p.reads, peak_rssi=p.peak_rssi,
                    antenna=p.antenna, note=note,
                )  # fmt: skip
        judgement = _evolve(old, events=tuple(events), diagnostics=tuple(notes))
        self._judged[batch_id] = judgement
        return judgement

    @property
    def judged(self) -> dict[str, Judgement]:
        """Every batch's judgement now (batch → Judgement)."""
        for batch_id in list(self._stale):
            self._flush(batch_id)
        return self._judged

    def judgement(self, batch_id: str) -> Judgement | None:
        """One batch's judgement now (`judged` of one)."""
        return self._flush(batch_id) if batch_id in self._stale else self._judged.get(batch_id)

    def check(self, now_ns: int) -> Changes:
        """The periodic check: time-based rules of open batches, passes settled since (their
        readers silent), unknown tags past their grace."""
        due = {
            b
            for b in self.open
            if (j := self._judged.get(b)) is not None
            and j.due_ns is not None
            and j.due_ns <= now_ns
        }
        self._advance(now_ns)
        changes = self._rejudge(due | self._settling(), now_ns)
        changes.raised.extend(self._orphans_due(now_ns))
        return changes

    def _orphans_due(self, now_ns: int) -> list[Violation]:
        """unknown_tag: one per pass of a tag of no batch, once its grace is over."""
        grace_ns = int(self.geo.limits.unknown_tag_grace_s * NS_PER_S)
        found = []
        for epc, groups in self.orphans.items():
            for group in groups.values():
                assert group.arrived is not None and group.alerted is not None
                for i, p in enumerate(group.items):
                    if not group.alerted[i] and now_ns - group.arrived[i] >= grace_ns:
                        group.alerted[i] = True
                        found.append(
                            Violation(
                                "unknown_tag",
                                epc,
                                p.first_id,
                                p.first_ns,
                                p.site,
                                f"tag {epc} read at {p.site}/{p.device} ({p.reads} reads) "
                                "belongs to no registered batch",
                                {"epc": epc, "site": p.site, "device": p.device, "reads": p.reads},
                            )
                        )
        return found

    def orphan_alerted(self, read: Read | Reads) -> None:
        """Take the pass of a read of no batch as alerted (another worker alerts it)."""
        if isinstance(read, Reads):
            for epc, device_ns, *_ in read.reads:
                if epc in self.orphans:
                    at = (read.site, read.device, read.location)
                    self._alerted(epc, at, device_ns + read.clock_offset_ns)
        else:
            self._alerted(read.epc, (read.site, read.device, read.location), read.ts_ns)

    def _alerted(self, epc: str, at: tuple[str, str, str], ts_ns: int) -> None:
        group = self.orphans.get(epc, {}).get(at)
        if group is not None and group.alerted is not None:
            i = group.index_of(ts_ns)
            if i is not None:
                group.alerted[i] = True

    def alert_all_orphans(self) -> None:
        """Take every pass of a tag of no batch as alerted (replayed from the store)."""
        for groups in self.orphans.values():
            for group in groups.values():
                if group.alerted is not None:
                    group.alerted[:] = [True] * len(group.alerted)

    # judging -------------------------------------------------------------
    def _rejudge(self, dirty: set[str], now_ns: int) -> Changes:
        """Judge the `dirty` batches again, and every batch their changes affect."""
        changes = Changes()
        events_of, manifest_of = self._gather(dirty)
        self._apply_stays(events_of, manifest_of)
        for batch_id, events in events_of.items():
            manifest = manifest_of[batch_id]
            judgement = judge(
                self.batches[batch_id].info,
                events,
                manifest,
                self.dispatches.get(manifest.manifest, {}) if manifest else {},
                self._capacity_hit(batch_id, events),
                self.geo,
                now_ns,
                self._notes.pop(batch_id, ()),
            )
            self._record(batch_id, judgement, changes)
        self._notes.clear()
        return changes

    def _gather(
        self, dirty: set[str]
    ) -> tuple[dict[str, list[CustodyEvent]], dict[str, ManifestInfo | None]]:
        """The events and manifest of every batch to judge: the dirty ones, and the partners on
        their manifest when a dispatch time changed (manifest_split compares them)."""
        events_of: dict[str, list[CustodyEvent]] = {}
        manifest_of: dict[str, ManifestInfo | None] = {}
        work = [b for b in dirty if b in self.batches]
        while work:
            batch_id = work.pop()
            if batch_id in events_of:
                continue
            events_of[batch_id], manifest = self._events_of(batch_id)
            manifest_of[batch_id] = manifest
            if manifest is not None:
                events = events_of[batch_id]
                dispatch = next((e.ts_ns for e in events if e.stage == DISPATCHED), None)
                times = self.dispatches.setdefault(manifest.manifest, {})
                if times.get(batch_id) != dispatch:
                    if dispatch is None:
                        times.pop(batch_id, None)
                    else:
                        times[batch_id] = dispatch
                    work.extend(b for b in manifest.batches if b in self.batches)
        return events_of, manifest_of

    def _apply_stays(
        self,
        events_of: dict[str, list[CustodyEvent]],
        manifest_of: dict[str, ManifestInfo | None],
    ) -> None:
        """Record the batches' storage stays (each O(log n) in its site's stays, in any
        order: occupancy.py); a batch whose capacity hit changed joins those to judge."""
        for batch_id, events in list(events_of.items()):
            stay = storage_interval(events)
            kg = events[0].net_kg if events[0].stage == GENERATED and events[0].net_kg else 0.0
            for other in self._update_stay(batch_id, stay, kg):
                if other not in events_of and other in self.batches:
                    events_of[other], manifest_of[other] = self._events_of(other)
                elif other not in self.batches:
                    self.wanted.add(other)  # evicted: judged again once loaded back

    def _capacity_hit(self, batch_id: str, events: list[CustodyEvent]) -> Violation | None:
        """storage_over_capacity of a batch whose storing took its site over the limit."""
        site = self.stay_site.get(batch_id)
        hit_ns = self.rooms[site].hits.get(batch_id) if site else None
        if site is None or hit_ns is None:
            return None
        stay_kg = self.rooms[site].stays[batch_id].kg
        limit_kg = self.geo.site(site).storage_limit_kg
        stored = next(
            e for e in events if e.stage == STORED and e.ts_ns == hit_ns and e.site == site
        )
        return Violation(
            "storage_over_capacity",
            batch_id,
            stored.event_id,
            hit_ns,
            site,
            f"storing {stay_kg:g} kg took {site} over its {limit_kg:g} kg limit",
            {"kg": stay_kg, "site": site, "limit_kg": limit_kg},
        )

    def _events_of(self, batch_id: str) -> tuple[list[CustodyEvent], ManifestInfo | None]:
        manifest_id = self.manifest_of.get(batch_id)
        manifest = self.manifests.get(manifest_id) if manifest_id else None
        state = self.batches[batch_id]
        if batch_id in self._stale:
            self._flush(batch_id)  # by the roles it was made with, before they are made again
        events, self._notes[batch_id] = _events(
            state, manifest.manifest if manifest else None, self.geo, self.horizon
        )
        if state.wait:
            self.pending.add(batch_id)
        else:
            self.pending.discard(batch_id)
        return events, manifest

    def _update_stay(
        self, batch_id: str, stay: tuple[str, int, int | None, str] | None, kg: float
    ) -> set[str]:
        changed: set[str] = set()
        old_site = self.stay_site.get(batch_id)
        if old_site is not None and (stay is None or stay[0] != old_site):
            store = self.rooms[old_site]
            changed |= store.update(None, batch_id, self.geo.site(old_site).storage_limit_kg)
            del self.stay_site[batch_id]
        if stay is not None:
            site, in_ns, out_ns, event_id = stay
            store = self.rooms.setdefault(site, Occupancy())
            self.stay_site[batch_id] = site
            changed |= store.update(
                Stay(batch_id, in_ns, out_ns, kg, event_id),
                batch_id,
                self.geo.site(site).storage_limit_kg,
            )
        return changed

    def _record(self, batch_id: str, judgement: Judgement, changes: Changes) -> None:
        old = self.judgement(batch_id)
        if old == judgement:
            return
        self._judged[batch_id] = judgement
        changes.batches[batch_id] = judgement
        if old is not None and _row(old) == _row(judgement):
            changes.events_only.add(batch_id)
        old_events = {e.event_id: e for e in old.events} if old else {}
        for event in judgement.events:
            if old_events.pop(event.event_id, None) != event:
                changes.events[event.event_id] = event
        changes.dropped |= old_events.keys()  # ids the batch no longer has: rows to delete
        if old is None or old.diagnostics != judgement.diagnostics:
            old_notes = {d.pass_id: d for d in old.diagnostics} if old else {}
            for note in judgement.diagnostics:
                if old_notes.pop(note.pass_id, None) != note:
                    changes.notes[note.pass_id] = note
            changes.dropped_notes |= old_notes.keys()
        old_keys = {(v.rule, v.event_id): v for v in old.violations} if old else {}
        new_keys = {(v.rule, v.event_id): v for v in judgement.violations}
        changes.raised.extend(v for k, v in new_keys.items() if k not in old_keys)
        new_rules = {v.rule for v in new_keys.values()}
        changes.cleared.extend(v for v in old_keys.values() if v.rule not in new_rules)
        if judgement.verdict == "complete" or (
            judgement.stage == DISPOSED and judgement.verdict == "broken"
        ):
            self.open.discard(batch_id)
        else:
            self.open.add(batch_id)

    # memory bounded by open work ------------------------------------------
    def evict(self) -> list[str]:
        """Forget the batches closed (complete, or disposed and broken) more than
        `closed_keep_h` of device time before the newest input, and nothing of them is kept
        but their stays (the others' capacity counts them); returns them. A manifest's
        batches go together, once every batch it lists is evictable (manifest_split compares
        them). Call it once what they changed is stored (a checkpoint): an input for one of
        them later is applied after `load_back` of its stored inputs.
        """
        cutoff = self.watermark_ns - int(self.geo.limits.closed_keep_h * NS_PER_H)
        unsaved = {key[0] for key in self._unsaved}
        closed = {
            b
            for b, j in self._judged.items()
            if j.since_ns < cutoff
            and b not in self.open
            and b not in self.pending
            and j.epc not in unsaved
        }
        gone: list[str] = []
        manifests: set[str] = set()
        for batch_id in closed:
            manifest_id = self.manifest_of.get(batch_id)
            if manifest_id is not None:
                manifest = self.manifests.get(manifest_id)
                if manifest is None or not closed.issuperset(manifest.batches):
                    continue
                manifests.add(manifest_id)
            gone.append(batch_id)
        for batch_id in gone:
            epc = self.batches.pop(batch_id).info.epc
            if self.epc_batch.get(epc) == batch_id:
                del self.epc_batch[epc]
            for event_id in self._ids_of.pop(epc, ()):
                self.seen.discard(event_id)
            del self._judged[batch_id]
            self._stale.pop(batch_id, None)
            self.manifest_of.pop(batch_id, None)
        for manifest_id in manifests:
            del self.manifests[manifest_id]
            self.dispatches.pop(manifest_id, None)
            self.seen.discard(f"manifest:{manifest_id}")
        return gone

    def restore_stays(
        self, stays: Iterable[tuple[str, str, int, int | None, str, float]], now_ns: int
    ) -> Changes:
        """Count the stored stays a restart left out (CustodyStore.closed_stays: batch, site,
        in, out, stored event id, kg), before an input older than `stays_from` is applied;
        the batches in memory whose capacity hit they change are judged again."""
        dirty: set[str] = set()
        for batch_id, site, in_ns, out_ns, event_id, kg in stays:
            if batch_id in self.stay_site:
                continue
            self.stay_site[batch_id] = site
            room = self.rooms.setdefault(site, Occupancy())
            stay = Stay(batch_id, in_ns, out_ns, kg, event_id)
            for other in room.update(stay, batch_id, self.geo.site(site).storage_limit_kg):
                (dirty if other in self.batches else self.wanted).add(other)
        self.stays_from = None
        return self._rejudge(dirty, min(now_ns, self.watermark_ns)) if dirty else Changes()

    def load_back(self, items: Iterable[Input], now_ns: int) -> Changes:
        """Apply the stored inputs of evicted batches (the store's `evicted_inputs`) as they
        were applied before, the readers' clocks left as they are (what they heard then is
        counted already); their verdicts come back as if they had never left."""
        readers = {reader: list(state) for reader, state in self.readers.items()}
        moved = set(self._readers_moved)
        changes = self.apply(items, now_ns)
        self.readers, self._readers_moved = readers, moved
        return changes

    # queries -------------------------------------------------------------
    def trace(self, batch: str) -> Judgement | None:
        return self.judgement(batch)
