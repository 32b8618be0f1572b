"""Issue #18's example as a reader reports it: one 150 kg drum of 废矿物油 (HW08) carried in
and, four hours later, out of a store, each door reading it 25 times a second for 8 s.

Never compute the expected custody from hazwatch's code here: what is expected is what
physically happened (one stage entered per door), counted from the story itself.

The story, at one producer's store (its own registry, `REGISTRY`):
- the drum is weighed (150.0 kg, three readings of a settled scale) and registered;
- 10 min later it is carried in through the storage-in door `gate-03`: 208 inventory rounds
  at 25 a second, 8 of them missing it (200 reads), RSSI rising and falling as it passes the
  door's two antennas;
- from a minute later it stands parked just inside, at the edge of gate-03's field, for an
  hour: every 30 s the door reads it for about a second, weakly;
- two hours after the carry-in a stocktake with the store's handheld reads it again;
- four hours after the carry-in it is carried out through the storage-out door `gate-04`,
  200 reads as on the way in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import orjson

SITE = "jy-0012"
EPC = "E28011606000020A1B2C3D4E"
BATCH = "B-HW08-0150"
WASTE_CODE = "900-249-08"
KG = 150.0
NS_PER_S = 1_000_000_000
ROUND_NS = NS_PER_S // 25  # 25 inventory rounds a second
REGISTRY = f"""\
[[site]]
id = "{SITE}"
name = "某化工企业 危废暂存间"
role = "producer"
lat = 35.090
lon = 112.602

[[reader]]
id = "gate-03"
site = "{SITE}"
location = "storage_in"

[[reader]]
id = "gate-04"
site = "{SITE}"
location = "storage_out"

# the store's handheld, used for stocktakes: what it reads is in the store
[[reader]]
id = "hh-01"
site = "{SITE}"
location = "storage_in"

[[scale]]
id = "s1"
site = "{SITE}"
location = "generation"
"""


@dataclass(frozen=True, slots=True)
class Door:
    """What a door's reader reported of the drum carried through it."""

    reader: str
    first_ns: int
    last_ns: int
    reads: int
    peak_rssi: float
    antenna: int  # of the first read at the peak


@dataclass(frozen=True, slots=True)
class Example:
    t0_ns: int  # the registration
    messages: list[tuple[str, bytes]]  # in the order the devices sent them
    reads: int  # tag reads among them
    carried_in: Door
    carried_out: Door
    end_ns: int  # the last message's time


def _message(kind: str, device: str, body: dict[str, object]) -> tuple[str, bytes]:
    family = {"read": "rfid", "weight": "scale", "batch": "terminal"}[kind]
    return f"hw/{SITE}/{family}/{device}/{kind}", orjson.dumps(body)


def _ms(ts_ns: int) -> int:
    return ts_ns // 1_000_000


def _read(reader: str, ts_ns: int, rssi: float, antenna: int) -> tuple[str, bytes]:
    # epoch milliseconds, as many readers send: every read here falls on a whole ms
    return _message(
        "read", reader, {"ts": _ms(ts_ns), "epc": EPC, "rssi": round(rssi, 1), "antenna": antenna}
    )


def _carry(reader: str, start_ns: int, rng: random.Random) -> tuple[list[tuple[str, bytes]], Door]:
    """208 rounds at 25/s, 8 missed: 200 reads over ~8.3 s, RSSI up to about -50 dBm."""
    rounds, missed = 208, set(rng.sample(range(1, 207), 8))
    out, kept = [], []
    for k in range(rounds):
        if k in missed:
            continue
        ts = start_ns + k * ROUND_NS
        # nearest the door's antennas in the middle of the pass; fading adds a dB or two
        rssi = -78.0 + 28.0 * math.sin(math.pi * (k + 0.5) / rounds) + rng.gauss(0, 1.0)
        antenna = 1 if k < rounds // 2 else 2  # the port the drum is passing
        out.append(_read(reader, ts, rssi, antenna))
        kept.append((ts, round(rssi, 1), antenna))
    peak = max(r for _, r, _ in kept)
    first_peak = next((ts, a) for ts, r, a in kept if r == peak)
    door = Door(reader, kept[0][0], kept[-1][0], len(kept), peak, first_peak[1])
    return out, door


def example(t0_ns: int, seed: int = 18, *, parked: bool = True) -> Example:
    """The story with its registration at `t0_ns` (device times on whole milliseconds);
    `parked=False`: the issue's example as it tells it, the two doors' reads only (no hour
    parked by the door, no stocktake)."""
    t0_ns -= t0_ns % 1_000_000
    rng = random.Random(seed)
    messages = [
        _message("weight", "s1", {"ts": _ms(t0_ns) - 60_000 + 500 * i, "epc": EPC,
                                  "net_kg": KG, "stable": True})
        for i in range(3)
    ]  # fmt: skip
    registration = {
        "ts": _ms(t0_ns),
        "epc": EPC,
        "batch": BATCH,
        "waste_code": WASTE_CODE,
        "waste_name": "废矿物油",
        "waste_category": "HW08",
        "container_type": "铁桶",
    }
    messages.append(_message("batch", "t1", registration))
    carry_in_ns = t0_ns + 600 * NS_PER_S
    reads_in, carried_in = _carry("gate-03", carry_in_ns, rng)
    parked_reads = []
    for burst in range(120):  # an hour, a burst every 30 s
        start = carry_in_ns + 60 * NS_PER_S + burst * 30 * NS_PER_S
        for k in range(rng.randint(15, 30)):
            if rng.random() < 0.2:
                continue  # rounds that miss a tag at the edge of the field
            parked_reads.append(_read("gate-03", start + k * ROUND_NS, -73 + rng.gauss(0, 1.5), 2))
    stocktake_ns = carry_in_ns + 2 * 3600 * NS_PER_S
    stocktake = [
        _read("hh-01", stocktake_ns + k * 60_000_000, -58 + rng.gauss(0, 2), 1) for k in range(12)
    ]
    reads_out, carried_out = _carry("gate-04", carry_in_ns + 4 * 3600 * NS_PER_S, rng)
    reads = reads_in + reads_out
    if parked:
        reads = reads_in + parked_reads + stocktake + reads_out
    return Example(
        t0_ns,
        messages + reads,
        len(reads),
        carried_in,
        carried_out,
        carried_out.last_ns,
    )
