"""HJ 212-2017 and HJ 212-2025 air stations that send diurnal pollutant curves over TCP or MQTT,
with their PW, optionally their CP SM4-encrypted (2025), with faults; over TCP a 2025 station
takes a new SM4 key (CN 1014) and, given its hardware serial, asks for its MN (CN 1001/1002).

Never report a packet as delivered that the receiver did not acknowledge; ground truth is what
was actually put on the wire, value for value, as the receiver will parse it.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hazwatch.devices import hj212
from hazwatch.devices.timeparse import NS_PER_S
from hazwatch.devices.topics import build_topic
from hazwatch.simulators.mqtt import device_client

NS_PER_MIN = 60 * NS_PER_S
FAULT_KINDS = ("bad_crc", "truncated", "wrong_mn")
# What the receiving side dead-letters each fault as.
EXPECTED_REASON = {"bad_crc": "bad_crc", "truncated": "bad_length", "wrong_mn": "wrong_mn"}
Progress = Callable[[float, str], None]
WINDOW = 100  # QoS 1 publishes in flight per MQTT station


def _no_progress(fraction: float, text: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class StationSpec:
    site: str
    station: str
    mn: str
    pollution: float = 1.0  # scales the pollutant curves (a dirty site runs at 2–3)
    seed: int = 0
    faults: dict[str, float] | None = None  # this station's own fault rates (else the config's)
    edition: str = "2017"  # the Flag's version bits: "2017" (Flag=5) or "2025" (Flag=9)
    pw: str = "123456"
    sm4_key: bytes | None = None  # encrypt the CP (HJ 212-2025 6.4) with this key
    # the data logger's hardware serial: with mn "" it first uploads it (CN 1001) over TCP and
    # sends under the MN the upper system gives it (CN 1002)
    serial: str | None = None


def stations(count: int, site: str = "sim-air", *, seed: int = 7) -> list[StationSpec]:
    """`count` stations with MNs 4190010000NNNN and pollution levels spread from clean to dirty."""
    rng = random.Random(seed)
    return [
        StationSpec(
            site,
            f"aq-{index:03d}",
            f"4190010000{index:04d}",
            round(0.6 + 2.4 * rng.random(), 2),
            seed * 1000 + index,
        )
        for index in range(count)
    ]


def _peak(hour: float, center: float, width: float) -> float:
    distance = min(abs(hour - center), 24 - abs(hour - center))
    return math.exp(-((distance / width) ** 2))


def diurnal(spec: StationSpec, local_hour: float, rng: random.Random) -> dict[str, float]:
    """One minute's values: traffic peaks (08, 19 h) in NO2/CO/PM, afternoon O3, mild weather."""
    traffic = _peak(local_hour, 8, 1.8) + 0.9 * _peak(local_hour, 19, 2.2)
    sun = max(0.0, math.sin(math.pi * (local_hour - 7) / 12)) ** 1.5 if 7 < local_hour < 19 else 0
    k = spec.pollution

    def noisy(value: float, spread: float = 0.08) -> float:
        return max(0.0, value * (1 + rng.gauss(0, spread)))

    pm25 = noisy(k * (30 + 45 * traffic))
    values = {
        "pm25": round(pm25, 1),
        "pm10": round(noisy(pm25 * 1.6 + 15 * k), 1),
        "so2": round(noisy(k * (9 + 5 * traffic)), 1),
        "no2": round(noisy(k * (22 + 45 * traffic)), 1),
        "co": round(noisy(k * (0.5 + 0.7 * traffic)), 3),
        "o3": round(noisy(18 + 150 * sun * (0.7 + 0.3 * k) / (1 + 0.2 * traffic)), 1),
        "temp": round(
            12 + 7 * math.sin(2 * math.pi * (local_hour - 9) / 24) + rng.gauss(0, 0.2), 1
        ),
        "rh": round(
            min(100.0, max(5.0, 60 - 18 * math.sin(2 * math.pi * (local_hour - 9) / 24))), 1
        ),
        "pressure": round(1013 + rng.gauss(0, 0.4), 1),
        "wind_speed": round(abs(2 + 1.5 * sun + rng.gauss(0, 0.3)), 1),
        "wind_dir": round(rng.uniform(0, 359), 0),
    }
    return values


