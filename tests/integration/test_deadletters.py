"""The dead-letter store's bounds on SQLite and PostgreSQL: raw cut, length and hash, rate limit
per source, suppressed counts, row and byte caps, and text no store can refuse.

Never mock the database: each test runs on a fresh SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from hazwatch.base.statedb import StateDB
from hazwatch.ingest.deadletters import (
    MIGRATIONS,
    MINUTE_NS,
    OVERFLOW_SOURCE,
    DeadLetter,
    DeadLetterLimits,
    DeadLetterStore,
    source_of,
)

pytestmark = pytest.mark.integration

T0 = 1_780_000_000 * 1_000_000_000 // MINUTE_NS * MINUTE_NS  # the start of a minute


class Clock:
    def __init__(self, now_ns: int = T0) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture()
def db(state_url: str) -> Iterator[StateDB]:
    database = StateDB(state_url)
    yield database
    database.close()


def letter(device: str = "gate-1", raw: bytes = b"{}", reason: str = "bad_json") -> DeadLetter:
    return DeadLetter(T0, f"hw/s1/rfid/{device}/read", reason, f"{reason} from {device}", raw)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_raw_is_cut_to_keep_bytes_with_the_whole_length_and_hash(db: StateDB) -> None:
    store = DeadLetterStore(db, DeadLetterLimits(keep_bytes=1024), clock=Clock())
    raw = bytes(range(256)) * 800  # 200 KiB
    (kept,) = store.add_many([letter(raw=raw, reason="too_large")])
    assert kept.raw == raw[:1024] and kept.raw_len == len(raw)
    assert kept.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert kept.truncated and kept.source == "s1/rfid/gate-1"
    (stored,) = store.latest()
    assert (stored.raw, stored.raw_len, stored.raw_sha256) == (
        kept.raw,
        kept.raw_len,
        kept.raw_sha256,
    )
    shown = stored.to_json()
    assert shown["raw_truncated"] is True and shown["raw_len"] == len(raw)
    assert shown["source"] == "s1/rfid/gate-1"


def test_a_small_payload_is_kept_whole_and_described(db: StateDB) -> None:
    store = DeadLetterStore(db, clock=Clock())
    (kept,) = store.add_many([letter(raw=b'{"x": 1')])
    (stored,) = store.latest()
    assert stored.raw == b'{"x": 1' and stored.raw_len == 7 and not stored.truncated
    assert stored.raw_sha256 == hashlib.sha256(b'{"x": 1').hexdigest() == kept.raw_sha256
    assert stored.to_json()["raw_truncated"] is False


def test_length_and_hash_given_by_the_consumer_are_kept(db: StateDB) -> None:
    """An oversize MQTT payload arrives already cut: its length and hash are the whole's."""
    store = DeadLetterStore(db, clock=Clock())
    given = DeadLetter(
        T0,
        "hw/s1/air/a1/reading",
        "too_large",
        "20 MB",
        b"x" * 100,
        raw_len=20_000_000,
        raw_sha256="ab" * 32,
    )
    (stored_back,) = store.add_many([given])
    (stored,) = store.latest()
    assert stored.raw_len == 20_000_000 and stored.raw_sha256 == "ab" * 32
    assert stored.truncated and stored_back.truncated


def test_text_no_store_could_hold_is_escaped(db: StateDB) -> None:
    store = DeadLetterStore(db, clock=Clock())
    hostile = DeadLetter(
        T0,
        "hw/s1/air/a\x00b/reading",
        "bad_json",
        "bad byte \x00 and a lone surrogate \udcff, 中文 kept",
        b"\x00\xff",
    )
    store.add_many([hostile])
    (stored,) = store.latest()
    assert stored.topic == "hw/s1/air/a\\x00b/reading"
    assert stored.message == "bad byte \\x00 and a lone surrogate \\udcff, 中文 kept"
    assert stored.raw == b"\x00\xff"


def test_huge_message_text_is_bounded(db: StateDB) -> None:
    store = DeadLetterStore(db, clock=Clock())
    store.add_many([DeadLetter(T0, "hw/s1/air/a1/reading", "x", "m" * 1_000_000, b"")])
    (stored,) = store.latest()
    assert len(stored.message) <= 4097


