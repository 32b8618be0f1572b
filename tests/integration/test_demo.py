"""`hazwatch demo` on embedded defaults: it runs, says which broker, and stores points.

Never reach for a service the demo does not start itself: this is the fresh-machine path.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_demo_runs_unattended_and_stores_points(tmp_path: Path, broker: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZWATCH_")}
    env.update(HAZWATCH_DATA_DIR=str(tmp_path), HAZWATCH_API_PORT=str(free_port()))
    done = subprocess.run(
        [sys.executable, "-m", "hazwatch", "demo", "--duration", "6", "--broker", broker],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("mosquitto (spawned)" if broker == "mosquitto" else "not for production") in done.stdout
    assert "points stored" in done.stdout
    with sqlite3.connect(tmp_path / "points.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert tables
    summary = done.stdout.rsplit("done:", 1)[1]
    stored = int(summary.split("messages,")[1].split("points")[0].replace(",", "").strip())
    assert stored > 20
