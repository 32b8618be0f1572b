"""The video part: its stream processor (the video rules, confirming in the point store), its
evidence store (the snapshots camera agents upload) and that store's API routes.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter

from hazwatch.alerts.model import AlertSink
from hazwatch.base.statedb import StateDB
from hazwatch.ingest.interfaces import PointReader, StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.settings import Settings
from hazwatch.streams.video.store import EvidenceStore, snapshot_dir


def watched_readers_from(db: StateDB) -> Callable[[str, str], list[str]]:
    """(site, camera) -> the RFID readers at the door the camera sees, from the stored registry."""
    from hazwatch.devices.registry import RegistryContext

    registry = RegistryContext(db)

    def watched(site: str, camera: str) -> list[str]:
        entry = registry.camera(site, camera)
        return list(entry.watches) if entry else []

    return watched


def door_cameras_from(db: StateDB) -> Callable[[str, str], tuple[str | None, tuple[str, ...]]]:
    """(site, reader) -> the reader's location kind and the cameras watching it (blind_read),
    from the stored registry."""
    from hazwatch.devices.registry import RegistryContext

    registry = RegistryContext(db)

    def door(site: str, reader: str) -> tuple[str | None, tuple[str, ...]]:
        return registry.reader_location(site, reader), registry.cameras_watching(site, reader)

    return door


def processors(
    settings: Settings, db: StateDB, alerts: AlertSink, reader: PointReader | None = None
) -> list[StreamProcessor]:
    """Stream processors fed every ingested batch (built once per ingest worker).

    Frame gaps and door motion are confirmed in the shared point store (other workers on the
    shared subscription store what this one never sees): `reader`, or one made from settings.
    """
    from hazwatch.ingest.writers import make_reader
    from hazwatch.streams.video.processor import VideoProcessor

    return [
        VideoProcessor(
            alerts,
            settings=settings.video,
            watched_readers=watched_readers_from(db),
            reader=reader if reader is not None else make_reader(settings),
            door_cameras=door_cameras_from(db),
            camera_silent_s=settings.presence.camera_silent_s,
        )
    ]


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import snapshots

    return [snapshots.router]


class VideoPart:
    """The video rules' processor and the evidence store (built once, owned here), and the
    evidence snapshots' routes."""

    name = "video"

    def __init__(self, ctx: PartContext) -> None:
        self._processors = processors(ctx.settings, ctx.db, ctx.alerts, ctx.reader)
        self.evidence = EvidenceStore(snapshot_dir(ctx.settings.data_dir))
        self._keep_days = ctx.settings.snapshot_keep_days

    def processors(self) -> list[StreamProcessor]:
        return list(self._processors)

    def see_cameras_offline(self, known_offline: Callable[[str, str], int | None]) -> None:
        """Since when a camera is device_offline (the presence part's), for blind_read: one
        answer on every worker and across restarts."""
        from hazwatch.streams.video.processor import VideoProcessor

        for processor in self._processors:
            if isinstance(processor, VideoProcessor):
                processor.rules.known_offline = known_offline

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"evidence": self.evidence}

    def workers(self) -> list[Worker]:
        return []

    def prune_evidence(self, cited: set[str]) -> list[str]:
        """Delete snapshots past HAZWATCH_SNAPSHOT_KEEP_DAYS, except those named in `cited`
        (the evidence of alerts still open or acknowledged); returns the names deleted."""
        return self.evidence.prune(self._keep_days * 86400, time.time(), cited)
