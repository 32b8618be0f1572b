"""What an alert is, and the one interface every rule raises alerts through.

Never decide here whether a condition is bad: rules do that; this only carries their verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


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
