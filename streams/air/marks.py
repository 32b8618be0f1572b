"""The data audit's SQL on StateDB: invalid marks (automatic, manual, maintenance), values kept
with their HJ 212 flag, maintenance records (运维记录), and the hours a change must recompute.

Never judge data here (audit.py does) and never delete a reading: a mark is revoked, not
deleted, so who excluded what and who restored it stays on record (GB 3095: the reason and
the raw record of every datum left out are kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hazwatch.base.errors import HazwatchError
from hazwatch.base.statedb import StateDB
from hazwatch.streams.air.audit import ALL, AUTO_BY, Flagged, Mark, Span
from hazwatch.streams.air.rules import NS_PER_HOUR

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE air_mark (
        id {id},
        site TEXT NOT NULL, station TEXT NOT NULL, pollutant TEXT NOT NULL,
        start_ns BIGINT NOT NULL, end_ns BIGINT NOT NULL,
        reason TEXT NOT NULL, origin TEXT NOT NULL, note TEXT NOT NULL,
        by_whom TEXT NOT NULL, created_ns BIGINT NOT NULL,
        maintenance_id BIGINT,
        revoked_ns BIGINT, revoked_by TEXT, revoked_note TEXT,
        UNIQUE (site, station, pollutant, origin, reason, start_ns));
    CREATE INDEX air_mark_station ON air_mark (station, start_ns);
    CREATE TABLE air_flagged (
        site TEXT NOT NULL, station TEXT NOT NULL, source TEXT NOT NULL, ts_ns BIGINT NOT NULL,
        pollutant TEXT NOT NULL, flag TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (site, station, source, ts_ns, pollutant));
    CREATE TABLE air_maintenance (
        id {id},
        site TEXT NOT NULL, station TEXT NOT NULL, kind TEXT NOT NULL,
        start_ns BIGINT NOT NULL, end_ns BIGINT NOT NULL, pollutant TEXT NOT NULL,
        note TEXT NOT NULL, by_whom TEXT NOT NULL, created_ns BIGINT NOT NULL)
    """,
)
_MARK_COLUMNS = (
    "id, site, station, pollutant, start_ns, end_ns, reason, origin, note, by_whom, created_ns, "
    "maintenance_id, revoked_ns, revoked_by, revoked_note"
)


class MarkNotFound(HazwatchError):
    """No mark of that id."""


class MarkConflict(HazwatchError):
    """The mark cannot change so (revoked already; a flag is the station's own)."""


class UnknownStation(HazwatchError):
    """No air station of that site and id has sent data."""


@dataclass(frozen=True, slots=True)
class Change:
    """What a write did: the mark or record, and the hours it sent back for recomputation."""

    row: dict[str, Any]
    recomputed: list[int]  # hour_ns of each hour opened again
    pruned: list[int]  # hours inside the span whose readings are pruned: kept as they were


