"""What an alert is, its history and outbox entries, and the one interface every rule raises
alerts through.

Never decide here whether a condition is bad: rules do that; this only carries their verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Change(StrEnum):
    """What happened to an alert: one entry of its history (alert_history), each with a seq."""

    OPENED = "opened"  # a rule found the condition; actor: the rule id
    REPEATED = "repeated"  # the condition again while open: counted on one entry per alert
    ACKNOWLEDGED = "acknowledged"  # a person took it; actor: the person
    RESOLVED = "resolved"  # a person closed it
    AUTO_RESOLVED = "auto_resolved"  # the rule saw the condition end; actor: `auto`
    ESCALATED = "escalated"  # not acknowledged in time, sent to the escalation targets
    NOTIFIED = "notified"  # a notification of a change was delivered to a target
    # resolved within its rule's pending period: none of its changes was sent (actor `auto`)
    SUPPRESSED = "suppressed"


# The changes people are told of: each writes an outbox row in the transaction that makes it.
SENT_CHANGES = frozenset(
    {Change.OPENED, Change.ACKNOWLEDGED, Change.RESOLVED, Change.AUTO_RESOLVED, Change.ESCALATED}
)
# The actor of what the service does by itself (auto-resolve, escalation, notification).
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class AlertSignal:
    """A rule's finding. `subject` names what it is about (a batch, a station, a camera).

    The same (rule, subject) does not open a second alert while one is open or acknowledged.
    """

    rule: str
    subject: str
    severity: Severity
    message: str
    site: str
    at_ns: int
    details: dict[str, object] = field(default_factory=dict)
    # Link to evidence, e.g. a camera snapshot name, a custody event id.
    evidence: str | None = None


@dataclass(slots=True)
class Alert:
    alert_id: str
    rule: str
    subject: str
    severity: Severity
    message: str
    site: str
    state: AlertState
    opened_ns: int
    updated_ns: int
    count: int = 1
    evidence: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    acknowledged_by: str | None = None
    resolved_ns: int | None = None
    resolved_by: str | None = None  # the person, or `auto` when the rule saw the condition end
    recurs: str | None = None  # the alert of the same (rule, subject) resolved before this one
    escalated_ns: int | None = None  # when it was last escalated
    last_change: Change = Change.OPENED  # the last change people are told of (SENT_CHANGES)

    def to_document(self) -> dict[str, object]:
        """The alert as JSON-able values (the outbox row, the API, `hazwatch alerts --json`)."""
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity.value,
            "message": self.message,
            "site": self.site,
            "state": self.state.value,
            "opened_ns": self.opened_ns,
            "updated_ns": self.updated_ns,
            "count": self.count,
            "evidence": self.evidence,
            "details": self.details,
            "acknowledged_by": self.acknowledged_by,
            "resolved_ns": self.resolved_ns,
            "resolved_by": self.resolved_by,
            "recurs": self.recurs,
            "escalated_ns": self.escalated_ns,
            "last_change": self.last_change.value,
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Alert:
        """The inverse of `to_document` (an outbox row's alert back as an Alert)."""

        def optional_int(name: str) -> int | None:
            value = doc.get(name)
            return None if value is None else int(value)

        def optional_str(name: str) -> str | None:
            value = doc.get(name)
            return None if value is None else str(value)

        return cls(
            alert_id=str(doc["alert_id"]),
            rule=str(doc["rule"]),
            subject=str(doc["subject"]),
            severity=Severity(doc["severity"]),
            message=str(doc["message"]),
            site=str(doc["site"]),
            state=AlertState(doc["state"]),
            opened_ns=int(doc["opened_ns"]),
            updated_ns=int(doc["updated_ns"]),
            count=int(doc.get("count", 1)),
            evidence=optional_str("evidence"),
            details=dict(doc.get("details") or {}),
            acknowledged_by=optional_str("acknowledged_by"),
            resolved_ns=optional_int("resolved_ns"),
            resolved_by=optional_str("resolved_by"),
            recurs=optional_str("recurs"),
            escalated_ns=optional_int("escalated_ns"),
            last_change=Change(doc.get("last_change", Change.OPENED.value)),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of an alert (table alert_history); `seq` counts from 1 within the alert.

    `actor` is `auto`, a rule id (opened, repeated) or the person; `details` what the change
    carries: `recurs` of an opening, `count` and `last_ns` of the repeats, `to` of an
    escalation, `target` and `key` of a notification, `pending_s` and `keys` (the changes
    not sent) of a suppression.
    """

    alert_id: str
    seq: int
    at_ns: int
    change: Change
    actor: str
    comment: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_document(self) -> dict[str, object]:
        return {
            "alert_id": self.alert_id,
            "seq": self.seq,
            "at_ns": self.at_ns,
            "change": self.change.value,
            "actor": self.actor,
            "comment": self.comment,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A change to tell people of (table alert_outbox), written with the change itself.

    `id` grows in commit order (a reader that has seen id n never later finds a row below
    n); `key` is unique per (alert, change): `f"{alert_id}:{seq}"`, the idempotency key of
    every delivery of it. `alert` is the alert as it was right after the change.
    """

    id: int
    alert_id: str
    seq: int
    change: Change
    at_ns: int
    key: str
    actor: str
    comment: str | None
    alert: Alert


class AlertSink(Protocol):
    """Where rules send findings; `clear` says a condition is over (may auto-resolve)."""

    def raise_alert(self, signal: AlertSignal) -> Alert | None: ...

    def clear(self, rule: str, subject: str, at_ns: int) -> None: ...


class ListSink:
    """An AlertSink that only collects, for pure-code tests of rules."""

    def __init__(self) -> None:
        self.raised: list[AlertSignal] = []
        self.cleared: list[tuple[str, str, int]] = []

    def raise_alert(self, signal: AlertSignal) -> Alert | None:
        self.raised.append(signal)
        return None

    def clear(self, rule: str, subject: str, at_ns: int) -> None:
        self.cleared.append((rule, subject, at_ns))
