"""Ingest throughput: hazwatch draining a queued persistent session into InfluxDB, beside
`mosquitto_sub -q 1` draining the same queue to /dev/null, in one run on this machine.

Not a test: prints msg/s for both and the ratio. Usage:
    .venv/bin/python bench/ingest.py [--messages 100000] [--api v1|v2]
Starts its own mosquitto and influxd (or victoria-metrics for --api v2) on free ports.
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
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from load import MIX, create_session, make_messages, publish_all  # noqa: E402

from tests.services import (  # noqa: E402
    Influxd,
    Mosquitto,
    VictoriaMetrics,
    free_port,
    wait_for,
)


def influx_count(url: str, db: str, expected: dict[str, int]) -> int:
    total = 0
    for measurement, field in ((m[3], m[4]) for m in MIX):
        if measurement not in expected:
            continue
        r = httpx.get(
            f"{url}/query",
            params={"db": db, "q": f'SELECT count("{field}") FROM "{measurement}"'},
            timeout=30,
        )
        series = r.json()["results"][0].get("series", [])
        total += int(series[0]["values"][0][1]) if series else 0
    return total


def metrics(port: int, *names: str) -> list[float]:
    """Values of hazwatch's /metrics samples, in the order asked ([] while the API is not up)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return []
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value)
    return [found.get(name, 0.0) for name in names]


