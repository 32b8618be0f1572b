"""The presence StreamProcessor: every registered device's messages → its last-seen time, its
last will → device_offline raised, its silence past its family's limit → raised on tick, any
message after → cleared.

Never judge a device the registry does not list, and never raise what another worker raised:
the store's conditional updates decide (store.py). Rules are rules.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hazwatch.alerts.model import AlertSignal, AlertSink
from hazwatch.base.points import Point
from hazwatch.devices.decode import Decoded
from hazwatch.devices.registry import RegistryContext
from hazwatch.streams.presence.rules import (
    DEVICE_OFFLINE,
    SEVERITY,
    SILENCE,
    cadence_of,
    finer,
    is_silent,
    offline_message,
    offline_reason,
    silent_limit_ns,
    subject,
)
from hazwatch.streams.presence.settings import NS_PER_S, PresenceSettings
from hazwatch.streams.presence.store import Key, PresenceRow, PresenceStore

log = logging.getLogger("hazwatch.presence")
# Last-seen times reach the store at most this often per device between ticks (and at every
# tick): a twentieth of the family's limit, at least a second, a minute when it has none.
MIN_TOUCH_NS = NS_PER_S
NO_LIMIT_TOUCH_NS = 60 * NS_PER_S


@dataclass(slots=True)
class _Device:
    seen_ns: int = 0  # last heard, receiver's clock
    written_ns: int = 0  # the last-seen time the store has
    offline: str | None = None  # why it is offline (rules.LAST_WILL, ANNOUNCED, SILENCE)
    since_ns: int = 0
    cadence: str | None = None
    cadence_written: str | None = None


def _always() -> bool:
    return True


class PresenceProcessor:
    """StreamProcessor `presence`: device_offline of every registered device."""

    name = "presence"

    def __init__(
        self,
        alerts: AlertSink,
        registry: RegistryContext,
        store: PresenceStore | None = None,
        *,
        settings: PresenceSettings | None = None,
        listening: Callable[[], bool] = _always,
    ) -> None:
        """`listening`: whether the receiver hears the broker now (the consumer's connection);
        while it does not, nobody is silent, and once it does again silence counts afresh."""
        self.alerts = alerts
        self.registry = registry
        self.store = store
        self.settings = settings if settings is not None else PresenceSettings()
        self.listening = listening
        self.devices: dict[Key, _Device] = {}
        self.watched_since_ns: int | None = None  # silence counts from here at the earliest
        if store is not None:
            for key, row in store.load().items():
                self.devices[key] = _from_row(row)

    def offline_since(self, site: str, family: str, device: str) -> int | None:
        """Since when device_offline holds for the device (receiver's clock), None when it
        does not, as this worker last saw the store (its own changes at once, other workers'
        at each tick)."""
        dev = self.devices.get((site, family, device))
        return None if dev is None or dev.offline is None else dev.since_ns

    # ── messages ──

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        if self.watched_since_ns is None:
            self.watched_since_ns = now_ns
        # per device, what its last message of the batch says (a will and a reconnect in one
        # batch is a device that is back), and the finest cadence it showed
        last: dict[Key, str | None] = {}  # None: heard; else the offline reason
        cadences: dict[Key, str | None] = {}
        for d in batch:
            topic = d.topic
            key = (topic.site, topic.family, topic.device)
            if key not in last and not self.registry.knows(*key):
                continue
            if d.kind == "status" and not d.record.online:
                last[key] = offline_reason(d.record.ts is not None)
            else:
                last[key] = None
                cadences[key] = finer(cadences.get(key), cadence_of(d.record))
        touches: list[tuple[Key, int, str | None]] = []
        for key, gone in last.items():
            dev = self.devices.setdefault(key, _Device())
            if gone is not None:
                if dev.offline is None:
                    self._offline(key, dev, gone, now_ns, seen_until_ns=now_ns)
                continue
            dev.seen_ns = max(dev.seen_ns, now_ns)
            dev.cadence = finer(dev.cadence, cadences.get(key))
            if dev.offline is not None:
                self._back(key, dev, now_ns)
            elif self._due(key, dev, now_ns):
                touches.append((key, dev.seen_ns, dev.cadence))
        self._write(touches)
        return []

    def _due(self, key: Key, dev: _Device, now_ns: int) -> bool:
        if dev.cadence != dev.cadence_written:
            return True
        limit = silent_limit_ns(self.settings, key[1], dev.cadence)
        every = max(MIN_TOUCH_NS, limit // 20) if limit else NO_LIMIT_TOUCH_NS
        return now_ns - dev.written_ns >= every

    def _write(self, touches: list[tuple[Key, int, str | None]]) -> None:
        if not touches:
            return
        if self.store is not None:
            self.store.touch(touches)
        for key, seen_ns, cadence in touches:
            dev = self.devices[key]
            dev.written_ns, dev.cadence_written = seen_ns, cadence

    # ── time ──

    def tick(self, now_ns: int) -> list[Point]:
        if not self.listening():
            self.watched_since_ns = None  # silence counts afresh once the broker is heard again
            return []
        if self.watched_since_ns is None:
            self.watched_since_ns = now_ns
        self._write(
            [
                (key, dev.seen_ns, dev.cadence)
                for key, dev in self.devices.items()
                if dev.offline is None
                and (dev.seen_ns > dev.written_ns or dev.cadence != dev.cadence_written)
            ]
        )
        if self.store is not None:
            self._sync(now_ns)
        self._silence(now_ns)
        return []

    def _sync(self, now_ns: int) -> None:
        """What other workers did: devices they marked offline, devices they heard again."""
        assert self.store is not None
        for key in self.store.heard_since_offline():
            self.alerts.clear(DEVICE_OFFLINE, subject(*key), now_ns)
        for key, row in self.store.load().items():
            dev = self.devices.setdefault(key, _Device())
            dev.offline, dev.since_ns = row.offline, row.since_ns or 0
            if row.last_seen_ns > dev.seen_ns:
                dev.seen_ns = dev.written_ns = row.last_seen_ns
            dev.cadence = dev.cadence_written = finer(dev.cadence, row.cadence)

    def _silence(self, now_ns: int) -> None:
        assert self.watched_since_ns is not None
        for key, dev in list(self.devices.items()):
            if dev.offline is not None or not dev.seen_ns:
                continue
            limit = silent_limit_ns(self.settings, key[1], dev.cadence)
            if not is_silent(dev.seen_ns, self.watched_since_ns, now_ns, limit):
                continue
            if not self.registry.knows(*key):
                continue  # dropped from the registry since
            self._offline(key, dev, SILENCE, now_ns, seen_until_ns=dev.seen_ns, limit_ns=limit)

    # ── changes ──

    def _offline(
        self,
        key: Key,
        dev: _Device,
        reason: str,
        now_ns: int,
        *,
        seen_until_ns: int,
        limit_ns: int = 0,
    ) -> None:
        if self.store is not None and not self.store.went_offline(
            key, reason, now_ns, seen_until_ns
        ):
            return  # another worker marked it, or heard it meanwhile: the next sync tells
        dev.offline, dev.since_ns = reason, now_ns
        site, family, device = key
        try:
            self.alerts.raise_alert(
                AlertSignal(
                    rule=DEVICE_OFFLINE,
                    subject=subject(*key),
                    severity=SEVERITY[DEVICE_OFFLINE],
                    message=offline_message(
                        site,
                        family,
                        device,
                        reason,
                        now_ns=now_ns,
                        last_seen_ns=dev.seen_ns,
                        limit_ns=limit_ns,
                    ),
                    site=site,
                    at_ns=now_ns,
                    details={
                        "family": family,
                        "device": device,
                        "reason": reason,
                        "last_seen_ns": dev.seen_ns or None,
                        "limit_s": limit_ns / NS_PER_S if limit_ns else None,
                    },
                )
            )
        except Exception:
            # keep nothing of a call that raised: the next message or tick tries again
            dev.offline, dev.since_ns = None, 0
            if self.store is not None:
                self.store.undo_offline(key, now_ns)
            raise

    def _back(self, key: Key, dev: _Device, now_ns: int) -> None:
        if self.store is not None:
            back = self.store.came_back(key, now_ns, dev.cadence)
            dev.written_ns, dev.cadence_written = dev.seen_ns, dev.cadence
        else:
            back = True
        dev.offline, dev.since_ns = None, 0
        if back:
            self.alerts.clear(DEVICE_OFFLINE, subject(*key), now_ns)
        log.debug("presence: %s/%s/%s heard again", *key)


def _from_row(row: PresenceRow) -> _Device:
    return _Device(
        seen_ns=row.last_seen_ns,
        written_ns=row.last_seen_ns,
        offline=row.offline,
        since_ns=row.since_ns or 0,
        cadence=row.cadence,
        cadence_written=row.cadence,
    )
