"""Simulated device clocks: fast, slow, drifting by ppm, or back at 2000-01-01 after a reboot.

Never touch the true time a simulator schedules by: a clock only changes the `ts` a device
writes into its messages (what hazwatch must cope with), never when the message is sent.

A reader months without NTP drifts by tens of ppm (a 20 ppm crystal is 1.7 s a day) and may
be minutes off; one whose real-time clock lost its backup power starts again at its firmware's
epoch after a reboot (2000-01-01T00:00:00Z here, the earliest time hazwatch accepts) and
counts on from there until NTP sets it, if ever.

Spec strings (`hazwatch simulate --clock DEVICE=SPEC`), items joined by commas:
`-900s` / `+90s` (offset in seconds, slow or fast), `+30ppm` (rate error, from the run's
start), `reboot@600` (600 s after the run's start the clock jumps to 2000-01-01 and counts on),
`sync@900` (NTP sets it right again 900 s after the start). `-900s,+30ppm,reboot@3600`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hazwatch.devices.timeparse import EARLIEST_NS, NS_PER_S

REBOOT_EPOCH_NS = EARLIEST_NS  # 2000-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class DeviceClock:
    """How one device's clock differs from true time, from `origin_ns` (the run's start) on.

    device time = true time + offset + drift (ppm of the time since origin); after
    `reboot_after_s` it is 2000-01-01 plus the time since the reboot, until `sync_after_s`.
    """

    offset_s: float = 0.0
    drift_ppm: float = 0.0
    reboot_after_s: float | None = None
    sync_after_s: float | None = None
    origin_ns: int = 0

    def __post_init__(self) -> None:
        if not -1000 <= self.drift_ppm <= 1000:
            raise ValueError(f"clock drift must be within ±1000 ppm, got {self.drift_ppm:g}")
        if abs(self.offset_s) > 86400 * 366:
            raise ValueError(f"clock offset must be within a year, got {self.offset_s:g} s")
        for name in ("reboot_after_s", "sync_after_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"clock {name.split('_')[0]} time must be ≥ 0 s, got {value:g}")

    @property
    def exact(self) -> bool:
        return not (self.offset_s or self.drift_ppm or self.reboot_after_s is not None)

    def starting(self, origin_ns: int) -> DeviceClock:
        """The same clock, its drift and reboot counted from `origin_ns`."""
        return DeviceClock(
            self.offset_s, self.drift_ppm, self.reboot_after_s, self.sync_after_s, origin_ns
        )

    def device_ns(self, true_ns: int) -> int:
        """What the device's clock says at `true_ns`."""
        since_ns = true_ns - self.origin_ns
        if self.sync_after_s is not None and since_ns >= self.sync_after_s * NS_PER_S:
            return true_ns
        if self.reboot_after_s is not None and since_ns >= self.reboot_after_s * NS_PER_S:
            return REBOOT_EPOCH_NS + since_ns - int(self.reboot_after_s * NS_PER_S)
        return true_ns + int(self.offset_s * NS_PER_S) + int(since_ns * self.drift_ppm / 1e6)

    def describe(self) -> str:
        items = []
        if self.offset_s:
            items.append(f"{self.offset_s:+g}s")
        if self.drift_ppm:
            items.append(f"{self.drift_ppm:+g}ppm")
        if self.reboot_after_s is not None:
            items.append(f"reboot@{self.reboot_after_s:g}")
        if self.sync_after_s is not None:
            items.append(f"sync@{self.sync_after_s:g}")
        return ",".join(items) or "exact"


EXACT = DeviceClock()


def parse_clock(spec: str) -> DeviceClock:
    """`-900s,+30ppm,reboot@600,sync@900` → a DeviceClock (ValueError naming the bad item)."""
    offset = drift = 0.0
    reboot: float | None = None
    sync: float | None = None
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            if item.startswith("reboot@"):
                reboot = float(item.removeprefix("reboot@").removesuffix("s"))
            elif item.startswith("sync@"):
                sync = float(item.removeprefix("sync@").removesuffix("s"))
            elif item.endswith("ppm"):
                drift = float(item.removesuffix("ppm"))
            elif item.endswith("s"):
                offset = float(item.removesuffix("s"))
            else:
                raise ValueError(item)
        except ValueError:
            raise ValueError(
                f"clock item {item!r} is none of ±SECONDSs, ±PPMppm, reboot@S, sync@S"
            ) from None
    return DeviceClock(offset, drift, reboot, sync)


def parse_clocks(specs: Iterable[str]) -> dict[str, DeviceClock]:
    """`["gate-03=-900s", "veh-01=+40ppm,reboot@600"]` → {device id: clock}."""
    clocks: dict[str, DeviceClock] = {}
    for spec in specs:
        device, sep, clock = spec.partition("=")
        if not sep or not device.strip():
            raise ValueError(f"clock {spec!r} must be DEVICE=SPEC, e.g. gate-03=-900s")
        clocks[device.strip()] = parse_clock(clock)
    return clocks


def describe_clocks(clocks: Mapping[str, DeviceClock]) -> str:
    return ", ".join(f"{d} {c.describe()}" for d, c in sorted(clocks.items())) or "exact"
