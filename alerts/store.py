"""The alert store and lifecycle in the state database: open → acknowledged → resolved, each
change a row of the alert's history, each change people are told of a row of the outbox.

Never open a second alert for a (rule, subject) that has one open or acknowledged; count repeats
(one history entry per alert, not one per repeat). Never write a change without its history
entry, nor a sent change without its outbox row: both go in the change's own transaction.

Tables (migrated in place, SQLite and PostgreSQL):

- `alerts`: one row per alert, its current state; `last_seq` the seq of its newest history
  entry, `recurs` the alert it recurs.
- `alert_history`: (alert_id, seq) → at_ns, change, actor, comment, details (JSON).
- `alert_outbox`: id (grows in commit order), alert_id, seq, change, at_ns, idempotency_key
  (`{alert_id}:{seq}`, unique), actor, comment, and the alert after the change (JSON).

How ids of the outbox grow in commit order on PostgreSQL: a BIGSERIAL value is taken when a
row is inserted, not when it commits, so a transaction that took 7 and commits after one that
took 8 would make a reader that has seen 8 skip 7 for ever. Every write of this store takes one
transaction-scoped advisory lock first (`OUTBOX_LOCK`), so the next writer takes its id only
after this one committed (SQLite's BEGIN IMMEDIATE does the same for the file). Taken before
any row is touched, in every write (repeats too), it also keeps a deadlock away when a part
raises several alerts inside a transaction of its own (custody on PostgreSQL): every
transaction takes the lock first and alerts' rows after it.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from hazwatch.alerts.model import (
    AUTO,
    SENT_CHANGES,
    Alert,
    AlertSignal,
    AlertState,
    Change,
    HistoryEntry,
    OutboxItem,
    Severity,
)
from hazwatch.base.errors import HazwatchError
from hazwatch.base.statedb import StateDB

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS alerts (
        alert_id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        subject TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        site TEXT NOT NULL,
        state TEXT NOT NULL,
        opened_ns BIGINT NOT NULL,
        updated_ns BIGINT NOT NULL,
        resolved_ns BIGINT,
        count INTEGER NOT NULL DEFAULT 1,
        evidence TEXT,
        details TEXT NOT NULL DEFAULT '{{}}',
        acknowledged_by TEXT
    );
    CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, opened_ns);
    CREATE INDEX IF NOT EXISTS alerts_rule_subject ON alerts (rule, subject, state)
    """,
    # One open (or acknowledged) alert per (rule, subject), kept by the database itself: two
    # workers raising the same alert at the same instant would each find none and insert.
    # Duplicates opened before this index are resolved first, keeping the oldest.
    """
    UPDATE alerts SET state = 'resolved', resolved_ns = updated_ns,
        acknowledged_by = COALESCE(acknowledged_by, 'duplicate')
    WHERE state IN ('open', 'acknowledged') AND EXISTS (
        SELECT 1 FROM alerts AS older
        WHERE older.rule = alerts.rule AND older.subject = alerts.subject
        AND older.state IN ('open', 'acknowledged')
        AND (older.opened_ns < alerts.opened_ns
             OR (older.opened_ns = alerts.opened_ns AND older.alert_id < alerts.alert_id)));
    CREATE UNIQUE INDEX alerts_one_open ON alerts (rule, subject)
        WHERE state IN ('open', 'acknowledged')
    """,
    # History and outbox (issue #12). Alerts stored before them get the history that can be
    # told from their row: opened, and acknowledged or resolved (before this version a
    # resolution wrote its actor into acknowledged_by, `auto` for an auto-resolve), marked
    # {"migrated": true}.
    """
    ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
    ALTER TABLE alerts ADD COLUMN recurs TEXT;
    ALTER TABLE alerts ADD COLUMN escalated_ns BIGINT;
    ALTER TABLE alerts ADD COLUMN last_change TEXT NOT NULL DEFAULT 'opened';
    ALTER TABLE alerts ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX alerts_opened ON alerts (opened_ns);
    CREATE TABLE alert_history (
        alert_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at_ns BIGINT NOT NULL,
        change TEXT NOT NULL,
        actor TEXT NOT NULL,
        comment TEXT,
        details TEXT NOT NULL DEFAULT '{{}}',
        PRIMARY KEY (alert_id, seq)
    );
    CREATE TABLE alert_outbox (
        id {id},
        alert_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        change TEXT NOT NULL,
        at_ns BIGINT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        actor TEXT NOT NULL,
        comment TEXT,
        alert TEXT NOT NULL
    );
    CREATE INDEX alert_outbox_alert ON alert_outbox (alert_id);
    UPDATE alerts SET
        resolved_by = CASE WHEN state = 'resolved' THEN COALESCE(acknowledged_by, 'auto') END,
        last_change = CASE state
            WHEN 'acknowledged' THEN 'acknowledged'
            WHEN 'resolved' THEN CASE WHEN acknowledged_by = 'auto' OR acknowledged_by IS NULL
                THEN 'auto_resolved' ELSE 'resolved' END
            ELSE 'opened' END,
        last_seq = CASE WHEN state IN ('acknowledged', 'resolved') THEN 2 ELSE 1 END;
    UPDATE alerts SET acknowledged_by = NULL WHERE state = 'resolved' AND acknowledged_by = 'auto';
    INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, details)
        SELECT alert_id, 1, opened_ns, 'opened', rule, '{{"migrated": true}}' FROM alerts;
    INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, details)
        SELECT alert_id, 2, updated_ns, 'acknowledged', COALESCE(acknowledged_by, 'unknown'),
            '{{"migrated": true}}'
        FROM alerts WHERE state = 'acknowledged';
    INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, details)
        SELECT alert_id, 2, COALESCE(resolved_ns, updated_ns), last_change, resolved_by,
            '{{"migrated": true}}'
        FROM alerts WHERE state = 'resolved'
    """,
]
# v4 (issue #19, item 5): resolved alerts by when, for pruning them past the ledger's five
# years (`prune_resolved`); the open list is served by alerts_state (state, opened_ns)
INDEXES = (("alerts_resolved", "CREATE INDEX alerts_resolved ON alerts (state, resolved_ns)"),)
MIGRATIONS.append(";".join(create for _, create in INDEXES))

