"""Latency from publish to queryable in InfluxDB, at a steady rate (e.g. half the drain rate).

Not a test: prints p50/p90/p99/max in ms from one run. Usage:
    .venv/bin/python bench/latency.py [--rate 6000] [--seconds 20]
Background load is air readings from 50 stations; every 50th message is a probe from station
`probe`, and a poller asks InfluxDB every 10 ms which probes are queryable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import Influxd, Mosquitto, free_port, wait_for  # noqa: E402

PROBE_EVERY = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=6000.0, help="messages/s")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hazwatch-latency-"))
    broker, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
    broker.start()
    influx.start()
    influx.create_db("lat")
    port = free_port()
    env = dict(os.environ)
    env.update(
        HAZWATCH_MQTT_URL=broker.url,
        HAZWATCH_MQTT_CLIENT_ID="hazwatch-latency",
        HAZWATCH_INFLUX_URL=influx.url,
        HAZWATCH_INFLUX_DB="lat",
        HAZWATCH_DATA_DIR=str(work / "hazwatch"),
        HAZWATCH_API_PORT=str(port),
        HAZWATCH_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen([sys.executable, "-m", "hazwatch", "serve"], env=env)
    sent: dict[int, float] = {}  # probe ts (ms) -> publish time
    seen: dict[int, float] = {}
    stop = threading.Event()
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200,
            30,
            "hazwatch healthy",
        )

        def poll() -> None:
            client = httpx.Client(base_url=influx.url, timeout=5)
            while not stop.is_set() or len(seen) < len(sent):
                r = client.get(
                    "/query",
                    params={
                        "db": "lat",
                        "epoch": "ms",
                        "q": "SELECT pm25 FROM air WHERE station = 'probe' AND time > now() - 5m",
                    },
                )
                now = time.perf_counter()
                for series in r.json()["results"][0].get("series", []):
                    for ts, _ in series["values"]:
                        seen.setdefault(int(ts), now)
                if stop.is_set() and time.perf_counter() - stop_at[0] > 10:
                    break
                time.sleep(0.01)

        stop_at = [0.0]
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="latency-pub")
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        interval = 1.0 / args.rate
        start = time.perf_counter()
        i = 0
        base_ms = int(time.time() * 1000) - 60_000
        while time.perf_counter() - start < args.seconds:
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ts = base_ms + i
            probe = i % PROBE_EVERY == 0
            station = "probe" if probe else f"aq-{i % 50:02d}"
            body = orjson.dumps({"ts": ts, "pm25": 35.0 + i % 10, "pm10": 60.0})
            pub.publish(f"hw/lat-01/air/{station}/reading", body, qos=1)
            if probe:
                sent[ts] = time.perf_counter()
            i += 1
        elapsed = time.perf_counter() - start
        stop_at[0] = time.perf_counter()
        stop.set()
        poller.join(30)
        pub.loop_stop()
        latencies = sorted((seen[ts] - t) * 1000 for ts, t in sent.items() if ts in seen)
        lost = len(sent) - len(latencies)

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

        print(f"published {i} messages at {i / elapsed:,.0f} msg/s for {elapsed:.1f} s")
        print(f"probes: {len(sent)}, queryable: {len(latencies)}, not seen: {lost}")
        if latencies:
            print(
                f"latency ms: p50 {pct(0.5):.0f}  p90 {pct(0.9):.0f}  p99 {pct(0.99):.0f}  "
                f"max {latencies[-1]:.0f}  (target p99 ≤ 300; poll interval 10 ms)"
            )
    finally:
        stop.set()
        proc.terminate()
        proc.wait(30)
        influx.stop()
        broker.stop()


if __name__ == "__main__":
    main()
