"""Two `hazwatch serve` workers on one shared subscription, one InfluxDB, one PostgreSQL: a camera
and the RFID reader at its door split between them raise no video alert until frames are lost.

Never conclude from a quiet moment alone: the test waits until each worker has judged what it saw.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hazwatch.base.statedb import StateDB
from hazwatch.devices.topics import build_topic
from hazwatch.simulators.camera import VideoFleet
from hazwatch.simulators.mqtt import device_client
from hazwatch.streams.video.rules import (
    DOOR_MOTION_NO_READ,
    FRAME_GAP,
    RULES,
)
from hazwatch.streams.video.settings import VideoRuleSettings
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
SITE = "vw-01"
CAMERA = "cam-01"  # VideoFleet's first camera
DOOR = "door-1"
REGISTRY = f"""
[[site]]
id = "{SITE}"
name = "暂存间"
role = "producer"

[[reader]]
id = "{DOOR}"
site = "{SITE}"
location = "storage_in"

[[camera]]
id = "{CAMERA}"
site = "{SITE}"
watches = ["{DOOR}"]
"""
RULE_SETTINGS = VideoRuleSettings()
TICK_S = 5.0
# (a camera that stops between the runs is device_offline, the presence part's, about
# SITE/camera/CAMERA: not counted here)
JUDGED = frozenset(RULES)


@pytest.fixture()
def workers(
    mosquitto: Mosquitto, influxd: Influxd, postgres_url: str, tmp_path: Path
) -> Iterator[list[HazwatchProcess]]:
    db = f"video_workers_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    group = f"hz{uuid.uuid4().hex[:6]}"
    common = {
        "mqtt_url": mosquitto.url,
        "mqtt_shared_group": group,
        "influx_url": influxd.url,
        "influx_api": "v1",
        "influx_db": db,
        "state_url": postgres_url,
    }
    procs = [
        HazwatchProcess(tmp_path / f"w{n}", mqtt_client_id=f"{group}-w{n}", **common)
        for n in range(2)
    ]
    (tmp_path / "registry.toml").write_text(REGISTRY)
    loaded = procs[0].cli("registry", "load", str(tmp_path / "registry.toml"))
    assert loaded.returncode == 0, loaded.stderr
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def door_reads(url: str, until: threading.Event) -> int:
    """A tag read at the door every second: every movement the camera sees has one nearby."""
    sent = 0
    topic = build_topic(SITE, "rfid", DOOR, "read")
    async with device_client(url, SITE, "rfid", DOOR) as client:
        while not until.is_set():
            body = {"ts": time.time_ns() // 1_000_000, "epc": f"E2801160600002040000{sent:04X}"}
            await client.publish(topic, orjson.dumps(body), qos=1)
            sent += 1
            await asyncio.sleep(1.0)
    return sent


def video_alerts(state_url: str) -> list[tuple[str, int]]:
    db = StateDB(state_url)
    try:
        rows = db.query("SELECT rule, count FROM alerts WHERE subject = ?", (f"{SITE}/{CAMERA}",))
    finally:
        db.close()
    return [(str(rule), int(count)) for rule, count in rows if rule in JUDGED]


def camera_messages(proc: HazwatchProcess) -> float:
    for line in proc.metrics().splitlines():
        if line.startswith('hazwatch_messages_total{family="camera"}'):
            return float(line.split()[-1])
    return 0.0


def test_split_camera_raises_nothing_until_frames_are_really_lost(
    workers: list[HazwatchProcess], mosquitto: Mosquitto, postgres_url: str
) -> None:
    steady = VideoFleet(site=SITE, cameras=1, rate=4.0, count=80, seed=3)  # 20 s, no gap
    stop_reads = threading.Event()
    result: dict[str, object] = {}

    async def traffic() -> None:
        reads = asyncio.create_task(door_reads(mosquitto.url, stop_reads))
        result["steady"] = await steady.run(mosquitto.url)
        result["steady_done"] = time.monotonic()
        result["reads"] = await reads

    runner = threading.Thread(target=lambda: asyncio.run(traffic()))
    runner.start()
    try:
        wait_for(lambda: "steady_done" in result, 60, "the steady camera")
    finally:
        stop_reads.set()
        runner.join(30)
    assert result["steady"].ok  # type: ignore[attr-defined]
    # both workers got a share of the camera (a shared subscription, round robin)
    assert all(camera_messages(p) > 10 for p in workers), [camera_messages(p) for p in workers]

    # The last movement's window, grace, a tick to ask and a tick to judge: then every
    # candidate of the steady run has been settled on both workers.
    settled_s = RULE_SETTINGS.door_window_s + RULE_SETTINGS.confirm_grace_s + 3 * TICK_S
    deadline = float(result["steady_done"]) + settled_s  # type: ignore[arg-type]
    while time.monotonic() < deadline:
        assert video_alerts(postgres_url) == [], "a false video alert"
        time.sleep(1.0)
    assert video_alerts(postgres_url) == []

    lossy = VideoFleet(site=SITE, cameras=1, rate=4.0, count=40, gap_every=7, seed=4)
    report = asyncio.run(lossy.run(mosquitto.url))
    assert report.ok and report.gaps_injected > 0
    alerts = wait_for(
        lambda: (a := video_alerts(postgres_url)) and a,
        RULE_SETTINGS.confirm_grace_s + 4 * TICK_S,
        "the frame_gap alert",
    )
    # frame_gap only: the reads stopped, but door motion of the lossy run is not due yet
    assert {rule for rule, _ in alerts} == {FRAME_GAP}
    assert DOOR_MOTION_NO_READ not in {rule for rule, _ in alerts}
