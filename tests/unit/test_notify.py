"""Notifications without a network: each target's payload and signature (DingTalk's `sign`
against an independent computation of its documented algorithm), routing, quiet hours, the
per-minute limit and digests, escalation timing, the backoff schedule and the settings.

The sender runs here on a real AlertStore (SQLite file) with httpx's MockTransport standing in
for the receivers; tests/integration/test_notify_delivery.py sends to real HTTP servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from hazwatch.alerts.delivery import DELIVERED, DIGESTED, DeliveryStore
from hazwatch.alerts.messages import (
    DigestItem,
    NoNames,
    alert_message,
    china_time,
    digest_message,
    dingtalk_markdown,
    wecom_markdown,
)
from hazwatch.alerts.model import Alert, AlertSignal, AlertState, Change, Severity
from hazwatch.alerts.routing import (
    NS_PER_MIN,
    Due,
    RateWindow,
    escalation_due,
    hold_until_ns,
    plan,
    quiet_end_ns,
    wants,
)
from hazwatch.alerts.rules import short_name
from hazwatch.alerts.settings import AlertSettings, TargetSettings, parse_quiet_hours
from hazwatch.alerts.store import AlertStore
from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.notify.sender import Sender
from hazwatch.notify.targets import (
    REPLAY_WINDOW_S,
    DingTalkNotifier,
    Outcome,
    WebhookNotifier,
    WeComNotifier,
    dingtalk_sign,
    verify_webhook,
)
from hazwatch.settings import load_settings
from hazwatch.streams.catalog import rule_specs
from hazwatch.streams.custody.rules import RULE_SPECS as CUSTODY

S = 1_000_000_000
RULES = rule_specs()


def china_ns(text: str) -> int:
    """ "2026-03-01 23:00" China time as UTC ns."""
    moment = datetime.fromisoformat(text + "+08:00")
    return int(moment.astimezone(UTC).timestamp()) * S


T0 = china_ns("2026-03-01 14:05")


def target(**kw: object) -> TargetSettings:
    fields: dict[str, object] = {"name": "hook", "kind": "webhook", "url": "http://h/x"}
    fields |= kw
    if fields["kind"] == "webhook" and "secret" not in fields:
        fields["secret"] = "s3cret"
    return TargetSettings(**fields)  # type: ignore[arg-type]


def alert(**kw: object) -> Alert:
    fields: dict[str, object] = {
        "alert_id": "a1b2c3d4e5f60718",
        "rule": "transit_overdue",
        "subject": "B-2026-0001",
        "severity": Severity.CRITICAL,
        "message": "batch B-2026-0001 not received within 24 h of dispatch",
        "site": "jy-0012",
        "state": AlertState.OPEN,
        "opened_ns": T0,
        "updated_ns": T0,
    }
    fields |= kw
    return Alert(**fields)  # type: ignore[arg-type]


class Notice:
    def __init__(self, a: Alert, change: str = "opened", at_ns: int = T0, key: str = "") -> None:
        self.alert, self.change, self.at_ns = a, change, at_ns
        self.key = key or f"{a.alert_id}:1"


class Names:
    def site(self, site: str) -> str | None:
        return {"jy-0012": "城东危废贮存点", "jy-0013": "西区处置中心"}.get(site)

    def device(self, site: str, device: str) -> str | None:
        return {"aq-07": "2号微站"}.get(device)


def message(lang: str = "zh", **kw: object) -> object:
    return alert_message(
        Notice(alert(**kw)), lang=lang, rules=RULES, names=Names(), base_url="http://hw:8080",
        now_ns=T0,
    )  # fmt: skip


# -- rule names ----------------------------------------------------------------------------------


def test_a_rules_short_name_is_its_chinese_description_before_the_first_colon() -> None:
    spec = next(s for s in CUSTODY if s.id == "transit_overdue")
    assert short_name(spec) == "转移运输超时"
    assert short_name(spec, "en") == "Transit overdue"
    for spec in RULES.values():  # every declared rule has a name, none a whole sentence
        assert 2 <= len(short_name(spec)) <= 12, spec.id
        assert "：" not in short_name(spec)


# -- the generic webhook -------------------------------------------------------------------------


def test_webhook_body_is_json_with_the_key_and_the_signature_is_hmac_of_timestamp_dot_body() -> (
    None
):
    hook = WebhookNotifier(target(secret="s3cret"))
    req = hook.request(message(), now_ms=T0 // 1_000_000)  # type: ignore[arg-type]
    body = orjson.loads(req.body)
    assert body["idempotency_key"] == "a1b2c3d4e5f60718:1" == req.headers["X-Hazwatch-Key"]
    assert req.headers["Idempotency-Key"] == '"a1b2c3d4e5f60718:1"'
    assert body["type"] == "alert" and body["change"] == "opened"
    assert body["alert"]["rule_name"] == "转移运输超时"
    assert body["alert"]["site_name"] == "城东危废贮存点"
    assert body["link"] == "http://hw:8080/api/alerts/a1b2c3d4e5f60718"
    assert body["at"] == "2026-03-01T14:05:00.000+08:00"
    timestamp = req.headers["X-Hazwatch-Timestamp"]
    assert int(timestamp) == T0 // S
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + req.body, hashlib.sha256)
    assert req.headers["X-Hazwatch-Signature"] == "sha256=" + expected.hexdigest()
    now = T0 / S
    assert verify_webhook("s3cret", req.headers, req.body, now_s=now)
    assert not verify_webhook("wrong", req.headers, req.body, now_s=now)
    assert not verify_webhook("s3cret", req.headers, req.body + b" ", now_s=now)
    assert verify_webhook("s3cret", req.headers, req.body, now_s=now + REPLAY_WINDOW_S)
    assert not verify_webhook("s3cret", req.headers, req.body, now_s=now + REPLAY_WINDOW_S + 1)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, "delivered"), (204, "delivered"), (503, "transient"), (429, "transient"),
     (408, "transient"), (404, "config"), (401, "config"), (400, "rejected"), (413, "rejected")],
)  # fmt: skip
def test_webhook_answers_by_status(status: int, verdict: str) -> None:
    assert WebhookNotifier(target()).judge(status, {}, b"").verdict == verdict


def test_a_retry_after_is_honoured() -> None:
    outcome = WebhookNotifier(target()).judge(503, {"retry-after": "42"}, b"")
    assert outcome == Outcome("transient", "HTTP 503:", 42.0)


# -- DingTalk ------------------------------------------------------------------------------------


def doc_sign(secret: str, timestamp: str) -> str:
    """DingTalk's own Python sample (customize-robot-security-settings, 加签), written out."""
    secret_enc = secret.encode("utf-8")
    string_to_sign = f"{timestamp}\n{secret}"
    string_to_sign_enc = string_to_sign.encode("utf-8")
    hmac_code = hmac.new(secret_enc, string_to_sign_enc, digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(hmac_code))


