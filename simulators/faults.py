"""Fault injection as data: which faults, how often, and what the service must say about each.

Never hide a fault: every one injected is returned as an InjectedFault with its expected reason,
and an anomaly (a device offline, a door no camera sees) with the alerts it must raise.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from hazwatch.devices.timeparse import NS_PER_S
from hazwatch.simulators.payloads import Message, rfc3339
from hazwatch.streams.presence.rules import DEVICE_OFFLINE
from hazwatch.streams.video.rules import BLIND_READ, TAMPER_OCCLUSION

# kind -> the dead-letter reason (PayloadError.reason) the service must give; None: accepted.
EXPECTED_REASON: dict[str, str | None] = {
    "bad_json": "bad_json",  # truncated JSON
    "missing_field": "missing_field",  # a required key left out
    "out_of_range": "out_of_range",  # an impossible number (negative weight, PM2.5 of 10^9)
    "bad_value": "bad_value",  # a malformed identifier (EPC not hex, waste code not of the List)
    "bad_type": "bad_type",  # a number sent as a word
    "bad_ts": "bad_ts",  # a time without a zone
    "future_ts": "future_ts",  # device clock ahead beyond the receiver's tolerance (300 s)
    "clock_behind": None,  # device clock behind: accepted, stamped with the device's time
    "duplicate": None,  # the same message published twice: one point (same identity)
    "lost_tag": None,  # an RFID read that never happens (nothing published)
    "outage": None,  # connection drops without DISCONNECT: the retained last will fires
}
# Anomalies: made once per run on purpose, from a third of the way in to two thirds
# (simulators/anomalies.py says which device does what), each with the rules it must raise,
# as the parts declare them (tests/unit/test_rules.py holds the two lists together).
ANOMALIES: dict[str, tuple[str, ...]] = {
    # one device of every family drops its connection: the broker publishes its will (and
    # the camera's door, still read at, is read unseen: blind_read)
    "offline": (DEVICE_OFFLINE, BLIND_READ),
    # an air station and a camera stop sending, still connected: their silence (and the
    # camera's door, when its reader reads, blind_read)
    "silent": (DEVICE_OFFLINE, BLIND_READ),
    # a storage door's camera covered while the door's reader reads: the camera's own
    # tamper_occlusion, and blind_read at the door
    "blind_read": (TAMPER_OCCLUSION, BLIND_READ),
}
FAULT_KINDS = (*EXPECTED_REASON, *ANOMALIES)
DEFAULT_FUTURE_SKEW_S = 900.0
DEFAULT_BEHIND_SKEW_S = 3600.0

# Required keys per topic kind (what missing_field may drop).
REQUIRED: dict[str, tuple[str, ...]] = {
    "read": ("ts", "epc"),
    "weight": ("ts", "epc", "net_kg"),
    "batch": ("ts", "epc", "batch", "waste_code"),
    "manifest": ("ts", "manifest", "batches", "receiver"),
    "reading": ("ts",),
    "frame": ("ts", "seq"),
    "status": ("online",),
}
# (key, impossible value) per topic kind for out_of_range; kinds without a number have none.
OUT_OF_RANGE: dict[str, tuple[tuple[str, object], ...]] = {
    "read": (("rssi", 99.0), ("antenna", 200)),
    "weight": (("net_kg", -3.2), ("net_kg", 250_000.0)),
    "manifest": (("planned_kg", -10.0), ("transit_limit_h", 0.0)),
    "reading": (("pm25", 1e9), ("rh", 140.0), ("wind_dir", 400.0)),
    "frame": (("motion", 1.7), ("seq", -1)),
}
BAD_VALUE: dict[str, tuple[tuple[str, object], ...]] = {
    "read": (("epc", "NOT-A-TAG"),),
    "weight": (("epc", "E28G"),),
    "batch": (("waste_code", "HW08"), ("form", "plasma")),
    "manifest": (("batches", []),),
    "reading": (("flag", "Q"),),
}
BAD_TYPE: dict[str, tuple[tuple[str, object], ...]] = {
    "read": (("rssi", "strong"),),
    "weight": (("net_kg", "heavy"),),
    "manifest": (("planned_kg", "a lot"),),
    "reading": (("pm25", "high"),),
    "frame": (("seq", "next"),),
}


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault in the ground truth. `message` is what was published (or would have been)."""

    kind: str
    message: Message
    expected_reason: str | None
    detail: str = ""
    # (rule, subject) of each alert the service must open for it (an anomaly), and clear
    # once it ends
    alerts: tuple[tuple[str, str], ...] = ()

    @property
    def rejected(self) -> bool:
        """The service must dead-letter this message (with `expected_reason`)."""
        return self.expected_reason is not None


