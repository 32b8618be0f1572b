"""A simulated site: N devices of every family, each its own MQTT client, with ground truth.

Never count a message as acked before its PUBACK, and never leave a fault out of the report.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiomqtt

from hazwatch.base.errors import HazwatchError
from hazwatch.simulators.clocks import DeviceClock
from hazwatch.simulators.faults import FaultPlan, InjectedFault, inject
from hazwatch.simulators.mqtt import device_client, status_topic
from hazwatch.simulators.payloads import (
    FAMILIES,
    DeviceGenerator,
    Message,
    ReaderField,
    device_ids,
)

if TYPE_CHECKING:
    from hazwatch.simulators.anomalies import DeviceAnomaly

# progress(fraction done in [0, 1], one line saying where it is)
Progress = Callable[[float, str], None]
MAX_ERRORS_KEPT = 20


class SimulationError(HazwatchError):
    """A simulation cannot run (broker unreachable, bad configuration)."""


def no_progress(fraction: float, text: str) -> None:
    """A progress callback that shows nothing."""


@dataclass(frozen=True)
class FleetConfig:
    """What to simulate. `rate` is generated messages per second for the whole fleet (0: as fast
    as possible); the run ends after `count` messages in total when given, else `duration_s`."""

    site: str = "sim-01"
    devices: int = 1  # per family
    families: tuple[str, ...] = FAMILIES
    rate: float = 100.0
    duration_s: float | None = 10.0
    count: int | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 0
    window: int = 100  # publishes in flight per connection (one asyncio.gather each)
    keep_messages: bool = True  # False for long benchmarks: counts only, no ground-truth lists
    announce_offline: bool = True  # clean stop publishes a retained {"online": false, "ts": ...}
    clock_ns: Callable[[], int] = time.time_ns
    # device id → its clock (fast, slow, drifting, rebooting), counted from the run's start;
    # a device not named keeps true time
    clocks: Mapping[str, DeviceClock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError(f"devices per family must be at least 1, got {self.devices}")
        if not self.families:
            raise ValueError("no device families chosen")
        for family in self.families:
            if family not in FAMILIES:
                raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
        if self.rate < 0:
            raise ValueError(
                f"rate must be ≥ 0 messages/s (0: as fast as possible), got {self.rate}"
            )
        if self.count is None and not self.duration_s:
            raise ValueError("give a message count or a duration")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be ≥ 0, got {self.count}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration must be > 0 s, got {self.duration_s}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if self.faults.anomalies:  # offline, silent, blind_read: made once, in time
            from hazwatch.simulators.anomalies import roles

            if self.duration_s is None:
                raise ValueError(
                    f"the faults {', '.join(sorted(self.faults.anomalies))} begin a third of "
                    "the way into the run and end two thirds in: give a duration, not a count"
                )
            roles(self.faults.anomalies, self.families, self.devices, self.site)

    @property
    def device_count(self) -> int:
        return self.devices * len(self.families)


@dataclass
class FleetReport:
    """What a fleet run did, and the ground truth the service's output is checked against.

    `messages`: every message the service must accept, once each (duplicates and clock-behind
    included, with the identity the service will see). `faults`: every fault injected, with the
    dead-letter reason expected (None: accepted or nothing to receive).
    """

    site: str
    generated: int = 0  # messages made by the generators (before lost tags and duplicates)
    sent: int = 0  # data publishes issued: duplicates count twice, lost tags not at all
    acked: int = 0  # of those, PUBACK received
    failed: int = 0  # publishes that raised (the errors list keeps the first few)
    status_sent: int = 0  # retained status publishes (online / offline announcements)
    status_acked: int = 0
    elapsed_s: float = 0.0  # from all devices connected to the last data PUBACK
    accepted_by_family: Counter[str] = field(default_factory=Counter)
    sent_by_family: Counter[str] = field(default_factory=Counter)
    messages: list[Message] = field(default_factory=list)
    faults: list[InjectedFault] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    devices: list[tuple[str, str]] = field(default_factory=list)  # (family, device)

    @property
    def ok(self) -> bool:
        return self.acked == self.sent and not self.failed

    @property
    def rate_msg_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def accepted(self) -> int:
        return sum(self.accepted_by_family.values())

    def faults_by_kind(self) -> Counter[str]:
        return Counter(fault.kind for fault in self.faults)

    def expected_dead_letters(self) -> Counter[str]:
        """Dead letters the service must produce, by reason."""
        return Counter(f.expected_reason for f in self.faults if f.expected_reason is not None)

    def summary(self) -> list[tuple[str, str]]:
        rows = [
            ("site", self.site),
            ("devices", str(len(self.devices))),
            ("generated", str(self.generated)),
            ("sent", str(self.sent)),
            ("acked", str(self.acked)),
            ("rate", f"{self.rate_msg_s:,.0f} msg/s over {self.elapsed_s:.2f} s"),
            ("accepted (expected)", str(self.accepted)),
        ]
        rows += [(f"  {family}", str(n)) for family, n in sorted(self.sent_by_family.items())]
        if self.failed:
            rows.append(("failed", str(self.failed)))
            rows.append(("first error", self.errors[0] if self.errors else "?"))
        for kind, n in sorted(self.faults_by_kind().items()):
            rows.append((f"fault {kind}", str(n)))
        for reason, n in sorted(self.expected_dead_letters().items()):
            rows.append((f"dead letters {reason}", str(n)))
        return rows


class Fleet:
    """The devices of one site; `await Fleet(config).run(mqtt_url)` returns a FleetReport."""

    label = "fleet"

    def __init__(self, config: FleetConfig | None = None, **options: object) -> None:
        self.config = config or FleetConfig(**options)  # type: ignore[arg-type]
        self.stopping = False

    def stop(self) -> None:
        """End the run early (within ~0.2 s): devices finish their window, say offline, and
        run() returns the report as usual (cancelling run() instead loses the report)."""
        self.stopping = True

    async def run(self, mqtt_url: str, progress: Progress = no_progress) -> FleetReport:
        cfg = self.config
        report = FleetReport(cfg.site)
        readers = ReaderField()  # the site's RFID readers stand side by side: cross-reads
        origin = cfg.clock_ns()
        devices = [
            _Device(
                mqtt_url,
                DeviceGenerator(
                    cfg.site,
                    family,
                    device,
                    seed=cfg.seed,
                    clock_ns=_device_clock(cfg, device, origin),
                    readers=readers if family == "rfid" else None,
                ),
                cfg,
                report,
                self,
            )
            for family in cfg.families
            for device in device_ids(family, cfg.devices)
        ]
        report.devices = [(d.gen.family, d.gen.device) for d in devices]
        self._anomalies(devices)
        results = await asyncio.gather(*(d.connect() for d in devices), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await asyncio.gather(*(d.abort() for d in devices), return_exceptions=True)
            where = urlsplit(mqtt_url)
            raise SimulationError(
                f"cannot connect to the MQTT broker at {where.hostname}:{where.port}: {failure}"
            )
        quotas = _split(cfg.count, len(devices))
        per_device_rate = cfg.rate / len(devices)
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + cfg.duration_s if cfg.count is None and cfg.duration_s else None
        ticker = asyncio.create_task(self._report_progress(report, progress, start))
        try:
            async with asyncio.TaskGroup() as group:
                for device, quota in zip(devices, quotas, strict=True):
                    group.create_task(device.run(quota, deadline, per_device_rate, start))
            report.elapsed_s = loop.time() - start
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
        progress(1.0, _progress_text(report))
        return report

    def _anomalies(self, devices: list[_Device]) -> None:
        """Give each device its role in the run's anomalies (simulators/anomalies.py)."""
        cfg = self.config
        if not cfg.faults.anomalies or not cfg.duration_s:
            return
        from hazwatch.simulators.anomalies import DeviceAnomaly, roles

        cast = roles(cfg.faults.anomalies, cfg.families, cfg.devices, cfg.site)
        start, end = (cfg.duration_s * f for f in cfg.faults.anomaly_window)
        for device in devices:
            role = cast.get((device.gen.family, device.gen.device))
            if role is not None:
                device.anomaly = DeviceAnomaly(role, cfg.site, start, end)

    async def _report_progress(self, report: FleetReport, progress: Progress, start: float) -> None:
        """Call `progress` ten times a second until cancelled."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        while True:
            if cfg.count:
                fraction = report.generated / cfg.count
            elif cfg.duration_s:
                fraction = (loop.time() - start) / cfg.duration_s
            else:
                fraction = 1.0
            progress(min(fraction, 1.0), _progress_text(report))
            await asyncio.sleep(0.1)


def _device_clock(cfg: FleetConfig, device: str, origin_ns: int) -> Callable[[], int]:
    """What `device`'s clock says: the fleet's clock, through the device's own if it has one."""
    clock = cfg.clocks.get(device)
    if clock is None or clock.exact:
        return cfg.clock_ns
    started = clock.starting(origin_ns)
    return lambda: started.device_ns(cfg.clock_ns())


