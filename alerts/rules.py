"""What an alert rule is, declared once: id, part, severity, descriptions and default thresholds.

Never check a condition here: each part declares its rules in its own module, and checks them there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from hazwatch.alerts.model import Severity


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One alert rule as the alert store, the simulators and the docs know it.

    `severity` is what the rule raises with; a rule whose severity grows with what it finds
    (aqi_level) declares the lowest and says so in its descriptions. `subject` says what an
    alert of it is about, e.g. "batch", "epc", "site/camera". `thresholds` are the defaults
    of the settings that tune it, by the name the part's settings give them.
    """

    id: str
    part: str
    severity: Severity
    subject: str
    description_zh: str
    description_en: str
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a declaration is shared by every caller: nobody may change its defaults in place
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))


def index(specs: Iterable[RuleSpec]) -> dict[str, RuleSpec]:
    """Rule id → declaration, refusing an id declared twice."""
    found: dict[str, RuleSpec] = {}
    for spec in specs:
        if spec.id in found:
            raise ValueError(
                f"rule {spec.id} is declared twice ({found[spec.id].part}, {spec.part})"
            )
        found[spec.id] = spec
    return found


def short_name(spec: RuleSpec, lang: str = "zh") -> str:
    """The rule's name as a message shows it. Chinese: the description's text before its
    first "：" (every description_zh is written "名称：说明"). English: the rule id in words
    ("Skipped stage"): the English descriptions are sentences, not "name: text" (their first
    ": " ends phrases such as "the lens is covered"), so no name can be cut from them."""
    if lang == "zh":
        name, sep, _ = spec.description_zh.partition("：")
        if sep and name.strip():
            return name.strip()
    words = " ".join(_ACRONYMS.get(word, word) for word in spec.id.split("_"))
    return words[:1].upper() + words[1:]


# words of rule ids that English writes as acronyms or codes ("AQI level", not "Aqi level")
_ACRONYMS = {"aqi": "AQI", "hj212": "HJ 212", "rfid": "RFID", "pm25": "PM2.5", "pm10": "PM10"}


def severities(specs: Iterable[RuleSpec]) -> dict[str, Severity]:
    """Rule id → the severity it raises with."""
    return {spec.id: spec.severity for spec in index(specs).values()}


def defaults_of(settings_class: type[Any], *names: str) -> dict[str, float]:
    """The named fields' defaults of a settings dataclass (a rule's thresholds, declared there)."""
    defaults = {
        f.name: f.default for f in fields(settings_class) if isinstance(f.default, int | float)
    }
    missing = [name for name in names if name not in defaults]
    if missing:
        raise ValueError(f"{settings_class.__name__} has no numeric field {', '.join(missing)}")
    return {name: float(defaults[name]) for name in names}


def markdown_table(specs: Iterable[RuleSpec]) -> str:
    """The rules as a Markdown table, in declaration order (docs/rules.md is made of these)."""
    lines = [
        "| rule | part | severity | subject | 说明 | description | default thresholds |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in index(specs).values():
        thresholds = ", ".join(f"`{k}` = {v:g}" for k, v in spec.thresholds.items()) or "-"
        lines.append(
            f"| `{spec.id}` | {spec.part} | {spec.severity.value} | {spec.subject} | "
            f"{spec.description_zh} | {spec.description_en} | {thresholds} |"
        )
    return "\n".join(lines) + "\n"
