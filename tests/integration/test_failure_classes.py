"""Each class of store failure, provoked on the real SQLite and PostgreSQL, is judged as the
pipeline needs: transient (retry, spool) or the message's own (bisect, dead letter).

docs/failures.md lists the classes; InfluxDB's (400, partial write, type conflict, 5xx, 429,
refused connections) are provoked in test_influx_v1.py and test_influx_v2.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.statedb import StateDB
from hazwatch.ingest.failures import is_transient, reason_of

pytestmark = pytest.mark.integration


def failure(action) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("the action did not fail")


# SQLite


@pytest.fixture()
def sqlite_db(tmp_path: Path) -> StateDB:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.execute("INSERT INTO t VALUES (1, 'x')")
    return db


def test_sqlite_locked_is_transient(sqlite_db: StateDB) -> None:
    assert sqlite_db.path is not None
    sqlite_db.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(sqlite_db.path, timeout=0, isolation_level=None)
    try:
        exc = failure(lambda: other.execute("BEGIN IMMEDIATE"))
    finally:
        sqlite_db.execute("ROLLBACK")
        other.close()
    assert isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
    assert is_transient(exc)


@pytest.mark.parametrize(
    ("sql", "params", "kind", "reason"),
    [
        ("INSERT INTO t VALUES (?, ?)", (1, "dup"), sqlite3.IntegrityError, "store_rejected"),
        ("INSERT INTO t VALUES (?, ?)", (2, None), sqlite3.IntegrityError, "store_rejected"),
        ("INSERT INTO t VALUES (?, ?)", (2**64, "big"), OverflowError, "internal_error"),
        ("INSERT INTO t VALUES (?, ?)", (3, {"a": 1}), sqlite3.ProgrammingError, "internal_error"),
        ("INSERT INTO missing VALUES (?)", (1,), sqlite3.OperationalError, "internal_error"),
    ],
    ids=["unique", "not-null", "int-beyond-64-bits", "unbindable", "no-such-table"],
)
def test_sqlite_refusals_are_the_messages(
    sqlite_db: StateDB, sql: str, params: tuple[object, ...], kind: type, reason: str
) -> None:
    exc = failure(lambda: sqlite_db.execute(sql, params))
    assert isinstance(exc, kind), exc
    assert not is_transient(exc)
    assert reason_of(exc) == reason


# PostgreSQL


@pytest.fixture()
def pg_db(postgres_url: str) -> StateDB:
    db = StateDB(postgres_url)
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
    db.execute("INSERT INTO t VALUES (1, 'x')")
    return db


@pytest.mark.parametrize(
    ("sql", "params", "reason"),
    [
        ("INSERT INTO t VALUES (?, ?)", (1, "dup"), "store_rejected"),
        ("INSERT INTO t VALUES (?, ?)", (2, None), "store_rejected"),
        ("INSERT INTO t VALUES (?, ?)", (2, "nul\x00byte"), "store_rejected"),
        ("INSERT INTO t VALUES (?, ?)", (2**63, "big"), "store_rejected"),
        ("INSERT INTO t VALUES (?, ?)", (2, "\ud800"), "internal_error"),
        ("SELECT 1 / 0", (), "store_rejected"),
    ],
    ids=["unique", "not-null", "nul-in-text", "beyond-bigint", "lone-surrogate", "div-by-zero"],
)
def test_postgres_refusals_are_the_messages(
    pg_db: StateDB, sql: str, params: tuple[object, ...], reason: str
) -> None:
    exc = failure(lambda: pg_db.execute(sql, params))
    assert not is_transient(exc), exc
    assert reason_of(exc) == reason


@pytest.mark.parametrize(
    "sqlstate",
    ["40001", "40P01", "55P03", "57014", "53300", "08006"],
    ids=["serialization", "deadlock", "lock-not-available", "cancelled", "too-many-conns", "conn"],
)
def test_postgres_errors_waiting_can_cure_are_transient(pg_db: StateDB, sqlstate: str) -> None:
    """The server raises each SQLSTATE itself (RAISE … USING ERRCODE), as it would for real."""
    exc = failure(
        lambda: pg_db.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'provoked' USING ERRCODE = '{sqlstate}'; END $$"
        )
    )
    assert isinstance(exc, psycopg.Error) and exc.sqlstate == sqlstate
    assert is_transient(exc)


def test_postgres_lock_timeout_for_real_is_transient(pg_db: StateDB, postgres_url: str) -> None:
    holder = psycopg.connect(postgres_url)
    try:
        holder.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
        waiter = psycopg.connect(postgres_url, autocommit=True)
        waiter.execute("SET lock_timeout = '50ms'")
        exc = failure(lambda: waiter.execute("UPDATE t SET v = 'y' WHERE id = 1"))
        waiter.close()
    finally:
        holder.rollback()
        holder.close()
    assert isinstance(exc, psycopg.errors.LockNotAvailable) and is_transient(exc)


def test_postgres_connection_killed_is_transient(pg_db: StateDB, postgres_url: str) -> None:
    victim = psycopg.connect(postgres_url, autocommit=True)
    pid = victim.info.backend_pid
    pg_db.execute("SELECT pg_terminate_backend(?)", (pid,))
    exc = failure(lambda: victim.execute("SELECT 1"))
    victim.close()
    assert is_transient(exc), exc


def test_postgres_unreachable_is_transient() -> None:
    exc = failure(lambda: StateDB("postgresql://postgres@127.0.0.1:1/test").execute("SELECT 1"))
    assert isinstance(exc, StoreUnavailable) and is_transient(exc)


def test_a_state_store_connection_lost_is_reopened_on_the_next_call(
    pg_db: StateDB, postgres_url: str
) -> None:
    """Transient must mean curable: a terminated backend fails one call, not every call after."""
    pid = pg_db.query("SELECT pg_backend_pid()")[0][0]
    killer = psycopg.connect(postgres_url, autocommit=True)
    killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    exc = failure(lambda: pg_db.query("SELECT 1"))
    assert is_transient(exc)
    assert pg_db.query("SELECT v FROM t WHERE id = 1") == [("x",)]