# pg_advisory_xact_lock id taken by every write of this store (module docstring).
OUTBOX_LOCK = 0x616C65727473  # "alerts"
_INT64_MAX = 2**63 - 1

_COLUMNS = (
    "alert_id, rule, subject, severity, message, site, state, opened_ns, updated_ns, "
    "count, evidence, details, acknowledged_by, resolved_ns, resolved_by, recurs, "
    "escalated_ns, last_change, last_seq"
)
_NCOLUMNS = len(_COLUMNS.split(","))
_OUTBOX_COLUMNS = "id, alert_id, seq, change, at_ns, idempotency_key, actor, comment, alert"


def _is_unique_violation(exc: BaseException) -> bool:
    """sqlite3.IntegrityError or psycopg's UniqueViolation (sqlstate 23505), without psycopg."""
    return isinstance(exc, sqlite3.IntegrityError) or getattr(exc, "sqlstate", None) == "23505"


class AlertError(HazwatchError):
    """An alert operation that cannot be done (unknown id, wrong state)."""


class AlertNotFound(AlertError):
    """No alert has this id (the API answers 404)."""


class AlertConflict(AlertError):
    """The alert is in a state this change cannot follow, e.g. acknowledging a resolved alert
    (the API answers 409). `state` is the alert's state now."""

    def __init__(self, message: str, state: AlertState) -> None:
        super().__init__(message)
        self.state = state