def test_dingtalk_sign_is_the_documented_hmac_of_timestamp_newline_secret() -> None:
    secret = "SEC" + "0f" * 32
    for ts in (1_700_000_000_000, 1_772_345_100_000, 1):
        assert dingtalk_sign(secret, ts) == doc_sign(secret, str(ts))
    # URL-encoded Base64 of a 32-byte digest: no raw + / = left
    sign = dingtalk_sign(secret, 1_700_000_000_123)
    assert not set("+/=") & set(sign)
    assert len(base64.b64decode(urllib.parse.unquote_plus(sign))) == 32


def test_dingtalk_request_carries_timestamp_and_sign_and_a_markdown_body() -> None:
    ding = DingTalkNotifier(
        target(name="ding", kind="dingtalk", url="https://oapi.dingtalk.com/robot/send?access_token=abc",
               secret="SECxyz")
    )  # fmt: skip
    now_ms = T0 // 1_000_000 + 123
    req = ding.request(message(), now_ms)  # type: ignore[arg-type]
    url = urllib.parse.urlsplit(req.url)
    query = urllib.parse.parse_qs(url.query)
    assert query["access_token"] == ["abc"] and query["timestamp"] == [str(now_ms)]
    raw_sign = req.url.split("sign=", 1)[1]
    assert raw_sign == doc_sign("SECxyz", str(now_ms))  # as DingTalk will read it, encoded once
    body = orjson.loads(req.body)
    assert body["msgtype"] == "markdown" and body["at"] == {"isAtAll": False}
    text = body["markdown"]["text"]
    assert body["markdown"]["title"].startswith("【紧急】转移运输超时")
    assert text.startswith("#### 【紧急】转移运输超时")
    assert "**站点**：城东危废贮存点（jy-0012）" in text
    assert "**时间**：2026-03-01 14:05:00（北京时间）" in text
    assert "[查看告警](http://hw:8080/api/alerts/a1b2c3d4e5f60718)" in text
    assert text.endswith("编号：a1b2c3d4e5f60718:1")
    assert req.headers["Idempotency-Key"] == '"a1b2c3d4e5f60718:1"'
    unsigned = DingTalkNotifier(
        target(name="d", kind="dingtalk", url="https://o/robot?access_token=a")
    )
    assert unsigned.request(message(), now_ms).url == "https://o/robot?access_token=a"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "answer", "verdict", "retry_after"),
    [
        (200, {"errcode": 0, "errmsg": "ok"}, "delivered", None),
        (200, {"errcode": 130101, "errmsg": "send too fast"}, "transient", 60.0),
        (200, {"errcode": -1, "errmsg": "系统繁忙"}, "transient", None),
        (200, {"errcode": 310000, "errmsg": "sign not match"}, "config", None),
        (200, {"errcode": 300001, "errmsg": "token is not exist"}, "config", None),
        (200, {"errcode": 430104, "errmsg": "含有不合适的内容"}, "rejected", None),
        (200, "not json", "transient", None),
        (502, {}, "transient", None),
    ],
)
def test_dingtalk_errcode_decides_even_with_http_200(
    status: int, answer: object, verdict: str, retry_after: float | None
) -> None:
    body = answer.encode() if isinstance(answer, str) else orjson.dumps(answer)
    outcome = DingTalkNotifier(target(name="d", kind="dingtalk")).judge(status, {}, body)
    assert (outcome.verdict, outcome.retry_after_s) == (verdict, retry_after)


# -- WeCom ---------------------------------------------------------------------------------------


