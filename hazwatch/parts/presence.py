"""The presence part: every registered device's last-seen time and last will (its store, built
once, owned here) and the processor that raises and clears device_offline over them.

hazwatch.app builds it, and tells it whether the consumer hears the broker; nothing else
imports this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fastapi import APIRouter

from hazwatch.alerts.model import AUTO, AlertSink
from hazwatch.alerts.store import AlertConflict, AlertStore
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.streams.presence.processor import PresenceProcessor
from hazwatch.streams.presence.store import PresenceStore

log = logging.getLogger("hazwatch.presence")
# Rules device_offline replaced (#12): one rule for one condition. Their alerts still open in
# a store from before are resolved at start, saying why; device_offline opens again for a
# device still offline (its will is retained, its silence counts from the start).
RETIRED = ("camera_offline", "station_stale")
RETIRED_COMMENT = "device_offline (the presence part) now judges whether a device is offline"


def retire(alerts: AlertSink, now_ns: int) -> int:
    """Resolve the open and acknowledged alerts of RETIRED rules; how many it resolved."""
    if not isinstance(alerts, AlertStore):
        return 0
    done = 0
    for rule in RETIRED:
        for state in ("open", "acknowledged"):
            while found := alerts.list(rule=rule, state=state, limit=1000):
                for alert in found:
                    try:
                        alerts.resolve(
                            alert.alert_id, at_ns=now_ns, by=AUTO, comment=RETIRED_COMMENT
                        )
                        done += 1
                    except AlertConflict:
                        pass  # another worker starting resolved it first
    if done:
        log.info("presence: resolved %d alerts of retired rules (%s)", done, ", ".join(RETIRED))
    return done


class PresencePart:
    """device_offline for every family; silence is judged only while the broker is heard."""

    name = "presence"

    def __init__(self, ctx: PartContext) -> None:
        self.store = PresenceStore(ctx.db)
        retire(ctx.alerts, time.time_ns())
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