def _int(value: object) -> int:
    return int(str(value))


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _row(row: Sequence[object]) -> Alert:
    return Alert(
        alert_id=str(row[0]),
        rule=str(row[1]),
        subject=str(row[2]),
        severity=Severity(str(row[3])),
        message=str(row[4]),
        site=str(row[5]),
        state=AlertState(str(row[6])),
        opened_ns=_int(row[7]),
        updated_ns=_int(row[8]),
        count=_int(row[9]),
        evidence=_optional_str(row[10]),
        details=orjson.loads(str(row[11])) if row[11] else {},
        acknowledged_by=_optional_str(row[12]),
        resolved_ns=None if row[13] is None else _int(row[13]),
        resolved_by=_optional_str(row[14]),
        recurs=_optional_str(row[15]),
        escalated_ns=None if row[16] is None else _int(row[16]),
        last_change=Change(str(row[17])),
    )


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def _bounded(value: int) -> int:
    """An instant or a count as a BIGINT can hold it (SQLite refuses a larger int)."""
    return max(-_INT64_MAX, min(_INT64_MAX, value))


class AlertStore:
    """AlertSink backed by the state store. `listeners` hear every alert after each change
    people are told of (opened, acknowledged, resolved, auto-resolved, escalated), once it
    is committed; never of a repeat or a notification.

    Reads: `get`, `list` and `count` (the same filters), `history`, `outbox_after`,
    `unacknowledged`, `open_evidence`. Changes: `raise_alert` and `clear` (the rules'),
    `acknowledge`, `resolve` (people's), `escalate`, `record_notified`, `record_suppressed`
    (the notifier's).
    """

    def __init__(self, db: StateDB, *, auto_resolve: bool = True) -> None:
        self.db = db
        self.auto_resolve = auto_resolve
        self.listeners: list[Callable[[Alert], None]] = []
        self._lock = threading.Lock()
        db.migrate("alerts", MIGRATIONS)

    def _notify(self, alert: Alert) -> None:
        for listener in self.listeners:
            listener(alert)

    # -- writing, inside a transaction of the caller's method

    def _take_outbox_lock(self) -> None:
        if self.db.kind == "postgres":
            self.db.execute("SELECT pg_advisory_xact_lock(?)", (OUTBOX_LOCK,))

    def _select_with_seq(self, alert_id: str) -> tuple[Alert, int] | None:
        """The alert and the seq of its newest history entry."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,))
        return (_row(rows[0]), _int(rows[0][_NCOLUMNS - 1])) if rows else None

    def _select(self, alert_id: str) -> Alert | None:
        found = self._select_with_seq(alert_id)
        return None if found is None else found[0]

    def _next_seq(self, alert_id: str) -> int:
        """Counts the alert's history on; the row is this transaction's from here to commit."""
        self.db.execute("UPDATE alerts SET last_seq = last_seq + 1 WHERE alert_id = ?", (alert_id,))
        rows = self.db.query("SELECT last_seq FROM alerts WHERE alert_id = ?", (alert_id,))
        return _int(rows[0][0])

    def _record(
        self,
        alert: Alert,
        seq: int,
        at_ns: int,
        change: Change,
        actor: str,
        comment: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        """The history entry of a change, and its outbox row when it is one people are told of."""
        self.db.execute(
            "INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, comment, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alert.alert_id, seq, at_ns, change.value, actor, comment, _json(details or {})),
        )
        if change in SENT_CHANGES:
            self.db.execute(
                "INSERT INTO alert_outbox (alert_id, seq, change, at_ns, idempotency_key, actor, "
                "comment, alert) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.alert_id,
                    seq,
                    change.value,
                    at_ns,
                    f"{alert.alert_id}:{seq}",
                    actor,
                    comment,
                    _json(alert.to_document()),
                ),
            )

    def _refuse(self, alert_id: str, doing: str, allowed: str) -> AlertError:
        """Why `doing` did not apply: no such alert (404), or its state (409)."""
        alert = self._select(alert_id)
        if alert is None:
            return AlertNotFound(f"no alert with id {alert_id!r}")
        return AlertConflict(
            f"alert {alert_id} is {alert.state.value}: only {allowed} alert can be {doing}",
            alert.state,
        )

    def _transition(
        self,
        alert_id: str,
        at_ns: int,
        change: Change,
        actor: str,
        comment: str | None,
        *,
        sets: str,
        params: tuple[object, ...],
        from_states: tuple[AlertState, ...],
        doing: str,
        allowed: str,
        details: dict[str, object] | None = None,
    ) -> Alert:
        """UPDATE the alert `sets` if its state is one of `from_states`, with its history
        entry and outbox row, in one transaction; then tell the listeners."""
        states = ", ".join(f"'{s.value}'" for s in from_states)
        with self._lock, self.db.transaction():
            self._take_outbox_lock()
            cur = self.db.execute(
                f"UPDATE alerts SET {sets}, last_change = ?, last_seq = last_seq + 1 "
                f"WHERE alert_id = ? AND state IN ({states})",
                (*params, change.value, alert_id),
            )
            if cur.rowcount != 1:
                raise self._refuse(alert_id, doing, allowed)
            found = self._select_with_seq(alert_id)
            assert found is not None  # the UPDATE above found it, in this transaction
            alert, seq = found
            self._record(alert, seq, at_ns, change, actor, comment, details)
        self._notify(alert)
        return alert

    # -- the rules' side (AlertSink)

    def raise_alert(self, signal: AlertSignal) -> Alert | None:
        """Open an alert, or count a repeat of the one already open for (rule, subject).

        Returns the alert when it is new, None when it only repeated an open one. A new
        alert whose (rule, subject) had one resolved before says so: `recurs` is the newest
        resolved one's id (also in its `opened` history entry).
        """
        try:
            return self._raise(signal)
        except Exception as exc:
            if not _is_unique_violation(exc):
                raise
            # another worker opened it between our look and our insert: now it is a repeat
            return self._raise(signal)

    def _raise(self, signal: AlertSignal) -> Alert | None:
        with self._lock, self.db.transaction():
            self._take_outbox_lock()
            rows = self.db.query(
                "SELECT alert_id, updated_ns, count FROM alerts WHERE rule = ? AND subject = ? "
                "AND state IN ('open', 'acknowledged')",
                (signal.rule, signal.subject),
            )
            if rows:
                self._repeat(str(rows[0][0]), _int(rows[0][1]), _int(rows[0][2]) + 1, signal)
                return None
            before = self.db.query(
                "SELECT alert_id FROM alerts WHERE rule = ? AND subject = ? AND state = 'resolved' "
                "ORDER BY COALESCE(resolved_ns, updated_ns) DESC, opened_ns DESC LIMIT 1",
                (signal.rule, signal.subject),
            )
            alert = Alert(
                alert_id=uuid.uuid4().hex[:16],
                rule=signal.rule,
                subject=signal.subject,
                severity=signal.severity,
                message=signal.message,
                site=signal.site,
                state=AlertState.OPEN,
                opened_ns=signal.at_ns,
                updated_ns=signal.at_ns,
                evidence=signal.evidence,
                details=dict(signal.details),
                recurs=str(before[0][0]) if before else None,
            )
            self.db.execute(
                f"INSERT INTO alerts ({_COLUMNS}) VALUES ({', '.join('?' * _NCOLUMNS)})",
                (
                    alert.alert_id,
                    alert.rule,
                    alert.subject,
                    alert.severity.value,
                    alert.message,
                    alert.site,
                    alert.state.value,
                    alert.opened_ns,
                    alert.updated_ns,
                    1,
                    alert.evidence,
                    _json(alert.details),
                    None,
                    None,
                    None,
                    alert.recurs,
                    None,
                    Change.OPENED.value,
                    1,
                ),
            )
            details: dict[str, object] = {"recurs": alert.recurs} if alert.recurs else {}
            self._record(alert, 1, signal.at_ns, Change.OPENED, signal.rule, None, details)
        self._notify(alert)
        return alert

    def _repeat(self, alert_id: str, updated_ns: int, count: int, signal: AlertSignal) -> None:
        """Count the repeat on the alert and on its one `repeated` entry (made at the first)."""
        self.db.execute(
            "UPDATE alerts SET count = ?, updated_ns = ? WHERE alert_id = ?",
            (count, max(signal.at_ns, updated_ns), alert_id),
        )
        details = _json({"count": count, "last_ns": signal.at_ns})
        cur = self.db.execute(
            "UPDATE alert_history SET details = ? WHERE alert_id = ? AND change = 'repeated'",
            (details, alert_id),
        )
        if cur.rowcount == 0:
            seq = self._next_seq(alert_id)
            self.db.execute(
                "INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, details) "
                "VALUES (?, ?, ?, 'repeated', ?, ?)",
                (alert_id, seq, signal.at_ns, signal.rule, details),
            )

    def clear(self, rule: str, subject: str, at_ns: int) -> None:
        """The condition is over: auto-resolve the alert open for (rule, subject), if any
        (unless this store was built with auto_resolve=False)."""
        if not self.auto_resolve:
            return
        # Always asked of the store, never of a cache: another worker sharing it may have
        # opened this alert a moment ago (clears are rare: they follow state changes only).
        rows = self.db.query(
            "SELECT alert_id FROM alerts WHERE rule = ? AND subject = ? "
            "AND state IN ('open', 'acknowledged')",
            (rule, subject),
        )
        for (alert_id,) in rows:
            try:
                self.resolve(str(alert_id), at_ns=at_ns, by=AUTO)
            except AlertConflict:
                pass  # a person resolved it between our look and now: nothing left to do

    # -- people's side

    def get(self, alert_id: str) -> Alert:
        """The alert, or AlertNotFound."""
        alert = self._select(alert_id)
        if alert is None:
            raise AlertNotFound(f"no alert with id {alert_id!r}")
        return alert

    def acknowledge(
        self, alert_id: str, *, at_ns: int, by: str, comment: str | None = None
    ) -> Alert:
        """An open alert taken by `by`: history `acknowledged` and an outbox row.

        AlertNotFound for an unknown id, AlertConflict for an alert acknowledged or resolved.
        """
        return self._transition(
            alert_id, at_ns, Change.ACKNOWLEDGED, by, comment,
            sets="state = 'acknowledged', updated_ns = ?, acknowledged_by = ?",
            params=(at_ns, by),
            from_states=(AlertState.OPEN,),
            doing="acknowledged",
            allowed="an open",
        )  # fmt: skip

    def resolve(self, alert_id: str, *, at_ns: int, by: str, comment: str | None = None) -> Alert:
        """An open or acknowledged alert closed: by a person (history `resolved`), or by the
        rule when `by` is `auto` (`auto_resolved`); an outbox row either way.

        AlertNotFound for an unknown id, AlertConflict for an alert already resolved.
        """
        change = Change.AUTO_RESOLVED if by == AUTO else Change.RESOLVED
        return self._transition(
            alert_id, at_ns, change, by, comment,
            sets="state = 'resolved', updated_ns = ?, resolved_ns = ?, resolved_by = ?",
            params=(at_ns, at_ns, by),
            from_states=(AlertState.OPEN, AlertState.ACKNOWLEDGED),
            doing="resolved",
            allowed="an open or acknowledged",
        )  # fmt: skip

    # -- the notifier's side (issue #12, item 3 and 4)

    def escalate(self, alert_id: str, at_ns: int, *, to: str, comment: str | None = None) -> Alert:
        """An open alert nobody acknowledged in time, sent to the escalation target(s) `to`:
        history `escalated` (actor `auto`, details {"to": to}), `escalated_ns` set, and an
        outbox row whose change is `escalated`. May be called again (a further level).

        AlertNotFound for an unknown id; AlertConflict for an alert acknowledged or resolved
        (acknowledged alerts stop escalating).
        """
        return self._transition(
            alert_id, at_ns, Change.ESCALATED, AUTO, comment,
            sets="updated_ns = ?, escalated_ns = ?",
            params=(at_ns, at_ns),
            from_states=(AlertState.OPEN,),
            doing="escalated",
            allowed="an open",
            details={"to": to},
        )  # fmt: skip

    def record_notified(self, alert_id: str, at_ns: int, *, target: str, key: str) -> bool:
        """A delivery of the outbox row `key` (its idempotency key) reached `target`: history
        `notified` (actor `auto`, details {"target", "key"}); no outbox row, no listener,
        the alert's state and updated_ns unchanged. Recording the same (target, key) again
        does nothing: returns False then, True when it wrote the entry.

        Any state is fine (a resolution is notified after the alert is resolved);
        AlertNotFound for an unknown id.
        """
        with self._lock, self.db.transaction():
            self._take_outbox_lock()  # every write serialised: the look below stays true
            if self._select(alert_id) is None:
                raise AlertNotFound(f"no alert with id {alert_id!r}")
            for (details,) in self.db.query(
                "SELECT details FROM alert_history WHERE alert_id = ? AND change = 'notified'",
                (alert_id,),
            ):
                done = orjson.loads(str(details))
                if done.get("target") == target and done.get("key") == key:
                    return False
            seq = self._next_seq(alert_id)
            self.db.execute(
                "INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, details) "
                "VALUES (?, ?, ?, 'notified', ?, ?)",
                (alert_id, seq, at_ns, AUTO, _json({"target": target, "key": key})),
            )
        return True

    def record_suppressed(
        self, alert_id: str, at_ns: int, *, comment: str, details: dict[str, object]
    ) -> bool:
        """The alert resolved within its pending period, so none of its changes is sent:
        history `suppressed` (actor `auto`, the comment and details given); no outbox row, no
        listener, the alert's state unchanged. Once per alert: False when it is written
        already (a sender that crashed after writing it and decides again), True when written.

        AlertNotFound for an unknown id.
        """
        with self._lock, self.db.transaction():
            self._take_outbox_lock()
            if self._select(alert_id) is None:
                raise AlertNotFound(f"no alert with id {alert_id!r}")
            done = self.db.query(
                "SELECT 1 FROM alert_history WHERE alert_id = ? AND change = ?",
                (alert_id, Change.SUPPRESSED.value),
            )
            if done:
                return False
            seq = self._next_seq(alert_id)
            self.db.execute(
                "INSERT INTO alert_history (alert_id, seq, at_ns, change, actor, comment, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (alert_id, seq, at_ns, Change.SUPPRESSED.value, AUTO, comment, _json(details)),
            )
        return True

    def outbox_after(self, last_id: int, limit: int = 100) -> list[OutboxItem]:
        """Outbox rows with an id above `last_id`, oldest first, at most `limit`.

        Ids grow in commit order (module docstring), so a reader that keeps the last id it
        handled and asks again from it misses nothing and sees nothing twice. Rows are never
        deleted here; `key` is the idempotency key of a delivery (unique per alert and change).
        """
        rows = self.db.query(
            f"SELECT {_OUTBOX_COLUMNS} FROM alert_outbox WHERE id > ? ORDER BY id LIMIT ?",
            (_bounded(last_id), max(0, _bounded(limit))),
        )
        return [
            OutboxItem(
                id=_int(r[0]),
                alert_id=str(r[1]),
                seq=_int(r[2]),
                change=Change(str(r[3])),
                at_ns=_int(r[4]),
                key=str(r[5]),
                actor=str(r[6]),
                comment=_optional_str(r[7]),
                alert=Alert.from_document(orjson.loads(str(r[8]))),
            )
            for r in rows
        ]

    def outbox_head(self) -> int:
        """The newest outbox id (0 when empty): where a new reader starts to skip the past."""
        rows = self.db.query("SELECT MAX(id) FROM alert_outbox")
        return 0 if not rows or rows[0][0] is None else _int(rows[0][0])

    def unacknowledged(
        self,
        severity: Severity | str,
        opened_before_ns: int,
        *,
        rule: str | None = None,
        include_escalated: bool = False,
    ) -> list[Alert]:
        """Open (not acknowledged, not resolved) alerts of exactly `severity` opened before
        `opened_before_ns`, oldest first: the candidates for escalation. Alerts escalated
        already are left out unless `include_escalated` (then `escalated_ns` says when);
        `rule` narrows to one rule."""
        where = ["state = 'open'", "severity = ?", "opened_ns < ?"]
        params: list[object] = [Severity(severity).value, _bounded(opened_before_ns)]
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if not include_escalated:
            where.append("escalated_ns IS NULL")
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)} ORDER BY opened_ns",
            params,
        )
        return [_row(r) for r in rows]

    def prune_resolved(self, before_ns: int, *, dry_run: bool = False) -> int:
        """Delete the alerts resolved before `before_ns` and their history (the outbox rows
        stay: the sender's cursor reads them); returns how many alerts (would) go."""
        before = _bounded(before_ns)
        where = "FROM alerts WHERE state = 'resolved' AND resolved_ns < ?"
        if dry_run:
            return _int(self.db.query(f"SELECT COUNT(*) {where}", (before,))[0][0])
        with self.db.transaction():
            self._take_outbox_lock()
            self.db.execute(
                f"DELETE FROM alert_history WHERE alert_id IN (SELECT alert_id {where})",
                (before,),
            )
            cursor = self.db.execute(f"DELETE {where}", (before,))
            return max(int(cursor.rowcount), 0)

    # -- reads

    def history(self, alert_id: str) -> list[HistoryEntry]:
        """The alert's changes in order (seq 1 is its opening); [] for an unknown id."""
        rows = self.db.query(
            "SELECT alert_id, seq, at_ns, change, actor, comment, details FROM alert_history "
            "WHERE alert_id = ? ORDER BY seq",
            (alert_id,),
        )
        return [
            HistoryEntry(
                alert_id=str(r[0]),
                seq=_int(r[1]),
                at_ns=_int(r[2]),
                change=Change(str(r[3])),
                actor=str(r[4]),
                comment=_optional_str(r[5]),
                details=orjson.loads(str(r[6])) if r[6] else {},
            )
            for r in rows
        ]

    def open_evidence(self) -> set[str]:
        """Evidence names (snapshots, event ids) of the alerts still open or acknowledged."""
        rows = self.db.query(
            "SELECT evidence FROM alerts WHERE state IN ('open', 'acknowledged') "
            "AND evidence IS NOT NULL"
        )
        return {str(r[0]) for r in rows}

    @staticmethod
    def _where(
        state: str | None,
        rule: str | None,
        site: str | None,
        subject: str | None,
        severity: str | None,
        since_ns: int | None,
        until_ns: int | None,
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("state", state),
            ("rule", rule),
            ("site", site),
            ("subject", subject),
            ("severity", severity),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if since_ns is not None:
            where.append("opened_ns >= ?")
            params.append(_bounded(since_ns))
        if until_ns is not None:
            where.append("opened_ns < ?")
            params.append(_bounded(until_ns))
        return (f"WHERE {' AND '.join(where)}" if where else ""), params

    def list(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        site: str | None = None,
        subject: str | None = None,
        severity: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[Alert]:
        """Alerts newest first (by opened_ns), opened in [since_ns, until_ns) when given."""
        clause, params = self._where(state, rule, site, subject, severity, since_ns, until_ns)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM alerts {clause} "
            "ORDER BY opened_ns DESC, alert_id DESC LIMIT ? OFFSET ?",
            (*params, max(0, _bounded(limit)), max(0, _bounded(offset))),
        )
        return [_row(r) for r in rows]

    def count(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        site: str | None = None,
        subject: str | None = None,
        severity: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> int:
        """How many alerts `list` with the same filters would give without limit and offset."""
        clause, params = self._where(state, rule, site, subject, severity, since_ns, until_ns)
        return _int(self.db.query(f"SELECT COUNT(*) FROM alerts {clause}", params)[0][0])
