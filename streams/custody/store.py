"""The custody tracker's SQL adapter on StateDB: inputs for replay, events, batch verdicts.

Never commit per event: one `save` is one transaction of `executemany` statements.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext
from hazwatch.devices.timeparse import format_ts
from hazwatch.streams.custody.rules import (
    GENERATED,
    LOCATION_STAGE,
    RECENT_READS,
    STAGE_INDEX,
    Changes,
    CustodyEvent,
    Diagnostic,
    Input,
    Judgement,
    ManifestInfo,
    Pass,
    Read,
    Reads,
    Registration,
    SeenPass,
    Weighing,
    storage_interval,
)

log = logging.getLogger(__name__)

MIGRATIONS = [
    # v1
    "CREATE TABLE custody_batch (batch {text} PRIMARY KEY, epc {text} NOT NULL, "
    "waste_code {text} NOT NULL, site {text} NOT NULL, ts_ns BIGINT NOT NULL, "
    "info {text} NOT NULL, stage {text} NOT NULL, verdict {text} NOT NULL, "
    "since_ns BIGINT NOT NULL, at_site {text} NOT NULL, manifest {text}, "
    "violations {text} NOT NULL);"
    "CREATE INDEX custody_batch_epc ON custody_batch (epc);"
    "CREATE TABLE custody_manifest (manifest {text} PRIMARY KEY, site {text} NOT NULL, "
    "ts_ns BIGINT NOT NULL, body {text} NOT NULL);"
    "CREATE TABLE custody_input (event_id {text} PRIMARY KEY, kind {text} NOT NULL, "
    "epc {text} NOT NULL, site {text} NOT NULL, device {text} NOT NULL, "
    "location {text} NOT NULL, ts_ns BIGINT NOT NULL, net_kg DOUBLE PRECISION, "
    "arrived_ns BIGINT NOT NULL);"
    "CREATE TABLE custody_event (event_id {text} PRIMARY KEY, batch {text} NOT NULL, "
    "epc {text} NOT NULL, stage {text} NOT NULL, ts_ns BIGINT NOT NULL, site {text} NOT NULL, "
    "device {text} NOT NULL, net_kg DOUBLE PRECISION, manifest {text});"
    "CREATE INDEX custody_event_batch ON custody_event (batch, ts_ns)",
    # v2: several workers share one store (docs/design-notes.md). Every save takes the next value
    # of custody_clock and stamps the rows it inserts with it, so that a worker catches up
    # with what the others stored since it last looked: registrations (custody_batch.info),
    # manifests, reads kept as custody events and the other inputs. Rows of v1 are seq 0.
    "ALTER TABLE custody_input ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_event ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_batch ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_manifest ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX custody_input_seq ON custody_input (seq);"
    "CREATE INDEX custody_event_seq ON custody_event (seq);"
    "CREATE INDEX custody_batch_seq ON custody_batch (seq);"
    "CREATE INDEX custody_manifest_seq ON custody_manifest (seq);"
    "CREATE TABLE custody_clock (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL);"
    "INSERT INTO custody_clock (id, seq) VALUES (1, 0)",
    # v3 (issue #18): reads become passes. Every read is an input (with its RSSI and antenna);
    # a custody event is a stage entered, with its pass (last seen, reads, peak RSSI, antenna);
    # the passes that are none are diagnostics. The reads v2 kept as custody events become
    # inputs, and the marker custody_rederive asks the first processor to derive the events
    # of every batch again from them (CustodyProcessor.rederive).
    "ALTER TABLE custody_input ADD COLUMN rssi DOUBLE PRECISION;"
    "ALTER TABLE custody_input ADD COLUMN antenna INTEGER;"
    "ALTER TABLE custody_event ADD COLUMN last_ns BIGINT;"
    "ALTER TABLE custody_event ADD COLUMN reads INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_event ADD COLUMN peak_rssi DOUBLE PRECISION;"
    "ALTER TABLE custody_event ADD COLUMN antenna INTEGER;"
    "CREATE TABLE custody_diagnostic (pass_id {text} PRIMARY KEY, batch {text} NOT NULL, "
    "epc {text} NOT NULL, stage {text} NOT NULL, ts_ns BIGINT NOT NULL, site {text} NOT NULL, "
    "device {text} NOT NULL, last_ns BIGINT NOT NULL, reads INTEGER NOT NULL, "
    "peak_rssi DOUBLE PRECISION, antenna INTEGER, why {text} NOT NULL, note {text} NOT NULL, "
    "seq BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX custody_diagnostic_batch ON custody_diagnostic (batch, ts_ns);"
    "INSERT INTO custody_input (event_id, kind, epc, site, device, location, ts_ns, net_kg, "
    "arrived_ns, seq) SELECT event_id, 'read', epc, site, device, CASE stage "
    "WHEN 'STORED' THEN 'storage_in' WHEN 'DISPATCHED' THEN 'storage_out' "
    "WHEN 'IN_TRANSIT' THEN 'vehicle' WHEN 'RECEIVED' THEN 'receiver_gate' "
    "ELSE 'disposal' END, ts_ns, NULL, ts_ns, seq FROM custody_event "
    "WHERE stage <> 'GENERATED' ON CONFLICT (event_id) DO NOTHING;"
    "CREATE TABLE custody_rederive (id INTEGER PRIMARY KEY);"
    "INSERT INTO custody_rederive (id) SELECT 1 WHERE EXISTS "
    "(SELECT 1 FROM custody_event WHERE stage <> 'GENERATED')",
    # v4 (issue #18, device clocks): an input's and an event's ts_ns is its device's time
    # corrected by the offset the ingest pipeline measured then; kept with it: that offset,
    # the corrected time's error and how the offset was measured (hazwatch.devices
    # .clock_offset), so that a replay judges the same times without measuring again. Rows of
    # before were taken at their device's time: offset 0, error 0, basis none.
    "ALTER TABLE custody_input ADD COLUMN clock_offset_ns BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_input ADD COLUMN clock_error_ns BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_input ADD COLUMN clock_basis {text} NOT NULL DEFAULT 'none';"
    "ALTER TABLE custody_event ADD COLUMN clock_offset_ns BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_event ADD COLUMN clock_error_ns BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE custody_event ADD COLUMN clock_basis {text} NOT NULL DEFAULT 'none'",
    # v5 (issue #18, item 8): a read is no row of its own. Each save keeps the reads it took
    # (new ones: a redelivery is refused by the tracker's recent reads) as one row of
    # custody_read_log, so that a restart or another worker applies them again; from time to
    # time (a checkpoint) the passes they made are written whole to custody_pass, and the log
    # rows before the checkpoint are kept only as long as a redelivery of them may come
    # (custody_mark: checkpoint_seq, and pruned_seq: the newest log row deleted). Reads of v3
    # and v4 stay custody_input rows, replayed as they are. custody_reader keeps each
    # reader's horizon (Tracker.horizon: when a pass there has ended), so that a restart
    # places passes as the worker did before it.
    "CREATE TABLE custody_pass (epc {text} NOT NULL, site {text} NOT NULL, "
    "device {text} NOT NULL, location {text} NOT NULL, first_ns BIGINT NOT NULL, "
    "last_ns BIGINT NOT NULL, reads INTEGER NOT NULL, peak_rssi DOUBLE PRECISION, "
    "antenna INTEGER, peak_ns BIGINT NOT NULL, first_id {text} NOT NULL, "
    "peak_id {text} NOT NULL, clock_offset_ns BIGINT NOT NULL, clock_error_ns BIGINT NOT NULL, "
    "clock_basis {text} NOT NULL, seq BIGINT NOT NULL, "
    "PRIMARY KEY (epc, site, device, location, first_ns));"
    "CREATE TABLE custody_read_log (seq BIGINT PRIMARY KEY, arrived_ns BIGINT NOT NULL, "
    "reads INTEGER NOT NULL, body {text} NOT NULL);"
    "CREATE TABLE custody_mark (id INTEGER PRIMARY KEY, checkpoint_seq BIGINT NOT NULL, "
    "pruned_seq BIGINT NOT NULL);"
    "INSERT INTO custody_mark (id, checkpoint_seq, pruned_seq) VALUES (1, 0, 0);"
    "CREATE TABLE custody_reader (site {text} NOT NULL, device {text} NOT NULL, "
    "newest_ns BIGINT NOT NULL, heard_ns BIGINT NOT NULL, horizon_ns BIGINT NOT NULL, "
    "PRIMARY KEY (site, device))",
    # v6: a checkpoint deletes the custody_input reads of an EPC whose passes it writes whole
    "CREATE INDEX custody_input_epc ON custody_input (epc)",
    # v7: a device's clock measured after custody took its inputs moves them (rows rewritten
    # in place, Changes.moved, and its passes at a checkpoint): a worker that caught up to
    # before rebuild_seq rebuilds from the store instead of applying what came after
    "ALTER TABLE custody_mark ADD COLUMN rebuild_seq BIGINT NOT NULL DEFAULT 0",
    # v8 (issue #19, items 6-7): a restart loads open work only (CustodyStore.live_inputs):
    # batches by verdict and by the time of their last event, inputs and passes of tags of
    # no batch by their time
    "CREATE INDEX custody_batch_verdict ON custody_batch (verdict, stage);"
    "CREATE INDEX custody_batch_since ON custody_batch (since_ns);"
    "CREATE INDEX custody_input_ts ON custody_input (ts_ns);"
    "CREATE INDEX custody_pass_last ON custody_pass (last_ns)",
]
# v9 (issue #19, item 5): the indexes a ledger month needs at 500,000 containers (events by
# time, batches by stage and by when they last moved: CustodyStore.ledger_inputs), and the
# record of each closed batch whose raw inputs (custody_input, custody_pass) were archived
# and pruned (streams/custody/retention.py): the digest of its record as kept and of what
# went, so that it still verifies, and its EPC's rows up to `upto_ns` are gone
INDEXES = (
    ("custody_event_ts", "CREATE INDEX custody_event_ts ON custody_event (ts_ns, batch)"),
    (
        "custody_batch_stage",
        "CREATE INDEX custody_batch_stage ON custody_batch (stage, since_ns)",
    ),
    (
        "custody_batch_moved",
        "CREATE INDEX custody_batch_moved ON custody_batch (since_ns, ts_ns, batch)",
    ),
)
MIGRATIONS.append(
    ";".join(create for _, create in INDEXES)
    + ";CREATE TABLE custody_archive (batch {text} PRIMARY KEY, epc {text} NOT NULL, "
    "upto_ns BIGINT NOT NULL, archived_ns BIGINT NOT NULL, file {text} NOT NULL, "
    "inputs_sha256 {text} NOT NULL, record_sha256 {text} NOT NULL, inputs INTEGER NOT NULL, "
    "passes INTEGER NOT NULL)"
)
# a stored batch's stay in storage: batch, site, in, out (None: still there), event id, kg
StoredStay = tuple[str, str, int, int | None, str, float]
# Any constant: only custody saves take it (StateDB.migrate takes 4242).
ADVISORY_LOCK = 0x637573746F6479  # "custody"
# BIGINT: a bound past these would make the driver overflow, not match nothing.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# A custody event as the ledger reads it (CustodyStore.ledger_inputs): (event_id, batch, epc,
# stage, ts_ns, site, device, net_kg, manifest), a row as the driver gives it
LedgerEvent = tuple[str, str, str, str, int, str, str, float | None, str | None]
_LEDGER_COLUMNS = "event_id, batch, epc, stage, ts_ns, site, device, net_kg, manifest"
_BY_TIME = itemgetter(4, 0)  # a LedgerEvent's (ts_ns, event_id)
_BATCH = itemgetter(1)


def ledger_chains(chains: Iterable[list[LedgerEvent]]) -> list[list[LedgerEvent]]:
    """Each batch's events sorted by (time, id), and the batches in the order a sort of all
    their events by (time, id) would first meet them (the ledger's summary adds weights in
    that order, as it did when it read the whole history sorted)."""
    out = []
    for chain in chains:
        chain.sort(key=_BY_TIME)
        out.append(chain)
    out.sort(key=lambda chain: _BY_TIME(chain[0]))
    return out


def _loads(text: str) -> Any:
    """JSON read fast (orjson), or by json for what only it reads (NaN written by json.dumps)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


