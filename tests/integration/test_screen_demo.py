"""`hazwatch demo` as a new user runs it, its output a file (not a terminal): the screen's URL
is the first line, and within two minutes every page of the screen has the demo's data.

Never reach for a service the demo does not start itself: this is the fresh-machine path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import free_port, wait_for

pytestmark = pytest.mark.integration
PAGES = ("", "batch", "alerts", "air", "devices", "ledger", "wall")


def _json(api: str, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{api}{path}", params=params, timeout=10)
    answer.raise_for_status()
    return answer.json()


def test_the_demo_prints_its_screen_first_and_fills_every_page(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZWATCH_")}
    env.update(HAZWATCH_DATA_DIR=str(tmp_path / "data"), HAZWATCH_API_PORT=str(port))
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "hazwatch", "demo", "--duration", "170", "--broker", "mosquitto"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        first = wait_for(
            lambda: (tmp_path / "demo.log").read_text().splitlines()[:1], 60, "the first line"
        )[0]
        assert first.startswith("hazwatch demo: the screen is at ")
        assert f"{api}/screen/" in first and f"{api}/screen/wall" in first
        for page in PAGES:
            answer = httpx.get(f"{api}/screen/{page}", timeout=10)
            assert answer.status_code == 200 and "<main" in answer.text

        def filled() -> list[str]:
            """What a page still lacks (empty: every page has something to show)."""
            lacking = []
            overview = _json(api, "/api/overview")
            if not overview["total"]["batches"]["total"]:
                lacking.append("overview: batches")
            if not overview["total"]["storage"]["kg"]:
                lacking.append("overview: waste in storage")
            if not any(s["aqi"] for s in overview["air"]):
                lacking.append("overview: an AQI")
            broken = _json(api, "/api/batches", verdict="broken")
            if not broken:
                lacking.append("batch: a broken chain")
            # a broken batch's page with the door camera's snapshot of its storing (cam-2,
            # watching gate-03), the demo's door camera uploading as the edge agent does
            shots = [
                e["snapshot"]
                for b in broken[-5:]
                for e in _json(api, f"/api/batches/{b['batch']}/timeline")["events"]
                if e["snapshot"]
            ]
            if not shots:
                lacking.append("batch: the door camera's snapshot")
            elif httpx.get(f"{api}{shots[0]['url']}", timeout=10).content[:2] != b"\xff\xd8":
                lacking.append("batch: the snapshot's JPEG")
            if not _json(api, "/api/alerts", state="open")["total"]:
                lacking.append("alerts")
            if len(_json(api, "/api/air/aq-07/hourly")) < 20:
                lacking.append("air: a day of hours")
            if not _json(api, "/api/air/aq-07/trend")["points"]:
                lacking.append("air: raw readings")
            devices = _json(api, "/api/devices")
            if not sum(f["online"] for f in devices["by_family"].values()):
                lacking.append("devices: online")
            frames = _json(api, "/api/cameras/dp-01/cam-02/frames")["frames"]
            if not frames:
                lacking.append("devices: camera frames")
            day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
            ledger = _json(api, "/api/ledger", site="jy-0012", **{"from": day, "to": day})
            if not ledger["records"]:
                lacking.append("ledger: records")
            return lacking

        last: list[str] = []

        def every_page_filled() -> bool:
            nonlocal last
            last = filled()
            return not last

        try:
            wait_for(every_page_filled, 120, "every page of the screen with the demo's data")
        except TimeoutError:
            pytest.fail(f"after {time.monotonic() - started:.0f} s the screen still lacks {last}")
        assert time.monotonic() - started < 150
    finally:
        demo.terminate()
        code = demo.wait(60)
        log.close()
    text = (tmp_path / "demo.log").read_text()
    assert code == 0, text[-2000:]
    # no live panel in a log, but a line every 15 s of what the demo holds, and its end
    assert any(
        line.startswith("hazwatch demo: ") and "messages" in line for line in text.splitlines()
    )
    assert "done:" in text
