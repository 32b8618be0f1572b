"""CLI: `alerts list|show|ack|resolve`, officers' view of the alert lifecycle, through the API.

The commands talk to the running service's API (`--api URL`, default this host's
HAZWATCH_API_PORT), not to the state database: an acknowledgement or a resolution must go
where the service tells everyone of it (hw/alerts/… on MQTT, the `alert` point, the
listeners of its one alert store), must pass the same token check as any other write, and
must work from an officer's machine that has no access to the database. The store's outbox
would still carry a direct write to the notifiers, but MQTT subscribers and InfluxDB would
never hear of it.

Never print a traceback for a refusal: one line on stderr; exit 1 for an unknown alert, 3 for
one whose state refuses the change (resolved already), 2 for anything else (unreachable API,
wrong token, a bad option).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from hazwatch.alerts.messages import CHANGE_WORDS, SEVERITY_WORDS, STATE_WORDS, china_time
from hazwatch.alerts.rules import short_name
from hazwatch.base.errors import ConfigError
from hazwatch.streams.catalog import rule_specs

alerts_app = typer.Typer(
    help="Alerts: list, show with history, acknowledge, resolve (through the API).",
    no_args_is_help=True,
)

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="HAZWATCH_API_URL",
        help="The service's API, e.g. http://10.0.0.5:8080 (default: this host's API port).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The API's JSON, as it answered.")]

# Headings by language: Chinese unless HAZWATCH_LANG=en. The words of severities, states and
# changes are the notifications' and the screen's (alerts/messages.py), added in _words.
HEADINGS: dict[str, dict[str, str]] = {
    "zh": {
        "id": "编号", "state": "状态", "severity": "级别", "rule": "规则", "site": "站点",
        "subject": "对象", "opened": "开始时间", "count": "次数", "message": "说明",
        "seq": "序号", "at": "时间", "change": "变化", "actor": "操作人", "comment": "备注",
        "details": "详情", "alerts": "告警", "history": "处理记录", "evidence": "证据",
        "recurs": "重复发生，上一条", "of": "共", "shown": "条，显示",
    },
    "en": {
        "id": "ID", "state": "State", "severity": "Severity", "rule": "Rule", "site": "Site",
        "subject": "Subject", "opened": "Opened", "count": "Count", "message": "Message",
        "seq": "#", "at": "Time", "change": "Change", "actor": "By", "comment": "Comment",
        "details": "Details", "alerts": "alerts", "history": "history", "evidence": "evidence",
        "recurs": "recurs", "of": "of", "shown": "shown:",
    },
}  # fmt: skip


class Words:
    """What the tables say in the settings' language: headings, and the one set of words for
    severities, states and changes; rules by their names (every part's declarations)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.heading = HEADINGS[lang]
        self.severity = {s.value: word for s, word in SEVERITY_WORDS[lang].items()}
        self.state = STATE_WORDS[lang]
        self.change = CHANGE_WORDS[lang]

    def __getitem__(self, key: str) -> str:
        return self.heading[key]

    def detail(self, doc: dict[str, Any]) -> str:
        """The alert's finding in this language, as the messages say it (the API's
        detail_zh / detail_en; the rule's own words from an API without them)."""
        said = doc.get("detail_zh" if self.lang == "zh" else "detail_en")
        return str(said) if said else str(doc["message"])

    def rule(self, rule: str) -> str:
        """ "镜头遮挡（tamper_occlusion）": the name the messages and the screen give it, and
        the id to filter by (`--rule`); English names are the id in words, so the id alone."""
        spec = rule_specs().get(rule)
        if spec is None or self.lang != "zh":
            return rule
        return f"{short_name(spec, self.lang)}（{rule}）"


def _words() -> Words:
    from hazwatch.invocation import settings

    return Words(settings().lang)


def api_url(api: str | None) -> str:
    """--api, or this host's API from the settings (HAZWATCH_API_HOST/PORT)."""
    if api:
        return api.rstrip("/")
    from hazwatch.invocation import settings

    cfg = settings()
    host = "127.0.0.1" if cfg.api_host in ("0.0.0.0", "::", "") else cfg.api_host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.api_port}"


def auth_headers() -> dict[str, str]:
    """The bearer token of the settings (HAZWATCH_API_TOKEN), when one is set."""
    from hazwatch.invocation import settings

    token = settings().api_token
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client(api: str) -> httpx.Client:
    """The HTTP client of one command (tests hand in one bound to an app in process)."""
    return httpx.Client(base_url=api, headers=auth_headers(), timeout=30)


