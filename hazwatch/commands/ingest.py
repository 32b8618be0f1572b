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

from hazwatch.base.statedb import StateDB
from hazwatch.devices.timeparse import format_ts


def serve() -> None:
    """Run hazwatch: consume MQTT, write InfluxDB, track custody, raise alerts, serve the API."""
    from hazwatch.app import HazwatchService
    from hazwatch.invocation import settings
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


deadletters_app = typer.Typer(
    help="Dead letters: what was refused and why; replay them after a fix.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@deadletters_app.callback()
def deadletters(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="How many, newest first.")
    ] = 50,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
) -> None:
    """List dead letters newest first: time, topic, reason and the raw bytes."""
    if ctx.invoked_subcommand is not None:
        return
    from hazwatch.ingest.deadletters import DeadLetterStore
    from hazwatch.invocation import settings

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


@deadletters_app.command("replay")
def replay(
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only those received since: RFC 3339 or YYYY-MM-DD (UTC+8)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be replayed; change nothing.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000)] = 10_000,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Feed stored dead letters back through ingest; remove those that now pass.

    Each is decoded as ingest would now; one that passes is published again on its own topic
    (QoS 1, acknowledged by the broker) for the running service to ingest, then removed. One
    that still fails is kept with its reason; a truncated payload, or one hazwatch made itself
    (a spooled or derived line), cannot be replayed and is kept.
    """
    from hazwatch.invocation import settings
    from hazwatch.replay import replay_deadletters

    cfg = settings()
    since_ns = _parse_since(since) if since else None
    outcomes = replay_deadletters(
        cfg, reason=reason, since_ns=since_ns, limit=limit, dry_run=dry_run
    )
    zh = cfg.lang == "zh"
    if json_out:
        for outcome in outcomes:
            typer.echo(orjson.dumps(outcome.to_json()).decode())
    else:
        table = Table("id", "topic", "reason", "outcome", title="replay" if not zh else "死信重放")
        for outcome in outcomes:
            table.add_row(str(outcome.id), outcome.topic, outcome.reason, outcome.said(zh))
        Console().print(table)
    tally = {
        kind: sum(o.kind == kind for o in outcomes)
        for kind in ("replayed", "would", "failing", "unreplayable")
    }
    typer.echo(
        (
            f"已重放 {tally['replayed']}，可重放 {tally['would']}，仍失败 {tally['failing']}，"
            f"不可重放 {tally['unreplayable']}"
        )
        if zh
        else (
            f"replayed {tally['replayed']}, would replay {tally['would']}, "
            f"still failing {tally['failing']}, not replayable {tally['unreplayable']}"
        ),
        err=True,
    )


def _parse_since(text: str) -> int:
    from hazwatch.base.errors import ConfigError, PayloadError
    from hazwatch.devices.timeparse import parse_ts

    raw = text.strip()
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
        raw += "T00:00:00+08:00"  # a date is a China date
    try:
        return parse_ts(raw, field="--since")
    except PayloadError as exc:
        raise ConfigError(f"--since: {exc}") from None


def status(
    url: Annotated[
        str | None,
        typer.Option("--url", help="hazwatch's API, default http://HAZWATCH_API_HOST:PORT."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="The health report as JSON.")] = False,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds.")] = 5.0,
) -> None:
    """Is hazwatch well? Exit code 0 up, 1 degraded (the reasons are printed), 2 unreachable."""
    import httpx

    from hazwatch.invocation import settings

    cfg = settings()
    zh = cfg.lang == "zh"
    if url is None:
        host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
        url = f"http://{host}:{cfg.api_port}"
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/health", timeout=timeout_s)
        report = response.json()
        if not isinstance(report, dict) or "status" not in report:
            raise ValueError(f"HTTP {response.status_code}, not a health report")
    except (httpx.HTTPError, ValueError) as exc:
        if json_out:
            typer.echo(orjson.dumps({"status": "unreachable", "error": str(exc)}).decode())
        else:
            typer.echo(f"{'无法连接' if zh else 'unreachable'}: {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    up = report.get("status") == "up"
    if json_out:
        typer.echo(orjson.dumps(report).decode())
    else:
        word = ("正常" if up else "降级") if zh else ("up" if up else "degraded")
        console = Console()
        console.print(f"hazwatch {url}: [{'green' if up else 'red'}]{word}[/]")
        for reason in report.get("reasons", []):
            console.print(f"  - {reason}")
        table = Table("component" if not zh else "组件", "status" if not zh else "状态", "error")
        for name, component in (report.get("components") or {}).items():
            table.add_row(name, component.get("status", ""), component.get("error", ""))
        console.print(table)
        ingest = report.get("ingest") or {}
        if ingest:
            console.print(
                (
                    "未确认最久 {0} 秒，批次重试 {1} 次，死信 {2} 条/分钟"
                    if zh
                    else "oldest unacked {0} s, batch retries {1}, dead letters {2}/min"
                ).format(
                    ingest.get("oldest_unacked_s"),
                    ingest.get("batch_retries"),
                    ingest.get("deadletters_per_min"),
                )
            )
    raise typer.Exit(0 if up else 1)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(deadletters_app, name="deadletters")
    app.command()(status)
