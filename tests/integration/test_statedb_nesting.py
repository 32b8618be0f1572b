"""StateDB transactions nest, on SQLite as on PostgreSQL: a transaction opened inside another
(a registry refresh that migrates, inside a processor's own transaction) is a savepoint, so it
neither fails ("cannot start a transaction within a transaction" dead-lettered HJ 212 packets
in the demo) nor commits the outer one early."""

from __future__ import annotations

import pytest

from hazwatch.base.statedb import StateDB
from hazwatch.devices import registry
from tests.samples import REGISTRY_FILE


def _db(url: str) -> StateDB:
    db = StateDB(url)
    db.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return db


def _values(db: StateDB) -> list[int]:
    return [int(r[0]) for r in db.query("SELECT v FROM t ORDER BY v")]


def test_inner_commits_with_the_outer(state_url: str) -> None:
    db = _db(state_url)
    with db.transaction():
        db.execute("INSERT INTO t (v) VALUES (1)")
        with db.transaction():
            db.execute("INSERT INTO t (v) VALUES (2)")
        db.execute("INSERT INTO t (v) VALUES (3)")
    assert _values(db) == [1, 2, 3]


def test_a_failing_inner_rolls_back_only_itself(state_url: str) -> None:
    db = _db(state_url)
    with db.transaction():
        db.execute("INSERT INTO t (v) VALUES (1)")
        with pytest.raises(RuntimeError), db.transaction():
            db.execute("INSERT INTO t (v) VALUES (2)")
            raise RuntimeError("inner")
    assert _values(db) == [1]


def test_a_failing_outer_rolls_back_the_inner_too(state_url: str) -> None:
    db = _db(state_url)
    with pytest.raises(RuntimeError), db.transaction():
        with db.transaction():
            db.execute("INSERT INTO t (v) VALUES (2)")
        raise RuntimeError("outer")
    assert _values(db) == []
    with db.transaction():  # and the connection is usable again
        db.execute("INSERT INTO t (v) VALUES (4)")
    assert _values(db) == [4]


def test_the_registry_loaded_inside_a_processors_transaction(state_url: str) -> None:
    db = _db(state_url)
    with db.transaction():
        db.execute("INSERT INTO t (v) VALUES (1)")
        registry.save(db, registry.load_file(REGISTRY_FILE), "test", 1)  # migrates, nested
        _, stored = registry.load_stored(db)
    assert stored.stations and _values(db) == [1]
