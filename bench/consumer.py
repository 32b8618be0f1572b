"""CPU per message of the MQTT consumer alone: a queued persistent session drained by
MqttConsumer into a handler that keeps nothing, beside `mosquitto_sub -q 1` on the same queue.

Not a test: prints msg/s and process CPU µs per message, so a change to ingest/consumer.py can be
measured without the pipeline and InfluxDB. Usage:
    .venv/bin/python bench/consumer.py [--messages 100000] [--protocol 5|3.1.1] [--profile]
Starts its own mosquitto on a free port.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import load  # noqa: E402  (bench/load.py)

from hazwatch.ingest.consumer import ConsumerConfig, MqttConsumer, RawMessage  # noqa: E402
from tests.services import Mosquitto, wait_for  # noqa: E402


def drain_with_mosquitto_sub(port: int, client_id: str, n: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id),
            *("-c", "-q", "1", "-t", "hw/+/+/+/+", "-C", str(n)),
        ],
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=600,
    )
    return time.perf_counter() - start


def drain_with_consumer(
    port: int, client_id: str, protocol: str, n: int, profile: bool
) -> tuple[float, float, int]:
    """(wall s, process CPU s, messages received) from start() until every message is acked."""
    received = 0
    lock = threading.Lock()

    def handler(batch: list[RawMessage]) -> None:
        nonlocal received
        with lock:
            received += len(batch)

    config = ConsumerConfig(
        host="127.0.0.1",
        port=port,
        client_id=client_id,
        subscription="hw/+/+/+/+",
        protocol=protocol,
    )
    consumer = MqttConsumer(config, handler)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        # Profiles the network thread, where the per-message work of the consumer is.
        real_loop = consumer._network_loop

        def profiled_loop() -> None:
            profiler.enable()
            try:
                real_loop()
            finally:
                profiler.disable()

        consumer._network_loop = profiled_loop  # type: ignore[method-assign]
    wall, cpu = time.perf_counter(), time.process_time()
    consumer.start()
    # Poll at 20 Hz: the waiting thread's own CPU is negligible beside the drain.
    wait_for(lambda: consumer.acked >= n, timeout=600, what=f"{n} messages acked")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    consumer.close()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return wall, cpu, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default="5")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n = args.messages
    work = Path(tempfile.mkdtemp(prefix="hazwatch-consumer-bench-"))
    broker = Mosquitto(work / "mosquitto")
    broker.start()
    try:
        messages, _ = load.make_messages(n)
        size = sum(len(t) + len(p) for t, p in messages) / n
        protocol = mqtt.MQTTv5 if args.protocol == "5" else mqtt.MQTTv311
        load.create_session(broker.port, "bench-mosquitto-sub", mqtt.MQTTv311)
        load.create_session(broker.port, "bench-consumer", protocol)
        pub_s = load.publish_all(broker.port, messages)
        print(f"{n} messages, mean {size:.0f} bytes (topic+payload), queued in {pub_s:.1f} s")

        base_s = drain_with_mosquitto_sub(broker.port, "bench-mosquitto-sub", n)
        wall, cpu, received = drain_with_consumer(
            broker.port, "bench-consumer", args.protocol, n, args.profile
        )
        if received < n:
            raise RuntimeError(f"the handler saw {received} of {n} messages")
        print(f"mosquitto_sub -q 1   : {n / base_s:10,.0f} msg/s ({base_s:.2f} s)")
        print(
            f"MqttConsumer (v{args.protocol:5s}): {n / wall:10,.0f} msg/s ({wall:.2f} s), "
            f"{cpu / n * 1e6:.2f} µs process CPU per message"
        )
        print(f"ratio                : {base_s / wall:10.2f}x")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
