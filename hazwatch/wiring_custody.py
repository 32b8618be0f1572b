"""Wiring of the custody part: its stream processors, API routers and decode context.

hazwatch.app calls these; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from alerts.model import AlertSink
from devices.family import DecodeContext
from devices.registry import RegistryContext, activate
from devices.statedb import StateDB
from hazwatch.settings import Settings
from ingest.interfaces import StreamProcessor
from streams.custody import Tracker
from streams.custody_processor import CustodyProcessor
from streams.custody_store import CustodyStore

# One tracker and registry per state store: decode_context and processors share them, so
# batch_of() answers from the tracker's live EPC → batch map.
_SHARED: dict[str, tuple[RegistryContext, Tracker]] = {}


def _shared(db: StateDB) -> tuple[RegistryContext, Tracker]:
    found = _SHARED.get(db.dsn)
    if found is None:
        tracker = Tracker()
        registry = RegistryContext(db, batches=tracker.epc_batch)
        activate(registry)
        found = _SHARED[db.dsn] = (registry, tracker)
    return found


def processors(settings: Settings, db: StateDB, alerts: AlertSink) -> list[StreamProcessor]:
    """Stream processors fed every ingested batch (built once per ingest worker)."""
    registry, tracker = _shared(db)
    return [CustodyProcessor(tracker, registry, alerts, CustodyStore(db))]


def routers() -> list[APIRouter]:
    """API routers of this part, included by api.app."""
    from api.routes import custody

    return [custody.router]


def decode_context(settings: Settings, db: StateDB) -> DecodeContext:
    """What decoding asks of the device registry and custody state (reader locations, batches)."""
    return _shared(db)[0]
