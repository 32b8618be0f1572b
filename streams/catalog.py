"""Every part's alert rules, found once: the RULE_SPECS of each streams/<part>/rules.py, by id,
so the API, the screen, the messages and the CLI name a new part's rules without a change.

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


@functools.cache
def rule_specs() -> Mapping[str, RuleSpec]:
    """Rule id → declaration, parts in the order of their names, each part's rules in the
    order it declares them; ValueError for an id two parts declare."""
    import hazwatch.streams as package

    found: list[RuleSpec] = []
    for part in sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg):
        name = f"{package.__name__}.{part}.rules"
        if importlib.util.find_spec(name) is None:
            continue  # a part without rules
        found.extend(getattr(importlib.import_module(name), "RULE_SPECS", ()))
    return MappingProxyType(index(found))
