"""Wiring of the air part: its stream processors, API routers and decode context.

hazwatch.app calls these; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from alerts.model import AlertSink
from devices.statedb import StateDB
from hazwatch.settings import Settings
from ingest.interfaces import StreamProcessor


def processors(settings: Settings, db: StateDB, alerts: AlertSink) -> list[StreamProcessor]:
    """Stream processors fed every ingested batch (built once per ingest worker)."""
    from streams.air_hourly import AirHourly

    return [AirHourly(db, alerts)]


def routers() -> list[APIRouter]:
    """API routers of this part, included by api.app."""
    from api.routes import air

    return [air.router]