@dataclass(slots=True)
class SentPacket:
    site: str
    station: str
    mn: str
    ts_ns: int
    values: dict[str, float]
    fault: str | None
    transport: str
    acked: bool = False


@dataclass(slots=True)
class AirReport:
    packets: list[SentPacket] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    key_updates: int = 0  # new SM4 keys taken (CN 1014 answered 9011 and 9012 ExeRtn=1)
    assigned_mn: dict[str, str] = field(default_factory=dict)  # station → MN given by CN 1002

    @property
    def ok(self) -> bool:
        return not self.errors and all(p.acked for p in self.packets if p.fault is None)

    def good(self) -> list[SentPacket]:
        return [p for p in self.packets if p.fault is None]

    def summary(self) -> list[tuple[str, str]]:
        faults: dict[str, int] = {}
        for p in self.packets:
            if p.fault:
                faults[p.fault] = faults.get(p.fault, 0) + 1
        return [
            ("packets sent", str(len(self.packets))),
            ("acknowledged", str(sum(p.acked for p in self.packets))),
            ("faults", ", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none"),
            ("errors", "; ".join(self.errors[:3]) or "none"),
            ("elapsed", f"{self.elapsed_s:.1f} s"),
        ]


@dataclass(frozen=True, slots=True)
class AirSimConfig:
    start_ns: int  # first minute (UTC); a simulated day in the past is the usual test
    minutes: int = 1440
    minute_s: float = 0.0  # wall seconds per simulated minute; 0 = as fast as acks come
    cn: str = hj212.CN_MINUTE
    zone_h: float = 8.0
    faults: dict[str, float] = field(default_factory=dict)  # kind -> probability per packet
    ack_timeout_s: float = 10.0