def test_wecom_body_is_markdown_content_with_the_key_and_fits_the_robot() -> None:
    wecom = WeComNotifier(
        target(
            name="wx", kind="wecom", url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
        )
    )
    req = wecom.request(message(message="x" * 10_000), 0)  # type: ignore[arg-type]
    assert req.url.endswith("send?key=k")
    body = orjson.loads(req.body)
    assert body["msgtype"] == "markdown" and set(body) == {"msgtype", "markdown"}
    content = body["markdown"]["content"]
    assert content.startswith('### <font color="warning">【紧急】转移运输超时</font>')
    assert "> **站点**：城东危废贮存点（jy-0012）" in content
    assert content.endswith('<font color="comment">编号：a1b2c3d4e5f60718:1</font>')
    assert len(content.encode()) <= 4096


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [({"errcode": 0, "errmsg": "ok"}, "delivered"), ({"errcode": 45009}, "transient"),
     ({"errcode": 93000, "errmsg": "invalid webhook url"}, "config"),
     ({"errcode": 40058}, "rejected")],
)  # fmt: skip
def test_wecom_errcode_decides(answer: dict[str, object], verdict: str) -> None:
    outcome = WeComNotifier(target(name="w", kind="wecom")).judge(200, {}, orjson.dumps(answer))
    assert outcome.verdict == verdict


def test_english_messages() -> None:
    text = dingtalk_markdown(message("en"))  # type: ignore[arg-type]
    assert text.startswith("#### [Critical] Transit overdue")
    assert "**Site**: 城东危废贮存点 (jy-0012)" in text
    assert "**Time**: 2026-03-01 14:05:00（UTC+8）" in text


def test_device_made_text_cannot_open_a_link_in_the_markdown() -> None:
    text = wecom_markdown(message(message="[click](http://evil) <font>"))  # type: ignore[arg-type]
    assert "](http://evil)" not in text and "<font>" not in text


# -- routing -------------------------------------------------------------------------------------


def test_routing_by_severity_site_rule_and_change() -> None:
    settings = AlertSettings(
        targets=(
            target(name="all", min_severity="info"),
            target(name="majors", min_severity="major", sites=("jy-0012",)),
            target(name="air", rules=("air_exceedance",)),
            target(name="boss", escalation=True),
            target(name="acks", changes=("acknowledged",)),
        )
    )
    by = {t.name: t for t in settings.targets}

    def who(a: Alert, change: str = "opened") -> set[str]:
        return {t.name for t in settings.targets if wants(settings, t, a, change)}

    assert who(alert(severity=Severity.INFO)) == {"all"}
    assert who(alert(severity=Severity.MAJOR)) == {"all", "majors"}
    assert who(alert(severity=Severity.MAJOR, site="jy-0013")) == {"all"}
    assert who(alert(rule="air_exceedance", severity=Severity.WARNING)) == {"all", "air"}
    assert who(alert(), "escalated") == {"boss"}
    assert who(alert(), "acknowledged") == {"all", "majors", "acks"}
    assert settings.changes_of(by["boss"]) == ("escalated",)


def test_escalation_targets_can_be_named_in_the_alerts_table() -> None:
    settings = AlertSettings(
        targets=(target(name="a"), target(name="b")), escalation_targets=("b",)
    )
    assert [t.name for t in settings.targets if wants(settings, t, alert(), "escalated")] == ["b"]


# -- quiet hours ---------------------------------------------------------------------------------


def test_quiet_hours_across_midnight_in_china_time() -> None:
    night = target(quiet_hours="22:00-07:00")
    assert quiet_end_ns(night, china_ns("2026-03-01 21:59")) is None
    assert quiet_end_ns(night, china_ns("2026-03-01 22:00")) == china_ns("2026-03-02 07:00")
    assert quiet_end_ns(night, china_ns("2026-03-01 23:30")) == china_ns("2026-03-02 07:00")
    assert quiet_end_ns(night, china_ns("2026-03-02 00:10")) == china_ns("2026-03-02 07:00")
    assert quiet_end_ns(night, china_ns("2026-03-02 06:59")) == china_ns("2026-03-02 07:00")
    assert quiet_end_ns(night, china_ns("2026-03-02 07:00")) is None
    lunch = target(quiet_hours="12:00-13:30")
    assert quiet_end_ns(lunch, china_ns("2026-03-01 12:45")) == china_ns("2026-03-01 13:30")
    assert quiet_end_ns(lunch, china_ns("2026-03-01 13:30")) is None
    assert quiet_end_ns(target(), china_ns("2026-03-01 23:00")) is None


def test_quiet_hours_hold_all_but_critical() -> None:
    night = target(quiet_hours="22:00-07:00")
    at = china_ns("2026-03-01 23:00")
    assert hold_until_ns(night, Severity.MAJOR, at) == china_ns("2026-03-02 07:00")
    assert hold_until_ns(night, Severity.CRITICAL, at) == at


@pytest.mark.parametrize("text", ["22-07", "22:00", "25:00-07:00", "07:00-07:00", "7:00-8:00"])
def test_a_wrong_quiet_hours_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quiet_hours"):
        parse_quiet_hours(text)


# -- the per-minute limit and digests ------------------------------------------------------------


