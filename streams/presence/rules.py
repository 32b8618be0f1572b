"""The presence part's rule, declared once, and its checks: pure functions of times and what a
message says, the settings passed in.

Never read a clock or a store here: receive times, last-seen times and settings are arguments.

Which clock: silence is measured on the receiver's clock (the time hazwatch took the
message), never the device's: a device clock set wrong must not make a device look silent,
and the last will has no time at all: its payload is fixed when the device connects and the
broker publishes it when it notices the device gone, so the time it is received is the best
there is of when the device went. A status saying online is a message like any other: it
counts at the time received, so "went offline" and "is back" are ordered on one clock.
"""

from __future__ import annotations

from typing import Any

from hazwatch.alerts.model import Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of, severities
from hazwatch.devices.air import AirReading
from hazwatch.devices.hj212 import Hj212Message
from hazwatch.streams.presence.settings import NS_PER_S, PresenceSettings

DEVICE_OFFLINE = "device_offline"
# why a device is offline (the `reason` of its alert's details)
LAST_WILL = "last_will"  # its connection dropped: the broker published its will
ANNOUNCED = "announced"  # it said so itself (a status with its own time) before leaving
SILENCE = "silence"  # nothing heard of it for longer than its family's limit
# an air station's cadence: what its data says of how often it reports
MINUTE = "minute"  # real-time or minute data (JSON readings, HJ 212 CN 2011, 2051)
HOUR = "hour"  # hourly or daily data only (CN 2061, 2031)
FAMILY_WORDS = {
    "rfid": ("RFID 读写器", "RFID reader"),
    "scale": ("称重设备", "scale"),
    "terminal": ("现场终端", "terminal"),
    "air": ("空气监测站", "air station"),
    "camera": ("摄像机", "camera"),
}

RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        DEVICE_OFFLINE,
        "presence",
        Severity.MAJOR,
        "site/family/device",
        "设备离线：登记在册的设备（读写器、称重设备、现场终端、空气监测站、摄像机）的 MQTT "
        "遗嘱（保留的 status 消息）报告离线，或超过该类设备的静默时限未收到其任何消息（按接收"
        "时间计；读写器、称重设备、终端默认只按遗嘱判定）；设备再次上报即自动恢复",
        "a registered device (RFID reader, scale, terminal, air station, camera) is offline: "
        "its retained MQTT last will says so, or nothing came from it for longer than its "
        "family's silence limit (receiver's clock; off by default for readers, scales and "
        "terminals, which are judged by their will); it clears when the device is heard again",
        defaults_of(
            PresenceSettings,
            "rfid_silent_s",
            "scale_silent_s",
            "terminal_silent_s",
            "air_silent_s",
            "air_hourly_silent_s",
            "camera_silent_s",
        ),
    ),
)
RULES = tuple(spec.id for spec in RULE_SPECS)
SEVERITY = severities(RULE_SPECS)


def subject(site: str, family: str, device: str) -> str:
    """What a device_offline alert is about: one device (a reader and a scale may share an id)."""
    return f"{site}/{family}/{device}"


def cadence_of(record: Any) -> str | None:
    """What a decoded message says of its air station's cadence; None when it says nothing
    (a status, an HJ 212 answer, another family's message)."""
    if isinstance(record, AirReading):
        return MINUTE
    if isinstance(record, Hj212Message) and record.data:
        return MINUTE if any(d.interval in ("rtd", "minute") for d in record.data) else HOUR
    return None


def finer(old: str | None, new: str | None) -> str | None:
    """A station's cadence once it sent `new`: minute data once seen stays the expectation."""
    return MINUTE if MINUTE in (old, new) else (new or old)


def silent_limit_ns(settings: PresenceSettings, family: str, cadence: str | None) -> int:
    """How long a device of `family` may be silent, in ns; 0: the silence rule is off for it.

    An air station is held to the minute limit once it has sent real-time or minute data, to
    the hourly one before (a station that sends only hourly data must not alert between two).
    """
    if family == "air":
        seconds = settings.air_silent_s if cadence == MINUTE else settings.air_hourly_silent_s
    else:
        seconds = float(getattr(settings, f"{family}_silent_s", 0.0))
    return int(seconds * NS_PER_S)


def is_silent(last_seen_ns: int, watched_since_ns: int, now_ns: int, limit_ns: int) -> bool:
    """Nothing heard for longer than `limit_ns`, counted from the later of the last message and
    the time this receiver started listening (after a restart or a lost broker connection,
    silence counts afresh: what the broker kept meanwhile is still to come)."""
    return limit_ns > 0 and now_ns - max(last_seen_ns, watched_since_ns) > limit_ns


def offline_reason(has_own_time: bool) -> str:
    """Why an offline status says the device is gone: a status with the device's own time is
    one it sent before leaving; the will has none (fixed at connect, published by the broker)."""
    return ANNOUNCED if has_own_time else LAST_WILL


def describe_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def offline_message(
    site: str,
    family: str,
    device: str,
    reason: str,
    *,
    now_ns: int,
    last_seen_ns: int = 0,
    limit_ns: int = 0,
) -> str:
    """What the alert says (English; the Chinese is the rule's name and the notifier's)."""
    what = f"{FAMILY_WORDS.get(family, (family, family))[1]} {device} at {site}"
    if reason == LAST_WILL:
        return f"{what} is offline: its connection dropped (MQTT last will)"
    if reason == ANNOUNCED:
        return f"{what} is offline: it said so before leaving"
    heard = (
        f"last heard {describe_s((now_ns - last_seen_ns) / NS_PER_S)} ago"
        if last_seen_ns
        else "not heard since hazwatch started listening"
    )
    return (
        f"{what} is offline: nothing from it for over {describe_s(limit_ns / NS_PER_S)} ({heard})"
    )
