"""Closed batches' raw inputs archived and pruned, and a pruned batch verified (issue #19 item 5).

What custody keeps of a batch is its record (custody_batch: registration, stage, verdict,
violations; custody_event: one row per stage entered, with its pass; custody_diagnostic; the
manifest) and the raw inputs it was judged from: its tag's passes (custody_pass, the reads
merged) and weighings (custody_input; reads too before store v5). The record is the ledger's
and the trace's and stays; the raw inputs are only what a late input's load-back judges the
batch again from. Once a batch is closed (complete, or disposed and broken) for `keep_ns`,
its EPC's raw rows up to its last event go to a gzip JSON-lines file (one line per EPC, its
SHA-256 kept) and out of the database; custody_archive keeps, per batch, the digests of its
record and of that line. A late input for the tag's newest batch loads it back from that
line (CustodyStore.evicted_inputs: its rows restored, its custody_archive row gone, archived
again by a later prune), so that its verdict is what it would be unpruned; `verify` checks
that nothing of the kept record changed, that the archived line is the one archived, and that
judging the batch again from it gives the stored verdict and the same event ids (the hashes
of batch, stage and nth).

Never prune a batch whose manifest lists one that is not pruned with it, nor an EPC's rows
past the registration of a batch of it that stays.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hazwatch.base.statedb import StateDB
from hazwatch.streams.custody.rules import Input, ManifestInfo, Registration, SeenPass, Tracker
from hazwatch.streams.custody.store import (
    _EVENT_COLUMNS,
    _INPUT_COLUMNS,
    _NOTE_COLUMNS,
    _PASS_COLUMNS,
    INT64_MIN,
    CustodyStore,
    _input_row,
    _parts,
    _pass_row,
    life_bounds,
)
from hazwatch.streams.custody.store import archived_line as _archived_line

PER_RUN = 2000  # batches looked at per transaction: a run never holds the write lock long
# a verdict another batch's stay can break (the store's capacity): judged again alone, the
# archive cannot show it, so verify compares the batch's other violations
CAPACITY = "storage_over_capacity"


@dataclass(slots=True)
class PruneReport:
    batches: int = 0  # closed batches whose raw inputs went (or would go: dry run)
    inputs: int = 0  # custody_input rows
    passes: int = 0  # custody_pass rows
    skipped: int = 0  # closed and old, but held back (a manifest or an EPC not all prunable)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Verified:
    batch: str
    record_ok: bool  # the record as kept hashes as it did when pruned
    archive_ok: bool | None  # the archived line is there and hashes as kept (None: none kept)
    verdict_ok: bool | None  # judged again from the archive: same verdict, stage, event ids
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.record_ok and self.archive_ok is not False and self.verdict_ok is not False


def _digest(value: object) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def record_digest(db: StateDB, batch: str) -> str:
    """SHA-256 of what custody keeps of `batch` (its row, events, diagnostics), canonical."""
    row = db.query(
        "SELECT batch, epc, waste_code, site, ts_ns, info, stage, verdict, since_ns, at_site, "
        "manifest, violations FROM custody_batch WHERE batch = ?",
        (batch,),
    )
    events = db.query(
        f"SELECT {_EVENT_COLUMNS} FROM custody_event WHERE batch = ? ORDER BY event_id", (batch,)
    )
    notes = db.query(
        f"SELECT {_NOTE_COLUMNS} FROM custody_diagnostic WHERE batch = ? ORDER BY pass_id",
        (batch,),
    )
    return _digest([[list(r) for r in rows] for rows in (row, events, notes)])


def _closed_old(
    db: StateDB, before_ns: int, after: tuple[int, str], limit: int
) -> list[tuple[str, str, str | None, int]]:
    """(batch, epc, manifest, since) of batches closed before `before_ns` not archived yet,
    after (since, batch) `after` in that order (custody_batch_moved)."""
    rows = db.query(
        "SELECT b.batch, b.epc, b.manifest, b.since_ns FROM custody_batch b "
        "WHERE b.since_ns < ? AND (b.since_ns > ? OR (b.since_ns = ? AND b.batch > ?)) "
        "AND (b.verdict = 'complete' OR (b.verdict = 'broken' AND b.stage = 'DISPOSED')) "
        "AND NOT EXISTS (SELECT 1 FROM custody_archive a WHERE a.batch = b.batch) "
        "ORDER BY b.since_ns, b.batch LIMIT ?",
        (before_ns, after[0], after[0], after[1], limit),
    )
    return [(str(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]


def _prunable(
    db: StateDB, candidates: Sequence[tuple[str, str, str | None, int]], skipped: set[str]
) -> dict[str, tuple[int, list[str]]]:
    """EPC → (rows up to this time go, its batches archived) of the candidates that may go."""
    names = {b for b, _, _, _ in candidates}
    # a manifest's batches go together (the tracker judges them together: manifest_split)
    manifests = {m for _, _, m, _ in candidates if m}
    for part, marks in _parts(manifests):
        for (body,) in db.query(
            f"SELECT body FROM custody_manifest WHERE manifest IN ({marks})", part
        ):
            listed = set(json.loads(body).get("batches", []))
            if not listed <= names:
                skipped.update(listed & names)
    by_epc: dict[str, list[tuple[str, int]]] = {}
    for batch, epc, _, since in candidates:
        if batch not in skipped:
            by_epc.setdefault(epc, []).append((batch, since))
    out: dict[str, tuple[int, list[str]]] = {}
    for part, marks in _parts(by_epc):
        # the EPC's other batches, not archived and not going now: its rows from the
        # registration of the first of them on are theirs as well
        others: dict[str, int] = {}
        for epc, batch, ts_ns in db.query(
            f"SELECT b.epc, b.batch, b.ts_ns FROM custody_batch b WHERE b.epc IN ({marks}) "
            "AND NOT EXISTS (SELECT 1 FROM custody_archive a WHERE a.batch = b.batch)",
            part,
        ):
            if str(batch) not in names or str(batch) in skipped:
                others[str(epc)] = min(others.get(str(epc), int(ts_ns)), int(ts_ns))
        for epc in part:
            going = by_epc[epc]
            upto = max(since for _, since in going)
            if epc in others and others[epc] <= upto:
                skipped.update(b for b, _ in going)  # lives of one tag overlap: keep all
                continue
            out[epc] = (upto, [b for b, _ in going])
    return out


def _archive_path(directory: Path, archived_ns: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = archived_ns // 1_000_000_000
    n = 0
    while (path := directory / f"custody-{stamp}-{n}.jsonl.gz").exists():
        n += 1
    return path


def prune_raw(
    store: CustodyStore,
    before_ns: int,
    now_ns: int,
    archive_dir: Path | None,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """Archive (to `archive_dir`; None: only their digests are kept) and delete the raw
    inputs of the batches closed before `before_ns`, PER_RUN batches a transaction under the
    custody lock (no worker saves meanwhile). `dry_run`: count only."""
    db = store.db
    report = PruneReport()
    if store.rederive_pending():
        return report  # a store of before v3 derives every batch again from its inputs first
    skipped: set[str] = set()
    after = (INT64_MIN, "")
    while True:
        with store.locked():
            candidates = _closed_old(db, before_ns, after, PER_RUN)
            if not candidates:
                report.skipped = len(skipped)
                return report
            after = (candidates[-1][3], candidates[-1][0])
            groups = _prunable(db, candidates, skipped)
            lines: list[bytes] = []
            rows: list[tuple[Any, ...]] = []
            deletes: list[tuple[str, int]] = []
            for epc, (upto, batches) in sorted(groups.items()):
                inputs = [
                    list(r)
                    for r in db.query(
                        f"SELECT {_INPUT_COLUMNS}, arrived_ns FROM custody_input "
                        "WHERE epc = ? AND ts_ns <= ? ORDER BY ts_ns, event_id",
                        (epc, upto),
                    )
                ]
                passes = [
                    list(r)
                    for r in db.query(
                        f"SELECT {_PASS_COLUMNS} FROM custody_pass WHERE epc = ? "
                        "AND first_ns <= ? ORDER BY first_ns, site, device",
                        (epc, upto),
                    )
                ]
                report.batches += len(batches)
                report.inputs += len(inputs)
                report.passes += len(passes)
                line = orjson.dumps(
                    {"epc": epc, "upto_ns": upto, "batches": sorted(batches),
                     "inputs": inputs, "passes": passes},
                    option=orjson.OPT_SORT_KEYS,
                )  # fmt: skip
                sha = hashlib.sha256(line).hexdigest()
                lines.append(line)
                deletes.append((epc, upto))
                for batch in batches:
                    rows.append(
                        (batch, epc, upto, now_ns, sha, record_digest(db, batch),
                         len(inputs), len(passes))
                    )  # fmt: skip
            if dry_run or not rows:
                continue
            name = ""
            if archive_dir is not None:
                path = _archive_path(archive_dir, now_ns)
                with gzip.open(path, "wb") as out:
                    for line in lines:
                        out.write(line + b"\n")
                    out.flush()
                    os.fsync(out.fileobj.fileno())  # type: ignore[union-attr]
                name = path.name
                report.files.append(str(path))
            db.executemany(
                "INSERT INTO custody_archive (batch, epc, upto_ns, archived_ns, file, "
                "inputs_sha256, record_sha256, inputs, passes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(b, e, u, a, name, s, r, i, p) for b, e, u, a, s, r, i, p in rows],
            )
            db.executemany("DELETE FROM custody_input WHERE epc = ? AND ts_ns <= ?", deletes)
            db.executemany("DELETE FROM custody_pass WHERE epc = ? AND first_ns <= ?", deletes)


def _life(db: StateDB, batch: str, line: dict[str, Any]) -> list[Input]:
    """`batch`'s registration and the archived rows of its tag within its life (`life_bounds`:
    after the last event of a batch of the same tag registered before it, before the
    registration of the next one; a tag's batches one after another: each judged from its
    own reads)."""
    (info,) = db.query("SELECT info FROM custody_batch WHERE batch = ?", (batch,))[0]
    lo, hi = life_bounds(db, batch)
    items: list[Input] = [Registration(**json.loads(info))] if info != "{}" else []
    items.extend(_input_row(r[:-1]) for r in line["inputs"] if lo < int(r[6]) < hi)
    items.extend(SeenPass(r[0], _pass_row(r)) for r in line["passes"] if lo < int(r[4]) < hi)
    return items


def verify(
    store: CustodyStore,
    batch: str,
    archive_dir: Path | None,
    tracker: Callable[[], Tracker],
) -> Verified | None:
    """Check an archived batch (None: not archived): its record hashes as when it was
    pruned; its archived line is there with the digest kept; and a `tracker()` fed the
    registrations and manifests of the line's batches with the line's inputs and passes
    judges it as stored (verdict, stage, event ids). The tracker's storage capacity is the
    line's batches' only: a verdict broken by a full store (storage_limit_kg) is compared
    by its other violations."""
    db = store.db
    rows = db.query(
        "SELECT file, inputs_sha256, record_sha256, upto_ns FROM custody_archive WHERE batch = ?",
        (batch,),
    )
    if not rows:
        return None
    file, sha, record_sha, upto = str(rows[0][0]), str(rows[0][1]), str(rows[0][2]), rows[0][3]
    record_ok = record_digest(db, batch) == record_sha
    if archive_dir is None or not file:
        return Verified(batch, record_ok, None, None, "no archive kept: digests only")
    line = _archived_line(archive_dir, file, sha)
    if line is None:
        return Verified(batch, record_ok, False, None, f"no line of that digest in {file}")
    items = _life(db, batch, line)
    manifest = db.query("SELECT manifest FROM custody_batch WHERE batch = ?", (batch,))[0][0]
    if manifest:
        body = db.query("SELECT body FROM custody_manifest WHERE manifest = ?", (manifest,))
        if body:
            raw = json.loads(body[0][0])
            raw["batches"] = tuple(raw["batches"])
            items.append(ManifestInfo(**raw))
            for mate in raw["batches"]:  # judged together (manifest_split): their lives too
                if mate == batch:
                    continue
                kept = db.query(
                    "SELECT file, inputs_sha256 FROM custody_archive WHERE batch = ?", (mate,)
                )
                other = (
                    _archived_line(archive_dir, str(kept[0][0]), str(kept[0][1])) if kept else None
                )
                if other is not None:
                    items.extend(_life(db, mate, other))
    fresh = tracker()
    fresh.apply(items, int(upto) + 1)
    judged = fresh.judgement(batch)
    stored = store.batch(batch)
    assert stored is not None
    if judged is None:
        return Verified(batch, record_ok, True, False, "the archive judges no such batch")
    kept_ids = sorted(e.event_id for e in store.events(batch))
    again_ids = sorted(e.event_id for e in judged.events)
    kept_rules = sorted(v["rule"] for v in stored["violations"] if v["rule"] != CAPACITY)
    again_rules = sorted(v.rule for v in judged.violations if v.rule != CAPACITY)
    by_capacity = any(v["rule"] == CAPACITY for v in stored["violations"])
    same = (
        kept_ids == again_ids
        and judged.stage == stored["stage"]
        and kept_rules == again_rules
        and (judged.verdict == stored["verdict"] or by_capacity)
    )
    detail = (
        ""
        if same
        else (
            f"stored {stored['verdict']}/{stored['stage']} {kept_ids} {kept_rules}; judged again "
            f"{judged.verdict}/{judged.stage} {again_ids} {again_rules}"
        )
    )
    return Verified(batch, record_ok, True, same, detail)
