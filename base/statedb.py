"""The state store: SQLite (one file, WAL) by default, PostgreSQL (psycopg 3) for several workers.

Never write dialect-specific SQL outside this module's templates; one schema serves both.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from hazwatch.base.errors import ConfigError, StoreUnavailable

# Templates in migrations: {id} an auto-increment primary key, {blob} binary, {text} text.
_TEMPLATES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "text": "TEXT"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "text": "TEXT"},
}


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...


class StateDB:
    """A connection factory (one connection per thread) plus versioned migrations.

    SQL is written with `?` placeholders; for PostgreSQL they become `%s`.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        if dsn.startswith("sqlite:///"):
            self.kind = "sqlite"
            self.path: Path | None = Path(dsn[len("sqlite:///") :])
        elif dsn.startswith(("postgresql://", "postgres://")):
            self.kind = "postgres"
            self.path = None
        else:
            raise ConfigError(
                f"state store URL must be sqlite:///path or postgresql://…, got {dsn}"
            )
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    # connections
    def _connect(self) -> Any:
        if self.kind == "sqlite":
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            # before the first table: a new file gives back what is deleted (incremental_vacuum)
            # instead of keeping it free for ever; an existing one changes at its next VACUUM
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn
        try:
            import psycopg

            return psycopg.connect(self.dsn, autocommit=True)
        except Exception as exc:  # psycopg.OperationalError and friends
            raise StoreUnavailable(f"PostgreSQL at {self.dsn}: {exc}") from exc

    @property
    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.kind == "postgres" and (conn.closed or conn.broken):
            # the server went away (restart, failover, terminated backend): the failure was
            # transient to the caller, so the next call must reach the server anew
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.kind == "postgres" else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Cursor:
        cur: Cursor = self.conn.execute(self.sql(statement), params)
        return cur

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(statement, params).fetchall())

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        cur = self.conn.cursor()
        cur.executemany(self.sql(statement), list(rows))

    @contextmanager
    def transaction(self) -> Iterator[StateDB]:
        """One atomic unit; commit on success, roll back on error."""
        conn = self.conn
        if self.kind == "sqlite" and conn.in_transaction:
            # nested (a registry refresh that migrates, inside a processor's transaction): a
            # savepoint, as psycopg nests `conn.transaction()` on PostgreSQL
            name = f"nested_{id(object())}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                raise
            conn.execute(f"RELEASE {name}")
        elif self.kind == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                # a COMMIT that fails (busy, disk full) leaves the transaction open: every
                # later BEGIN on this thread's connection would fail
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        else:
            with conn.transaction():
                yield self

    def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Apply the migrations of `component` not yet applied; returns the version reached.

        Each entry is one version (possibly several statements separated by `;`), never edited
        once released: add a new entry instead.
        """
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        with self.transaction():
            if self.kind == "postgres":
                # Two workers starting at once must not both migrate.
                self.execute("SELECT pg_advisory_xact_lock(4242)")
            rows = self.query(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            )
            current = int(rows[0][0]) if rows else 0
            for version in range(current + 1, len(migrations) + 1):
                body = migrations[version - 1].format(**_TEMPLATES[self.kind])
                for statement in body.split(";"):
                    if statement.strip():
                        self.execute(statement)
            if len(migrations) > current:
                if rows:
                    self.execute(
                        "UPDATE schema_version SET version = ? WHERE component = ?",
                        (len(migrations), component),
                    )
                else:
                    self.execute(
                        "INSERT INTO schema_version (component, version) VALUES (?, ?)",
                        (component, len(migrations)),
                    )
        return max(current, len(migrations))

    def free_bytes(self) -> int:
        """SQLite: the bytes of free pages in the file (what a vacuum gives back); else 0."""
        if self.kind != "sqlite":
            return 0
        pages = int(self.query("PRAGMA freelist_count")[0][0])
        return pages * int(self.query("PRAGMA page_size")[0][0])

    def incremental_vacuum(self) -> None:
        """Give the free pages back to the file system (SQLite with auto_vacuum=INCREMENTAL,
        every file made since it is set; others: nothing; PostgreSQL's autovacuum does its
        own)."""
        if self.kind == "sqlite":
            # a script runs the pragma to its end (one step of `execute` frees one page);
            # outside a transaction only (a script commits the one open first)
            self.conn.executescript("PRAGMA incremental_vacuum;")

    def vacuum(self) -> None:
        """Rewrite the whole store: SQLite with auto_vacuum=INCREMENTAL from then on (a file
        made before it needs this once; it takes the write lock and twice the file's room for
        as long as it runs), PostgreSQL VACUUM ANALYZE."""
        if self.kind == "sqlite":
            self.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self.execute("VACUUM")
        else:
            self.execute("VACUUM ANALYZE")

    def ping(self) -> None:
        try:
            self.query("SELECT 1")
        except Exception as exc:
            raise StoreUnavailable(f"state store {self.describe()}: {exc}") from exc

    def describe(self) -> str:
        return str(self.path) if self.kind == "sqlite" else self.dsn.split("@")[-1]

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # closing from another thread: nothing more to do
                pass
        self._local = threading.local()
