"""The clocks part's SQL on StateDB: each device's measured clock, kept across restarts and read
by the API.

Never keep a row per message: one row per device, rewritten when its offset changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hazwatch.base.statedb import StateDB
from hazwatch.devices.clock_offset import ClockEstimate, Key

MIGRATIONS = [
    "CREATE TABLE device_clock (site {text} NOT NULL, family {text} NOT NULL, "
    "device {text} NOT NULL, offset_ns BIGINT, error_ns BIGINT NOT NULL, "
    "samples BIGINT NOT NULL, since_ns BIGINT NOT NULL, last_ns BIGINT NOT NULL, "
    "steps BIGINT NOT NULL, stepping INTEGER NOT NULL, skewed INTEGER NOT NULL, "
    "state {text} NOT NULL, PRIMARY KEY (site, family, device))",
]
_UPSERT = (
    "INSERT INTO device_clock (site, family, device, offset_ns, error_ns, samples, since_ns, "
    "last_ns, steps, stepping, skewed, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (site, family, device) DO UPDATE SET offset_ns = excluded.offset_ns, "
    "error_ns = excluded.error_ns, samples = excluded.samples, since_ns = excluded.since_ns, "
    "last_ns = excluded.last_ns, steps = excluded.steps, stepping = excluded.stepping, "
    "skewed = excluded.skewed, state = excluded.state"
)
_COLUMNS = (
    "site, family, device, offset_ns, error_ns, samples, since_ns, last_ns, steps, stepping, skewed"
)


@dataclass(frozen=True, slots=True)
class ClockRow:
    """A device's clock as it was last saved, with whether clock_skew is raised for it."""

    estimate: ClockEstimate
    skewed: bool
    state: dict[str, Any]


class ClockStore:
    """Device clocks in the state store: `save` by the clocks processor, `list` for the API."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate("clocks", MIGRATIONS)

    def save(self, rows: Iterable[ClockRow]) -> None:
        values = [
            (
                *_key(r.estimate),
                r.estimate.offset_ns,
                r.estimate.error_ns,
                r.estimate.samples,
                r.estimate.since_ns,
                r.estimate.last_ns,
                r.estimate.steps,
                int(r.estimate.stepping),
                int(r.skewed),
                json.dumps(r.state),
            )
            for r in rows
        ]
        if values:
            with self.db.transaction():
                self.db.executemany(_UPSERT, values)

    def states(self) -> dict[Key, tuple[dict[str, Any], bool]]:
        """Every device's saved estimator state and whether it was skewed (at start)."""
        return {
            (site, family, device): (json.loads(state), bool(skewed))
            for site, family, device, state, skewed in self.db.query(
                "SELECT site, family, device, state, skewed FROM device_clock"
            )
        }

    def forget(self, keys: Iterable[Key]) -> None:
        rows = [tuple(k) for k in keys]
        if rows:
            with self.db.transaction():
                self.db.executemany(
                    "DELETE FROM device_clock WHERE site = ? AND family = ? AND device = ?", rows
                )

    def list(
        self, *, site: str | None = None, family: str | None = None, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """Devices' clocks for the API, by site, family and device."""
        where, params = [], []
        if site:
            where.append("site = ?")
            params.append(site)
        if family:
            where.append("family = ?")
            params.append(family)
        sql = f"SELECT {_COLUMNS} FROM device_clock"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY site, family, device LIMIT {max(0, min(int(limit), 1_000_000))}"
        return [_row(r) for r in self.db.query(sql, params)]

    def get(self, site: str, family: str, device: str) -> dict[str, Any] | None:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM device_clock WHERE site = ? AND family = ? AND device = ?",
            (site, family, device),
        )
        return _row(rows[0]) if rows else None


def _key(estimate: ClockEstimate) -> Key:
    return (estimate.site, estimate.family, estimate.device)


def _row(r: Any) -> dict[str, Any]:
    offset = None if r[3] is None else int(r[3])
    return {
        "site": r[0],
        "family": r[1],
        "device": r[2],
        "offset_ns": offset,
        "offset_s": None if offset is None else round(offset / 1e9, 3),
        # how it was measured: the minimum of received − device time over the window
        "basis": "none" if offset is None else "window",
        "error_s": round(int(r[4]) / 1e9, 3),
        "samples": int(r[5]),
        "since_ns": int(r[6]),
        "last_ns": int(r[7]),
        "steps": int(r[8]),
        "stepping": bool(r[9]),
        "skewed": bool(r[10]),
    }