_UPSERT_EVENT = (
    "INSERT INTO custody_event (event_id, batch, epc, stage, ts_ns, site, device, net_kg, "
    "manifest, last_ns, reads, peak_rssi, antenna, seq, clock_offset_ns, clock_error_ns, "
    "clock_basis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id) DO UPDATE SET "
    "batch = excluded.batch, stage = excluded.stage, ts_ns = excluded.ts_ns, "
    "site = excluded.site, device = excluded.device, net_kg = excluded.net_kg, "
    "manifest = excluded.manifest, last_ns = excluded.last_ns, reads = excluded.reads, "
    "peak_rssi = excluded.peak_rssi, antenna = excluded.antenna, seq = excluded.seq, "
    "clock_offset_ns = excluded.clock_offset_ns, clock_error_ns = excluded.clock_error_ns, "
    "clock_basis = excluded.clock_basis"
)
_EVENT_COLUMNS = (
    "event_id, batch, epc, stage, ts_ns, site, device, net_kg, manifest, last_ns, reads, "
    "peak_rssi, antenna, clock_offset_ns, clock_error_ns, clock_basis"
)
_UPSERT_NOTE = (
    "INSERT INTO custody_diagnostic (pass_id, batch, epc, stage, ts_ns, site, device, last_ns, "
    "reads, peak_rssi, antenna, why, note, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (pass_id) DO UPDATE SET stage = excluded.stage, ts_ns = excluded.ts_ns, "
    "last_ns = excluded.last_ns, reads = excluded.reads, peak_rssi = excluded.peak_rssi, "
    "antenna = excluded.antenna, why = excluded.why, note = excluded.note, seq = excluded.seq"
)
_NOTE_COLUMNS = (
    "pass_id, batch, epc, stage, ts_ns, site, device, last_ns, reads, peak_rssi, antenna, why, note"
)
_UPSERT_BATCH = (
    "INSERT INTO custody_batch (batch, epc, waste_code, site, ts_ns, info, stage, verdict, "
    "since_ns, at_site, manifest, violations, seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (batch) DO UPDATE SET stage = excluded.stage, verdict = excluded.verdict, "
    "since_ns = excluded.since_ns, at_site = excluded.at_site, manifest = excluded.manifest, "
    "violations = excluded.violations"
)
_INSERT_INPUT = (
    "INSERT INTO custody_input (event_id, kind, epc, site, device, location, ts_ns, net_kg, "
    "arrived_ns, seq, rssi, antenna, clock_offset_ns, clock_error_ns, clock_basis) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_INPUT_COLUMNS = (
    "event_id, kind, epc, site, device, location, ts_ns, net_kg, rssi, antenna, "
    "clock_offset_ns, clock_error_ns, clock_basis"
)
_UPSERT_PASS = (
    "INSERT INTO custody_pass (epc, site, device, location, first_ns, last_ns, reads, "
    "peak_rssi, antenna, peak_ns, first_id, peak_id, clock_offset_ns, clock_error_ns, "
    "clock_basis, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (epc, site, device, location, first_ns) DO UPDATE SET "
    "last_ns = excluded.last_ns, reads = excluded.reads, peak_rssi = excluded.peak_rssi, "
    "antenna = excluded.antenna, peak_ns = excluded.peak_ns, first_id = excluded.first_id, "
    "peak_id = excluded.peak_id, clock_offset_ns = excluded.clock_offset_ns, "
    "clock_error_ns = excluded.clock_error_ns, clock_basis = excluded.clock_basis, "
    "seq = excluded.seq"
)
# a pass restored from the archive (CustodyStore._unarchive): one stored since is kept
_RESTORE_PASS = _UPSERT_PASS.split(" ON CONFLICT")[0] + " ON CONFLICT DO NOTHING"
_PASS_COLUMNS = (
    "epc, site, device, location, first_ns, last_ns, reads, peak_rssi, antenna, peak_ns, "
    "first_id, peak_id, clock_offset_ns, clock_error_ns, clock_basis"
)
# A log row stays at least this long after its save, whatever RECENT_READS says: a worker
# catches up with the others' saves at each tick (every 5 s), and one that missed a pruned
# row rebuilds from the store instead (CustodyProcessor._catch_up).
LOG_KEEP_NS = 60 * 1_000_000_000
_INSERT_MANIFEST = (
    "INSERT INTO custody_manifest (manifest, site, ts_ns, body, seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (manifest) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a checkpoint writes beside a save (CustodyProcessor): the passes made or changed
    since the last one (with their EPC) and those merged away since (EPC, site, reader,
    location, first read's time); after it the stored passes hold every read logged up to
    its save. `now_ns`: when, for how long the log rows before it are kept."""

    passes: Sequence[tuple[str, Pass]]
    gone: Sequence[tuple[str, str, str, str, int]]
    now_ns: int
    # (EPC, site, reader, location) whose reads stored as custody_input rows (before v5, or
    # given as Read) the passes hold now: those rows go
    legacy: Sequence[tuple[str, str, str, str]] = ()
    # stored inputs moved (a device's clock measured since): other workers rebuild from it
    rebuild: bool = False


def encode_reads(groups: Sequence[Reads]) -> str:
    """A save's reads as one custody_read_log body: per reader and clock reading, its reads as
    [EPC, device time, RSSI, antenna] (JSON, made in one call)."""
    return orjson.dumps(
        [
            [
                g.site,
                g.device,
                g.location,
                g.clock_offset_ns,
                g.clock_error_ns,
                g.clock_basis,
                g.reads,
            ]
            for g in groups
        ]
    ).decode()


def decode_reads(body: str) -> list[Reads]:
    """A custody_read_log body (`encode_reads`) as the reads it holds."""
    return [
        Reads(site, device, location, [tuple(r) for r in reads], offset, error, basis)
        for site, device, location, offset, error, basis, reads in orjson.loads(body)
    ]


def _plain(item: Registration | ManifestInfo) -> dict[str, Any]:
    """A flat dataclass as a dict (dataclasses.asdict deep-copies: too slow here)."""
    return {name: getattr(item, name) for name in item.__slots__}


def violations_json(judgement: Judgement) -> str:
    if not judgement.violations:
        return "[]"
    return json.dumps(
        [
            {
                "rule": v.rule,
                "event_id": v.event_id,
                "at_ns": v.at_ns,
                "message": v.message,
                "params": v.params,
            }
            for v in judgement.violations
        ],
        ensure_ascii=False,
    )


class CustodyStore:
    """Reads and writes custody state; `save` writes one call's inputs and changes atomically."""

    def __init__(self, db: StateDB, archive_dir: Path | None = None) -> None:
        self.db = db
        # where pruned batches' raw inputs were archived ([store] archive_dir): a late input
        # for one loads it back from its archived line (`evicted_inputs`)
        self.archive_dir = archive_dir
        # pruned batches a late input needed whose archived line was not there (no archive
        # directory, file lost, or no line of the kept digest): judged as stored instead
        self.archive_misses = 0
        db.migrate("custody", MIGRATIONS)

    @contextmanager
    def locked(self) -> Iterator[int]:
        """One transaction under the cross-worker lock; yields the newest seq stored so far.

        Between reading the clock (catch-up) and `write`, no other worker saves: on PostgreSQL
        the advisory lock says so, on SQLite the BEGIN IMMEDIATE of StateDB.transaction takes
        the file's write lock first (it serialises processes sharing the file, too).
        """
        with self.db.transaction():
            if self.db.kind == "postgres":
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (ADVISORY_LOCK,))
            yield self.clock()

    def clock(self) -> int:
        """The seq of the newest save (one indexed row: the cheap "anything new?" query)."""
        return int(self.db.query("SELECT seq FROM custody_clock WHERE id = 1")[0][0])

    def save(self, inputs: Sequence[Input], changes: Changes, arrived_ns: int) -> int:
        """`write` in a transaction of its own under the lock; returns the seq it took."""
        with self.locked() as clock:
            self.write(inputs, changes, arrived_ns, clock + 1)
        return clock + 1

    def write(
        self,
        inputs: Sequence[Input],
        changes: Changes,
        arrived_ns: int,
        seq: int,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        """One call's inputs and changes, stamped `seq`; only inside `locked`, seq = clock + 1.
        The reads it took are `changes.reads` (one custody_read_log row); `Reads` and
        `SeenPass` among the inputs are not stored as they are.

        The seq is the clock's next value, taken under the lock. A PostgreSQL sequence
        (BIGSERIAL) would not do without it: a transaction that took value 7 and commits after
        another one took 8 and committed makes a worker that caught up to 8 skip 7 for ever.
        Under the lock, the transaction taking the next value is the only one writing, and it
        commits before the next one reads the clock.
        """
        inputs_rows: list[tuple[Any, ...]] = []
        manifests: list[tuple[Any, ...]] = []
        registrations: dict[str, Registration] = {}
        for item in inputs:
            if isinstance(item, Read):
                # every read: custody events are derived from the passes of all of them
                inputs_rows.append(
                    (item.event_id, "read", item.epc, item.site, item.device, item.location,
                     item.ts_ns, None, arrived_ns, seq, item.rssi, item.antenna,
                     item.clock_offset_ns, item.clock_error_ns, item.clock_basis)
                )  # fmt: skip
            elif isinstance(item, Weighing):
                inputs_rows.append(
                    (item.event_id, "weigh", item.epc, item.site, item.device, item.location,
                     item.ts_ns, item.net_kg, arrived_ns, seq, None, None,
                     item.clock_offset_ns, item.clock_error_ns, item.clock_basis)
                )  # fmt: skip
            elif isinstance(item, ManifestInfo):
                body = json.dumps({**_plain(item), "batches": list(item.batches)})
                manifests.append((item.manifest, item.site, item.ts_ns, body, seq))
            elif isinstance(item, Registration):
                registrations[item.batch] = item
        batch_rows = []
        for judgement in changes.batches.values():
            info = registrations.get(judgement.batch)
            info_json = json.dumps(_plain(info), ensure_ascii=False) if info else "{}"
            batch_rows.append(
                (judgement.batch, judgement.epc, judgement.waste_code,
                 info.site if info else "", info.ts_ns if info else 0, info_json,
                 judgement.stage, judgement.verdict, judgement.since_ns, judgement.site,
                 judgement.manifest, violations_json(judgement), seq)
            )  # fmt: skip
        event_rows = [
            (e.event_id, e.batch, e.epc, e.stage, e.ts_ns, e.site, e.device, e.net_kg, e.manifest,
             e.last_ns, e.reads, e.peak_rssi, e.antenna, seq, e.clock_offset_ns,
             e.clock_error_ns, e.clock_basis)
            for e in changes.events.values()
        ]  # fmt: skip
        note_rows = [
            (d.pass_id, d.batch, d.epc, d.stage, d.ts_ns, d.site, d.device, d.last_ns, d.reads,
             d.peak_rssi, d.antenna, d.why, d.note, seq)
            for d in changes.notes.values()
        ]  # fmt: skip
        # Registrations of batches whose verdict did not change must still be kept.
        missing = [r for b, r in registrations.items() if b not in changes.batches]
        if inputs_rows:
            self.db.executemany(_INSERT_INPUT, inputs_rows)
        if manifests:
            self.db.executemany(_INSERT_MANIFEST, manifests)
        if batch_rows:
            self.db.executemany(_UPSERT_BATCH, batch_rows)
        if missing:
            self.db.executemany(
                "UPDATE custody_batch SET info = ?, seq = ? WHERE batch = ?",
                [(json.dumps(_plain(r), ensure_ascii=False), seq, r.batch) for r in missing],
            )
        # an id a batch no longer has goes first: the same call may give it back
        dropped = changes.dropped - changes.events.keys()
        if dropped:
            self.db.executemany(
                "DELETE FROM custody_event WHERE event_id = ?", [(i,) for i in sorted(dropped)]
            )
        if event_rows:
            self.db.executemany(_UPSERT_EVENT, event_rows)
        dropped_notes = changes.dropped_notes - changes.notes.keys()
        if dropped_notes:
            self.db.executemany(
                "DELETE FROM custody_diagnostic WHERE pass_id = ?",
                [(i,) for i in sorted(dropped_notes)],
            )
        if note_rows:
            self.db.executemany(_UPSERT_NOTE, note_rows)
        if changes.reads:
            self.db.execute(
                "INSERT INTO custody_read_log (seq, arrived_ns, reads, body) VALUES (?, ?, ?, ?)",
                (seq, arrived_ns, sum(len(g.reads) for g in changes.reads),
                 encode_reads(changes.reads)),
            )  # fmt: skip
        if changes.readers:
            self.db.executemany(
                "INSERT INTO custody_reader (site, device, newest_ns, heard_ns, horizon_ns) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, device) DO UPDATE SET "
                "newest_ns = excluded.newest_ns, heard_ns = excluded.heard_ns, "
                "horizon_ns = excluded.horizon_ns",
                changes.readers,
            )
        if changes.moved:
            self._moved(changes.moved, seq)
        if checkpoint is not None:
            self._checkpoint(checkpoint, seq)
        self.db.execute("UPDATE custody_clock SET seq = ? WHERE id = 1", (seq,))

    def _moved(self, moved: Sequence[Registration | Weighing | ManifestInfo], seq: int) -> None:
        """Rewrite the rows of inputs whose times a device's clock, measured since, moved."""
        batches, weighings, manifests = [], [], []
        for item in moved:
            if isinstance(item, Registration):
                info = json.dumps(_plain(item), ensure_ascii=False)
                batches.append((info, item.ts_ns, seq, item.batch))
            elif isinstance(item, Weighing):
                weighings.append(
                    (item.ts_ns, item.clock_offset_ns, item.clock_error_ns, item.clock_basis,
                     seq, item.event_id)
                )  # fmt: skip
            else:
                body = json.dumps({**_plain(item), "batches": list(item.batches)})
                manifests.append((item.ts_ns, body, seq, item.manifest))
        if batches:
            self.db.executemany(
                "UPDATE custody_batch SET info = ?, ts_ns = ?, seq = ? WHERE batch = ?", batches
            )
        if weighings:
            self.db.executemany(
                "UPDATE custody_input SET ts_ns = ?, clock_offset_ns = ?, clock_error_ns = ?, "
                "clock_basis = ?, seq = ? WHERE event_id = ?",
                weighings,
            )
        if manifests:
            self.db.executemany(
                "UPDATE custody_manifest SET ts_ns = ?, body = ?, seq = ? WHERE manifest = ?",
                manifests,
            )

    def _checkpoint(self, checkpoint: Checkpoint, seq: int) -> None:
        """Write the passes whole, take every log row up to `seq` as in them, and delete the
        log rows no redelivery can need any more (the newest RECENT_READS reads are kept, and
        every row for LOG_KEEP_NS)."""
        if checkpoint.gone:
            self.db.executemany(
                "DELETE FROM custody_pass WHERE epc = ? AND site = ? AND device = ? "
                "AND location = ? AND first_ns = ?",
                checkpoint.gone,
            )
        if checkpoint.legacy:
            self.db.executemany(
                "DELETE FROM custody_input WHERE epc = ? AND site = ? AND device = ? "
                "AND location = ? AND kind = 'read'",
                checkpoint.legacy,
            )
        if checkpoint.passes:
            self.db.executemany(
                _UPSERT_PASS,
                [
                    (epc, p.site, p.device, p.location, p.first_ns, p.last_ns, p.reads,
                     p.peak_rssi, p.antenna, p.peak_ns, p.first_id, p.peak_id, p.clock_offset_ns,
                     p.clock_error_ns, p.clock_basis, seq)
                    for epc, p in checkpoint.passes
                ],
            )  # fmt: skip
        kept, cutoff = 0, None
        keep_from = checkpoint.now_ns - LOG_KEEP_NS
        for log_seq, reads, arrived_ns in self.db.query(
            "SELECT seq, reads, arrived_ns FROM custody_read_log WHERE seq <= ? ORDER BY seq DESC",
            (seq,),
        ):
            if kept >= RECENT_READS and int(arrived_ns) <= keep_from:
                cutoff = int(log_seq)
                break
            kept += int(reads)
        if cutoff is not None:
            self.db.execute("DELETE FROM custody_read_log WHERE seq <= ?", (cutoff,))
            self.db.execute("UPDATE custody_mark SET pruned_seq = ? WHERE id = 1", (cutoff,))
        self.db.execute("UPDATE custody_mark SET checkpoint_seq = ? WHERE id = 1", (seq,))
        if checkpoint.rebuild:
            self.db.execute("UPDATE custody_mark SET rebuild_seq = ? WHERE id = 1", (seq,))

    def rederive_pending(self) -> bool:
        """Whether the events stored before v3 wait to be derived again from passes."""
        return bool(self.db.query("SELECT COUNT(*) FROM custody_rederive")[0][0])

    def replace_all(self, judged: Iterable[Judgement], seq: int) -> None:
        """Every batch's events, diagnostics and verdict as `judged` says, nothing else (only
        inside `locked`, seq = clock + 1): what v3 derives again from the stored reads."""
        judgements = list(judged)
        self.db.execute("DELETE FROM custody_event")
        self.db.execute("DELETE FROM custody_diagnostic")
        changes = Changes(
            {e.event_id: e for j in judgements for e in j.events},
            {j.batch: j for j in judgements},
            notes={d.pass_id: d for j in judgements for d in j.diagnostics},
        )
        self.write([], changes, 0, seq)
        self.db.execute("DELETE FROM custody_rederive")

    def inputs_since(self, seq: int) -> list[Input] | None:
        """The inputs other workers stored after `seq` (read inside `locked`), any order; None
        when reads stored after it are no longer kept one by one (a checkpoint took them
        into the passes and the log rows went), or when stored inputs moved since (a device's
        clock measured after them): rebuild from the store (`load_inputs`)."""
        pruned, rebuilt = self.db.query(
            "SELECT pruned_seq, rebuild_seq FROM custody_mark WHERE id = 1"
        )[0]
        if seq < int(pruned) or seq < int(rebuilt):
            return None
        items: list[Input] = []
        for (info,) in self.db.query(
            "SELECT info FROM custody_batch WHERE seq > ? AND info <> '{}'", (seq,)
        ):
            items.append(Registration(**json.loads(info)))
        for (body,) in self.db.query("SELECT body FROM custody_manifest WHERE seq > ?", (seq,)):
            raw = json.loads(body)
            raw["batches"] = tuple(raw["batches"])
            items.append(ManifestInfo(**raw))
        rows = self.db.query(f"SELECT {_INPUT_COLUMNS} FROM custody_input WHERE seq > ?", (seq,))
        items.extend(_input_row(row) for row in rows)
        for (body,) in self.db.query(
            "SELECT body FROM custody_read_log WHERE seq > ? ORDER BY seq", (seq,)
        ):
            items.extend(decode_reads(body))
        return items

    def alerted(self, batches: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """(rule, event id) of the stored violations of these batches: what was alerted.

        Read inside `locked` before `write`: the stored verdict is the one every worker's
        alerts were raised against, so a worker alerts only what its own commit changes.
        """
        found: dict[str, list[tuple[str, str]]] = {}
        names = list(batches)
        for start in range(0, len(names), 500):
            part = names[start : start + 500]
            rows = self.db.query(
                "SELECT batch, violations FROM custody_batch WHERE violations <> '[]' "
                f"AND batch IN ({', '.join('?' * len(part))})",
                part,
            )
            for batch, violations in rows:
                found[batch] = [(v["rule"], v["event_id"]) for v in json.loads(violations)]
        return found

    def load_inputs(self) -> tuple[list[Input], dict[str, int]]:
        """Every stored input, for replay at start; and each read's arrival time."""
        items: list[Input] = []
        for (info,) in self.db.query("SELECT info FROM custody_batch WHERE info <> '{}'"):
            items.append(Registration(**json.loads(info)))
        for (body,) in self.db.query("SELECT body FROM custody_manifest"):
            raw = json.loads(body)
            raw["batches"] = tuple(raw["batches"])
            items.append(ManifestInfo(**raw))
        arrived: dict[str, int] = {}
        rows = self.db.query(
            f"SELECT {_INPUT_COLUMNS}, arrived_ns FROM custody_input ORDER BY arrived_ns, ts_ns"
        )
        for row in rows:
            items.append(_input_row(row))
            arrived[row[0]] = int(row[-1])
        items.extend(
            SeenPass(r[0], _pass_row(r))
            for r in self.db.query(f"SELECT {_PASS_COLUMNS} FROM custody_pass")
        )
        return items, arrived

    def live_inputs(self, keep_ns: int) -> tuple[list[Input], dict[str, int], int]:
        """What a restart replays (`load_inputs` of open work only): the batches not closed
        (complete, or disposed and broken) or closed within `keep_ns` of the newest stored
        time, with their manifests' batches; the inputs and passes of tags of no batch from
        then on; each read's arrival time; and that time (`cutoff`): what is older and closed
        is loaded back when an input needs it (`evicted_inputs`, `closed_stays`)."""
        newest = max(
            int(self.db.query(f"SELECT COALESCE(MAX({column}), 0) FROM {table}")[0][0])
            for table, column in (
                ("custody_batch", "since_ns"),
                ("custody_input", "ts_ns"),
                ("custody_pass", "last_ns"),
            )
        )
        cutoff = newest - keep_ns
        live = {
            str(batch)
            for query, args in (
                ("SELECT batch FROM custody_batch WHERE verdict = 'open'", ()),
                (
                    "SELECT batch FROM custody_batch WHERE verdict = 'broken' "
                    "AND stage <> 'DISPOSED'",
                    (),
                ),
                ("SELECT batch FROM custody_batch WHERE since_ns >= ?", (cutoff,)),
            )
            for (batch,) in self.db.query(query, args)
        }
        items = self.evicted_inputs((), live, ())
        for (body,) in self.db.query(
            "SELECT body FROM custody_manifest WHERE ts_ns >= ?", (cutoff,)
        ):  # (manifests of batches not registered yet among them)
            raw = json.loads(body)
            raw["batches"] = tuple(raw["batches"])
            items.append(ManifestInfo(**raw))
        # inputs and passes since the cutoff, less those of a tag of a batch: the tags looked
        # up by the custody_batch_epc index. Not `AND epc NOT IN (SELECT epc FROM
        # custody_batch)`, nor NOT EXISTS: both read every batch stored (on PostgreSQL a
        # NOT IN whose EPCs outgrow hash_mem reads them again for each row: a restart at
        # 100,000 containers loaded in 12.8 s, issue #19 item 7)
        inputs = self.db.query(
            f"SELECT {_INPUT_COLUMNS}, arrived_ns FROM custody_input WHERE ts_ns >= ? "
            "ORDER BY arrived_ns, ts_ns",
            (cutoff,),
        )
        passes = self.db.query(
            f"SELECT {_PASS_COLUMNS} FROM custody_pass WHERE last_ns >= ?", (cutoff,)
        )
        of_batch: set[str] = set()
        for part, marks in _parts({str(r[2]) for r in inputs} | {str(r[0]) for r in passes}):
            of_batch.update(
                str(r[0])
                for r in self.db.query(
                    f"SELECT DISTINCT epc FROM custody_batch WHERE epc IN ({marks})", part
                )
            )
        arrived: dict[str, int] = {}
        for row in inputs:
            if row[2] not in of_batch:
                items.append(_input_row(row))
                arrived[row[0]] = int(row[-1])
        items.extend(SeenPass(r[0], _pass_row(r)) for r in passes if r[0] not in of_batch)
        return items, arrived, cutoff

    def closed_stays(self, skip: Container[str]) -> list[StoredStay]:
        """(batch, site, in, out, stored event id, kg) of each stored batch's stay in storage,
        from its stored events, less the batches in `skip`: the stays a restart did not load
        (`live_inputs`), for a late input's capacity (Tracker.restore_stays)."""
        found: list[StoredStay] = []
        rows = self.db.query(
            "SELECT batch, stage, ts_ns, site, net_kg, event_id FROM custody_event "
            "ORDER BY batch, ts_ns"
        )
        events: list[CustodyEvent] = []
        batch = None
        for row in [*rows, (None, "", 0, "", None, "")]:
            if row[0] != batch:
                if batch is not None and batch not in skip and events:
                    events.sort(key=lambda e: (e.ts_ns, STAGE_INDEX[e.stage]))
                    stay = storage_interval(events)
                    first = events[0]
                    kg = first.net_kg if first.stage == GENERATED and first.net_kg else 0.0
                    if stay is not None:
                        found.append((batch, stay[0], stay[1], stay[2], stay[3], kg))
                batch, events = row[0], []
            if row[0] is not None:
                events.append(
                    CustodyEvent(
                        str(row[5]), str(row[0]), "", str(row[1]), int(row[2]), str(row[3]),
                        "", _float(row[4]),
                    )
                )  # fmt: skip
        return found

    def evicted_inputs(
        self,
        epcs: Iterable[str],
        batches: Iterable[str],
        skip: Container[str],
        skip_tags: Container[str] = (),
    ) -> list[Input]:
        """The stored inputs of batches the tracker evicted (Tracker.evict), to load them back:
        the batches of these EPCs and these batches, with every batch of their manifests,
        less those in `skip` (still in memory); and the inputs and passes of those EPCs that
        are of no batch (a tag read before its registration), less those in `skip_tags` (in
        memory as such). Each look-up is by a key or an index."""
        epcs = set(epcs)
        found: dict[str, tuple[str, str, str | None]] = {}  # batch → epc, info, manifest
        manifests: dict[str, ManifestInfo] = {}

        def batch_rows(column: str, keys: Iterable[str]) -> None:
            for part, marks in _parts(keys):
                for batch, epc, info, manifest in self.db.query(
                    "SELECT batch, epc, info, manifest FROM custody_batch "
                    f"WHERE {column} IN ({marks})",
                    part,
                ):
                    found[str(batch)] = (str(epc), str(info), manifest)

        batch_rows("epc", epcs)
        batch_rows("batch", batches)
        while wanted := {m for _, _, m in found.values() if m and m not in manifests}:
            for part, marks in _parts(wanted):
                for (body,) in self.db.query(
                    f"SELECT body FROM custody_manifest WHERE manifest IN ({marks})", part
                ):
                    raw = json.loads(body)
                    raw["batches"] = tuple(raw["batches"])
                    manifests[raw["manifest"]] = ManifestInfo(**raw)
            for m in wanted - manifests.keys():
                manifests[m] = ManifestInfo(m, (), "", "", 0)  # none stored: none to load
            batch_rows("batch", {b for m in wanted for b in manifests[m].batches} - found.keys())
        # a batch whose raw inputs were archived (retention.py) comes back from its archived
        # line, its rows restored (`_unarchive`): judged as if never pruned. One whose line
        # is not there stays as stored: never judged again from what is left of its rows
        # (its EPC stays "of a batch" all the same)
        gone: set[str] = set()
        for part, marks in _parts(found):
            gone.update(
                str(r[0])
                for r in self.db.query(
                    f"SELECT batch FROM custody_archive WHERE batch IN ({marks})", part
                )
            )
        if back := {b for b in gone if b not in skip}:
            gone -= self._unarchive(back)
        loaded = {b: row for b, row in found.items() if b not in skip and b not in gone}
        items: list[Input] = [
            Registration(**json.loads(info)) for _, info, _ in loaded.values() if info != "{}"
        ]
        items += [m for m in manifests.values() if m.batches]
        of_batches = {epc for epc, _, _ in found.values()}
        tags = {epc for epc, _, _ in loaded.values()}
        tags |= {epc for epc in epcs - of_batches if epc not in skip_tags}
        for part, marks in _parts(tags):
            rows = self.db.query(
                f"SELECT {_INPUT_COLUMNS} FROM custody_input WHERE epc IN ({marks})", part
            )
            items.extend(_input_row(row) for row in rows)
            rows = self.db.query(
                f"SELECT {_PASS_COLUMNS} FROM custody_pass WHERE epc IN ({marks})", part
            )
            items.extend(SeenPass(r[0], _pass_row(r)) for r in rows)
        # in the order they happened, as they were first applied: a reused tag's older batch
        # keeps its own passes, its newer one (registered later) takes those after it
        items.sort(key=lambda item: (item.ts_ns, not isinstance(item, Registration)))
        return items

    def _unarchive(self, batches: Iterable[str]) -> set[str]:
        """Restore the raw inputs of these pruned batches from their archived lines (the
        line's SHA-256 checked against the one kept), under the custody lock: the rows of the
        line within the batch's life (`life_bounds`) go back into custody_input and
        custody_pass (a row there already is kept) and its custody_archive row goes, so that
        the batch is as if never pruned (the next prune archives it again, in a new line).
        Only a tag's newest batch comes back: an older life's input is its newest batch's
        (loaded too), and the older one stays as stored. Returns the batches restored; a
        line not there is logged and counted (`archive_misses`)."""
        restored: set[str] = set()
        with self.locked():
            rows: list[tuple[str, str, str]] = []
            for part, marks in _parts(batches):
                rows.extend(
                    (str(b), str(f), str(h))
                    for b, f, h in self.db.query(
                        "SELECT batch, file, inputs_sha256 FROM custody_archive "
                        f"WHERE batch IN ({marks})",
                        part,
                    )
                )
            lines: dict[tuple[str, str], dict[str, Any] | None] = {}
            for batch, file, sha in sorted(rows):
                lo, hi = life_bounds(self.db, batch)
                if hi != INT64_MAX:
                    continue  # a batch of its tag was registered after it: that one's input
                if (file, sha) not in lines:
                    lines[file, sha] = (
                        archived_line(self.archive_dir, file, sha)
                        if self.archive_dir is not None
                        else None
                    )
                line = lines[file, sha]
                if line is None:
                    self.archive_misses += 1
                    log.warning(
                        "custody: pruned batch %s needed by a late input, but no archived line "
                        "of the kept digest in %s (archive directory %s): judged as stored",
                        batch, file or "(none kept)", self.archive_dir,
                    )  # fmt: skip
                    continue
                inputs = [r for r in line["inputs"] if lo < int(r[6]) < hi]
                passes = [r for r in line["passes"] if lo < int(r[4]) < hi]
                # (seq 0: no worker catches up with them; one that needs the batch loads it)
                if inputs:
                    self.db.executemany(
                        _INSERT_INPUT, [(*r[:8], r[13], 0, *r[8:13]) for r in inputs]
                    )
                if passes:
                    self.db.executemany(_RESTORE_PASS, [(*r, 0) for r in passes])
                self.db.execute("DELETE FROM custody_archive WHERE batch = ?", (batch,))
                restored.add(batch)
                log.info(
                    "custody: batch %s loaded back from %s for a late input (%d inputs, %d "
                    "passes restored; archived again at a later prune)",
                    batch, file, len(inputs), len(passes),
                )  # fmt: skip
        return restored

    def figures(self, batches: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """Event or pass id → (last read, reads, peak RSSI, antenna, note) as stored, of the
        events and diagnostics of these batches that are passes."""
        found: dict[str, tuple[Any, ...]] = {}
        names = sorted(batches)
        for start in range(0, len(names), 500):
            part = names[start : start + 500]
            marks = ", ".join("?" * len(part))
            for r in self.db.query(
                "SELECT event_id, last_ns, reads, peak_rssi, antenna FROM custody_event "
                f"WHERE last_ns IS NOT NULL AND batch IN ({marks})",
                part,
            ):
                found[str(r[0])] = (_int(r[1]), int(r[2]), _float(r[3]), _int(r[4]), "")
            for r in self.db.query(
                "SELECT pass_id, last_ns, reads, peak_rssi, antenna, note FROM custody_diagnostic "
                f"WHERE batch IN ({marks})",
                part,
            ):
                found[str(r[0])] = (int(r[1]), int(r[2]), _float(r[3]), _int(r[4]), str(r[5]))
        return found

    def readers(self) -> list[tuple[str, str, int, int, int]]:
        """(site, reader, newest read, when last heard, horizon) as last saved."""
        rows = self.db.query(
            "SELECT site, device, newest_ns, heard_ns, horizon_ns FROM custody_reader"
        )
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def read_logs(self) -> tuple[list[Reads], list[Reads], int]:
        """The stored reads for replay at start: those the stored passes hold already (only
        to refuse a redelivery of them), those after the last checkpoint (to apply), and the
        newest save's arrival time (0: none)."""
        checkpoint = int(
            self.db.query("SELECT checkpoint_seq FROM custody_mark WHERE id = 1")[0][0]
        )
        held: list[Reads] = []
        after: list[Reads] = []
        newest = 0
        for seq, arrived_ns, body in self.db.query(
            "SELECT seq, arrived_ns, body FROM custody_read_log ORDER BY seq"
        ):
            (held if int(seq) <= checkpoint else after).extend(decode_reads(body))
            newest = max(newest, int(arrived_ns))
        return held, after, newest

    # queries for trace, API and ledger ------------------------------------------------
    def held(self, epc: str) -> list[Pass]:
        """The passes of an EPC that are neither a custody event nor a diagnostic of any of
        its batches: held until settled (rules.classify's `pending`), as the last checkpoint
        (each tick) wrote them; a pass a batch has placed since is not among them (an event or
        diagnostic of the same reader over its reads is that pass, merged or grown since)."""
        passes = [
            _pass_row(r)
            for r in self.db.query(
                f"SELECT {_PASS_COLUMNS} FROM custody_pass WHERE epc = ? ORDER BY first_ns",
                (epc,),
            )
        ]
        if not passes:
            return []
        placed: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for (batch,) in self.db.query("SELECT batch FROM custody_batch WHERE epc = ?", (epc,)):
            for e in self.events(str(batch)):
                if e.last_ns is not None:
                    placed.setdefault((e.site, e.device), []).append((e.ts_ns, e.last_ns))
            for d in self.diagnostics(str(batch)):
                placed.setdefault((d.site, d.device), []).append((d.ts_ns, d.last_ns))
        return [
            p
            for p in passes
            if not any(
                first <= p.last_ns and p.first_ns <= last
                for first, last in placed.get((p.site, p.device), ())
            )
        ]

    def batch(self, batch: str) -> dict[str, Any] | None:
        rows = self.db.query(
            "SELECT batch, epc, waste_code, site, ts_ns, info, stage, verdict, since_ns, "
            "at_site, manifest, violations FROM custody_batch WHERE batch = ?",
            (batch,),
        )
        if not rows:
            return None
        return _batch_row(rows[0])

    def events(self, batch: str) -> list[CustodyEvent]:
        rows = self.db.query(
            f"SELECT {_EVENT_COLUMNS} FROM custody_event WHERE batch = ? ORDER BY ts_ns, event_id",
            (batch,),
        )
        return [_event_row(r) for r in rows]

    def diagnostics(self, batch: str) -> list[Diagnostic]:
        """The batch's passes that are no custody event (repeats, short, cross-reads)."""
        rows = self.db.query(
            f"SELECT {_NOTE_COLUMNS} FROM custody_diagnostic WHERE batch = ? "
            "ORDER BY ts_ns, pass_id",
            (batch,),
        )
        return [_note_row(r) for r in rows]

    def batches(
        self,
        *,
        stage: str | None = None,
        site: str | None = None,
        verdict: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if stage:
            where.append("stage = ?")
            params.append(stage.upper())
        if site:
            where.append("(site = ? OR at_site = ?)")
            params.extend([site, site])
        if verdict:
            where.append("verdict = ?")
            params.append(verdict)
        sql = (
            "SELECT batch, epc, waste_code, site, ts_ns, info, stage, verdict, since_ns, "
            "at_site, manifest, violations FROM custody_batch"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY ts_ns, batch LIMIT {max(0, min(int(limit), INT64_MAX))}"
        return [_batch_row(r) for r in self.db.query(sql, params)]

    def events_between(self, start_ns: int, end_ns: int) -> list[CustodyEvent]:
        rows = self.db.query(
            f"SELECT {_EVENT_COLUMNS} FROM custody_event WHERE ts_ns < ? ORDER BY ts_ns, event_id",
            (max(INT64_MIN, min(end_ns, INT64_MAX)),),
        )
        del start_ns  # callers filter; month-end stock needs everything before the end
        return [_event_row(r) for r in rows]

    def ledger_inputs(
        self, start_ns: int, end_ns: int
    ) -> tuple[list[list[LedgerEvent]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """What ledger.build_ledger needs for [start, end), not the whole history: the full
        chains, rows and manifests of the batches that can count in it. A batch counts by an
        event in [start, end) (custody_event_ts), or by a stay in storage over a month end
        of it with no event in it: one that has moved on since the end and was registered
        before it (custody_batch_moved), or whose last event, before the start, left it
        generated or stored (custody_batch_stage). A superset: build_ledger picks exactly.

        The events as rows of the columns the ledger reads (LedgerEvent, no object per
        event), one list per batch sorted by (time, id), the batches in the order of their
        first event (ledger.chains); the month's events are read once, by their time, and
        only the rest of their batches' chains by batch. A batch row without its violations
        (the ledger says its verdict) and with its registration decoded."""
        start = max(INT64_MIN, min(start_ns, INT64_MAX))
        end = max(INT64_MIN, min(end_ns, INT64_MAX))
        by_batch: dict[str, list[LedgerEvent]] = {
            batch: list(rows)
            for batch, rows in groupby(
                self.db.query(
                    f"SELECT {_LEDGER_COLUMNS} FROM custody_event WHERE ts_ns >= ? "
                    "AND ts_ns < ? ORDER BY batch",
                    (start, end),
                ),
                _BATCH,
            )
        }
        inside = set(by_batch)
        others: set[str] = set()
        for query, args in (
            ("SELECT batch FROM custody_batch WHERE since_ns >= ? AND ts_ns < ?", (end, end)),
            ("SELECT batch FROM custody_batch WHERE stage IN ('GENERATED', 'STORED') "
             "AND since_ns < ?", (start,)),
        ):  # fmt: skip
            others.update(r[0] for r in self.db.query(query, args) if r[0] not in inside)
        for keys, where, extra in (
            (inside, "AND (ts_ns < ? OR ts_ns >= ?)", (start, end)),  # the rest of a chain
            (others, "", ()),
        ):
            for part, marks in _parts(keys, 2000):
                for row in self.db.query(
                    f"SELECT {_LEDGER_COLUMNS} FROM custody_event WHERE batch IN ({marks}) "
                    + where,
                    (*part, *extra),
                ):
                    chain = by_batch.get(row[1])
                    if chain is None:
                        by_batch[row[1]] = [row]
                    else:
                        chain.append(row)
        batches: dict[str, dict[str, Any]] = {}
        wanted = {row[8] for chain in by_batch.values() for row in chain if row[8]}
        for part, marks in _parts(by_batch, 2000):
            for b, waste_code, info, verdict, manifest in self.db.query(
                "SELECT batch, waste_code, info, verdict, manifest FROM custody_batch "
                f"WHERE batch IN ({marks})",
                part,
            ):
                batches[b] = {
                    "batch": b, "waste_code": waste_code, "info": _loads(info),
                    "verdict": verdict, "manifest": manifest,
                }  # fmt: skip
                if manifest:
                    wanted.add(manifest)
        manifests: dict[str, dict[str, Any]] = {}
        for part, marks in _parts(wanted, 2000):
            for m, body in self.db.query(
                f"SELECT manifest, body FROM custody_manifest WHERE manifest IN ({marks})", part
            ):
                manifests[str(m)] = _loads(body)
        return ledger_chains(by_batch.values()), batches, manifests

    def manifests(self) -> dict[str, dict[str, Any]]:
        return {
            m: json.loads(body)
            for m, body in self.db.query("SELECT manifest, body FROM custody_manifest")
        }

    def all_batches(self) -> dict[str, dict[str, Any]]:
        return {row["batch"]: row for row in self.batches(limit=10_000_000)}

    # the screen's reads: counts, what is in storage, finding a batch, the newest events ------
    def counts(self) -> list[tuple[str, str, str, int]]:
        """(site the batch is at, stage, verdict, batches) of every combination there is."""
        rows = self.db.query(
            "SELECT at_site, stage, verdict, COUNT(*) FROM custody_batch "
            "GROUP BY at_site, stage, verdict"
        )
        return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def in_storage(self) -> list[tuple[str, int, float]]:
        """(site, batches, kg) of what each site holds in storage now: the batches whose stage
        is STORED, each at the net weight of its generation weighing (none: 0 kg)."""
        rows = self.db.query(
            "SELECT b.at_site, COUNT(*), SUM(COALESCE((SELECT MAX(e.net_kg) FROM custody_event e "
            "WHERE e.batch = b.batch AND e.stage = 'GENERATED'), 0)) FROM custody_batch b "
            "WHERE b.stage = 'STORED' GROUP BY b.at_site"
        )
        return [(str(r[0]), int(r[1]), float(r[2] or 0.0)) for r in rows]

    def find(self, text: str, limit: int = 20) -> list[tuple[str, str]]:
        """(batch, what matched: batch, epc or manifest) of the batches `text` names: a batch
        code, an EPC (either case) or a transfer manifest's number."""
        found: dict[str, str] = {}
        for (batch,) in self.db.query("SELECT batch FROM custody_batch WHERE batch = ?", (text,)):
            found.setdefault(str(batch), "batch")
        for (batch,) in self.db.query(
            "SELECT batch FROM custody_batch WHERE epc = ? ORDER BY ts_ns DESC LIMIT ?",
            (text.upper(), limit),
        ):
            found.setdefault(str(batch), "epc")
        for (body,) in self.db.query(
            "SELECT body FROM custody_manifest WHERE manifest = ?", (text,)
        ):
            for batch in json.loads(body).get("batches", []):
                found.setdefault(str(batch), "manifest")
        return list(found.items())[:limit]

    def events_after(self, seq: int, limit: int) -> list[tuple[int, CustodyEvent]]:
        """(seq, event) of the events stored or changed after save `seq`, oldest save first."""
        rows = self.db.query(
            "SELECT seq, event_id, batch FROM custody_event WHERE seq > ? "
            "ORDER BY seq, ts_ns, event_id LIMIT ?",
            (max(INT64_MIN, min(seq, INT64_MAX)), limit),
        )
        return self._seq_events(rows)

    def _seq_events(self, rows: Sequence[Any]) -> list[tuple[int, CustodyEvent]]:
        """(seq, event) of (seq, event_id, batch) rows, each event read as `events` reads it."""
        found: dict[str, CustodyEvent] = {}
        for batch in {str(r[2]) for r in rows}:
            found.update((e.event_id, e) for e in self.events(batch))
        return [(int(r[0]), found[str(r[1])]) for r in rows if str(r[1]) in found]

    def manifest(self, manifest: str) -> dict[str, Any] | None:
        """The transfer manifest as the terminal registered it (None: not registered)."""
        rows = self.db.query("SELECT body FROM custody_manifest WHERE manifest = ?", (manifest,))
        return dict(json.loads(rows[0][0])) if rows else None

    def latest_events(self, limit: int) -> list[tuple[int, CustodyEvent]]:
        """(seq, event) of the `limit` events saved last, oldest first."""
        rows = self.db.query(
            "SELECT seq, event_id, batch FROM custody_event ORDER BY seq DESC, ts_ns DESC, "
            "event_id DESC LIMIT ?",
            (limit,),
        )
        return self._seq_events(list(reversed(rows)))


def life_bounds(db: StateDB, batch: str) -> tuple[int, int]:
    """The times between which `batch`'s tag's raw rows are its own, exclusive: after the last
    event of a batch of the same tag registered before it, before the registration of the
    next one (INT64_MAX: none after it; a tag's batches one after another)."""
    ts_ns = int(db.query("SELECT ts_ns FROM custody_batch WHERE batch = ?", (batch,))[0][0])
    lo, hi = INT64_MIN, INT64_MAX
    for since, reg in db.query(
        "SELECT since_ns, ts_ns FROM custody_batch WHERE batch <> ? "
        "AND epc = (SELECT epc FROM custody_batch WHERE batch = ?)",
        (batch, batch),
    ):
        if int(reg) <= ts_ns:
            lo = max(lo, int(since))
        else:
            hi = min(hi, int(reg))
    return lo, hi


def archived_line(directory: Path, file: str, sha: str) -> dict[str, Any] | None:
    """The archived line (streams/custody/retention.py) whose SHA-256 is `sha` in `file` under
    `directory` (None: no file, or no line of that digest: lost or changed)."""
    path = directory / file
    if not file or not path.exists():
        return None
    with gzip.open(path, "rb") as lines:
        for line in lines:
            line = line.rstrip(b"\n")
            if hashlib.sha256(line).hexdigest() == sha:
                found: dict[str, Any] = orjson.loads(line)
                return found
    return None


def _parts(keys: Iterable[str], size: int = 500) -> Iterator[tuple[list[str], str]]:
    """Keys in parts of at most `size`, each with its placeholders for `IN (…)`."""
    names = sorted(set(keys))
    for start in range(0, len(names), size):
        part = names[start : start + size]
        yield part, ", ".join("?" * len(part))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _event_row(r: Sequence[Any]) -> CustodyEvent:
    return CustodyEvent(
        r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6], _float(r[7]), r[8],
        last_ns=_int(r[9]), reads=int(r[10]), peak_rssi=_float(r[11]), antenna=_int(r[12]),
        clock_offset_ns=int(r[13]), clock_error_ns=int(r[14]), clock_basis=str(r[15]),
    )  # fmt: skip


def _note_row(r: Sequence[Any]) -> Diagnostic:
    return Diagnostic(
        r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6], int(r[7]), int(r[8]), _float(r[9]),
        _int(r[10]), r[11], r[12],
    )  # fmt: skip


def _input_row(r: Sequence[Any]) -> Read | Weighing:
    """A custody_input row (_INPUT_COLUMNS) as the input it was."""
    event_id, kind, epc, site, device, location, ts_ns, net_kg, rssi, antenna = r[:10]
    offset, error, basis = int(r[10]), int(r[11]), str(r[12])  # the clock it was taken by
    if kind == "read":
        return Read(
            event_id=event_id, epc=epc, site=site, device=device, location=location,
            ts_ns=int(ts_ns), rssi=_float(rssi), antenna=_int(antenna),
            clock_offset_ns=offset, clock_error_ns=error, clock_basis=basis,
        )  # fmt: skip
    return Weighing(
        event_id, epc, site, device, location, float(net_kg), int(ts_ns),
        clock_offset_ns=offset, clock_error_ns=error, clock_basis=basis,
    )  # fmt: skip


def _pass_row(r: Sequence[Any]) -> Pass:
    """A custody_pass row (_PASS_COLUMNS after the EPC) as the pass it holds."""
    return Pass(
        str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]), int(r[6]), _float(r[7]),
        _int(r[8]), str(r[10]), int(r[9]), str(r[11]), int(r[12]), int(r[13]), str(r[14]),
    )  # fmt: skip


def _batch_row(r: Sequence[Any]) -> dict[str, Any]:
    return {
        "batch": r[0],
        "epc": r[1],
        "waste_code": r[2],
        "site": r[3],
        "ts_ns": int(r[4]),
        "info": json.loads(r[5]),
        "stage": r[6],
        "verdict": r[7],
        "since_ns": int(r[8]),
        "at_site": r[9],
        "manifest": r[10],
        "violations": json.loads(r[11]),
    }


def _pass_doc(
    first_ns: int, last_ns: int, reads: int, peak_rssi: float | None, antenna: int | None
) -> dict[str, Any]:
    return {
        "first_seen": format_ts(first_ns),
        "last_seen": format_ts(last_ns),
        "reads": reads,
        "peak_rssi": peak_rssi,
        "antenna": antenna,
    }


def _clock_doc(event: CustodyEvent) -> dict[str, Any]:
    """How an event's time was corrected: the offset added to its device's time, the error
    of the result, and how the offset was measured (hazwatch.devices.clock_offset)."""
    return {
        "offset_s": round(event.clock_offset_ns / 1e9, 3),
        "error_s": round(event.clock_error_ns / 1e9, 3),
        "basis": event.clock_basis,
    }


def trace_document(store: CustodyStore, batch: str, now_ns: int) -> dict[str, Any] | None:
    """The object `hazwatch trace BATCH --json` prints, or None when no such batch exists."""
    row = store.batch(batch)
    if row is None:
        return None
    doc: dict[str, Any] = {
        "batch": row["batch"],
        "epc": row["epc"],
        "waste_code": row["waste_code"],
        "stage": row["stage"],
        "verdict": row["verdict"],
        "violations": [
            {
                "rule": v["rule"],
                "event_id": v["event_id"],
                "at": format_ts(int(v["at_ns"])),
                "message": v["message"],
                # the sentence's values (Violation.params); None: stored before they were kept
                "params": v.get("params"),
            }
            for v in row["violations"]
        ],
        "events": [
            {
                "event_id": e.event_id,
                "stage": e.stage,
                "ts": format_ts(e.ts_ns),
                "site": e.site,
                "device": e.device,
                "net_kg": e.net_kg,
                # `ts` is the device's time corrected by its measured clock offset
                "device_ts": format_ts(e.ts_ns - e.clock_offset_ns),
                "clock": _clock_doc(e),
                **(
                    {"pass": _pass_doc(e.ts_ns, e.last_ns, e.reads, e.peak_rssi, e.antenna)}
                    if e.last_ns is not None
                    else {}
                ),
            }
            for e in store.events(batch)
        ],
        # what the readers saw that is no custody event, and why (docs/payloads.md, Passes)
        "diagnostics": [
            {
                "pass_id": d.pass_id,
                "why": d.why,
                "stage": d.stage,
                "site": d.site,
                "device": d.device,
                "pass": _pass_doc(d.ts_ns, d.last_ns, d.reads, d.peak_rssi, d.antenna),
                "note": d.note,
            }
            for d in store.diagnostics(batch)
        ],
        # passes at a reader whose field overlaps another's, held until neither can contest
        # them (docs/rules.md): neither custody nor a diagnostic yet
        "pending": _held_docs(store, row["epc"]),
    }
    if row["verdict"] == "open":
        doc["at_site"] = row["at_site"]
        doc["since"] = format_ts(row["since_ns"])
        doc["open_for_h"] = round(max(0, now_ns - row["since_ns"]) / 3.6e12, 2)
    if row["manifest"]:
        doc["manifest"] = row["manifest"]
    return doc


def _held_docs(store: CustodyStore, epc: str) -> list[dict[str, Any]]:
    """The trace's held passes (`CustodyStore.held`), each with why it is held."""
    held = store.held(epc)
    if not held:
        return []
    partners: dict[tuple[str, str], list[str]] = {}
    for site, reader, other in sorted(RegistryContext(store.db).current.overlapping()):
        partners.setdefault((site, reader), []).append(other)
    docs = []
    for p in held:
        others = partners.get((p.site, p.device))
        if others:
            note = (
                f"held: overlapping reader {', '.join(f'{p.site}/{o}' for o in others)} "
                "within the cross-read window"
            )
        else:
            note = "held: an earlier pass of this batch at an overlapping reader is not settled"
        docs.append(
            {
                "why": "pending",
                "stage": LOCATION_STAGE.get(p.location, ""),
                "site": p.site,
                "device": p.device,
                "overlapping": others or [],
                "pass": _pass_doc(p.first_ns, p.last_ns, p.reads, p.peak_rssi, p.antenna),
                "note": note,
            }
        )
    return docs
