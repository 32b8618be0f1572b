"""What this `hazwatch` invocation was given (--config) and the settings it yields.

Never import hazwatch.cli or a command module here: both import this one (no cycle).
"""

from __future__ import annotations

from pathlib import Path

from hazwatch.settings import Settings, load_settings


class State:
    """Set once by the CLI's root callback, before any command runs."""

    config: Path | None = None


def settings(**overrides: object) -> Settings:
    """The settings for this invocation (from --config and the environment)."""
    return load_settings(State.config, **overrides)
