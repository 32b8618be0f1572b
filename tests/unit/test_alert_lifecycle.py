"""The alert lifecycle on SQLite: every transition and refusal, its history entry, repeat counting,
recurrence, and the outbox row written in the change's own transaction (PostgreSQL: the same
checks in tests/integration/test_alert_store.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from hazwatch.alerts.model import (
    AUTO,
    Alert,
    AlertSignal,
    AlertState,
    Change,
    Severity,
)
from hazwatch.alerts.store import (
    MIGRATIONS,
    AlertConflict,
    AlertError,
    AlertNotFound,
    AlertStore,
)
from hazwatch.base.statedb import StateDB

SITE = "jy-0012"


def signal(subject: str = f"{SITE}/aq-07/pm25", at_ns: int = 1_000, **kw: Any) -> AlertSignal:
    fields: dict[str, Any] = {
        "rule": "air_exceedance",
        "subject": subject,
        "severity": Severity.WARNING,
        "message": "PM2.5 1-h mean 118 µg/m³ over 75",
        "site": SITE,
        "at_ns": at_ns,
        "details": {"value": 118.0, "limit": 75.0},
    }
    fields.update(kw)
    return AlertSignal(**fields)


@pytest.fixture()
def store(tmp_path: Path) -> AlertStore:
    return AlertStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))


def changes(store: AlertStore, alert_id: str) -> list[tuple[int, str, str]]:
    return [(h.seq, h.change.value, h.actor) for h in store.history(alert_id)]


def opened(store: AlertStore, **kw: Any) -> Alert:
    alert = store.raise_alert(signal(**kw))
    assert alert is not None
    return alert


def test_open_is_history_seq_1_by_the_rule_and_one_outbox_row(store: AlertStore) -> None:
    alert = opened(store)
    assert alert.state is AlertState.OPEN and alert.last_change is Change.OPENED
    (entry,) = store.history(alert.alert_id)
    assert (entry.seq, entry.change, entry.actor, entry.at_ns) == (
        1,
        Change.OPENED,
        "air_exceedance",
        1_000,
    )
    (item,) = store.outbox_after(0)
    assert (item.alert_id, item.seq, item.change, item.at_ns) == (
        alert.alert_id,
        1,
        Change.OPENED,
        1_000,
    )
    assert item.key == f"{alert.alert_id}:1"
    assert item.alert == alert  # the alert as it is after the change, typed back


def test_repeats_are_counted_on_the_alert_and_on_one_history_entry(store: AlertStore) -> None:
    alert = opened(store)
    for at in (2_000, 3_000, 4_000):
        assert store.raise_alert(signal(at_ns=at)) is None
    again = store.get(alert.alert_id)
    assert again.count == 4 and again.updated_ns == 4_000
    assert changes(store, alert.alert_id) == [
        (1, "opened", "air_exceedance"),
        (2, "repeated", "air_exceedance"),
    ]
    repeated = store.history(alert.alert_id)[1]
    assert repeated.at_ns == 2_000 and repeated.details == {"count": 4, "last_ns": 4_000}
    assert len(store.outbox_after(0)) == 1  # a repeat is not told to anyone
    assert again.last_change is Change.OPENED


def test_repeats_after_an_acknowledgement_still_update_the_one_entry(store: AlertStore) -> None:
    alert = opened(store)
    store.raise_alert(signal(at_ns=2_000))
    store.acknowledge(alert.alert_id, at_ns=3_000, by="张工")
    store.raise_alert(signal(at_ns=4_000))
    assert changes(store, alert.alert_id) == [
        (1, "opened", "air_exceedance"),
        (2, "repeated", "air_exceedance"),
        (3, "acknowledged", "张工"),
    ]
    assert store.history(alert.alert_id)[1].details["count"] == 3


def test_acknowledge_then_resolve_by_hand(store: AlertStore) -> None:
    alert = opened(store)
    acked = store.acknowledge(alert.alert_id, at_ns=2_000, by="张工", comment="已到场")
    assert acked.state is AlertState.ACKNOWLEDGED and acked.acknowledged_by == "张工"
    assert acked.last_change is Change.ACKNOWLEDGED and acked.updated_ns == 2_000
    done = store.resolve(alert.alert_id, at_ns=3_000, by="李工", comment="传感器已校准")
    assert done.state is AlertState.RESOLVED and done.resolved_ns == 3_000
    assert done.resolved_by == "李工" and done.acknowledged_by == "张工"
    assert done.last_change is Change.RESOLVED
    history = store.history(alert.alert_id)
    assert [(h.change, h.actor, h.comment) for h in history[1:]] == [
        (Change.ACKNOWLEDGED, "张工", "已到场"),
        (Change.RESOLVED, "李工", "传感器已校准"),
    ]
    items = store.outbox_after(0)
    assert [(i.change, i.seq, i.actor, i.comment) for i in items] == [
        (Change.OPENED, 1, "air_exceedance", None),
        (Change.ACKNOWLEDGED, 2, "张工", "已到场"),
        (Change.RESOLVED, 3, "李工", "传感器已校准"),
    ]
    assert [i.alert.state for i in items] == [
        AlertState.OPEN,
        AlertState.ACKNOWLEDGED,
        AlertState.RESOLVED,
    ]
    assert len({i.key for i in items}) == 3
    assert [i.id for i in items] == sorted(i.id for i in items)


def test_resolve_an_open_alert_without_acknowledging_it(store: AlertStore) -> None:
    alert = opened(store)
    done = store.resolve(alert.alert_id, at_ns=2_000, by="张工")
    assert done.state is AlertState.RESOLVED and done.acknowledged_by is None


def test_clear_auto_resolves_with_actor_auto(store: AlertStore) -> None:
    alert = opened(store)
    store.acknowledge(alert.alert_id, at_ns=2_000, by="张工")
    store.clear("air_exceedance", alert.subject, 5_000)
    done = store.get(alert.alert_id)
    assert done.state is AlertState.RESOLVED and done.resolved_by == AUTO
    assert done.last_change is Change.AUTO_RESOLVED
    assert changes(store, alert.alert_id)[-1] == (3, "auto_resolved", AUTO)
    assert store.outbox_after(0)[-1].change is Change.AUTO_RESOLVED
    store.clear("air_exceedance", alert.subject, 6_000)  # nothing open any more: nothing
    assert len(store.history(alert.alert_id)) == 3


@pytest.mark.parametrize("first", ["acknowledge", "resolve"])
def test_refusals_are_distinct_errors_and_write_nothing(store: AlertStore, first: str) -> None:
    alert = opened(store)
    store.resolve(alert.alert_id, at_ns=2_000, by="张工")
    before = (store.history(alert.alert_id), store.outbox_after(0), store.get(alert.alert_id))
    with pytest.raises(AlertConflict) as refused:
        getattr(store, first)(alert.alert_id, at_ns=3_000, by="李工")
    assert refused.value.state is AlertState.RESOLVED and "resolved" in str(refused.value)
    with pytest.raises(AlertNotFound):
        getattr(store, first)("0000000000000000", at_ns=3_000, by="李工")
    assert not issubclass(AlertNotFound, AlertConflict)
    assert issubclass(AlertNotFound, AlertError) and issubclass(AlertConflict, AlertError)
    after = (store.history(alert.alert_id), store.outbox_after(0), store.get(alert.alert_id))
    assert after == before


def test_acknowledging_twice_is_a_conflict(store: AlertStore) -> None:
    alert = opened(store)
    store.acknowledge(alert.alert_id, at_ns=2_000, by="张工")
    with pytest.raises(AlertConflict) as refused:
        store.acknowledge(alert.alert_id, at_ns=3_000, by="李工")
    assert refused.value.state is AlertState.ACKNOWLEDGED
    assert store.get(alert.alert_id).acknowledged_by == "张工"


def test_get_of_an_unknown_id_is_not_found(store: AlertStore) -> None:
    with pytest.raises(AlertNotFound):
        store.get("nope")
    assert store.history("nope") == []


def test_a_condition_back_after_resolution_opens_a_recurrence(store: AlertStore) -> None:
    first = opened(store)
    store.clear("air_exceedance", first.subject, 2_000)
    second = opened(store, at_ns=3_000)
    assert second.alert_id != first.alert_id and second.recurs == first.alert_id
    assert store.history(second.alert_id)[0].details == {"recurs": first.alert_id}
    assert store.outbox_after(0)[-1].alert.recurs == first.alert_id
    store.resolve(second.alert_id, at_ns=4_000, by="张工")
    third = opened(store, at_ns=5_000)
    assert third.recurs == second.alert_id  # the last one for that rule and subject
    other = opened(store, subject=f"{SITE}/aq-08/pm25")
    assert other.recurs is None


def test_escalate_an_open_alert_and_refuse_acknowledged_or_resolved(store: AlertStore) -> None:
    alert = opened(store, severity=Severity.CRITICAL)
    up = store.escalate(alert.alert_id, 9_000, to="duty-chief")
    assert up.escalated_ns == 9_000 and up.last_change is Change.ESCALATED
    assert up.state is AlertState.OPEN
    entry = store.history(alert.alert_id)[-1]
    assert (entry.change, entry.actor, entry.details) == (
        Change.ESCALATED,
        AUTO,
        {"to": "duty-chief"},
    )
    assert store.outbox_after(0)[-1].change is Change.ESCALATED
    store.acknowledge(alert.alert_id, at_ns=10_000, by="张工")
    with pytest.raises(AlertConflict):
        store.escalate(alert.alert_id, 11_000, to="duty-chief")
    store.resolve(alert.alert_id, at_ns=12_000, by="张工")
    with pytest.raises(AlertConflict):
        store.escalate(alert.alert_id, 13_000, to="duty-chief")
    with pytest.raises(AlertNotFound):
        store.escalate("nope", 13_000, to="duty-chief")


def test_record_notified_is_history_only_and_idempotent(store: AlertStore) -> None:
    alert = opened(store)
    (item,) = store.outbox_after(0)
    heard: list[Alert] = []
    store.listeners.append(heard.append)
    assert store.record_notified(alert.alert_id, 1_500, target="dingtalk-duty", key=item.key)
    assert not store.record_notified(alert.alert_id, 1_600, target="dingtalk-duty", key=item.key)
    assert store.record_notified(alert.alert_id, 1_700, target="wecom-ops", key=item.key)
    assert changes(store, alert.alert_id) == [
        (1, "opened", "air_exceedance"),
        (2, "notified", AUTO),
        (3, "notified", AUTO),
    ]
    assert store.history(alert.alert_id)[1].details == {
        "target": "dingtalk-duty",
        "key": item.key,
    }
    assert len(store.outbox_after(0)) == 1 and heard == []
    assert store.get(alert.alert_id).updated_ns == 1_000  # not a change of the alert
    store.resolve(alert.alert_id, at_ns=2_000, by="张工")
    assert store.record_notified(alert.alert_id, 2_100, target="wecom-ops", key="x:4")
    with pytest.raises(AlertNotFound):
        store.record_notified("nope", 1, target="t", key="k")


def test_unacknowledged_for_escalation(store: AlertStore) -> None:
    old = opened(store, severity=Severity.CRITICAL, at_ns=1_000)
    acked = opened(store, subject="b", severity=Severity.CRITICAL, at_ns=1_100)
    store.acknowledge(acked.alert_id, at_ns=1_200, by="张工")
    young = opened(store, subject="c", severity=Severity.CRITICAL, at_ns=5_000)
    opened(store, subject="d", severity=Severity.MAJOR, at_ns=1_000)
    found = store.unacknowledged(Severity.CRITICAL, 2_000)
    assert [a.alert_id for a in found] == [old.alert_id]
    assert [a.alert_id for a in store.unacknowledged("critical", 6_000)] == [
        old.alert_id,
        young.alert_id,
    ]
    store.escalate(old.alert_id, 3_000, to="chief")
    assert store.unacknowledged(Severity.CRITICAL, 2_000) == []
    (again,) = store.unacknowledged(Severity.CRITICAL, 2_000, include_escalated=True)
    assert again.escalated_ns == 3_000
    assert store.unacknowledged(Severity.CRITICAL, 6_000, rule="other") == []


def test_listeners_hear_each_sent_change_once_committed(store: AlertStore) -> None:
    heard: list[tuple[str, str]] = []
    store.listeners.append(lambda a: heard.append((a.last_change.value, a.state.value)))
    alert = opened(store)
    store.raise_alert(signal(at_ns=2_000))  # a repeat: not heard
    store.escalate(alert.alert_id, 3_000, to="chief")
    store.acknowledge(alert.alert_id, at_ns=4_000, by="张工")
    store.resolve(alert.alert_id, at_ns=5_000, by="张工")
    assert heard == [
        ("opened", "open"),
        ("escalated", "open"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ]


class Boom(RuntimeError):
    pass


def fail_on(store: AlertStore, monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """The statement starting with `prefix` fails, inside the change's transaction."""
    real = store.db.execute

    def execute(sql: str, params: Any = ()) -> Any:
        if sql.lstrip().startswith(prefix):
            raise Boom(prefix)
        return real(sql, params)

    monkeypatch.setattr(store.db, "execute", execute)


