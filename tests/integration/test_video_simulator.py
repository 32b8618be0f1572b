"""The camera simulator against a real broker: what the agent would send, and its faults."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hazwatch.alerts.model import ListSink
from hazwatch.devices.decode import decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.registry import Camera, Registry, RegistryContext
from hazwatch.simulators.camera import VideoFleet
from hazwatch.simulators.scenarios import get_scenario
from hazwatch.streams.presence.processor import PresenceProcessor
from hazwatch.streams.presence.rules import DEVICE_OFFLINE
from hazwatch.streams.video.processor import VideoProcessor
from hazwatch.streams.video.rules import FRAME_GAP, TAMPER_OCCLUSION
from tests.services import Mosquitto, wait_for

pytestmark = pytest.mark.integration


class Listener:
    def __init__(self, broker: Mosquitto, site: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{site}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(f"hw/{site}/camera/+/+", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_simulated_cameras_decode_and_drive_the_rules(mosquitto: Mosquitto) -> None:
    site = "sim-video"
    listener = Listener(mosquitto, site)
    wait_for(lambda: listener.client.is_connected(), 10, "listener")
    fleet = VideoFleet(
        site=site,
        cameras=3,
        rate=4.0,
        count=20,
        fast=True,
        gap_every=7,
        offline=("cam-03",),
        tampers={"cam-02": "occlusion"},
    )
    report = asyncio.run(fleet.run(mosquitto.url))
    assert report.ok and report.offline == ["cam-03"] and report.gaps_injected > 0
    frames = lambda: [m for m in listener.messages if m[0].endswith("/frame")]  # noqa: E731
    wait_for(lambda: len(frames()) == report.acked, 10, "every frame message")
    wait_for(
        lambda: any(
            m[0].endswith("cam-03/status") and m[1] == b'{"online":false}'
            for m in listener.messages
        ),
        10,
        "the last will",
    )
    listener.close()

    sink = ListSink()
    proc = VideoProcessor(sink)
    now = max(orjson.loads(p)["ts"] for t, p in frames()) * 1_000_000 + 1
    batch = [decode(t, p, NoRegistry(), now_ns=now) for t, p in listener.messages]  # all valid
    proc.process(batch, now)
    proc.tick(now + 11 * 1_000_000_000)  # frame gaps wait out their grace (confirm_grace_s)
    raised = {(s.rule, s.subject) for s in sink.raised}
    assert (FRAME_GAP, f"{site}/cam-01") in raised
    assert (TAMPER_OCCLUSION, f"{site}/cam-02") in raised
    # the cut camera's last will: device_offline, the presence part's (cameras registered)
    cameras = {(site, cam): Camera(cam, site) for cam in ("cam-01", "cam-02", "cam-03")}
    presence = PresenceProcessor(sink, RegistryContext(None, Registry(cameras=cameras)))
    presence.process(batch, now)
    raised = {(s.rule, s.subject) for s in sink.raised}
    assert (DEVICE_OFFLINE, f"{site}/camera/cam-03") in raised


def test_video_scenario_is_registered() -> None:
    scenario = get_scenario("video")(site="s", devices=2, rate=2.0, count=4, seed=1)
    assert scenario.name == "video" and scenario.steps[0].cameras == 2  # type: ignore[attr-defined]
