"""The clocks StreamProcessor: the offsets the ingest pipeline measured → /metrics, the store,
and clock_skew raised and cleared.

Never measure here: the pipeline feeds the estimator (hazwatch.devices.clock_offset) with every
message, in the order received; this reads what it measured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from prometheus_client import Gauge

from hazwatch.alerts.model import AlertSignal, AlertSink
from hazwatch.base.points import Point
from hazwatch.devices.clock_offset import WINDOW, DeviceClocks, Key
from hazwatch.devices.decode import Decoded
from hazwatch.devices.registry import Registry, RegistryContext
from hazwatch.devices.timeparse import NS_PER_S
from hazwatch.streams.clocks.rules import SEVERITY, describe, skewed, subject
from hazwatch.streams.clocks.settings import ClockSettings
from hazwatch.streams.clocks.store import ClockRow, ClockStore

log = logging.getLogger("hazwatch.clocks")

# Labelled only by devices the registry lists: a topic's device id is the device's own word,
# and an unbounded label set would be a memory leak in every scraper too.
OFFSET = Gauge(
    "hazwatch_device_clock_offset_seconds",
    "A registered device's clock offset: receive time − device time (positive: the device's "
    "clock is slow), the minimum over the window; absent until measured",
    ["site", "family", "device"],
)
# The registry's tables, by the topic family their devices publish under.
FORGET_AFTER_NS = 30 * 86400 * NS_PER_S  # a device silent this long is measured afresh
PRUNE_EVERY_NS = 3600 * NS_PER_S


def registered(registry: Registry) -> frozenset[Key]:
    """(site, family, device) of every device the registry lists."""
    keys: set[Key] = set()
    for table, family in (
        (registry.readers, "rfid"),
        (registry.scales, "scale"),
        (registry.stations, "air"),
        (registry.cameras, "camera"),
        (registry.terminals, "terminal"),
    ):
        keys.update((site, family, device) for site, device in table)
    return frozenset(keys)


class ClockProcessor:
    """StreamProcessor `clocks`: per registered device, its offset's gauge and clock_skew."""

    name = "clocks"

    def __init__(
        self,
        clocks: DeviceClocks,
        alerts: AlertSink,
        registry: RegistryContext,
        store: ClockStore | None = None,
        *,
        settings: ClockSettings | None = None,
    ) -> None:
        self.clocks = clocks
        self.alerts = alerts
        self.registry = registry
        self.store = store
        self.settings = settings if settings is not None else ClockSettings()
        self._skewed: dict[Key, bool] = {}
        self._touched: set[Key] = set()  # devices heard from since the last save
        self._checked: dict[Key, int] = {}  # the offset each was last checked at
        self._gauged: set[Key] = set()
        self._version = -1
        self._watched: frozenset[Key] = frozenset()
        self._next_prune = 0
        self._restored: set[Key] = set()  # shown in /metrics at the first tick
        if store is not None:
            for key, (state, was_skewed) in store.states().items():
                clocks.restore(key, state)
                self._skewed[key] = was_skewed
                self._restored.add(key)

    def _sync_registry(self) -> None:
        self.registry.refresh()
        if self.registry.version != self._version:
            self._version = self.registry.version
            self._watched = registered(self.registry.current)
            for key in self._gauged - self._watched:
                OFFSET.remove(*key)
            self._gauged &= self._watched

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        """Check the devices whose measured offset moved (most messages move none)."""
        moved: set[Key] = set()
        touched, checked = self._touched, self._checked
        for decoded in batch:
            clock = decoded.clock
            if clock is None:
                continue
            topic = decoded.topic
            key = (topic.site, topic.family, topic.device)
            touched.add(key)
            if clock.basis == WINDOW and checked.get(key) != clock.offset_ns:
                moved.add(key)
        if moved:
            self._check(moved, now_ns)
        return []

    def tick(self, now_ns: int) -> list[Point]:
        dirty = self.clocks.take_dirty()
        if self._restored:
            dirty = sorted(self._restored.union(dirty))
            self._restored = set()
        self._check(dirty, now_ns)
        if self.store is not None:
            keys = self._touched.union(dirty)
            self._touched = set()
            rows = []
            for key in sorted(keys):
                estimate = self.clocks.estimate(key)
                state = self.clocks.export(key)
                if estimate is not None and state is not None:
                    rows.append(ClockRow(estimate, self._skewed.get(key, False), state))
            self.store.save(rows)
        if now_ns >= self._next_prune:
            self._next_prune = now_ns + PRUNE_EVERY_NS
            gone = self.clocks.unseen_since(now_ns - FORGET_AFTER_NS)
            if gone:
                self.clocks.forget(gone)
                if self.store is not None:
                    self.store.forget(gone)
                for key in gone:
                    self._skewed.pop(key, None)
                    self._checked.pop(key, None)
        return []

    def _check(self, keys: Iterable[Key], now_ns: int) -> None:
        """Gauge and clock_skew of each registered device among `keys` whose offset is known."""
        self._sync_registry()
        for key in keys:
            if key not in self._watched:
                continue
            estimate = self.clocks.estimate(key)
            if estimate is None or estimate.offset_ns is None:
                continue
            offset = estimate.offset_ns
            self._checked[key] = offset
            OFFSET.labels(*key).set(offset / NS_PER_S)
            self._gauged.add(key)
            was = self._skewed.get(key, False)
            now_skewed = skewed(offset, was, self.settings)
            if now_skewed == was:
                continue
            self._skewed[key] = now_skewed
            self._touched.add(key)
            site, family, device = key
            if now_skewed:
                self.alerts.raise_alert(
                    AlertSignal(
                        rule="clock_skew",
                        subject=subject(*key),
                        severity=SEVERITY["clock_skew"],
                        message=(
                            f"the clock of {family} {site}/{device} is {describe(offset)} "
                            f"(receive − device time, the least of {estimate.samples} "
                            f"messages; tolerance {self.settings.tolerance_s:g} s): custody "
                            "uses the corrected time"
                        ),
                        site=site,
                        at_ns=now_ns,
                        details={
                            "offset_s": round(offset / NS_PER_S, 3),
                            "family": family,
                            "samples": estimate.samples,
                            "tolerance_s": self.settings.tolerance_s,
                        },
                    )
                )
            else:
                self.alerts.clear("clock_skew", subject(*key), now_ns)
