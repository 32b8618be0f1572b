"""CLI: `hj212-gateway`, the TCP door for HJ 212-2017 air stations into the MQTT pipeline.

Never ack a station's packet before the broker has it; stops cleanly on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path
from typing import Annotated

import typer

from hazwatch.base.errors import ConfigError

log = logging.getLogger("hazwatch.hj212_gateway")


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


async def run_gateway(
    host: str,
    port: int,
    *,
    registry_file: Path | None,
    stations: dict[str, tuple[str, str]],
    ready: asyncio.Event | None = None,
) -> None:
    import aiomqtt
    import orjson

    from hazwatch.base.retry import Backoff, RetryPolicy
    from hazwatch.base.statedb import StateDB
    from hazwatch.devices.registry import RegistryContext, load_file
    from hazwatch.ingest.deadletters import DeadLetterLimits, DeadLetterStore
    from hazwatch.ingest.failures import is_transient
    from hazwatch.ingest.hj212_gateway import GatewayDeadLetter, GatewayLimits, Hj212Gateway
    from hazwatch.invocation import settings

    cfg = settings()
    db = StateDB(cfg.state_dsn)
    keep_bytes = cfg.deadletter_keep_kb * 1024
    deadletters = DeadLetterStore(
        db,
        DeadLetterLimits(
            keep_bytes=keep_bytes,
            burst_per_min=cfg.deadletter_burst_per_min,
            max_rows=cfg.deadletter_max_rows,
            max_bytes=cfg.deadletter_max_mb * 1024 * 1024,
        ),
    )
    limits = GatewayLimits(
        max_bad_frames=cfg.gateway_max_bad_frames,
        bad_window_s=cfg.gateway_bad_window_s,
        keep_bytes=keep_bytes,
    )
    if registry_file is not None:
        registry = RegistryContext(None, load_file(registry_file))
    else:
        registry = RegistryContext(db)

    def lookup(mn: str) -> tuple[str, str] | None:
        return stations.get(mn) or registry.station_by_mn(mn)

    target = cfg.mqtt
    client = aiomqtt.Client(
        target.host,
        target.port,
        identifier=f"{cfg.mqtt_client_id}-hj212-gateway",
        username=target.username,
        password=target.password,
        tls_context=ssl.create_default_context() if target.tls else None,
        max_queued_outgoing_messages=None,
    )

    async def publish(topic: str, payload: bytes) -> None:
        await client.publish(topic, payload, qos=1)

    async def dead_letter(letter: GatewayDeadLetter) -> None:
        # A state store that is busy or briefly down must not lose what a station sent: the
        # letter is retried (holding up only that station's connection) before it is given up.
        backoff = Backoff(RetryPolicy(max_s=30.0, first_delay_s=0.1, max_delay_s=2.0))
        while True:
            try:
                kept = await asyncio.to_thread(deadletters.add_many, [letter])
                break
            except Exception as exc:
                pause = backoff.failed()
                if not is_transient(exc) or backoff.exhausted:
                    raise
                await asyncio.sleep(pause)
        # Published only when kept: past its peer's burst a letter is only counted.
        for refused in kept:
            await client.publish(refused.mqtt_topic(), orjson.dumps(refused.to_json()), qos=1)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with client, Hj212Gateway(lookup, publish, dead_letter, limits) as gateway:
        await gateway.start(host, port)
        typer.echo(
            f"hj212-gateway listening on {host}:{gateway.port}, publishing to "
            f"mqtt {target.host}:{target.port}",
            err=True,
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping: %s", gateway.stats)
    db.close()


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
    from hazwatch.invocation import settings
    from hazwatch.logs import setup_logging

    cfg = settings()
    setup_logging(cfg.log_format, cfg.log_level)
    host, port = _listen(listen)
    asyncio.run(run_gateway(host, port, registry_file=registry, stations=_mapping(station or [])))


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.command("hj212-gateway")(hj212_gateway)
