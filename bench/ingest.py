"""Ingest throughput: hazwatch draining a queued persistent session into InfluxDB, beside
`mosquitto_sub -q 1` draining the same queue to /dev/null, in one run on this machine.

Not a test: prints msg/s for both and the ratio. Usage:
    .venv/bin/python bench/ingest.py [--messages 100000] [--api v1|v2]
Starts its own mosquitto and influxd (or victoria-metrics for --api v2) on free ports.
"""

from __future__ import annotations

import argparse
import os
import random
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import (  # noqa: E402
    Influxd,
    Mosquitto,
    VictoriaMetrics,
    free_port,
    wait_for,
)

SITE = "bench-01"
# (family, device count, kind, measurement, a field every point of it has)
MIX = [
    ("rfid", 20, "read", "waste_read", "rssi", 0.35),
    ("scale", 5, "weight", "waste_weight", "net_kg", 0.10),
    ("air", 20, "reading", "air", "pm25", 0.30),
    ("camera", 10, "frame", "video_frame", "seq", 0.25),
]


# Containers in circulation at one site: each EPC is a series of waste_read/waste_weight in
# InfluxDB, and DESIGN.md puts a city at thousands of containers a year. A fresh random EPC
# per read (as the first version did) made every RFID read a new series: a load no site has.
CONTAINERS = 2000


def make_messages(n: int, seed: int = 7) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    """n messages of ~130 bytes, every one a distinct point (distinct device time)."""
    rng = random.Random(seed)
    epcs = [f"E280{rng.getrandbits(80):020X}" for _ in range(CONTAINERS)]
    base_ms = int(time.time() * 1000) - 3_600_000
    weights = [m[5] for m in MIX]
    expected: dict[str, int] = {}
    out: list[tuple[str, bytes]] = []
    seq: dict[str, int] = {}
    views: dict[str, tuple[float, float]] = {}  # camera -> (brightness, sharpness)
    for i in range(n):
        family, devices, kind, measurement, _field, _w = rng.choices(MIX, weights)[0]
        device = f"{family[:3]}-{rng.randrange(devices):02d}"
        ts = base_ms + i  # unique per message: no two share an identity
        if family == "rfid":
            body = {
                "ts": ts,
                "epc": rng.choice(epcs),
                "rssi": round(rng.uniform(-80, -30), 1),
                "antenna": rng.randrange(1, 5),
            }
        elif family == "scale":
            net = round(rng.uniform(10, 900), 1)
            body = {
                "ts": ts,
                "epc": rng.choice(epcs),
                "net_kg": net,
                "gross_kg": round(net + 20, 1),
                "tare_kg": 20.0,
                "stable": True,
            }
        elif family == "air":
            body = {
                "ts": ts,
                "pm25": round(rng.uniform(5, 150), 1),
                "pm10": round(rng.uniform(10, 250), 1),
                "no2": round(rng.uniform(5, 80), 1),
                "co": round(rng.uniform(0.2, 2), 2),
                "temp": round(rng.uniform(-5, 30), 1),
                "rh": round(rng.uniform(20, 90), 1),
            }
        else:
            seq[device] = seq.get(device, -1) + 1
            view = views.setdefault(device, (rng.uniform(60, 180), rng.uniform(200, 800)))
            body = {
                "ts": ts,
                "seq": seq.setdefault(device, 0),
                "width": 1920,
                "height": 1080,
                # A fixed camera's scene: its own brightness and sharpness with a little
                # noise, mostly still (uniform random values made tamper alerts flap, which
                # is a load of alerts, not of ingest).
                "brightness": round(view[0] * rng.uniform(0.97, 1.03), 1),
                "sharpness": round(view[1] * rng.uniform(0.95, 1.05), 1),
                "motion": round(rng.random() * 0.03 if rng.random() < 0.1 else 0.0, 3),
                "occlusion": 0.0,
                "scene_change": round(rng.random() * 0.02, 3),
            }
        out.append((f"hw/{SITE}/{family}/{device}/{kind}", orjson.dumps(body)))
        expected[measurement] = expected.get(measurement, 0) + 1
    return out, expected


def create_session(port: int, client_id: str, protocol: int) -> None:
    """Connect once with a persistent session and subscribe, so the broker queues for it."""
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        **({} if protocol == mqtt.MQTTv5 else {"clean_session": False}),
    )

    def on_connect(c, u, f, rc, p):  # type: ignore[no-untyped-def]
        c.subscribe("hw/+/+/+/+", qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda *a: done.set()
    props = None
    if protocol == mqtt.MQTTv5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=False, properties=props)
    else:
        client.connect("127.0.0.1", port)
    client.loop_start()
    if not done.wait(10):
        raise RuntimeError(f"could not subscribe {client_id}")
    client.disconnect()
    client.loop_stop()


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = 0
    all_acked = threading.Event()

    def on_publish(c, u, mid, rc, p):  # type: ignore[no-untyped-def]
        nonlocal acked
        acked += 1
        if acked == len(messages):
            all_acked.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    window = threading.Semaphore(20_000)  # paho keys queued messages by a 16-bit id
    client.on_publish = lambda *a: (on_publish(*a), window.release())
    for topic, payload in messages:
        window.acquire()
        client.publish(topic, payload, qos=1)
    if not all_acked.wait(600):
        raise RuntimeError(f"only {acked} of {len(messages)} publishes acked")
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return elapsed


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