def vm_count(url: str, expected: dict[str, int]) -> int:
    httpx.get(f"{url}/internal/force_flush", timeout=10)
    total = 0
    for measurement, field in ((m[3], m[4]) for m in MIX):
        if measurement not in expected:
            continue
        r = httpx.get(
            f"{url}/api/v1/query",
            params={"query": f"sum(count_over_time({measurement}_{field}[1d]))"},
            timeout=30,
        )
        result = r.json()["data"]["result"]
        total += int(float(result[0]["value"][1])) if result else 0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--api", choices=("v1", "v2"), default="v1")
    args = parser.parse_args()
    n = args.messages
    work = Path(tempfile.mkdtemp(prefix="hazwatch-bench-"))
    broker = Mosquitto(work / "mosquitto")
    store: Influxd | VictoriaMetrics = (
        Influxd(work / "influxd") if args.api == "v1" else VictoriaMetrics(work / "vm")
    )
    broker.start()
    store.start()
    db = "bench"
    if isinstance(store, Influxd):
        store.create_db(db)
    try:
        messages, expected = make_messages(n)
        size = sum(len(t) + len(p) for t, p in messages) / n
        print(f"{n} messages, mean {size:.0f} bytes (topic+payload), mix {expected}")
        create_session(broker.port, "bench-mosquitto-sub", mqtt.MQTTv311)
        create_session(broker.port, "hazwatch-bench", mqtt.MQTTv5)
        pub_s = publish_all(broker.port, messages)
        print(f"queued for both sessions in {pub_s:.1f} s ({n / pub_s:,.0f} msg/s published)")

        # Baseline: mosquitto_sub drains its queue to /dev/null.
        start = time.perf_counter()
        subprocess.run(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-i",
                "bench-mosquitto-sub",
                "-c",
                "-q",
                "1",
                "-t",
                "hw/+/+/+/+",
                "-C",
                str(n),
            ],
            stdout=subprocess.DEVNULL,
            check=True,
            timeout=600,
        )
        base_s = time.perf_counter() - start
        base_rate = n / base_s

        # hazwatch: serve drains its queue into the store; done when every point is queryable.
        api_port = free_port()
        env = dict(os.environ)
        env.update(
            HAZWATCH_MQTT_URL=broker.url,
            HAZWATCH_MQTT_CLIENT_ID="hazwatch-bench",
            HAZWATCH_INFLUX_URL=store.url,
            HAZWATCH_INFLUX_API=args.api,
            HAZWATCH_INFLUX_DB=db,
            HAZWATCH_INFLUX_TOKEN="bench",
            HAZWATCH_INFLUX_ORG="bench",
            HAZWATCH_INFLUX_BUCKET=db,
            HAZWATCH_DATA_DIR=str(work / "hazwatch"),
            HAZWATCH_API_PORT=str(api_port),
            HAZWATCH_LOG_LEVEL="INFO",
            HAZWATCH_LOG_FORMAT="json",
        )
        count = (
            (lambda: influx_count(store.url, db, expected))
            if isinstance(store, Influxd)
            else (lambda: vm_count(store.url, expected))
        )
        start = time.perf_counter()
        proc = subprocess.Popen(
            os.environ.get(
                "HAZWATCH_BENCH_CMD", str(ROOT / ".venv/bin/hazwatch") + " serve"
            ).split(),
            env=env,
            stderr=subprocess.PIPE,
        )
        connected = threading.Event()
        connected_at = [0.0]

        def watch_log() -> None:
            # The drain starts when hazwatch's session connects: the moment is its log line.
            assert proc.stderr is not None
            for raw in proc.stderr:
                if not connected.is_set() and b"connected to mqtt" in raw:
                    connected_at[0] = time.perf_counter()
                    connected.set()
                elif b'"level": "INFO"' not in raw and b'"level":"INFO"' not in raw:
                    sys.stderr.write(raw.decode(errors="replace"))

        threading.Thread(target=watch_log, daemon=True).start()
        try:
            # Watch hazwatch's own counter of points the store acknowledged (a v1 write is
            # queryable once answered 204; counting InfluxDB every 50 ms would load it), then
            # confirm with InfluxDB's own count: the time is taken only when that agrees.
            samples: list[tuple[float, float]] = []  # (points written, process CPU s)
            writes: list[float] = []  # seconds spent in batch writes, batches written

            def written() -> float:
                values = metrics(
                    api_port,
                    "hazwatch_points_written_total",
                    "process_cpu_seconds_total",
                    "hazwatch_batch_write_seconds_sum",
                    "hazwatch_batch_write_seconds_count",
                )
                if values:
                    samples.append((values[0], values[1]))
                    writes[:] = values[2:]
                return values[0] if values else 0.0

            wait_for(lambda: written() >= n, timeout=900, what=f"hazwatch to write {n} points")
            end = time.perf_counter()
            if count() < n:
                wait_for(lambda: count() >= n, timeout=120, what=f"{n} points queryable")
                end = time.perf_counter()
        finally:
            proc.terminate()
            proc.wait(30)
        if not connected.is_set():
            raise RuntimeError("hazwatch never logged its MQTT connection")
        total_s = end - start
        drain_s = end - connected_at[0]
        startup_s = connected_at[0] - start
        drain_rate = n / drain_s
        print(f"mosquitto_sub -q 1 : {base_rate:10,.0f} msg/s ({base_s:.2f} s, start-up included)")
        print(
            f"hazwatch → {args.api:2s}     : {drain_rate:10,.0f} msg/s "
            f"({drain_s:.2f} s from its MQTT connection to the last point queryable)"
        )
        print(
            f"  start-up          : {startup_s:.2f} s (process start to MQTT connection); "
            f"with it {n / total_s:,.0f} msg/s"
        )
        busy = [(p, c) for p, c in samples if 0 < p < n]
        if len(busy) >= 2:
            (p0, c0), (p1, c1) = busy[0], busy[-1]
            if p1 > p0:
                print(
                    f"  CPU              : {(c1 - c0) / (p1 - p0) * 1e6:.1f} µs of hazwatch's "
                    f"process CPU per message while draining"
                )
        if writes and writes[1]:
            print(
                f"  writes           : {writes[1]:.0f} batches, "
                f"{writes[0] / writes[1] * 1000:.1f} ms each on average"
            )
        print(f"ratio              : {drain_rate / base_rate:10.2f}x  (target ≥ 0.33)")
        print(f"  with start-up    : {n / total_s / base_rate:10.2f}x")
    finally:
        store.stop()
        broker.stop()


if __name__ == "__main__":
    main()
