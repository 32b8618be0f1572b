"""Payload generators for every device family: valid messages (docs/payloads.md), seeded.

Never emit a message devices/ would reject: faults are added on purpose by
simulators/faults.py only.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from typing import Any

import orjson

from hazwatch.devices.timeparse import CHINA, NS_PER_S
from hazwatch.devices.topics import build_topic
from hazwatch.simulators.reads import DOOR, Radio, ReadModel

# Families the fleet simulates (the order is the order of `--families` and of reports).
FAMILIES = ("rfid", "scale", "terminal", "air", "camera")
# Topic kind each family publishes its data on (terminals also send `manifest`).
DATA_KIND = {"rfid": "read", "scale": "weight", "terminal": "batch", "air": "reading"}
DATA_KIND["camera"] = "frame"
DEVICE_PREFIX = {"rfid": "gate", "scale": "s", "terminal": "t", "air": "aq", "camera": "cam"}
NS_PER_US = 1_000
NS_PER_MS = 1_000_000
FIRMWARE = {"rfid": "r2.4.1", "scale": "w1.9.0", "terminal": "t3.1.2", "air": "a5.0.3"}
FIRMWARE["camera"] = "c7.2.0"

# (waste code, name, form, hazard) from the National Hazardous Waste List (2021).
WASTES: tuple[tuple[str, str, str, list[str]], ...] = (
    ("900-249-08", "废矿物油", "liquid", ["T", "I"]),
    ("900-041-49", "沾染危险废物的废弃包装物", "solid", ["T", "In"]),
    ("336-064-17", "金属表面处理废物", "sludge", ["T", "C"]),
    ("772-002-18", "焚烧飞灰", "solid", ["T"]),
    ("900-045-49", "废电路板", "solid", ["T"]),
    ("900-252-12", "废油漆", "liquid", ["T", "I"]),
    ("261-151-50", "废催化剂", "solid", ["T"]),
    ("900-349-34", "废酸", "liquid", ["C"]),
)
CONTAINERS = ("200L铁桶", "1000L吨桶", "吨袋", "25L塑料桶")
OBJECT_LABELS = ("person", "truck", "forklift", "drum", "car")
# How many terminal messages in a row are batches before a manifest of the recent ones.
BATCHES_PER_MANIFEST = 4
# A fleet reader's reads come in passes (simulators/reads.py): most are containers carried
# through its door, some drums parked in its field for a while; this share of its reads are
# cross-reads of what passes the reader beside it (a fleet's readers stand side by side).
PARKED_SHARE = 0.15
PARKED_S = 120.0
CROSS_SHARE = 0.1
# A clock set back by more than this (a reboot to 2000-01-01) really goes back; less is the
# same instant again and is nudged on by a microsecond.
CLOCK_SET_BACK_NS = NS_PER_S


@dataclass
class ReaderField:
    """The RFID readers of one simulated site: the tag each is reading now, so that the reader
    beside it can cross-read it, weakly, at the same moment."""

    current: dict[str, str] = field(default_factory=dict)  # reader → EPC in its field

    def beside(self, reader: str, rng: random.Random) -> str | None:
        others = sorted(r for r in self.current if r != reader)
        return self.current[rng.choice(others)] if others else None


@dataclass(slots=True)
class Message:
    """One generated message; `key` with `topic` and `ts_ns` identifies its real-world event."""

    topic: str
    family: str
    device: str
    kind: str
    body: dict[str, Any]
    ts_ns: int | None
    key: str = ""  # epc (rfid, scale), batch, manifest, seq (camera); "" for air and status
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not self.payload:
            self.payload = orjson.dumps(self.body)

    def identity(self) -> tuple[str, int | None, str]:
        return (self.topic, self.ts_ns, self.key)


def rfc3339(ts_ns: int, zone: timezone = CHINA) -> str:
    """RFC 3339 with microseconds in `zone` (devices here speak China time, UTC+8)."""
    seconds, rest_ns = divmod(ts_ns, NS_PER_S)
    local = datetime.fromtimestamp(seconds, tz=UTC).astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%dT%H:%M:%S}.{rest_ns // NS_PER_US:06d}{offset[:3]}:{offset[3:]}"


def device_ids(family: str, count: int) -> list[str]:
    return [f"{DEVICE_PREFIX[family]}-{n:02d}" for n in range(1, count + 1)]


def make_epc(rng: random.Random) -> str:
    """An EPC-96 as 24 hex digits (E280: the Impinj/Alien tag prefix seen on site)."""
    return f"E280{rng.getrandbits(80):020X}"


def site_tags(site: str, seed: int, count: int = 256) -> list[str]:
    """The containers' tags at a site: the same for every device of one seeded run."""
    rng = random.Random(f"{seed}:{site}:tags")
    return [make_epc(rng) for _ in range(count)]


