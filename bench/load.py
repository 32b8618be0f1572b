"""The queued load the benchmarks share: the message mix, a persistent session, a publisher.

bench/ingest.py, bench/consumer.py, bench/pipeline.py and bench/latency.py import it (run as
scripts, bench/ is their first import path; hazwatch's own `ingest` package comes from the
repository root they put next).
"""

from __future__ import annotations

import random
import threading
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SITE = "bench-01"
# (family, device count, kind, measurement, a field every point of it has)
MIX = [
    ("rfid", 20, "read", "waste_read", "rssi", 0.35),
    ("scale", 5, "weight", "waste_weight", "net_kg", 0.10),
    ("air", 20, "reading", "air", "pm25", 0.30),
    ("camera", 10, "frame", "video_frame", "seq", 0.25),
]


# Containers in circulation at one site: each EPC is a series of waste_read/waste_weight in
# InfluxDB, and a city has thousands of containers a year (docs/payloads.md). A fresh random EPC
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