def test_each_source_keeps_its_burst_a_minute_and_the_rest_is_counted(db: StateDB) -> None:
    clock = Clock()
    store = DeadLetterStore(db, DeadLetterLimits(burst_per_min=20), clock=clock)
    before = metric("hazwatch_deadletters_suppressed_total", reason="flood_reason")
    flood = [letter("gate-1", raw=str(i).encode(), reason="flood_reason") for i in range(25)]
    other = [letter("gate-2", reason="flood_reason") for _ in range(3)]
    kept = store.add_many(flood[:10]) + store.add_many(flood[10:] + other)
    assert [k.raw for k in kept if k.source == "s1/rfid/gate-1"] == [
        str(i).encode() for i in range(20)
    ]  # the first 20, in order, whole
    assert sum(1 for k in kept if k.source == "s1/rfid/gate-2") == 3
    assert len(store.latest(100)) == 23
    assert store.suppressed_by_source() == {"s1/rfid/gate-1": 5}
    (row,) = store.suppressed()
    assert (row["source"], row["reason"], row["suppressed"]) == (
        "s1/rfid/gate-1",
        "flood_reason",
        5,
    )
    assert metric("hazwatch_deadletters_suppressed_total", reason="flood_reason") == before + 5
    assert store.status()["suppressed_total"] == 5
    assert store.status()["suppressed_this_minute"] == 5
    # the next minute: a new burst
    clock.now_ns += MINUTE_NS
    assert len(store.add_many(flood[:21])) == 20
    assert store.suppressed_by_source() == {"s1/rfid/gate-1": 6}
    assert len(store.suppressed()) == 2  # one row per source, minute and reason


def test_hazwatchs_own_failures_are_never_rate_limited(db: StateDB) -> None:
    """internal_error letters are messages to replay after a fix, not a device's flood."""
    store = DeadLetterStore(db, DeadLetterLimits(burst_per_min=20), clock=Clock())
    bug = [letter("gate-1", raw=str(i).encode(), reason="internal_error") for i in range(50)]
    flood = [letter("gate-1", reason="bad_json") for _ in range(30)]
    kept = store.add_many(bug + flood)
    assert sum(1 for k in kept if k.reason == "internal_error") == 50
    assert sum(1 for k in kept if k.reason == "bad_json") == 20  # its own burst, untouched
    assert store.suppressed_by_source() == {"s1/rfid/gate-1": 10}


def test_the_kind_of_a_topic_does_not_make_a_new_source() -> None:
    assert source_of("hw/s1/air/a1/reading") == source_of("hw/s1/air/a1/hj212") == "s1/air/a1"
    assert source_of("tcp://10.0.0.7") == "tcp://10.0.0.7"
    assert source_of("hazwatch/derived") == "hazwatch/derived"


def test_an_explicit_source_wins_over_the_topic(db: StateDB) -> None:
    store = DeadLetterStore(db, DeadLetterLimits(burst_per_min=2), clock=Clock())
    letters = [
        DeadLetter(T0, f"hw/s1/air/st{i}/hj212", "bad_crc", "m", b"", source="tcp://10.0.0.7")
        for i in range(5)
    ]
    assert len(store.add_many(letters)) == 2
    assert store.suppressed_by_source() == {"tcp://10.0.0.7": 3}


def test_a_client_inventing_sources_shares_one_burst_past_the_limit(db: StateDB) -> None:
    store = DeadLetterStore(
        db, DeadLetterLimits(burst_per_min=2, max_sources_per_min=10), clock=Clock()
    )
    kept = store.add_many([letter(f"dev{i}") for i in range(50)])
    assert len(kept) == 10 + 2
    assert store.suppressed_by_source() == {OVERFLOW_SOURCE: 38}


def test_a_failed_transaction_gives_the_burst_back(db: StateDB) -> None:
    store = DeadLetterStore(db, DeadLetterLimits(burst_per_min=3), clock=Clock())
    db.execute("ALTER TABLE deadletters RENAME TO deadletters_away")
    with pytest.raises(Exception, match="deadletters"):  # no such table: either driver
        store.add_many([letter() for _ in range(3)])
    db.execute("ALTER TABLE deadletters_away RENAME TO deadletters")
    assert len(store.add_many([letter() for _ in range(3)])) == 3  # the retry keeps them


