"""The alert lifecycle on the real state stores, SQLite and PostgreSQL: transitions, history,
the outbox written with each change, migrations of an old store, and the outbox lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hazwatch.alerts.model import AlertSignal, AlertState, Severity
from hazwatch.alerts.store import (
    MIGRATIONS,
    AlertConflict,
    AlertError,
    AlertNotFound,
    AlertStore,
)
from hazwatch.base.statedb import StateDB

pytestmark = pytest.mark.integration


def signal(subject: str = "aq-07", at_ns: int = 1_000) -> AlertSignal:
    return AlertSignal("air_exceedance", subject, Severity.MAJOR, "PM2.5 over", "jy-0012", at_ns)


def test_open_acknowledge_resolve_and_no_second_open_alert(sqlite_url: str) -> None:
    store = AlertStore(StateDB(sqlite_url))
    alert = store.raise_alert(signal())
    assert alert is not None and alert.state is AlertState.OPEN
    assert store.raise_alert(signal(at_ns=2_000)) is None  # same condition: counted, not new
    assert store.get(alert.alert_id).count == 2
    acked = store.acknowledge(alert.alert_id, at_ns=3_000, by="officer-1")
    assert acked.state is AlertState.ACKNOWLEDGED and acked.acknowledged_by == "officer-1"
    with pytest.raises(AlertError):
        store.acknowledge(alert.alert_id, at_ns=3_500, by="officer-2")
    assert store.raise_alert(signal(at_ns=4_000)) is None  # still one while acknowledged
    resolved = store.resolve(alert.alert_id, at_ns=5_000, by="officer-1")
    assert resolved.state is AlertState.RESOLVED and resolved.resolved_ns == 5_000
    again = store.raise_alert(signal(at_ns=6_000))
    assert again is not None and again.alert_id != alert.alert_id


def test_clear_resolves_an_open_alert_at_once_and_ignores_healthy_subjects(
    sqlite_url: str,
) -> None:
    store = AlertStore(StateDB(sqlite_url))
    store.clear("air_exceedance", "never-alerted", 1)  # nothing open: nothing happens
    alert = store.raise_alert(signal())
    assert alert is not None
    store.clear("air_exceedance", "aq-07", 9_000)
    assert store.get(alert.alert_id).state is AlertState.RESOLVED
    assert [a.alert_id for a in store.list(state="resolved")] == [alert.alert_id]


def test_two_workers_raising_at_once_open_one_alert(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A looks, finds nothing open, and B opens the alert before A inserts: the
    database refuses A's second open alert, and A's raise becomes a repeat of B's."""
    a, b = AlertStore(StateDB(state_url)), AlertStore(StateDB(state_url))
    opened = b.raise_alert(signal(at_ns=1_000))
    assert opened is not None
    real_query = a.db.query
    stale = iter([[]])  # A's first look happens "before" B's insert

    def query(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if sql.lstrip().startswith("SELECT") and "state IN" in sql:
            looked = next(stale, None)
            if looked is not None:
                return looked
        return real_query(sql, params)

    monkeypatch.setattr(a.db, "query", query)
    assert a.raise_alert(signal(at_ns=2_000)) is None  # a repeat, not a second alert
    open_now = b.list(state="open")
    assert [x.alert_id for x in open_now] == [opened.alert_id]
    assert b.get(opened.alert_id).count == 2


def test_migration_resolves_duplicate_open_alerts_keeping_the_oldest(state_url: str) -> None:
    db = StateDB(state_url)
    db.migrate("alerts", MIGRATIONS[:1])  # a store from before the unique index
    for alert_id, opened in (("b-newer", 2_000), ("a-older", 1_000), ("c-newest", 3_000)):
        db.execute(
            "INSERT INTO alerts (alert_id, rule, subject, severity, message, site, state, "
            "opened_ns, updated_ns) VALUES (?, 'air_exceedance', 'aq-07', 'major', 'm', 's', "
            "'open', ?, ?)",
            (alert_id, opened, opened),
        )
    store = AlertStore(db)
    assert [a.alert_id for a in store.list(state="open")] == ["a-older"]
    assert {a.alert_id for a in store.list(state="resolved")} == {"b-newer", "c-newest"}
    assert store.raise_alert(signal(at_ns=4_000)) is None  # the kept one counts repeats


# ------------------------------------------------- history and outbox, on both state stores


def test_each_change_has_its_history_entry_and_outbox_row(state_url: str) -> None:
    store = AlertStore(StateDB(state_url))
    first = store.raise_alert(signal())
    assert first is not None
    store.raise_alert(signal(at_ns=1_500))
    store.raise_alert(signal(at_ns=1_700))
    store.escalate(first.alert_id, 1_800, to="duty-chief")
    store.acknowledge(first.alert_id, at_ns=2_000, by="张工", comment="已到场")
    with pytest.raises(AlertConflict):
        store.acknowledge(first.alert_id, at_ns=2_100, by="李工")
    store.clear("air_exceedance", "aq-07", 3_000)
    with pytest.raises(AlertConflict):
        store.resolve(first.alert_id, at_ns=3_100, by="李工")
    with pytest.raises(AlertNotFound):
        store.resolve("0000000000000000", at_ns=3_100, by="李工")
    store.record_notified(first.alert_id, 3_200, target="webhook", key=f"{first.alert_id}:5")
    history = [(h.seq, h.change.value, h.actor) for h in store.history(first.alert_id)]
    assert history == [
        (1, "opened", "air_exceedance"),
        (2, "repeated", "air_exceedance"),
        (3, "escalated", "auto"),
        (4, "acknowledged", "张工"),
        (5, "auto_resolved", "auto"),
        (6, "notified", "auto"),
    ]
    assert store.history(first.alert_id)[1].details == {"count": 3, "last_ns": 1_700}
    items = store.outbox_after(0)
    assert [(i.seq, i.change.value) for i in items] == [
        (1, "opened"),
        (3, "escalated"),
        (4, "acknowledged"),
        (5, "auto_resolved"),
    ]
    assert [i.key for i in items] == [f"{first.alert_id}:{i.seq}" for i in items]
    assert items[-1].alert.state is AlertState.RESOLVED and items[2].comment == "已到场"
    again = store.raise_alert(signal(at_ns=4_000))
    assert again is not None and again.recurs == first.alert_id


def test_a_failure_inside_the_transaction_leaves_neither_change_nor_outbox_row(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AlertStore(StateDB(state_url))
    real = store.db.execute

    def execute(sql: str, params: Any = ()) -> Any:
        if sql.lstrip().startswith("INSERT INTO alert_outbox"):
            raise RuntimeError("injected")
        return real(sql, params)

    monkeypatch.setattr(store.db, "execute", execute)
    with pytest.raises(RuntimeError):
        store.raise_alert(signal())
    monkeypatch.undo()
    assert store.count() == 0 and store.outbox_after(0) == []
    assert store.db.query("SELECT COUNT(*) FROM alert_history")[0][0] == 0
    alert = store.raise_alert(signal())
    assert alert is not None
    monkeypatch.setattr(store.db, "execute", execute)
    with pytest.raises(RuntimeError):
        store.acknowledge(alert.alert_id, at_ns=2_000, by="张工")
    monkeypatch.undo()
    assert store.get(alert.alert_id).state is AlertState.OPEN
    assert len(store.history(alert.alert_id)) == 1 and len(store.outbox_after(0)) == 1


def test_an_old_store_with_alerts_is_upgraded(state_url: str) -> None:
    db = StateDB(state_url)
    db.migrate("alerts", MIGRATIONS[:2])
    for alert_id, state, by in (("a", "open", None), ("b", "resolved", "auto")):
        db.execute(
            "INSERT INTO alerts (alert_id, rule, subject, severity, message, site, state, "
            "opened_ns, updated_ns, resolved_ns, acknowledged_by) "
            "VALUES (?, 'air_exceedance', 'aq-07', 'major', 'm', 's', ?, 1, 2, ?, ?)",
            (alert_id, state, 2 if state == "resolved" else None, by),
        )
    store = AlertStore(db)
    assert [h.change.value for h in store.history("b")] == ["opened", "auto_resolved"]
    assert store.acknowledge("a", at_ns=3, by="张工").last_change.value == "acknowledged"
    assert [h.seq for h in store.history("a")] == [1, 2]
    assert store.raise_alert(signal(at_ns=4)) is None  # "a" still the one open


def test_outbox_ids_commit_in_order_across_connections(postgres_url: str) -> None:
    """A writer whose transaction has an outbox row but has not committed holds back every
    other writer: the next id is taken after it commits, so a reader that has seen id n
    never later finds a row below n (alerts/store.py, OUTBOX_LOCK)."""
    slow, fast = AlertStore(StateDB(postgres_url)), AlertStore(StateDB(postgres_url))
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with slow.db.transaction():  # a part raising inside a transaction of its own
            slow.raise_alert(signal("slow"))
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    done = threading.Event()
    writer = threading.Thread(target=lambda: (fast.raise_alert(signal("fast")), done.set()))
    writer.start()
    assert not done.wait(0.5)  # waits for the slow one's commit
    assert fast.outbox_after(0) == []  # nothing committed yet: nothing to read past
    release.set()
    holder.join(10)
    writer.join(10)
    items = fast.outbox_after(0)
    assert [i.alert.subject for i in items] == ["slow", "fast"]
    assert items[0].id < items[1].id


def test_a_repeat_then_an_open_in_one_transaction_does_not_deadlock_an_ack(
    postgres_url: str,
) -> None:
    """The custody part raises and repeats alerts inside its own transaction on PostgreSQL;
    an officer's ack of one of them meanwhile waits for it, and neither is aborted."""
    part, officer = AlertStore(StateDB(postgres_url)), AlertStore(StateDB(postgres_url))
    x = part.raise_alert(signal("x"))
    assert x is not None
    repeated, go_on = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def batch() -> None:
        try:
            with part.db.transaction():
                part.raise_alert(signal("x", at_ns=2_000))  # a repeat: x's row is ours now
                repeated.set()
                go_on.wait(10)
                part.raise_alert(signal("y", at_ns=2_000))  # an open: an outbox row
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=batch)
    worker.start()
    assert repeated.wait(10)
    acked: list[object] = []
    ack = threading.Thread(
        target=lambda: acked.append(officer.acknowledge(x.alert_id, at_ns=3_000, by="张工"))
    )
    ack.start()
    time.sleep(0.3)
    go_on.set()
    worker.join(15)
    ack.join(15)
    assert failures == [] and len(acked) == 1
    assert [h.change.value for h in officer.history(x.alert_id)] == [
        "opened",
        "repeated",
        "acknowledged",
    ]
