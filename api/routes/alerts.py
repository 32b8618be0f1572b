"""`/api/alerts`: the alert list (filters, newest first, total), one alert with its history and
its evidence link, and officers' acknowledgements and resolutions (token required). Each alert
carries its finding in Chinese and English (`detail_zh`, `detail_en`: the messages' words).

Only HTTP here: the alert store (alerts/store.py) holds the lifecycle and refuses what cannot
be done (AlertNotFound → 404, AlertConflict → 409).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any, Literal, TypeAlias

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field, field_validator

from hazwatch.alerts.model import AUTO, Alert, HistoryEntry
from hazwatch.alerts.store import AlertConflict, AlertNotFound, AlertStore
from hazwatch.alerts.text import detail_of
from hazwatch.api.deps import ApiContext, Ctx, require_token
from hazwatch.api.params import (
    BY,
    IDENT,
    IDENT_MAX,
    SEGMENT,
    SEGMENT_MAX,
    errors,
    instant_check,
    instant_ns,
    instant_query,
    invalid,
    signer,
)
from hazwatch.devices.camera import check_snapshot_name
from hazwatch.devices.families import FAMILIES
from hazwatch.devices.timeparse import format_ts
from hazwatch.streams.catalog import rule_details, rule_specs

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

NS_PER_H = 3600 * 1_000_000_000
NS_PER_MS = 1_000_000
# A rule id as the parts declare them (alerts/rules.py RuleSpec.id): snake case, ASCII.
RULE = r"^[a-z][a-z0-9_]{0,63}$"

AlertId = Annotated[str, Path(pattern=IDENT, max_length=IDENT_MAX, description="the alert id")]
StateName = Literal["open", "acknowledged", "resolved"]
SeverityName = Literal["info", "warning", "major", "critical"]
SiteOf = Annotated[str, Query(pattern=SEGMENT, max_length=SEGMENT_MAX, description="a site id")]
RuleOf = Annotated[str, Query(pattern=RULE, max_length=64, description="a rule id")]
Since: TypeAlias = Annotated[str | None, instant_query("since"), instant_check("since")]
Until: TypeAlias = Annotated[str | None, instant_query("until"), instant_check("until")]


class Decision(BaseModel):
    """The body of an acknowledgement or a resolution: who, and why."""

    by: str = Field(min_length=1, max_length=64, pattern=BY, description="the officer")
    comment: str | None = Field(default=None, max_length=1000)

    @field_validator("by")
    @classmethod
    def _a_person(cls, value: str) -> str:
        return signer(value, AUTO, "the service's own name (auto-resolve)")


class Evidence(BaseModel):
    """Where the evidence of an alert is served: a snapshot, a batch trace, an hourly series,
    the device as the registry and its last status show it, or the device's measured clock."""

    kind: Literal["snapshot", "batch_trace", "air_hourly", "device", "device_clock"]
    url: str


class AlertOut(BaseModel):
    alert_id: str
    rule: str
    subject: str
    severity: SeverityName
    message: str = Field(description="the rule's own words")
    detail_zh: str = Field(description="the finding in Chinese (what the messages say)")
    detail_en: str = Field(description="the finding in English")
    site: str
    state: StateName
    opened_ns: int
    updated_ns: int
    opened: str = Field(description="opened_ns as RFC 3339 UTC")
    updated: str = Field(description="updated_ns as RFC 3339 UTC")
    count: int
    evidence: str | None
    details: dict[str, Any]
    acknowledged_by: str | None
    resolved_ns: int | None
    resolved_by: str | None
    recurs: str | None = Field(description="the alert of the same rule and subject before")
    escalated_ns: int | None
    last_change: str


class HistoryOut(BaseModel):
    seq: int
    at_ns: int
    at: str = Field(description="at_ns as RFC 3339 UTC")
    change: str
    actor: str = Field(description="`auto`, a rule id, or the person")
    comment: str | None
    details: dict[str, Any]


class AlertDetail(AlertOut):
    history: list[HistoryOut]
    evidence_link: Evidence | None


class AlertPage(BaseModel):
    total: int = Field(description="alerts matching the filters, without limit and offset")
    limit: int
    offset: int
    alerts: list[AlertOut]


def _store(ctx: ApiContext) -> AlertStore:
    return ctx.alerts


def _out(alert: Alert) -> dict[str, Any]:
    doc = alert.to_document()
    doc["opened"] = format_ts(alert.opened_ns)
    doc["updated"] = format_ts(alert.updated_ns)
    said = detail_of(alert, rule_details())
    doc["detail_zh"], doc["detail_en"] = said.zh, said.en
    return doc


def _history(entry: HistoryEntry) -> dict[str, Any]:
    doc = entry.to_document()
    del doc["alert_id"]
    doc["at"] = format_ts(entry.at_ns)
    return doc


