"""The alert lifecycle on the real state store (SQLite here; PostgreSQL in the custody tests)."""

from __future__ import annotations

import pytest

from alerts.model import AlertSignal, AlertState, Severity
from alerts.store import AlertError, AlertStore
from devices.statedb import StateDB


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
