"""The clocks processor: /metrics and clock_skew for the registry's devices only, bounded."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices import registry as device_registry
from hazwatch.devices.clock_offset import DeviceClocks
from hazwatch.streams.clocks.processor import OFFSET, ClockProcessor
from hazwatch.streams.clocks.rules import skewed
from hazwatch.streams.clocks.settings import ClockSettings
from hazwatch.streams.clocks.store import ClockStore
from tests.samples import REGISTRY_FILE

S = 1_000_000_000
T0 = 1_790_000_000 * S
GATE = ("tr-01", "rfid", "veh-01")  # a vehicle reader
STRANGER = ("tr-01", "rfid", "not-registered")


def gauge(key: tuple[str, str, str]) -> float | None:
    site, family, device = key
    labels = {"site": site, "family": family, "device": device}
    return REGISTRY.get_sample_value("hazwatch_device_clock_offset_seconds", labels)


def slow(clocks: DeviceClocks, key: tuple[str, str, str], seconds: int, start: int = 0) -> None:
    for i in range(start, start + seconds):
        clocks.observe(key, T0 + i * S + S // 10, T0 + i * S - 900 * S)


def test_only_registered_devices_get_a_gauge_and_an_alert_and_the_gauge_leaves_with_them(
    tmp_path: Path,
) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    registry = device_registry.load_file(REGISTRY_FILE)
    device_registry.save(db, registry, "test", T0)
    sink, clocks = ListSink(), DeviceClocks()
    processor = ClockProcessor(
        clocks, sink, device_registry.RegistryContext(db, refresh_s=0), ClockStore(db)
    )
    slow(clocks, GATE, 90)
    slow(clocks, STRANGER, 90)
    processor.tick(T0 + 90 * S)
    assert gauge(GATE) is not None and 900 < gauge(GATE) < 901  # type: ignore[operator]
    assert gauge(STRANGER) is None
    assert [s.subject for s in sink.raised] == ["tr-01/rfid/veh-01"]
    # both are measured and shown in the API's store; the stranger is never alerted on
    store = ClockStore(db)
    assert {r["device"] for r in store.list(site="tr-01")} == {"veh-01", "not-registered"}
    # the reader leaves the registry: its gauge goes with it
    readers = {k: r for k, r in registry.readers.items() if r.id != "veh-01"}
    device_registry.save(db, device_registry.Registry(registry.sites, readers), "test", T0)
    slow(clocks, GATE, 10, start=90)  # it still sends: measured, but no longer shown
    processor.tick(T0 + 101 * S)
    assert gauge(GATE) is None


def test_a_restart_shows_the_kept_offsets_at_once(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    device_registry.save(db, device_registry.load_file(REGISTRY_FILE), "test", T0)
    clocks, sink = DeviceClocks(), ListSink()
    context = device_registry.RegistryContext(db, refresh_s=0)
    processor = ClockProcessor(clocks, sink, context, ClockStore(db))
    slow(clocks, GATE, 90)
    processor.tick(T0 + 90 * S)
    OFFSET.remove(*GATE)  # a new process: no gauge yet
    again = ClockProcessor(DeviceClocks(), sink, context, ClockStore(db))
    again.tick(T0 + 95 * S)  # before the reader sends again
    assert gauge(GATE) is not None and 900 < gauge(GATE) < 901  # type: ignore[operator]
    assert len(sink.raised) == 1  # and it was alerted once


def test_a_device_silent_for_a_month_is_forgotten(tmp_path: Path) -> None:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    clocks = DeviceClocks()
    store = ClockStore(db)
    processor = ClockProcessor(clocks, ListSink(), device_registry.RegistryContext(db), store)
    slow(clocks, GATE, 90)
    processor.tick(T0 + 90 * S)
    assert store.get(*GATE) is not None
    processor.tick(T0 + 31 * 86400 * S)
    assert store.get(*GATE) is None and len(clocks) == 0


def test_skew_is_raised_past_the_tolerance_and_cleared_below_it_less_the_step() -> None:
    settings = ClockSettings()  # 30 s, step 2 s
    assert not skewed(30 * S, False, settings) and skewed(30 * S + 1, False, settings)
    assert skewed(29 * S, True, settings)  # hovering at the tolerance: no flapping
    assert not skewed(28 * S, True, settings) and not skewed(-27 * S, True, settings)
    assert skewed(-31 * S, False, settings)
