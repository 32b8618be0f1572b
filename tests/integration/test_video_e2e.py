"""Agent on a video file → Mosquitto → `hazwatch serve` → InfluxDB 1.x; its snapshot via the API.

Never wait blindly: every effect is polled for with a deadline (tests.services.wait_for).
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hazwatch.simulators.video_scenes import write_scene
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
TOKEN = "video-token"
SITE = "jy-0012"


@pytest.fixture()
def serve(mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path) -> Iterator[dict[str, str]]:
    db = f"video_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    state = tmp_path / "state.db"
    hazwatch = HazwatchProcess(
        tmp_path / "hazwatch",
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"hazwatch-{db}",
        influx_url=influxd.url,
        influx_api="v1",
        influx_db=db,
        state_url=f"sqlite:///{state}",
        api_token=TOKEN,
    )
    hazwatch.start()
    try:
        yield {"api": hazwatch.api, "db": db, "mqtt": mosquitto.url, "state": str(state)}
    finally:
        hazwatch.stop()


def run_agent(video: Path, camera: str, serve: dict[str, str], tmp_path: Path) -> str:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "hazwatch"),
            "camera",
            "--source",
            str(video),
            "--camera",
            camera,
            "--site",
            SITE,
            "--rate",
            "4",
            "--mqtt-url",
            serve["mqtt"],
            "--api-url",
            serve["api"],
            "--token",
            TOKEN,
            "--evidence-dir",
            str(tmp_path / f"evidence-{camera}"),
            "--fast",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def frames_in_influx(influxd: Influxd, db: str, camera: str) -> list[dict[str, object]]:
    series = influxd.query(
        db, f"SELECT * FROM video_frame WHERE camera = '{camera}' AND site = '{SITE}'"
    )
    if not series:
        return []
    columns = series[0]["columns"]
    return [dict(zip(columns, row, strict=True)) for row in series[0]["values"]]


def test_frames_land_in_influxdb_tagged_and_without_gaps(
    serve: dict[str, str], influxd: Influxd, tmp_path: Path
) -> None:
    video = write_scene(tmp_path / "person.mp4", "person", seconds=3.0)
    stderr = run_agent(video, "cam-e2e", serve, tmp_path)
    assert "75 frames analysed" in stderr
    rows = wait_for(
        lambda: (r := frames_in_influx(influxd, serve["db"], "cam-e2e")) and len(r) >= 12 and r,
        30,
        "frames in InfluxDB",
    )
    seqs = sorted(int(r["seq"]) for r in rows)  # type: ignore[call-overload]
    assert seqs == list(range(len(seqs)))
    assert {r["camera"] for r in rows} == {"cam-e2e"} and {r["site"] for r in rows} == {SITE}
    assert max(float(r["motion"]) for r in rows) > 0.004  # type: ignore[arg-type]


def test_covered_lens_snapshot_is_served_with_the_named_sha256(
    serve: dict[str, str], influxd: Influxd, tmp_path: Path
) -> None:
    video = write_scene(tmp_path / "covered.mp4", "covered", seconds=3.0)
    run_agent(video, "cam-cover", serve, tmp_path)

    def occlusion_frame() -> dict[str, object] | None:
        return next(
            (
                r
                for r in frames_in_influx(influxd, serve["db"], "cam-cover")
                if r.get("event") == "occlusion"
            ),
            None,
        )

    frame = wait_for(occlusion_frame, 30, "the occlusion frame in InfluxDB")
    assert float(frame["occlusion"]) > 0.9  # type: ignore[arg-type]
    name, sha = str(frame["snapshot"]), str(frame["snapshot_sha256"])
    r = wait_for(
        lambda: (
            (resp := httpx.get(f"{serve['api']}/api/snapshots/{name}", timeout=5)).status_code
            == 200
            and resp
        ),
        30,
        "snapshot served",
    )
    assert r.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(r.content).hexdigest() == sha

    def alert_evidence() -> list[tuple[str, str]]:
        with sqlite3.connect(serve["state"]) as conn:
            return conn.execute(
                "SELECT rule, evidence FROM alerts WHERE subject = ?", (f"{SITE}/cam-cover",)
            ).fetchall()

    # the officer's alert links to the moment the lens was covered
    assert ("tamper_occlusion", name) in wait_for(alert_evidence, 30, "the occlusion alert")
