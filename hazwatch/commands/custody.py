"""CLI: `registry load|show`, `trace BATCH`, `ledger` (the custody side of hazwatch).

Never print a traceback for a batch that does not exist: one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
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
            "(each with its pass), diagnostics (passes that are no custody event), pending "
            "(passes held until settled).",
        ),
    ] = False,
    lang: Annotated[str, typer.Option("--lang", help="zh (default) | en")] = "zh",
) -> None:
    """A batch's custody events (one per stage entered, with the pass that proves it), its
    stage and verdict, the passes that are no custody event (repeats, short, cross-reads) and
    those held until settled (pending), in China time."""
    from hazwatch.base.errors import ConfigError
    from hazwatch.streams.custody.store import CustodyStore, trace_document

    if lang not in WORDS:
        raise ConfigError("--lang must be zh or en")
    doc = trace_document(CustodyStore(_db()), batch, time.time_ns())
    if doc is None:
        typer.echo(f"hazwatch: no batch {batch!r} is known to custody", err=True)
        raise typer.Exit(1)
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    for line in trace_lines(doc, lang):
        typer.echo(line)


SHOWN_NOTES = 20  # diagnostics a trace prints


def trace_lines(doc: dict[str, Any], lang: str = "zh") -> list[str]:
    """`hazwatch trace`'s text of a trace document (trace_document), in `lang`."""
    w = WORDS[lang]
    zh = lang == "zh"
    lines = [w["head"].format(**doc)]
    for event in doc["events"]:
        kg = "" if event["net_kg"] is None else f"{event['net_kg']:g} kg"
        seen = _seen(event["pass"], lang) if "pass" in event else ""
        lines.append(
            f"  {_when(event['ts'])}  {_stage(event['stage'], lang):<{6 if zh else 10}} "
            f"{event['site']}/{event['device']}  {kg}{seen}{_clock(event, lang)}"
        )
    verdict = _verdict(doc["verdict"], lang)
    if doc["verdict"] == "open":
        verdict += w["open_for"].format(
            at_site=doc["at_site"], stage=_stage(doc["stage"], lang), h=doc["open_for_h"]
        )
    lines.append(w["verdict"].format(stage=_stage(doc["stage"], lang), verdict=verdict))
    for v in doc["violations"]:
        lines.append(
            w["violation"].format(
                rule=_rule(v["rule"], lang), at=_when(v["at"]), event=v["event_id"],
                message=v["message"],
            )
        )  # fmt: skip
    notes = doc["diagnostics"]
    if notes:
        lines.append(w["notes"].format(n=len(notes)))
    for d in notes[:SHOWN_NOTES]:
        why = WHY[d["why"]][0 if zh else 1] if d["why"] in WHY else d["why"]
        lines.append(
            f"  {_when(d['pass']['first_seen'])}  {why:<{6 if zh else 10}} "
            f"{d['site']}/{d['device']}{_seen(d['pass'], lang)}  {_note(d, lang)}"
        )
    if len(notes) > SHOWN_NOTES:  # a drum parked by a door has a pass per gap, all day
        lines.append(w["more"].format(n=len(notes) - SHOWN_NOTES))
    held = doc.get("pending") or []
    if held:
        lines.append(w["pending"].format(n=len(held)))
    waiting = WHY["pending"][0 if zh else 1]
    for h in held:
        lines.append(
            f"  {_when(h['pass']['first_seen'])}  {waiting:<{6 if zh else 10}} "
            f"{h['site']}/{h['device']}{_seen(h['pass'], lang)}  {_note(h, lang)}"
        )
    return lines


# The trace's words: stages and verdicts as the screen names them (api/routes/screen.py)
WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "head": "批次 {batch}  标签 {epc}  废物代码 {waste_code}",
        "open_for": "：在 {at_site}（{stage}）已 {h} 小时",
        "verdict": "当前环节 {stage}，追溯结论 {verdict}",
        "violation": "  ✗ {rule}，{at}（事件 {event}）：{message}",
        "notes": "不构成托管事件的读取过程（{n}）：",
        "more": "  …… 另有 {n} 条（--json 列出全部）",
        "pending": "待定（暂缓判定）的读取过程（{n}）：",
    },
    "en": {
        "head": "batch {batch}  epc {epc}  waste {waste_code}",
        "open_for": ": at {at_site} ({stage}) for {h} h",
        "verdict": "stage {stage}, verdict {verdict}",
        "violation": "  ✗ {rule} at {at} (event {event}): {message}",
        "notes": "passes that are no custody event ({n}):",
        "more": "  … and {n} more (--json lists them all)",
        "pending": "passes held until settled ({n}):",
    },
}
WHY = {  # Diagnostic.why, and a held pass
    "repeat": ("重复读取", "repeat"),
    "short": ("停留过短", "short"),
    "cross_read": ("串读", "cross_read"),
    "pending": ("待定", "pending"),
}


