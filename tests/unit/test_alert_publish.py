"""An alert's point, topic and payload (alerts/publish.py), as the service publishes them."""

from __future__ import annotations

import orjson

from hazwatch.alerts.model import Alert, AlertState, Severity
from hazwatch.alerts.publish import alert_payload, alert_point, alert_topic
from hazwatch.devices.schema import point_time

ALERT = Alert(
    alert_id="a-1",
    rule="tamper_occlusion",
    subject="jy-0012/cam-2",
    severity=Severity.MAJOR,
    message="lens covered",
    site="jy-0012",
    state=AlertState.OPEN,
    opened_ns=1,
    updated_ns=2,
    evidence="jy-0012_cam-2_x_1_occlusion.jpg",
    details={"value": 0.93, "seq": 17},
)


def test_topic_payload_and_point_of_an_alert() -> None:
    assert alert_topic(ALERT) == "hw/alerts/jy-0012/tamper_occlusion"
    assert orjson.loads(alert_payload(ALERT)) == {
        "alert_id": "a-1",
        "rule": "tamper_occlusion",
        "subject": "jy-0012/cam-2",
        "severity": "major",
        "state": "open",
        "site": "jy-0012",
        "message": "lens covered",
        "evidence": "jy-0012_cam-2_x_1_occlusion.jpg",
        "at_ns": 2,
        "change": "opened",
        "recurs": None,
        "details": {"value": 0.93, "seq": 17},
    }
    point = alert_point(ALERT)
    # at its change, moved within that millisecond by its id (the subject is no tag)
    assert point.measurement == "alert" and point.ts_ns == point_time(2, "a-1") < 1_000_000
    assert point.tags == {"site": "jy-0012", "rule": "tamper_occlusion", "severity": "major"}
    assert point.fields == {
        "subject": "jy-0012/cam-2",
        "alert_id": "a-1",
        "message": "lens covered",
        "state": "open",
    }
