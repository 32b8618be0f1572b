"""The composition root: builds stores, writer, pipeline, consumer, API from Settings and runs them.

Never put domain logic here; this only wires the parts and owns their start/stop order.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

import uvicorn

from hazwatch.alerts.model import Alert
from hazwatch.alerts.publish import alert_payload, alert_point, alert_topic
from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.base.statedb import StateDB
from hazwatch.ingest.consumer import ConsumerConfig, MqttConsumer
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.health import CounterRate, Thresholds, judge
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.ingest.pipeline import IngestPipeline
from hazwatch.ingest.spool import Spool
from hazwatch.ingest.writers import make_reader, make_writer
from hazwatch.parts import Part, PartContext, Worker
from hazwatch.parts.air import AirPart
from hazwatch.parts.alerts import AlertsPart
from hazwatch.parts.clocks import ClocksPart
from hazwatch.parts.custody import CustodyPart
from hazwatch.parts.hj212 import Hj212Part
from hazwatch.parts.notify import NotifyPart
from hazwatch.parts.presence import PresencePart
from hazwatch.parts.screen import ScreenPart
from hazwatch.parts.video import VideoPart
from hazwatch.pruning import Pruned, describe, prune_store
from hazwatch.settings import Settings, deadletter_limits

log = logging.getLogger("hazwatch.app")

# The parts the service is made of, in the order their processors see each batch: adding a
# part is its module and one entry here.
PARTS: tuple[Callable[[PartContext], Part], ...] = (
    AlertsPart,
    CustodyPart,
    AirPart,
    Hj212Part,
    VideoPart,
    ClocksPart,
    PresencePart,
    ScreenPart,
    NotifyPart,
)


def consumer_config(settings: Settings) -> ConsumerConfig:
    target = settings.mqtt
    return ConsumerConfig(
        host=target.host,
        port=target.port,
        client_id=settings.mqtt_client_id,
        subscription=settings.subscription,
        tls=target.tls,
        username=target.username,
        password=target.password,
        protocol=settings.mqtt_protocol,
        session_expiry_s=settings.mqtt_session_expiry_s,
        receive_maximum=settings.mqtt_receive_maximum,
        keepalive_s=settings.mqtt_keepalive_s,
        batch_max_messages=settings.message_batch_max,
        batch_max_wait_s=settings.message_batch_wait_ms / 1000,
        batch_workers=settings.message_batch_workers,
        max_payload_bytes=settings.max_payload_bytes,
        keep_payload_bytes=settings.deadletter_keep_kb * 1024,
    )


PRUNE_EVERY_S = 3600.0


def tune_gc() -> None:
    """Garbage collection for a service whose messages make short-lived objects by the million.

    CPython collects its youngest generation every 700 container allocations, and every 100th
    of those scans every object alive, including the ~10^5 the imports made. Freezing what
    start-up made takes those out of every later scan, and a larger first threshold collects
    less often; reference counting still frees almost everything the hot path makes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class HazwatchService:
    """One ingest worker: consumer → pipeline → stores, plus the API and periodic work."""

    def __init__(self, settings: Settings, *, with_api: bool = True) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = StateDB(settings.state_dsn)
        self.db.ping()
        # the one alert store: every part's rules raise into it, the alerts part serves it
        self.alerts = AlertStore(self.db)
        self.deadletters = DeadLetterStore(self.db, deadletter_limits(settings))
        self.writer = make_writer(settings)
        self.reader = make_reader(settings)
        context = PartContext(settings, self.db, self.alerts, self.reader)
        self.parts: list[Part] = [build(context) for build in PARTS]
        # background work of the parts (the notification sender), started after the consumer
        self.workers: list[Worker] = [w for part in self.parts for w in part.workers()]
        (custody,) = [part for part in self.parts if isinstance(part, CustodyPart)]
        self.decode_ctx = custody.decode_context  # reader locations, the tracker's live batches
        self._custody_ready = custody.ready  # "starting" until its open work is loaded
        (self.video,) = [part for part in self.parts if isinstance(part, VideoPart)]
        # device clocks, measured by the pipeline from every message (the clocks part's)
        (clocks,) = [part for part in self.parts if isinstance(part, ClocksPart)]
        custody.follow_clocks(clocks.estimator)  # what it took before an offset was known
        processors: list[StreamProcessor] = [p for part in self.parts for p in part.processors()]
        self.spool = Spool(settings.spool_dir, settings.spool_max_mb * 1024 * 1024)
        self.pipeline = IngestPipeline(
            ctx=self.decode_ctx,
            writer=self.writer,
            spool=self.spool,
            deadletters=self.deadletters,
            processors=processors,
            max_future_s=settings.max_future_s,
            max_payload_bytes=settings.max_payload_bytes,
            clocks=clocks.estimator,
        )
        self.consumer = MqttConsumer(
            consumer_config(settings),
            self.pipeline.handle,
            on_poison=self.pipeline.dead_letter_batch,
        )
        self.pipeline.publish = self.consumer.publish
        # silence is no device's fault while the consumer cannot hear the broker
        for part in self.parts:
            if isinstance(part, PresencePart):
                part.listen_to(self.consumer.connected.is_set)
                self.video.see_cameras_offline(part.camera_offline)  # for blind_read
        self.alerts.listeners.append(self._on_alert)
        self.with_api = with_api
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.api_port = settings.api_port
        self.message_rate = CounterRate()  # sampled by the periodic thread, for the screen
        self._stopping_api = threading.Event()  # the API's live streams end when it is set

    def _on_alert(self, alert: Alert) -> None:
        self.consumer.publish(alert_topic(alert), alert_payload(alert))
        self.pipeline.add_points([alert_point(alert)])

    def health_checks(self) -> dict[str, object]:
        def broker() -> None:
            if not self.consumer.connected.is_set():
                raise ConnectionError(self.consumer.last_error or "not connected yet")

        return {
            "broker": broker,
            "point_store": self.writer.ping,
            "state_store": self.db.ping,
            "custody": self._custody_ready,
        }

    def ingest_health(self) -> dict[str, object]:
        """The line's own state: is it moving, retrying, refusing a flood (ingest/health.py)."""
        cfg = self.settings
        oldest_s, retries = self.consumer.unacked()
        rate = self.pipeline.deadletter_rate.per_minute()
        store = self.deadletters.status()
        reasons = judge(
            oldest_unacked_s=oldest_s,
            batch_retries=retries,
            deadletters_per_min=rate,
            deadletter_store=store,
            thresholds=Thresholds(
                cfg.health_max_unacked_age_s,
                cfg.health_max_batch_retries,
                cfg.health_max_deadletters_per_min,
            ),
            lang=cfg.lang,
        )
        return {
            "reasons": reasons,
            "oldest_unacked_s": round(oldest_s, 3),
            "batch_retries": retries,
            "deadletters_per_min": round(rate, 1),
            "deadletter_store": store,
            "spool_segments": len(self.spool),
            "messages": self.pipeline.messages,
            "messages_per_s": round(self.message_rate.per_s(), 1),
            "deadlettered": self.pipeline.deadlettered,
        }

    def api_context(self) -> ApiContext:
        return ApiContext(
            db=self.db,
            reader=self.reader,
            data_dir=self.settings.data_dir,
            health_checks=self.health_checks(),  # type: ignore[arg-type]
            ingest_health=self.ingest_health,
            api_token=self.settings.api_token,
            lang=self.settings.lang,
            deadletters=self.deadletters,
            stopping=self._stopping_api,
            **{k: v for part in self.parts for k, v in part.api_stores().items()},  # type: ignore[arg-type]
        )

    # lifecycle
    def start(self) -> None:
        """API first (health answers "broker: not connected yet" until it is), then the rest:
        building the app is a few hundred ms of start-up that should not compete with the
        first batches for the interpreter."""
        if self.with_api:
            routers = [r for part in self.parts for r in part.routers()]
            app = create_app(self.api_context(), routers)
            config = uvicorn.Config(
                app,
                host=self.settings.api_host,
                port=self.settings.api_port,
                log_level="warning",
                access_log=False,
            )
            self._server = uvicorn.Server(config)
            self._spawn("hazwatch-api", self._server.run)
            deadline = time.monotonic() + 10
            while not self._server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._server.started and self._server.servers:
                sockets = self._server.servers[0].sockets
                if sockets:
                    self.api_port = sockets[0].getsockname()[1]
        tune_gc()
        self.consumer.start()
        self._spawn("hazwatch-periodic", self._periodic)
        for worker in self.workers:
            worker.start()

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _periodic(self) -> None:
        last_tick = 0.0
        last_prune = -PRUNE_EVERY_S
        last_store_prune = -float("inf")  # at start, then every [store] prune_every_h
        while not self._stop.wait(0.5):
            self.message_rate.sample(self.pipeline.messages)
            try:
                if len(self.spool):
                    self.pipeline.replay_spool()
                if time.monotonic() - last_tick >= 5.0:
                    last_tick = time.monotonic()
                    self.pipeline.tick()
                if time.monotonic() - last_prune >= PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    self.prune_snapshots()
                if time.monotonic() - last_store_prune >= self.settings.store.prune_every_h * 3600:
                    last_store_prune = time.monotonic()
                    self.prune_store()
            except Exception:
                log.exception("periodic work failed; trying again")

    def prune_snapshots(self) -> list[str]:
        """Snapshots past HAZWATCH_SNAPSHOT_KEEP_DAYS, unless an open alert cites them."""
        deleted = self.video.prune_evidence(self.alerts.open_evidence())
        if deleted:
            days = self.settings.snapshot_keep_days
            log.info("deleted %d snapshots older than %g days", len(deleted), days)
        return deleted

    def prune_store(self) -> Pruned:
        """The state store's prune run ([store], hazwatch/pruning.py), logged in one line."""
        (custody,) = [part for part in self.parts if isinstance(part, CustodyPart)]
        cfg = self.settings
        pruned = prune_store(
            self.db, cfg.store, cfg.data_dir, self.deadletters,
            closed_keep_h=cfg.custody.closed_keep_h, custody=custody.store, alerts=self.alerts,
        )  # fmt: skip
        log.info("state store: %s", describe(pruned, "en"))
        return pruned

    def close(self) -> None:
        """Stop in order: no new messages, last batch made durable and acked, then the rest."""
        self._stopping_api.set()  # screens' live streams say bye while the consumer drains
        self.consumer.close()
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=10)
        try:
            self.pipeline.tick()
        except Exception:
            log.exception("final tick failed")
        for worker in self.workers:  # what the last tick raised is in the outbox already
            try:
                worker.stop()
            except Exception:
                log.exception("stopping %s failed", type(worker).__name__)
        self.writer.close()
        self.db.close()

    def __enter__(self) -> HazwatchService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
