"""The custody tracker's SQL adapter on StateDB: inputs for replay, events, batch verdicts.

Never commit per event: one `save` is one transaction of `executemany` statements.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hazwatch.base.statedb import StateDB
from hazwatch.devices.timeparse import format_ts
from hazwatch.streams.custody.rules import (
    LOCATION_STAGE,
    Changes,
    CustodyEvent,
    Input,
    Judgement,
    ManifestInfo,
    Read,
    Registration,
    Weighing,
)

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
]
_STAGE_LOCATION = {stage: location for location, stage in LOCATION_STAGE.items()}
# Any constant: only custody saves take it (StateDB.migrate takes 4242).
ADVISORY_LOCK = 0x637573746F6479  # "custody"
# BIGINT: a bound past these would make the driver overflow, not match nothing.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_UPSERT_EVENT = (
    "INSERT INTO custody_event (event_id, batch, epc, stage, ts_ns, site, device, net_kg, "
    "manifest, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO UPDATE SET "
    "batch = excluded.batch, stage = excluded.stage, ts_ns = excluded.ts_ns, "
    "net_kg = excluded.net_kg, manifest = excluded.manifest"
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
    "arrived_ns, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_INSERT_MANIFEST = (
    "INSERT INTO custody_manifest (manifest, site, ts_ns, body, seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (manifest) DO NOTHING"
)


def _plain(item: Registration | ManifestInfo) -> dict[str, Any]:
    """A flat dataclass as a dict (dataclasses.asdict deep-copies: too slow here)."""
    return {name: getattr(item, name) for name in item.__slots__}


def violations_json(judgement: Judgement) -> str:
    if not judgement.violations:
        return "[]"
    return json.dumps(
        [
            {"rule": v.rule, "event_id": v.event_id, "at_ns": v.at_ns, "message": v.message}
            for v in judgement.violations
        ],
        ensure_ascii=False,
    )


class CustodyStore:
    """Reads and writes custody state; `save` writes one call's inputs and changes atomically."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
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

    def write(self, inputs: Sequence[Input], changes: Changes, arrived_ns: int, seq: int) -> None:
        """One call's inputs and changes, stamped `seq`; only inside `locked`, seq = clock + 1.

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
                if item.event_id in changes.events:
                    continue  # kept as its custody event; replay reads it from there
                inputs_rows.append(
                    (item.event_id, "read", item.epc, item.site, item.device, item.location,
                     item.ts_ns, None, arrived_ns, seq)
                )  # fmt: skip
            elif isinstance(item, Weighing):
                inputs_rows.append(
                    (item.event_id, "weigh", item.epc, item.site, item.device, item.location,
                     item.ts_ns, item.net_kg, arrived_ns, seq)
                )  # fmt: skip
            elif isinstance(item, ManifestInfo):
                body = json.dumps({**_plain(item), "batches": list(item.batches)})
                manifests.append((item.manifest, item.site, item.ts_ns, body, seq))
            else:
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
             seq)
            for e in changes.events.values()
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
        if event_rows:
            self.db.executemany(_UPSERT_EVENT, event_rows)
        self.db.execute("UPDATE custody_clock SET seq = ? WHERE id = 1", (seq,))

    def inputs_since(self, seq: int) -> list[Input]:
        """The inputs other workers stored after `seq` (read inside `locked`), any order."""
        items: list[Input] = []
        for (info,) in self.db.query(
            "SELECT info FROM custody_batch WHERE seq > ? AND info <> '{}'", (seq,)
        ):
            items.append(Registration(**json.loads(info)))
        for (body,) in self.db.query("SELECT body FROM custody_manifest WHERE seq > ?", (seq,)):
            raw = json.loads(body)
            raw["batches"] = tuple(raw["batches"])
            items.append(ManifestInfo(**raw))
        for event_id, epc, site, device, stage, ts_ns in self.db.query(
            "SELECT event_id, epc, site, device, stage, ts_ns FROM custody_event "
            "WHERE seq > ? AND stage <> 'GENERATED'",
            (seq,),
        ):
            items.append(Read(event_id, epc, site, device, _STAGE_LOCATION[stage], int(ts_ns)))
        for event_id, kind, epc, site, device, location, ts_ns, net_kg in self.db.query(
            "SELECT event_id, kind, epc, site, device, location, ts_ns, net_kg "
            "FROM custody_input WHERE seq > ?",
            (seq,),
        ):
            if kind == "read":
                items.append(Read(event_id, epc, site, device, location, int(ts_ns)))
            else:
                items.append(
                    Weighing(event_id, epc, site, device, location, float(net_kg), int(ts_ns))
                )
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
        location = _STAGE_LOCATION
        for event in self.db.query(
            "SELECT event_id, batch, epc, stage, ts_ns, site, device, net_kg, manifest "
            "FROM custody_event WHERE stage <> 'GENERATED' ORDER BY ts_ns"
        ):
            e = _event_row(event)
            items.append(Read(e.event_id, e.epc, e.site, e.device, location[e.stage], e.ts_ns))
        arrived: dict[str, int] = {}
        rows = self.db.query(
            "SELECT event_id, kind, epc, site, device, location, ts_ns, net_kg, arrived_ns "
            "FROM custody_input ORDER BY arrived_ns, ts_ns"
        )
        for event_id, kind, epc, site, device, location, ts_ns, net_kg, arrived_ns in rows:
            if kind == "read":
                items.append(Read(event_id, epc, site, device, location, int(ts_ns)))
            else:
                items.append(
                    Weighing(event_id, epc, site, device, location, float(net_kg), int(ts_ns))
                )
            arrived[event_id] = int(arrived_ns)
        return items, arrived

    # queries for trace, API and ledger ------------------------------------------------
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
            "SELECT event_id, batch, epc, stage, ts_ns, site, device, net_kg, manifest "
            "FROM custody_event WHERE batch = ? ORDER BY ts_ns, event_id",
            (batch,),
        )
        return [_event_row(r) for r in rows]

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
            "SELECT event_id, batch, epc, stage, ts_ns, site, device, net_kg, manifest "
            "FROM custody_event WHERE ts_ns < ? ORDER BY ts_ns, event_id",
            (max(INT64_MIN, min(end_ns, INT64_MAX)),),
        )
        del start_ns  # callers filter; month-end stock needs everything before the end
        return [_event_row(r) for r in rows]

    def manifests(self) -> dict[str, dict[str, Any]]:
        return {
            m: json.loads(body)
            for m, body in self.db.query("SELECT manifest, body FROM custody_manifest")
        }

    def all_batches(self) -> dict[str, dict[str, Any]]:
        return {row["batch"]: row for row in self.batches(limit=10_000_000)}


def _event_row(r: Sequence[Any]) -> CustodyEvent:
    return CustodyEvent(
        r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6], None if r[7] is None else float(r[7]), r[8]
    )


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
            }
            for e in store.events(batch)
        ],
    }
    if row["verdict"] == "open":
        doc["at_site"] = row["at_site"]
        doc["since"] = format_ts(row["since_ns"])
        doc["open_for_h"] = round(max(0, now_ns - row["since_ns"]) / 3.6e12, 2)
    if row["manifest"]:
        doc["manifest"] = row["manifest"]
    return doc
