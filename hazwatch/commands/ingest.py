"""CLI: serve, demo, deadletters (the ingest side of hazwatch)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
