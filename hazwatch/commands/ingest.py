"""CLI: `serve` (the service), `deadletters` (what was refused and why).

Never leave the service half-stopped: SIGTERM and Ctrl-C drain and flush in order.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from devices.statedb import StateDB
from devices.timeparse import format_ts


def serve() -> None:
    """Run hazwatch: consume MQTT, write InfluxDB, track custody, raise alerts, serve the API."""
    from hazwatch.app import HazwatchService
    from hazwatch.cli import settings
    from hazwatch.logs import setup_logging

    cfg = settings()
    setup_logging(cfg.log_format, cfg.log_level)
    service = HazwatchService(cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    typer.echo(
        f"hazwatch serving: mqtt {cfg.mqtt.host}:{cfg.mqtt.port}, "
        f"points {service.writer.name}, state {service.db.describe()}, "
        f"api http://{cfg.api_host}:{service.api_port}/api/health",
        err=True,
    )
    stop.wait()
    typer.echo("hazwatch: stopping (flushing what is in hand)", err=True)
    service.close()


def deadletters(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many, newest first.")
    ] = 50,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
) -> None:
    """List dead letters newest first: time, topic, reason and the raw bytes."""
    from hazwatch.cli import settings
    from ingest.deadletters import DeadLetterStore

    store = DeadLetterStore(StateDB(settings().state_dsn))
    letters = store.latest(limit, reason)
    if json_out:
        for letter in letters:
            typer.echo(orjson.dumps(letter.to_json()).decode())
        return
    table = Table("time", "topic", "reason", "message", "raw", title="dead letters")
    for letter in letters:
        raw = letter.raw.decode("utf-8", errors="backslashreplace")
        table.add_row(
            format_ts(letter.received_ns),
            letter.topic,
            letter.reason,
            letter.message,
            raw if len(raw) <= 80 else raw[:77] + "...",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(deadletters)