def test_rate_window_counts_the_last_minute() -> None:
    window = RateWindow(3, [T0 - 70 * S, T0 - 50 * S, T0 - 10 * S])
    assert window.room(T0) == 1
    window.record(T0)
    assert window.room(T0) == 0
    assert window.next_room_ns(T0) == T0 + 10 * S  # when the send of T0-50 s leaves the minute
    assert window.room(T0 + 10 * S) == 1


def d(i: int, severity: Severity = Severity.WARNING, change: str = "opened") -> Due:
    return Due(i, severity, change)


def test_plan_sends_alone_while_everything_fits_then_digests() -> None:
    every = 300 * S
    assert plan([], 20, 0, T0, every).action == "wait"
    assert plan([d(1)], 20, 0, T0, every).action == "single"
    assert plan([d(1), d(2), d(3)], 4, 0, T0, every).action == "single"  # 3 fit with one to spare
    burst = plan([d(i) for i in range(4)], 4, 0, T0, every)
    assert (burst.action, len(burst.items), burst.storm_until_ns) == ("digest", 4, T0 + every)
    assert plan([d(1), d(2)], 0, 0, T0, every).action == "wait"  # no room: wait for the minute
    assert plan([d(1)], 1, 0, T0, every).action == "single"  # the last send of the minute


def test_in_a_storm_only_urgent_critical_changes_go_alone_until_the_next_digest() -> None:
    every, storm = 300 * S, T0 + 300 * S
    held = plan([d(1), d(2)], 10, storm, T0 + S, every)
    assert (held.action, held.until_ns) == ("wait", storm)
    urgent = plan([d(1), d(2, Severity.CRITICAL)], 10, storm, T0 + S, every)
    assert (urgent.action, urgent.items) == ("single", (d(2, Severity.CRITICAL),))
    resolved = plan([d(2, Severity.CRITICAL, "auto_resolved")], 10, storm, T0 + S, every)
    assert resolved.action == "wait"
    assert plan([d(1), d(2, Severity.CRITICAL)], 1, storm, T0 + S, every).action == "wait"
    again = plan([d(1), d(2)], 10, storm, storm, every)
    assert (again.action, again.storm_until_ns) == ("digest", storm + every)
    calm = plan([d(1)], 10, storm, storm, every)
    assert (calm.action, calm.storm_until_ns) == ("single", 0)
    assert plan([], 10, storm, storm, every).storm_until_ns == 0


def test_digest_message_groups_by_rule_site_severity_and_change() -> None:
    items = [
        *(DigestItem(f"k{i}", "air_exceedance", "jy-0012" if i % 2 else "jy-0013", "opened",
                     Severity.WARNING, T0 + i * S) for i in range(30)),
        *(DigestItem(f"c{i}", "cloned_tag", "jy-0099", "opened", Severity.MAJOR, T0)
          for i in range(7)),
        *(DigestItem(f"r{i}", "air_exceedance", "jy-0012", "auto_resolved", Severity.WARNING, T0)
          for i in range(4)),
    ]  # fmt: skip
    now = T0 + 270 * S
    zh = digest_message(items, target="ding", lang="zh", rules=RULES, names=Names(),
                        base_url="http://hw:8080", now_ns=now)  # fmt: skip
    assert zh.heading == "【告警汇总】最近 5 分钟 37 条新告警，涉及 3 个站点"
    lines = dict(zh.lines)
    assert lines["规则"] == "空气质量超标 30 条、疑似克隆标签 7 条"
    assert lines["级别"] == "警告 30 条、重要 7 条"
    assert lines["站点"] == "城东危废贮存点 15 条、西区处置中心 15 条、jy-0099 7 条"
    assert lines["另有"] == "已恢复 4 条"
    assert zh.link == f"http://hw:8080/api/alerts?since={T0 // 1_000_000}"
    assert zh.severity is Severity.MAJOR
    assert zh.data["count"] == 41 and len(zh.data["keys"]) == 41  # type: ignore[arg-type]
    en = digest_message(items, target="ding", lang="en", rules=RULES, names=NoNames(),
                        base_url="http://hw:8080", now_ns=now)  # fmt: skip
    assert en.heading == "[Alert digest] 37 new alerts at 3 sites in the last 5 min"
    assert dict(en.lines)["Rules"] == "30 Air exceedance, 7 Cloned tag"
    # the same changes to the same target: the same key; another target: another
    again = digest_message(list(reversed(items)), target="ding", lang="zh", rules=RULES,
                           names=Names(), base_url="http://hw:8080", now_ns=now)  # fmt: skip
    other = digest_message(items, target="wx", lang="zh", rules=RULES, names=Names(),
                           base_url="http://hw:8080", now_ns=now)  # fmt: skip
    assert again.key == zh.key != other.key and zh.key.startswith("digest-")


# -- escalation timing ---------------------------------------------------------------------------


