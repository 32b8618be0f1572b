"""Dead letters: every message hazwatch could not accept, kept with raw bytes, topic, time, reason.

Never drop one uncounted (stored, or past its source's burst counted as suppressed, before its
message is acknowledged), and never let them grow without bound: raw bytes, rate and store capped.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter, Gauge

from hazwatch.base.statedb import StateDB
from hazwatch.devices.timeparse import format_ts
from hazwatch.devices.topics import DEADLETTER_ROOT

log = logging.getLogger("hazwatch.deadletters")

DEADLETTERS = Counter(
    "hazwatch_deadletters_total", "Messages dead-lettered (stored or suppressed)", ["reason"]
)
SUPPRESSED = Counter(
    "hazwatch_deadletters_suppressed_total",
    "Dead letters counted but not stored: their source was past its burst for the minute",
    ["reason"],
)
PRUNED = Counter(
    "hazwatch_deadletters_pruned_total",
    "Stored dead letters removed, oldest first, to keep the store within its caps",
)
STORE_FULL = Gauge(
    "hazwatch_deadletter_store_full", "1 while the dead-letter store is at its cap (oldest pruned)"
)

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS deadletters (
        id {id},
        received_ns BIGINT NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        raw {blob} NOT NULL
    );
    CREATE INDEX IF NOT EXISTS deadletters_received ON deadletters (received_ns)
    """,
    # Bounded dead letters (issue #21): `raw` holds at most the first keep_bytes of the payload,
    # raw_len and raw_sha256 describe the whole of it; stored_bytes is what the byte cap counts.
    # Letters of a source past its burst are only counted, per source, minute and reason.
    # deadletters_size covers counting and pruning: SQLite never reads the raw bytes for them.
    """
    ALTER TABLE deadletters ADD COLUMN raw_len BIGINT;
    ALTER TABLE deadletters ADD COLUMN raw_sha256 TEXT;
    ALTER TABLE deadletters ADD COLUMN source TEXT;
    ALTER TABLE deadletters ADD COLUMN stored_bytes BIGINT;
    UPDATE deadletters SET raw_len = length(raw),
        stored_bytes = length(raw) + length(topic) + length(message);
    CREATE TABLE IF NOT EXISTS deadletter_suppressed (
        source TEXT NOT NULL,
        minute_ns BIGINT NOT NULL,
        reason TEXT NOT NULL,
        suppressed BIGINT NOT NULL,
        first_ns BIGINT NOT NULL,
        last_ns BIGINT NOT NULL,
        PRIMARY KEY (source, minute_ns, reason)
    );
    CREATE INDEX IF NOT EXISTS deadletter_suppressed_minute ON deadletter_suppressed (minute_ns);
    CREATE INDEX IF NOT EXISTS deadletters_size ON deadletters (id, stored_bytes)
    """,
]

MINUTE_NS = 60_000_000_000
TOPIC_MAX_CHARS = 1024  # a valid device topic is < 300; the rest is only for a person to read
MESSAGE_MAX_CHARS = 4096
SOURCE_MAX_CHARS = 200
OVERFLOW_SOURCE = "(more sources than the limit this minute)"
# Pruning takes the store down to this share of a cap, so that it runs once per tenth of the
# cap inserted, not on every insert; below CLEAR_SHARE of both caps the store is no longer full.
LOW_WATER = 0.9
CLEAR_SHARE = 0.8
_PRUNE_LOCK_PG = 4243  # advisory lock id: one worker prunes at a time (4242 is migrate's)


def source_of(topic: str) -> str:
    """Who sent a message, the unit of the rate limit: `site/family/device` of a device topic
    hw/{site}/{family}/{device}/{kind}, else the topic itself (tcp://peer, hazwatch/derived)."""
    parts = topic.split("/", 4)
    if len(parts) == 5 and parts[0] == "hw":
        return sanitize_text("/".join(parts[1:4]), SOURCE_MAX_CHARS)
    return sanitize_text(topic, SOURCE_MAX_CHARS)


