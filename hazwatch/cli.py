"""The `hazwatch` command line (Typer): one entry point, one module per command area.

Never print a traceback for a user's mistake: a HazwatchError becomes one line and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hazwatch import __version__
from hazwatch.base.errors import HazwatchError
from hazwatch.invocation import State

app = typer.Typer(
    name="hazwatch",
    help="hazwatch: hazardous waste, air quality and video IoT ingestion for a solid-waste center.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (env HAZWATCH_* wins over it)."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hazwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: ConfigOption = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    State.config = config


def _register() -> None:
    from hazwatch.commands import (
        air,
        air_audit,
        alerts,
        custody,
        demo,
        hj212,
        ingest,
        migrate,
        rfid,
        simulate,
        store,
        video,
    )

    for module in (
        ingest, demo, simulate, alerts, custody, air, air_audit, hj212, video, rfid, migrate, store,
    ):  # fmt: skip
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except HazwatchError as exc:
        typer.secho(f"hazwatch: {exc}", err=True, fg="red")
        sys.exit(2)