def test_escalation_is_due_after_the_rules_or_severitys_delay_and_only_while_open() -> None:
    settings = AlertSettings(
        escalate_after_min={"critical": 15, "major": 60},
        escalate_rule_after_min={"cloned_tag": 5},
    )
    critical = alert()
    assert not escalation_due(settings, critical, T0 + 15 * NS_PER_MIN - 1)
    assert escalation_due(settings, critical, T0 + 15 * NS_PER_MIN)
    assert escalation_due(settings, alert(rule="cloned_tag"), T0 + 5 * NS_PER_MIN)
    assert not escalation_due(settings, alert(severity=Severity.MAJOR), T0 + 59 * NS_PER_MIN)
    assert escalation_due(settings, alert(severity=Severity.MAJOR), T0 + 60 * NS_PER_MIN)
    assert not escalation_due(settings, alert(severity=Severity.WARNING), T0 + 10**6 * NS_PER_MIN)
    acked = alert(state=AlertState.ACKNOWLEDGED)
    assert not escalation_due(settings, acked, T0 + 60 * NS_PER_MIN)


# -- the sender on a real alert store ------------------------------------------------------------


class Receiver:
    """httpx MockTransport handler: answers with `answer` and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Callable[[httpx.Request], httpx.Response] = lambda req: httpx.Response(
            200, json={"errcode": 0, "errmsg": "ok"}
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def keys(self) -> list[str]:
        return [r.headers["Idempotency-Key"].strip('"') for r in self.requests]


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture()
def db(tmp_path: Path) -> StateDB:
    return StateDB(f"sqlite:///{tmp_path / 'state.db'}")


def sender(
    db: StateDB, settings: AlertSettings, receiver: Receiver, clock: Clock
) -> tuple[Sender, AlertStore, DeliveryStore]:
    store, deliveries = AlertStore(db), DeliveryStore(db)
    out = Sender(
        settings, store, deliveries, rules=RULES, names=Names(), base_url="http://hw:8080",
        holder="worker-1", clock_ns=clock, transport=httpx.MockTransport(receiver),
    )  # fmt: skip
    return out, store, deliveries


def raise_air(store: AlertStore, n: int, at_ns: int, severity: Severity = Severity.WARNING) -> None:
    for i in range(n):
        store.raise_alert(
            AlertSignal("air_exceedance", f"jy-0012/aq-{i:03d}/pm25_24h", severity,
                        "PM2.5 24-h mean 180 µg/m³ over 75", "jy-0012", at_ns)
        )  # fmt: skip


def run(out: Sender, clock: Clock, seconds: float, step_s: float = 0.5) -> None:
    """Drive the sender as its threads would, on the test's clock."""
    end = clock.now + int(seconds * S)
    while clock.now <= end:
        out.tick(clock.now)
        for name in out.targets:
            out.step(name, clock.now)
        clock.now += int(step_s * S)


