"""Wiring of the custody part: its stream processors, API routers and decode context.

hazwatch.app calls these; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from alerts.model import AlertSink
from devices.family import DecodeContext, NoRegistry
from devices.statedb import StateDB
from hazwatch.settings import Settings
from ingest.interfaces import StreamProcessor


def processors(settings: Settings, db: StateDB, alerts: AlertSink) -> list[StreamProcessor]:
    """Stream processors fed every ingested batch (built once per ingest worker)."""
    return []


def routers() -> list[APIRouter]:
    """API routers of this part, included by api.app."""
    return []


def decode_context(settings: Settings, db: StateDB) -> DecodeContext:
    """What decoding asks of the device registry and custody state (reader locations, batches)."""
    return NoRegistry()
