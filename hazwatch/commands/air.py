"""CLI: `hj212-gateway`, the TCP door for HJ 212-2017 air stations into the MQTT pipeline.

Never ack a station's packet before the broker has it; stops cleanly on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from hazwatch.base.errors import ConfigError


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT, got {value!r}")
    return host or "0.0.0.0", int(port)


def _mapping(entries: list[str]) -> dict[str, tuple[str, str]]:
    mapping: dict[str, tuple[str, str]] = {}
    for entry in entries:
        mn, eq, where = entry.partition("=")
        site, slash, station = where.partition("/")
        if not eq or not slash or not mn or not site or not station:
            raise ConfigError(f"--station must be MN=SITE/STATION, got {entry!r}")
        mapping[mn] = (site, station)
    return mapping


def hj212_gateway(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to accept stations on.")] = (
        "0.0.0.0:9212"
    ),
    registry: Annotated[
        Path | None,
        typer.Option(
            "--registry", help="Registry TOML mapping MN to station (else the stored one)."
        ),
    ] = None,
    station: Annotated[
        list[str] | None,
        typer.Option("--station", help="Extra MN=SITE/STATION mapping (repeatable)."),
    ] = None,
) -> None:
    """Accept HJ 212-2017 stations over TCP; publish their packets on hw/{site}/air/{id}/hj212."""
    from hazwatch.gateway import GatewayService
    from hazwatch.invocation import settings
    from hazwatch.logs import setup_logging

    cfg = settings()
    setup_logging(cfg.log_format, cfg.log_level)
    host, port = _listen(listen)
    service = GatewayService(
        cfg, host=host, port=port, registry_file=registry, stations=_mapping(station or [])
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with service:
        target = cfg.mqtt
        typer.echo(
            f"hj212-gateway listening on {host}:{service.port}, publishing to "
            f"mqtt {target.host}:{target.port}",
            err=True,
        )
        stop.wait()


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.command("hj212-gateway")(hj212_gateway)