def test_every_change_is_delivered_once_to_each_target_that_wants_it(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(
        targets=(
            target(name="hook", min_severity="info"),
            target(name="crit", url="http://h/crit", min_severity="critical"),
        ),
        pending_s={"custody": 0},  # told at once (the pending period: its own tests below)
    )
    out, store, deliveries = sender(db, settings, receiver, clock)
    raise_air(store, 3, clock.now)
    opened = store.raise_alert(
        AlertSignal("transit_overdue", "B-1", Severity.CRITICAL, "late", "jy-0012", clock.now)
    )
    assert opened is not None
    store.acknowledge(opened.alert_id, at_ns=clock.now, by="officer-li")
    run(out, clock, 5)
    by_path: dict[str, list[str]] = {}
    for req in receiver.requests:
        by_path.setdefault(req.url.path, []).append(req.headers["X-Hazwatch-Key"])
        assert verify_webhook("s3cret", req.headers, req.content, now_s=clock.now / S)
    assert len(by_path["/x"]) == len(set(by_path["/x"])) == 5  # 4 openings, 1 acknowledgement
    assert by_path["/crit"] == [f"{opened.alert_id}:1", f"{opened.alert_id}:2"]
    assert deliveries.counts() == {("hook", DELIVERED): 5, ("crit", DELIVERED): 2}
    notified = [h for h in store.history(opened.alert_id) if h.change is Change.NOTIFIED]
    assert {(h.details["target"], h.details["key"]) for h in notified} == {
        ("hook", f"{opened.alert_id}:1"), ("hook", f"{opened.alert_id}:2"),
        ("crit", f"{opened.alert_id}:1"), ("crit", f"{opened.alert_id}:2"),
    }  # fmt: skip
    run(out, clock, 5)
    assert len(receiver.requests) == 7  # nothing twice


def test_a_failing_target_backs_off_doubling_to_the_cap_and_then_delivers(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    receiver.answer = lambda req: httpx.Response(503)
    settings = AlertSettings(targets=(target(),), retry_first_s=2, retry_max_delay_s=60)
    out, store, deliveries = sender(db, settings, receiver, clock)
    raise_air(store, 1, clock.now)
    out.tick(clock.now)
    pauses = []
    for _ in range(8):
        assert out.step("hook", clock.now) == 0  # an attempt
        pause = out.targets["hook"].paused_until_ns - clock.now
        pauses.append(pause / S)
        assert out.step("hook", clock.now) == pause  # paused: nothing sent meanwhile
        clock.now += pause
    expected = [2, 4, 8, 16, 32, 60, 60, 60]
    assert all(e <= p <= e * 1.1 for p, e in zip(pauses, expected, strict=True)), pauses
    (record,) = deliveries.for_target("hook")
    assert record.attempts == 8 and record.last_error == "HTTP 503:"
    receiver.answer = lambda req: httpx.Response(200)
    out.step("hook", clock.now)
    (record,) = deliveries.for_target("hook")
    assert (record.state, record.attempts, record.delivered_ns) == (DELIVERED, 9, clock.now)
    assert len(set(receiver.keys())) == 1  # one change, one key, nine attempts


def test_a_slow_or_failing_target_does_not_hold_the_others(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    receiver.answer = lambda req: httpx.Response(500 if req.url.path == "/bad" else 200)
    settings = AlertSettings(targets=(target(name="bad", url="http://h/bad"),
                                      target(name="good", url="http://h/good")))  # fmt: skip
    out, store, deliveries = sender(db, settings, receiver, clock)
    raise_air(store, 5, clock.now)
    run(out, clock, 3)
    counts = deliveries.counts()
    assert counts[("good", DELIVERED)] == 5 and counts[("bad", "pending")] == 5


def test_a_storm_gives_at_most_the_limit_per_minute_and_one_digest_per_interval(
    db: StateDB,
) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(
        targets=(target(name="wx", kind="wecom", url="http://h/wx", secret=""),),
        digest_every_s=60,
    )
    out, store, deliveries = sender(db, settings, receiver, clock)
    assert out.targets["wx"].window.limit == 20  # WeCom's documented 20 a minute
    raise_air(store, 5, clock.now)  # calm: each alone
    run(out, clock, 2)
    assert len(receiver.requests) == 5
    for burst in range(10):  # then 500 over 5 minutes
        store.db.execute("UPDATE alerts SET state = 'resolved' WHERE state = 'open'")
        raise_air(store, 50, clock.now, Severity.MAJOR)
        run(out, clock, 30)
        if burst == 0:  # in the storm: the thread sleeps until the next digest, no busy loop
            storm_until = out.targets["wx"].storm_until_ns
            assert storm_until > clock.now
            assert out.step("wx", clock.now) == storm_until - clock.now
    run(out, clock, 120)
    sent = [orjson.loads(r.content)["markdown"]["content"] for r in receiver.requests]
    digests = [s for s in sent if "告警汇总" in s]
    assert 5 + 1 <= len(sent) <= 5 + 1 + 6  # first digest at once, then one a minute
    assert {k: v for k, v in deliveries.counts().items() if k[1] != "digest"} == {
        ("wx", DELIVERED): 5,
        ("wx", DIGESTED): 500,
    }
    times = deliveries.sends_since("wx", 0)
    assert max(sum(1 for t in times if s <= t < s + 60 * S) for s in times) <= 20
    assert sum(int(d.split("最近 ")[1].split(" 条")[0].split(" 分钟 ")[1]) for d in digests) == 500


def test_quiet_hours_hold_non_critical_until_their_end_and_critical_goes_at_once(
    db: StateDB,
) -> None:
    receiver, clock = Receiver(), Clock(china_ns("2026-03-01 23:00"))
    settings = AlertSettings(
        targets=(target(min_severity="info", quiet_hours="22:00-07:00"),), pending_s={"custody": 0}
    )
    out, store, deliveries = sender(db, settings, receiver, clock)
    raise_air(store, 2, clock.now)
    store.raise_alert(AlertSignal("cloned_tag", "e1", Severity.CRITICAL, "two places", "jy-0012",
                                  clock.now))  # fmt: skip
    run(out, clock, 5)
    assert [orjson.loads(r.content)["alert"]["rule"] for r in receiver.requests] == ["cloned_tag"]
    held = [r for r in deliveries.for_target("hook") if r.state == "pending"]
    assert {r.next_attempt_ns for r in held} == {china_ns("2026-03-02 07:00")}
    clock.now = china_ns("2026-03-02 07:00")
    run(out, clock, 2)
    assert len(receiver.requests) == 3


def test_escalation_with_time_passed_in(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(
        targets=(target(name="group"), target(name="boss", url="http://h/boss", escalation=True)),
        escalate_after_min={"critical": 15},
        escalate_rule_after_min={"storage_overdue": 60},
        pending_s={"custody": 0},
    )
    out, store, _ = sender(db, settings, receiver, clock)
    late = store.raise_alert(AlertSignal("transit_overdue", "B-1", Severity.CRITICAL, "late",
                                         "jy-0012", T0))  # fmt: skip
    taken = store.raise_alert(AlertSignal("wrong_receiver", "B-2", Severity.CRITICAL, "wrong",
                                          "jy-0012", T0))  # fmt: skip
    overdue = store.raise_alert(AlertSignal("storage_overdue", "B-3", Severity.MAJOR, "over",
                                            "jy-0012", T0))  # fmt: skip
    assert late and taken and overdue
    assert out.escalate(T0 + 15 * NS_PER_MIN - S) == []
    store.acknowledge(taken.alert_id, at_ns=T0 + 10 * NS_PER_MIN, by="officer-wang")
    assert out.escalate(T0 + 15 * NS_PER_MIN) == [late.alert_id]
    assert out.escalate(T0 + 30 * NS_PER_MIN) == []  # once
    assert out.escalate(T0 + 60 * NS_PER_MIN) == [overdue.alert_id]  # its rule's own delay
    (entry,) = [h for h in store.history(late.alert_id) if h.change is Change.ESCALATED]
    assert entry.details == {"to": "boss"} and entry.at_ns == T0 + 15 * NS_PER_MIN
    clock.now = T0 + 60 * NS_PER_MIN
    run(out, clock, 3)
    boss = [orjson.loads(r.content) for r in receiver.requests if r.url.path == "/boss"]
    assert sorted(b["alert"]["alert_id"] for b in boss) == sorted([late.alert_id, overdue.alert_id])
    assert {b["change"] for b in boss} == {"escalated"}
    text = next(b["text"] for b in boss if b["alert"]["alert_id"] == late.alert_id)
    assert "已升级：发生 15 分钟仍未确认" in text
    group = [orjson.loads(r.content)["change"] for r in receiver.requests if r.url.path == "/x"]
    assert "escalated" not in group and group.count("opened") == 3


def test_a_restarted_sender_keeps_counting_the_minute(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(targets=(target(max_per_min=3),))
    out, store, _ = sender(db, settings, receiver, clock)
    raise_air(store, 2, clock.now)
    run(out, clock, 1)
    assert len(receiver.requests) == 2
    again, store, _ = sender(db, settings, receiver, clock)  # a new process, same worker id
    raise_air(store, 5, clock.now + 1)  # 2 repeats of the open ones, 3 new
    run(again, clock, 1)
    assert len(receiver.requests) == 3  # the minute had room for one: the digest of three


def test_only_the_lease_holder_sends(db: StateDB) -> None:
    receiver, clock = Receiver(), Clock()
    settings = AlertSettings(targets=(target(),))
    first, store, _ = sender(db, settings, receiver, clock)
    second, _, _ = sender(db, settings, receiver, clock)
    second.holder = "worker-2"
    raise_air(store, 1, clock.now)
    first.tick(clock.now)
    second.tick(clock.now)
    assert (first.leader, second.leader) == (True, False)
    first.stop()  # releases the lease
    second.tick(clock.now)
    assert second.leader
    second.step("hook", clock.now)
    assert len(receiver.requests) == 1


# -- settings ------------------------------------------------------------------------------------


@pytest.fixture()
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HAZWATCH_")]:
        monkeypatch.delenv(name)


EXAMPLE = """
[alerts]
link_base_url = "https://hazwatch.example.gov.cn"
escalate_after_min = { critical = 15, major = 120 }

[[alerts.targets]]
name = "ops-webhook"
kind = "webhook"
url = "https://ops.example.gov.cn/hazwatch/alerts"
secret = "change-me"
min_severity = "info"

[[alerts.targets]]
name = "center-dingtalk"
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN"
secret = "SEC0123"
sites = ["jy-0012"]
quiet_hours = "22:00-07:00"

[[alerts.targets]]
name = "leaders-wecom"
kind = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY"
escalation = true
lang = "en"
"""


def test_targets_are_a_list_of_tables_in_the_settings_file(tmp_path: Path, no_env: None) -> None:
    path = tmp_path / "hazwatch.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    alerts = load_settings(path).alerts
    assert [t.name for t in alerts.targets] == ["ops-webhook", "center-dingtalk", "leaders-wecom"]
    ding = alerts.targets[1]
    assert (ding.kind, ding.sites, ding.quiet, ding.per_min) == ("dingtalk", ("jy-0012",),
                                                                 (1320, 420), 20)  # fmt: skip
    assert alerts.escalate_after_min == {"critical": 15, "major": 120}
    assert alerts.is_escalation_target(alerts.targets[2])


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('kind = "sms"\nurl = "http://h"', "setting HAZWATCH_ALERTS__TARGETS__0__KIND"),
        ('kind = "webhook"\nurl = "http://h"', "a webhook target needs a secret"),
        ('kind = "wecom"\nurl = "http://h"\nsecret = "s"', "a wecom robot has no secret"),
        ('kind = "dingtalk"\nurl = "ftp://h"', "url must be http"),
        ('kind = "dingtalk"\nurl = "http://h"\nquiet_hours = "late"', "quiet_hours must be"),
        ('kind = "dingtalk"\nurl = "http://h"\nmin_severity = "high"', "MIN_SEVERITY"),
        ('kind = "dingtalk"\nurl = "http://h"\nfoo = 1', "unknown setting"),
    ],
)
def test_a_wrong_target_is_one_line_at_start(
    tmp_path: Path, no_env: None, table: str, error: str
) -> None:
    path = tmp_path / "hazwatch.toml"
    path.write_text(f'[[alerts.targets]]\nname = "t"\n{table}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=error) as caught:
        load_settings(path)
    assert "\n" not in str(caught.value)


def test_targets_named_twice_or_an_unknown_escalation_target_are_refused() -> None:
    with pytest.raises(ValueError, match="named twice"):
        AlertSettings(targets=(target(), target()))
    with pytest.raises(ValueError, match="names no target 'boss'"):
        AlertSettings(targets=(target(),), escalation_targets=("boss",))
    with pytest.raises(ValueError, match="no severity"):
        AlertSettings(escalate_after_min={"urgent": 5})


def test_message_times_are_china_time() -> None:
    assert china_time(china_ns("2026-03-01 23:59")) == "2026-03-01 23:59:00"
    assert replace(target(), lang="en").lang == "en"


def test_the_verification_snippet_in_the_docs_verifies_a_real_request() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text("utf-8")
    snippet = next(b for b in doc.split("```python\n")[1:] if "def verify(" in b).split("```")[0]
    scope: dict[str, object] = {}
    exec(snippet, scope)  # the docs' own code, as a receiver would paste it
    verify = scope["verify"]
    req = WebhookNotifier(target(secret="s3cret")).request(
        message(), now_ms=time.time_ns() // 10**6
    )  # type: ignore[arg-type]
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert verify(b"s3cret", headers, req.body)  # type: ignore[operator]
    assert not verify(b"other", headers, req.body)  # type: ignore[operator]
    assert not verify(b"s3cret", headers, req.body.replace(b"B-2026", b"B-2027"))  # type: ignore[operator]
    stale = headers | {"x-hazwatch-timestamp": str(int(time.time()) - REPLAY_WINDOW_S - 5)}
    assert not verify(b"s3cret", stale, req.body)  # type: ignore[operator]


def test_the_readme_targets_load_as_written(tmp_path: Path, no_env: None) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    section = readme.split("### Notifications", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "hazwatch.toml"
    path.write_text(example, encoding="utf-8")
    alerts = load_settings(path).alerts
    kinds = {t.kind: t for t in alerts.targets}
    assert set(kinds) == {"webhook", "dingtalk", "wecom"}
    named = {t.name: t for t in alerts.targets}
    ding = named["center-dingtalk"]
    assert ding.quiet == (22 * 60, 7 * 60) and ding.secret  # quiet hours, 加签
    assert alerts.is_escalation_target(kinds["wecom"]) and not kinds["wecom"].secret
    assert named["ops-webhook"].per_min == 30 and ding.per_min == 20  # rate limits
    assert alerts.digest_every_s == 300  # digests
    assert dict(alerts.escalate_after_min) == {"critical": 15, "major": 120}  # escalation
    assert dict(alerts.escalate_rule_after_min) == {"cloned_tag": 5}
    transport = named["transport-dingtalk"]
    assert alerts.changes_of(transport) == ("opened", "escalated") and transport.lang == "en"
    from hazwatch.parts.notify import check_rule_names

    check_rule_names(alerts, RULES)  # every rule it names is declared


def test_names_come_from_the_registry() -> None:
    from hazwatch.devices.registry import RegistryContext, parse_registry
    from hazwatch.parts.notify import RegistryNames

    registry = parse_registry(
        {
            "site": [{"id": "jy-0012", "name": "城东危废贮存点"}, {"id": "jy-0013"}],
            "station": [{"id": "aq-07", "site": "jy-0012", "name": "厂界东侧微站"}],
            "camera": [{"id": "cam-2", "site": "jy-0012"}],
        }
    )
    names = RegistryNames(RegistryContext(None, registry))
    assert (names.site("jy-0012"), names.site("jy-0013"), names.site("nope")) == (
        "城东危废贮存点", None, None,
    )  # fmt: skip
    assert names.device("jy-0012", "aq-07") == "厂界东侧微站"
    assert names.device("jy-0012", "cam-2") is None  # registered, no name
    a = alert(rule="air_exceedance", subject="jy-0012/aq-07/pm25_24h", severity=Severity.WARNING)
    made = alert_message(Notice(a), lang="zh", rules=RULES, names=names, base_url="hw", now_ns=T0)
    text = dingtalk_markdown(made)
    assert "**对象**：厂界东侧微站（aq-07） / pm25_24h" in text


def test_the_changes_a_target_may_name_are_the_ones_the_store_sends() -> None:
    from hazwatch.alerts.model import SENT_CHANGES
    from hazwatch.alerts.settings import CHANGES

    assert set(CHANGES) == {c.value for c in SENT_CHANGES}


def test_one_catalog_of_rules_for_the_api_the_screen_the_cli_and_the_messages() -> None:
    """Rule discovery is streams/catalog.py alone: it holds every part's declarations, and
    the screen, the alert routes, the CLI and the sender read it (no list of their own)."""
    from hazwatch.api.routes import alerts as alert_routes
    from hazwatch.api.routes import screen
    from hazwatch.commands import alerts as alerts_cli
    from hazwatch.parts import notify as wiring_notify
    from hazwatch.streams.air import rules as air
    from hazwatch.streams.clocks import rules as clocks
    from hazwatch.streams.custody import rules as custody
    from hazwatch.streams.presence import rules as presence
    from hazwatch.streams.video import rules as video

    parts = (air, clocks, custody, presence, video)  # and any part added later
    declared = [spec for part in parts for spec in part.RULE_SPECS]
    assert all(RULES[spec.id] is spec for spec in declared)
    for spec in RULES.values():  # each from its own part's declarations
        module = importlib.import_module(f"hazwatch.streams.{spec.part}.rules")
        assert spec in module.RULE_SPECS
    assert tuple(RULES.values()) == screen.RULE_SPECS
    assert not hasattr(alert_routes, "SPECS")
    assert alerts_cli.Words("zh").rule("device_offline") == "设备离线（device_offline）"
    for module in (alert_routes, screen, alerts_cli, wiring_notify):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert "iter_modules" not in source and ".rules import RULE_SPECS" not in source
