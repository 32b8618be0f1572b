"""A custody violation's detail in Chinese and English, for the batch page, the alert API, the
CLI and the notifications, from the values its rule kept beside its English sentence
(`Violation.params`: sites, devices, stages, numbers, and `variant` for a rule of several
sentences): one template pair per rule and variant. Also the stages' names, as every surface
says them.

Only a violation stored before the rules kept their params (a custody_batch row or a custody
alert without `params`) is read back from its sentence: each template keeps the pattern of
the sentence its rule writes, for those records alone. Never judge anything here, and never
hide a finding it cannot say: one it does not know is given as it was written, in both
languages (tests/unit/test_alert_text.py runs every rule's every sentence through the real
Tracker and fails when one is not said, or when its params and its sentence say it apart).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

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
    """One finding a rule makes: how each language says it from its params, the numbers'
    formats (as the rule's sentence writes them), and the rule's English sentence as a pattern
    whose named groups are the params (read for records stored before the params only).
    Params named `stage*` are stage names, said in the page's language; `stages` a list."""

    rule: str
    variant: str  # params["variant"]; "" for a rule of one sentence
    pattern: re.Pattern[str]
    zh: str
    en: str
    numbers: Mapping[str, str] = field(default_factory=dict)  # param → format spec


def _s(rule: str, variant: str, pattern: str, zh: str, en: str, **numbers: str) -> Sentence:
    return Sentence(rule, variant, re.compile(f"^{pattern}$"), zh, en, numbers)


SENTENCES: tuple[Sentence, ...] = (
    _s(
        "skipped_stage",
        "",
        rf"(?P<stage>{_STAGE}) at (?P<site>{_ID})/(?P<device>{_ID}) without "
        rf"(?P<stages>{_STAGE}(?:, {_STAGE})*)",
        "在 {site}/{device} 记为「{stage}」，此前缺少「{stages}」环节",
        "{stage} at {site}/{device} without {stages}",
    ),
    _s(
        "backward_stage",
        "",
        rf"(?P<stage>{_STAGE}) at (?P<site>{_ID})/(?P<device>{_ID}) after the batch "
        rf"reached (?P<stage_top>{_STAGE})",
        "批次已到达「{stage_top}」后，又在 {site}/{device} 被读到（「{stage}」）",
        "{stage} at {site}/{device} after the batch had reached {stage_top}",
    ),
    _s(
        "disposed_tag",
        "",
        rf"tag (?P<epc>{_ID}) read at (?P<site>{_ID})/(?P<device>{_ID}) \((?P<stage>{_STAGE})\) "
        rf"after its batch was disposed at (?P<disposed>{_ID})",
        "批次已在 {disposed} 处置后，标签 {epc} 又在 {site}/{device} 被读到（「{stage}」）",
        "tag {epc} read at {site}/{device} ({stage}) after its batch was disposed at {disposed}",
    ),
    _s(
        "cloned_tag",
        "",
        rf"tag (?P<epc>{_ID}) read at (?P<site_a>{_ID}) and (?P<site_b>{_ID}), "
        rf"(?P<km>{_NUM}) km apart, (?P<minutes>{_NUM}) min between "
        rf"\(faster than (?P<speed_kmh>{_NUM}) km/h\)",
        "标签 {epc} 先后在 {site_a} 和 {site_b} 被读到，两地相距 {km} 公里，"
        "间隔仅 {minutes} 分钟（快于 {speed_kmh} 公里/小时，疑似标签被复制）",
        "tag {epc} read at {site_a} and {site_b}, {km} km apart, {minutes} min between "
        "(faster than {speed_kmh} km/h)",
        km=".0f",
        minutes=".0f",
        speed_kmh="g",
    ),
    _s(
        "weight_mismatch",
        "",
        rf"received (?P<received_kg>{_NUM}) kg, generated (?P<generated_kg>{_NUM}) kg "
        rf"\(tolerance (?P<tolerance_kg>{_NUM}) kg\)",
        "接收称重 {received_kg} kg，产生时称重 {generated_kg} kg（允许偏差 {tolerance_kg} kg）",
        "received {received_kg} kg, generated {generated_kg} kg (tolerance {tolerance_kg} kg)",
        received_kg="g",
        generated_kg="g",
        tolerance_kg=".1f",
    ),
    _s(
        "storage_overdue",
        "left",
        rf"left storage at (?P<site>{_ID}) after (?P<days>{_NUM}) days "
        rf"\(limit (?P<limit_days>{_NUM})\)",
        "在 {site} 贮存 {days} 天后才出库（贮存期限 {limit_days} 天）",
        "left storage at {site} after {days} days (limit {limit_days})",
        days=".0f",
        limit_days="g",
    ),
    _s(
        "storage_overdue",
        "still",
        rf"still in storage at (?P<site>{_ID}) after its limit of (?P<limit_days>{_NUM}) days",
        "在 {site} 贮存已超过 {limit_days} 天的期限，仍未出库",
        "still in storage at {site} after its limit of {limit_days} days",
        limit_days="g",
    ),
    _s(
        "transit_overdue",
        "arrived",
        rf"arrived (?P<hours>{_NUM}) h after dispatch \(limit (?P<limit_h>{_NUM}) h\)",
        "转移出库 {hours} 小时后才到达（运输时限 {limit_h} 小时）",
        "arrived {hours} h after dispatch (limit {limit_h} h)",
        hours=".1f",
        limit_h="g",
    ),
    _s(
        "transit_overdue",
        "not_received",
        rf"not received within (?P<limit_h>{_NUM}) h of dispatch",
        "转移出库后 {limit_h} 小时内未被接收",
        "not received within {limit_h} h of dispatch",
        limit_h="g",
    ),
    _s(
        "wrong_receiver",
        "",
        rf"received at (?P<site>{_ID}), manifest (?P<manifest>{_ID}) names (?P<receiver>{_ID})",
        "在 {site} 被接收，但联单 {manifest} 载明的接收单位是 {receiver}",
        "received at {site}, manifest {manifest} names {receiver}",
    ),
    _s(
        "manifest_split",
        "late",
        rf"dispatched (?P<hours>{_NUM}) h after the first batch of manifest (?P<manifest>{_ID})",
        "比联单 {manifest} 的第一批晚 {hours} 小时转移出库",
        "dispatched {hours} h after the first batch of manifest {manifest}",
        hours=".1f",
    ),
    _s(
        "manifest_split",
        "missing",
        rf"not dispatched with the other batches of manifest (?P<manifest>{_ID})",
        "未与联单 {manifest} 的其他批次一同转移出库",
        "not dispatched with the other batches of manifest {manifest}",
    ),
    _s(
        "storage_over_capacity",
        "",
        rf"storing (?P<kg>{_NUM}) kg took (?P<site>{_ID}) over its (?P<limit_kg>{_NUM}) kg limit",
        "贮存 {kg} kg 后，{site} 超出其 {limit_kg} kg 的贮存上限",
        "storing {kg} kg took {site} over its {limit_kg} kg limit",
        kg="g",
        limit_kg="g",
    ),
    _s(
        "unknown_tag",
        "",
        rf"tag (?P<epc>{_ID}) read at (?P<site>{_ID})/(?P<device>{_ID}) "
        rf"\((?P<reads>{_NUM}) reads\) belongs to no registered batch",
        "标签 {epc} 在 {site}/{device} 被读到 {reads} 次，不属于任何已登记批次",
        "tag {epc} read at {site}/{device} ({reads} reads) belongs to no registered batch",
        reads="d",
    ),
)
_BY_VARIANT = {(s.rule, s.variant): s for s in SENTENCES}


def _said(name: str, value: object, lang: int, numbers: Mapping[str, str]) -> str:
    """One param as `lang` (0 Chinese, 1 English) says it; `value` a param, or the text a
    stored sentence had in its place (then already formatted as its rule writes it)."""
    if name == "stages":
        if isinstance(value, str):
            value = value.split(", ")
        if not isinstance(value, list):
            raise TypeError(f"stages is no list: {value!r}")
        return ("、" if lang == 0 else ", ").join(STAGE_NAMES[str(s)][lang] for s in value)
    if name.startswith("stage"):
        return STAGE_NAMES[str(value)][lang]
    spec = numbers.get(name)
    if spec is not None and not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} is no number: {value!r}")
        return format(int(value) if spec == "d" else float(value), spec)
    return str(value)


