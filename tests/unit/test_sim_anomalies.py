"""The simulator's anomalies as data: who plays which, what a covered camera sends, the site's
registry, and `--faults` naming them (the broker run is tests/integration/test_anomalies_e2e.py)."""

from __future__ import annotations

import asyncio
import time
import tomllib

import orjson
import pytest

from hazwatch.devices.decode import decode
from hazwatch.devices.registry import RegistryContext, parse_registry
from hazwatch.simulators.anomalies import DeviceAnomaly, roles, site_registry
from hazwatch.simulators.faults import FaultPlan, InjectedFault
from hazwatch.simulators.fleet import FleetConfig
from hazwatch.simulators.payloads import FAMILIES, DeviceGenerator
from hazwatch.streams.video.rules import FrameFacts, VideoRules
from hazwatch.streams.video.settings import VideoRuleSettings

NOW_CTX = RegistryContext(None)


def test_faults_name_anomalies_with_or_without_a_dash_and_refuse_a_rate() -> None:
    plan = FaultPlan.parse("offline, blind-read ,bad_json:0.02")
    assert plan.anomalies == {"offline", "blind_read"} and plan.rates == {"bad_json": 0.02}
    with pytest.raises(ValueError, match="made once per run, it has no rate"):
        FaultPlan.parse("offline:0.1")
    with pytest.raises(ValueError, match="unknown fault 'offlien'"):
        FaultPlan(anomalies=frozenset({"offlien"}))


def test_a_fleet_with_anomalies_needs_a_duration_and_devices_enough() -> None:
    plan = FaultPlan.parse("offline,silent,blind_read")
    with pytest.raises(ValueError, match="give a duration, not a count"):
        FleetConfig(faults=plan, count=100, duration_s=None, devices=3)
    with pytest.raises(ValueError, match=r"need 2 camera devices.*--devices 2"):
        FleetConfig(faults=FaultPlan.parse("silent,blind_read"), devices=1)
    FleetConfig(faults=plan, devices=3)  # one device each


def test_each_anomaly_on_its_own_devices_with_its_alerts() -> None:
    cast = roles({"offline", "blind_read"}, FAMILIES, 2, "sim-01")
    assert {(k, r.anomaly) for k, r in cast.items()} == {
        (("camera", "cam-01"), "blind_read"),
        (("rfid", "gate-01"), "blind_read"),
        (("rfid", "gate-02"), "offline"),
        (("scale", "s-01"), "offline"),
        (("terminal", "t-01"), "offline"),
        (("air", "aq-01"), "offline"),
        (("camera", "cam-02"), "offline"),
    }
    assert cast[("rfid", "gate-01")].alerts == (("blind_read", "sim-01/gate-01"),)
    assert cast[("air", "aq-01")].alerts == (("device_offline", "sim-01/air/aq-01"),)
    silent = roles({"silent"}, FAMILIES, 1, "s")
    assert sorted(silent) == [("air", "aq-01"), ("camera", "cam-01")]  # clocked families


def test_the_site_registry_lists_every_device_and_links_camera_n_to_reader_n() -> None:
    registry = parse_registry(tomllib.loads(site_registry("sim-01", FAMILIES, 3)))
    ctx = RegistryContext(None, registry)
    for family in FAMILIES:
        for device in ("01", "02", "03"):
            prefix = {"rfid": "gate", "scale": "s", "terminal": "t", "air": "aq", "camera": "cam"}
            assert registry.knows("sim-01", family, f"{prefix[family]}-{device}")
    assert ctx.cameras_watching("sim-01", "gate-01") == ("cam-01",)
    assert ctx.reader_location("sim-01", "gate-01") == "storage_in"
    assert ctx.reader_location("sim-01", "gate-02") == "storage_out"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.faults: list[InjectedFault] = []

    async def abort(self) -> None:
        self.calls.append("abort")

    async def connect(self) -> None:
        self.calls.append("connect")

    def record(self, fault: InjectedFault) -> None:
        self.faults.append(fault)


def test_offline_drops_the_connection_in_its_window_and_connects_after() -> None:
    role = roles({"offline"}, ("scale",), 1, "sim-01")[("scale", "s-01")]
    anomaly, device = DeviceAnomaly(role, "sim-01", 10, 19), Recorder()  # 19 + 1: no camera

    async def steps() -> list[bool]:
        return [await anomaly.step(device, t) for t in (5, 10, 15, 20, 25)]

    assert asyncio.run(steps()) == [False, True, True, False, False]
    assert device.calls == ["abort", "connect"]
    (fault,) = device.faults
    assert fault.kind == "offline" and fault.message.payload == b'{"online":false}'
    assert fault.alerts == (("device_offline", "sim-01/scale/s-01"),)


def test_a_covered_cameras_frames_are_what_the_tamper_rule_calls_covered() -> None:
    role = roles({"blind_read"}, FAMILIES, 1, "sim-01")[("camera", "cam-01")]
    anomaly, device = DeviceAnomaly(role, "sim-01", 1, 2), Recorder()
    gen = DeviceGenerator("sim-01", "camera", "cam-01", seed=1)
    rules = VideoRules(VideoRuleSettings())
    found = []
    for t in (0.0, 1.2, 1.4, 1.6, 2.5):
        assert asyncio.run(anomaly.step(device, t)) is False  # a covered camera still sends
        message = anomaly.shape(gen.next())
        record = decode(message.topic, message.payload, NOW_CTX, now_ns=time.time_ns()).record
        facts = FrameFacts(
            "sim-01", "cam-01", record.ts, record.seq, record.brightness, record.sharpness,
            record.motion, record.occlusion, record.scene_change,
        )  # fmt: skip
        found += [(f.rule, f.active) for f in rules.frame(facts)]
    assert ("tamper_occlusion", True) in found and ("tamper_occlusion", False) in found
    assert orjson.loads(anomaly.shape(gen.next()).payload)["occlusion"] < 0.6  # after: itself