@dataclass
class DeviceGenerator:
    """The messages of one device, in order; values drawn from its own seeded random stream.

    `clock_ns` gives the device's time; successive messages of one device get strictly
    increasing timestamps (microsecond steps) so each is a distinct real-world event.
    """

    site: str
    family: str
    device: str
    seed: int = 0
    clock_ns: Callable[[], int] = time.time_ns
    tags: list[str] = field(default_factory=list)
    readers: ReaderField | None = None  # shared by a site's RFID readers: cross-reads
    read_model: ReadModel = field(default_factory=ReadModel)
    rng: random.Random = field(init=False)
    count: int = field(init=False, default=0)
    _last_ts_ns: int = field(init=False, default=0)
    _last_status_ns: int = field(init=False, default=0)
    _recent_batches: list[str] = field(init=False, default_factory=list)
    _station: dict[str, float] = field(init=False, default_factory=dict)
    _pass: deque[tuple[float, int]] = field(init=False, default_factory=deque)
    _pass_epc: str = field(init=False, default="")
    _radio: Radio | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r} (known: {', '.join(FAMILIES)})")
        self.rng = random.Random(f"{self.seed}:{self.site}:{self.family}:{self.device}")
        if not self.tags:
            self.tags = site_tags(self.site, self.seed)
        rng = self.rng
        self._station = {"pm25": rng.uniform(20, 60), "so2": rng.uniform(4, 15)}

    def next_ts_ns(self) -> int:
        now_us = self.clock_ns() // NS_PER_US * NS_PER_US
        if now_us < self._last_ts_ns - CLOCK_SET_BACK_NS:
            self._last_ts_ns = now_us  # the clock was set back (a reboot): it says so
        else:
            self._last_ts_ns = max(now_us, self._last_ts_ns + NS_PER_US)
        return self._last_ts_ns

    def topic(self, kind: str) -> str:
        return build_topic(self.site, self.family, self.device, kind)

    def next(self) -> Message:
        """The device's next data message."""
        make = getattr(self, f"_{self.family}")
        message: Message = make(self.next_ts_ns())
        self.count += 1
        return message

    def status(self, online: bool = True) -> Message:
        """A status message with the device time as epoch milliseconds (both forms are valid)."""
        # Strictly later than this device's previous status: two statuses are two points
        # (unless its clock was set back: then it says the earlier time).
        ts_ns = self.clock_ns() // NS_PER_MS * NS_PER_MS
        if ts_ns >= self._last_status_ns - CLOCK_SET_BACK_NS:
            ts_ns = max(ts_ns, self._last_status_ns + NS_PER_MS)
        self._last_status_ns = ts_ns
        body: dict[str, Any] = {
            "online": online,
            "ts": ts_ns // NS_PER_MS,
            "rssi": round(self.rng.uniform(-95, -40), 1),
            "fw": FIRMWARE[self.family],
        }
        if self.family in ("rfid", "scale", "terminal"):
            body["battery"] = round(self.rng.uniform(35, 100), 1)
        return Message(self.topic("status"), self.family, self.device, "status", body, ts_ns)

    def _rfid(self, ts_ns: int) -> Message:
        """The next read of the pass in the reader's field (a new pass when it is over): the
        RSSI curve and antenna ports of a real pass, timed by the fleet's rate; now and then
        a weak cross-read of the tag passing the reader beside it."""
        rng = self.rng
        if self.readers is not None and rng.random() < CROSS_SHARE:
            other = self.readers.beside(self.device, rng)
            if other is not None:
                rssi = round(rng.uniform(self.read_model.sensitivity_dbm, -65.0), 1)
                body = {"ts": rfc3339(ts_ns), "epc": other, "rssi": rssi, "antenna": 1}
                return Message(self.topic("read"), "rfid", self.device, "read", body, ts_ns, other)
        if not self._pass:
            self._new_pass()
        rssi, antenna = self._pass.popleft()
        epc = self._pass_epc
        body = {"ts": rfc3339(ts_ns), "epc": epc, "rssi": rssi, "antenna": antenna}
        return Message(self.topic("read"), "rfid", self.device, "read", body, ts_ns, epc)

    def _new_pass(self) -> None:
        if self._radio is None:
            seed = f"{self.seed}:{self.site}:{self.device}"
            self._radio = Radio(self.read_model, seed=seed)
        radio, epc = self._radio, self.rng.choice(self.tags)
        if self.rng.random() < PARKED_SHARE:
            found = radio.parked(epc, self.site, self.device, 0, int(PARKED_S * NS_PER_S), 2, DOOR)
        else:
            found = radio.passing(epc, self.site, self.device, 0, DOOR)
        self._pass = deque((s.rssi, s.antenna) for s in found) or deque([(-60.0, 1)])
        self._pass_epc = epc
        if self.readers is not None:
            self.readers.current[self.device] = epc

    def _scale(self, ts_ns: int) -> Message:
        rng = self.rng
        epc = rng.choice(self.tags)
        tare_kg = rng.choice((18.5, 22.0, 60.0, 2.5))
        net_kg = round(rng.uniform(5, 950), 1)
        body = {
            "ts": rfc3339(ts_ns),
            "epc": epc,
            "net_kg": net_kg,
            "gross_kg": round(net_kg + tare_kg, 1),
            "tare_kg": tare_kg,
            "stable": rng.random() > 0.05,
        }
        return Message(self.topic("weight"), "scale", self.device, "weight", body, ts_ns, epc)

    def _terminal(self, ts_ns: int) -> Message:
        if len(self._recent_batches) >= BATCHES_PER_MANIFEST:
            return self._manifest(ts_ns)
        rng = self.rng
        code, name, form, hazard = rng.choice(WASTES)
        batch = f"{self.site}-{self.device}-B{self.count + 1:06d}"
        day = datetime.fromtimestamp(ts_ns // NS_PER_S, tz=CHINA).strftime("%Y%m%d")
        producer_code = f"91410800{rng.getrandbits(36):010d}"[:18]
        body = {
            "ts": rfc3339(ts_ns),
            "epc": rng.choice(self.tags),
            "batch": batch,
            "waste_code": code,
            "waste_name": name,
            "waste_category": f"HW{code[-2:]}",
            "form": form,
            "hazard": hazard,
            "producer": f"{self.site} 产废单位",
            # HJ 1276-2022 digital identification code: 18 + 8 + 8 + 3 = 37 characters.
            "label_id": f"{producer_code}{code.replace('-', '')}{day}{self.count % 1000:03d}",
            "container_type": rng.choice(CONTAINERS),
            "handler": rng.choice(("王工", "李师傅", "张主管")),
        }
        self._recent_batches.append(batch)
        return Message(self.topic("batch"), "terminal", self.device, "batch", body, ts_ns, batch)

    def _manifest(self, ts_ns: int) -> Message:
        rng = self.rng
        batches, self._recent_batches = self._recent_batches, []
        manifest = f"M-{self.site}-{self.device}-{self.count + 1:06d}"
        body = {
            "ts": rfc3339(ts_ns),
            "manifest": manifest,
            "batches": batches,
            "receiver": rng.choice(("rc-01", "rc-02")),
            "producer": self.site,
            "transporter": "tr-01",
            "vehicle": f"豫H{rng.randint(10000, 99999)}",
            "planned_kg": round(rng.uniform(200, 3000), 1),
            "transit_limit_h": float(rng.choice((4, 8, 24))),
        }
        topic = self.topic("manifest")
        return Message(topic, "terminal", self.device, "manifest", body, ts_ns, manifest)

    def _air(self, ts_ns: int) -> Message:
        rng = self.rng
        local = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=CHINA)
        hour = local.hour + local.minute / 60
        rush = math.exp(-(((hour - 8) / 2) ** 2)) + math.exp(-(((hour - 18.5) / 2) ** 2))
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 13))  # daylight, peaks ~12:30
        night = 0.5 + 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)  # inversion, peaks ~03:00

        def noisy(value: float, spread: float, digits: int = 1) -> float:
            return round(max(0.0, value * (1 + rng.uniform(-spread, spread))), digits)

        pm25 = noisy(self._station["pm25"] * (0.7 + 0.5 * night + 0.4 * rush), 0.15)
        temp = 8 + 7 * math.sin(2 * math.pi * (hour - 9) / 24) + rng.uniform(-0.5, 0.5)
        body = {
            "ts": rfc3339(ts_ns),
            "pm25": pm25,
            "pm10": round(pm25 * rng.uniform(1.4, 1.9), 1),
            "so2": noisy(self._station["so2"], 0.2),
            "no2": noisy(22 + 30 * rush, 0.2),
            "co": noisy(0.5 + 0.5 * rush + 0.2 * night, 0.1, 2),
            "o3": noisy(25 + 110 * sun**2, 0.15),
            "tvoc": noisy(0.15 + 0.25 * rush, 0.2, 2),
            "temp": round(temp, 1),
            "rh": round(min(98.0, max(15.0, 70 - 2.2 * (temp - 8) + rng.uniform(-5, 5))), 1),
            "wind_speed": round(rng.uniform(0.2, 2.0) + 3.0 * sun, 1),
            "wind_dir": round(rng.uniform(0, 359.9), 1),
            "pressure": round(1016 + 4 * math.cos(2 * math.pi * hour / 12), 1),
            "flag": "N",
        }
        return Message(self.topic("reading"), "air", self.device, "reading", body, ts_ns)

    def _camera(self, ts_ns: int) -> Message:
        rng = self.rng
        local = datetime.fromtimestamp(ts_ns / NS_PER_S, tz=CHINA)
        daylight = max(0.0, math.sin(math.pi * (local.hour + local.minute / 60 - 6) / 13))
        seq = self.count
        objects = []
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
            box = [round(x, 3), round(y, 3), round(rng.uniform(0.05, 0.2), 3)]
            box.append(round(rng.uniform(0.05, 0.2), 3))
            label = rng.choice(OBJECT_LABELS)
            objects.append({"label": label, "conf": round(rng.uniform(0.5, 0.99), 2), "box": box})
        body = {
            "ts": rfc3339(ts_ns),
            "seq": seq,
            "width": 1920,
            "height": 1080,
            "brightness": round(45 + 130 * daylight + rng.uniform(-5, 5), 1),
            "sharpness": round(rng.uniform(250, 900), 1),
            "motion": round(min(1.0, 0.02 * len(objects) + rng.uniform(0, 0.1)), 3),
            "occlusion": round(rng.choice((0.0, 0.0, 0.0, rng.uniform(0, 0.2))), 3),
            "scene_change": round(rng.uniform(0, 0.05), 3),
            "objects": objects,
        }
        topic = self.topic("frame")
        return Message(topic, "camera", self.device, "frame", body, ts_ns, str(seq))
