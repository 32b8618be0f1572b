"""Who is told of alerts, and how: the notification targets (webhook, DingTalk, WeCom robots),
their filters and quiet hours, the escalation delays and the sender's retry pauses, in frozen
dataclasses (hazwatch.settings composes them as `alerts`: the settings file's [alerts] table
and its [[alerts.targets]] list, env HAZWATCH_ALERTS__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.
Every constraint is checked where settings are read, so a wrong target is a one-line error at
start (docs/alerts.md shows every field).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field

TargetKind = Literal["webhook", "dingtalk", "wecom"]
SeverityName = Literal["info", "warning", "major", "critical"]
SEVERITIES = ("info", "warning", "major", "critical")
# the changes of an alert that go through the outbox (alerts/store.py writes them)
Change = Literal["opened", "acknowledged", "resolved", "auto_resolved", "escalated"]
CHANGES: tuple[str, ...] = ("opened", "acknowledged", "resolved", "auto_resolved", "escalated")
# what a target gets when it names no changes: every change but an escalation (an escalation
# target gets escalations only)
ORDINARY_CHANGES: tuple[str, ...] = CHANGES[:-1]
ESCALATION_CHANGES: tuple[str, ...] = ("escalated",)

# Messages a robot takes per minute, by kind, when the target does not say. Both chat robots
# document 20 a minute: DingTalk "每个机器人每分钟最多发送20条。如果超过20条，会限流10分钟"
# (open.dingtalk.com/document/group/custom-robot-access, 消息发送频率限制), WeCom "每个机器人
# 发送的消息不能超过20条/分钟" (developer.work.weixin.qq.com/document/path/91770, 消息发送频率
# 限制). A generic webhook is our own receiver: one a second.
DEFAULT_PER_MIN: Mapping[str, int] = {"dingtalk": 20, "wecom": 20, "webhook": 60}
# kinds that sign with a secret: the webhook always (X-Hazwatch-Signature), DingTalk when its
# robot's security setting is 加签 (keyword or IP allow-list robots have none); WeCom's robot
# URL carries its key and has no signature
SECRET = {"webhook": "required", "dingtalk": "optional", "wecom": "none"}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")

Minutes = Annotated[float, Field(gt=0, le=7 * 24 * 60)]
PendingSeconds = Annotated[float, Field(ge=0, le=3600)]

# The pending period of a rule (Grafana's `for`) unless [alerts] pending_s says otherwise, by
# rule id or by part (every rule of it); the rest: 0, told at once. Why each:
# docs/notifications.md, "Pending period".
PENDING_DEFAULTS: Mapping[str, float] = {
    # a verdict judged before a device's clock offset had settled (60 s and three messages)
    # is judged again by the measured offset and its alert auto-resolved within that minute
    "custody": 90.0,
    # a connection that drops and comes back (a Wi-Fi or 4G blip, a broker restart): the will
    # is published, and cleared by the device's next message seconds later
    "device_offline": 90.0,
}


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """ "22:00-07:00" → (start, end) in minutes after midnight China time; "" → None."""
    if not text:
        return None
    start, sep, end = text.partition("-")
    found = [_HHMM.fullmatch(part.strip()) for part in (start, end)]
    if not sep or found[0] is None or found[1] is None:
        raise ValueError(f'quiet_hours must be "HH:MM-HH:MM" (China time), got {text!r}')
    first, last = (int(m.group(1)) * 60 + int(m.group(2)) for m in found if m is not None)
    if first == last:
        raise ValueError(f"quiet_hours {text!r} starts where it ends")
    return first, last


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """One place alerts are sent: a [[alerts.targets]] table of the settings file."""

    name: str  # names it in the delivery records and logs; unique
    kind: TargetKind
    url: str  # the robot's webhook URL (DingTalk's with access_token, WeCom's with key)
    secret: str = ""  # webhook: the HMAC key (required); DingTalk: the 加签 secret (SEC…)
    min_severity: SeverityName = "warning"
    sites: tuple[str, ...] = ()  # site ids it wants; empty: every site
    rules: tuple[str, ...] = ()  # rule ids it wants; empty: every rule
    # changes it wants; empty: every change but escalations (escalation targets: escalations)
    changes: tuple[Change, ...] = ()
    # "22:00-07:00", China time (UTC+8): non-critical messages wait for the end; critical ones
    # go out at once (a critical alert is what someone must be woken for)
    quiet_hours: str = ""
    lang: Literal["zh", "en"] = "zh"
    escalation: bool = False  # an escalation target: it gets the escalations
    # at most this many messages a minute (None: the kind's documented limit); beyond it one
    # digest message
    max_per_min: Annotated[int, Field(ge=2, le=600)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"target name {self.name!r}: letters, digits, _ . - (at most 64)")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"target {self.name}: url must be http(s)://…, got {self.url!r}")
        need = SECRET[self.kind]
        if need == "required" and not self.secret:
            raise ValueError(f"target {self.name}: a {self.kind} target needs a secret")
        if need == "none" and self.secret:
            raise ValueError(
                f"target {self.name}: a {self.kind} robot has no secret (its key is in the url)"
            )
        parse_quiet_hours(self.quiet_hours)

    @property
    def per_min(self) -> int:
        return self.max_per_min or DEFAULT_PER_MIN[self.kind]

    @property
    def quiet(self) -> tuple[int, int] | None:
        return parse_quiet_hours(self.quiet_hours)


def _after_critical() -> dict[str, float]:
    return {"critical": 15.0}


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The [alerts] table: targets, escalation and the sender's pauses."""

    # the API's address as officers reach it, for the links in messages (/api/alerts/{id});
    # empty: http://{api_host}:{api_port}
    link_base_url: str = ""
    targets: tuple[TargetSettings, ...] = ()
    # Escalation: an alert still open (not acknowledged) this many minutes after it opened is
    # escalated, by severity, a rule's own delay first. Only critical alerts by default.
    escalate_after_min: Mapping[str, Minutes] = field(default_factory=_after_critical)
    escalate_rule_after_min: Mapping[str, Minutes] = field(default_factory=dict)
    # targets escalations go to besides those with escalation = true
    escalation_targets: tuple[str, ...] = ()
    # a failed delivery is tried again after retry_first_s, doubling to retry_max_delay_s,
    # for ever (a notification is delayed, never dropped)
    retry_first_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    retry_max_delay_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
    # A storm: when more messages are due for a target than it may still take this minute, they
    # go out as one digest, and later ones wait for the next digest this long after it (as
    # Grafana's notification policies' group_interval, whose default is 5 min); a critical
    # alert opening or escalated still goes out alone while the minute has room.
    digest_every_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # how often the sender looks at the outbox and for alerts to escalate
    poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    # Pending period, seconds, by rule id or part name (a rule's own entry first), over
    # PENDING_DEFAULTS: an opening is told only once the alert has stayed unresolved this long
    # on the sender's clock; one resolved within it is told of not at all (neither its opening
    # nor its resolution), its history says so. 0: told at once.
    pending_s: Mapping[str, PendingSeconds] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [t.name for t in self.targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"target {twice[0]!r} is named twice")
        unknown = [n for n in self.escalation_targets if n not in names]
        if unknown:
            raise ValueError(f"escalation_targets names no target {unknown[0]!r}")
        if self.link_base_url and urlsplit(self.link_base_url).scheme not in ("http", "https"):
            raise ValueError(f"link_base_url must be http(s)://…, got {self.link_base_url!r}")
        wrong = [k for k in self.escalate_after_min if k not in SEVERITIES]
        if wrong:
            raise ValueError(
                f"escalate_after_min: {wrong[0]!r} is no severity ({', '.join(SEVERITIES)})"
            )
        if self.retry_max_delay_s < self.retry_first_s:
            raise ValueError("retry_max_delay_s is shorter than retry_first_s")

    def pending_period_s(self, rule: str, part: str | None) -> float:
        """The pending period of a rule of `part`: its own entry, its part's, else 0."""
        for table in (self.pending_s, PENDING_DEFAULTS):
            for key in (rule, part):
                if key is not None and key in table:
                    return float(table[key])
        return 0.0

    def is_escalation_target(self, target: TargetSettings) -> bool:
        return target.escalation or target.name in self.escalation_targets

    def changes_of(self, target: TargetSettings) -> tuple[str, ...]:
        """The changes a target is sent: its own list, else by whether it is for escalations."""
        if target.changes:
            return tuple(target.changes)
        return ESCALATION_CHANGES if self.is_escalation_target(target) else ORDINARY_CHANGES