def sanitize_text(value: str, max_chars: int) -> str:
    """Text any state store can hold: at most `max_chars`, no NUL (PostgreSQL refuses it in
    TEXT), no lone surrogate (no UTF-8 for it), each written as its escape instead."""
    if len(value) > max_chars:
        value = value[:max_chars] + "…"
    if value.isascii() and "\x00" not in value:
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ns: int
    topic: str
    reason: str  # short key: bad_json, missing_field, out_of_range, influx_rejected ...
    message: str  # the sentence a person reads
    raw: bytes  # the payload, or (stored ones) at most its first keep_bytes
    id: int | None = None
    raw_len: int | None = None  # the whole payload's length; None: len(raw), nothing cut
    raw_sha256: str | None = None  # hex SHA-256 of the whole payload; None: of raw
    source: str | None = None  # the rate limit's unit; None: source_of(topic)

    @property
    def truncated(self) -> bool:
        """Only the first bytes of the payload are kept: it cannot be replayed."""
        return self.raw_len is not None and self.raw_len > len(self.raw)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "time": format_ts(self.received_ns),
            "topic": self.topic,
            "source": self.source or source_of(self.topic),
            "reason": self.reason,
            "message": self.message,
            "raw_base64": base64.b64encode(self.raw).decode(),
            "raw_len": self.raw_len if self.raw_len is not None else len(self.raw),
            "raw_sha256": self.raw_sha256 or hashlib.sha256(self.raw).hexdigest(),
            "raw_truncated": self.truncated,
        }

    def mqtt_topic(self) -> str:
        """hw/deadletter/{reason}/{original topic without hw/}."""
        original = self.topic.removeprefix("hw/") if self.topic.startswith("hw/") else "unknown"
        return f"{DEADLETTER_ROOT}/{self.reason}/{original}"[:1024]

    def mqtt_payload(self) -> bytes:
        return orjson.dumps(self.to_json())


@dataclass(frozen=True, slots=True)
class DeadLetterLimits:
    """How much the dead letters may take (Settings.deadletter_*)."""

    keep_bytes: int = 64 * 1024  # of each payload
    burst_per_min: int = 20  # per source and minute, stored and published whole
    max_rows: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    # distinct sources a minute with a burst of their own; the rest share one (a client
    # inventing topics must not get a burst per topic)
    max_sources_per_min: int = 1000
    # reasons that are hazwatch's failure, not the device's: never rate-limited, since each
    # is a message to replay after the fix (only the store's caps bound them)
    always_kept: frozenset[str] = frozenset({"internal_error"})
    # the totals are counted again at least this often while letters come in (other workers
    # add to the same store), and at once when this process's estimate passes a cap
    count_every_s: float = 10.0


@dataclass(slots=True)
class _Usage:
    rows: int = 0
    bytes: int = 0
    suppressed_rows: int = 0
    measured_ns: int = 0


