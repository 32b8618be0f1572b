"""The custody rules' tolerances, in one frozen dataclass: its defaults are the defaults, its
constraints are checked where settings are read (hazwatch.settings composes it as `custody`:
the settings file's [custody] table, env HAZWATCH_CUSTODY__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.
A site's storage_limit_kg / storage_limit_days are facts about a storage point, not
tolerances: they stay in the device registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True, slots=True)
class CustodyLimits:
    """Tolerances of the custody rules (the rule declarations in rules.py take their defaults
    from here)."""

    # a reweighing differs by more than the larger of these: weight_mismatch
    weight_tolerance_pct: Annotated[float, Field(ge=0, le=100)] = 5.0
    weight_tolerance_kg: Annotated[float, Field(ge=0, le=1e6)] = 2.0
    # not received this long after dispatch, when the manifest names no limit: transit_overdue
    transit_limit_h: Annotated[float, Field(ge=0.01, le=HOURS_PER_YEAR)] = 24.0
    # two fixed readers too far apart to travel between at this speed: cloned_tag
    max_speed_kmh: Annotated[float, Field(ge=1, le=2000)] = 120.0
    # a manifest's batches leave within this of its first: manifest_split
    manifest_window_h: Annotated[float, Field(ge=0, le=HOURS_PER_YEAR)] = 2.0
    # a tag of no registered batch, still none after this: unknown_tag
    unknown_tag_grace_s: Annotated[float, Field(ge=0, le=86400 * 30)] = 300.0
