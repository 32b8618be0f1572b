"""The alert store and lifecycle in the state database: open → acknowledged → resolved.

Never open a second alert for a (rule, subject) that has one open or acknowledged; count repeats.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable

import orjson

from hazwatch.alerts.model import Alert, AlertSignal, AlertState, Severity
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
]

_COLUMNS = (
    "alert_id, rule, subject, severity, message, site, state, opened_ns, updated_ns, "
    "count, evidence, details, acknowledged_by, resolved_ns"
)


def _is_unique_violation(exc: BaseException) -> bool:
    """sqlite3.IntegrityError or psycopg's UniqueViolation (sqlstate 23505), without psycopg."""
    return isinstance(exc, sqlite3.IntegrityError) or getattr(exc, "sqlstate", None) == "23505"


class AlertError(HazwatchError):
    """An alert operation that cannot be done (unknown id, wrong state)."""


def _row(row: tuple[object, ...]) -> Alert:
    return Alert(
        alert_id=str(row[0]),
        rule=str(row[1]),
        subject=str(row[2]),
        severity=Severity(str(row[3])),
        message=str(row[4]),
        site=str(row[5]),
        state=AlertState(str(row[6])),
        opened_ns=int(str(row[7])),
        updated_ns=int(str(row[8])),
        count=int(str(row[9])),
        evidence=None if row[10] is None else str(row[10]),
        details=orjson.loads(str(row[11])) if row[11] else {},
        acknowledged_by=None if row[12] is None else str(row[12]),
        resolved_ns=None if row[13] is None else int(str(row[13])),
    )


class AlertStore:
    """AlertSink backed by the state store. `listeners` hear every opened/changed alert."""

    def __init__(self, db: StateDB, *, auto_resolve: bool = True) -> None:
        self.db = db
        self.auto_resolve = auto_resolve
        self.listeners: list[Callable[[Alert], None]] = []
        self._lock = threading.Lock()
        db.migrate("alerts", MIGRATIONS)

    def _notify(self, alert: Alert) -> None:
        for listener in self.listeners:
            listener(alert)

    def raise_alert(self, signal: AlertSignal) -> Alert | None:
        """Open an alert, or bump the count of the one already open for (rule, subject).

        Returns the alert when it is new, None when it only repeated an open one.
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
            rows = self.db.query(
                f"SELECT {_COLUMNS} FROM alerts WHERE rule = ? AND subject = ? "
                "AND state IN ('open', 'acknowledged')",
                (signal.rule, signal.subject),
            )
            if rows:
                self.db.execute(
                    "UPDATE alerts SET count = count + 1, updated_ns = ? WHERE alert_id = ?",
                    (max(signal.at_ns, int(rows[0][8])), rows[0][0]),
                )
                return None
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
            )
            self.db.execute(
                f"INSERT INTO alerts ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
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
                    orjson.dumps(alert.details, default=str).decode(),
                    None,
                    None,
                ),
            )
        self._notify(alert)
        return alert

    def clear(self, rule: str, subject: str, at_ns: int) -> None:
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
            self.resolve(str(alert_id), at_ns=at_ns, by="auto")

    def get(self, alert_id: str) -> Alert:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,))
        if not rows:
            raise AlertError(f"no alert with id {alert_id!r}")
        return _row(rows[0])

    def acknowledge(self, alert_id: str, *, at_ns: int, by: str) -> Alert:
        alert = self.get(alert_id)
        if alert.state is not AlertState.OPEN:
            raise AlertError(f"alert {alert_id} is {alert.state.value}, only an open one is acked")
        self.db.execute(
            "UPDATE alerts SET state = 'acknowledged', updated_ns = ?, acknowledged_by = ? "
            "WHERE alert_id = ?",
            (at_ns, by, alert_id),
        )
        alert = self.get(alert_id)
        self._notify(alert)
        return alert

    def resolve(self, alert_id: str, *, at_ns: int, by: str) -> Alert:
        alert = self.get(alert_id)
        if alert.state is AlertState.RESOLVED:
            raise AlertError(f"alert {alert_id} is already resolved")
        self.db.execute(
            "UPDATE alerts SET state = 'resolved', updated_ns = ?, resolved_ns = ?, "
            "acknowledged_by = COALESCE(acknowledged_by, ?) WHERE alert_id = ?",
            (at_ns, at_ns, by, alert_id),
        )
        alert = self.get(alert_id)
        self._notify(alert)
        return alert

    def open_evidence(self) -> set[str]:
        """Evidence names (snapshots, event ids) of the alerts still open or acknowledged."""
        rows = self.db.query(
            "SELECT evidence FROM alerts WHERE state IN ('open', 'acknowledged') "
            "AND evidence IS NOT NULL"
        )
        return {str(r[0]) for r in rows}

    def list(
        self,
        *,
        state: str | None = None,
        rule: str | None = None,
        site: str | None = None,
        subject: str | None = None,
        limit: int = 200,
    ) -> list[Alert]:
        where, params = [], []
        for column, value in (
            ("state", state),
            ("rule", rule),
            ("site", site),
            ("subject", subject),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM alerts {clause} ORDER BY opened_ns DESC LIMIT ?",
            (*params, limit),
        )
        return [_row(r) for r in rows]
