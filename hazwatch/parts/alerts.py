"""The alerts part: the service's one AlertStore (built by hazwatch.app, handed in as the
PartContext's `alerts`), given to the API as ApiContext.alerts, and the `/api/alerts` routes.

It has no stream processor: the other parts' rules raise alerts into the same store.
hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from fastapi import APIRouter

from hazwatch.alerts.store import AlertStore
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import alerts

    return [alerts.router]


class AlertsPart:
    """The alert lifecycle's API over the store every rule raises into."""

    name = "alerts"

    def __init__(self, ctx: PartContext) -> None:
        if not isinstance(ctx.alerts, AlertStore):
            # a part never builds a second store: the lifecycle lives in the service's one
            raise TypeError(
                "the alerts part needs the service's AlertStore as PartContext.alerts, "
                f"got {type(ctx.alerts).__name__}"
            )
        self.store = ctx.alerts

    def processors(self) -> list[StreamProcessor]:
        return []

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"alerts": self.store}

    def workers(self) -> list[Worker]:
        return []
