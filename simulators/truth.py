"""The ground truth of a custody simulation: what physically happened to every container, and
what hazwatch must therefore say: custody events per stage, verdicts, ledger totals.

Never compute it with hazwatch's code (nothing of hazwatch.streams.custody is imported here):
it is made from the simulator's own story, so a test that compares hazwatch's custody
events, verdicts and ledger with it compares two independent accounts.

What counts, in the simulator's terms:
- A container *enters* a stage when it is carried past a reader of that stage at a site
  where it is not already in that stage (the stage's `at_ns` is the first read of that pass).
  Reads while it stays there are no new entry: a drum parked in the door's field, the
  handheld's stocktakes, the vehicle reader's inventories in transit, the other door's weak
  cross-reads. A real return (out, then in again; back on the truck after receipt; a
  disposed tag seen in storage) is an entry again. Expected custody events = entries.
- A cloned tag is read at the far site's storage door while the original waits in storage:
  that is an entry at the far site (another place), marked not `physical` (the simulator
  knows it was the clone; hazwatch cannot, and judges the batch broken by cloned_tag). The
  original's parking and stocktakes after that are left out of the story, so that what counts
  does not hang on whether staying in storage at the first site is then an entry again (a
  question for the rules, not for the readers). A tag seen in storage after its batch was
  disposed (disposed_tag) is an entry too, not `physical` either.
- Ledger (HJ 1259-2022 management ledger, per site, months in China time): one record per
  container and stage entered (产生 GENERATED, 入库 STORED, 出库 and 转移 DISPATCHED, 处置
  DISPOSED at the site); monthly 产生量/转移量 the generated weight of each container that
  entered GENERATED/DISPATCHED there that month, 利用处置量 the received weight (else the
  generated) of each disposed, 月末贮存量 the generated weight of each container in storage
  there at the month's end: every stay, from entering STORED at the site to its next entry of
  a later stage (a return is stored again), none from its disposal on (a tag seen in storage
  then holds no waste). A ledger goes by tags: a clone's stay at the far site counts there
  too, as nothing in the reads tells the clone from the original (`physical_stock` leaves it
  out: what a site really held).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from hazwatch.devices.timeparse import CHINA
from hazwatch.simulators.reads import ReadModel

LEDGER_KINDS = {  # ledger record kind → the stage it records
    "generation": "GENERATED",
    "storage_in": "STORED",
    "storage_out": "DISPATCHED",
    "transfer": "DISPATCHED",
    "disposal": "DISPOSED",
}
STAGE_ORDER = ("GENERATED", "STORED", "DISPATCHED", "IN_TRANSIT", "RECEIVED", "DISPOSED")


@dataclass(slots=True)
class PassTruth:
    """One physical pass: a tag in one reader's field from its first read to its last."""

    pass_id: int
    epc: str
    batch: str | None
    site: str
    reader: str
    kind: str  # pass | parked | stocktake | transit | single
    location: str
    first_ns: int = 0  # true time of its first read
    last_ns: int = 0
    first_ts_ns: int = 0  # the device's time of its first read (what the message says)
    reads: int = 0
    peak_rssi: float | None = None
    peak_antenna: int | None = None
    antennas: set[int] = field(default_factory=set)
    cross_reads: int = 0  # weak reads of it at overlapping readers, at the same moments

    def add(self, at_ns: int, ts_ns: int, rssi: float | None, antenna: int | None) -> None:
        if not self.reads:
            self.first_ns, self.first_ts_ns = at_ns, ts_ns
        self.last_ns = at_ns
        self.reads += 1
        if rssi is not None and (self.peak_rssi is None or rssi > self.peak_rssi):
            self.peak_rssi, self.peak_antenna = rssi, antenna
        if antenna is not None:
            self.antennas.add(antenna)

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["antennas"] = sorted(self.antennas)
        return doc


