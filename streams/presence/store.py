"""The presence part's SQL on StateDB: each registered device's last-seen time (receiver's
clock) and whether it is offline, shared by every worker and kept across restarts.

Never keep a row per message: one row per device, its last-seen time only ever moved forward.
Every change of offline/online is a conditional UPDATE whose row count says whether this
worker made it: with several workers on one PostgreSQL, exactly one raises or clears.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hazwatch.base.statedb import StateDB

Key = tuple[str, str, str]  # (site, family, device)

MIGRATIONS = [
    "CREATE TABLE device_presence (site {text} NOT NULL, family {text} NOT NULL, "
    "device {text} NOT NULL, last_seen_ns BIGINT NOT NULL, offline {text}, since_ns BIGINT, "
    "cadence {text}, PRIMARY KEY (site, family, device));"
    "CREATE INDEX device_presence_offline ON device_presence (offline)",
]
_WHERE_KEY = "site = ? AND family = ? AND device = ?"
# last_seen only moves forward; a station's minute cadence, once seen, stays
_TOUCH = (
    "INSERT INTO device_presence (site, family, device, last_seen_ns, cadence) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, family, device) DO UPDATE SET "
    "last_seen_ns = CASE WHEN excluded.last_seen_ns > device_presence.last_seen_ns "
    "THEN excluded.last_seen_ns ELSE device_presence.last_seen_ns END, "
    "cadence = CASE WHEN device_presence.cadence = 'minute' OR excluded.cadence IS NULL "
    "THEN device_presence.cadence ELSE excluded.cadence END"
)


@dataclass(slots=True)
class PresenceRow:
    """A device as the store has it: last heard (receiver's clock), why it is offline (None:
    it is not) and since when, and an air station's cadence."""

    last_seen_ns: int
    offline: str | None = None
    since_ns: int | None = None
    cadence: str | None = None


class PresenceStore:
    """Devices' presence in the state store, written and read by the presence processor."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("presence", MIGRATIONS)

    def load(self) -> dict[Key, PresenceRow]:
        """Every device's row (at start, and to see what other workers changed)."""
        return {
            (str(site), str(family), str(device)): PresenceRow(
                int(seen), None if off is None else str(off), _opt(since), _opt_str(cadence)
            )
            for site, family, device, seen, off, since, cadence in self.db.query(
                "SELECT site, family, device, last_seen_ns, offline, since_ns, cadence "
                "FROM device_presence"
            )
        }

    def touch(self, rows: Iterable[tuple[Key, int, str | None]]) -> None:
        """Devices heard: (key, received_ns, cadence or None), last-seen moved forward only."""
        values = [(*key, seen_ns, cadence) for key, seen_ns, cadence in rows]
        if values:
            with self.db.transaction():
                self.db.executemany(_TOUCH, values)

    def went_offline(self, key: Key, reason: str, at_ns: int, seen_until_ns: int) -> bool:
        """Mark the device offline since `at_ns` unless it is already, or was heard after
        `seen_until_ns` (by another worker, too); True when this call marked it."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO device_presence (site, family, device, last_seen_ns) "
                "VALUES (?, ?, ?, 0) ON CONFLICT (site, family, device) DO NOTHING",
                key,
            )
            cur = self.db.execute(
                "UPDATE device_presence SET offline = ?, since_ns = ? "
                f"WHERE {_WHERE_KEY} AND offline IS NULL AND last_seen_ns <= ?",
                (reason, at_ns, *key, seen_until_ns),
            )
            return int(cur.rowcount) == 1

    def undo_offline(self, key: Key, at_ns: int) -> None:
        """Take back what went_offline(key, …, at_ns, …) marked (its alert could not be raised)."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE device_presence SET offline = NULL, since_ns = NULL "
                f"WHERE {_WHERE_KEY} AND since_ns = ?",
                (*key, at_ns),
            )

    def came_back(self, key: Key, at_ns: int, cadence: str | None = None) -> bool:
        """The device was heard at `at_ns`: online again if it was offline since no later;
        True when this call brought it back. Its last-seen moves forward either way."""
        with self.db.transaction():
            cur = self.db.execute(
                "UPDATE device_presence SET offline = NULL, since_ns = NULL "
                f"WHERE {_WHERE_KEY} AND offline IS NOT NULL AND since_ns <= ?",
                (*key, at_ns),
            )
            back = int(cur.rowcount) == 1
            self.db.executemany(_TOUCH, [(*key, at_ns, cadence)])
        return back

    def heard_since_offline(self) -> list[Key]:
        """Bring back every device heard after it went offline (a message another worker
        took, or one touch() wrote): the keys this call brought back."""
        rows = self.db.query(
            "SELECT site, family, device, since_ns FROM device_presence "
            "WHERE offline IS NOT NULL AND last_seen_ns > since_ns"
        )
        back: list[Key] = []
        for site, family, device, since in rows:
            key = (str(site), str(family), str(device))
            with self.db.transaction():
                cur = self.db.execute(
                    "UPDATE device_presence SET offline = NULL, since_ns = NULL "
                    f"WHERE {_WHERE_KEY} AND offline IS NOT NULL AND since_ns = ?",
                    (*key, int(since)),
                )
                if int(cur.rowcount) == 1:
                    back.append(key)
        return back

    def quiet(self, before_ns: int) -> list[tuple[Key, int, str | None]]:
        """Devices not offline and last heard before `before_ns`: (key, last_seen_ns, cadence)."""
        return [
            ((str(site), str(family), str(device)), int(seen), _opt_str(cadence))
            for site, family, device, seen, cadence in self.db.query(
                "SELECT site, family, device, last_seen_ns, cadence FROM device_presence "
                "WHERE offline IS NULL AND last_seen_ns > 0 AND last_seen_ns < ?",
                (before_ns,),
            )
        ]


def _opt(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
