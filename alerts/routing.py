"""Which target is told of which change of an alert, and when: filters, quiet hours, the
per-minute limit with its digest, and when an unacknowledged alert is escalated.

Never send, sleep or read a clock here: pure functions over settings, alerts and times passed
in (nanoseconds since the epoch, UTC); the sender (hazwatch.notify.sender) does the I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hazwatch.alerts.model import Alert, AlertState, Severity
from hazwatch.alerts.settings import AlertSettings, TargetSettings

NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
DAY_MIN = 24 * 60
CHINA_OFFSET_NS = 8 * 3600 * NS_PER_S  # China Standard Time, UTC+8, no daylight saving
SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}
WINDOW_NS = NS_PER_MIN  # the robots' limits are per minute
# changes that go out alone even during a digest (while the minute has room)
URGENT_CHANGES = ("opened", "escalated")


def wants(settings: AlertSettings, target: TargetSettings, alert: Alert, change: str) -> bool:
    """Whether `target` is sent this change of this alert (after the change)."""
    if change not in settings.changes_of(target):
        return False
    if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[Severity(target.min_severity)]:
        return False
    if target.sites and alert.site not in target.sites:
        return False
    return not (target.rules and alert.rule not in target.rules)


def quiet_end_ns(target: TargetSettings, at_ns: int) -> int | None:
    """When the quiet hours `at_ns` falls in end (ns), None outside them (or with none).

    Quiet hours are China time; "22:00-07:00" spans midnight, "12:00-13:30" does not.
    """
    quiet = target.quiet
    if quiet is None:
        return None
    start, end = quiet
    local_ns = at_ns + CHINA_OFFSET_NS
    day_start_ns = local_ns - local_ns % (DAY_MIN * NS_PER_MIN)
    minute = (local_ns - day_start_ns) / NS_PER_MIN
    if start < end:
        inside, end_day = start <= minute < end, 0
    else:  # across midnight: from start to 24:00, and from 0:00 to end
        inside = minute >= start or minute < end
        end_day = 1 if minute >= start else 0
    if not inside:
        return None
    return day_start_ns + (end_day * DAY_MIN + end) * NS_PER_MIN - CHINA_OFFSET_NS


def hold_until_ns(target: TargetSettings, severity: Severity, now_ns: int) -> int:
    """When a message of this severity may go to `target`: now, or the end of its quiet hours
    (critical messages are never held: a critical alert is what someone must be woken for)."""
    if severity is Severity.CRITICAL:
        return now_ns
    end = quiet_end_ns(target, now_ns)
    return now_ns if end is None else end


class RateWindow:
    """The sends to one target in the last minute: how many more it may take now."""

    __slots__ = ("limit", "sent")

    def __init__(self, limit: int, sent: Sequence[int] = ()) -> None:
        self.limit = limit
        self.sent: deque[int] = deque(sorted(sent))

    def _expire(self, now_ns: int) -> None:
        while self.sent and self.sent[0] <= now_ns - WINDOW_NS:
            self.sent.popleft()

    def room(self, now_ns: int) -> int:
        self._expire(now_ns)
        return max(0, self.limit - len(self.sent))

    def record(self, at_ns: int) -> None:
        self.sent.append(at_ns)

    def next_room_ns(self, now_ns: int) -> int:
        """When one more send fits (now when it already does)."""
        if self.room(now_ns) > 0:
            return now_ns
        return self.sent[len(self.sent) - self.limit] + WINDOW_NS


@dataclass(frozen=True, slots=True)
class Due:
    """A delivery waiting for a target, as the planner sees it."""

    outbox_id: int
    severity: Severity
    change: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What a target does next: send one message, send one digest of `items`, or wait.

    `storm_until_ns` is the target's storm state after this step: 0 when calm, else the end of
    the current digest interval (the next digest waits for it).
    """

    action: Literal["single", "digest", "wait"]
    items: tuple[Due, ...] = ()
    until_ns: int | None = None  # wait: until then (None: until room or something new)
    storm_until_ns: int = 0


def plan(due: Sequence[Due], room: int, storm_until_ns: int, now_ns: int, every_ns: int) -> Plan:
    """The next step for one target with `due` deliveries (oldest first) and `room` sends left
    in the minute; `storm_until_ns` as the previous step left it.

    Calm: a message goes alone while everything due fits in the minute with a send to spare,
    else everything due goes as one digest and a storm begins. In a storm, one digest per
    `every_ns` of what came since; only an urgent critical change (opened, escalated) goes
    alone meanwhile, and only with a send to spare. The storm ends when an interval ends with
    at most one message due.
    """
    if not due:
        return Plan("wait", storm_until_ns=storm_until_ns if now_ns < storm_until_ns else 0)
    if room <= 0:
        return Plan("wait", storm_until_ns=storm_until_ns)
    if storm_until_ns and now_ns < storm_until_ns:
        urgent = [d for d in due if d.severity is Severity.CRITICAL and d.change in URGENT_CHANGES]
        if urgent and room > 1:
            return Plan("single", (urgent[0],), storm_until_ns=storm_until_ns)
        return Plan("wait", until_ns=storm_until_ns, storm_until_ns=storm_until_ns)
    if len(due) == 1 or (not storm_until_ns and len(due) < room):
        return Plan("single", (due[0],))
    return Plan("digest", tuple(due), storm_until_ns=now_ns + every_ns)


def escalation_delay_ns(settings: AlertSettings, alert: Alert) -> int | None:
    """How long after opening an alert of this rule and severity is escalated (None: never)."""
    minutes = settings.escalate_rule_after_min.get(alert.rule)
    if minutes is None:
        minutes = settings.escalate_after_min.get(alert.severity.value)
    return None if minutes is None else int(minutes * NS_PER_MIN)


def escalation_due(settings: AlertSettings, alert: Alert, now_ns: int) -> bool:
    """An open alert (not acknowledged, not resolved) past its escalation delay."""
    if alert.state is not AlertState.OPEN:
        return False
    delay = escalation_delay_ns(settings, alert)
    return delay is not None and now_ns - alert.opened_ns >= delay


def shortest_escalation_ns(settings: AlertSettings, severity: Severity) -> int | None:
    """The shortest delay any alert of this severity may have (its own, or a rule's)."""
    delays = [*settings.escalate_rule_after_min.values()]
    own = settings.escalate_after_min.get(severity.value)
    if own is not None:
        delays.append(own)
    return int(min(delays) * NS_PER_MIN) if delays else None
