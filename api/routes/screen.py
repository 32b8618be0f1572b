"""The monitoring screen's pages (HTML shells of small JS modules) and `/api/screen/labels`.

Never put data into a page here: each page's script reads the documented JSON endpoints; and
never name anything outside the host (scripts, styles and fonts come from /static/).
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from hazwatch.alerts.messages import CHANGE_WORDS, SEVERITY_WORDS, STATE_WORDS
from hazwatch.alerts.model import AlertState, Severity
from hazwatch.alerts.rules import RuleSpec, short_name
from hazwatch.api.deps import Ctx
from hazwatch.devices.families import FAMILIES
from hazwatch.devices.registry import READER_LOCATIONS, ROLES
from hazwatch.streams.air import aqi
from hazwatch.streams.catalog import rule_specs
from hazwatch.streams.custody import ledger
from hazwatch.streams.custody import rules as custody_rules
from hazwatch.streams.custody.text import STAGE_NAMES  # the stages as every surface says them

router = APIRouter(tags=["screen"])

# name → (title zh, title en); the order is the navigation's
PAGES: dict[str, tuple[str, str]] = {
    "overview": ("总览", "Overview"),
    "batch": ("批次追溯", "Batch trace"),
    "alerts": ("告警", "Alerts"),
    "air": ("空气质量", "Air quality"),
    "devices": ("设备与视频", "Devices & video"),
    "ledger": ("管理台账", "Ledger"),
    "wall": ("大屏", "Wall display"),
}


# every part's rules (streams/catalog.py): a part added later is named without a change here
RULE_SPECS: tuple[RuleSpec, ...] = tuple(rule_specs().values())
VERDICT_NAMES = {
    "open": ("进行中", "open"),
    "complete": ("已完成", "complete"),
    "broken": ("断链", "broken"),
}
FAMILY_NAMES = {
    "rfid": ("RFID 读写器", "RFID readers"),
    "scale": ("称重设备", "scales"),
    "terminal": ("现场终端", "terminals"),
    "air": ("空气微站", "air stations"),
    "camera": ("摄像机", "cameras"),
}
ROLE_NAMES = {
    "producer": ("产生单位", "producer"),
    "transporter": ("运输单位", "transporter"),
    "receiver": ("接收单位", "receiver"),
}
LOCATION_NAMES = {
    "generation": ("产生点", "generation point"),
    "storage_in": ("贮存入口", "storage entrance"),
    "storage_out": ("贮存出口", "storage exit"),
    "vehicle": ("运输车辆", "vehicle"),
    "receiver_gate": ("接收入厂口", "receiver gate"),
    "disposal": ("处置线", "disposal line"),
}
POLLUTANT_NAMES = {
    "pm25": ("PM2.5", "PM2.5", "µg/m³"),
    "pm10": ("PM10", "PM10", "µg/m³"),
    "so2": ("SO₂", "SO₂", "µg/m³"),
    "no2": ("NO₂", "NO₂", "µg/m³"),
    "co": ("CO", "CO", "mg/m³"),
    "o3": ("O₃", "O₃", "µg/m³"),
    "o3_8h": ("O₃ 8小时", "O₃ 8-h", "µg/m³"),
}


def _pair(names: tuple[str, ...]) -> dict[str, str]:
    return {"zh": names[0], "en": names[1]}


@router.get("/api/screen/labels")
def labels() -> dict[str, Any]:
    """Every name the screen shows, in Chinese and English: rules (from each part's rule
    declarations), stages, verdicts, severities, device families, site roles, reader
    locations, AQI levels with their HJ 633-2012 colours, pollutants with GB 3095-2012 limits."""
    return {
        "rules": {
            spec.id: {
                "part": spec.part,
                "severity": spec.severity.value,
                "subject": spec.subject,
                "name": {"zh": short_name(spec, "zh"), "en": short_name(spec, "en")},
                "description": {"zh": spec.description_zh, "en": spec.description_en},
            }
            for spec in RULE_SPECS
        },
        "stages": {stage: _pair(STAGE_NAMES[stage]) for stage in custody_rules.STAGES},
        "verdicts": {v: _pair(n) for v, n in VERDICT_NAMES.items()},
        # the words the notifications use (alerts/messages.py), so a message and the screen agree
        "severities": {
            s.value: {"zh": SEVERITY_WORDS["zh"][s], "en": SEVERITY_WORDS["en"][s]}
            for s in Severity
        },
        "states": {
            s.value: {"zh": STATE_WORDS["zh"][s.value], "en": STATE_WORDS["en"][s.value]}
            for s in AlertState
        },
        "changes": {
            c: {"zh": CHANGE_WORDS["zh"][c], "en": CHANGE_WORDS["en"][c]}
            for c in CHANGE_WORDS["zh"]
        },
        "families": {f: _pair(FAMILY_NAMES.get(f, (f, f))) for f in FAMILIES},
        "roles": {r: _pair(ROLE_NAMES[r]) for r in ROLES},
        "locations": {loc: _pair(LOCATION_NAMES[loc]) for loc in READER_LOCATIONS},
        "aqi_levels": [
            {
                "level": level.number,
                "low": level.low,
                "high": min(level.high, 500),
                "name": {"zh": level.category_zh, "en": level.category_en},
                "colour": {"zh": level.color_zh, "en": level.color_en},
                "rgb": level.rgb,
            }
            for level in aqi.LEVELS
        ],
        "pollutants": {
            p: {"name": {"zh": n[0], "en": n[1]}, "unit": n[2]} for p, n in POLLUTANT_NAMES.items()
        },
        "limits": dict(aqi.LIMITS_CLASS_II),  # GB 3095-2012 class II, by pollutant_period
        # the ledger's columns as `hazwatch ledger` heads them (HJ 1259-2022)
        "ledger_columns": [{"key": k, "zh": zh, "en": en} for k, zh, en in ledger.COLUMNS],
        "ledger_summary_columns": [
            {"key": k, "zh": zh, "en": en} for k, zh, en in ledger.SUMMARY_COLUMNS
        ],
        "ledger_kinds": {
            k: {"zh": zh, "en": k.replace("_", " ")} for k, (_, zh) in ledger.KINDS.items()
        },
    }


def page_html(page: str, lang: str) -> str:
    """The shell of one page: the navigation, the language switch, the clock, the live state,
    and the page's own module; every text has its key for the switch (static/screen/i18n.js)."""
    zh, en = PAGES[page]
    title = zh if lang == "zh" else en
    nav = "".join(
        f'<a href="/screen/{name if name != "overview" else ""}" data-page="{name}" '
        f'data-i18n="page.{name}"{" aria-current=page" if name == page else ""}>'
        f"{escape(names[0] if lang == 'zh' else names[1])}</a>"
        for name, names in PAGES.items()
    )
    body_class = "wall dark" if page == "wall" else "officer"
    return f"""<!doctype html>
<html lang="{"zh-CN" if lang == "zh" else "en"}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · hazwatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/screen/screen.css">
<script src="/static/vendor/echarts/echarts.min.js"></script>
<script type="module" src="/static/screen/{page}.js"></script>
</head>
<body class="{body_class}" data-page="{page}" data-lang="{lang}">
<header class="bar">
  <span class="brand" data-i18n="brand">危险废物全过程监管</span>
  <nav>{nav}</nav>
  <span class="right">
    <span id="live" class="live" data-state="connecting" role="status" aria-live="polite"></span>
    <span id="clock" class="clock"></span>
    <button id="lang" type="button" class="lang" aria-label="language / 语言"></button>
  </span>
</header>
<div id="banner" class="banner" role="alert"></div>
<main id="main" data-page="{page}"><p class="loading" data-i18n="loading">加载中…</p></main>
</body>
</html>
"""


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/screen/", status_code=307)


@router.get("/screen", include_in_schema=False)
@router.get("/screen/", include_in_schema=False)
def overview_page(ctx: Ctx) -> HTMLResponse:
    return HTMLResponse(page_html("overview", ctx.lang))


def _page_route(page: str) -> None:
    def show(ctx: Ctx) -> HTMLResponse:
        return HTMLResponse(page_html(page, ctx.lang))

    show.__name__ = f"{page}_page"
    router.get(f"/screen/{page}", include_in_schema=False)(show)


for _page in PAGES:
    if _page != "overview":
        _page_route(_page)