def test_a_failed_outbox_insert_leaves_no_alert_and_no_history(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_on(store, monkeypatch, "INSERT INTO alert_outbox")
    with pytest.raises(Boom):
        store.raise_alert(signal())
    monkeypatch.undo()
    assert store.list() == [] and store.outbox_after(0) == []
    assert store.db.query("SELECT COUNT(*) FROM alert_history")[0][0] == 0
    assert opened(store).count == 1  # and the store works on


@pytest.mark.parametrize(
    ("prefix", "change"),
    [("INSERT INTO alert_outbox", "acknowledge"), ("INSERT INTO alert_history", "acknowledge"),
     ("INSERT INTO alert_outbox", "resolve"), ("INSERT INTO alert_history", "resolve")],
)  # fmt: skip
def test_a_failure_inside_a_change_leaves_neither_change_nor_outbox_row(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch, prefix: str, change: str
) -> None:
    alert = opened(store)
    before = (store.get(alert.alert_id), store.history(alert.alert_id), store.outbox_after(0))
    fail_on(store, monkeypatch, prefix)
    with pytest.raises(Boom):
        getattr(store, change)(alert.alert_id, at_ns=2_000, by="张工")
    monkeypatch.undo()
    after = (store.get(alert.alert_id), store.history(alert.alert_id), store.outbox_after(0))
    assert after == before
    getattr(store, change)(alert.alert_id, at_ns=3_000, by="张工")  # then it works
    assert [h.seq for h in store.history(alert.alert_id)] == [1, 2]


def test_list_filters_newest_first_paging_and_count(store: AlertStore) -> None:
    for i in range(7):
        opened(
            store,
            subject=f"s{i}",
            at_ns=1_000 * (i + 1),
            severity=Severity.CRITICAL if i % 2 else Severity.WARNING,
            site="jy-0012" if i < 5 else "jy-0013",
        )
    assert [a.subject for a in store.list(limit=3)] == ["s6", "s5", "s4"]
    assert [a.subject for a in store.list(limit=3, offset=3)] == ["s3", "s2", "s1"]
    assert store.count() == 7
    assert store.count(site="jy-0013") == 2
    assert [a.subject for a in store.list(severity="critical")] == ["s5", "s3", "s1"]
    assert [a.subject for a in store.list(since_ns=2_000, until_ns=4_000)] == ["s2", "s1"]
    assert store.count(since_ns=2_000, until_ns=4_000, severity="critical") == 1
    assert store.list(limit=10**30, offset=10**30) == []  # clamped, not an overflow
    assert store.count(since_ns=-(10**30), until_ns=10**30) == 7


def test_outbox_after_pages_by_id(store: AlertStore) -> None:
    for i in range(5):
        opened(store, subject=f"s{i}")
    first = store.outbox_after(0, limit=2)
    rest = store.outbox_after(first[-1].id, limit=10)
    assert len(first) == 2 and len(rest) == 3
    assert store.outbox_head() == rest[-1].id
    assert store.outbox_after(store.outbox_head()) == []


def test_an_old_store_is_upgraded_with_the_history_its_rows_tell(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    db.migrate("alerts", MIGRATIONS[:2])  # hazwatch before history and outbox
    rows = [
        ("a-open", "open", None, None),
        ("b-acked", "acknowledged", "张工", None),
        ("c-auto", "resolved", "auto", 5_000),
        ("d-hand", "resolved", "李工", 6_000),
    ]
    for alert_id, state, by, resolved in rows:
        db.execute(
            "INSERT INTO alerts (alert_id, rule, subject, severity, message, site, state, "
            "opened_ns, updated_ns, resolved_ns, acknowledged_by) "
            "VALUES (?, 'camera_offline', ?, 'major', 'm', 'jy-0012', ?, 1000, 2000, ?, ?)",
            (alert_id, alert_id, state, resolved, by),
        )
    store = AlertStore(db)
    assert changes(store, "a-open") == [(1, "opened", "camera_offline")]
    assert changes(store, "b-acked")[1] == (2, "acknowledged", "张工")
    assert changes(store, "c-auto")[1] == (2, "auto_resolved", "auto")
    assert changes(store, "d-hand")[1] == (2, "resolved", "李工")
    assert store.get("c-auto").resolved_by == "auto"
    assert store.get("c-auto").acknowledged_by is None
    assert store.get("d-hand").last_change is Change.RESOLVED
    assert all(h.details == {"migrated": True} for h in store.history("d-hand"))
    assert store.outbox_after(0) == []  # the past is not sent again
    # the upgraded alerts go on: history counted from their migrated seq
    store.acknowledge("a-open", at_ns=3_000, by="王工")
    assert changes(store, "a-open")[-1] == (2, "acknowledged", "王工")
    store.resolve("b-acked", at_ns=3_000, by="王工")
    assert changes(store, "b-acked")[-1] == (3, "resolved", "王工")
    again = store.raise_alert(
        AlertSignal("camera_offline", "c-auto", Severity.MAJOR, "m", "jy-0012", 7_000)
    )
    assert again is not None and again.recurs == "c-auto"
    # and the one open alert per (rule, subject) still holds
    with pytest.raises(Exception, match="UNIQUE"):
        db.execute(
            "INSERT INTO alerts (alert_id, rule, subject, severity, message, site, state, "
            "opened_ns, updated_ns) VALUES ('dup', 'camera_offline', 'c-auto', 'major', 'm', "
            "'jy-0012', 'open', 1, 1)"
        )


def test_outbox_alert_json_is_the_alert_document(store: AlertStore) -> None:
    alert = opened(store)
    raw = store.db.query("SELECT alert FROM alert_outbox")[0][0]
    assert orjson.loads(raw) == alert.to_document()
    assert Alert.from_document(alert.to_document()) == alert
