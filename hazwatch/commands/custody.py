"""CLI: `registry load|show`, `trace BATCH`, `ledger` (the custody side of hazwatch).

Never print a traceback for a batch that does not exist: one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hazwatch.base.statedb import StateDB

registry_app = typer.Typer(
    help="The device registry (which device stands where).", no_args_is_help=True
)


def _db() -> StateDB:
    from hazwatch.invocation import settings

    return StateDB(settings().state_dsn)


@registry_app.command("load")
def registry_load(file: Annotated[Path, typer.Argument(help="Registry TOML file.")]) -> None:
    """Validate a registry file and store it as the current registry."""
    from hazwatch.devices import registry

    loaded = registry.load_file(file)
    version = registry.save(_db(), loaded, str(file), time.time_ns())
    typer.echo(
        f"registry v{version}: {len(loaded.sites)} sites, {len(loaded.readers)} readers, "
        f"{len(loaded.scales)} scales, {len(loaded.stations)} stations, "
        f"{len(loaded.cameras)} cameras"
    )


@registry_app.command("show")
def registry_show(
    json_out: Annotated[bool, typer.Option("--json", help="The registry as JSON.")] = False,
) -> None:
    """Print the stored registry."""
    from rich.console import Console
    from rich.table import Table

    from hazwatch.devices import registry

    version, current = registry.load_stored(_db())
    if json_out:
        typer.echo(json.dumps({"version": version, **current.to_document()}, ensure_ascii=False))
        return
    if version == 0:
        typer.echo("no registry loaded (hazwatch registry load FILE)")
        return
    console = Console()
    table = Table(title=f"registry v{version}")
    for column in ("kind", "id", "site", "location / role", "detail"):
        table.add_column(column)
    for site in current.sites.values():
        table.add_row("site", site.id, site.id, site.role,
                      f"{site.name} {site.lat},{site.lon} ≤{site.storage_limit_kg:g} kg "
                      f"≤{site.storage_limit_days:g} d")  # fmt: skip
    for reader in current.readers.values():
        detail = f"overlaps {','.join(reader.overlaps)}" if reader.overlaps else ""
        table.add_row("reader", reader.id, reader.site, reader.location, detail)
    for scale in current.scales.values():
        table.add_row("scale", scale.id, scale.site, scale.location, "")
    for station in current.stations.values():
        table.add_row("station", station.id, station.site, "", f"MN {station.mn or '-'}")
    for camera in current.cameras.values():
        table.add_row("camera", camera.id, camera.site, "", "watches " + ",".join(camera.watches))
    console.print(table)


def trace(
    batch: Annotated[str, typer.Argument(help="Batch code.")],
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object: batch, epc, waste_code, stage, verdict, violations, events "
            "(each with its pass), diagnostics (passes that are no custody event).",
        ),
    ] = False,
) -> None:
    """A batch's custody events (one per stage entered, with the pass that proves it), its
    stage and verdict, and the passes that are no custody event (repeats, short, cross-reads)."""
    from hazwatch.streams.custody.store import CustodyStore, trace_document

    doc = trace_document(CustodyStore(_db()), batch, time.time_ns())
    if doc is None:
        typer.echo(f"hazwatch: no batch {batch!r} is known to custody", err=True)
        raise typer.Exit(1)
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    typer.echo(f"batch {doc['batch']}  epc {doc['epc']}  waste {doc['waste_code']}")
    for event in doc["events"]:
        kg = "" if event["net_kg"] is None else f"{event['net_kg']:g} kg"
        seen = _seen(event["pass"]) if "pass" in event else ""
        typer.echo(
            f"  {event['ts']}  {event['stage']:<10} {event['site']}/{event['device']}  {kg}{seen}"
            f"{_clock(event)}"
        )
    verdict = doc["verdict"]
    if verdict == "open":
        verdict += f": at {doc['at_site']} ({doc['stage']}) for {doc['open_for_h']} h"
    typer.echo(f"stage {doc['stage']}, verdict {verdict}")
    for v in doc["violations"]:
        typer.echo(f"  ✗ {v['rule']} at {v['at']} (event {v['event_id']}): {v['message']}")
    notes = doc["diagnostics"]
    if notes:
        typer.echo(f"passes that are no custody event ({len(notes)}):")
    for d in notes[:SHOWN_NOTES]:
        typer.echo(
            f"  {d['pass']['first_seen']}  {d['why']:<10} {d['site']}/{d['device']}"
            f"{_seen(d['pass'])}  {d['note']}"
        )
    if len(notes) > SHOWN_NOTES:  # a drum parked by a door has a pass per gap, all day
        typer.echo(f"  … and {len(notes) - SHOWN_NOTES} more (--json lists them all)")


SHOWN_NOTES = 20  # diagnostics a trace prints


def _clock(event: dict[str, Any]) -> str:
    """How a trace line's time was corrected, when its device's clock was off."""
    clock = event.get("clock") or {}
    offset = float(clock.get("offset_s") or 0.0)
    if abs(offset) < 1:
        return ""
    how = "slow" if offset > 0 else "fast"
    return f"  (device clock {abs(offset):g} s {how}, {clock.get('basis')}: {event['device_ts']})"


def _seen(seen: dict[str, object]) -> str:
    """A pass in a trace line: until when, how many reads, the peak and its antenna."""
    rssi = "" if seen["peak_rssi"] is None else f", peak {seen['peak_rssi']:g} dBm"
    antenna = "" if seen["antenna"] is None else f" (antenna {seen['antenna']})"
    return f"  to {seen['last_seen']}, {seen['reads']} reads{rssi}{antenna}"


def ledger(
    site: Annotated[str, typer.Option("--site", help="Site id.")],
    date_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (China time).")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD, included.")],
    kind: Annotated[
        str | None,
        typer.Option(help="generation | storage_in | storage_out | disposal | transfer"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | xlsx | json")] = "csv",
    lang: Annotated[str, typer.Option("--lang", help="zh (default) | en headings")] = "zh",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
) -> None:
    """The management ledger (HJ 1259-2022) and its monthly summary, from custody events."""
    from hazwatch.base.errors import ConfigError
    from hazwatch.streams.custody import ledger as ledger_mod
    from hazwatch.streams.custody.store import CustodyStore

    if fmt not in ledger_mod.FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(ledger_mod.FORMATS)}")
    if lang not in ("zh", "en"):
        raise ConfigError("--lang must be zh or en")
    if kind is not None and kind not in ledger_mod.KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(ledger_mod.KINDS)}")
    try:
        start = ledger_mod.parse_date_ns(date_from)
        end = ledger_mod.parse_date_ns(date_to, end=True)
    except ValueError as exc:
        raise ConfigError(f"--from and --to must be dates like 2026-11-01: {exc}") from None
    built = ledger_mod.ledger_for(CustodyStore(_db()), site, start, end, kind)
    body = ledger_mod.render(built, fmt, lang)
    if output is not None:
        output.write_bytes(body)
        typer.echo(
            f"{len(built.rows)} records, {len(built.summary)} monthly rows → {output}", err=True
        )
    elif fmt == "xlsx":
        raise ConfigError("xlsx needs --output FILE")
    else:
        sys.stdout.buffer.write(body)


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.add_typer(registry_app, name="registry")
    app.command("trace")(trace)
    app.command("ledger")(ledger)
