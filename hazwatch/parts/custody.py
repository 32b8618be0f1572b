"""The custody part: its tracker, registry and store (built once, owned here), its stream
processor, its API routes and the decode context the pipeline asks reader locations of.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import APIRouter

from hazwatch.devices.clock_offset import DeviceClocks
from hazwatch.devices.family import DecodeContext
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.parts import PartContext, Worker
from hazwatch.pruning import archive_path
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.store import CustodyStore

log = logging.getLogger(__name__)


class CustodyPart:
    """One tracker and registry per service: the decode context and the processor share them,
    so batch_of() answers from the tracker's live EPC → batch map."""

    name = "custody"

    def __init__(self, ctx: PartContext) -> None:
        self.tracker = Tracker()
        self.registry = RegistryContext(
            ctx.db,
            batches=self.tracker.epc_batch,
            accept_unregistered=ctx.settings.hj212.accept_unregistered,
        )
        # a late input for a pruned batch loads it back from its archived line
        self.store = CustodyStore(ctx.db, archive_path(ctx.settings.store, ctx.settings.data_dir))
        # the tracker is loaded beside ingest (`workers`): the other families are taken from
        # the first second, and /api/health says `starting` until it is ready
        self._processor = CustodyProcessor(
            self.tracker, self.registry, ctx.alerts, self.store, limits=ctx.settings.custody,
            defer_load=True,
        )  # fmt: skip
        self._loader = Loader(self._processor)

    def follow_clocks(self, clocks: DeviceClocks) -> None:
        """The devices' clocks the pipeline measures (the clocks part's): an offset taken over
        reads again what custody took from its device before (CustodyProcessor)."""
        self._processor.clocks = clocks

    @property
    def decode_context(self) -> DecodeContext:
        """What decoding asks of the device registry and custody state."""
        return self.registry

    def processors(self) -> list[StreamProcessor]:
        return [self._processor]

    def routers(self) -> list[APIRouter]:
        return routers()

    def api_stores(self) -> dict[str, object]:
        return {"custody": self.store}

    def workers(self) -> list[Worker]:
        return [self._loader]

    def ready(self) -> str | None:
        """A health check: "starting" until the open custody work is loaded."""
        return None if self._processor.ready.is_set() else "starting"


class Loader:
    """Loads the custody tracker's open work from the store in a thread of its own at start;
    a failure is logged and tried again (the first custody batch would load it too)."""

    def __init__(self, processor: CustodyProcessor) -> None:
        self._processor = processor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hazwatch-custody-load")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                started = time.monotonic()
                self._processor.load()
                log.info("custody: open work loaded in %.1f s", time.monotonic() - started)
                return
            except Exception:
                log.exception("custody: loading open work failed; trying again")
                self._stop.wait(5.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def routers() -> list[APIRouter]:
    """API routers of this part, included by hazwatch.api.app."""
    from hazwatch.api.routes import custody

    return [custody.router]
