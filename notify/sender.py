"""The sender: delivers every change in the alert store's outbox to the targets that want it,
and escalates alerts nobody acknowledged in time.

One planner thread (per service; among several workers, the one holding the sender's lease in
the state store) fans the outbox out into delivery records and escalates; each target has a
thread of its own with its own HTTP client and timeout, so a failing or slow target delays only
its own messages, never ingest nor another target. Every step is a method taking the time
(`fan_out`, `escalate`, `step`), so tests drive it without threads or clocks.

Never lose a change: a delivery record is written before anything is sent, a failed attempt is
tried again with backoff (base.retry) for as long as it takes, and a crash leaves the record
to the next start. Never flood a chat: at most the target's per-minute limit of messages in any
minute (the sends are logged in the state store, so a restart keeps counting), and beyond it
one digest (alerts.routing.plan). Never tell of what was over at once: an opening of a rule
with a pending period (AlertSettings.pending_s, Grafana's `for`) is held until the period has
passed on this sender's clock, from when the sender first read it; an alert resolved
meanwhile is told of not at all (its held changes suppressed, its history saying so), one
still unresolved is told as if it had just opened, its later changes after it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from prometheus_client import Counter

from hazwatch.alerts.delivery import (
    HELD,
    PENDING,
    SUPPRESSED,
    Delivery,
    DeliveryStore,
    Digest,
    NewDelivery,
)
from hazwatch.alerts.messages import (
    Names,
    NoNames,
    Notice,
    alert_message,
    digest_key,
    digest_message,
)
from hazwatch.alerts.model import AUTO, Alert, AlertState, Change, Severity
from hazwatch.alerts.routing import (
    WINDOW_NS,
    Due,
    RateWindow,
    escalation_due,
    hold_until_ns,
    plan,
    quiet_end_ns,
    shortest_escalation_ns,
    wants,
)
from hazwatch.alerts.rules import RuleSpec
from hazwatch.alerts.settings import AlertSettings, TargetSettings
from hazwatch.alerts.text import Formatter
from hazwatch.base.errors import HazwatchError
from hazwatch.base.retry import Backoff, RetryPolicy
from hazwatch.notify.targets import Notifier, Outcome, notifier, send

log = logging.getLogger("hazwatch.notify")

NOTIFICATIONS = Counter(
    "hazwatch_notifications_total",
    "Notification attempts by target and outcome (delivered, transient, config, rejected)",
    ["target", "outcome"],
)
LEASE = "sender"
LEASE_TTL_NS = 15_000_000_000  # another worker's sender takes over this long after a crash
FANOUT_BATCH = 500
ESCALATE_EVERY_NS = 5_000_000_000
PRUNE_EVERY_NS = 600_000_000_000
IDLE_NS = 5_000_000_000  # a target's thread looks again at least this often
NS_PER_S = 1_000_000_000


class OutboxEntry(Notice, Protocol):
    """One change in the outbox (alerts.model.OutboxItem): its id, who made it, and what
    Notice gives."""

    @property
    def id(self) -> int: ...
    @property
    def actor(self) -> str: ...


class AlertOutbox(Protocol):
    """What the sender asks of the alert store (alerts/store.py AlertStore)."""

    def outbox_after(self, last_id: int, limit: int) -> Sequence[OutboxEntry]: ...

    def escalate(self, alert_id: str, at_ns: int, *, to: str) -> Alert: ...

    def record_notified(self, alert_id: str, at_ns: int, *, target: str, key: str) -> object: ...

    def unacknowledged(self, severity: Severity, opened_before_ns: int) -> Sequence[Alert]: ...

    def get(self, alert_id: str) -> Alert: ...

    def record_suppressed(
        self, alert_id: str, at_ns: int, *, comment: str, details: dict[str, object]
    ) -> object: ...


@dataclass(frozen=True, slots=True)
class _Stored:
    """A change rebuilt from its delivery record and the alert as it is now (the outbox no
    longer holds the entry)."""

    alert: Alert
    change: str
    at_ns: int
    key: str


@dataclass(slots=True)
class _Target:
    settings: TargetSettings
    notifier: Notifier
    client: httpx.Client
    window: RateWindow
    backoff: Backoff
    wake: threading.Event = field(default_factory=threading.Event)
    paused_until_ns: int = 0
    storm_until_ns: int = 0


class Sender:
    """Delivers the outbox to the configured targets; `start`/`stop` run it in threads."""

    def __init__(
        self,
        settings: AlertSettings,
        store: AlertOutbox,
        deliveries: DeliveryStore,
        *,
        rules: Mapping[str, RuleSpec],
        details: Mapping[str, Formatter] | None = None,
        names: Names | None = None,
        base_url: str,
        holder: str,
        clock_ns: Callable[[], int] = time.time_ns,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.deliveries = deliveries
        self.rules = rules
        self.details: Mapping[str, Formatter] = details or {}
        self.names: Names = names if names is not None else NoNames()
        self.base_url = base_url
        self.holder = holder
        self.clock_ns = clock_ns
        self.leader = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_escalation_ns = 0
        self._next_prune_ns = 0
        policy = RetryPolicy(
            max_s=None,
            first_delay_s=settings.retry_first_s,
            max_delay_s=settings.retry_max_delay_s,
            jitter=0.1,
        )
        self.targets: dict[str, _Target] = {}
        for target in settings.targets:
            self.targets[target.name] = _Target(
                settings=target,
                notifier=notifier(target),
                client=httpx.Client(timeout=httpx.Timeout(target.timeout_s), transport=transport),
                window=RateWindow(target.per_min),
                backoff=Backoff(policy, clock=lambda: self.clock_ns() / NS_PER_S),
            )

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._spawn("hazwatch-notify", self._plan_loop)
        for name in self.targets:
            self._spawn(f"hazwatch-notify-{name}", functools.partial(self._target_loop, name))

    def stop(self) -> None:
        """Stop the threads (an attempt in flight finishes within its timeout), then let
        another worker's sender take over at once."""
        self._stop.set()
        for target in self.targets.values():
            target.wake.set()
        longest = max((t.settings.timeout_s for t in self.targets.values()), default=0.0)
        for thread in self._threads:
            thread.join(timeout=longest + 2)
        self._threads = []
        for target in self.targets.values():
            target.client.close()
        if self.leader:
            try:
                self.deliveries.release(LEASE, self.holder)
            except Exception:
                log.exception("could not release the sender's lease")
            self.leader = False

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _plan_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(self.clock_ns())
            except Exception:
                log.exception("notification planning failed; trying again")
            self._stop.wait(self.settings.poll_s)

    def _target_loop(self, name: str) -> None:
        target = self.targets[name]
        while not self._stop.is_set():
            wait_ns = IDLE_NS
            try:
                if self.leader:
                    wait_ns = self.step(name, self.clock_ns())
            except Exception:
                log.exception("notifying %s failed; trying again", name)
            target.wake.wait(min(max(wait_ns, 0), IDLE_NS) / NS_PER_S)
            target.wake.clear()

    # -- planning --------------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        """One round of the planner: hold the lease, fan out, escalate, prune."""
        try:
            leading = self.lead(now_ns)
        except Exception:
            self.leader = False  # unsure of the lease: stop sending until it is renewed
            raise
        if not leading:
            return
        self.fan_out(now_ns)
        self.settle_pending(now_ns)
        if now_ns >= self._next_escalation_ns:
            self._next_escalation_ns = now_ns + ESCALATE_EVERY_NS
            self.escalate(now_ns)
            self.fan_out(now_ns)  # the escalations' own outbox entries
        if now_ns >= self._next_prune_ns:
            self._next_prune_ns = now_ns + PRUNE_EVERY_NS
            self.deliveries.prune_sends(now_ns - 10 * WINDOW_NS)

    def lead(self, now_ns: int) -> bool:
        """Take or renew the sender's lease; on taking it, each target's minute is read back."""
        leader = self.deliveries.lease(LEASE, self.holder, now_ns, LEASE_TTL_NS)
        if leader and not self.leader:
            for name, target in self.targets.items():
                sent = self.deliveries.sends_since(name, now_ns - WINDOW_NS)
                target.window = RateWindow(target.settings.per_min, sent)
            log.info("notification sender started (%d targets)", len(self.targets))
        self.leader = leader
        return leader

    def pending_ns(self, rule: str) -> int:
        """The rule's pending period (ns), from the settings and the rule's part."""
        spec = self.rules.get(rule)
        seconds = self.settings.pending_period_s(rule, spec.part if spec else None)
        return int(seconds * NS_PER_S)

    def fan_out(self, now_ns: int) -> int:
        """Record a delivery per outbox entry and target that wants it; the changes read.

        An opening of a rule with a pending period is recorded held until the period ends;
        a later change of an alert with held changes is held with them, and its resolution
        suppresses them all (history first: a crash after it decides the same again); a
        change of an alert suppressed already is recorded suppressed."""
        done = 0
        while True:
            items = self.store.outbox_after(self.deliveries.cursor(), FANOUT_BATCH)
            if not items:
                return done
            holds = self.deliveries.holds(item.alert.alert_id for item in items)
            suppressed: dict[str, str] = {}  # alert id → the resolution's actor
            rows: list[NewDelivery] = []
            for item in items:
                alert = item.alert
                wanting = [
                    t for t in self.settings.targets if wants(self.settings, t, alert, item.change)
                ]
                state, due_ns = holds.get(alert.alert_id, PENDING), None
                if item.change == Change.OPENED and state == PENDING and wanting:
                    pending = self.pending_ns(alert.rule)
                    if pending > 0:
                        state, due_ns = HELD, now_ns + pending
                        holds[alert.alert_id] = HELD
                elif state == HELD and item.change in (Change.RESOLVED, Change.AUTO_RESOLVED):
                    state = holds[alert.alert_id] = SUPPRESSED
                    suppressed[alert.alert_id] = item.actor
                elif state == HELD:
                    due_ns = now_ns  # waits for its opening's period (held_due), not for quiet
                rows += [
                    NewDelivery(
                        outbox_id=item.id,
                        target=target.name,
                        due_ns=due_ns or hold_until_ns(target, alert.severity, now_ns),
                        key=item.key,
                        alert_id=alert.alert_id,
                        change=str(item.change),
                        severity=alert.severity,
                        rule=alert.rule,
                        site=alert.site,
                        at_ns=item.at_ns,
                        state=state,
                    )
                    for target in wanting
                ]
            for alert_id, actor in suppressed.items():
                keys = sorted(
                    {
                        *self.deliveries.held_keys(alert_id),
                        *(r.key for r in rows if r.alert_id == alert_id),
                    }
                )
                self._record_suppressed(alert_id, now_ns, actor, keys)
            self.deliveries.fan_out(rows, max(item.id for item in items), suppressed)
            for name in {row.target for row in rows if row.state == PENDING}:
                self.targets[name].wake.set()
            done += len(items)
            if len(items) < FANOUT_BATCH:
                return done

    def settle_pending(self, now_ns: int) -> list[str]:
        """Alerts whose pending period ended: sent now when unresolved, else suppressed (a
        resolution the fan-out has not read yet); the ids released."""
        released: list[str] = []
        for alert_id in self.deliveries.held_due(now_ns):
            alert = self.store.get(alert_id)
            if alert.state is AlertState.RESOLVED:
                keys = self.deliveries.held_keys(alert_id)
                self._record_suppressed(alert_id, now_ns, alert.resolved_by or AUTO, keys)
                self.deliveries.suppress([alert_id])
                continue
            for name in self.deliveries.release_held(alert_id, now_ns):
                if name in self.targets:
                    self.targets[name].wake.set()
            released.append(alert_id)
        return released

    def _record_suppressed(self, alert_id: str, now_ns: int, by: str, keys: list[str]) -> None:
        alert = self.store.get(alert_id)
        seconds = self.pending_ns(alert.rule) / NS_PER_S
        how = "自动解除" if by == AUTO else f"已由 {by} 解除"
        self.store.record_suppressed(
            alert_id,
            now_ns,
            comment=f"在待定期内{how}，未发送通知",
            details={"pending_s": seconds, "keys": keys},
        )
        log.info(
            "alert %s (%s) resolved within its %g s pending period: not notified",
            alert_id,
            alert.rule,
            seconds,
        )

    def escalate(self, now_ns: int) -> list[str]:
        """Escalate every open alert past its delay (alerts.routing.escalation_due), once; the
        ids escalated."""
        to = ",".join(
            t.name for t in self.settings.targets if self.settings.is_escalation_target(t)
        )
        done: list[str] = []
        for severity in Severity:
            shortest = shortest_escalation_ns(self.settings, severity)
            if shortest is None:
                continue
            for alert in self.store.unacknowledged(severity, now_ns - shortest + 1):
                if not escalation_due(self.settings, alert, now_ns):
                    continue  # unacknowledged() leaves out what was escalated already
                try:
                    self.store.escalate(alert.alert_id, now_ns, to=to)
                except HazwatchError as exc:  # acknowledged or resolved meanwhile
                    log.info("alert %s not escalated: %s", alert.alert_id, exc)
                    continue
                log.warning(
                    "alert %s (%s, %s) escalated to %s",
                    alert.alert_id,
                    alert.rule,
                    alert.severity.value,
                    to or "no target",
                )
                done.append(alert.alert_id)
        return done

    # -- delivering ------------------------------------------------------------------------

    def step(self, name: str, now_ns: int) -> int:
        """One step of target `name`: send a message or a digest, or say how long to wait (ns)."""
        target = self.targets[name]
        if now_ns < target.paused_until_ns:
            return target.paused_until_ns - now_ns
        quiet_end = quiet_end_ns(target.settings, now_ns)
        for digest in self.deliveries.digests_due(name, now_ns):
            items = self.deliveries.digest_items(digest.key)
            if quiet_end and all(i.severity is not Severity.CRITICAL for i in items):
                self.deliveries.defer_digest(digest, quiet_end)
                continue
            if target.window.room(now_ns) < 1:
                return target.window.next_room_ns(now_ns) - now_ns
            self._send_digest(target, digest, now_ns)
            return 0
        storm = now_ns < target.storm_until_ns
        # in a storm's interval only urgent changes may go: only those are read
        due = self.deliveries.due(name, now_ns, urgent_only=storm)
        if quiet_end:
            held = [d.outbox_id for d in due if d.severity is not Severity.CRITICAL]
            if held:
                self.deliveries.defer(name, held, quiet_end)
            due = [d for d in due if d.severity is Severity.CRITICAL]
        room = target.window.room(now_ns)
        every_ns = int(self.settings.digest_every_s * NS_PER_S)
        step = plan(
            [Due(d.outbox_id, d.severity, d.change) for d in due],
            room,
            target.storm_until_ns,
            now_ns,
            every_ns,
        )
        target.storm_until_ns = step.storm_until_ns
        by_id = {d.outbox_id: d for d in due}
        if step.action == "single":
            self._send_single(target, by_id[step.items[0].outbox_id], now_ns)
            return 0
        if step.action == "digest":
            members = [by_id[item.outbox_id] for item in step.items]
            key = digest_key(name, [m.key for m in members])
            if self.deliveries.make_digest(name, key, members, now_ns):
                self._send_digest(
                    target, Digest(key, name, PENDING, len(members), 0, now_ns), now_ns
                )
            return 0
        if storm:  # until the next digest, or an urgent change (the fan-out wakes the thread)
            return max(target.storm_until_ns - now_ns, 1_000_000)
        if due:  # waiting for the minute's room
            until = (
                step.until_ns if step.until_ns is not None else target.window.next_room_ns(now_ns)
            )
            return max(until - now_ns, 1_000_000)
        next_due = self.deliveries.next_due_ns(name)
        return IDLE_NS if next_due is None else max(next_due - now_ns, 1_000_000)

    def _lease_ns(self, target: _Target) -> int:
        return int((target.settings.timeout_s + 5) * NS_PER_S)

    def _notice(self, delivery: Delivery) -> Notice:
        items = self.store.outbox_after(delivery.outbox_id - 1, 1)
        if items and items[0].id == delivery.outbox_id:
            return items[0]
        return _Stored(
            self.store.get(delivery.alert_id), delivery.change, delivery.at_ns, delivery.key
        )

    def _send_single(self, target: _Target, delivery: Delivery, now_ns: int) -> None:
        if not self.deliveries.claim(delivery, now_ns, self._lease_ns(target)):
            return
        target.window.record(now_ns)
        message = alert_message(
            self._notice(delivery),
            lang=target.settings.lang,
            rules=self.rules,
            names=self.names,
            base_url=self.base_url,
            now_ns=now_ns,
            details=self.details,
        )
        outcome = send(target.client, target.notifier, message, now_ns // 1_000_000)
        done_ns = self.clock_ns()
        if outcome.verdict == "delivered":
            self.deliveries.delivered(delivery, done_ns)
            self._notified([delivery.alert_id], target, done_ns, delivery.key)
        else:
            self.deliveries.retry(delivery, self._retry_at(target, outcome, done_ns), outcome.error)
        self._settled(target, outcome, f"{delivery.change} of alert {delivery.alert_id}")

    def _send_digest(self, target: _Target, digest: Digest, now_ns: int) -> None:
        if not self.deliveries.claim_digest(digest, now_ns, self._lease_ns(target)):
            return
        target.window.record(now_ns)
        items = self.deliveries.digest_items(digest.key)
        message = digest_message(
            items,
            target=target.settings.name,
            lang=target.settings.lang,
            rules=self.rules,
            names=self.names,
            base_url=self.base_url,
            now_ns=now_ns,
            key=digest.key,
        )
        outcome = send(target.client, target.notifier, message, now_ns // 1_000_000)
        done_ns = self.clock_ns()
        if outcome.verdict == "delivered":
            self.deliveries.digest_delivered(digest, done_ns)
            self._notified(self.deliveries.digest_alerts(digest.key), target, done_ns, digest.key)
        else:
            self.deliveries.digest_retry(
                digest, self._retry_at(target, outcome, done_ns), outcome.error
            )
        self._settled(target, outcome, f"digest of {len(items)} changes")

    def _retry_at(self, target: _Target, outcome: Outcome, now_ns: int) -> int:
        """When the message is tried again; a transient or configuration failure pauses the
        whole target (its other messages would fail the same way)."""
        longest_ns = int(self.settings.retry_max_delay_s * NS_PER_S)
        if outcome.verdict == "transient":
            at = now_ns + int(target.backoff.failed(outcome.retry_after_s) * NS_PER_S)
            target.paused_until_ns = at
            return at
        if outcome.verdict == "config":
            target.paused_until_ns = now_ns + longest_ns
        return now_ns + longest_ns

    def _settled(self, target: _Target, outcome: Outcome, what: str) -> None:
        name = target.settings.name
        NOTIFICATIONS.labels(name, outcome.verdict).inc()
        if outcome.verdict == "delivered":
            if target.backoff.failing_since is not None:
                log.info("target %s delivers again after %.0f s", name, target.backoff.failing_s)
            target.backoff.succeeded()
        elif outcome.verdict == "transient":
            if target.backoff.failing_s == 0:
                log.warning(
                    "target %s failed (%s): %s; retrying with backoff", name, what, outcome.error
                )
        elif outcome.verdict == "config":
            log.error(
                "target %s refuses every message (%s): fix its settings ([[alerts.targets]]); "
                "retrying every %g s",
                name,
                outcome.error,
                self.settings.retry_max_delay_s,
            )
        else:
            log.error(
                "target %s refused the %s: %s; retrying every %g s",
                name,
                what,
                outcome.error,
                self.settings.retry_max_delay_s,
            )

    def _notified(self, alert_ids: Sequence[str], target: _Target, at_ns: int, key: str) -> None:
        """The alerts' histories say they were notified (after the delivery is recorded: a
        crash between loses a history line, never a notification)."""
        for alert_id in alert_ids:
            try:
                self.store.record_notified(alert_id, at_ns, target=target.settings.name, key=key)
            except Exception:
                log.exception("could not record the notification of alert %s", alert_id)