def test_rows_are_capped_oldest_pruned_and_full_is_said(
    db: StateDB, caplog: pytest.LogCaptureFixture
) -> None:
    limits = DeadLetterLimits(burst_per_min=10_000, max_rows=50, count_every_s=3600)
    store = DeadLetterStore(db, limits, clock=Clock())
    assert not store.full() and store.status()["full"] is False
    for start in range(0, 120, 10):
        store.add_many([letter(raw=str(i).encode()) for i in range(start, start + 10)])
    rows = store.latest(1000)
    assert len(rows) <= 50
    assert {r.raw for r in rows} >= {str(i).encode() for i in range(110, 120)}  # newest kept
    assert b"0" not in {r.raw for r in rows}  # oldest gone
    assert store.full()
    status = store.status()
    assert status["full"] is True and status["message"] == "dead-letter store full: oldest pruned"
    assert status["pruned_total"] >= 70 and status["rows"] == len(rows)
    assert sum("dead-letter store full" in r.getMessage() for r in caplog.records) == 1


def test_bytes_are_capped(db: StateDB) -> None:
    limits = DeadLetterLimits(
        keep_bytes=10_000, burst_per_min=10_000, max_bytes=100_000, count_every_s=3600
    )
    store = DeadLetterStore(db, limits, clock=Clock())
    for i in range(30):
        store.add_many([letter(raw=bytes([i]) * 50_000)])  # 10 kB kept of each
    stored = store.latest(1000)
    assert sum(len(r.raw) for r in stored) <= 100_000
    assert stored[0].raw[:1] == bytes([29])  # the newest is there
    assert store.full() and store.status()["bytes"] <= 100_000


def test_pruning_is_not_done_on_every_insert(db: StateDB) -> None:
    limits = DeadLetterLimits(burst_per_min=10_000, max_rows=100, count_every_s=3600)
    store = DeadLetterStore(db, limits, clock=Clock())
    store.add_many([letter() for _ in range(101)])
    assert store.status()["rows"] == 90  # down to the low-water mark
    store.add_many([letter() for _ in range(5)])
    assert store.status()["pruned_total"] == 11  # under the cap again: no prune


def test_a_store_emptied_below_the_caps_is_no_longer_full(db: StateDB) -> None:
    limits = DeadLetterLimits(burst_per_min=10_000, max_rows=100, count_every_s=0)
    store = DeadLetterStore(db, limits, clock=Clock())
    store.add_many([letter() for _ in range(101)])
    assert store.full()
    db.execute("DELETE FROM deadletters")  # replayed, or cleared by a person
    store.add_many([letter()])
    assert not store.full()


def test_suppressed_rows_are_capped_too(db: StateDB) -> None:
    clock = Clock()
    limits = DeadLetterLimits(burst_per_min=1, max_rows=20, count_every_s=0)
    store = DeadLetterStore(db, limits, clock=clock)
    for _minute in range(40):
        store.add_many([letter(), letter()])
        clock.now_ns += MINUTE_NS
    assert len(store.suppressed(1000)) <= 20


def test_the_migration_describes_letters_stored_before_it(state_url: str) -> None:
    db = StateDB(state_url)
    try:
        db.migrate("deadletters", MIGRATIONS[:1])
        db.execute(
            "INSERT INTO deadletters (received_ns, topic, reason, message, raw) "
            "VALUES (?, ?, ?, ?, ?)",
            (T0, "hw/s1/air/a1/reading", "bad_json", "old", b"x" * 3000),
        )
        store = DeadLetterStore(db, clock=Clock())
        (old,) = store.latest()
        assert old.raw_len == 3000 and not old.truncated
        assert old.to_json()["raw_sha256"] == hashlib.sha256(b"x" * 3000).hexdigest()
        assert store.status()["rows"] == 1 and store.status()["bytes"] >= 3000
    finally:
        db.close()


def test_several_workers_add_at_once(state_url: str) -> None:
    """Workers on one store (PostgreSQL: separate processes' connections) neither fail nor
    lose a count; each keeps its own burst (the rate limit is per process)."""
    dbs = [StateDB(state_url) for _ in range(3)]
    try:
        limits = DeadLetterLimits(burst_per_min=5, max_rows=10_000)
        stores = [DeadLetterStore(d, limits, clock=Clock()) for d in dbs]
        errors: list[BaseException] = []

        def work(store: DeadLetterStore) -> None:
            try:
                for _ in range(10):
                    store.add_many([letter("a"), letter("b"), letter("a")])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert len(stores[0].latest(1000)) == 3 * 10  # 5 per source per worker
        assert stores[0].suppressed_by_source() == {"s1/rfid/a": 3 * 15, "s1/rfid/b": 3 * 5}
    finally:
        for d in dbs:
            d.close()