@dataclass(frozen=True, slots=True)
class Entry:
    """A stage a container entered: where, when (true time of the first read, or of the
    registration), the device's time of it, and the reads of the passes that made it."""

    stage: str
    site: str
    device: str
    at_ns: int
    until_ns: int  # the last read of the stay at that reader
    ts_ns: int  # the device's clock at `at_ns` (the raw time hazwatch receives)
    reads: int
    pass_ids: tuple[int, ...]
    physical: bool = True  # False: the tag was read, not this batch's container (a clone)

    def extended(self, until_ns: int, reads: int, pass_ids: tuple[int, ...]) -> Entry:
        return Entry(
            self.stage, self.site, self.device, self.at_ns, max(self.until_ns, until_ns),
            self.ts_ns, self.reads + reads, self.pass_ids + pass_ids, self.physical,
        )  # fmt: skip


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
    # (stage, ts_ns, site, device) in time order, GENERATED first: one per stage entered
    # (`entered` in short; ts_ns the device's time of its first read)
    stages: list[tuple[str, int, str, str]] = field(default_factory=list)
    entered: list[Entry] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "broken" if self.violation else "complete"

    def expected_events(self) -> Counter[str]:
        """Custody events hazwatch must keep for it, per stage: one per stage entered."""
        return Counter(e.stage for e in self.entered)


def month_of(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, CHINA).strftime("%Y-%m")


def month_end_ns(month: str) -> int:
    year, mon = (int(x) for x in month.split("-"))
    nxt = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=CHINA)
    return int(nxt.timestamp()) * 1_000_000_000


def months_between(start_ns: int, end_ns: int) -> list[str]:
    """The months (China time) that [start_ns, end_ns) touches, in order."""
    months: list[str] = []
    month = month_of(start_ns)
    while True:
        months.append(month)
        end = month_end_ns(month)
        if end >= end_ns:
            return months
        month = month_of(end)


