"""CLI: `simulate` (devices of every family publishing to a broker, with faults on request).

Never print a traceback for a bad option or an unreachable broker: one line and exit code 2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hazwatch.base.errors import ConfigError
from hazwatch.simulators.clocks import parse_clocks
from hazwatch.simulators.faults import FAULT_KINDS, FaultPlan
from hazwatch.simulators.payloads import FAMILIES
from hazwatch.simulators.scenarios import ScenarioReport, get_scenario


def simulate(
    site: Annotated[str, typer.Option(help="Site id: the {site} of the topics.")] = "sim-01",
    devices: Annotated[int, typer.Option(help="Devices per family.")] = 1,
    rate: Annotated[
        float, typer.Option(help="Messages per second, whole fleet (0: as fast as possible).")
    ] = 100.0,
    duration: Annotated[float, typer.Option(help="Seconds to run (unless --count).")] = 10.0,
    count: Annotated[
        int | None, typer.Option(help="Total messages to generate, then stop.")
    ] = None,
    families: Annotated[
        str, typer.Option(help=f"Comma-separated families ({','.join(FAMILIES)}).")
    ] = ",".join(FAMILIES),
    faults: Annotated[
        str,
        typer.Option(
            help="Fault rates per message, e.g. bad_json:0.01,future_ts:0.01,duplicate:0.02, "
            "and anomalies made once, a third to two thirds into the run: offline (a device "
            "of every family drops its connection), silent, blind-read "
            f"(kinds: {', '.join(FAULT_KINDS)})."
        ),
    ] = "",
    scenario: Annotated[str, typer.Option(help="Scenario to run.")] = "fleet",
    registry: Annotated[
        str | None,
        typer.Option(
            help="Write the simulated site's registry (every device; camera N watching "
            "reader N's storage door) to this file first, for `hazwatch registry load`: "
            "the service judges only devices its registry lists."
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Broker URL (default: the mqtt_url setting).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed makes the same messages.")] = 0,
    reads: Annotated[
        str,
        typer.Option(
            help="custody: how readers report: bursts (every inventory round while a tag is in "
            "the field, as real readers do) or single (one read per stage)."
        ),
    ] = "bursts",
    timing: Annotated[
        str,
        typer.Option(
            help="custody: default (a day in storage, hours on the road) or compressed (the "
            "whole story in 2.5 minutes)."
        ),
    ] = "default",
    live: Annotated[
        bool,
        typer.Option(
            help="custody: start now and send each message when its time comes (with "
            "--timing compressed), instead of the past replayed as fast as possible."
        ),
    ] = False,
    clock: Annotated[
        list[str] | None,
        typer.Option(
            help="A device's clock, DEVICE=SPEC, repeatable: gate-03=-900s (15 min slow), "
            "veh-01=+40ppm, rg-1=reboot@60 (back to 2000-01-01 a minute in), sync@S (NTP)."
        ),
    ] = None,
    violations: Annotated[
        int | None,
        typer.Option(help="custody: batches that break a rule each (default: one in ten)."),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(help="custody: write the ground truth (JSON) to this file first."),
    ] = None,
) -> None:
    """Simulate a site's devices publishing to MQTT, and summarise what was sent and acked."""
    from hazwatch.invocation import settings

    url = settings(mqtt_url=mqtt_url).mqtt_url if mqtt_url else settings().mqtt_url
    try:
        factory = get_scenario(scenario)
        plan = FaultPlan.parse(faults)
        chosen = tuple(f.strip() for f in families.split(",") if f.strip())
        clocks = parse_clocks(clock or [])
        run = factory(
            site=site,
            devices=devices,
            rate=rate,
            duration_s=None if count is not None else duration,
            count=count,
            families=chosen,
            faults=plan,
            seed=seed,
            keep_messages=False,  # the CLI prints counts; lists would grow for hours
            clocks=clocks,
            reads=reads,
            timing=timing,
            live=live,
            truth=truth,
            violations=violations,
        )
    except (KeyError, ValueError) as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from None
    if registry is not None:
        from hazwatch.simulators.anomalies import site_registry

        Path(registry).write_text(site_registry(site, chosen, devices), encoding="utf-8")

    err = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{scenario} {site}", total=1.0, status="connecting")

        def progress(fraction: float, text: str) -> None:
            bar.update(task, completed=fraction, status=text)

        try:
            report = asyncio.run(run.run(url, progress))
        except KeyboardInterrupt:
            err.print("hazwatch simulate: interrupted")
            raise typer.Exit(130) from None
    _print_summary(scenario, report)
    if not report.ok:
        raise typer.Exit(1)


def _print_summary(scenario: str, report: ScenarioReport) -> None:
    table = Table(title=f"hazwatch simulate: {scenario}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for name, value in report.summary():
        table.add_row(name, value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.command("simulate")(simulate)
