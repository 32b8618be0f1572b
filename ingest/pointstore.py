"""The embedded point store: InfluxDB's points, identity rule and field types in one SQLite file.

Never let it differ from InfluxDB in what it keeps: same series, same overwrite, same refusals.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.points import FieldValue, replacing, unmarked
from hazwatch.base.points import number as _number
from hazwatch.base.points import parse_escaped as _parse_escaped
from hazwatch.ingest.failures import is_transient
from hazwatch.ingest.interfaces import RejectedLine

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tagset TEXT NOT NULL,          -- canonical: JSON of the sorted [key, value] pairs
    tags TEXT NOT NULL,            -- JSON object
    UNIQUE (measurement, tagset)
);
CREATE TABLE IF NOT EXISTS series_tags (   -- the inverted index: which series has tag=value
    measurement TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    PRIMARY KEY (measurement, key, value, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS field_types (
    measurement TEXT NOT NULL,
    field TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (measurement, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    fields TEXT NOT NULL,          -- JSON object; merged on overwrite like InfluxDB does
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (measurement, ts);
"""

UPSERT = (
    "INSERT INTO points (series_id, ts, measurement, fields) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (series_id, ts) DO UPDATE SET fields = json_patch(fields, excluded.fields)"
)
# a line with REPLACE_MARK: the stored point's fields are replaced, not merged (as InfluxDB's
# delete then write leaves them)
REPLACE = (
    "INSERT INTO points (series_id, ts, measurement, fields) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (series_id, ts) DO UPDATE SET fields = excluded.fields"
)

_TYPE_NAMES: dict[type, str] = {float: "float", int: "integer", str: "string", bool: "boolean"}
_INT64 = (-(2**63), 2**63 - 1)

SeriesKey = tuple[str, str]  # (measurement, canonical tagset)