class MarkStore:
    """Marks, flagged values and maintenance records; writes of people recompute the hours."""

    def __init__(self, db: StateDB, keep_readings_h: float = 48.0) -> None:
        self.db = db
        self.keep_ns = int(keep_readings_h * 3600 * 1e9)
        db.migrate("air_audit", MIGRATIONS)

    # the query the hour computation makes
    def invalid_spans(self, site: str, station: str, start_ns: int, end_ns: int) -> list[Span]:
        """(pollutant or ALL, start, end) of every mark in force overlapping [start, end)."""
        rows = self.db.query(
            "SELECT pollutant, start_ns, end_ns FROM air_mark WHERE site = ? AND station = ? "
            "AND revoked_ns IS NULL AND start_ns < ? AND end_ns > ? ORDER BY start_ns",
            (site, station, end_ns, start_ns),
        )
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # automatic marks, owned by the hour they start in
    def replace_auto(
        self,
        site: str,
        station: str,
        hour_ns: int,
        marks: Sequence[Mark],
        now_ns: int,
        reasons: Sequence[str],
    ) -> None:
        """The hour's automatic marks of these reasons become `marks`: those no longer found
        go, new ones come, one revoked by a person stays revoked (and is not made again)."""
        keep = {(m.pollutant, m.reason, m.start_ns) for m in marks}
        for mark_id, pollutant, reason, start_ns in self.db.query(
            "SELECT id, pollutant, reason, start_ns FROM air_mark WHERE site = ? AND station = ? "
            "AND origin = 'auto' AND revoked_ns IS NULL AND start_ns >= ? AND start_ns < ?",
            (site, station, hour_ns, hour_ns + NS_PER_HOUR),
        ):
            if reason in reasons and (pollutant, reason, int(start_ns)) not in keep:
                self.db.execute("DELETE FROM air_mark WHERE id = ?", (mark_id,))
        self.db.executemany(
            "INSERT INTO air_mark (site, station, pollutant, start_ns, end_ns, reason, origin, "
            "note, by_whom, created_ns) VALUES (?, ?, ?, ?, ?, ?, 'auto', ?, ?, ?) "
            "ON CONFLICT (site, station, pollutant, origin, reason, start_ns) DO UPDATE SET "
            "end_ns = excluded.end_ns, note = excluded.note",
            [(site, station, *_auto_row(m), now_ns) for m in marks],
        )

    def has_mark(self, site: str, station: str, pollutant: str, reason: str, at_ns: int) -> bool:
        """Whether a mark of this reason (in force or revoked) starts at at_ns."""
        return bool(
            self.db.query(
                "SELECT 1 FROM air_mark WHERE site = ? AND station = ? AND pollutant = ? "
                "AND reason = ? AND start_ns = ?",
                (site, station, pollutant, reason, at_ns),
            )
        )

    def revoked(self, site: str, station: str, hour_ns: int) -> set[tuple[str, str, int]]:
        """(pollutant, reason, start_ns) of the hour's automatic marks a person revoked."""
        return {
            (str(r[0]), str(r[1]), int(r[2]))
            for r in self.db.query(
                "SELECT pollutant, reason, start_ns FROM air_mark WHERE site = ? AND station = ? "
                "AND origin = 'auto' AND revoked_ns IS NOT NULL AND start_ns >= ? "
                "AND start_ns < ?",
                (site, station, hour_ns, hour_ns + NS_PER_HOUR),
            )
        }

    # values the station flagged
    def keep_flagged(self, rows: Iterable[Flagged]) -> None:
        """Values with an HJ 212 flag other than N, once each (a redelivery changes nothing)."""
        self.db.executemany(
            "INSERT INTO air_flagged (site, station, source, ts_ns, pollutant, flag, value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )

    # people's marks
    def known_station(self, site: str, station: str) -> bool:
        return bool(
            self.db.query(
                "SELECT 1 FROM air_station WHERE site = ? AND station = ?", (site, station)
            )
        )

    def add(
        self,
        site: str,
        station: str,
        mark: Mark,
        *,
        by: str,
        now_ns: int,
        origin: str = "manual",
        maintenance_id: int | None = None,
    ) -> Change:
        """A person's mark (or a maintenance window's); the hours it touches are recomputed.
        The same mark again (station, pollutant, reason, start) takes the new end, note and
        person, and is in force again if it was revoked."""
        if not self.known_station(site, station):
            raise UnknownStation(f"no air station {site}/{station} has sent data")
        with self.db.transaction():
            return self._add(site, station, mark, by, now_ns, origin, maintenance_id)

    def _add(
        self,
        site: str,
        station: str,
        mark: Mark,
        by: str,
        now_ns: int,
        origin: str,
        maintenance_id: int | None,
    ) -> Change:
        """The mark, inside the caller's transaction."""
        rows = self.db.query(
            "INSERT INTO air_mark (site, station, pollutant, start_ns, end_ns, reason, "
            "origin, note, by_whom, created_ns, maintenance_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (site, station, pollutant, origin, reason, start_ns) DO UPDATE SET "
            "end_ns = excluded.end_ns, note = excluded.note, by_whom = excluded.by_whom, "
            "created_ns = excluded.created_ns, revoked_ns = NULL, revoked_by = NULL, "
            "revoked_note = NULL RETURNING id",
            (
                site,
                station,
                mark.pollutant,
                mark.start_ns,
                mark.end_ns,
                mark.reason,
                origin,
                mark.note,
                by,
                now_ns,
                maintenance_id,
            ),
        )
        mark_id = int(rows[0][0])
        recomputed, pruned = self.recompute(site, station, mark.start_ns, mark.end_ns)
        return Change(self.mark(mark_id), recomputed, pruned)

    def revoke(self, mark_id: int, *, by: str, note: str, now_ns: int) -> Change:
        """A mark no longer in force (its data count again); the hours it touched recompute."""
        with self.db.transaction():
            row = self.mark(mark_id)
            if row["revoked_ns"] is not None:
                raise MarkConflict(f"mark {mark_id} was revoked already by {row['revoked_by']}")
            self.db.execute(
                "UPDATE air_mark SET revoked_ns = ?, revoked_by = ?, revoked_note = ? WHERE id = ?",
                (now_ns, by, note, mark_id),
            )
            recomputed, pruned = self.recompute(
                row["site"], row["station"], row["start_ns"], row["end_ns"]
            )
        return Change(self.mark(mark_id), recomputed, pruned)

    def recompute(
        self, site: str, station: str, start_ns: int, end_ns: int
    ) -> tuple[list[int], list[int]]:
        """Open again the station's closed hours overlapping [start, end) whose readings are
        still kept (the processor closes them anew); (opened, left as they were: pruned)."""
        first = start_ns - start_ns % NS_PER_HOUR
        rows = self.db.query(
            "SELECT r.hour_ns, s.newest_ns FROM air_hour_result r JOIN air_station s "
            "ON s.site = r.site AND s.station = r.station "
            "WHERE r.site = ? AND r.station = ? AND r.hour_ns >= ? AND r.hour_ns < ? "
            "ORDER BY r.hour_ns",
            (site, station, first, end_ns),
        )
        opened = [int(h) for h, newest in rows if int(h) >= int(newest) - self.keep_ns]
        pruned = [int(h) for h, newest in rows if int(h) < int(newest) - self.keep_ns]
        self.db.executemany(
            "INSERT INTO air_hour_open (site, station, hour_ns) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(site, station, h) for h in opened],
        )
        return opened, pruned

    # reading back
    def mark(self, mark_id: int) -> dict[str, Any]:
        rows = self.db.query(f"SELECT {_MARK_COLUMNS} FROM air_mark WHERE id = ?", (mark_id,))
        if not rows:
            raise MarkNotFound(f"no audit mark {mark_id}")
        return _mark_row(rows[0])

    def marks(
        self,
        *,
        site: str | None = None,
        station: str | None = None,
        start_ns: int,
        end_ns: int,
        origin: str | None = None,
        revoked: bool = True,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Marks overlapping [start, end), oldest first; with the flags' (one per station,
        pollutant, flag and hour) unless another origin is asked for."""
        where = ["start_ns < ?", "end_ns > ?"]
        params: list[Any] = [end_ns, start_ns]
        for column, value in (("site", site), ("station", station), ("origin", origin)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if not revoked:
            where.append("revoked_ns IS NULL")
        rows = [
            _mark_row(r)
            for r in self.db.query(
                f"SELECT {_MARK_COLUMNS} FROM air_mark WHERE {' AND '.join(where)} "
                "ORDER BY start_ns, id LIMIT ?",
                (*params, limit),
            )
        ]
        if origin in (None, "flag"):
            rows.extend(self.flagged(site=site, station=station, start_ns=start_ns, end_ns=end_ns))
            rows.sort(key=lambda r: (r["start_ns"], r["id"] or 0))
        return rows[:limit]

    def flagged(
        self, *, site: str | None, station: str | None, start_ns: int, end_ns: int
    ) -> list[dict[str, Any]]:
        """The flagged values as marks: one per station, pollutant, flag and hour."""
        where = ["ts_ns >= ?", "ts_ns < ?"]
        params: list[Any] = [start_ns - start_ns % NS_PER_HOUR, end_ns]
        for column, value in (("site", site), ("station", station)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self.db.query(
            "SELECT site, station, pollutant, flag, ts_ns - ts_ns % ? AS hour_ns, COUNT(*), "
            "MIN(ts_ns), MAX(ts_ns), MIN(value), MAX(value) FROM air_flagged "
            f"WHERE {' AND '.join(where)} "
            "GROUP BY site, station, pollutant, flag, ts_ns - ts_ns % ? ORDER BY hour_ns",
            (NS_PER_HOUR, *params, NS_PER_HOUR),
        )
        out: list[dict[str, Any]] = []
        for site_, station_, pollutant, flag, _, count, first, last, low, high in rows:
            if int(last) < start_ns:
                continue
            values = f"{low:g}" if low == high else f"{low:g}…{high:g}"
            out.append(
                {
                    "id": None,
                    "site": site_,
                    "station": station_,
                    "pollutant": pollutant,
                    "start_ns": int(first),
                    "end_ns": int(last) + 1,
                    "reason": f"flag_{flag}",
                    "origin": "flag",
                    "note": f"{count} readings flagged {flag} by the station, values {values}",
                    "by": f"{station_} (HJ 212 flag)",
                    "created_ns": int(first),
                    "maintenance_id": None,
                    "revoked_ns": None,
                    "revoked_by": None,
                    "revoked_note": None,
                    "readings": int(count),
                }
            )
        return out

    # maintenance records (运维记录)
    def add_maintenance(
        self,
        site: str,
        station: str,
        *,
        kind: str,
        start_ns: int,
        end_ns: int,
        pollutant: str,
        note: str,
        by: str,
        now_ns: int,
    ) -> Change:
        """A record; its window (when it has one) marks the station's data invalid."""
        if not self.known_station(site, station):
            raise UnknownStation(f"no air station {site}/{station} has sent data")
        with self.db.transaction():
            rows = self.db.query(
                "INSERT INTO air_maintenance (site, station, kind, start_ns, end_ns, pollutant, "
                "note, by_whom, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (site, station, kind, start_ns, end_ns, pollutant, note, by, now_ns),
            )
            record_id = int(rows[0][0])
            recomputed: list[int] = []
            pruned: list[int] = []
            if end_ns > start_ns:
                mark = Mark(pollutant, start_ns, end_ns, "maintenance", f"{kind}: {note}")
                change = self._add(site, station, mark, by, now_ns, "maintenance", record_id)
                recomputed, pruned = change.recomputed, change.pruned
        return Change(self.maintenance_record(record_id), recomputed, pruned)

    def maintenance_record(self, record_id: int) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT id, site, station, kind, start_ns, end_ns, pollutant, note, by_whom, "
            "created_ns FROM air_maintenance WHERE id = ?",
            (record_id,),
        )
        if not rows:
            raise MarkNotFound(f"no maintenance record {record_id}")
        return _maintenance_row(rows[0])

    def maintenance(
        self,
        *,
        site: str | None = None,
        station: str | None = None,
        start_ns: int,
        end_ns: int,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Records whose window overlaps [start, end) (a record without one: its time in it)."""
        where = ["start_ns < ?", "end_ns >= ?"]
        params: list[Any] = [end_ns, start_ns]
        for column, value in (("site", site), ("station", station)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self.db.query(
            "SELECT id, site, station, kind, start_ns, end_ns, pollutant, note, by_whom, "
            f"created_ns FROM air_maintenance WHERE {' AND '.join(where)} "
            "ORDER BY start_ns, id LIMIT ?",
            (*params, limit),
        )
        return [_maintenance_row(r) for r in rows]


def _auto_row(mark: Mark) -> tuple[str, int, int, str, str, str]:
    return (mark.pollutant, mark.start_ns, mark.end_ns, mark.reason, mark.note, AUTO_BY)


def _mark_row(r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": int(r[0]),
        "site": r[1],
        "station": r[2],
        "pollutant": r[3],
        "start_ns": int(r[4]),
        "end_ns": int(r[5]),
        "reason": r[6],
        "origin": r[7],
        "note": r[8],
        "by": r[9],
        "created_ns": int(r[10]),
        "maintenance_id": None if r[11] is None else int(r[11]),
        "revoked_ns": None if r[12] is None else int(r[12]),
        "revoked_by": r[13],
        "revoked_note": r[14],
    }


def _maintenance_row(r: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": int(r[0]),
        "site": r[1],
        "station": r[2],
        "kind": r[3],
        "start_ns": int(r[4]),
        "end_ns": int(r[5]),
        "pollutant": r[6],
        "note": r[7],
        "by": r[8],
        "created_ns": int(r[9]),
    }


__all__ = ["ALL", "Change", "MarkConflict", "MarkNotFound", "MarkStore", "UnknownStation"]
