"""CLI: `air audit list|mark|unmark` and `air maintenance add|list`, the air data audit
(数据审核) and maintenance records (运维记录), through the API.

Through the API, as `alerts` is (hazwatch/commands/alerts.py says why): a mark must pass the
token check and recompute the hours in the service that owns them. Times are RFC 3339 with a
zone, epoch ms, or China time written plainly ("2026-11-24 08:00").

Never print a traceback for a refusal: one line on stderr; exit 1 for an unknown station or
mark, 3 for a mark revoked already, 2 for anything else.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

import typer

from hazwatch.alerts.messages import china_time
from hazwatch.base.errors import ConfigError
from hazwatch.commands import alerts as via_api
from hazwatch.devices.timeparse import CHINA

audit_app = typer.Typer(
    help="数据审核：列出、标记无效、撤销标记（经由 API）。Data audit marks.", no_args_is_help=True
)
maintenance_app = typer.Typer(
    help="运维记录：校准、巡检、耗材更换、维修（经由 API）。Maintenance records.",
    no_args_is_help=True,
)

NS_PER_H = 3600 * 10**9
_PLAIN = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2})(:[0-9]{2})?(:[0-9]{2})?$")

HEADINGS: dict[str, dict[str, str]] = {
    "zh": {
        "id": "编号", "station": "站点", "pollutant": "污染物", "start": "开始", "end": "结束",
        "reason": "原因", "origin": "来源", "note": "说明", "by": "审核人", "state": "状态",
        "marks": "审核标记", "records": "运维记录", "kind": "类型", "in_force": "有效",
        "revoked": "已撤销", "recomputed": "重新计算的小时", "not_recomputed":
        "原始读数已清理、未重新计算的小时", "auto": "自动", "manual": "人工",
        "maintenance": "运维", "flag": "站点标记", "all": "全部",
    },
    "en": {
        "id": "ID", "station": "Station", "pollutant": "Pollutant", "start": "Start",
        "end": "End", "reason": "Reason", "origin": "Origin", "note": "Note", "by": "By",
        "state": "State", "marks": "audit marks", "records": "maintenance records",
        "kind": "Kind", "in_force": "in force", "revoked": "revoked",
        "recomputed": "hours computed again", "not_recomputed":
        "hours whose readings are pruned (not computed again)", "auto": "auto",
        "manual": "manual", "maintenance": "maintenance", "flag": "station flag", "all": "all",
    },
}  # fmt: skip

ApiOption = via_api.ApiOption
JsonOption = via_api.JsonOption
ByOption = Annotated[str, typer.Option("--by", help="审核人 Who (your name or staff id).")]
NoteOption = Annotated[str, typer.Option("--note", "-m", help="说明 Why (required).")]
PollutantOption = Annotated[
    str, typer.Option("--pollutant", "-p", help="so2|no2|pm10|co|o3|pm25, or * for all.")
]
FromOption = Annotated[str | None, typer.Option("--from", help="Start (see the module help).")]
ToOption = Annotated[str | None, typer.Option("--to", help="End, exclusive.")]


def _words() -> dict[str, str]:
    from hazwatch.invocation import settings

    return HEADINGS[settings().lang]


def instant(text: str, name: str) -> str:
    """A time for the API: plain China time ("2026-11-24 08:00") gets its zone; RFC 3339 and
    epoch ms go as they are (the API checks them and names the option when wrong)."""
    match = _PLAIN.match(text.strip())
    if match is None:
        return text.strip()
    day, hour, minute, second = match.groups()
    try:
        local = datetime.fromisoformat(f"{day}T{hour}{minute or ':00'}{second or ':00'}")
    except ValueError:
        raise ConfigError(f"--{name} is not a real time, got {text!r}") from None
    return str(int(local.replace(tzinfo=CHINA).timestamp() * 1000))


def _station(text: str) -> tuple[str, str]:
    site, slash, station = text.partition("/")
    if not slash or not site or not station:
        raise ConfigError(f"the station must be SITE/STATION, got {text!r}")
    return site, station


def _call(api: str | None, method: str, path: str, **kwargs: Any) -> Any:
    return via_api._call(api, method, path, **kwargs)


def _print_marks(doc: dict[str, Any]) -> None:
    w = _words()
    table = via_api._table(
        f"{w['marks']} ({doc['from']} … {doc['to']})",
        [w[c] for c in ("id", "station", "pollutant", "start", "end", "reason", "origin",
                        "note", "by", "state")],
    )  # fmt: skip
    for m in doc["marks"]:
        state = w["in_force"] if m["in_force"] else f"{w['revoked']}（{m['revoked_by']}）"
        table.add_row(
            "" if m["id"] is None else str(m["id"]),
            f"{m['site']}/{m['station']}",
            w["all"] if m["pollutant"] == "*" else m["pollutant"],
            china_time(m["start_ns"]),
            china_time(m["end_ns"]),
            m["reason_text"],
            w.get(m["origin"], m["origin"]),
            m["note"],
            m["by"],
            state,
        )
    via_api._print(table)


def _print_change(doc: dict[str, Any]) -> None:
    w = _words()
    row = doc.get("mark") or doc["record"]
    typer.echo(f"{w['id']}: {row['id']}  {row.get('reason_text') or row.get('kind_text')}")
    for key in ("recomputed", "not_recomputed"):
        if doc[key]:
            typer.echo(f"{w[key]}: {', '.join(doc[key])}")


@audit_app.command("list")
def audit_list(
    site: Annotated[str | None, typer.Option(help="Site id.")] = None,
    station: Annotated[str | None, typer.Option(help="Station id.")] = None,
    start: FromOption = None,
    end: ToOption = None,
    origin: Annotated[str | None, typer.Option(help="auto|manual|maintenance|flag")] = None,
    in_force: Annotated[bool, typer.Option("--in-force", help="Only marks in force.")] = False,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """审核标记：哪些数据无效、为什么、谁标记、谁撤销（默认最近 7 天）。"""
    params: dict[str, Any] = {"site": site, "station": station, "origin": origin}
    if start is not None:
        params["from"] = instant(start, "from")
    if end is not None:
        params["to"] = instant(end, "to")
    if in_force:
        params["revoked"] = "false"
    doc = _call(api, "GET", "/api/air/marks", params={k: v for k, v in params.items() if v})
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    _print_marks(doc)


@audit_app.command("mark")
def audit_mark(
    station: Annotated[str, typer.Argument(help="SITE/STATION")],
    reason: Annotated[
        str,
        typer.Option(help="fault|calibration|maintenance|power|communication|interference|other"),
    ],
    note: NoteOption,
    by: ByOption,
    pollutant: PollutantOption = "*",
    hour: Annotated[
        str | None, typer.Option(help="One hour, e.g. '2026-11-24 08' (China time).")
    ] = None,
    start: FromOption = None,
    end: ToOption = None,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """标记数据无效（一个小时 --hour，或 --from/--to），其小时值重新计算。"""
    site, station_id = _station(station)
    if hour is not None:
        if start is not None or end is not None:
            raise ConfigError("give --hour, or --from and --to, not both")
        first = instant(hour, "hour")
        if not first.isdigit():
            raise ConfigError(f"--hour must be China time 'YYYY-MM-DD HH', got {hour!r}")
        start_ms = int(first) - int(first) % (NS_PER_H // 10**6)
        start, end = str(start_ms), str(start_ms + NS_PER_H // 10**6)
    elif start is None or end is None:
        raise ConfigError("give --hour, or --from and --to")
    else:
        start, end = instant(start, "from"), instant(end, "to")
    body = {
        "site": site,
        "station": station_id,
        "pollutant": pollutant,
        "start": start,
        "end": end,
        "reason": reason,
        "note": note,
        "by": by,
    }
    doc = _call(api, "POST", "/api/air/marks/add", json=body)
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    _print_change(doc)


@audit_app.command("unmark")
def audit_unmark(
    mark_id: Annotated[int, typer.Argument(help="The mark's id (air audit list).")],
    note: NoteOption,
    by: ByOption,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """撤销标记：数据重新有效，小时值重新计算；标记连同撤销人和理由保留在记录中。"""
    doc = _call(api, "POST", f"/api/air/marks/{mark_id}/unmark", json={"by": by, "note": note})
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    _print_change(doc)


@maintenance_app.command("add")
def maintenance_add(
    station: Annotated[str, typer.Argument(help="SITE/STATION")],
    kind: Annotated[str, typer.Option(help="calibration|inspection|consumable|repair")],
    start: Annotated[str, typer.Option("--from", help="When it began.")],
    note: NoteOption,
    by: ByOption,
    end: Annotated[
        str | None, typer.Option("--to", help="When it ended: data between are invalid.")
    ] = None,
    pollutant: PollutantOption = "*",
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """记录一次运维；有 --to 时，窗口内的数据标为无效（运维）。"""
    site, station_id = _station(station)
    body = {
        "site": site,
        "station": station_id,
        "kind": kind,
        "start": instant(start, "from"),
        "end": None if end is None else instant(end, "to"),
        "pollutant": pollutant,
        "note": note,
        "by": by,
    }
    doc = _call(api, "POST", "/api/air/maintenance/add", json=body)
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    _print_change(doc)


@maintenance_app.command("list")
def maintenance_list(
    site: Annotated[str | None, typer.Option(help="Site id.")] = None,
    station: Annotated[str | None, typer.Option(help="Station id.")] = None,
    start: FromOption = None,
    end: ToOption = None,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """运维记录（默认最近 30 天）。"""
    params: dict[str, Any] = {"site": site, "station": station}
    if start is not None:
        params["from"] = instant(start, "from")
    if end is not None:
        params["to"] = instant(end, "to")
    doc = _call(api, "GET", "/api/air/maintenance", params={k: v for k, v in params.items() if v})
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    w = _words()
    table = via_api._table(
        f"{w['records']} ({doc['from']} … {doc['to']})",
        [w[c] for c in ("id", "station", "kind", "pollutant", "start", "end", "note", "by")],
    )
    for r in doc["records"]:
        table.add_row(
            str(r["id"]),
            f"{r['site']}/{r['station']}",
            r["kind_text"],
            w["all"] if r["pollutant"] == "*" else r["pollutant"],
            china_time(r["start_ns"]),
            china_time(r["end_ns"]),
            r["note"],
            r["by"],
        )
    via_api._print(table)


def air_group(app: typer.Typer) -> typer.Typer:
    """The `air` command group: the one registered already (another air command module may
    have made it), else a new one."""
    for group in app.registered_groups:
        if group.name == "air" and isinstance(group.typer_instance, typer.Typer):
            return group.typer_instance
    air = typer.Typer(help="空气站：数据审核、运维记录。Air stations.", no_args_is_help=True)
    app.add_typer(air, name="air")
    return air


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    air = air_group(app)
    air.add_typer(audit_app, name="audit")
    air.add_typer(maintenance_app, name="maintenance")