def _call(api: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One request; a refusal becomes its one line on stderr and the exit code above."""
    base = api_url(api)
    try:
        with _client(base) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"the API at {base} did not answer ({exc}); is hazwatch serve up?"
        ) from None
    if response.status_code < 400:
        return response.json()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # a 422: which parameter, and why
        detail = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in detail)
    code = {404: 1, 409: 3}.get(response.status_code, 2)
    if response.status_code == 401:
        detail = f"{detail} (set HAZWATCH_API_TOKEN to the service's token)"
    typer.echo(f"hazwatch: {detail}", err=True)
    raise typer.Exit(code)


def _table(title: str, columns: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print(table: Any) -> None:
    from rich.console import Console

    Console(width=160).print(table)


@alerts_app.command("list")
def alert_list(
    state: Annotated[str | None, typer.Option(help="open | acknowledged | resolved")] = None,
    site: Annotated[str | None, typer.Option(help="Site id.")] = None,
    severity: Annotated[str | None, typer.Option(help="info | warning | major | critical")] = None,
    rule: Annotated[str | None, typer.Option(help="Rule id, e.g. air_exceedance.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Opened at or after: RFC 3339 with a zone, or epoch ms.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Opened before (same forms).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1…1000).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many of the newest first.")] = 0,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """Alerts, newest first, with how many match in all."""
    params = {
        k: v
        for k, v in {
            "state": state,
            "site": site,
            "severity": severity,
            "rule": rule,
            "since": since,
            "until": until,
            "limit": limit,
            "offset": offset,
        }.items()
        if v is not None
    }
    page = _call(api, "GET", "/api/alerts", params=params)
    if json_out:
        typer.echo(json.dumps(page, ensure_ascii=False))
        return
    w = _words()
    shown = len(page["alerts"])
    title = f"{w['alerts']} ({w['of']} {page['total']} {w['shown']} {shown})"
    columns = ["id", "state", "severity", "rule", "site", "subject", "opened", "count", "message"]
    table = _table(title, [w[c] for c in columns])
    for a in page["alerts"]:
        table.add_row(
            a["alert_id"],
            w.state.get(a["state"], a["state"]),
            w.severity.get(a["severity"], a["severity"]),
            w.rule(a["rule"]),
            a["site"],
            a["subject"],
            china_time(a["opened_ns"]),
            str(a["count"]),
            w.detail(a),
        )
    _print(table)


def _show(doc: dict[str, Any], api: str | None) -> None:
    w = _words()
    rows = [
        ("id", doc["alert_id"]),
        ("state", w.state.get(doc["state"], doc["state"])),
        ("severity", w.severity.get(doc["severity"], doc["severity"])),
        ("rule", w.rule(doc["rule"])),
        ("site", doc["site"]),
        ("subject", doc["subject"]),
        ("opened", china_time(doc["opened_ns"])),
        ("count", str(doc["count"])),
        ("message", w.detail(doc)),
    ]
    if doc.get("recurs"):
        rows.append(("recurs", doc["recurs"]))
    link = doc.get("evidence_link")
    if link:
        rows.append(("evidence", f"{api_url(api)}{link['url']}"))
    elif doc.get("evidence"):
        rows.append(("evidence", doc["evidence"]))
    for key, value in rows:
        typer.echo(f"{w[key]}: {value}")
    table = _table(w["history"], [w[c] for c in ("seq", "at", "change", "actor", "comment")])
    for h in doc["history"]:
        change = w.change.get(h["change"], h["change"])
        extra = ", ".join(f"{k}={v}" for k, v in h["details"].items())
        comment = h["comment"] or ""
        table.add_row(
            str(h["seq"]),
            china_time(h["at_ns"]),
            change,
            h["actor"],
            " ".join(part for part in (comment, extra) if part),
        )
    _print(table)


@alerts_app.command("show")
def alert_show(
    alert_id: Annotated[str, typer.Argument(help="The alert id.")],
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """One alert: what, where, since when, its history and where its evidence is."""
    doc = _call(api, "GET", f"/api/alerts/{alert_id}")
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    _show(doc, api)


ByOption = Annotated[str, typer.Option("--by", help="Who (your name or staff id).")]
CommentOption = Annotated[str | None, typer.Option("--comment", "-m", help="Why, what was done.")]


def _decide(
    how: str, alert_id: str, by: str, comment: str | None, api: str | None, json_out: bool
) -> None:
    body = {"by": by, "comment": comment}
    doc = _call(api, "POST", f"/api/alerts/{alert_id}/{how}", json=body)
    if json_out:
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    _show(doc, api)


@alerts_app.command("ack")
def alert_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert id.")],
    by: ByOption,
    comment: CommentOption = None,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """Acknowledge an open alert (exit 3 if it is acknowledged or resolved already)."""
    _decide("ack", alert_id, by, comment, api, json_out)


@alerts_app.command("resolve")
def alert_resolve(
    alert_id: Annotated[str, typer.Argument(help="The alert id.")],
    by: ByOption,
    comment: CommentOption = None,
    api: ApiOption = None,
    json_out: JsonOption = False,
) -> None:
    """Resolve an open or acknowledged alert (exit 3 if it is resolved already)."""
    _decide("resolve", alert_id, by, comment, api, json_out)


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.add_typer(alerts_app, name="alerts")
