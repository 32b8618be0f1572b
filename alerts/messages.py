"""What an officer reads of an alert's change or of a storm's digest, in Chinese (default) or
English: the rule's name, the site's and device's names from the registry, the device family
by name, the finding in the message's language (each rule's formatter, alerts/text.py), China
time, the severity in words and a link to the alert on the API; rendered as DingTalk's or
WeCom's markdown, or as the generic webhook's JSON.

Never send or read a clock here: pure functions of what they are handed (the sender passes the
time it sends at). Severity words: 警告 and 重要 are ThingsBoard's zh_CN terms for WARNING and
MAJOR (ui-ngx/src/assets/locale/locale.constant-zh_CN.json, alarm.severity-*); for critical we
say 紧急 (ThingsBoard's 危险 "dangerous" reads as a hazard class on a hazardous-waste site),
for info 提示, the word Chinese monitoring consoles use for notices. These words (severities,
states, changes) are the one source of them: the CLI prints them and the screen reads them
from /api/screen/labels, so a message, a table and a page say the same.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hazwatch.alerts.model import Alert, Severity
from hazwatch.alerts.rules import RuleSpec, short_name
from hazwatch.alerts.text import Formatter, detail_of, family_word
from hazwatch.devices.timeparse import CHINA, NS_PER_S

SEVERITY_WORDS = {
    "zh": {
        Severity.INFO: "提示",
        Severity.WARNING: "警告",
        Severity.MAJOR: "重要",
        Severity.CRITICAL: "紧急",
    },
    "en": {
        Severity.INFO: "Info",
        Severity.WARNING: "Warning",
        Severity.MAJOR: "Major",
        Severity.CRITICAL: "Critical",
    },
}
# an alert's state (alerts.model.AlertState)
STATE_WORDS = {
    "zh": {"open": "未处理", "acknowledged": "已确认", "resolved": "已解除"},
    "en": {"open": "open", "acknowledged": "acknowledged", "resolved": "resolved"},
}
# an alert's changes (alerts.model.Change): those people are told of, then the history's own
CHANGE_WORDS = {
    "zh": {
        "opened": "新告警",
        "acknowledged": "已确认",
        "resolved": "已处理",
        "auto_resolved": "已恢复",
        "escalated": "已升级",
        "repeated": "重复",
        "notified": "已通知",
        "suppressed": "未通知",
    },
    "en": {
        "opened": "new",
        "acknowledged": "acknowledged",
        "resolved": "resolved",
        "auto_resolved": "cleared",
        "escalated": "escalated",
        "repeated": "repeated",
        "notified": "notified",
        "suppressed": "not notified",
    },
}
_LABELS = {
    "zh": {
        "state": "状态",
        "site": "站点",
        "subject": "对象",
        "time": "时间",
        "opened": "发生时间",
        "detail": "详情",
        "count": "重复",
        "by": "处理人",
        "late": "延迟送达",
        "open": "查看告警",
        "list": "查看告警列表",
        "key": "编号",
        "tz": "北京时间",
        "severity": "级别",
        "rules": "规则",
        "sites": "站点",
        "other": "另有",
    },
    "en": {
        "state": "State",
        "site": "Site",
        "subject": "Subject",
        "time": "Time",
        "opened": "Opened",
        "detail": "Detail",
        "count": "Repeated",
        "by": "By",
        "late": "Delivered late",
        "open": "Open the alert",
        "list": "Open the alert list",
        "key": "Key",
        "tz": "UTC+8",
        "severity": "Severity",
        "rules": "Rules",
        "sites": "Sites",
        "other": "Also",
    },
}
# a message later than this after its change says how late it is
LATE_NS = 5 * 60 * 1_000_000_000
DETAIL_MAX = 300  # characters of an alert's own message shown
# WeCom's markdown content is at most 4096 bytes (developer.work.weixin.qq.com/document/path/
# 91770); DingTalk's is not documented lower: both renderings are cut to this
MARKDOWN_MAX_BYTES = 4000


class Notice(Protocol):
    """A change of an alert to tell (alerts.model.OutboxItem is one)."""

    @property
    def alert(self) -> Alert: ...
    @property
    def change(self) -> str: ...
    @property
    def at_ns(self) -> int: ...
    @property
    def key(self) -> str: ...


class Names(Protocol):
    """Names of sites and devices from the registry (None: not registered, or no name)."""

    def site(self, site: str) -> str | None: ...

    def device(self, site: str, device: str) -> str | None: ...


class NoNames:
    """Names when there is no registry: every id is shown as itself."""

    def site(self, site: str) -> str | None:
        return None

    def device(self, site: str, device: str) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class Message:
    """One message, before a notifier renders it: title, heading, labelled lines, a link, the
    idempotency key, and the machine-readable fields of the webhook's JSON."""

    title: str
    heading: str
    severity: Severity
    lines: tuple[tuple[str, str], ...]
    link_text: str
    link: str
    key: str
    lang: str
    data: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One change counted in a digest (the delivery record holds these)."""

    key: str
    rule: str
    site: str
    change: str
    severity: Severity
    at_ns: int


def china_time(at_ns: int) -> str:
    """ "2026-03-01 14:05:09" in China time (UTC+8), to the second (integer seconds: a float
    of nanoseconds rounds an instant just before a second up into it)."""
    return datetime.fromtimestamp(at_ns // NS_PER_S, tz=CHINA).strftime("%Y-%m-%d %H:%M:%S")


def iso_china(at_ns: int) -> str:
    """RFC 3339 with the +08:00 offset, to the millisecond."""
    moment = datetime.fromtimestamp(at_ns // NS_PER_S, tz=CHINA)
    moment = moment.replace(microsecond=at_ns % NS_PER_S // 1000)
    return moment.isoformat(timespec="milliseconds")


def alert_link(base_url: str, alert_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/alerts/{alert_id}"


def list_link(base_url: str, since_ns: int) -> str:
    """The alert list from `since_ns` on (epoch ms, as the API's instants take it)."""
    return f"{base_url.rstrip('/')}/api/alerts?since={since_ns // 1_000_000}"


def plain(text: str, limit: int = DETAIL_MAX) -> str:
    """Device-made text as one line that cannot open a link or a tag in a robot's markdown."""
    flat = " ".join(str(text).split())
    for bad, good in (("[", "［"), ("]", "］"), ("<", "‹"), (">", "›"), ("*", "∗"), ("`", "'")):
        flat = flat.replace(bad, good)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def rule_name(rules: Mapping[str, RuleSpec], rule: str, lang: str) -> str:
    spec = rules.get(rule)
    return short_name(spec, lang) if spec is not None else rule


def site_label(names: Names, site: str, lang: str) -> str:
    name = names.site(site)
    if not name:
        return plain(site)
    return f"{plain(name)}（{plain(site)}）" if lang == "zh" else f"{plain(name)} ({plain(site)})"


def subject_label(
    names: Names, site: str, subject: str, lang: str, pattern: str | None = None
) -> str:
    """The subject with each registered device's name: "site/station" → "2号站（aq-07）";
    where the rule's subject `pattern` (RuleSpec.subject, e.g. "site/family/device") says a
    part is a family, the family by its name ("摄像机")."""
    segments = subject.split("/")
    kinds = pattern.split("/") if pattern else []
    parts = []
    for index, part in enumerate(segments):
        if part == site and "/" in subject:
            continue  # the site is on its own line
        if len(kinds) == len(segments) and kinds[index] == "family":
            parts.append(family_word(part, lang))
            continue
        name = names.device(site, part)
        if name:
            part = f"{name}（{part}）" if lang == "zh" else f"{name} ({part})"
        parts.append(plain(part, 80))
    return " / ".join(parts) or plain(subject)


def alert_message(
    notice: Notice,
    *,
    lang: str,
    rules: Mapping[str, RuleSpec],
    names: Names,
    base_url: str,
    now_ns: int,
    details: Mapping[str, Formatter] | None = None,
) -> Message:
    """The message of one change of one alert; its finding said by its rule's formatter in
    `details` (streams/catalog.py rule_details), else in the rule's own words."""
    alert, change = notice.alert, notice.change
    said = detail_of(alert, details or {})
    spec = rules.get(alert.rule)
    words = _LABELS[lang]
    severity = SEVERITY_WORDS[lang][alert.severity]
    name = rule_name(rules, alert.rule, lang)
    state = CHANGE_WORDS[lang].get(change, change)
    site = site_label(names, alert.site, lang)
    heading = f"【{severity}】{name}" if lang == "zh" else f"[{severity}] {name}"
    if change != "opened":
        heading += f"（{state}）" if lang == "zh" else f" ({state})"
    lines: list[tuple[str, str]] = [
        (words["state"], _state_text(notice, lang)),
        (words["site"], site),
        (
            words["subject"],
            subject_label(names, alert.site, alert.subject, lang, spec.subject if spec else None),
        ),
        (words["time"], f"{china_time(notice.at_ns)}（{words['tz']}）"),
    ]
    if change != "opened":
        lines.append((words["opened"], china_time(alert.opened_ns)))
    lines.append((words["detail"], plain(said.said(lang))))
    if alert.count > 1:
        lines.append((words["count"], f"{alert.count} 次" if lang == "zh" else f"{alert.count}×"))
    if alert.acknowledged_by and change in ("acknowledged", "resolved"):
        lines.append((words["by"], plain(alert.acknowledged_by, 64)))
    late_ns = now_ns - notice.at_ns
    if late_ns > LATE_NS:
        minutes = math.ceil(late_ns / 60e9)
        lines.append((words["late"], f"晚 {minutes} 分钟" if lang == "zh" else f"{minutes} min"))
    link = alert_link(base_url, alert.alert_id)
    data = {
        "type": "alert",
        "change": change,
        "at": iso_china(notice.at_ns),
        "at_ns": notice.at_ns,
        "alert": {
            "alert_id": alert.alert_id,
            "rule": alert.rule,
            "rule_name": name,
            "subject": alert.subject,
            "severity": alert.severity.value,
            "state": alert.state.value,
            "site": alert.site,
            "site_name": names.site(alert.site),
            "message": alert.message,
            "detail_zh": said.zh,
            "detail_en": said.en,
            "opened_at": iso_china(alert.opened_ns),
            "count": alert.count,
            "evidence": alert.evidence,
            "acknowledged_by": alert.acknowledged_by,
        },
        "link": link,
    }
    title = f"{heading} · {names.site(alert.site) or alert.site}"
    return Message(
        title=plain(title, 64),
        heading=heading,
        severity=alert.severity,
        lines=tuple(lines),
        link_text=words["open"],
        link=link,
        key=notice.key,
        lang=lang,
        data=data,
    )


def _state_text(notice: Notice, lang: str) -> str:
    change = notice.change
    word = CHANGE_WORDS[lang].get(change, change)
    if change == "escalated":
        minutes = max(0, round((notice.at_ns - notice.alert.opened_ns) / 60e9))
        if lang == "zh":
            return f"{word}：发生 {minutes} 分钟仍未确认"
        return f"{word}: not acknowledged {minutes} min after it opened"
    return word


def digest_key(target: str, keys: Iterable[str]) -> str:
    """The digest's own idempotency key: the same for the same changes to the same target."""
    digest = hashlib.sha256("\n".join([target, *sorted(keys)]).encode()).hexdigest()
    return f"digest-{digest[:32]}"


def _counted(counter: Counter[str], words: Mapping[str, str], lang: str, top: int = 6) -> str:
    parts = [
        f"{words.get(k, k)} {n} 条" if lang == "zh" else f"{n} {words.get(k, k)}"
        for k, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    ]
    rest = len(counter) - top
    if rest > 0:
        parts.append(f"等 {len(counter)} 类" if lang == "zh" else f"{rest} more")
    return ("、" if lang == "zh" else ", ").join(parts)


def digest_message(
    items: Sequence[DigestItem],
    *,
    target: str,
    lang: str,
    rules: Mapping[str, RuleSpec],
    names: Names,
    base_url: str,
    now_ns: int,
    key: str | None = None,
) -> Message:
    """One message for many changes: how many, at how many sites, in how many minutes, by rule
    (new alerts first) and by severity, with a link to the alert list since the first."""
    words = _LABELS[lang]
    first_ns = min(i.at_ns for i in items)
    minutes = max(1, math.ceil((now_ns - first_ns) / 60e9))
    opened = [i for i in items if i.change == "opened"]
    counted = opened or list(items)
    sites = {i.site for i in counted}
    by_rule = Counter(i.rule for i in counted)
    rule_words = {r: rule_name(rules, r, lang) for r in by_rule}
    if lang == "zh":
        what = "条新告警" if opened else "条告警变更"
        heading = f"最近 {minutes} 分钟 {len(counted)} {what}，涉及 {len(sites)} 个站点"
    else:
        what = "new alerts" if opened else "alert changes"
        heading = f"{len(counted)} {what} at {len(sites)} sites in the last {minutes} min"
    lines: list[tuple[str, str]] = [(words["rules"], _counted(by_rule, rule_words, lang))]
    by_severity = Counter(SEVERITY_WORDS[lang][i.severity] for i in counted)
    lines.append((words["severity"], _counted(by_severity, {}, lang)))
    site_words = {s: names.site(s) or s for s in sites}
    lines.append(
        (words["sites"], plain(_counted(Counter(i.site for i in counted), site_words, lang)))
    )
    others = Counter(i.change for i in items if i.change != "opened") if opened else Counter()
    if others:
        lines.append((words["other"], _counted(others, CHANGE_WORDS[lang], lang)))
    lines.append((words["time"], f"{china_time(first_ns)} – {china_time(now_ns)}（{words['tz']}）"))
    keys = [i.key for i in items]
    key = key or digest_key(target, keys)
    link = list_link(base_url, first_ns)
    title = ("【告警汇总】" if lang == "zh" else "[Alert digest] ") + heading
    worst = max((i.severity for i in items), key=lambda s: _RANK[s])
    return Message(
        title=plain(title, 64),
        heading=title,
        severity=worst,
        lines=tuple(lines),
        link_text=words["list"],
        link=link,
        key=key,
        lang=lang,
        data={
            "type": "digest",
            "count": len(items),
            "keys": keys,
            "by_rule": dict(Counter(i.rule for i in items)),
            "by_site": dict(Counter(i.site for i in items)),
            "by_change": dict(Counter(i.change for i in items)),
            "since": iso_china(first_ns),
            "link": link,
        },
    )


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


def _cut(text: str) -> str:
    data = text.encode()
    if len(data) <= MARKDOWN_MAX_BYTES:
        return text
    return data[: MARKDOWN_MAX_BYTES - 3].decode(errors="ignore") + "…"


def dingtalk_markdown(message: Message) -> str:
    """DingTalk's markdown: a heading, one paragraph per line (DingTalk breaks lines only at a
    blank line), the link, and the key."""
    words = _LABELS[message.lang]
    sep = "：" if message.lang == "zh" else ": "
    body = [f"#### {message.heading}"]
    body += [f"**{label}**{sep}{value}" for label, value in message.lines]
    body.append(f"[{message.link_text}]({message.link})")
    body.append(f"{words['key']}{sep}{message.key}")
    return _cut("\n\n".join(body))


_WECOM_COLOUR = {
    Severity.INFO: "info",
    Severity.WARNING: "comment",
    Severity.MAJOR: "warning",
    Severity.CRITICAL: "warning",
}


def wecom_markdown(message: Message) -> str:
    """WeCom's markdown (headings, bold, links, quotes and its three font colours: info,
    comment, warning; developer.work.weixin.qq.com/document/path/91770 markdown类型)."""
    words = _LABELS[message.lang]
    sep = "：" if message.lang == "zh" else ": "
    colour = _WECOM_COLOUR[message.severity]
    body = [f'### <font color="{colour}">{message.heading}</font>']
    body += [f"> **{label}**{sep}{value}" for label, value in message.lines]
    body.append(f"[{message.link_text}]({message.link})")
    body.append(f'<font color="comment">{words["key"]}{sep}{message.key}</font>')
    return _cut("\n".join(body))
