"""Each alert rule is declared once: what the processors, the simulator and the docs say follows.

Never list a rule here by hand: the expected values come from the declarations themselves.
Rewrite docs/rules.md from them with `.venv/bin/python -m tests.unit.test_rules`.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from hazwatch.alerts.model import ListSink, Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of, index, markdown_table, severities
from hazwatch.devices.decode import decode
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.simulators import custody as custody_sim
from hazwatch.streams.air import rules as air
from hazwatch.streams.air.settings import HourlySettings
from hazwatch.streams.clocks import rules as clocks
from hazwatch.streams.clocks.settings import ClockSettings
from hazwatch.streams.custody import processor as custody_processor
from hazwatch.streams.custody import rules as custody
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.hj212 import rules as hj212
from hazwatch.streams.presence import rules as presence
from hazwatch.streams.presence.settings import PresenceSettings
from hazwatch.streams.video import rules as video
from tests.samples import custody_limits

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rules.md"
BEGIN, END = "<!-- rules: begin (made from the declarations) -->", "<!-- rules: end -->"
PARTS: tuple[tuple[str, tuple[RuleSpec, ...]], ...] = (
    ("custody", custody.RULE_SPECS),
    ("video", video.RULE_SPECS),
    ("air", air.RULE_SPECS),
    ("clocks", clocks.RULE_SPECS),
    ("presence", presence.RULE_SPECS),
    ("hj212", hj212.RULE_SPECS),
)
ALL = tuple(spec for _, specs in PARTS for spec in specs)


def generated() -> str:
    sections = [f"### {part}\n\n{markdown_table(specs)}" for part, specs in PARTS]
    return "\n".join(sections)


def documented(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def test_docs_list_exactly_the_declared_rules() -> None:
    assert documented(DOC.read_text(encoding="utf-8")) == generated(), (
        "docs/rules.md disagrees with the rule declarations: "
        "run `.venv/bin/python -m tests.unit.test_rules` to rewrite it"
    )


def test_each_rule_is_declared_once_in_its_part_with_both_descriptions() -> None:
    assert len(index(ALL)) == len(ALL)  # index refuses an id declared twice
    for part, specs in PARTS:
        for spec in specs:
            assert spec.part == part and re.fullmatch(r"[a-z][a-z0-9_]*", spec.id)
            assert re.search(r"[\u4e00-\u9fff]", spec.description_zh), spec.id
            assert spec.description_en and spec.subject
    with pytest.raises(ValueError, match="declared twice"):
        index((*video.RULE_SPECS, video.RULE_SPECS[0]))


def test_a_declaration_cannot_be_changed_in_place() -> None:
    spec = custody.RULE_SPECS[0]
    with pytest.raises(AttributeError):
        spec.severity = Severity.INFO  # type: ignore[misc]
    transit = index(custody.RULE_SPECS)["transit_overdue"]
    with pytest.raises(TypeError):
        transit.thresholds["transit_limit_h"] = 1.0  # type: ignore[index]


def test_thresholds_are_the_settings_defaults() -> None:
    with pytest.raises(ValueError, match="no numeric field nope"):
        defaults_of(video.VideoRuleSettings, "nope")
    rule_settings = video.VideoRuleSettings()
    for spec in video.RULE_SPECS:
        assert spec.thresholds and all(
            getattr(rule_settings, name) == value for name, value in spec.thresholds.items()
        )
    limits = custody.CustodyLimits()
    for spec in custody.RULE_SPECS:
        for name, value in spec.thresholds.items():
            if hasattr(limits, name):
                assert getattr(limits, name) == value
    air_settings = HourlySettings()
    for spec in air.RULE_SPECS:
        assert all(getattr(air_settings, name) == v for name, v in spec.thresholds.items())
    clock_settings = ClockSettings()
    for spec in clocks.RULE_SPECS:
        assert spec.thresholds and all(
            getattr(clock_settings, name) == v for name, v in spec.thresholds.items()
        )
    presence_settings = PresenceSettings()
    for spec in presence.RULE_SPECS:
        assert spec.thresholds and all(
            getattr(presence_settings, name) == v for name, v in spec.thresholds.items()
        )


def test_service_settings_default_to_the_part_declarations() -> None:
    # hazwatch/settings.py composes each part's settings dataclass, whose defaults the rule
    # declarations take: the service's defaults are the declared ones
    from hazwatch.settings import Settings

    defaults = Settings()
    assert defaults.custody == custody.CustodyLimits()
    declared = {f.name: f.default for f in fields(video.VideoRuleSettings)}
    assert declared and {name: getattr(defaults.video, name) for name in declared} == declared
    assert defaults.air == HourlySettings()
    assert defaults.clocks == ClockSettings()
    assert defaults.presence == PresenceSettings()


def test_every_batch_rule_has_one_check_and_the_epc_rule_none() -> None:
    batch_rules = [s.id for s in custody.RULE_SPECS if s.subject == "batch"]
    assert sorted(custody.CHECKS) == sorted(batch_rules)
    assert tuple(s.id for s in custody.RULE_SPECS) == custody.RULES
    assert [s.id for s in custody.RULE_SPECS if s.subject == "epc"] == ["unknown_tag"]
    with pytest.raises(ValueError, match="not declared"):
        custody._checks("teleported_tag")


def test_severities_are_the_declared_ones() -> None:
    assert severities(custody.RULE_SPECS) == custody_processor.SEVERITY
    assert {s.id: s.severity.value for s in video.RULE_SPECS} == video.SEVERITY
    assert severities(air.RULE_SPECS) == air.SEVERITY
    assert tuple(s.id for s in video.RULE_SPECS) == video.RULES
    assert severities(clocks.RULE_SPECS) == clocks.SEVERITY
    assert severities(presence.RULE_SPECS) == presence.SEVERITY


def test_the_simulator_breaks_every_declared_custody_rule_with_its_severity() -> None:
    """Its fault list is the declarations; each fault it injects is found, alerted as declared."""
    assert sorted(custody_sim.VIOLATIONS) == sorted(custody.RULES)
    assert [r for r in custody.RULES if r in custody_sim.BATCH_VIOLATIONS] == list(
        custody_sim.BATCH_VIOLATIONS
    )  # in declaration order: `plan` picks its victims' faults in that order
    kinds = custody_sim.BATCH_VIOLATIONS
    the_plan = custody_sim.plan(4 * len(kinds), len(kinds), seed=5, reads=custody_sim.ONE_READ)
    assert sorted(set(the_plan.broken().values())) == sorted(kinds)
    registry = load_file(ROOT / "tests" / "data" / "registry.toml")
    tracker = custody.Tracker()
    ctx = RegistryContext(None, registry, batches=tracker.epc_batch)
    sink = ListSink()
    processor = CustodyProcessor(tracker, ctx, sink, limits=custody_limits())
    now = time.time_ns()
    decoded = [decode(m.topic, m.payload, ctx, now_ns=now) for m in the_plan.messages]
    for start in range(0, len(decoded), 50):
        processor.process(decoded[start : start + 50], now)
    processor.tick(now + 10**12)  # past unknown_tag's grace
    for batch, rule in the_plan.broken().items():
        judgement = tracker.trace(batch)
        assert judgement is not None and rule in {v.rule for v in judgement.violations}, batch
    declared = severities(custody.RULE_SPECS)
    assert {s.rule for s in sink.raised} == set(custody.RULES)
    assert all(s.severity == declared[s.rule] for s in sink.raised)


def test_the_simulators_anomalies_are_the_declared_device_and_video_rules() -> None:
    """`hazwatch simulate --faults offline,silent,blind-read`: each names declared rules, and
    together they break device_offline for every family and blind_read."""
    from hazwatch.simulators.anomalies import roles
    from hazwatch.simulators.faults import ANOMALIES
    from hazwatch.simulators.payloads import FAMILIES

    declared = index(ALL)
    assert all(rule in declared for rules in ANOMALIES.values() for rule in rules)
    made = {rule for rules in ANOMALIES.values() for rule in rules}
    assert {s.id for s in presence.RULE_SPECS} | {video.BLIND_READ} <= made
    cast = roles(ANOMALIES, FAMILIES, 3, "s")
    offline = {r.family for r in cast.values() if r.anomaly == "offline"}
    assert offline == set(FAMILIES)  # offline for each family
    for role in cast.values():
        for rule, subject in role.alerts:
            assert rule in ANOMALIES[role.anomaly]
            assert subject.count("/") == declared[rule].subject.count("/")


def test_a_custody_check_is_judged_alone_on_a_case() -> None:
    gen = custody.CustodyEvent("g1", "B1", "E1", custody.GENERATED, 0, "jy-0012", "t1", 100.0)
    got = custody.CustodyEvent("r1", "B1", "E1", custody.RECEIVED, 9, "dp-01", "rg-1", 90.0)
    info = custody.Registration("g1", "B1", "E1", "900-249-08", "jy-0012", "t1", 0)
    found = custody.Findings("B1")
    case = custody.Case(info, [gen, got], None, {}, None, custody.Geography(), 10, None, got)
    custody.CHECKS["weight_mismatch"](case, found)
    assert [(v.rule, v.event_id) for v in found.violations] == [("weight_mismatch", "r1")]


def write_doc() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(f"{text[:start]}\n{generated()}{text[end:]}", encoding="utf-8")


if __name__ == "__main__":
    write_doc()
    sys.exit(0)