@dataclass
class GroundTruth:
    """What a custody simulation physically did, and what follows for hazwatch's output."""

    batches: dict[str, BatchTruth] = field(default_factory=dict)
    unknown_epcs: list[str] = field(default_factory=list)
    start_ns: int = 0
    passes: dict[int, PassTruth] = field(default_factory=dict)
    read_model: ReadModel | None = None
    timing_name: str = "default"
    clocks: dict[str, str] = field(default_factory=dict)  # device → its clock, described

    def broken(self) -> dict[str, str]:
        return {b: t.violation for b, t in self.batches.items() if t.violation}

    def expected_verdicts(self) -> dict[str, str]:
        return {b: t.verdict for b, t in self.batches.items()}

    def expected_events(self) -> dict[str, Counter[str]]:
        return {b: t.expected_events() for b, t in self.batches.items()}

    def read_counts(self) -> Counter[str]:
        """Reads published, by kind (pass, cross, parked, stocktake, transit, single)."""
        counts: Counter[str] = Counter()
        for p in self.passes.values():
            counts[p.kind] += p.reads
            counts["cross"] += p.cross_reads
        return +counts

    def span(self) -> tuple[int, int]:
        """[first, last] true time of everything that entered a stage."""
        times = [e.at_ns for t in self.batches.values() for e in t.entered]
        return (min(times), max(times)) if times else (self.start_ns, self.start_ns)

    def expected_records(self, site: str, start_ns: int, end_ns: int) -> Counter[tuple[str, str]]:
        """Ledger records hazwatch must list for `site` in [start, end): (kind, batch) → 1."""
        records: Counter[tuple[str, str]] = Counter()
        for truth in self.batches.values():
            for entry in truth.entered:
                if entry.site != site or not start_ns <= entry.at_ns < end_ns:
                    continue
                for kind, stage in LEDGER_KINDS.items():
                    if entry.stage == stage:
                        records[(kind, truth.batch)] += 1
        return records

    def expected_ledger(
        self, site: str, start_ns: int, end_ns: int, *, physical_stock: bool = False
    ) -> dict[tuple[str, str], dict[str, float]]:
        """The monthly summary for `site` over [start, end), per (month, waste code): only
        the months of the range, only rows with something in them, kilograms to 3 places.
        `physical_stock`: month-end stock of the containers really there (no clone's stay)."""
        months = months_between(start_ns, end_ns)
        rows: dict[tuple[str, str], dict[str, float]] = {}

        def add(month: str, code: str, column: str, kg: float) -> None:
            row = rows.setdefault(
                (month, code),
                {"generated_kg": 0.0, "stored_month_end_kg": 0.0, "transferred_kg": 0.0,
                 "disposed_kg": 0.0},
            )  # fmt: skip
            row[column] += kg

        for truth in self.batches.values():
            for entry in truth.entered:
                if entry.site != site or not start_ns <= entry.at_ns < end_ns:
                    continue
                month = month_of(entry.at_ns)
                if entry.stage == "GENERATED":
                    add(month, truth.waste_code, "generated_kg", truth.gen_kg)
                elif entry.stage == "DISPATCHED":
                    add(month, truth.waste_code, "transferred_kg", truth.gen_kg)
                elif entry.stage == "DISPOSED":
                    add(month, truth.waste_code, "disposed_kg", truth.recv_kg or truth.gen_kg)
            stocked = set()
            for stay_in, stay_out in _stays(truth.entered, site, physical_stock):
                for month in months:
                    end = month_end_ns(month)
                    if stay_in < end and (stay_out is None or stay_out >= end):
                        stocked.add(month)  # one container counts once a month
            for month in stocked:
                add(month, truth.waste_code, "stored_month_end_kg", truth.gen_kg)
        return {
            key: {k: round(v, 3) for k, v in row.items()}
            for key, row in sorted(rows.items())
            if any(row.values())
        }

    def document(self) -> dict[str, Any]:
        """The ground truth as JSON: per batch its stages entered and expected events and
        verdict, per site the ledger's monthly totals over the whole story, every pass."""
        first, last = self.span()
        sites = sorted({e.site for t in self.batches.values() for e in t.entered})
        return {
            "start_ns": self.start_ns,
            "reads": "one per stage" if self.read_model is None else asdict(self.read_model),
            "timing": self.timing_name,
            "clocks": self.clocks,
            "read_counts": dict(self.read_counts()),
            "batches": {
                b: {
                    "epc": t.epc,
                    "waste_code": t.waste_code,
                    "gen_kg": t.gen_kg,
                    "recv_kg": t.recv_kg,
                    "manifest": t.manifest,
                    "violation": t.violation,
                    "verdict": t.verdict,
                    "entered": [asdict(e) for e in t.entered],
                    "expected_events": dict(t.expected_events()),
                }
                for b, t in self.batches.items()
            },
            "unknown_epcs": self.unknown_epcs,
            "ledger": {
                site: [
                    {"month": month, "waste_code": code, **totals}
                    for (month, code), totals in self.expected_ledger(site, first, last + 1).items()
                ]
                for site in sites
            },
            "passes": [p.document() for p in self.passes.values()],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.document(), option=orjson.OPT_INDENT_2))


def _stays(
    entered: Iterable[Entry], site: str, physical: bool = False
) -> list[tuple[int, int | None]]:
    """[in, out) of each stay of the tag in storage at `site`, until its disposal."""
    stays: list[tuple[int, int | None]] = []
    stay_in: int | None = None
    later = STAGE_ORDER.index("STORED")
    for entry in entered:
        if stay_in is not None and STAGE_ORDER.index(entry.stage) > later:
            stays.append((stay_in, entry.at_ns))
            stay_in = None
        if entry.stage == "DISPOSED":
            return stays
        if (
            stay_in is None
            and entry.stage == "STORED"
            and entry.site == site
            and (entry.physical or not physical)
        ):
            stay_in = entry.at_ns
    if stay_in is not None:
        stays.append((stay_in, None))
    return stays
