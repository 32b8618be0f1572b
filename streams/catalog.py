"""Every part's alert rules, found once: the RULE_SPECS of each streams/<part>/rules.py, by id,
so the API, the screen, the messages and the CLI name a new part's rules without a change;
and how each says its findings: the DETAILS of each streams/<part>/text.py (rule_details).

Never declare or check a rule here: each part declares its own in its rules.py.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType

from hazwatch.alerts.rules import RuleSpec, index
from hazwatch.alerts.text import Formatter


def _parts() -> list[str]:
    import hazwatch.streams as package

    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg)


@functools.cache
def rule_specs() -> Mapping[str, RuleSpec]:
    """Rule id → declaration, parts in the order of their names, each part's rules in the
    order it declares them; ValueError for an id two parts declare."""
    found: list[RuleSpec] = []
    for part in _parts():
        name = f"hazwatch.streams.{part}.rules"
        if importlib.util.find_spec(name) is None:
            continue  # a part without rules
        found.extend(getattr(importlib.import_module(name), "RULE_SPECS", ()))
    return MappingProxyType(index(found))


@functools.cache
def rule_details() -> Mapping[str, Formatter]:
    """Rule id → the formatter that says an alert of it in Chinese and English (each part's
    text.py `DETAILS`); a rule without one is said in its own words (alerts.text.detail_of).
    ValueError for a formatter of a rule no part declares."""
    specs = rule_specs()
    found: dict[str, Formatter] = {}
    for part in _parts():
        name = f"hazwatch.streams.{part}.text"
        if importlib.util.find_spec(name) is None:
            continue
        for rule, formatter in getattr(importlib.import_module(name), "DETAILS", {}).items():
            if rule not in specs:
                raise ValueError(f"{name} says rule {rule!r}, which no part declares")
            found[rule] = formatter
    return MappingProxyType(found)
