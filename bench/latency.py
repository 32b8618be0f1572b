"""Latency from publish to queryable in InfluxDB, at a steady rate (e.g. half the drain rate).

Not a test: prints p50/p90/p99/max in ms from one run. Usage:
    .venv/bin/python bench/latency.py [--rate 19000] [--seconds 20]
The load is bench/ingest.py's mix of families, sent by mosquitto_pub; every 50th message is a
probe from air station `probe`, and a poller asks InfluxDB every 10 ms which probes are
queryable. Half load: half the rate bench/ingest.py measured hazwatch draining.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import load  # noqa: E402  (bench/load.py)

from tests.services import Influxd, Mosquitto, free_port, wait_for  # noqa: E402

PROBE_EVERY = 50
PROBE_TOPIC = "hw/lat-01/air/probe/reading"
PUB_CMD = ["mosquitto_pub", "-h", "127.0.0.1", "-q", "1", "-M", "1000", "-l"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=19000.0, help="messages/s")
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
                        "q": "SELECT pm25 FROM air WHERE station = 'probe' AND time > now() - 1h",
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
        # The load is the drain bench's mix (bench/ingest.py), one device per family, sent
        # by mosquitto_pub -l (one QoS 1 publish per stdin line, C, 1000 in flight): a Python
        # publisher could not keep 20k msg/s on this machine beside hazwatch, and its own
        # queue then counted as hazwatch's latency.
        mix, _ = load.make_messages(200_000, seed=11)
        by_topic: dict[str, list[bytes]] = {}
        for topic, payload in mix:
            family, device = topic.split("/")[2:4]
            by_topic.setdefault(f"hw/lat-01/{family}/{device[:3]}-00/{topic.split('/')[4]}", [])
            by_topic[f"hw/lat-01/{family}/{device[:3]}-00/{topic.split('/')[4]}"].append(payload)
        topics = sorted(by_topic)
        pubs = {
            t: subprocess.Popen(
                [*PUB_CMD, "-p", str(broker.port), "-t", t],
                stdin=subprocess.PIPE,
            )
            for t in [*topics, PROBE_TOPIC]
        }
        cursor = dict.fromkeys(topics, 0)
        start = time.perf_counter()
        # one millisecond per message, ending about now (within the 300 s future limit)
        base_ms = int(time.time() * 1000) - int(args.rate * args.seconds / 1000) * 1000
        i = 0
        tick = 0.005
        while time.perf_counter() - start < args.seconds:
            due = int((time.perf_counter() - start) * args.rate)
            chunks: dict[str, list[bytes]] = {}
            while i < due:
                ts = base_ms + i
                if i % PROBE_EVERY == 0:
                    body = orjson.dumps({"ts": ts, "pm25": 35.0 + i % 10, "pm10": 60.0})
                    chunks.setdefault(PROBE_TOPIC, []).append(body)
                    sent[ts] = time.perf_counter()
                else:
                    topic = topics[i % len(topics)]
                    payloads = by_topic[topic]
                    raw = orjson.loads(payloads[cursor[topic] % len(payloads)])
                    cursor[topic] += 1
                    raw["ts"] = ts  # unique and steady: every message is its own point
                    if "seq" in raw:
                        raw["seq"] = cursor[topic]  # one camera's frames, in order
                    chunks.setdefault(topic, []).append(orjson.dumps(raw))
                i += 1
            for topic, lines in chunks.items():
                stdin = pubs[topic].stdin
                assert stdin is not None
                stdin.write(b"\n".join(lines) + b"\n")
                stdin.flush()
            time.sleep(tick)
        elapsed = time.perf_counter() - start
        stop_at[0] = time.perf_counter()
        stop.set()
        for pub in pubs.values():
            assert pub.stdin is not None
            pub.stdin.close()
        for pub in pubs.values():
            pub.wait(30)
        poller.join(30)
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