class PointStore:
    """PointWriter and PointReader over a SQLite file (WAL), for when no InfluxDB is configured.

    Identity as in InfluxDB: measurement + sorted tag set + timestamp; writing a point again
    merges its fields into the stored one (last value wins per field); a line that replaces its
    point (base.points.REPLACE_MARK) replaces its fields whole. A field keeps the type it
    was first written with; a line that changes it is returned as RejectedLine with a reason
    worded like InfluxDB's. A batch is one transaction (synchronous=FULL: durable on return).
    Each instance has its own connection; several (writer, readers) may share one file.
    `keep_ns` (measurement -> ns, ingest/retention.py keep_ns): the retention InfluxDB's
    policies would keep; points older than it by the wall clock are deleted (`prune`), at
    most once every `prune_every_s`, by the writer after a write.
    """

    name = "embedded"

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 10.0,
        keep_ns: Mapping[str, int] | None = None,
        prune_every_s: float = 3600.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.keep_ns = dict(keep_ns or {})
        self.prune_every_s = prune_every_s
        self._clock = clock
        self._pruned_at_ns: int | None = None
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # used from worker threads, serialised by _lock
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"point store {self.path}: {exc}") from None
        self._lock = threading.Lock()
        # Series ids and field types never change once stored, so caching them is safe even
        # with another process writing the same file (unknown ones are looked up in the txn).
        self._series_by_head: dict[str, int] = {}
        self._series: dict[SeriesKey, int] = {}
        self._field_types: dict[tuple[str, str], str] = {}

    # -- writing ---------------------------------------------------------------------------

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        rejected: list[RejectedLine] = []
        parsed: list[tuple[int, str, str, dict[str, str] | None, dict[str, FieldValue], int]] = []
        replaced = set(replacing(lines))
        for index, line in enumerate(lines):
            if index in replaced:
                line = unmarked(line)
            try:
                parsed.append((index, *_parse(line)))
            except ValueError as exc:
                rejected.append(RejectedLine(index, f"unable to parse '{line}': {exc}"))
        if not parsed:
            return rejected
        with self._lock:
            try:
                rejected += self._store(parsed, replaced)
            except sqlite3.Error as exc:
                # locked, busy, disk full: an outage, spooled and retried; anything else is
                # some line's (the pipeline bisects), or a spooled batch would fail for ever
                if is_transient(exc):
                    raise StoreUnavailable(f"point store {self.path}: {exc}") from None
                raise
        if rejected:
            rejected.sort(key=lambda item: item.index)
        if self.keep_ns:
            now_ns = self._clock()
            if self._pruned_at_ns is None or (
                now_ns - self._pruned_at_ns >= self.prune_every_s * 1_000_000_000
            ):
                self.prune(now_ns)
        return rejected

    def prune(self, now_ns: int) -> int:
        """Delete the points each measurement keeps no longer (`keep_ns`); how many. A failure
        is logged by the caller's next write: pruning never fails a write."""
        self._pruned_at_ns = now_ns
        deleted = 0
        with self._lock:
            try:
                for measurement, keep in sorted(self.keep_ns.items()):
                    cursor = self._db.execute(
                        "DELETE FROM points WHERE measurement = ? AND ts < ?",
                        (measurement, now_ns - keep),
                    )
                    deleted += max(cursor.rowcount, 0)
            except sqlite3.Error:
                return deleted
        return deleted

    def _store(
        self,
        parsed: list[tuple[int, str, str, dict[str, str] | None, dict[str, FieldValue], int]],
        replaced: set[int],
    ) -> list[RejectedLine]:
        rejected: list[RejectedLine] = []
        rows: list[tuple[int, int, str, bytes]] = []
        runs: list[tuple[str, int]] = []  # (statement, rows up to) in the batch's order
        new_heads: list[str] = []
        new_series: list[SeriesKey] = []
        new_types: list[tuple[str, str]] = []
        series_by_head, field_types = self._series_by_head, self._field_types
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for index, measurement, head, tags, fields, ts in parsed:
                series_id = series_by_head.get(head)
                if series_id is None:
                    try:
                        if tags is None:  # fast-parsed line: tags only matter for a new head
                            measurement, tags = _parse_head(head)
                    except ValueError as exc:
                        rejected.append(RejectedLine(index, f"unable to parse '{head}': {exc}"))
                        continue
                    series_id = self._series_id(measurement, tags, new_series)
                    series_by_head[head] = series_id
                    new_heads.append(head)
                conflict = self._type_conflict(measurement, fields, new_types)
                if conflict is not None:
                    rejected.append(RejectedLine(index, conflict))
                    continue
                rows.append((series_id, ts, measurement, orjson.dumps(fields)))
                if replaced:
                    statement = REPLACE if index in replaced else UPSERT
                    if runs and runs[-1][0] == statement:
                        runs[-1] = (statement, len(rows))
                    else:
                        runs.append((statement, len(rows)))
            if not runs:
                db.executemany(UPSERT, rows)
            start = 0
            for statement, end in runs:
                db.executemany(statement, rows[start:end])
                start = end
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for head in new_heads:
                series_by_head.pop(head, None)
            for key in new_series:
                self._series.pop(key, None)
            for type_key in new_types:
                field_types.pop(type_key, None)
            raise
        return rejected

    def _type_conflict(
        self, measurement: str, fields: dict[str, FieldValue], new: list[tuple[str, str]]
    ) -> str | None:
        """InfluxDB's words for the first field whose type differs from the stored one."""
        field_types = self._field_types
        unknown: list[tuple[str, str]] = []
        for key, value in fields.items():
            kind = _TYPE_NAMES[type(value)]
            known = field_types.get((measurement, key))
            if known is None:
                unknown.append((key, kind))
            elif known != kind:
                return _conflict(measurement, key, kind, known)
        for key, kind in unknown:  # registered only when the whole point is acceptable
            known = self._field_type(measurement, key, kind)
            field_types[(measurement, key)] = known
            new.append((measurement, key))
            if known != kind:  # another writer of this file got there first
                return _conflict(measurement, key, kind, known)
        return None

    def _series_id(self, measurement: str, tags: dict[str, str], new: list[SeriesKey]) -> int:
        tagset = orjson.dumps(sorted(tags.items())).decode()
        key = (measurement, tagset)
        series_id = self._series.get(key)
        if series_id is not None:
            return series_id
        row = self._db.execute(
            "INSERT INTO series (measurement, tagset, tags) VALUES (?, ?, ?)"
            " ON CONFLICT (measurement, tagset) DO UPDATE SET tags = tags RETURNING id",
            (measurement, tagset, orjson.dumps(tags).decode()),
        ).fetchone()
        series_id = int(row[0])
        self._db.executemany(
            "INSERT OR IGNORE INTO series_tags (measurement, key, value, series_id)"
            " VALUES (?, ?, ?, ?)",
            [(measurement, k, v, series_id) for k, v in tags.items()],
        )
        self._series[key] = series_id
        new.append(key)
        return series_id

    def _field_type(self, measurement: str, field: str, kind: str) -> str:
        self._db.execute(
            "INSERT OR IGNORE INTO field_types (measurement, field, type) VALUES (?, ?, ?)",
            (measurement, field, kind),
        )
        row = self._db.execute(
            "SELECT type FROM field_types WHERE measurement = ? AND field = ?",
            (measurement, field),
        ).fetchone()
        return str(row[0])

    def ping(self) -> None:
        with self._lock:
            try:
                self._db.execute("SELECT 1 FROM series LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"point store {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------

    def select(
        self,
        measurement: str,
        *,
        tags: dict[str, str] | None = None,
        fields: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows like InfluxQLReader's: `time`, tags, requested fields; time in [start, end)."""
        sql = ["SELECT p.series_id, p.ts, p.fields, s.tags FROM points p"]
        sql.append("JOIN series s ON s.id = p.series_id WHERE p.measurement = ?")
        args: list[Any] = [measurement]
        for key, value in (tags or {}).items():
            sql.append(
                "AND p.series_id IN (SELECT series_id FROM series_tags"
                " WHERE measurement = ? AND key = ? AND value = ?)"
            )
            args += [measurement, key, value]
        if start_ns is not None:
            sql.append("AND p.ts >= ?")
            args.append(int(start_ns))
        if end_ns is not None:
            sql.append("AND p.ts < ?")
            args.append(int(end_ns))
        sql.append(
            "ORDER BY p.ts DESC, p.series_id DESC" if newest_first else "ORDER BY p.ts, p.series_id"
        )
        wanted = list(fields) if fields else None
        if wanted is None:
            sql.append("LIMIT ?")
            args.append(int(limit))
        rows: list[dict[str, Any]] = []
        series_tags: dict[int, dict[str, str]] = {}
        with self._lock:
            try:
                cursor = self._db.execute(" ".join(sql), args)
                while len(rows) < limit:
                    chunk = cursor.fetchmany(500)
                    if not chunk:
                        break
                    for series_id, ts, fields_json, tags_json in chunk:
                        values = orjson.loads(fields_json)
                        if wanted is not None:
                            values = {k: values[k] for k in wanted if k in values}
                            if not values:  # InfluxDB leaves out rows without any of them
                                continue
                        point_tags = series_tags.get(series_id)
                        if point_tags is None:
                            point_tags = series_tags[series_id] = orjson.loads(tags_json)
                        rows.append({"time": ts, **point_tags, **values})
                        if len(rows) >= limit:
                            break
                cursor.close()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"point store {self.path}: {exc}") from None
        return rows

    def tag_values(self, measurement: str, tag: str) -> list[str]:
        with self._lock:
            try:
                found = self._db.execute(
                    "SELECT DISTINCT value FROM series_tags WHERE measurement = ? AND key = ?"
                    " ORDER BY value",
                    (measurement, tag),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"point store {self.path}: {exc}") from None
        return [str(row[0]) for row in found]

    def count(self, measurement: str) -> int:
        """Number of points in a measurement (for tests and the demo's console)."""
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM points WHERE measurement = ?", (measurement,)
            ).fetchone()
        return int(row[0])


def line_fields(line: str) -> tuple[str, dict[str, FieldValue]]:
    """(measurement, fields) of one line; ValueError when it is not line protocol."""
    measurement, _, _, fields, _ = _parse(line)
    return measurement, fields


def _parse(line: str) -> tuple[str, str, dict[str, str] | None, dict[str, FieldValue], int]:
    """(measurement, head, tags or None, fields, ts); tags None means "parse the head if new".

    Lines without backslashes or quotes (most of them) are split with str methods; the others
    go through a scanner that honours every escape to_line writes.
    """
    tags: dict[str, str] | None = None
    try:
        if "\\" in line:
            raise ValueError("escapes")
        head, _, rest = line.partition(" ")
        body, _, ts_text = rest.rpartition(" ")
        fields = _quoted_fields(body) if '"' in body else _plain_fields(body)
        ts = int(ts_text)
        measurement = head.split(",", 1)[0]
    except ValueError:  # escapes, a quote in a key, or a bad line: the scanner tells which
        measurement, tags, fields, ts = _parse_escaped(line)
        head = _canonical_head(measurement, tags)
    if not measurement:
        raise ValueError("missing measurement")
    if not fields:
        raise ValueError("missing fields")
    if not _INT64[0] <= ts <= _INT64[1]:
        raise ValueError(f"timestamp {ts} out of range")
    for key, value in fields.items():
        if key == "time":
            raise ValueError(f'invalid field name: input field "time" on {measurement!r}')
        if type(value) is float and not math.isfinite(value):
            raise ValueError(f"invalid number {value!r} for field {key!r}")
        if type(value) is int and not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"value out of range for field {key!r}")
    return measurement, head, tags, fields, ts


