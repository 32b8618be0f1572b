"""The sample registry (tests/data/registry.toml) and the settings file that goes with it.

Never give a custody processor of the sample registry other tolerances than these: the
custody tests were written against them (unknown_tag_grace_s = 0, the rest the defaults).
"""

from __future__ import annotations

from pathlib import Path

from hazwatch.settings import load_settings
from hazwatch.streams.custody.settings import CustodyLimits

DATA = Path(__file__).parent / "data"
REGISTRY_FILE = DATA / "registry.toml"
SETTINGS_FILE = DATA / "settings.toml"


def custody_limits() -> CustodyLimits:
    """The sample settings file's [custody] table, read as `hazwatch --config` reads it."""
    return load_settings(SETTINGS_FILE).custody