class DeadLetterStore:
    """The dead letters of one state store (SQLite or PostgreSQL), bounded by `limits`.

    The rate limit is kept in this process: with several workers on one PostgreSQL each
    keeps its own burst per source, so a source may get up to workers × burst a minute.
    """

    def __init__(
        self,
        db: StateDB,
        limits: DeadLetterLimits | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.db = db
        self.limits = limits or DeadLetterLimits()
        self.clock = clock
        db.migrate("deadletters", MIGRATIONS)
        self._lock = threading.Lock()
        self._minute = -1
        self._per_source: dict[str, int] = {}  # this minute: letters seen per source
        self._usage = _Usage()
        self._counted_at = 0.0  # monotonic
        self._maintaining = False
        self._full = False
        self.pruned_total = 0
        self.suppressed_total = 0
        self.last_pruned_ns: int | None = None
        self._maintain(force=True)

    # adding
    def add_many(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Store `letters` in one transaction; returns those kept (each source's first
        `burst_per_min` this minute, raw cut to `keep_bytes`, length, hash and source filled),
        the ones to publish. The others are counted per source, minute and reason."""
        if not letters:
            return []
        now_ns = self.clock()
        minute_ns = now_ns // MINUTE_NS * MINUTE_NS
        kept, over, taken = self._admit(letters, minute_ns)
        stored = [self._prepared(letter) for letter in kept]
        suppressed: dict[tuple[str, str], list[int]] = {}  # (source, reason) → count, first, last
        for letter, source in over:
            entry = suppressed.get((source, letter.reason))
            if entry is None:
                suppressed[(source, letter.reason)] = [1, letter.received_ns, letter.received_ns]
            else:
                entry[0] += 1
                entry[1] = min(entry[1], letter.received_ns)
                entry[2] = max(entry[2], letter.received_ns)
        try:
            with self.db.transaction():
                if stored:
                    self.db.executemany(
                        "INSERT INTO deadletters (received_ns, topic, reason, message, raw, "
                        "raw_len, raw_sha256, source, stored_bytes) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [_row(d) for d in stored],
                    )
                if suppressed:
                    # in key order: two workers upserting the same rows lock them in one order
                    self.db.executemany(
                        "INSERT INTO deadletter_suppressed "
                        "(source, minute_ns, reason, suppressed, first_ns, last_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (source, minute_ns, reason) DO UPDATE SET "
                        "suppressed = deadletter_suppressed.suppressed + excluded.suppressed, "
                        "first_ns = CASE WHEN excluded.first_ns < deadletter_suppressed.first_ns "
                        "THEN excluded.first_ns ELSE deadletter_suppressed.first_ns END, "
                        "last_ns = CASE WHEN excluded.last_ns > deadletter_suppressed.last_ns "
                        "THEN excluded.last_ns ELSE deadletter_suppressed.last_ns END",
                        [
                            (source, minute_ns, reason, n, first, last)
                            for (source, reason), (n, first, last) in sorted(suppressed.items())
                        ],
                    )
        except BaseException:
            self._give_back(taken, minute_ns)  # the batch is retried: count it then
            raise
        for letter in letters:
            DEADLETTERS.labels(letter.reason).inc()
        for (_, reason), (n, _, _) in suppressed.items():
            SUPPRESSED.labels(reason).inc(n)
        with self._lock:
            self.suppressed_total += len(over)
            self._usage.rows += len(stored)
            self._usage.bytes += sum(_stored_bytes(d) for d in stored)
            self._usage.suppressed_rows += len(suppressed)
        self._maintain()
        return stored

    def _admit(
        self, letters: Sequence[DeadLetter], minute_ns: int
    ) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]], list[str]]:
        """(kept, suppressed with their source, the sources counted) under this minute's
        burst per source."""
        limits = self.limits
        kept: list[DeadLetter] = []
        over: list[tuple[DeadLetter, str]] = []
        taken: list[str] = []
        with self._lock:
            if minute_ns != self._minute:
                self._minute = minute_ns
                self._per_source = {}
            per_source = self._per_source
            for letter in letters:
                source = letter.source or source_of(letter.topic)
                if letter.reason in limits.always_kept:
                    kept.append(_with_source(letter, source))
                    continue
                seen = per_source.get(source)
                if seen is None and len(per_source) >= limits.max_sources_per_min:
                    source = OVERFLOW_SOURCE
                    seen = per_source.get(source)
                seen = (seen or 0) + 1
                per_source[source] = seen
                taken.append(source)
                if seen <= limits.burst_per_min:
                    kept.append(_with_source(letter, source))
                else:
                    over.append((letter, source))
        return kept, over, taken

    def _give_back(self, taken: list[str], minute_ns: int) -> None:
        with self._lock:
            if minute_ns != self._minute:
                return
            for source in taken:
                left = self._per_source.get(source, 0) - 1
                if left > 0:
                    self._per_source[source] = left
                else:
                    self._per_source.pop(source, None)

    def _prepared(self, letter: DeadLetter) -> DeadLetter:
        """The letter as stored: raw cut to keep_bytes, length and hash of the whole, text any
        store can hold."""
        keep = self.limits.keep_bytes
        raw = letter.raw
        raw_len = letter.raw_len if letter.raw_len is not None else len(raw)
        sha = letter.raw_sha256 or hashlib.sha256(raw).hexdigest()
        if len(raw) > keep:
            raw = bytes(memoryview(raw)[:keep])
        return dataclasses.replace(
            letter,
            topic=sanitize_text(letter.topic, TOPIC_MAX_CHARS),
            reason=sanitize_text(letter.reason, 64),
            message=sanitize_text(letter.message, MESSAGE_MAX_CHARS),
            raw=bytes(raw),
            raw_len=raw_len,
            raw_sha256=sha,
            source=sanitize_text(letter.source or source_of(letter.topic), SOURCE_MAX_CHARS),
        )

    def prune_older(self, before_ns: int, *, dry_run: bool = False) -> int:
        """Delete the letters received before `before_ns` and the suppressed counts of the
        minutes before it (issue #19 item 5: by age, beside the caps); returns the letters
        that (would) go."""
        if dry_run:
            rows = self.db.query(
                "SELECT COUNT(*) FROM deadletters WHERE received_ns < ?", (before_ns,)
            )
            return int(rows[0][0])
        with self.db.transaction():
            cursor = self.db.execute("DELETE FROM deadletters WHERE received_ns < ?", (before_ns,))
            self.db.execute("DELETE FROM deadletter_suppressed WHERE minute_ns < ?", (before_ns,))
        pruned = max(int(cursor.rowcount), 0)
        if pruned:
            PRUNED.inc(pruned)
            with self._lock:
                self.pruned_total += pruned
        self._count()
        return pruned

    # the caps
    def _maintain(self, force: bool = False) -> None:
        """Count the store again when it is due (or this process's estimate passed a cap);
        prune the oldest letters when a cap is passed. Never on every insert."""
        limits = self.limits
        with self._lock:
            usage = self._usage
            over_estimate = usage.rows > limits.max_rows or usage.bytes > limits.max_bytes
            due = time.monotonic() - self._counted_at >= limits.count_every_s
            if self._maintaining or not (force or over_estimate or due):
                return
            self._maintaining = True
        try:
            self._count()
            usage = self._usage
            if (
                usage.rows > limits.max_rows
                or usage.bytes > limits.max_bytes
                or usage.suppressed_rows > limits.max_rows
            ):
                self._prune()
                self._count()
            self._judge_full()
        except Exception:  # maintenance: the letters themselves are stored, try again later
            log.exception("could not count or prune the dead-letter store")
        finally:
            with self._lock:
                self._maintaining = False
                self._counted_at = time.monotonic()

    def _count(self) -> None:
        rows = self.db.query("SELECT COUNT(*), COALESCE(SUM(stored_bytes), 0) FROM deadletters")
        suppressed = self.db.query("SELECT COUNT(*) FROM deadletter_suppressed")
        with self._lock:
            self._usage = _Usage(
                int(rows[0][0]), int(rows[0][1]), int(suppressed[0][0]), self.clock()
            )

    def _prune(self) -> None:
        limits = self.limits
        keep_rows = int(limits.max_rows * LOW_WATER)
        keep_bytes = int(limits.max_bytes * LOW_WATER)
        with self.db.transaction():
            if self.db.kind == "postgres":
                got = self.db.query("SELECT pg_try_advisory_xact_lock(?)", (_PRUNE_LOCK_PG,))
                if not got[0][0]:
                    return  # another worker prunes right now
            # The oldest letter to keep: the newest ones within both low-water marks.
            first_kept = self.db.query(
                "SELECT MIN(id) FROM (SELECT id, "
                "ROW_NUMBER() OVER (ORDER BY id DESC) AS newer_rows, "
                "SUM(stored_bytes) OVER (ORDER BY id DESC "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS newer_bytes "
                "FROM deadletters) AS newest WHERE newer_rows <= ? AND newer_bytes <= ?",
                (keep_rows, keep_bytes),
            )[0][0]
            pruned = 0
            if first_kept is not None or self._usage.rows:
                cursor = self.db.execute(
                    "DELETE FROM deadletters WHERE id < ?",
                    (int(first_kept) if first_kept is not None else 2**62,),
                )
                pruned = max(int(cursor.rowcount), 0)
            if self._usage.suppressed_rows > limits.max_rows:
                oldest = self.db.query(
                    "SELECT minute_ns FROM deadletter_suppressed "
                    "ORDER BY minute_ns DESC LIMIT 1 OFFSET ?",
                    (keep_rows,),
                )
                if oldest:
                    self.db.execute(
                        "DELETE FROM deadletter_suppressed WHERE minute_ns <= ?", (oldest[0][0],)
                    )
        if pruned:
            PRUNED.inc(pruned)
            with self._lock:
                self.pruned_total += pruned
                self.last_pruned_ns = self.clock()
                becomes_full = not self._full
                self._full = True
            STORE_FULL.set(1)
            if becomes_full:
                log.warning(
                    "dead-letter store full (cap %d letters / %d MB): the oldest are pruned "
                    "from now on; %d pruned now",
                    limits.max_rows,
                    limits.max_bytes // (1024 * 1024),
                    pruned,
                )

    def _judge_full(self) -> None:
        """Full from the first prune (or a start near the cap) until letters are removed
        (replayed, deleted) below CLEAR_SHARE of both caps."""
        limits, usage = self.limits, self._usage
        near = (
            usage.rows >= limits.max_rows * LOW_WATER or usage.bytes >= limits.max_bytes * LOW_WATER
        )
        clear = (
            usage.rows < limits.max_rows * CLEAR_SHARE
            and usage.bytes < limits.max_bytes * CLEAR_SHARE
        )
        with self._lock:
            was = self._full
            self._full = (was and not clear) or near
            now = self._full
        STORE_FULL.set(1 if now else 0)
        if now and not was:
            log.warning(
                "dead-letter store full (%d letters, %d MB of caps %d / %d MB): the oldest are "
                "pruned from now on",
                usage.rows,
                usage.bytes // (1024 * 1024),
                limits.max_rows,
                limits.max_bytes // (1024 * 1024),
            )
        elif was and not now:
            log.info("dead-letter store no longer full (%d letters)", usage.rows)

    def full(self) -> bool:
        """At its cap: every new letter pushes out the oldest (no query; as last counted)."""
        return self._full

    def status(self) -> dict[str, Any]:
        """For /api/health: no query, the figures as last counted plus this process's since."""
        limits = self.limits
        with self._lock:
            usage = dataclasses.replace(self._usage)
            full = self._full
            suppressed_this_minute = sum(
                max(n - limits.burst_per_min, 0) for n in self._per_source.values()
            )
            return {
                "full": full,
                "message": (
                    "dead-letter store full: oldest pruned"
                    if full
                    else "dead-letter store within its caps"
                ),
                "rows": usage.rows,
                "bytes": usage.bytes,
                "max_rows": limits.max_rows,
                "max_bytes": limits.max_bytes,
                "counted_ns": usage.measured_ns,
                "pruned_total": self.pruned_total,
                "last_pruned_ns": self.last_pruned_ns,
                "suppressed_total": self.suppressed_total,
                "suppressed_this_minute": suppressed_this_minute,
                "burst_per_min": limits.burst_per_min,
                "keep_bytes": limits.keep_bytes,
            }

    # reading
    def latest(self, limit: int = 50, reason: str | None = None) -> list[DeadLetter]:
        where = "WHERE reason = ? " if reason else ""
        params: tuple[object, ...] = (reason, limit) if reason else (limit,)
        rows = self.db.query(
            "SELECT id, received_ns, topic, reason, message, raw, raw_len, raw_sha256, source "
            f"FROM deadletters {where}ORDER BY received_ns DESC, id DESC LIMIT ?",
            params,
        )
        return [_letter(r) for r in rows]

    def after(self, last_id: int, limit: int = 100) -> list[DeadLetter]:
        """The dead letters stored after the one with id `last_id`, oldest first (the screen's
        live feed); their raw bytes are not read."""
        rows = self.db.query(
            "SELECT id, received_ns, topic, reason, message, raw_len, raw_sha256, source "
            "FROM deadletters WHERE id > ? ORDER BY id LIMIT ?",
            (max(-(2**63), min(last_id, 2**63 - 1)), limit),
        )
        return [_letter((*r[:5], b"", *r[5:])) for r in rows]

    def last_id(self) -> int:
        """The id of the newest dead letter stored (0: none)."""
        return int(self.db.query("SELECT COALESCE(MAX(id), 0) FROM deadletters")[0][0])

    def matching(
        self, *, reason: str | None = None, since_ns: int | None = None, limit: int = 10_000
    ) -> list[DeadLetter]:
        """Dead letters of `reason` received since `since_ns`, oldest first (for replay)."""
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        if reason:
            where.append("reason = ?")
            params.append(reason)
        if since_ns is not None:
            where.append("received_ns >= ?")
            params.append(since_ns)
        rows = self.db.query(
            "SELECT id, received_ns, topic, reason, message, raw, raw_len, raw_sha256, source "
            f"FROM deadletters WHERE {' AND '.join(where)} ORDER BY received_ns, id LIMIT ?",
            (*params, limit),
        )
        return [_letter(r) for r in rows]

    def remove(self, ids: Sequence[int]) -> int:
        """Delete these dead letters (replayed: their messages are back on the broker)."""
        removed = 0
        with self.db.transaction():
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                cur = self.db.execute(
                    f"DELETE FROM deadletters WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                removed += max(cur.rowcount, 0)
        return removed

    def count_by_reason(self) -> dict[str, int]:
        rows = self.db.query("SELECT reason, COUNT(*) FROM deadletters GROUP BY reason")
        return {str(r[0]): int(r[1]) for r in rows}

    def suppressed(self, limit: int = 100, since_ns: int = 0) -> list[dict[str, object]]:
        """What the rate limit counted and did not store, per source, minute and reason,
        newest minute first (for a person: which device flooded, when, with what)."""
        rows = self.db.query(
            "SELECT source, minute_ns, reason, suppressed, first_ns, last_ns "
            "FROM deadletter_suppressed WHERE minute_ns >= ? "
            "ORDER BY minute_ns DESC, suppressed DESC, source LIMIT ?",
            (since_ns, limit),
        )
        return [
            {
                "source": r[0],
                "minute": format_ts(int(r[1])),
                "reason": r[2],
                "suppressed": int(r[3]),
                "first": format_ts(int(r[4])),
                "last": format_ts(int(r[5])),
            }
            for r in rows
        ]

    def suppressed_by_source(self) -> dict[str, int]:
        rows = self.db.query(
            "SELECT source, SUM(suppressed) FROM deadletter_suppressed GROUP BY source"
        )
        return {str(r[0]): int(r[1]) for r in rows}


def _with_source(letter: DeadLetter, source: str) -> DeadLetter:
    return letter if letter.source else dataclasses.replace(letter, source=source)


def _letter(r: Sequence[Any]) -> DeadLetter:
    return DeadLetter(
        int(r[1]),
        r[2],
        r[3],
        r[4],
        bytes(r[5]),
        id=int(r[0]),
        raw_len=int(r[6]) if r[6] is not None else None,
        raw_sha256=r[7],
        source=r[8],
    )


def _stored_bytes(letter: DeadLetter) -> int:
    return len(letter.raw) + len(letter.topic) + len(letter.message)


def _row(letter: DeadLetter) -> tuple[object, ...]:
    return (
        letter.received_ns,
        letter.topic,
        letter.reason,
        letter.message,
        letter.raw,
        letter.raw_len,
        letter.raw_sha256,
        letter.source,
        _stored_bytes(letter),
    )
