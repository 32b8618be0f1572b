"""The alert lifecycle on the real state store (SQLite here; PostgreSQL in the custody tests)."""

from __future__ import annotations

import pytest

from hazwatch.alerts.model import AlertSignal, AlertState, Severity
from hazwatch.alerts.store import AlertError, AlertStore
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
    from hazwatch.alerts.store import MIGRATIONS

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
