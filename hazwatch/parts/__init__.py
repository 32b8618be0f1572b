"""The Part interface: what a part (custody, air, video …) gives the service, and the stores it
owns, built once by the composition root (hazwatch.app) and handed in.

Never keep a store or a registry in a module-level cache here or in a part: the service owns
each part, and each part owns its stores (issue #10, item 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter

from hazwatch.alerts.model import AlertSink
from hazwatch.base.statedb import StateDB
from hazwatch.ingest.interfaces import PointReader, StreamProcessor
from hazwatch.settings import Settings


@dataclass(frozen=True, slots=True)
class PartContext:
    """What the composition root hands every part when it builds it."""

    settings: Settings
    db: StateDB
    alerts: AlertSink
    reader: PointReader | None = None  # the point store's reader (video confirms gaps in it)


class Worker(Protocol):
    """Work a part runs in the background beside ingest (the notification sender): the
    service starts it after the consumer and stops it before the stores close; `stop` returns
    once its threads are done."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Part(Protocol):
    """One capability plugged into the service: its stream processors, its API routes and its
    background workers.

    `processors()` are fed every ingested batch; `routers()` are included in the API, whose
    routes reach the part's stores through the typed ApiContext the service fills from
    `api_stores()`; `workers()` are started and stopped with the service.
    """

    name: str

    def processors(self) -> list[StreamProcessor]: ...

    def routers(self) -> list[APIRouter]: ...

    def api_stores(self) -> dict[str, object]:
        """ApiContext fields this part fills (e.g. {"custody": its CustodyStore})."""
        ...

    def workers(self) -> list[Worker]:
        """Background work started and stopped with the service ([] for most parts)."""
        ...
