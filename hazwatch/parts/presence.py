"""The presence part: every registered device's last-seen time and last will (its store, built
once, owned here) and the processor that raises and clears device_offline over them.

hazwatch.app builds it, and tells it whether the consumer hears the broker; nothing else
imports this module.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.presence.processor import PresenceProcessor
from hazwatch.streams.presence.store import PresenceStore


class PresencePart:
    """device_offline for every family; silence is judged only while the broker is heard."""

    name = "presence"

    def __init__(self, ctx: PartContext) -> None:
        self.store = PresenceStore(ctx.db)
        self._listening: Callable[[], bool] = lambda: True
        self._processor = PresenceProcessor(
            ctx.alerts,
            RegistryContext(ctx.db),
            self.store,
            settings=ctx.settings.presence,
            listening=lambda: self._listening(),
        )

    def camera_offline(self, site: str, camera: str) -> int | None:
        """Since when a camera is device_offline, None if it is not (blind_read asks)."""
        return self._processor.offline_since(site, "camera", camera)

    def listen_to(self, listening: Callable[[], bool]) -> None:
        """Whether the consumer is connected to the broker now (set once it is built)."""
        self._listening = listening

    def processors(self) -> list[StreamProcessor]:
        return [self._processor]

    def routers(self) -> list[APIRouter]:
        return []

    def api_stores(self) -> dict[str, object]:
        return {}

    def workers(self) -> list[Worker]:
        return []
