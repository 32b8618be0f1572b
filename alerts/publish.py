"""What an alert becomes outside the alert store: its point (measurement `alert`), and the MQTT
message `hw/alerts/{site}/{rule}` that tells subscribers of it.

Never publish or write here: this only builds them (pure); the service does the I/O.
"""

from __future__ import annotations

import orjson

from hazwatch.alerts.model import Alert
from hazwatch.base.points import Point
from hazwatch.devices.schema import point_time
from hazwatch.devices.topics import ALERT_ROOT


def alert_point(alert: Alert) -> Point:
    """The alert as a point, at the time it last changed (moved within its millisecond by
    its id: the subject and id are fields, and two alerts of one rule may change at once)."""
    tags = {"site": alert.site, "rule": alert.rule, "severity": alert.severity.value}
    fields: dict[str, float | int | bool | str] = {
        "subject": alert.subject,
        "alert_id": alert.alert_id,
        "message": alert.message,
        "state": alert.state.value,
    }
    return Point("alert", tags, fields, point_time(alert.updated_ns, alert.alert_id))


def alert_topic(alert: Alert) -> str:
    """`hw/alerts/{site}/{rule}`."""
    return f"{ALERT_ROOT}/{alert.site}/{alert.rule}"


def alert_payload(alert: Alert) -> bytes:
    """The alert's message body, JSON."""
    return orjson.dumps(
        {
            "alert_id": alert.alert_id,
            "rule": alert.rule,
            "subject": alert.subject,
            "severity": alert.severity.value,
            "state": alert.state.value,
            "site": alert.site,
            "message": alert.message,
            "evidence": alert.evidence,
            "at_ns": alert.updated_ns,
            # what made this message (opened, acknowledged, resolved, auto_resolved,
            # escalated), and the alert a new one recurs (its (rule, subject) was resolved)
            "change": alert.last_change.value,
            "recurs": alert.recurs,
            # the finding's own values (the rule's fields: docs/notifications.md lists them)
            "details": alert.details,
        }
    )