def _say(sentence: Sentence, values: Mapping[str, object]) -> dict[str, str | bool]:
    names = re.findall(r"{(\w+)}", sentence.zh + sentence.en)
    zh = {n: _said(n, values[n], 0, sentence.numbers) for n in names}
    en = {n: _said(n, values[n], 1, sentence.numbers) for n in names}
    return {"zh": sentence.zh.format(**zh), "en": sentence.en.format(**en), "read": True}


def detail(rule: str, message: str, params: object = None) -> dict[str, str | bool]:
    """The violation in Chinese and English, from its params (a mapping); a violation stored
    without them (`params` None) from its sentence; `read` false: one this module cannot say,
    given in the rules' own words in both."""
    if isinstance(params, Mapping) and params:
        sentence = _BY_VARIANT.get((rule, str(params.get("variant", ""))))
        if sentence is not None:
            try:
                return _say(sentence, params)
            except (KeyError, TypeError, ValueError, IndexError):
                pass  # params of another version: its sentence may still be read
    for sentence in SENTENCES:
        if sentence.rule != rule:
            continue
        found = sentence.pattern.match(message)
        if found is not None:
            return _say(sentence, found.groupdict())
    return {"zh": message, "en": message, "read": False}


def alert_detail(alert: Alert) -> Detail | None:
    """A custody alert's detail: its violation's params (the alert's details) said again, or
    for an alert opened before they were kept, its sentence (the alert's message)."""
    said = detail(alert.rule, alert.message, alert.details.get("params"))
    return Detail(str(said["zh"]), str(said["en"])) if said["read"] else None


# each custody rule's formatter (streams/catalog.py rule_details)
DETAILS: dict[str, Formatter] = dict.fromkeys(RULES, alert_detail)
