"""The delivery records of notifications in the state database: per outbox entry and target,
its state, attempts, next attempt, last error and when it was delivered; the digests that
carried changes of a storm; the fan-out cursor over the outbox; the changes held in their
rule's pending period (state `held`, then `pending`, or `suppressed` when the alert resolved
meanwhile); the sends of the last minutes (the per-minute limits survive a restart); and the
sender's lease (one sender among workers).

Never send here: the sender (hazwatch.notify.sender) decides and sends, this only records.
A delivery is claimed by compare-and-set on its next attempt time, which it moves past the
request's timeout: two senders never send the same attempt, and an attempt cut short by a
crash is tried again once that lease ends (the receiver sees its idempotency key again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hazwatch.alerts.messages import DigestItem
from hazwatch.alerts.model import Severity
from hazwatch.base.statedb import StateDB

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS alert_delivery (
        outbox_id BIGINT NOT NULL,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ns BIGINT NOT NULL,
        last_attempt_ns BIGINT,
        last_error TEXT,
        delivered_ns BIGINT,
        digest_key TEXT,
        idempotency_key TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        change TEXT NOT NULL,
        severity TEXT NOT NULL,
        rule TEXT NOT NULL,
        site TEXT NOT NULL,
        at_ns BIGINT NOT NULL,
        PRIMARY KEY (outbox_id, target)
    );
    CREATE INDEX IF NOT EXISTS alert_delivery_due
        ON alert_delivery (target, state, next_attempt_ns);
    CREATE INDEX IF NOT EXISTS alert_delivery_alert ON alert_delivery (alert_id);
    CREATE INDEX IF NOT EXISTS alert_delivery_digest ON alert_delivery (digest_key);
    CREATE TABLE IF NOT EXISTS alert_digest (
        digest_key TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        state TEXT NOT NULL,
        items INTEGER NOT NULL,
        created_ns BIGINT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ns BIGINT NOT NULL,
        last_attempt_ns BIGINT,
        last_error TEXT,
        delivered_ns BIGINT
    );
    CREATE INDEX IF NOT EXISTS alert_digest_due ON alert_digest (target, state, next_attempt_ns);
    CREATE TABLE IF NOT EXISTS alert_delivery_cursor (
        name TEXT PRIMARY KEY,
        outbox_id BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS alert_send_log (target TEXT NOT NULL, at_ns BIGINT NOT NULL);
    CREATE INDEX IF NOT EXISTS alert_send_log_at ON alert_send_log (target, at_ns);
    CREATE TABLE IF NOT EXISTS alert_sender_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_ns BIGINT NOT NULL
    )
    """,
]

PENDING, DELIVERED, IN_DIGEST, DIGESTED = "pending", "delivered", "digest", "digested"
# A change of an alert within its rule's pending period: held (the sender decides when the
# period ends, next_attempt_ns), then pending, or suppressed with every other change of the
# alert when it resolved meanwhile (never sent).
HELD, SUPPRESSED = "held", "suppressed"
CURSOR = "fanout"
DIGEST_MAX = 5000  # changes one digest may carry; more wait for the next
ERROR_MAX = 500  # characters of an error kept


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery the fan-out records: one outbox entry for one target, due at `due_ns`."""

    outbox_id: int
    target: str
    due_ns: int
    key: str
    alert_id: str
    change: str
    severity: Severity
    rule: str
    site: str
    at_ns: int
    state: str = PENDING  # HELD in a pending period, SUPPRESSED after one that resolved


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery record as the sender reads it."""

    outbox_id: int
    target: str
    state: str
    attempts: int
    next_attempt_ns: int
    key: str
    alert_id: str
    change: str
    severity: Severity
    rule: str
    site: str
    at_ns: int
    last_error: str | None = None
    delivered_ns: int | None = None
    digest_key: str | None = None


@dataclass(frozen=True, slots=True)
class Digest:
    key: str
    target: str
    state: str
    items: int
    attempts: int
    next_attempt_ns: int


