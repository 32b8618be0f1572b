"""The pending period (Grafana's `for`) with time passed in: an alert that opens and resolves
within its rule's period is told of not at all, and its history says so; one still open after
it is told then, its later changes after it; a sender that crashes in the period decides the
same after its restart; idempotency keys and escalation are what they were without it.

The sender runs on a real AlertStore (SQLite file), httpx's MockTransport for the receivers.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hazwatch.alerts.delivery import DELIVERED, HELD, PENDING, SUPPRESSED, DeliveryStore
from hazwatch.alerts.model import AUTO, AlertSignal, Change, Severity
from hazwatch.alerts.settings import PENDING_DEFAULTS, AlertSettings
from hazwatch.alerts.store import AlertStore
from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.notify.sender import Sender
from hazwatch.parts.notify import check_rule_names
from tests.unit.test_notify import RULES, T0, Clock, Names, Receiver, raise_air, run, target

S = 1_000_000_000
NS_MIN = 60 * S


@pytest.fixture()
def db(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'state.db'}")


def sender(db: StateDB, settings: AlertSettings, receiver: Receiver, clock: Clock) -> Sender:
    import httpx

    return Sender(
        settings, AlertStore(db), DeliveryStore(db), rules=RULES, names=Names(),
        base_url="http://hw:8080", holder="worker-1", clock_ns=clock,
        transport=httpx.MockTransport(receiver),
    )  # fmt: skip


def skipped(store: AlertStore, at_ns: int, batch: str = "B-1") -> str:
    """A custody verdict's alert, as one judged before a door reader's offset had settled."""
    opened = store.raise_alert(
        AlertSignal("skipped_stage", batch, Severity.MAJOR,
                    "DISPATCHED at jy-0012/gate-04 without STORED", "jy-0012", at_ns)
    )  # fmt: skip
    assert opened is not None
    return opened.alert_id


def offline(store: AlertStore, at_ns: int) -> str:
    opened = store.raise_alert(
        AlertSignal("device_offline", "jy-0012/camera/cam-2", Severity.MAJOR,
                    "camera cam-2 at jy-0012 is offline", "jy-0012", at_ns,
                    {"family": "camera", "device": "cam-2", "reason": "last_will"})
    )  # fmt: skip
    assert opened is not None
    return opened.alert_id


def told(receiver: Receiver) -> list[tuple[str, str]]:
    docs = [orjson.loads(r.content) for r in receiver.requests]
    return [(d["alert"]["rule"], d["change"]) for d in docs]


def test_the_defaults_and_a_rules_own_setting_over_its_parts() -> None:
    settings = AlertSettings()
    assert settings.pending_period_s("skipped_stage", "custody") == 90
    assert settings.pending_period_s("device_offline", "presence") == 90
    assert settings.pending_period_s("air_exceedance", "air") == 0
    assert settings.pending_period_s("blind_read", "video") == 0
    mine = AlertSettings(pending_s={"custody": 0, "cloned_tag": 30, "air_exceedance": 600})
    assert mine.pending_period_s("skipped_stage", "custody") == 0
    assert mine.pending_period_s("cloned_tag", "custody") == 30
    assert mine.pending_period_s("air_exceedance", "air") == 600
    assert mine.pending_period_s("device_offline", "presence") == 90  # the default stays
    assert set(PENDING_DEFAULTS) <= set(RULES) | {spec.part for spec in RULES.values()}


def test_a_pending_period_naming_no_rule_nor_part_is_one_line() -> None:
    check_rule_names(AlertSettings(pending_s={"custody": 10, "device_offline": 0}), RULES)
    with pytest.raises(ConfigError, match=r"alerts\.pending_s: 'custdy' is no rule nor part"):
        check_rule_names(AlertSettings(pending_s={"custdy": 10}), RULES)


def test_an_alert_resolved_within_its_pending_period_is_never_told(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    two = (target(), target(name="other", url="http://h/other"))
    out = sender(db, AlertSettings(targets=two), receiver, clock)
    store, deliveries = out.store, out.deliveries
    assert isinstance(store, AlertStore)
    wrong = skipped(store, T0 - 15 * NS_MIN)  # the device's time: its clock 15 min slow
    raise_air(store, 1, T0)  # air: no pending period, told at once
    run(out, clock, 40)
    assert told(receiver) == [("air_exceedance", "opened")] * 2
    store.clear("skipped_stage", "B-1", T0 + 40 * S)  # judged again by the settled offset
    run(out, clock, 200)
    assert told(receiver) == [("air_exceedance", "opened")] * 2  # nothing of it, ever
    assert {(d.change, d.state) for d in deliveries.for_alert(wrong)} == {
        ("opened", SUPPRESSED), ("auto_resolved", SUPPRESSED)
    }  # fmt: skip
    history = store.history(wrong)
    assert [h.change for h in history] == [Change.OPENED, Change.AUTO_RESOLVED, Change.SUPPRESSED]
    entry = history[-1]
    assert entry.actor == AUTO and entry.comment == "在待定期内自动解除，未发送通知"
    assert entry.details == {"pending_s": 90.0, "keys": [f"{wrong}:1", f"{wrong}:2"]}
    assert not [h for h in history if h.change is Change.NOTIFIED]


def test_a_person_resolving_it_within_the_period_is_said_by_name(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    out = sender(db, AlertSettings(targets=(target(),)), receiver, clock)
    store = out.store
    assert isinstance(store, AlertStore)
    aid = offline(store, T0)
    run(out, clock, 10)
    store.resolve(aid, at_ns=clock.now, by="张工", comment="网线已插好")
    run(out, clock, 120)
    assert receiver.requests == []
    assert store.history(aid)[-1].comment == "在待定期内已由 张工 解除，未发送通知"


def test_an_alert_open_past_its_period_is_told_then_with_its_later_changes_in_order(
    db: StateDB,
) -> None:
    receiver, clock = Receiver(), Clock()
    out = sender(db, AlertSettings(targets=(target(),)), receiver, clock)
    store, deliveries = out.store, out.deliveries
    assert isinstance(store, AlertStore)
    aid = offline(store, T0)
    run(out, clock, 10)
    store.acknowledge(aid, at_ns=clock.now, by="张工")
    run(out, clock, 79)  # T0 + 89.5 s: still in the period
    assert receiver.requests == []
    assert {d.state for d in deliveries.for_alert(aid)} == {HELD}
    run(out, clock, 2)
    assert told(receiver) == [("device_offline", "opened"), ("device_offline", "acknowledged")]
    assert receiver.keys() == [f"{aid}:1", f"{aid}:2"]  # the keys they always had
    store.resolve(aid, at_ns=clock.now, by="张工")
    run(out, clock, 2)
    assert told(receiver)[-1] == ("device_offline", "resolved")  # after the period: at once
    assert {d.state for d in deliveries.for_alert(aid)} == {DELIVERED}


def test_a_resolution_not_read_yet_when_the_period_ends_still_suppresses(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    out = sender(db, AlertSettings(targets=(target(),)), receiver, clock)
    store, deliveries = out.store, out.deliveries
    assert isinstance(store, AlertStore)
    aid = skipped(store, T0)
    out.tick(T0)
    store.clear("skipped_stage", "B-1", T0 + 89 * S)
    assert out.settle_pending(T0 + 91 * S) == []  # before the fan-out reads the resolution
    out.tick(T0 + 91 * S)
    run(out, clock, 120)
    assert receiver.requests == []
    assert {(d.change, d.state) for d in deliveries.for_alert(aid)} == {
        ("opened", SUPPRESSED), ("auto_resolved", SUPPRESSED)
    }  # fmt: skip
    assert [h.change for h in store.history(aid)].count(Change.SUPPRESSED) == 1


def test_a_sender_restarted_in_the_period_decides_the_same(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(targets=(target(),))
    first = sender(db, settings, receiver, clock)
    store = first.store
    assert isinstance(store, AlertStore)
    gone = skipped(store, T0, "B-1")
    stays = skipped(store, T0, "B-2")
    run(first, clock, 30)
    first.stop()  # a crash, or a stop: the held deliveries are in the state store
    store.clear("skipped_stage", "B-1", clock.now)
    again = sender(db, settings, receiver, clock)
    run(again, clock, 30)
    assert receiver.requests == []  # the period counts from the first reading, not the restart
    run(again, clock, 40)
    assert receiver.keys() == [f"{stays}:1"]
    assert again.deliveries.for_alert(gone)[0].state == SUPPRESSED
    third = sender(db, settings, receiver, clock)  # and once more: nothing twice
    run(third, clock, 30)
    assert receiver.keys() == [f"{stays}:1"]
    assert [h.change for h in store.history(gone)].count(Change.SUPPRESSED) == 1


def test_an_unacknowledged_critical_alert_is_escalated_on_time_after_its_pending_opening(
    db: StateDB,
) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(
        targets=(target(name="group"), target(name="boss", url="http://h/boss", escalation=True)),
        escalate_after_min={"critical": 15},
    )
    out = sender(db, settings, receiver, clock)
    store = out.store
    assert isinstance(store, AlertStore)
    late = store.raise_alert(
        AlertSignal(
            "transit_overdue",
            "B-9",
            Severity.CRITICAL,
            "not received within 24 h of dispatch",
            "jy-0012",
            T0,
        )
    )
    assert late is not None  # fmt: skip
    run(out, clock, 100, step_s=1)
    assert [(r.url.path, k) for r, k in zip(receiver.requests, receiver.keys(), strict=True)] == [
        ("/x", f"{late.alert_id}:1")
    ]
    clock.now = T0 + 15 * NS_MIN
    run(out, clock, 6, step_s=1)
    boss = [orjson.loads(r.content) for r in receiver.requests if r.url.path == "/boss"]
    assert [b["change"] for b in boss] == ["escalated"]
    (entry,) = [h for h in store.history(late.alert_id) if h.change is Change.ESCALATED]
    assert entry.at_ns == T0 + 15 * NS_MIN  # 15 min after it opened, as without the period


def test_a_storm_of_held_openings_goes_out_as_one_digest_when_its_period_ends(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    out = sender(db, AlertSettings(targets=(target(max_per_min=5),)), receiver, clock)
    store = out.store
    assert isinstance(store, AlertStore)
    for i in range(30):
        skipped(store, T0, f"B-{i}")
    run(out, clock, 89)
    assert receiver.requests == []
    run(out, clock, 5)
    assert len(receiver.requests) == 1 and orjson.loads(receiver.requests[0].content)["count"] == 30
    assert out.deliveries.counts() == {("hook", "digested"): 30}
    assert PENDING not in {k[1] for k in out.deliveries.counts()}
