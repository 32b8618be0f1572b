"""UHF RFID reads as a reader reports them: one read per inventory round while a tag is in the
field, RSSI rising and falling with distance, missed rounds, parked tags, stocktakes, cross-reads.

Never report a read the reader could not have made: every read falls in one of the reader's
inventory rounds, at an RSSI above its receive sensitivity.

Where the numbers come from:
- Rounds: a reader inventories its antenna ports in turn and singulates a lone tag tens of
  times a second: Impinj's Indy RS500 manual (Table 5-12, "Inventory Performance") gives 130
  tags/s for one tag with a population estimate of 1 and 35 tags/s with an estimate of 16;
  the default here is 25 rounds/s with ±25 % jitter (issue #18: 10–50 reads/s at a door).
- RSSI: in dBm, as readers report it (Impinj's `peakRssiCdbm` is hundredths of a dBm).
  A monostatic reader receives the tag's backscatter over the path twice, so the received
  power falls with the fourth power of the distance, 40 dB per decade (Griffin & Durgin,
  "Complete Link Budgets for Backscatter-Radio and RFID Systems", IEEE Antennas and
  Propagation Magazine 51(2), 2009); fading adds a Gaussian spread of a few dB.
- Sensitivity: a read below the reader's receive sensitivity is not reported; doors are set
  well above the chip's limit (Impinj's IoT interface calls it `receiveSensitivityDbm`;
  -80 is a common setting, -75 here, as doors are tuned to limit stray reads).
The geometry: a container carried through a door passes the door's antennas (one port each
side of the opening) at about a metre; the reader sees it from about 3.5 m before to 3.5 m
after, some 8 s at walking pace: ~200 reads at 25 rounds/s, the issue's example.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Sighting:
    """One raw read: when it truly happened, where, and what the reader measured."""

    at_ns: int  # true time (a device clock changes only the ts it writes)
    site: str
    reader: str
    epc: str
    rssi: float  # dBm, one decimal
    antenna: int  # the reader's antenna port, from 1
    kind: str  # pass | cross | parked | stocktake | transit
    pass_id: int  # the physical pass it belongs to (a cross-read: the pass it crosses)


@dataclass(frozen=True, slots=True)
class Portal:
    """The field of a reader that sees containers moving past its antennas."""

    peak_dbm: float  # RSSI at the closest point, `closest_m` from an antenna
    closest_m: float
    speed_mps: tuple[float, float]  # how fast containers move through (drawn per pass)
    antennas: int  # ports along the path, `spacing_m` apart
    spacing_m: float


# A storage door: drums carried or forklifted through at walking pace, a port each side.
DOOR = Portal(-52.0, 1.0, (0.7, 1.2), 2, 1.2)
# A receiver's gate portal: containers inside a truck driving through slowly, a port each side.
GATE = Portal(-56.0, 1.5, (1.5, 2.5), 2, 2.0)
# A disposal line: containers on a conveyor past one antenna at half a metre.
LINE = Portal(-50.0, 0.5, (0.4, 0.6), 1, 0.0)


@dataclass(frozen=True, slots=True)
class ReadModel:
    """How readers report tags. The defaults are a real reader's; `compressed()` keeps the
    physics of a pass and shortens only what lasts minutes to hours (parking, stocktake and
    vehicle intervals), for a demo that shows everything within minutes."""

    round_hz: float = 25.0  # inventory rounds a second that include the tag
    round_jitter: float = 0.25  # ± fraction of a round's period
    miss_p: float = 0.08  # a round that misses a tag in the field (collision, fade)
    sensitivity_dbm: float = -75.0  # weaker reads are not reported
    noise_db: float = 2.0  # standard deviation of fast fading
    door: Portal = DOOR
    gate: Portal = GATE
    line: Portal = LINE
    # a reader whose field overlaps (the registry's `overlaps`) sees a passing tag this much
    # weaker, in this fraction of its rounds (its antennas face another way)
    cross_loss_db: float = 15.0
    cross_p: float = 0.5
    # some drums are set down just inside the storage door, in its field
    parked_p: float = 0.2
    parked_s: tuple[float, float] = (900.0, 2700.0)
    parked_m: tuple[float, float] = (2.0, 3.0)  # from the inner antenna
    parked_hz: float = 0.5  # a still tag in a weak spot answers seldom
    # a handheld stocktake of the storage room: at this local (UTC+8) time of day, every
    # `stocktake_every_s`; each container read close up for a second or two
    stocktake_every_s: float = 86400.0
    stocktake_at_s: float = 16 * 3600.0
    stocktake_read_s: tuple[float, float] = (1.0, 2.0)
    stocktake_walk_s: tuple[float, float] = (1.0, 3.0)
    stocktake_hz: float = 8.0
    stocktake_dbm: tuple[float, float] = (-60.0, -45.0)
    # a vehicle's reader inventories its load every `transit_every_s`, for `transit_burst_s`
    transit_every_s: float = 900.0
    transit_burst_s: float = 1.0
    transit_dbm: tuple[float, float] = (-66.0, -50.0)
    transit_far_db: float = 6.0  # the other antenna in the box sees it this much weaker

    def __post_init__(self) -> None:
        if not 1 <= self.round_hz <= 200:
            raise ValueError(f"round_hz must be 1–200 rounds/s, got {self.round_hz:g}")
        for name in ("miss_p", "cross_p", "parked_p", "round_jitter"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name):g}")
        if self.transit_every_s <= self.transit_burst_s:
            raise ValueError("transit_every_s must exceed transit_burst_s")

    @classmethod
    def compressed(cls) -> ReadModel:
        """Passes as real; parking, stocktakes and vehicle inventories minutes, not hours."""
        return cls(
            parked_p=0.3,
            parked_s=(20.0, 40.0),
            stocktake_every_s=60.0,
            stocktake_at_s=0.0,
            stocktake_walk_s=(0.3, 0.8),
            transit_every_s=10.0,
        )


@dataclass
class Radio:
    """Draws reads from a ReadModel with its own seeded random stream; numbers passes."""

    model: ReadModel = field(default_factory=ReadModel)
    seed: int | str = 0
    rng: random.Random = field(init=False)
    passes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"radio:{self.seed}")

    def _next_pass(self) -> int:
        self.passes += 1
        return self.passes

    def _period_ns(self, hz: float) -> int:
        jitter = self.model.round_jitter
        return int(NS_PER_S / hz * (1 + self.rng.uniform(-jitter, jitter)))

    def _rssi(self, mean_dbm: float) -> float:
        return round(mean_dbm + self.rng.gauss(0.0, self.model.noise_db), 1)

    def passing(
        self,
        epc: str,
        site: str,
        reader: str,
        center_ns: int,
        portal: Portal,
        *,
        outward: bool = False,
        overlapping: tuple[tuple[str, str], ...] = (),
    ) -> list[Sighting]:
        """A container moving through `portal`, closest to its middle at `center_ns`; the
        first antenna it meets is port 1 (inward) or the last port (`outward`). Overlapping
        readers (site, reader) see it weakly, at the same moments, in rounds of their own."""
        m, rng = self.model, self.rng
        pass_id = self._next_pass()
        speed = rng.uniform(*portal.speed_mps)
        ports = [
            (port, (i - (portal.antennas - 1) / 2) * portal.spacing_m * (-1 if outward else 1))
            for i, port in enumerate(range(1, portal.antennas + 1))
        ]
        # beyond this distance even a +3σ fade stays below sensitivity
        reach_m = portal.closest_m * 10 ** (
            (portal.peak_dbm - m.sensitivity_dbm + 3 * m.noise_db) / 40
        )
        half_path = math.sqrt(max(0.0, reach_m**2 - portal.closest_m**2))
        half_path += portal.spacing_m * (portal.antennas - 1) / 2
        start = center_ns - int(half_path / speed * NS_PER_S)
        end = center_ns + int(half_path / speed * NS_PER_S)

        def mean_dbm(t_ns: int, x_port: float) -> float:
            x = speed * (t_ns - center_ns) / NS_PER_S - x_port
            distance = math.hypot(portal.closest_m, x)
            return portal.peak_dbm - 40 * math.log10(distance / portal.closest_m)

        reads: list[Sighting] = []
        t = start + int(rng.uniform(0, NS_PER_S / m.round_hz))
        k = rng.randrange(portal.antennas)
        while t <= end:
            port, x_port = ports[k % portal.antennas]
            rssi = self._rssi(mean_dbm(t, x_port))
            if rssi >= m.sensitivity_dbm and rng.random() >= m.miss_p:
                reads.append(Sighting(t, site, reader, epc, rssi, port, "pass", pass_id))
            t += self._period_ns(m.round_hz)
            k += 1
        if not reads:  # a carried container is always seen: its closest round at least
            port, x_port = ports[0]
            rssi = round(max(mean_dbm(center_ns, x_port), m.sensitivity_dbm), 1)
            reads.append(Sighting(center_ns, site, reader, epc, rssi, port, "pass", pass_id))
        for other_site, other in overlapping:
            t = start + int(rng.uniform(0, NS_PER_S / m.round_hz))
            while t <= end:
                best = max(mean_dbm(t, x) for _, x in ports)
                rssi = self._rssi(best - m.cross_loss_db)
                if rssi >= m.sensitivity_dbm and rng.random() < m.cross_p:
                    reads.append(Sighting(t, other_site, other, epc, rssi, 1, "cross", pass_id))
                t += self._period_ns(m.round_hz)
        return reads

    def parked(
        self,
        epc: str,
        site: str,
        reader: str,
        start_ns: int,
        end_ns: int,
        antenna: int,
        portal: Portal,
    ) -> list[Sighting]:
        """A container standing in a reader's field from `start_ns` to `end_ns`: read seldom, at
        a weak RSSI that fades slowly (the tag does not move; people and forklifts do)."""
        m, rng = self.model, self.rng
        pass_id = self._next_pass()
        distance = rng.uniform(*m.parked_m)
        mean = portal.peak_dbm - 40 * math.log10(distance / portal.closest_m)
        fade = 0.0
        reads: list[Sighting] = []
        t = start_ns + int(rng.uniform(0, NS_PER_S / m.parked_hz))
        while t < end_ns:
            fade = 0.9 * fade + rng.gauss(0.0, m.noise_db * 0.45)  # slow: AR(1), σ ≈ noise
            rssi = self._rssi(mean + fade)
            if rssi >= m.sensitivity_dbm and rng.random() >= m.miss_p:
                reads.append(Sighting(t, site, reader, epc, rssi, antenna, "parked", pass_id))
            t += self._period_ns(m.parked_hz)
        return reads

    def stocktake(self, epcs: list[str], site: str, reader: str, start_ns: int) -> list[Sighting]:
        """A handheld walked round the storage room reading every container in `epcs`, one
        after the other, close up."""
        m, rng = self.model, self.rng
        reads: list[Sighting] = []
        t = start_ns
        for epc in epcs:
            pass_id = self._next_pass()
            t += int(rng.uniform(*m.stocktake_walk_s) * NS_PER_S)
            until = t + int(rng.uniform(*m.stocktake_read_s) * NS_PER_S)
            mean = rng.uniform(*m.stocktake_dbm)
            first = len(reads)
            while t < until:
                rssi = self._rssi(mean)
                if rssi >= m.sensitivity_dbm and rng.random() >= m.miss_p:
                    reads.append(Sighting(t, site, reader, epc, rssi, 1, "stocktake", pass_id))
                t += self._period_ns(m.stocktake_hz)
            if len(reads) == first:  # the operator holds the handheld there until it beeps
                reads.append(
                    Sighting(t, site, reader, epc, round(mean, 1), 1, "stocktake", pass_id)
                )
        return reads

    def transit(
        self, epc: str, site: str, reader: str, start_ns: int, end_ns: int, phase_ns: int
    ) -> list[Sighting]:
        """The vehicle reader's inventories of its load, every `transit_every_s` (its schedule
        fixed by `phase_ns`, so every container on board is read in the same bursts), while
        the container is on board from `start_ns` to `end_ns`."""
        m, rng = self.model, self.rng
        every = int(m.transit_every_s * NS_PER_S)
        burst = int(m.transit_burst_s * NS_PER_S)
        near = rng.choice((1, 2))
        mean = rng.uniform(*m.transit_dbm)
        reads: list[Sighting] = []
        # the first inventory after loading (the reader runs one when its door closes)
        bursts = [start_ns]
        t = start_ns - (start_ns - phase_ns) % every + every
        while t + burst <= end_ns:
            bursts.append(t)
            t += every
        for begin in bursts:
            pass_id = self._next_pass()
            t = begin + int(rng.uniform(0, NS_PER_S / m.round_hz))
            k = 0
            first = len(reads)
            while t < begin + burst:
                port = 1 + (k % 2)
                level = mean - (0.0 if port == near else m.transit_far_db)
                rssi = self._rssi(level)
                if rssi >= m.sensitivity_dbm and rng.random() >= m.miss_p:
                    reads.append(Sighting(t, site, reader, epc, rssi, port, "transit", pass_id))
                t += self._period_ns(m.round_hz)
                k += 1
            if len(reads) == first:
                reads.append(
                    Sighting(begin, site, reader, epc, round(mean, 1), near, "transit", pass_id)
                )
        return reads