@dataclass(frozen=True)
class FaultPlan:
    """Probability per generated message of each fault kind (at most one fault per message),
    and the anomalies of the run, each made once between the fractions `anomaly_window` of
    the run (a third of the way in to two thirds)."""

    rates: Mapping[str, float] = field(default_factory=dict)
    future_skew_s: float = DEFAULT_FUTURE_SKEW_S
    behind_skew_s: float = DEFAULT_BEHIND_SKEW_S
    anomalies: frozenset[str] = frozenset()
    anomaly_window: tuple[float, float] = (1 / 3, 2 / 3)

    def __post_init__(self) -> None:
        for name in self.anomalies:
            if name not in ANOMALIES:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_KINDS)})")
        start, end = self.anomaly_window
        if not 0 <= start < end <= 1:
            raise ValueError(f"anomaly window must be 0 ≤ start < end ≤ 1, got {start}, {end}")
        for kind, rate in self.rates.items():
            if kind not in EXPECTED_REASON:
                raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
            if not 0 <= rate <= 1:
                raise ValueError(f"fault {kind} rate must be between 0 and 1, got {rate}")
        if sum(self.rates.values()) > 1:
            raise ValueError(f"fault rates add up to {sum(self.rates.values()):g}, more than 1")
        if self.future_skew_s <= 300:
            raise ValueError("future_skew_s must exceed the receiver's 300 s tolerance")

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """`bad_json:0.01,future_ts:0.01,duplicate:0.02` (a kind alone means rate 0.01), and
        anomalies by name: `offline,blind-read` (`-` or `_`; an anomaly has no rate)."""
        rates: dict[str, float] = {}
        anomalies: set[str] = set()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            kind, _, rate = item.partition(":")
            name = kind.strip().replace("-", "_")
            if name in ANOMALIES:
                if rate:
                    raise ValueError(f"{name} is made once per run, it has no rate (got {rate!r})")
                anomalies.add(name)
                continue
            try:
                rates[kind.strip()] = float(rate) if rate else 0.01
            except ValueError:
                raise ValueError(f"fault {kind} rate must be a number, got {rate!r}") from None
        return cls(rates, anomalies=frozenset(anomalies))

    def choose(self, rng: random.Random) -> str | None:
        """The fault for the next message, or None (one draw per message, deterministic)."""
        if not self.rates:
            return None
        draw = rng.random()
        for kind, rate in self.rates.items():
            if draw < rate:
                return kind
            draw -= rate
        return None


def inject(kind: str, message: Message, rng: random.Random, plan: FaultPlan) -> InjectedFault:
    """The fault `kind` applied to `message`; a kind that cannot apply returns no-op 'clean'.

    Message-level faults (duplicate, lost_tag, outage) return the message unchanged: the
    publisher acts on them (publish twice, skip, drop the connection first).
    """
    reason = EXPECTED_REASON[kind]
    body = dict(message.body)
    if kind == "bad_json":
        payload = message.payload[: max(1, len(message.payload) // 2)]
        return InjectedFault(kind, _with(message, body, payload), reason, "truncated")
    if kind == "missing_field":
        key = rng.choice(REQUIRED[message.kind])
        del body[key]
        return InjectedFault(kind, _with(message, body), reason, key)
    if kind in ("out_of_range", "bad_value", "bad_type"):
        table = {"out_of_range": OUT_OF_RANGE, "bad_value": BAD_VALUE, "bad_type": BAD_TYPE}
        choices = table[kind].get(message.kind)
        if not choices:
            return InjectedFault("clean", message, None, f"{kind} has no field in {message.kind}")
        key, value = rng.choice(choices)
        body[key] = value
        return InjectedFault(kind, _with(message, body), reason, f"{key}={value!r}")
    if kind == "bad_ts":
        if message.ts_ns is None or "ts" not in body:
            return InjectedFault("clean", message, None, "no ts")
        # the zone cut off: a naive local time. Its microseconds stay, so that two reads of a
        # burst in one second, with one RSSI and antenna, stay two messages (the ground truth
        # counts each fault's bytes as they arrive)
        body["ts"] = rfc3339(message.ts_ns)[:26]
        return InjectedFault(kind, _with(message, body), reason, body["ts"])
    if kind in ("future_ts", "clock_behind"):
        if message.ts_ns is None or "ts" not in body:
            return InjectedFault("clean", message, None, "no ts")
        skew_s = plan.future_skew_s if kind == "future_ts" else -plan.behind_skew_s
        ts_ns = message.ts_ns + int(skew_s * NS_PER_S)
        body["ts"] = rfc3339(ts_ns)
        skewed = _with(message, body)
        skewed.ts_ns = ts_ns
        return InjectedFault(kind, skewed, reason, f"{skew_s:+.0f} s")
    if kind == "lost_tag" and message.family != "rfid":
        return InjectedFault("clean", message, None, "lost_tag applies to RFID reads only")
    return InjectedFault(kind, message, reason)


def _with(message: Message, body: dict[str, object], payload: bytes = b"") -> Message:
    return Message(
        message.topic,
        message.family,
        message.device,
        message.kind,
        body,
        message.ts_ns,
        message.key,
        payload or orjson.dumps(body),
    )
