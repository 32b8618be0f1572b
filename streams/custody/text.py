"""A custody violation's detail in Chinese and English, for the batch page, the alert API, the
CLI and the notifications: the custody rules write one English sentence per finding
(streams/custody/rules.py); this reads its numbers and names back out by rule and says it
again in both languages. Also the stages' names, as every surface says them.

Never judge anything here, and never hide a sentence it cannot read: one it does not know is
given as it was written, in both languages (tests/unit/test_alert_text.py runs every rule's
every sentence through the real Tracker and fails when one is not read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hazwatch.alerts.model import Alert
from hazwatch.alerts.text import Detail, Formatter
from hazwatch.streams.custody.rules import RULES

STAGE_NAMES = {  # docs/payloads.md, `custody`; the screen's words for them (api/routes/screen.py)
    "GENERATED": ("产生", "generated"),
    "STORED": ("贮存", "stored"),
    "DISPATCHED": ("转移出库", "dispatched"),
    "IN_TRANSIT": ("运输", "in transit"),
    "RECEIVED": ("接收", "received"),
    "DISPOSED": ("处置", "disposed"),
}

_STAGE = "(?:" + "|".join(STAGE_NAMES) + ")"
_NUM = r"-?[0-9][0-9.e+]*"
_ID = r"[^\s/,()]+"


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence a rule writes: its pattern (named groups) and how each language says it.
    Groups named `stage*` are stage names, said in the page's language; `stages` a list."""

    rule: str
    pattern: re.Pattern[str]
    zh: str
    en: str


def _s(rule: str, pattern: str, zh: str, en: str) -> Sentence:
    return Sentence(rule, re.compile(f"^{pattern}$"), zh, en)


