"""`/api/feed`: the live event feed — custody events, alerts and dead letters as they are
stored — as JSON pages after a cursor, or as Server-Sent Events (`Accept: text/event-stream`).

Never keep events in memory between requests, nor rely on hearing them in this process: the
feed reads the state store after a cursor, so a screen attached to any worker sees what every
worker stored, and a reconnecting browser (its Last-Event-ID is the cursor) misses nothing the
stores still hold.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from hazwatch.api.deps import ApiContext, Ctx
from hazwatch.api.params import invalid
from hazwatch.devices.timeparse import format_ts

router = APIRouter(tags=["feed"])

POLL_S = 1.0  # how often a stream asks the stores for what is new
PING_S = 5.0  # a stream with nothing new says so this often (the page's watchdog waits 20 s)
RETRY_MS = 3000  # what a browser waits before it reconnects a dropped stream
CURSOR = re.compile(r"^c([0-9]{1,18})-d([0-9]{1,18})-a([0-9]{1,18})$")
CURSOR_PATTERN = CURSOR.pattern
EVENT = {
    "type": "object",
    "required": ["kind", "key", "ts", "ts_ms"],
    "properties": {
        "kind": {"enum": ["custody", "alert", "deadletter"]},
        "key": {"type": "string"},
        "ts": {"type": "string"},
        "ts_ms": {"type": "integer"},
        "site": {"type": "string"},
    },
}
PAGE = {
    "type": "object",
    "required": ["cursor", "events"],
    "properties": {
        "cursor": {"type": "string", "pattern": CURSOR_PATTERN},
        "events": {"type": "array", "items": EVENT},
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Events after the cursor, oldest first, and the cursor after them; with "
        "`Accept: text/event-stream`, a stream of `feed` messages (the same page, its cursor "
        "as the message id), `ping` messages when nothing is new, ending after `max_s`.",
        "content": {
            "application/json": {"schema": PAGE},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
}
After = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        max_length=64,
        description="the cursor of the last page seen; none: the newest `limit` events",
    ),
]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader of the feed is: the custody save, the dead letter and the alert outbox
    row it saw last."""

    custody: int = 0
    deadletter: int = 0
    alert: int = 0

    def text(self) -> str:
        return f"c{self.custody}-d{self.deadletter}-a{self.alert}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        found = CURSOR.match(text)
        if found is None:
            return None
        return cls(int(found[1]), int(found[2]), int(found[3]))


def _ms(ns: int) -> int:
    return ns // 1_000_000


def _custody(ctx: ApiContext, cursor: Cursor | None, limit: int) -> tuple[list[Any], int]:
    store = ctx.custody
    if store is None:
        return [], 0
    if cursor is None:
        rows, head = store.latest_events(limit), store.clock()
    else:
        rows = store.events_after(cursor.custody, limit)
        if len(rows) == limit and rows[0][0] != rows[-1][0]:
            # a full page may end inside one save: its rest comes with the next page
            rows = [r for r in rows if r[0] != rows[-1][0]]
        head = rows[-1][0] if rows else cursor.custody
    events = [
        {
            "kind": "custody",
            "key": e.event_id,  # an event saved again (its pass went on) is the same item
            "seq": seq,
            "ts": format_ts(e.ts_ns),
            "ts_ms": _ms(e.ts_ns),
            "site": e.site,
            "batch": e.batch,
            "epc": e.epc,
            "stage": e.stage,
            "device": e.device,
            "net_kg": e.net_kg,
        }
        for seq, e in rows
    ]
    return events, head


def _deadletters(ctx: ApiContext, cursor: Cursor | None, limit: int) -> tuple[list[Any], int]:
    store = ctx.deadletters
    if store is None:
        return [], 0
    if cursor is None:
        letters = list(reversed(store.latest(limit)))
        head = store.last_id()
    else:
        letters = store.after(cursor.deadletter, limit)
        head = letters[-1].id if letters and letters[-1].id is not None else cursor.deadletter
    events = [
        {
            "kind": "deadletter",
            "key": f"d{letter.id}",
            "ts": format_ts(letter.received_ns),
            "ts_ms": _ms(letter.received_ns),
            "topic": letter.topic,
            "reason": letter.reason,
            "message": letter.message,
        }
        for letter in letters
    ]
    return events, max(head, cursor.deadletter if cursor else 0)