def _when(ts: str) -> str:
    """A trace document's RFC 3339 UTC time in China time."""
    from hazwatch.alerts.messages import iso_china
    from hazwatch.devices.timeparse import parse_ts

    return iso_china(parse_ts(ts))


def _stage(stage: str, lang: str) -> str:
    from hazwatch.streams.custody.text import STAGE_NAMES

    names = STAGE_NAMES.get(stage)
    return stage if names is None or lang != "zh" else names[0]


def _verdict(verdict: str, lang: str) -> str:
    from hazwatch.api.routes.screen import VERDICT_NAMES

    names = VERDICT_NAMES.get(verdict)
    return verdict if names is None or lang != "zh" else names[0]


def _rule(rule: str, lang: str) -> str:
    """A rule as a person reads it: 环节缺失（skipped_stage） in Chinese."""
    from hazwatch.streams.catalog import rule_specs

    spec = rule_specs().get(rule)
    if spec is None or lang != "zh":
        return rule
    return f"{spec.description_zh.split('：')[0]}（{rule}）"


_NOTE_PATTERNS: tuple[tuple[str, Callable[[re.Match[str]], str]], ...] = (
    (
        r"already (?P<stage>\w+) at (?P<site>\S+)",
        lambda m: f"已在 {m['site']} 处于{_stage(m['stage'], 'zh')}环节",
    ),
    (
        r"(?P<s>[0-9.]+) s in the field, under the (?P<min>[0-9.]+) s minimum dwell at a "
        r"(?P<loc>\w+) reader",
        lambda m: f"在读写器场内 {m['s']} 秒，低于 {m['loc']} 读写器的最短停留 {m['min']} 秒",
    ),
    (
        r"cross-read: (?P<w>\S+) saw it at the same time, stronger \((?P<rssi>.+), "
        r"(?P<n>\d+) reads\)",
        lambda m: f"串读：{m['w']} 同时读到且信号更强（{m['rssi']}，{m['n']} 次读取）",
    ),
    (
        r"held: overlapping reader (?P<r>.+) within the cross-read window",
        lambda m: f"暂缓：与重叠读写器 {m['r']} 的读取在串读时间窗内，待二者均无法再改变判定后定位",
    ),
    (
        r"held: an earlier pass of this batch at an overlapping reader is not settled",
        lambda m: "暂缓：该批次更早的一次读取（在重叠读写器处）尚未判定",
    ),
)


def _note(d: dict[str, Any], lang: str) -> str:
    """A diagnostic's or held pass's note; in Chinese when its sentence is known."""
    note = str(d["note"])
    if lang == "zh":
        for pattern, say in _NOTE_PATTERNS:
            found = re.fullmatch(pattern, note)
            if found:
                return say(found)
    return note


def _clock(event: dict[str, Any], lang: str = "zh") -> str:
    """How a trace line's time was corrected, when its device's clock was off."""
    clock = event.get("clock") or {}
    offset = float(clock.get("offset_s") or 0.0)
    if abs(offset) < 1:
        return ""
    own = _when(event["device_ts"]) if event["device_ts"][:1].isdigit() else event["device_ts"]
    if lang == "zh":
        how = "慢" if offset > 0 else "快"
        return f"  （设备时钟{how} {abs(offset):g} 秒，{clock.get('basis')}：设备时间 {own}）"
    how = "slow" if offset > 0 else "fast"
    return f"  (device clock {abs(offset):g} s {how}, {clock.get('basis')}: {own})"


def _seen(seen: dict[str, object], lang: str = "zh") -> str:
    """A pass in a trace line: until when, how many reads, the peak and its antenna."""
    last = _when(str(seen["last_seen"]))
    if lang == "zh":
        rssi = "" if seen["peak_rssi"] is None else f"，峰值 {seen['peak_rssi']:g} dBm"
        antenna = "" if seen["antenna"] is None else f"（天线 {seen['antenna']}）"
        return f"  至 {last}，{seen['reads']} 次读取{rssi}{antenna}"
    rssi = "" if seen["peak_rssi"] is None else f", peak {seen['peak_rssi']:g} dBm"
    antenna = "" if seen["antenna"] is None else f" (antenna {seen['antenna']})"
    return f"  to {last}, {seen['reads']} reads{rssi}{antenna}"


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