def evidence_link(alert: Alert) -> dict[str, str] | None:
    """The route that serves what the alert is about, or None when none does.

    A snapshot the evidence names (video rules) → `/api/snapshots/{name}`; a custody rule
    about a batch → `/api/batches/{batch}/trace`; an air rule, and a station's own mean that
    differs from hazwatch's (`station_mean_mismatch`) → the station's hourly means from a day
    before the alert to the hour after it (`/api/air/{station}/hourly`); a device gone offline
    → its row in `/api/devices` (site and family); a skewed clock → the clock measured
    (`/api/devices/{site}/{family}/{device}/clock`). An unknown tag (no batch holds it) and a
    refused HJ 212 peer have nothing served to point at: their details say what was seen.
    """
    if alert.evidence:
        try:
            name = check_snapshot_name(alert.evidence)
            return {"kind": "snapshot", "url": f"/api/snapshots/{name}"}
        except ValueError:
            pass
    spec = rule_specs().get(alert.rule)  # custody's batch trace, air's hourly series
    if spec is None:
        return None
    if spec.part == "custody" and spec.subject == "batch" and _fits(IDENT, alert.subject):
        return {"kind": "batch_trace", "url": f"/api/batches/{alert.subject}/trace"}
    parts = alert.subject.split("/")
    station = (
        parts[1]
        if spec.part == "air" and len(parts) >= 2
        else parts[0]
        if alert.rule == "station_mean_mismatch" and len(parts) == 2
        else None
    )
    if station is not None and _fits(SEGMENT, station):
        hour = alert.details.get("hour_ns")
        at_ns = hour if isinstance(hour, int) else alert.opened_ns
        start = (at_ns - 24 * NS_PER_H) // NS_PER_MS
        end = (at_ns + 2 * NS_PER_H) // NS_PER_MS
        url = f"/api/air/{station}/hourly?from={start}&to={end}"
        return {"kind": "air_hourly", "url": url}
    if spec.subject == "site/family/device" and len(parts) == 3:
        site, family, device = parts
        if family in FAMILIES and _fits(SEGMENT, site) and _fits(SEGMENT, device):
            if alert.rule == "clock_skew":
                url = f"/api/devices/{site}/{family}/{device}/clock"
                return {"kind": "device_clock", "url": url}
            return {"kind": "device", "url": f"/api/devices?site={site}&family={family}"}
    return None


def _fits(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def _detail(store: AlertStore, alert: Alert) -> dict[str, Any]:
    doc = _out(alert)
    doc["history"] = [_history(h) for h in store.history(alert.alert_id)]
    doc["evidence_link"] = evidence_link(alert)
    return doc


@router.get("")
def alert_list(
    ctx: Ctx,
    state: StateName | None = None,
    site: SiteOf | None = None,
    severity: SeverityName | None = None,
    rule: RuleOf | None = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AlertPage:
    """Alerts opened in [since, until), newest first; `total` counts every match."""
    since_ns = instant_ns(since, "since") if since is not None else None
    until_ns = instant_ns(until, "until") if until is not None else None
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise invalid("query", "until", until, "until must be after since")
    filters: dict[str, Any] = {
        "state": state,
        "site": site,
        "severity": severity,
        "rule": rule,
        "since_ns": since_ns,
        "until_ns": until_ns,
    }
    store = _store(ctx)
    alerts = store.list(**filters, limit=limit, offset=offset)
    return AlertPage.model_validate(
        {
            "total": store.count(**filters),
            "limit": limit,
            "offset": offset,
            "alerts": [_out(a) for a in alerts],
        }
    )


@router.get("/{alert_id}", responses=errors(404))
def alert_detail(alert_id: AlertId, ctx: Ctx) -> AlertDetail:
    """One alert, its history (seq order) and where its evidence is served."""
    store = _store(ctx)
    try:
        alert = store.get(alert_id)
    except AlertNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return AlertDetail.model_validate(_detail(store, alert))


def _decide(ctx: ApiContext, alert_id: str, body: Decision, how: str) -> AlertDetail:
    store = _store(ctx)
    change = store.acknowledge if how == "ack" else store.resolve
    try:
        alert = change(alert_id, at_ns=time.time_ns(), by=body.by, comment=body.comment)
    except AlertNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except AlertConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return AlertDetail.model_validate(_detail(store, alert))


@router.post(
    "/{alert_id}/ack",
    dependencies=[Depends(require_token)],
    responses=errors(400, 401, 404, 409),
)
def acknowledge(alert_id: AlertId, body: Decision, ctx: Ctx) -> AlertDetail:
    """An open alert taken by `by` (409 when it is acknowledged or resolved already)."""
    return _decide(ctx, alert_id, body, "ack")


@router.post(
    "/{alert_id}/resolve",
    dependencies=[Depends(require_token)],
    responses=errors(400, 401, 404, 409),
)
def resolve(alert_id: AlertId, body: Decision, ctx: Ctx) -> AlertDetail:
    """An open or acknowledged alert closed by `by` (409 when it is resolved already)."""
    return _decide(ctx, alert_id, body, "resolve")