def _progress_text(report: FleetReport) -> str:
    return f"sent {report.sent:,}  acked {report.acked:,}  faults {len(report.faults):,}"


def _split(count: int | None, parts: int) -> list[int | None]:
    if count is None:
        return [None] * parts
    base, extra = divmod(count, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


async def drop_connection(client: aiomqtt.Client, timeout_s: float = 5.0) -> None:
    """Close `client`'s TCP connection without an MQTT DISCONNECT, as a crash or a cut cable
    would: the broker then publishes the client's last will."""
    sock = client._client.socket()  # aiomqtt keeps paho's client private; it has no abort
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    disconnected = client._disconnected
    await asyncio.wait([disconnected], timeout=timeout_s)
    if disconnected.done() and not disconnected.cancelled():
        disconnected.exception()  # retrieved: losing the connection is what was asked for
    try:
        await client.__aexit__(None, None, None)
    except aiomqtt.MqttError:
        pass


class _Device:
    """One simulated device: its generator, its own MQTT connection, its fault draws."""

    def __init__(
        self, url: str, gen: DeviceGenerator, cfg: FleetConfig, report: FleetReport, fleet: Fleet
    ) -> None:
        self.url, self.gen, self.cfg, self.report, self.fleet = url, gen, cfg, report, fleet
        self.rng = random.Random(f"{cfg.seed}:{gen.site}:{gen.family}:{gen.device}:faults")
        self.client: aiomqtt.Client | None = None
        self.anomaly: DeviceAnomaly | None = None  # its role in the run's anomalies, if any

    async def connect(self) -> None:
        gen = self.gen
        client = device_client(self.url, gen.site, gen.family, gen.device)
        # A full window of publishes is the point, not a leak: silence aiomqtt's warning.
        client.pending_calls_threshold = 2 * self.cfg.window + 10
        # paho sends at most 20 unacked QoS 1 messages by default and queues the rest; let a
        # whole window be in flight (device_client does not expose the setting).
        client._client.max_inflight_messages_set(self.cfg.window)
        await client.__aenter__()
        self.client = client
        await self._publish_status(online=True)

    async def close(self) -> None:
        """Clean stop: say offline (retained, with a time), then DISCONNECT (no last will)."""
        if self.client is None:
            return
        try:
            if self.cfg.announce_offline:
                await self._publish_status(online=False)
            await self.client.__aexit__(None, None, None)
        except aiomqtt.MqttError:
            pass  # already gone; the broker has published our last will
        self.client = None

    async def abort(self) -> None:
        """Drop the connection without DISCONNECT: the broker publishes the last will."""
        client, self.client = self.client, None
        if client is not None:
            await drop_connection(client)

    async def _publish_status(self, online: bool) -> None:
        assert self.client is not None
        message = self.gen.status(online=online)
        self.report.status_sent += 1
        await self.client.publish(message.topic, message.payload, qos=1, retain=True)
        self.report.status_acked += 1

    async def run(
        self, quota: int | None, deadline: float | None, rate: float, start: float
    ) -> None:
        loop = asyncio.get_running_loop()
        made = 0
        try:
            while (quota is None or made < quota) and not self.fleet.stopping:
                now = loop.time()
                if deadline is not None and now >= deadline:
                    break
                if self.anomaly is not None and await self.anomaly.step(self, now - start):
                    await asyncio.sleep(0.1)  # offline or silent: nothing sent meanwhile
                    made = int((loop.time() - start) * rate) if rate > 0 else made
                    continue
                room = self.cfg.window if quota is None else min(self.cfg.window, quota - made)
                if rate > 0:
                    due = int((now - start) * rate) + 1 - made
                    if due <= 0:
                        wake = start + (made + 1) / rate
                        await asyncio.sleep(min(wake, deadline or wake, now + 0.2) - now)
                        continue
                    room = min(room, due)
                made += room
                await self._send_window(room)
        except aiomqtt.MqttError as exc:
            self._error(f"{self.gen.family}/{self.gen.device}: {exc}")

    async def _send_window(self, size: int) -> None:
        report, cfg, gen = self.report, self.cfg, self.gen
        batch: list[Message] = []
        for _ in range(size):
            message = gen.next()
            if self.anomaly is not None:
                message = self.anomaly.shape(message)
            report.generated += 1
            kind = cfg.faults.choose(self.rng)
            fault = inject(kind, message, self.rng, cfg.faults) if kind else None
            if fault is None or fault.kind == "clean":
                self._accept(message)
                batch.append(message)
                continue
            if fault.kind == "outage":
                await self._publish_all(batch)
                batch = []
                await self.abort()
                will = Message(
                    status_topic(gen.site, gen.family, gen.device),
                    gen.family,
                    gen.device,
                    "status",
                    {"online": False},
                    None,
                )
                report.faults.append(InjectedFault("outage", will, None, "last will"))
                await self.connect()
                self._accept(message)
                batch.append(message)
                continue
            report.faults.append(fault)
            if fault.kind == "duplicate":
                self._accept(message)
                batch += (message, message)
            elif fault.kind == "lost_tag":
                pass  # the read never happens
            elif fault.rejected:
                batch.append(fault.message)
            else:  # clock_behind: accepted at the device's (wrong) time
                self._accept(fault.message)
                batch.append(fault.message)
        await self._publish_all(batch)

    def record(self, fault: InjectedFault) -> None:
        """An anomaly this device made (simulators/anomalies.py), in the ground truth."""
        self.report.faults.append(fault)

    def _accept(self, message: Message) -> None:
        self.report.accepted_by_family[message.family] += 1
        if self.cfg.keep_messages:
            self.report.messages.append(message)

    async def _publish_all(self, batch: list[Message]) -> None:
        if not batch:
            return
        client = self.client
        assert client is not None
        self.report.sent += len(batch)
        self.report.sent_by_family[self.gen.family] += len(batch)
        results = await asyncio.gather(
            *(client.publish(m.topic, m.payload, qos=1) for m in batch), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self._error(f"{self.gen.family}/{self.gen.device}: {result}")
            else:
                self.report.acked += 1

    def _error(self, text: str) -> None:
        self.report.failed += 1
        if len(self.report.errors) < MAX_ERRORS_KEPT:
            self.report.errors.append(text)