_DELIVERY = (
    "outbox_id, target, state, attempts, next_attempt_ns, idempotency_key, alert_id, change, "
    "severity, rule, site, at_ns, last_error, delivered_ns, digest_key"
)


def _delivery(row: Sequence[object]) -> Delivery:
    return Delivery(
        outbox_id=int(str(row[0])),
        target=str(row[1]),
        state=str(row[2]),
        attempts=int(str(row[3])),
        next_attempt_ns=int(str(row[4])),
        key=str(row[5]),
        alert_id=str(row[6]),
        change=str(row[7]),
        severity=Severity(str(row[8])),
        rule=str(row[9]),
        site=str(row[10]),
        at_ns=int(str(row[11])),
        last_error=None if row[12] is None else str(row[12]),
        delivered_ns=None if row[13] is None else int(str(row[13])),
        digest_key=None if row[14] is None else str(row[14]),
    )


def _error(text: str) -> str:
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


class DeliveryStore:
    """The delivery records on the state store (SQLite or PostgreSQL)."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("alert_delivery", MIGRATIONS)

    # -- fan-out ---------------------------------------------------------------------------

    def cursor(self) -> int:
        """The last outbox id fanned out (0: none yet)."""
        rows = self.db.query(
            "SELECT outbox_id FROM alert_delivery_cursor WHERE name = ?", (CURSOR,)
        )
        return int(rows[0][0]) if rows else 0

    def fan_out(
        self,
        deliveries: Iterable[NewDelivery],
        last_outbox_id: int,
        suppress: Iterable[str] = (),
    ) -> None:
        """Record deliveries and move the cursor, in one transaction (a repeat adds nothing);
        the held changes of the alerts `suppress` names are suppressed in it too."""
        rows = [
            (
                d.outbox_id,
                d.target,
                d.state,
                d.due_ns,
                d.key,
                d.alert_id,
                d.change,
                d.severity.value,
                d.rule,
                d.site,
                d.at_ns,
            )
            for d in deliveries
        ]
        with self.db.transaction():
            if rows:
                self.db.executemany(
                    "INSERT INTO alert_delivery (outbox_id, target, state, next_attempt_ns, "
                    "idempotency_key, alert_id, change, severity, rule, site, at_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (outbox_id, target) DO NOTHING",
                    rows,
                )
            self._suppress(suppress)
            self.db.execute(
                "INSERT INTO alert_delivery_cursor (name, outbox_id) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET outbox_id = excluded.outbox_id "
                "WHERE alert_delivery_cursor.outbox_id < excluded.outbox_id",
                (CURSOR, last_outbox_id),
            )

    # -- the pending period ----------------------------------------------------------------

    def holds(self, alert_ids: Iterable[str]) -> dict[str, str]:
        """Alert id → HELD or SUPPRESSED, for those of `alert_ids` with changes held in a
        pending period or suppressed after one (the others are told as usual)."""
        wanted = sorted(set(alert_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.db.query(
                "SELECT DISTINCT alert_id, state FROM alert_delivery WHERE state IN (?, ?) "
                f"AND alert_id IN ({', '.join('?' * len(chunk))})",
                (HELD, SUPPRESSED, *chunk),
            )
            for alert_id, state in rows:
                if found.get(str(alert_id)) != SUPPRESSED:
                    found[str(alert_id)] = str(state)
        return found

    def held_due(self, now_ns: int) -> list[str]:
        """The alerts whose pending period ended by `now_ns` with changes still held."""
        # an alert's held opening carries the period's end; its later changes held with it
        # carry the time they were read, earlier: the latest is the alert's
        rows = self.db.query(
            "SELECT alert_id FROM alert_delivery WHERE state = ? GROUP BY alert_id "
            "HAVING MAX(next_attempt_ns) <= ?",
            (HELD, now_ns),
        )
        return sorted(str(r[0]) for r in rows)

    def release_held(self, alert_id: str, now_ns: int) -> list[str]:
        """The alert's pending period is over and it is not resolved: its held changes are due
        now, to be sent in outbox order as any other; the targets they go to."""
        with self.db.transaction():
            rows = self.db.query(
                "SELECT DISTINCT target FROM alert_delivery WHERE alert_id = ? AND state = ?",
                (alert_id, HELD),
            )
            self.db.execute(
                "UPDATE alert_delivery SET state = ?, next_attempt_ns = ? "
                "WHERE alert_id = ? AND state = ?",
                (PENDING, now_ns, alert_id, HELD),
            )
        return sorted(str(r[0]) for r in rows)

    def suppress(self, alert_ids: Iterable[str]) -> None:
        """The alerts resolved within their pending period: their held changes are never sent."""
        with self.db.transaction():
            self._suppress(alert_ids)

    def _suppress(self, alert_ids: Iterable[str]) -> None:
        self.db.executemany(
            "UPDATE alert_delivery SET state = ? WHERE alert_id = ? AND state = ?",
            [(SUPPRESSED, alert_id, HELD) for alert_id in alert_ids],
        )

    def held_keys(self, alert_id: str) -> list[str]:
        """The idempotency keys of the alert's changes held or suppressed (once each)."""
        rows = self.db.query(
            "SELECT DISTINCT idempotency_key, outbox_id FROM alert_delivery WHERE alert_id = ? "
            "AND state IN (?, ?) ORDER BY outbox_id",
            (alert_id, HELD, SUPPRESSED),
        )
        return [str(r[0]) for r in rows]

    # -- single deliveries -----------------------------------------------------------------

    def due(
        self, target: str, now_ns: int, limit: int = DIGEST_MAX, *, urgent_only: bool = False
    ) -> list[Delivery]:
        """Pending deliveries of `target` whose time has come, oldest change first;
        `urgent_only`: only critical alerts opened or escalated (what goes alone in a storm)."""
        urgent = (
            " AND severity = 'critical' AND change IN ('opened', 'escalated')"
            if urgent_only
            else ""
        )
        rows = self.db.query(
            f"SELECT {_DELIVERY} FROM alert_delivery WHERE target = ? AND state = ? "
            f"AND next_attempt_ns <= ?{urgent} ORDER BY outbox_id LIMIT ?",
            (target, PENDING, now_ns, limit),
        )
        return [_delivery(r) for r in rows]

    def next_due_ns(self, target: str) -> int | None:
        """The earliest next attempt of `target`'s pending deliveries and digests."""
        rows = self.db.query(
            "SELECT MIN(next_attempt_ns) FROM alert_delivery WHERE target = ? AND state = ?",
            (target, PENDING),
        )
        digests = self.db.query(
            "SELECT MIN(next_attempt_ns) FROM alert_digest WHERE target = ? AND state = ?",
            (target, PENDING),
        )
        found = [int(r[0][0]) for r in (rows, digests) if r and r[0][0] is not None]
        return min(found) if found else None

    def claim(self, d: Delivery, now_ns: int, lease_ns: int) -> bool:
        """Take one attempt of `d` (as read): False when another sender took it first. The
        attempt is logged as a send of the target's minute."""
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE alert_delivery SET attempts = attempts + 1, last_attempt_ns = ?, "
                "next_attempt_ns = ? WHERE outbox_id = ? AND target = ? AND state = ? "
                "AND next_attempt_ns = ?",
                (now_ns, now_ns + lease_ns, d.outbox_id, d.target, PENDING, d.next_attempt_ns),
            )
            if cur.rowcount != 1:
                return False
            self._log_send(d.target, now_ns)
        return True

    def delivered(self, d: Delivery, now_ns: int) -> None:
        self.db.execute(
            "UPDATE alert_delivery SET state = ?, delivered_ns = ?, last_error = NULL "
            "WHERE outbox_id = ? AND target = ?",
            (DELIVERED, now_ns, d.outbox_id, d.target),
        )

    def retry(self, d: Delivery, at_ns: int, error: str) -> None:
        """The attempt failed: try again at `at_ns`."""
        self.db.execute(
            "UPDATE alert_delivery SET next_attempt_ns = ?, last_error = ? "
            "WHERE outbox_id = ? AND target = ? AND state = ?",
            (at_ns, _error(error), d.outbox_id, d.target, PENDING),
        )

    def defer(self, target: str, outbox_ids: Sequence[int], until_ns: int) -> None:
        """Hold pending deliveries until `until_ns` (quiet hours), attempts untouched."""
        self.db.executemany(
            "UPDATE alert_delivery SET next_attempt_ns = ? WHERE outbox_id = ? AND target = ? "
            "AND state = ? AND next_attempt_ns < ?",
            [(until_ns, oid, target, PENDING, until_ns) for oid in outbox_ids],
        )

    # -- digests ---------------------------------------------------------------------------

    def make_digest(self, target: str, key: str, members: Sequence[Delivery], now_ns: int) -> bool:
        """Put pending deliveries into one digest, due now; False (and nothing done) when one
        of them was taken meanwhile."""
        try:
            self._make_digest(target, key, members, now_ns)
        except _Taken:
            return False
        return True

    def _make_digest(self, target: str, key: str, members: Sequence[Delivery], now_ns: int) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO alert_digest (digest_key, target, state, items, created_ns, "
                "next_attempt_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (key, target, PENDING, len(members), now_ns, now_ns),
            )
            self.db.executemany(
                "UPDATE alert_delivery SET state = ?, digest_key = ? WHERE outbox_id = ? "
                "AND target = ? AND state = ? AND next_attempt_ns = ?",
                [
                    (IN_DIGEST, key, d.outbox_id, target, PENDING, d.next_attempt_ns)
                    for d in members
                ],
            )
            taken = self.db.query(
                "SELECT COUNT(*) FROM alert_delivery WHERE digest_key = ? AND target = ?",
                (key, target),
            )
            if int(taken[0][0]) != len(members):
                raise _Taken

    def digests_due(self, target: str, now_ns: int) -> list[Digest]:
        rows = self.db.query(
            "SELECT digest_key, target, state, items, attempts, next_attempt_ns FROM alert_digest "
            "WHERE target = ? AND state = ? AND next_attempt_ns <= ? ORDER BY created_ns",
            (target, PENDING, now_ns),
        )
        return [
            Digest(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows
        ]

    def digest_items(self, key: str) -> list[DigestItem]:
        rows = self.db.query(
            "SELECT idempotency_key, rule, site, change, severity, at_ns FROM alert_delivery "
            "WHERE digest_key = ? ORDER BY outbox_id",
            (key,),
        )
        return [
            DigestItem(str(r[0]), str(r[1]), str(r[2]), str(r[3]), Severity(str(r[4])), int(r[5]))
            for r in rows
        ]

    def digest_alerts(self, key: str) -> list[str]:
        """The alert ids a digest carries changes of."""
        rows = self.db.query(
            "SELECT DISTINCT alert_id FROM alert_delivery WHERE digest_key = ?", (key,)
        )
        return sorted(str(r[0]) for r in rows)

    def claim_digest(self, digest: Digest, now_ns: int, lease_ns: int) -> bool:
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE alert_digest SET attempts = attempts + 1, last_attempt_ns = ?, "
                "next_attempt_ns = ? WHERE digest_key = ? AND state = ? AND next_attempt_ns = ?",
                (now_ns, now_ns + lease_ns, digest.key, PENDING, digest.next_attempt_ns),
            )
            if cur.rowcount != 1:
                return False
            self._log_send(digest.target, now_ns)
        return True

    def digest_delivered(self, digest: Digest, now_ns: int) -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE alert_digest SET state = ?, delivered_ns = ?, last_error = NULL "
                "WHERE digest_key = ?",
                (DELIVERED, now_ns, digest.key),
            )
            self.db.execute(
                "UPDATE alert_delivery SET state = ?, delivered_ns = ? WHERE digest_key = ?",
                (DIGESTED, now_ns, digest.key),
            )

    def digest_retry(self, digest: Digest, at_ns: int, error: str) -> None:
        self.db.execute(
            "UPDATE alert_digest SET next_attempt_ns = ?, last_error = ? WHERE digest_key = ? "
            "AND state = ?",
            (at_ns, _error(error), digest.key, PENDING),
        )

    def defer_digest(self, digest: Digest, until_ns: int) -> None:
        self.db.execute(
            "UPDATE alert_digest SET next_attempt_ns = ? WHERE digest_key = ? AND state = ? "
            "AND next_attempt_ns < ?",
            (until_ns, digest.key, PENDING, until_ns),
        )

    # -- the per-minute limit --------------------------------------------------------------

    def _log_send(self, target: str, at_ns: int) -> None:
        self.db.execute("INSERT INTO alert_send_log (target, at_ns) VALUES (?, ?)", (target, at_ns))

    def sends_since(self, target: str, since_ns: int) -> list[int]:
        rows = self.db.query(
            "SELECT at_ns FROM alert_send_log WHERE target = ? AND at_ns > ? ORDER BY at_ns",
            (target, since_ns),
        )
        return [int(r[0]) for r in rows]

    def prune_sends(self, before_ns: int) -> None:
        self.db.execute("DELETE FROM alert_send_log WHERE at_ns < ?", (before_ns,))

    # -- one sender among the workers ------------------------------------------------------

    def lease(self, name: str, holder: str, now_ns: int, ttl_ns: int) -> bool:
        """Hold (or renew) the lease `name` until now + ttl: True when `holder` has it."""
        lock = " FOR UPDATE" if self.db.kind == "postgres" else ""
        try:
            with self.db.transaction():
                rows = self.db.query(
                    f"SELECT holder, until_ns FROM alert_sender_lease WHERE name = ?{lock}",
                    (name,),
                )
                if not rows:
                    self.db.execute(
                        "INSERT INTO alert_sender_lease (name, holder, until_ns) VALUES (?, ?, ?)",
                        (name, holder, now_ns + ttl_ns),
                    )
                    return True
                if str(rows[0][0]) != holder and int(rows[0][1]) > now_ns:
                    return False
                self.db.execute(
                    "UPDATE alert_sender_lease SET holder = ?, until_ns = ? WHERE name = ?",
                    (holder, now_ns + ttl_ns, name),
                )
                return True
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == "23505" or "UNIQUE" in str(exc):
                return False  # another worker inserted it first
            raise

    def release(self, name: str, holder: str) -> None:
        self.db.execute(
            "DELETE FROM alert_sender_lease WHERE name = ? AND holder = ?", (name, holder)
        )

    # -- reads -----------------------------------------------------------------------------

    def for_alert(self, alert_id: str) -> list[Delivery]:
        """Every delivery of an alert's changes, to every target, in outbox order."""
        rows = self.db.query(
            f"SELECT {_DELIVERY} FROM alert_delivery WHERE alert_id = ? ORDER BY outbox_id, target",
            (alert_id,),
        )
        return [_delivery(r) for r in rows]

    def for_target(self, target: str) -> list[Delivery]:
        rows = self.db.query(
            f"SELECT {_DELIVERY} FROM alert_delivery WHERE target = ? ORDER BY outbox_id",
            (target,),
        )
        return [_delivery(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """(target, state) → deliveries."""
        rows = self.db.query(
            "SELECT target, state, COUNT(*) FROM alert_delivery GROUP BY target, state"
        )
        return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


class _Taken(Exception):
    """A delivery meant for a digest was claimed by another sender meanwhile."""
