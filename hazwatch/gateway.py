"""The HJ 212 gateway, composed from Settings: its listener, MQTT publisher, dead-letter store,
station lookup and limits, run on an event loop of its own (start/close, or `with`).

Never ack a station's packet before the broker has it (Hj212Gateway waits for the QoS 1 ack);
never lose a dead letter to a state store that is only busy: it is retried before given up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import orjson

from hazwatch.alerts.model import AlertSignal
from hazwatch.alerts.store import AlertStore
from hazwatch.base.retry import Backoff, RetryPolicy
from hazwatch.base.statedb import StateDB
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.devices.station_secrets import OPEN, KeyIssue, KeyRotations, StationAccess
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.failures import is_transient
from hazwatch.ingest.hj212_gateway import GatewayDeadLetter, GatewayLimits, Hj212Gateway
from hazwatch.settings import Settings, deadletter_limits
from hazwatch.streams.hj212.rules import RefusedPeers
from hazwatch.streams.hj212.settings import LinkSettings

log = logging.getLogger("hazwatch.hj212_gateway")

# A dead letter the state store cannot take now is retried this long, holding up only the
# connection of the station that sent it.
DEADLETTER_RETRY = RetryPolicy(max_s=30.0, first_delay_s=0.1, max_delay_s=2.0)
# A station whose clock (its QN) is further than this from ours is sent CN 1012 with the time.
CLOCK_DRIFT_S = 120.0


def gateway_limits(settings: Settings) -> GatewayLimits:
    return GatewayLimits(
        max_bad_frames=settings.gateway_max_bad_frames,
        bad_window_s=settings.gateway_bad_window_s,
        keep_bytes=settings.deadletter_keep_kb * 1024,
        clock_drift_s=CLOCK_DRIFT_S,
    )


class GatewayService:
    """`hazwatch hj212-gateway`: accepts stations on `host:port` and publishes their packets on
    hw/{site}/air/{station}/hj212. A station's MN is looked up in `stations` (MN → (site,
    station)) first, then in the registry file given, else in the stored registry. A station
    given in `stations` is open (no PW asked: a lab's); a registry's station must present its
    PW unless the registry marks it open. A peer refused again and again raises
    hj212_auth_refused in the state store's alerts. A data logger's hardware serial (CN 1001)
    is given the MN the registry maps it to (CN 1002); the keys `hazwatch hj212 rotate-key`
    issues are sent (CN 1014) and in force once the station acknowledges them."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "0.0.0.0",
        port: int = 9212,
        registry_file: Path | None = None,
        stations: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.host, self._listen_port = host, port
        self.db = StateDB(settings.state_dsn)
        link = settings.hj212
        if link.accept_unregistered:
            log.warning(
                "[hj212] accept_unregistered is on: while no registry lists a station, HJ 212 "
                "data of any station is taken without a PW (a lab or a demo only)"
            )
        try:
            self.deadletters = DeadLetterStore(self.db, deadletter_limits(settings))
            rotations = KeyRotations(self.db)
            if registry_file is not None:
                self.registry = RegistryContext(
                    None,
                    load_file(registry_file),
                    accept_unregistered=link.accept_unregistered,
                    keys=rotations,
                )
            else:
                self.registry = RegistryContext(
                    self.db, accept_unregistered=link.accept_unregistered, keys=rotations
                )
        except BaseException:
            self.db.close()
            raise
        self.rotations = rotations
        self.stations = dict(stations or {})
        self.refused = RefusedPeers(link)
        self.alerts = AlertStore(self.db)
        self.gateway = Hj212Gateway(
            self.lookup,
            self._publish,
            self._dead_letter,
            gateway_limits(settings),
            access=self.access,
            on_refused=self._on_refused,
            by_serial=self.by_serial,
            keys=GatewayKeys(self.rotations, self._file_key, self.registry.station_zone_h, link),
        )
        self.gateway.zone_of = self.registry.station_zone_h
        self._client: aiomqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None

    def lookup(self, mn: str) -> tuple[str, str] | None:
        return self.stations.get(mn) or self.registry.station_by_mn(mn)

    def access(self, site: str, station: str) -> StationAccess:
        if (site, station) in self.stations.values():
            return OPEN
        return self.registry.station_access(site, station)

    def by_serial(self, serial: str) -> tuple[str, str, str] | None:
        """(site, station, MN) of the registry's station whose data logger has this serial."""
        where = self.registry.station_by_serial(serial)
        mn = self.registry.station_mn(*where) if where is not None else None
        return None if where is None or mn is None else (where[0], where[1], mn)

    def _file_key(self, site: str, station: str) -> bytes | None:
        secret = self.registry.current.secrets.get((site, station))
        return secret.sm4_key if secret is not None else None

    async def _on_refused(self, peer: str, reason: str, mn: str, at_ns: int) -> None:
        signal: AlertSignal | None = self.refused.refused(peer, reason, mn, at_ns)
        if signal is not None:
            try:
                await asyncio.to_thread(self.alerts.raise_alert, signal)
            except Exception:  # the refusal is a dead letter already; the alert is extra
                log.exception("could not raise %s for %s", signal.rule, peer)

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one chosen for port 0)."""
        return self.gateway.port

    # lifecycle
    def start(self) -> None:
        """Connect to the broker, then listen; returns once stations can connect, or raises
        why they cannot (the broker refused, the port is taken)."""
        self._thread = threading.Thread(target=self._run, name="hj212-gateway", daemon=True)
        self._thread.start()
        try:
            self._started.result()
        except BaseException:
            self.close()
            raise

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            else:
                log.exception("the HJ 212 gateway stopped")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        target = self.settings.mqtt
        self._client = aiomqtt.Client(
            target.host,
            target.port,
            identifier=f"{self.settings.mqtt_client_id}-hj212-gateway",
            username=target.username,
            password=target.password,
            tls_context=ssl.create_default_context() if target.tls else None,
            max_queued_outgoing_messages=None,
        )
        async with self._client, self.gateway:
            await self.gateway.start(self.host, self._listen_port)
            self._started.set_result(None)
            await self._stop.wait()
            log.info("stopping: %s", self.gateway.stats)

    def close(self) -> None:
        """Stop listening and end the connections, leave the broker, close the state store."""
        if self._thread is not None:
            if self._loop is not None and self._stop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has ended (start failed)
                    self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
            self._thread = None
        self.db.close()

    def __enter__(self) -> GatewayService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # what the gateway is wired to
    async def _publish(self, topic: str, payload: bytes) -> None:
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1)

    async def _dead_letter(self, letter: GatewayDeadLetter) -> None:
        backoff = Backoff(DEADLETTER_RETRY)
        while True:
            try:
                kept = await asyncio.to_thread(self.deadletters.add_many, [letter])
                break
            except Exception as exc:
                pause = backoff.failed()
                if not is_transient(exc) or backoff.exhausted:
                    raise
                await asyncio.sleep(pause)
        # Published only when kept: past its peer's burst a letter is only counted.
        for refused in kept:
            await self._publish(refused.mqtt_topic(), orjson.dumps(refused.to_json()))


class GatewayKeys:
    """The gateway's side of CN 1014 over the state store's key rotations (in a thread each:
    the store is blocking)."""

    def __init__(
        self,
        rotations: KeyRotations,
        file_key: Callable[[str, str], bytes | None],
        zone_of: Callable[[str, str], float],
        settings: LinkSettings,
    ) -> None:
        self.rotations = rotations
        self.file_key = file_key
        self.zone_of = zone_of
        self.settings = settings

    async def due(self, site: str, station: str, now_ns: int) -> KeyIssue | None:
        return await asyncio.to_thread(
            self.rotations.due,
            site,
            station,
            now_ns,
            self.file_key(site, station),
            self.settings.key_resend_s,
            self.settings.key_max_sends,
        )

    async def answered(
        self, site: str, station: str, qn: str, ok: bool, note: str, now_ns: int
    ) -> bool:
        return await asyncio.to_thread(self.rotations.finish, site, station, qn, ok, now_ns, note)

    async def requested(self, site: str, station: str, now_ns: int) -> None:
        def issue() -> None:
            if self.rotations.waiting(site, station, self.file_key(site, station)):
                return  # one is waiting already (sent again when due)
            try:
                self.rotations.issue(
                    site, station, self.file_key(site, station), now_ns, self.zone_of(site, station)
                )
            except Exception:
                log.exception("station %s/%s asked for a new SM4 key: none issued", site, station)

        await asyncio.to_thread(issue)