def _conflict(measurement: str, field: str, kind: str, known: str) -> str:
    return (
        f'field type conflict: input field "{field}" on measurement "{measurement}"'
        f" is type {kind}, already exists as type {known}"
    )


def _plain_fields(body: str) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for pair in body.split(","):
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"bad field {pair!r}")
        fields[key] = _number(raw)
    return fields


def _quoted_fields(body: str) -> dict[str, FieldValue]:
    """Fields of a line without backslashes: a string then holds no quote, maybe commas."""
    fields: dict[str, FieldValue] = {}
    pieces = body.split(",")
    i, n = 0, len(pieces)
    while i < n:
        key, sep, raw = pieces[i].partition("=")
        i += 1
        if not sep or not key or '"' in key:
            raise ValueError(f"bad field {key!r}")
        if raw[:1] == '"':
            while raw.count('"') < 2:  # the string had commas: glue its pieces back
                if i >= n:
                    raise ValueError(f"unterminated string in field {key!r}")
                raw += "," + pieces[i]
                i += 1
            if raw.count('"') != 2 or raw[-1] != '"':
                raise ValueError(f"bad string in field {key!r}")
            fields[key] = raw[1:-1]
        else:
            fields[key] = _number(raw)
    return fields


def _parse_head(head: str) -> tuple[str, dict[str, str]]:
    measurement, *pairs = head.split(",")
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"bad tag {pair!r}")
        tags[key] = value
    return measurement, tags


def _canonical_head(measurement: str, tags: dict[str, str]) -> str:
    # Unambiguous (JSON) rather than re-escaped: only used as a cache key for this series.
    return orjson.dumps([measurement, sorted(tags.items())]).decode()