def _alerts(ctx: ApiContext, cursor: Cursor | None, limit: int) -> tuple[list[Any], int]:
    """Alert changes people are told of (opened, acknowledged, resolved, escalated): the alert
    store's outbox rows after the cursor's id, which grow in commit order across workers."""
    store = ctx.alerts
    if cursor is None:
        head = store.outbox_head()
        items = store.outbox_after(max(0, head - limit), limit)
    else:
        items = store.outbox_after(cursor.alert, limit)
        head = items[-1].id if items else cursor.alert
    events = [
        {
            "kind": "alert",
            "key": item.key,
            "ts": format_ts(item.at_ns),
            "ts_ms": _ms(item.at_ns),
            "site": item.alert.site,
            "alert_id": item.alert_id,
            "change": item.change.value,
            "actor": item.actor,
            "rule": item.alert.rule,
            "severity": item.alert.severity.value,
            "state": item.alert.state.value,
            "subject": item.alert.subject,
            "message": item.alert.message,
        }
        for item in items
    ]
    return events, head


def read_page(ctx: ApiContext, cursor: Cursor | None, limit: int) -> dict[str, Any]:
    """The events after `cursor` (None: the newest `limit` of each kind), oldest first."""
    custody, c = _custody(ctx, cursor, limit)
    letters, d = _deadletters(ctx, cursor, limit)
    alerts, a = _alerts(ctx, cursor, limit)
    events = sorted([*custody, *letters, *alerts], key=lambda e: (e["ts_ms"], e["key"]))
    if cursor is None:
        events = events[-limit:]
    return {"cursor": Cursor(c, d, a).text(), "events": events}


def _frame(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def _stream(
    ctx: ApiContext, request: Request, cursor: Cursor | None, limit: int, max_s: float
) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    page = await run_in_threadpool(read_page, ctx, cursor, limit)
    yield _frame("feed", page, page["cursor"])
    started = last = time.monotonic()
    while time.monotonic() - started < max_s and not ctx.stopping.is_set():
        await asyncio.sleep(POLL_S)
        if await request.is_disconnected():
            return
        if ctx.stopping.is_set():  # the service stops: the browser reconnects to its next one
            break
        try:
            page = await run_in_threadpool(read_page, ctx, Cursor.parse(page["cursor"]), limit)
        except Exception as exc:  # a store down: say so, and keep the stream
            yield _frame("trouble", {"message": str(exc), "now_ms": time.time_ns() // 10**6})
            last = time.monotonic()
            continue
        if page["events"]:
            yield _frame("feed", page, page["cursor"])
            last = time.monotonic()
        elif time.monotonic() - last >= PING_S:
            yield _frame("ping", {"now_ms": time.time_ns() // 1_000_000}, page["cursor"])
            last = time.monotonic()
    yield _frame("bye", {"reconnect_ms": RETRY_MS}, page["cursor"])


@router.get("/api/feed", response_model=None, responses=RESPONSES)
async def feed(
    request: Request,
    ctx: Ctx,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=500, description="events of each kind at most")] = 50,
    max_s: Annotated[
        float, Query(ge=1, le=3600, description="a stream ends after this long (it reconnects)")
    ] = 600,
    last_event_id: Annotated[
        str | None, Header(max_length=64, description="a reconnecting stream's cursor")
    ] = None,
) -> Response:
    """The live feed: custody events, alerts and dead letters stored after `after`."""
    cursor = Cursor.parse(after) if after is not None else None
    if last_event_id:
        cursor = Cursor.parse(last_event_id)
        if cursor is None:
            raise invalid("header", "last-event-id", last_event_id, "not a feed cursor")
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(ctx, request, cursor, limit, max_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    page = await run_in_threadpool(read_page, ctx, cursor, limit)
    return JSONResponse(page)