SENTENCES: tuple[Sentence, ...] = (
    _s(
        "skipped_stage",
        rf"(?P<stage>{_STAGE}) at (?P<site>{_ID})/(?P<device>{_ID}) without "
        rf"(?P<stages>{_STAGE}(?:, {_STAGE})*)",
        "在 {site}/{device} 记为「{stage}」，此前缺少「{stages}」环节",
        "{stage} at {site}/{device} without {stages}",
    ),
    _s(
        "backward_stage",
        rf"(?P<stage>{_STAGE}) at (?P<site>{_ID})/(?P<device>{_ID}) after the batch "
        rf"reached (?P<stage_top>{_STAGE})",
        "批次已到达「{stage_top}」后，又在 {site}/{device} 被读到（「{stage}」）",
        "{stage} at {site}/{device} after the batch had reached {stage_top}",
    ),
    _s(
        "disposed_tag",
        rf"tag (?P<epc>{_ID}) read at (?P<site>{_ID})/(?P<device>{_ID}) \((?P<stage>{_STAGE})\) "
        rf"after its batch was disposed at (?P<disposed>{_ID})",
        "批次已在 {disposed} 处置后，标签 {epc} 又在 {site}/{device} 被读到（「{stage}」）",
        "tag {epc} read at {site}/{device} ({stage}) after its batch was disposed at {disposed}",
    ),
    _s(
        "cloned_tag",
        rf"tag (?P<epc>{_ID}) read at (?P<site_a>{_ID}) and (?P<site_b>{_ID}), "
        rf"(?P<km>{_NUM}) km apart, (?P<minutes>{_NUM}) min between "
        rf"\(faster than (?P<speed>{_NUM}) km/h\)",
        "标签 {epc} 先后在 {site_a} 和 {site_b} 被读到，两地相距 {km} 公里，"
        "间隔仅 {minutes} 分钟（快于 {speed} 公里/小时，疑似标签被复制）",
        "tag {epc} read at {site_a} and {site_b}, {km} km apart, {minutes} min between "
        "(faster than {speed} km/h)",
    ),
    _s(
        "weight_mismatch",
        rf"received (?P<received>{_NUM}) kg, generated (?P<generated>{_NUM}) kg "
        rf"\(tolerance (?P<tolerance>{_NUM}) kg\)",
        "接收称重 {received} kg，产生时称重 {generated} kg（允许偏差 {tolerance} kg）",
        "received {received} kg, generated {generated} kg (tolerance {tolerance} kg)",
    ),
    _s(
        "storage_overdue",
        rf"left storage at (?P<site>{_ID}) after (?P<days>{_NUM}) days \(limit (?P<limit>{_NUM})\)",
        "在 {site} 贮存 {days} 天后才出库（贮存期限 {limit} 天）",
        "left storage at {site} after {days} days (limit {limit})",
    ),
    _s(
        "storage_overdue",
        rf"still in storage at (?P<site>{_ID}) after its limit of (?P<limit>{_NUM}) days",
        "在 {site} 贮存已超过 {limit} 天的期限，仍未出库",
        "still in storage at {site} after its limit of {limit} days",
    ),
    _s(
        "transit_overdue",
        rf"arrived (?P<hours>{_NUM}) h after dispatch \(limit (?P<limit>{_NUM}) h\)",
        "转移出库 {hours} 小时后才到达（运输时限 {limit} 小时）",
        "arrived {hours} h after dispatch (limit {limit} h)",
    ),
    _s(
        "transit_overdue",
        rf"not received within (?P<limit>{_NUM}) h of dispatch",
        "转移出库后 {limit} 小时内未被接收",
        "not received within {limit} h of dispatch",
    ),
    _s(
        "wrong_receiver",
        rf"received at (?P<site>{_ID}), manifest (?P<manifest>{_ID}) names (?P<receiver>{_ID})",
        "在 {site} 被接收，但联单 {manifest} 载明的接收单位是 {receiver}",
        "received at {site}, manifest {manifest} names {receiver}",
    ),
    _s(
        "manifest_split",
        rf"dispatched (?P<hours>{_NUM}) h after the first batch of manifest (?P<manifest>{_ID})",
        "比联单 {manifest} 的第一批晚 {hours} 小时转移出库",
        "dispatched {hours} h after the first batch of manifest {manifest}",
    ),
    _s(
        "manifest_split",
        rf"not dispatched with the other batches of manifest (?P<manifest>{_ID})",
        "未与联单 {manifest} 的其他批次一同转移出库",
        "not dispatched with the other batches of manifest {manifest}",
    ),
    _s(
        "storage_over_capacity",
        rf"storing (?P<kg>{_NUM}) kg took (?P<site>{_ID}) over its (?P<limit>{_NUM}) kg limit",
        "贮存 {kg} kg 后，{site} 超出其 {limit} kg 的贮存上限",
        "storing {kg} kg took {site} over its {limit} kg limit",
    ),
    _s(
        "unknown_tag",
        rf"tag (?P<epc>{_ID}) read at (?P<site>{_ID})/(?P<device>{_ID}) "
        rf"\((?P<reads>{_NUM}) reads\) belongs to no registered batch",
        "标签 {epc} 在 {site}/{device} 被读到 {reads} 次，不属于任何已登记批次",
        "tag {epc} read at {site}/{device} ({reads} reads) belongs to no registered batch",
    ),
)


def _said(name: str, value: str, lang: int) -> str:
    if name == "stages":
        words = [STAGE_NAMES[s][lang] for s in value.split(", ")]
        return ("、" if lang == 0 else ", ").join(words)
    if name.startswith("stage"):
        return STAGE_NAMES[value][lang]
    return value


def detail(rule: str, message: str) -> dict[str, str | bool]:
    """The violation's sentence in Chinese and English; `read` false: a sentence this module
    does not know yet, given in the rules' own words in both."""
    for sentence in SENTENCES:
        if sentence.rule != rule:
            continue
        found = sentence.pattern.match(message)
        if found is None:
            continue
        zh = {k: _said(k, v, 0) for k, v in found.groupdict().items()}
        en = {k: _said(k, v, 1) for k, v in found.groupdict().items()}
        return {"zh": sentence.zh.format(**zh), "en": sentence.en.format(**en), "read": True}
    return {"zh": message, "en": message, "read": False}


def alert_detail(alert: Alert) -> Detail | None:
    """A custody alert's detail: its violation's sentence (the alert's message) said again."""
    said = detail(alert.rule, alert.message)
    return Detail(str(said["zh"]), str(said["en"])) if said["read"] else None


# each custody rule's formatter (streams/catalog.py rule_details)
DETAILS: dict[str, Formatter] = dict.fromkeys(RULES, alert_detail)