class StationSim:
    """One station's packets for the simulated period (deterministic from its seed)."""

    def __init__(self, spec: StationSpec, config: AirSimConfig) -> None:
        self.spec = spec
        self.config = config
        self.rng = random.Random(spec.seed)
        self.faults = spec.faults if spec.faults is not None else config.faults
        for kind in self.faults:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown air fault {kind!r} (known: {', '.join(FAULT_KINDS)})")

    def packets(self, transport: str) -> list[tuple[SentPacket, bytes]]:
        """Each minute's frame as sent (built with the spec's MN and key)."""
        return [(sent, self.frame(packet, sent.fault)) for sent, packet in self.plan(transport)]

    def frame(self, packet: hj212.Packet, fault: str | None, key: bytes | None = None) -> bytes:
        raw = hj212.build(packet, key if key is not None else self.spec.sm4_key)
        if fault == "bad_crc":
            crc = raw[-6:-2]
            raw = raw[:-6] + (b"0000" if crc != b"0000" else b"FFFF") + raw[-2:]
        elif fault == "truncated":
            raw = raw[: len(raw) // 2]
        return raw

    def plan(self, transport: str) -> list[tuple[SentPacket, hj212.Packet]]:
        """Each minute's packet and what the receiver should make of it."""
        spec, cfg = self.spec, self.config
        out: list[tuple[SentPacket, hj212.Packet]] = []
        for minute in range(cfg.minutes):
            ts_ns = cfg.start_ns + minute * NS_PER_MIN
            local_hour = ((ts_ns // NS_PER_S) / 3600 + cfg.zone_h) % 24
            values = diurnal(spec, local_hour, self.rng)
            fault = self._fault()
            mn = spec.mn if fault != "wrong_mn" else spec.mn[:-4] + "9999"
            packet = hj212.data_packet(
                mn, cfg.cn, ts_ns, values, zone_h=cfg.zone_h, pw=spec.pw, edition=spec.edition
            )
            sent = SentPacket(spec.site, spec.station, spec.mn, ts_ns, values, fault, transport)
            out.append((sent, packet))
        return out

    def _fault(self) -> str | None:
        draw = self.rng.random()
        for kind, rate in sorted(self.faults.items()):
            if draw < rate:
                return kind
            draw -= rate
        return None


async def _pace(started: float, index: int, minute_s: float) -> None:
    if minute_s > 0:
        delay = started + index * minute_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class _Link:
    """What a TCP station keeps of its link: its MN and SM4 key, which the upper system may
    change (CN 1002, CN 1014)."""

    def __init__(self, spec: StationSpec, writer: asyncio.StreamWriter, report: AirReport) -> None:
        self.spec = spec
        self.mn = spec.mn
        self.key = spec.sm4_key
        self.writer = writer
        self.report = report

    async def command(self, packet: hj212.Packet) -> bool:
        """A command of the upper system answered as a station does (9011 QnRtn=1, then 9012
        ExeRtn=1 once carried out); False when it is none this station takes."""
        if packet.cn == hj212.CN_KEY:
            new = hj212.new_key_of(packet)
            if new is None:
                return False
            await self._answer(packet)
            self.key = new[1]  # from now on (its acknowledgement went with the old one)
            self.report.key_updates += 1
            return True
        if packet.cn == hj212.CN_SET_MN:
            if packet.cp_dict().get(hj212.SERIAL_KEY) != self.spec.serial:
                return False
            await self._answer(packet)
            self.mn = packet.mn
            self.report.assigned_mn[self.spec.station] = packet.mn
            return True
        return packet.cn == hj212.CN_SET_TIME  # (a simulated clock is not set)

    async def _answer(self, packet: hj212.Packet) -> None:
        self.writer.write(
            hj212.build(hj212.request_response(packet))
            + hj212.build(hj212.execute_response(packet))
        )
        await self.writer.drain()

    async def ask_mn(self, reader: asyncio.StreamReader, config: AirSimConfig) -> None:
        """CN 1001 with the hardware serial (and MN= empty), until CN 1002 gives the MN."""
        assert self.spec.serial is not None
        flag = (hj212.VERSION_OF[self.spec.edition] << 2) | hj212.FLAG_ACK
        upload = hj212.Packet(
            hj212.qn_of(time.time_ns(), config.zone_h),
            hj212.ST_SYSTEM,
            hj212.CN_HARDWARE,
            self.spec.pw,
            self.mn,
            flag,
            ((hj212.SERIAL_KEY, self.spec.serial),),
        )
        self.writer.write(hj212.build(upload))
        await self.writer.drain()
        while self.mn == self.spec.mn:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), config.ack_timeout_s)
            answer = hj212.parse_frame(line, lambda mn: self.key)
            if answer.cn == hj212.CN_REQUEST_RESPONSE and answer.qn == upload.qn:
                raise ConnectionError(f"CN 1001 refused: {answer.cp_dict()}")
            await self.command(answer)


async def run_tcp_station(
    host: str, port: int, spec: StationSpec, config: AirSimConfig, report: AirReport
) -> None:
    """One station on one TCP connection: send each minute, wait for the 9014 of good packets,
    taking the upper system's commands (a new key, its MN) as they come."""
    reader, writer = await asyncio.open_connection(host, port)
    link = _Link(spec, writer, report)
    try:
        if spec.serial is not None and not spec.mn:
            await link.ask_mn(reader, config)
        started = time.monotonic()
        sim = StationSim(spec, config)
        for index, (sent, packet) in enumerate(sim.plan("tcp")):
            await _pace(started, index, config.minute_s)
            if sent.fault != "wrong_mn":
                packet = replace(packet, mn=link.mn)
            writer.write(sim.frame(packet, sent.fault, link.key))
            await writer.drain()
            report.packets.append(sent)
            if sent.fault is not None:
                continue
            qn = hj212.qn_of(sent.ts_ns, config.zone_h)
            while True:
                line = await asyncio.wait_for(reader.readuntil(b"\r\n"), config.ack_timeout_s)
                answer = hj212.parse_frame(line, lambda mn: link.key)
                if answer.cn == hj212.CN_REQUEST_RESPONSE and answer.qn == qn:
                    report.errors.append(f"{spec.station} refused: {answer.cp_dict()}")
                    break
                if answer.cn == hj212.CN_DATA_RESPONSE and answer.qn == qn:
                    sent.acked = True
                    break
                await link.command(answer)
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
        report.errors.append(f"{spec.station} over tcp: {type(exc).__name__} {exc}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def run_mqtt_station(
    mqtt_url: str, spec: StationSpec, config: AirSimConfig, report: AirReport
) -> None:
    """One station publishing its packets raw on hw/{site}/air/{station}/hj212 at QoS 1."""
    topic = build_topic(spec.site, "air", spec.station, hj212.KIND)
    try:
        client = device_client(mqtt_url, spec.site, "air", spec.station)
        client.pending_calls_threshold = 2 * WINDOW  # a window in flight is the plan, not a warning
        async with client:
            started = time.monotonic()
            window: list[tuple[SentPacket, Any]] = []
            for index, (sent, raw) in enumerate(StationSim(spec, config).packets("mqtt")):
                await _pace(started, index, config.minute_s)
                report.packets.append(sent)
                window.append((sent, asyncio.ensure_future(client.publish(topic, raw, qos=1))))
                if len(window) >= WINDOW:
                    await _settle(window)
            await _settle(window)
    except Exception as exc:  # aiomqtt.MqttError and timeouts: reported, not raised
        report.errors.append(f"{spec.station} over mqtt: {type(exc).__name__} {exc}")


async def _settle(window: list[tuple[SentPacket, Any]]) -> None:
    results = await asyncio.gather(*(f for _, f in window), return_exceptions=True)
    for (sent, _), result in zip(window, results, strict=True):
        # Over MQTT the broker's PUBACK is the acknowledgement, faulty or not.
        sent.acked = not isinstance(result, BaseException)
    window.clear()


async def run_stations(
    specs: Sequence[StationSpec],
    config: AirSimConfig,
    *,
    mqtt_url: str | None = None,
    tcp: tuple[str, int] | None = None,
    tcp_share: float = 0.5,
) -> AirReport:
    """Run every station at once: the first `tcp_share` over TCP (when given), the rest MQTT."""
    report = AirReport()
    started = time.monotonic()
    n_tcp = round(len(specs) * tcp_share) if tcp is not None else 0
    if mqtt_url is None and n_tcp < len(specs):
        raise ValueError("stations left for MQTT but no mqtt_url given")
    async with asyncio.TaskGroup() as group:
        for index, spec in enumerate(specs):
            if index < n_tcp:
                assert tcp is not None
                group.create_task(run_tcp_station(tcp[0], tcp[1], spec, config, report))
            else:
                assert mqtt_url is not None
                group.create_task(run_mqtt_station(mqtt_url, spec, config, report))
    report.elapsed_s = time.monotonic() - started
    return report


# `hazwatch simulate --scenario air`


@dataclass
class AirStep:
    label: str
    specs: list[StationSpec]
    config: AirSimConfig

    async def run(self, mqtt_url: str, progress: Progress = _no_progress) -> AirReport:
        progress(0.0, f"{len(self.specs)} HJ 212 stations, {self.config.minutes} minutes each")
        report = await run_stations(self.specs, self.config, mqtt_url=mqtt_url)
        progress(1.0, f"{len(report.packets)} packets")
        return report


def air_scenario(**options: Any) -> Any:
    from hazwatch.simulators.scenarios import Scenario

    count = int(options.get("devices") or 5)
    duration_s = options.get("duration_s")
    # --count is messages in all; otherwise a simulated hour per station, in --duration seconds
    minutes = max(1, int(options["count"]) // count) if options.get("count") else 60
    now_ns = time.time_ns()
    start_ns = now_ns - now_ns % NS_PER_MIN - minutes * NS_PER_MIN
    minute_s = float(duration_s) / minutes if duration_s else 0.0
    config = AirSimConfig(start_ns=start_ns, minutes=minutes, minute_s=minute_s)
    specs = stations(count, options.get("site") or "sim-air", seed=int(options.get("seed") or 7))
    step = AirStep("air stations (HJ 212 over MQTT)", specs, config)
    return Scenario("air", [step], "HJ 212-2017 air micro-stations with diurnal curves")


def _register() -> None:
    from hazwatch.simulators.scenarios import register_scenario

    register_scenario("air", air_scenario)


_register()
