"""A simulated year of a city (issue #19, item 9): producers' containers through every stage, air
stations' minute data and cameras' frame metadata, compressed in time, through a real `hazwatch
serve` on real Mosquitto, InfluxDB 1.x and PostgreSQL (or SQLite).

Not a test: prints each figure against its budget (docs/scale.md says why each budget is what
it is) and PASS/FAIL, all measured in one run. tests/integration/test_scale_smoke.py runs
`--smoke` and checks only that nothing is lost and the series stay under their bound.

The city: `--producers` producer sites (each a storage room with its in and out doors, a
handheld, a generation scale and a terminal, as docs/registry.example.toml's jy-0012), one
transporter (a vehicle reader) and one disposal center (gate, scale, line); `--stations` HJ 212
stations (2051 minute data over MQTT, at the first producers' sites) and `--cameras` cameras
(watching the first producers' storage doors). `--containers-per-year` containers are
registered over the `--days` simulated, spread over the producers, each a whole life of
simulators/custody.py's plan (one read per stage: a reader set to report a tag once per pass;
the realistic read model sends ~1,300 reads a container, see docs/scale.md). Vehicles' GPS is
left out: that device family does not exist yet.

Time: a simulated day is published in 86,400 / `--scale` wall seconds (0: as fast as the broker
takes them). `--air-every` minutes and `--camera-every` seconds sample the stations' minute
data and the cameras' 1 Hz down (every n-th record is sent, so the rates and disk figures are
extrapolated to the full rates and printed as such). The first and the last day, and the late
day, are measured as drains: hazwatch is paused (SIGSTOP) while the day is queued in its
session, then resumed and timed until every message is handled, so the publisher takes no CPU
from it. The late day: the sites of every other producer lose their uplink for day
`days - 2`; the other sites' day is drained (in order), then the late sites' buffered day.

After the traffic: start-up time of a restarted serve (to /api/health 200), `trace` p99 and
a month's ledger through the API; then the SQL store is grown (bench/startup.py's `grow`:
copies of the stored lives, each earlier by the run's span) to each `--grow` count and
measured again. Usage:
    .venv/bin/python bench/scale.py [--days 30] [--store postgres] [--smoke] [--report F.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from load import publish_all  # noqa: E402
from startup import grow  # noqa: E402

from hazwatch.base.statedb import StateDB  # noqa: E402
from hazwatch.devices import hj212  # noqa: E402
from hazwatch.devices.registry import load_file  # noqa: E402
from hazwatch.devices.timeparse import CHINA  # noqa: E402
from hazwatch.devices.topics import build_topic  # noqa: E402
from hazwatch.simulators import custody as story  # noqa: E402
from hazwatch.simulators.camera import CameraModel  # noqa: E402
from hazwatch.simulators.hj212_station import StationSpec, diurnal  # noqa: E402
from tests.hazwatch_proc import HazwatchProcess, forget_session  # noqa: E402
from tests.integration.test_influx_wall import series_bound  # noqa: E402
from tests.services import (  # noqa: E402
    Influxd,
    Mosquitto,
    drop_postgres_database,
    postgres_database,
    wait_for,
)

S = 1_000_000_000
# Compressed, device times run ~1000× faster than hazwatch's clock: its clock estimator would
# take that for clocks running fast and move events to their receive time. At its largest
# settle time (1 h) no device's offset is established in a shorter run: times are as sent.
UNMEASURED_CLOCKS = {"clocks__settle_s": "3600", "clocks__window_s": str(7 * 86400)}
COLD = {"cache-snapshot-write-cold-duration": '"2s"', "compact-full-write-cold-duration": '"5s"'}
MIN = 60 * S
DAY = 86_400 * S
CHUNK_DAYS = 7  # containers are planned a week at a time
CENTER = (34.75, 113.65)  # the city (the transporter's depot); producers within ~8 km of it
# measurement → a field every point of it has (InfluxDB counts points by it)
COUNTED = {
    "waste_read": "epc",
    "waste_weight": "net_kg",
    "waste_batch": "batch",
    "waste_manifest": "manifest",
    "air": "pm25",
    "video_frame": "seq",
    "custody": "event_id",
}
# the measurement a sent message's topic kind becomes
MEASUREMENT = {
    "read": "waste_read",
    "weight": "waste_weight",
    "batch": "waste_batch",
    "manifest": "waste_manifest",
    hj212.KIND: "air",
    "frame": "video_frame",
}


# -- the city ---------------------------------------------------------------------------------


def producer_id(n: int) -> str:
    return f"p-{n:03d}"


def city_registry(producers: int, stations: int, cameras: int, seed: int = 19) -> str:
    """The registry TOML of the city (docs/registry.example.toml's format): the sample's
    producer repeated `producers` times, one transporter, one disposal center."""
    rng = random.Random(seed)
    out: list[str] = []

    def site(ident: str, role: str, name: str, lat: float, lon: float) -> None:
        out.append(
            f'[[site]]\nid = "{ident}"\nname = "{name}"\nrole = "{role}"\n'
            f"lat = {lat:.5f}\nlon = {lon:.5f}\n"
        )

    def device(table: str, ident: str, site_id: str, extra: str = "") -> None:
        out.append(f'[[{table}]]\nid = "{ident}"\nsite = "{site_id}"\n{extra}')

    site(story.TRANSPORTER, "transporter", "危废运输车队", *CENTER)
    site(story.RECEIVER, "receiver", "危废处置中心", CENTER[0] + 0.15, CENTER[1] + 0.12)
    device("reader", "veh-01", story.TRANSPORTER, 'location = "vehicle"\n')
    device("reader", "rg-1", story.RECEIVER, 'location = "receiver_gate"\n')
    device("reader", "line-1", story.RECEIVER, 'location = "disposal"\n')
    device("scale", "s2", story.RECEIVER, 'location = "receiver_gate"\n')
    for n in range(1, producers + 1):
        p = producer_id(n)
        lat = CENTER[0] + rng.uniform(-0.07, 0.07)
        lon = CENTER[1] + rng.uniform(-0.07, 0.07)
        site(p, "producer", f"产废单位 {n:03d} 危废暂存间", lat, lon)
        device("reader", "gate-03", p, 'location = "storage_in"\n')
        device("reader", "gate-04", p, 'location = "storage_out"\noverlaps = ["gate-03"]\n')
        device("reader", "hh-01", p, 'location = "storage_in"\n')
        device("scale", "s1", p, 'location = "generation"\n')
        device("terminal", "t1", p)
        if n <= stations:  # a lab's stations: no PW, no SM4 (docs/scale.md says what that leaves)
            device("station", "aq-01", p, f'mn = "{station_mn(n)}"\nopen = true\n')
        if n <= cameras:
            device("camera", "cam-1", p, 'watches = ["gate-03"]\n')
    return "\n".join(out)


def station_mn(n: int) -> str:
    return f"4190010000{n:04d}"


@dataclass(order=True, slots=True)
class Sent:
    """One message to publish: when (simulated), where, and whose uplink carries it."""

    at_ns: int
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    site: str = field(compare=False)


@dataclass
class City:
    """The city's traffic, made a day at a time."""

    start_ns: int
    days: int
    producers: int
    stations: int
    cameras: int
    containers_per_year: int
    air_every: int  # minutes
    camera_every: int  # seconds
    seed: int = 19
    pending: list[Sent] = field(default_factory=list)  # a heap by time
    planned_until: int = 0  # chunks planned: registrations before this time
    chunk: int = 0
    containers: int = 0
    whole: set[str] = field(default_factory=set)  # batches whose every message was made
    batch_messages: Counter[str] = field(default_factory=Counter)  # batch → messages to send
    sent_of_batch: Counter[str] = field(default_factory=Counter)
    cams: dict[str, CameraModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # hazwatch judges a transit overdue by its own clock, which runs ahead of the
        # compressed days: the manifests (the terminal's data) allow the run's span
        self.timing = dataclasses.replace(story.Timing(), transit_limit_h=24.0 * (self.days + 2))
        self.planned_until = self.start_ns
        self.end_ns = self.start_ns + self.days * DAY
        self.specs = [
            StationSpec(producer_id(n), "aq-01", station_mn(n), 0.6 + 2.4 * ((n * 37) % 100) / 100,
                        self.seed * 1000 + n)
            for n in range(1, self.stations + 1)
        ]  # fmt: skip
        self.air_rngs = [random.Random(spec.seed) for spec in self.specs]
        for n in range(1, self.cameras + 1):
            # the agent's message every camera_every seconds: `frames` says how many it analysed
            self.cams[producer_id(n)] = CameraModel(
                "cam-1", self.seed + n, rate=1 / self.camera_every
            )

    def _plan_chunk(self) -> None:
        """Plan the containers registered in the next week (their lives run on after it)."""
        begin = self.planned_until
        end = min(begin + CHUNK_DAYS * DAY, self.end_ns)
        share = (end - begin) / (365 * DAY) * self.containers_per_year
        due = self.containers_per_year * (end - self.start_ns) / (365 * DAY)
        n = max(0, round(due) - self.containers) if share > 0 else 0
        c = self.chunk
        self.chunk += 1
        self.planned_until = end
        if n == 0:
            return
        spacing_h = (end - begin) / S / 3600 / math.ceil(n / 2)
        plan = story.plan(
            n, 0, kinds=(), seed=self.seed + c, reads=story.ONE_READ, start_ns=begin + MIN,
            spacing_h=spacing_h, prefix=f"C{c:03d}", epc_base=c * 1_000_000, timing=self.timing,
        )  # fmt: skip
        self.containers += n
        site_of: dict[str, str] = {}  # epc / manifest → its producer
        batch_of: dict[str, str] = {}  # epc / manifest → a batch (to count what was sent)
        rng = random.Random(self.seed * 7 + c)
        for b in plan.batches.values():
            pair = int(b.batch[-5:]) // 2
            site_of[b.epc] = site_of.get(b.manifest) or producer_id(
                (pair * 7919 + rng.randrange(self.producers)) % self.producers + 1
            )
            site_of[b.manifest] = site_of[b.epc]
            batch_of[b.epc] = batch_of[b.manifest] = b.batch
        for m in plan.messages:
            key = m.epc
            if not key:
                body = orjson.loads(m.payload)
                key = body.get("epc") or body.get("manifest", "")
            batch = batch_of[key]
            self.batch_messages[batch] += 1
            topic, payload, site = m.topic, m.payload, m.device[0]
            if site == story.PRODUCER:
                site = site_of[key]
                topic = topic.replace(f"hw/{story.PRODUCER}/", f"hw/{site}/", 1)
                payload = payload.replace(f'"{story.PRODUCER}"'.encode(), f'"{site}"'.encode())
            heapq.heappush(self.pending, Sent(m.sent_ns, topic, payload, f"{site}|{batch}"))

    def day(self, d: int) -> list[Sent]:
        """Every message of simulated day `d`, in time order."""
        day_start = self.start_ns + d * DAY
        day_end = day_start + DAY
        while self.planned_until < min(day_end + DAY, self.end_ns):
            self._plan_chunk()
        out: list[Sent] = []
        while self.pending and self.pending[0].at_ns < day_end:
            out.append(heapq.heappop(self.pending))
        for k, spec in enumerate(self.specs):
            for minute in range(0, 1440, self.air_every):
                ts = day_start + minute * MIN
                local_hour = ((ts // S) / 3600 + 8) % 24
                values = diurnal(spec, local_hour, self.air_rngs[k])
                packet = hj212.data_packet(spec.mn, hj212.CN_MINUTE, ts, values, pw=spec.pw)
                topic = build_topic(spec.site, "air", spec.station, hj212.KIND)
                out.append(Sent(ts + 5 * S, topic, hj212.build(packet), spec.site))
        for site, cam in self.cams.items():
            topic = build_topic(site, "camera", "cam-1", "frame")
            for second in range(0, 86_400, self.camera_every):
                ts = day_start + second * S + 200_000_000
                out.append(Sent(ts, topic, orjson.dumps(cam.next(ts)), site))
        out.sort()
        for sent in out:  # custody messages carry "site|batch"
            site, _, batch = sent.site.partition("|")
            if batch:
                sent.site = site
                self.sent_of_batch[batch] += 1
        return out

    def complete_batches(self) -> int:
        """Containers whose whole life has been made into messages (and sent)."""
        return sum(1 for b, n in self.sent_of_batch.items() if n == self.batch_messages[b])


# -- measuring --------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    """hazwatch serve's RSS from /proc every `every` s: (wall s since start, MB)."""

    def __init__(self, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.pid = 0
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            if self.pid:
                mb = rss_mb(self.pid)
                if mb:
                    self.samples.append((time.monotonic() - self.t0, mb))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(api: str, name: str) -> float:
    text = httpx.get(f"{api}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def handled(api: str) -> int:
    return int(metric_sum(api, "hazwatch_messages_total"))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def publish_paced(port: int, messages: list[Sent], scale: float, day_start_ns: int) -> None:
    """Publish at simulated time / `scale` (0: as fast as the broker takes them), QoS 1."""
    if scale <= 0:
        publish_all(port, [(m.topic, m.payload) for m in messages])
        return
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"scale-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    window = threading.Semaphore(20_000)
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        window.release()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    for i, m in enumerate(messages):
        if i % 50 == 0:
            lag = started + (m.at_ns - day_start_ns) / S / scale - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        window.acquire()
        client.publish(m.topic, m.payload, qos=1)
    wait_for(lambda: acked[0] == len(messages), 600, "every publish acked")
    client.disconnect()
    client.loop_stop()


class Serve:
    """The hazwatch serve under test, restartable, its pid handed to the RSS sampler."""

    def __init__(self, proc: HazwatchProcess, sampler: RssSampler) -> None:
        self.proc, self.sampler = proc, sampler
        self.cpu_s = 0.0  # CPU seconds the last start took

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def start(self) -> float:
        """Seconds from the process start to /api/health 200 (status up)."""
        started = time.perf_counter()
        self.proc.start(wait_connected=False)

        def up() -> bool:
            r = httpx.get(f"{self.proc.api}/api/health", timeout=2)
            return r.status_code == 200 and r.json()["status"] == "up"

        wait_for(up, 900, f"hazwatch healthy\n{self.proc.log_tail()}")
        ready = time.perf_counter() - started
        self.sampler.pid = self.pid
        self.cpu_s = cpu_s(self.pid)
        return ready

    def stop(self) -> None:
        self.sampler.pid = 0
        self.proc.stop()

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


def drain(serve: Serve, port: int, messages: list[Sent], expected: int) -> float:
    """Queue `messages` while serve is paused, resume it: msg/s until all are handled."""
    serve.pause()
    try:
        publish_all(port, [(m.topic, m.payload) for m in messages])
    finally:
        serve.resume()
    started = time.perf_counter()
    wait_for(lambda: handled(serve.proc.api) >= expected, 900, f"{expected} messages handled")
    return len(messages) / (time.perf_counter() - started)


def settle(api: str, expected: int) -> None:
    wait_for(lambda: handled(api) >= expected, 900, f"{expected} messages handled")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def china_day(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, tz=CHINA).strftime("%Y-%m-%d")


def time_queries(api: str, db: StateDB, month_end_ns: int, traces: int) -> dict[str, float]:
    """trace p50/p99 over random batches, and a month's ledger (the receiver's, a producer's),
    through the API routes the screen and `hazwatch trace` read."""
    order = "RANDOM()"
    batches = [str(r[0]) for r in db.query(
        f"SELECT batch FROM custody_batch ORDER BY {order} LIMIT ?", (traces,))]  # fmt: skip
    took: list[float] = []
    with httpx.Client(base_url=api, timeout=300) as client:
        for batch in batches:
            started = time.perf_counter()
            r = client.get(f"/api/batches/{batch}/trace")
            took.append(time.perf_counter() - started)
            r.raise_for_status()
        month = {"from": china_day(month_end_ns - 30 * DAY), "to": china_day(month_end_ns - S)}
        ledgers: dict[str, float] = {}
        for site in (story.RECEIVER, producer_id(1)):
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                r = client.get("/api/ledger", params={"site": site, **month})
                runs.append(time.perf_counter() - started)
                r.raise_for_status()
            ledgers[site] = statistics.median(runs)
    return {
        "trace_p50_s": percentile(took, 0.5),
        "trace_p99_s": percentile(took, 0.99),
        "ledger_receiver_s": ledgers[story.RECEIVER],
        "ledger_producer_s": ledgers[producer_id(1)],
    }


def sql_size(db: StateDB, path: Path | None) -> int:
    if db.kind == "postgres":
        return int(db.query("SELECT pg_database_size(current_database())")[0][0])
    assert path is not None
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def influx_count(influxd: Influxd, db: str, measurement: str, where: str = "") -> int:
    clause = f" WHERE {where}" if where else ""
    q = f'SELECT COUNT("{COUNTED[measurement]}") FROM "{measurement}"{clause}'
    found = influxd.query(db, q)
    return int(found[0]["values"][0][1]) if found else 0


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: str
    budget: str = ""
    ok: bool | None = None

    def __post_init__(self) -> None:  # printed as measured: a run cut short keeps its figures
        verdict = "" if self.ok is None else "PASS" if self.ok else "FAIL"
        print(f"  | {self.figure:<42} {self.value:<44} {self.budget:<28} {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30, help="simulated days (≥ 4)")
    parser.add_argument(
        "--scale",
        type=float,
        default=0.0,
        help="simulated seconds per wall second (0: as fast as the broker takes)",
    )
    parser.add_argument("--containers-per-year", type=int, default=100_000)
    parser.add_argument("--producers", type=int, default=500)
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--cameras", type=int, default=50)
    parser.add_argument("--air-every", type=int, default=1, help="send every n-th minute record")
    parser.add_argument("--camera-every", type=int, default=60, help="a frame message every n s")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--grow", default="100000,500000", help="containers to grow the store to")
    parser.add_argument("--traces", type=int, default=200, help="traces timed at each size")
    parser.add_argument("--smoke", action="store_true", help="a few minutes' run (CI)")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()  # fmt: skip
    if args.smoke:
        args.days, args.air_every, args.camera_every = 4, 120, 3600
        args.grow, args.traces = "5000", 50
    if args.days < 4:
        parser.error(
            "--days must be at least 4 (a warm-up day, then day 2, the late day, the last)"
        )
    sizes = [int(n) for n in args.grow.split(",") if n]
    work = Path(tempfile.mkdtemp(prefix="hazwatch-scale-"))
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    rows: list[Row] = []
    # the period ends now: hazwatch judges what is overdue by its own clock at a restart
    now_ns = time.time_ns()
    start_ns = now_ns - now_ns % MIN - args.days * DAY
    city = City(start_ns, args.days, args.producers, args.stations, args.cameras,
                args.containers_per_year, args.air_every, args.camera_every)  # fmt: skip
    broker = Mosquitto(work / "mosquitto")
    # inmem: InfluxDB 1.x's default index, the one that enforces its default series limits
    # (left at their defaults); the cache is written to TSM files soon after writes stop, so
    # that the disk measured is what InfluxDB keeps (compressed), not its WAL
    influxd = Influxd(work / "influxd", index="inmem", limits=COLD)
    pg_url = ""
    sampler = RssSampler()
    serve: Serve | None = None
    wall_started = time.perf_counter()
    try:
        broker.start()
        influxd.start()
        influx_db = "city"
        influxd.create_db(influx_db)
        sqlite_path: Path | None = None
        if args.store == "postgres":
            pg_url = postgres_database()
            state_url = pg_url
        else:
            sqlite_path = work / "state.db"
            state_url = f"sqlite:///{sqlite_path}"
        registry_path = work / "registry.toml"
        registry_path.write_text(
            city_registry(args.producers, args.stations, args.cameras), encoding="utf-8"
        )
        proc = HazwatchProcess.on_influx_v1(
            work / "hazwatch", broker.url, influxd.url, influx_db, state_url=state_url,
            custody__unknown_tag_grace_s="0", custody__door_min_dwell_s="0",
            **UNMEASURED_CLOCKS,
        )  # fmt: skip
        loaded = proc.cli("registry", "load", str(registry_path))
        if loaded.returncode != 0:
            raise RuntimeError(f"registry load failed: {loaded.stderr}")
        serve = Serve(proc, sampler)
        sampler.start()
        serve.start()
        print(
            f"city: {args.producers} producers, {args.containers_per_year:,} containers a year, "
            f"{args.stations} HJ 212 stations, {args.cameras} cameras; vehicles' GPS left out "
            f"(no such family yet); {args.days} days, store {args.store}",
            flush=True,
        )
        print(
            f"scaled: air every {args.air_every} min (of 1), cameras every {args.camera_every} s "
            f"(of 1), time ×{args.scale:g} (0: as fast as taken); reads one per stage",
            flush=True,
        )
        sent = Counter[str]()
        total = 0
        # day 1 is the first whose traffic is steady (every stage: a life takes ~31 h)
        first_day, late_day, last_day = 1, args.days - 2, args.days - 1
        rates: dict[str, float] = {}
        day_marks: list[float] = []
        influx_day: list[int] = []
        for d in range(args.days):
            day_marks.append(time.monotonic() - sampler.t0)
            messages = city.day(d)
            for m in messages:
                sent[MEASUREMENT[m.topic.rsplit("/", 1)[1]]] += 1
            day_start = start_ns + d * DAY
            if d in (first_day, last_day):
                total += len(messages)
                rates["first" if d == first_day else "last"] = drain(
                    serve, broker.port, messages, total
                )
            elif d == late_day:
                late_sites = {producer_id(n) for n in range(1, args.producers + 1, 2)}
                on_time = [m for m in messages if m.site not in late_sites]
                late = [m for m in messages if m.site in late_sites]
                total += len(on_time)
                rates["in_order"] = drain(serve, broker.port, on_time, total)
                total += len(late)
                rates["late"] = drain(serve, broker.port, late, total)
                rates["late_share"] = len(late) / len(messages)
            else:
                total += len(messages)
                publish_paced(broker.port, messages, args.scale, day_start)
                settle(serve.proc.api, total)
            influx_day.append(du(influxd.workdir / "data") + du(influxd.workdir / "wal"))
            print(f"  day {d + 1:3d}/{args.days}: {len(messages):7,} messages "
                  f"({time.perf_counter() - wall_started:5.0f} s)", flush=True)  # fmt: skip
        traffic_s = time.perf_counter() - wall_started
        day_marks.append(time.monotonic() - sampler.t0)

        # -- what was stored against what was sent
        stored = {m: influx_count(influxd, influx_db, m) for m in sent}
        stored["air"] = influx_count(influxd, influx_db, "air", "\"interval\" = 'minute'")
        db = StateDB(state_url)
        verdicts = dict(db.query("SELECT verdict, COUNT(*) FROM custody_batch GROUP BY verdict"))
        events_sql = int(db.query("SELECT COUNT(*) FROM custody_event")[0][0])
        dead = dict(db.query("SELECT reason, COUNT(*) FROM deadletters GROUP BY reason"))
        db.close()
        custody_points = influx_count(influxd, influx_db, "custody")
        whole = city.complete_batches()
        lost = {m: (sent[m], stored.get(m, 0)) for m in sent if stored.get(m, 0) != sent[m]}
        report.update(sent=dict(sent), stored=stored, verdicts=verdicts, dead_letters=dead,
                      custody_events_sql=events_sql, custody_points=custody_points,
                      containers=city.containers, whole_lives=whole)  # fmt: skip
        report.update(messages_sent=total, messages_handled=handled(serve.proc.api))
        rows.append(Row("messages sent / handled", f"{total:,} / {report['messages_handled']:,}"))
        rows.append(
            Row(
                "points stored = sent (per measurement)",
                "all equal" if not lost else f"differ: {lost}",
                "equal",
                not lost,
            )
        )
        rows.append(Row("containers (whole lives sent)", f"{city.containers:,} ({whole:,})"))
        rows.append(
            Row(
                "verdicts",
                ", ".join(f"{k} {v:,}" for k, v in sorted(verdicts.items())),
                f"complete ≥ {whole:,}, broken 0",
                verdicts.get("complete", 0) >= whole and not verdicts.get("broken"),
            )
        )
        rows.append(
            Row(
                "custody events: InfluxDB / SQL",
                f"{custody_points:,} / {events_sql:,}",
                "equal",
                custody_points == events_sql,
            )
        )
        rows.append(Row("dead letters", str(dead or 0), "none", not dead))

        # -- series
        keys = {row[0] for s in influxd.query(influx_db, "SHOW SERIES") for row in s["values"]}
        ((estimate,),) = influxd.query(influx_db, "SHOW SERIES CARDINALITY")[0]["values"]
        bound = series_bound(load_file(registry_path), len(story.WASTES))
        report.update(series=len(keys), series_estimate=estimate, series_bound=bound)
        rows.append(
            Row(
                "series (SHOW SERIES; estimate)",
                f"{len(keys):,} ({estimate:,})",
                f"≤ {bound:,} from the registry",
                len(keys) <= bound,
            )
        )

        # -- disk: once the cache is in TSM files (the WAL emptied), what InfluxDB keeps
        wal = influxd.workdir / "wal"
        sizes_seen: list[int] = []

        def compacted() -> bool:  # the WAL written out and the size unchanged for 6 s
            sizes_seen.append(du(influxd.workdir / "data") + du(wal))
            time.sleep(1)
            return du(wal) < 2**20 and len(sizes_seen) > 6 and len(set(sizes_seen[-6:])) == 1

        try:
            wait_for(compacted, 180, "InfluxDB's cache written and compacted")
        except TimeoutError:
            pass  # measured as it is
        influx_bytes = du(influxd.workdir / "data") + du(wal)
        points = sum(stored.values()) + custody_points
        per_point = influx_bytes / max(1, points)
        full_day_points = (
            points / args.days
            + sent["air"] / args.days * (args.air_every - 1)
            + sent["video_frame"] / args.days * (args.camera_every - 1)
        )
        per_day = influx_bytes / args.days
        full_year = per_point * full_day_points * 365
        report.update(influx_bytes=influx_bytes, influx_per_point=per_point,
                      influx_year=per_day * 365, influx_full_year=full_year)  # fmt: skip
        rows.append(Row("InfluxDB disk per simulated day (as sent)", f"{per_day / 2**20:,.1f} MB"))
        rows.append(Row("  bytes per point", f"{per_point:,.1f}"))
        rows.append(
            Row(
                "  per year (as sent)",
                f"{per_day * 365 / 2**30:,.1f} GB",
                "≤ 500 GB",
                per_day * 365 <= 500 * 2**30,
            )
        )
        # sparse series compress worse than full-rate ones: an upper bound
        rows.append(Row("  per year at the full rates (≤)", f"{full_year / 2**30:,.0f} GB"))

        # -- ingest rates, RSS
        ratio = rates["last"] / rates["first"]
        rows.append(
            Row(
                "ingest first day / last day",
                f"{rates['first']:,.0f} / {rates['last']:,.0f} msg/s ({ratio:.2f}×)",
                "last ≥ 0.9× first",
                ratio >= 0.9,
            )
        )
        late_ratio = rates["late"] / rates["in_order"]
        rows.append(
            Row(
                f"late day ({rates['late_share']:.0%} of day {late_day + 1}) / in order",
                f"{rates['late']:,.0f} / {rates['in_order']:,.0f} msg/s ({late_ratio:.2f}×)",
                "≥ 0.5×",
                late_ratio >= 0.5,
            )
        )
        quarter = (day_marks[-1] - day_marks[0]) / 4
        first_q = [mb for t, mb in sampler.samples if t <= day_marks[0] + quarter]
        last_q = [mb for t, mb in sampler.samples if t >= day_marks[-1] - quarter]
        rss_ratio = max(last_q) / max(first_q)
        report.update(rates=rates, rss_first_q=max(first_q), rss_last_q=max(last_q))
        rows.append(
            Row(
                "serve peak RSS first / last quarter",
                f"{max(first_q):,.0f} / {max(last_q):,.0f} MB ({rss_ratio:.2f}×)",
                "≤ 1.2×",
                rss_ratio <= 1.2,
            )
        )

        # -- start-up, queries, at the natural size and grown
        span_ns = (args.days + 3) * DAY
        natural = city.containers
        db = StateDB(state_url)
        closed = int(db.query("SELECT COUNT(*) FROM custody_batch WHERE verdict <> 'open'")[0][0])
        db.close()
        made = 1  # copies of each closed life stored (the original)
        end_ns = start_ns + args.days * DAY
        for size in [natural, *[s for s in sizes if s > natural]]:
            serve.stop()
            db = StateDB(state_url)
            if size > natural:
                copies = math.ceil((size - natural) / closed) + 1 - made
                started = time.perf_counter()
                grow(db, copies, span_ns, first=made, closed_only=True)
                print(
                    f"  grown by {copies} copies in {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
                made += copies
            count = int(db.query("SELECT COUNT(*) FROM custody_batch")[0][0])
            size_b = sql_size(db, sqlite_path)
            ready_s = serve.start()
            timed = time_queries(serve.proc.api, db, end_ns, args.traces)
            db.close()
            label = f"{count:,} containers"
            report.setdefault("sizes", []).append(
                {
                    "containers": count,
                    "sql_bytes": size_b,
                    "startup_s": ready_s,
                    "startup_cpu_s": serve.cpu_s,
                    **timed,
                }
            )
            rows.append(
                Row(
                    f"SQL store at {label}",
                    f"{size_b / 2**20:,.0f} MB ({size_b / count / 1024:.1f} KB/container)",
                    "≤ 20 KB/container",
                    size_b / count <= 20 * 1024,
                )
            )
            rows.append(
                Row(
                    "  start-up to /api/health 200",
                    f"{ready_s:.2f} s ({serve.cpu_s:.2f} s CPU)",
                    "≤ 5 s",
                    ready_s <= 5,
                )
            )
            rows.append(
                Row(
                    "  trace p50 / p99",
                    f"{timed['trace_p50_s'] * 1000:,.0f} / {timed['trace_p99_s'] * 1000:,.0f} ms",
                    "p99 ≤ 500 ms",
                    timed["trace_p99_s"] <= 0.5,
                )
            )
            rows.append(
                Row(
                    "  ledger month: receiver / a producer",
                    f"{timed['ledger_receiver_s']:.2f} / {timed['ledger_producer_s']:.2f} s",
                    "≤ 5 s",
                    max(timed["ledger_receiver_s"], timed["ledger_producer_s"]) <= 5,
                )
            )
        report["traffic_s"] = traffic_s
        report["wall_s"] = time.perf_counter() - wall_started
    finally:
        sampler.stopped.set()
        if serve is not None and serve.proc.proc is not None:
            try:
                serve.resume()
            except ProcessLookupError:
                pass
            serve.stop()
            session = serve.proc.session
            if session:
                forget_session(*session)
        influxd.stop()
        broker.stop()
        if pg_url:
            drop_postgres_database(pg_url)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(r.figure) for r in rows)
    print(f"\nfigures, one run ({report['wall_s']:.0f} s, traffic {report['traffic_s']:.0f} s)")
    for r in rows:
        verdict = "" if r.ok is None else "PASS" if r.ok else "FAIL"
        print(f"  {r.figure:<{width}}  {r.value:<44} {r.budget:<28} {verdict}")
    report["rows"] = [vars(r) for r in rows]
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
