"""CLI: `hazwatch demo`, the whole product on embedded defaults: broker, service, simulators.

Never need anything but the installed package; never hide which broker runs or that the
pure-Python fallback is not for production.
"""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from collections import Counter
from importlib import resources
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

DEMO_SITE = "jy-0012"  # the producer site of the demo registry


# The demo's custody story is compressed (a container's life in 2.5 minutes, a pair every
# 20 s) and read as real readers report (bursts at 25 reads/s, cross-reads, parked drums,
# stocktakes), so that every custody rule but storage_overdue fires within a few minutes; the
# custody tolerances shrink with it (simulators.custody.COMPRESSED_LIMITS).
# A device whose clock is off, to show hazwatch measuring device clocks (/metrics, the
# device API, clock_skew): the generation scale two minutes slow, as a device long without
# NTP drifts. A scale's time orders nothing in custody, so its verdicts stay right while the
# offset is being measured; `--clock gate-03=-120s` (a slow storage-in door) or
# `--clock veh-01=reboot@90` (the vehicle's reader back at 2000-01-01) show custody ordering
# by measured clocks too: what was judged before the offset was known (broken, for a door 2
# minutes slow) is judged again once it is, and its alerts resolve by themselves.
DEMO_CLOCKS = ("s1=-120s",)
# The fleet's families beside the custody story (whose terminal, scales and readers are the
# registry's): its readers are outside the registry, so only their clocks and reads show.
DEMO_FLEET_FAMILIES = ("rfid", "air", "camera")


class _Fleets:
    """The demo's simulators, each in a thread with its own event loop; stoppable."""

    def __init__(self, mqtt_url: str, rate: float, clocks: tuple[str, ...] = ()) -> None:
        from hazwatch.simulators.clocks import parse_clocks
        from hazwatch.simulators.custody import LiveCustody
        from hazwatch.simulators.fleet import Fleet, FleetConfig

        seed = int(time.time())
        parsed = parse_clocks(clocks)
        self.custody = LiveCustody(clocks=parsed, seed=seed, keep_plans=False)
        self.fleets: list[Fleet | LiveCustody] = [
            Fleet(
                FleetConfig(
                    site=DEMO_SITE,
                    devices=2,
                    rate=rate,
                    duration_s=math.inf,
                    keep_messages=False,
                    seed=seed,
                    families=DEMO_FLEET_FAMILIES,
                    clocks=parsed,
                )
            ),
            self.custody,
        ]
        self.url = mqtt_url
        self.errors: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for fleet in self.fleets:
            thread = threading.Thread(target=self._run, args=(fleet,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, fleet: object) -> None:
        try:
            asyncio.run(fleet.run(self.url))  # type: ignore[attr-defined]
        except Exception as exc:
            self.errors.append(str(exc))

    def stop(self) -> None:
        for fleet in self.fleets:
            fleet.stop()
        for thread in self._threads:
            thread.join(10)


class _ScreenFeeds:
    """What the screen's air and video pages show within a minute, as devices send it: the
    registry's air station (aq-07, HJ 212 minute data over MQTT) with its last day sent at once
    and then a minute at a time, two cameras at the disposal center's storage room, the
    second covered for two minutes in every four (simulators/hj212_station.py, camera.py), and
    the registry's door camera (cam-2, watching the storage door gate-03) uploading a snapshot
    every half minute, so each batch's storing has the door as its camera saw it
    (simulators/door_camera.py: no camera extra needed)."""

    AIR = ("aq-07", "41900100000007", 2.4)  # the demo registry's station, a dirty site
    VIDEO_SITE = "dp-01"
    VIDEO_ROUND_S = 240.0
    DOOR_CAMERA = "cam-2"

    def __init__(self, mqtt_url: str, api: str = "", token: str = "") -> None:
        self.url, self.api, self.token = mqtt_url, api, token
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target in (self._air, self._video, self._door):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def _air(self) -> None:
        from hazwatch.simulators.hj212_station import AirSimConfig, StationSpec, run_stations

        station, mn, pollution = self.AIR
        spec = StationSpec(DEMO_SITE, station, mn, pollution=pollution, seed=7)
        minute_ns = 60 * 1_000_000_000
        now = time.time_ns() // minute_ns * minute_ns
        # The last day at once (its hours close: the air page has a day to show), up to this
        # minute, then each minute as it starts: the packet's QN (its time of sending) stays
        # near the receiver's clock, so the clocks part measures the station right.
        try:
            done = asyncio.run(
                run_stations([spec], AirSimConfig(start_ns=now - 1439 * minute_ns, minutes=1440),
                             mqtt_url=self.url)
            )  # fmt: skip
            self.errors += done.errors
            while not self._stop.wait(max(1.0, (now + minute_ns - time.time_ns()) / 1e9)):
                now += minute_ns
                done = asyncio.run(
                    run_stations([spec], AirSimConfig(start_ns=now, minutes=1), mqtt_url=self.url)
                )
                self.errors += done.errors[-1:]
        except Exception as exc:
            self.errors.append(f"air station: {exc}")

    def _video(self) -> None:
        from hazwatch.simulators.camera import VideoFleet

        round_no = 0
        while not self._stop.is_set():
            cameras = VideoFleet(
                site=self.VIDEO_SITE,
                cameras=2,
                rate=1.0,
                duration_s=self.VIDEO_ROUND_S,
                tampers={"cam-02": "occlusion"},  # covered for the second half of each round
                seed=round_no,
            )
            try:
                report = asyncio.run(cameras.run(self.url))
                self.errors += report.errors[-1:]
            except Exception as exc:
                self.errors.append(f"cameras: {exc}")
                self._stop.wait(5)
            round_no += 1

    def _door(self) -> None:
        from hazwatch.simulators.door_camera import DoorCamera

        door = DoorCamera(self.api, DEMO_SITE, self.DOOR_CAMERA, token=self.token)
        while not self._stop.is_set():
            try:
                door.upload(time.time_ns())
            except Exception as exc:  # the service going down: said, and tried again
                self.errors.append(f"door camera: {exc}")
            self._stop.wait(door.every_s)


def _screen_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/screen/"


def _status_line(service: object, started: float) -> str:
    """One line of what the demo holds, for an output that is not a terminal (no live panel)."""
    pipeline = service.pipeline  # type: ignore[attr-defined]
    alerts = service.alerts.count(state="open")  # type: ignore[attr-defined]
    return (
        f"hazwatch demo: {time.monotonic() - started:,.0f} s, {pipeline.messages:,} messages, "
        f"custody {_custody_note(service)}, {alerts} open alerts"
    )


def _load_demo_registry(service: object) -> str:
    from hazwatch.devices import registry

    text = resources.files("hazwatch").joinpath("demo_registry.toml").read_text("utf-8")
    import tomllib

    reg = registry.parse_registry(tomllib.loads(text), "demo registry")
    registry.save(service.db, reg, "demo registry", time.time_ns())  # type: ignore[attr-defined]
    ctx = service.decode_ctx  # type: ignore[attr-defined]
    if hasattr(ctx, "refresh"):
        ctx.refresh(force=True)
    return f"{len(reg.sites)} sites, {len(reg.readers)} readers"


def demo(
    duration: Annotated[
        float | None,
        typer.Option("--duration", "-d", min=1, help="Stop after this many seconds (unattended)."),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(min=0.1, help="Messages per second of the fleet (the custody story's own)."),
    ] = 20.0,
    broker: Annotated[
        str, typer.Option(help="auto (mosquitto if installed, else amqtt), mosquitto or amqtt.")
    ] = "auto",
    clock: Annotated[
        list[str] | None,
        typer.Option(
            help="A device's clock, DEVICE=SPEC (see `hazwatch simulate --help`), repeatable; "
            f"`none`: every clock exact. Default: {', '.join(DEMO_CLOCKS)} (the generation "
            "scale, two minutes slow)."
        ),
    ] = None,
) -> None:
    """Run the whole product locally: a broker, hazwatch, and simulated devices of every family."""
    from hazwatch.app import HazwatchService
    from hazwatch.embedded import EmbeddedBroker
    from hazwatch.invocation import settings
    from hazwatch.logs import setup_logging
    from hazwatch.simulators.custody import COMPRESSED_LIMITS

    if broker not in ("auto", "mosquitto", "amqtt"):
        raise typer.BadParameter("must be auto, mosquitto or amqtt", param_hint="--broker")
    base = settings()
    setup_logging(base.log_format, "WARNING")
    console = Console()
    embedded = EmbeddedBroker(base.data_dir / "broker", prefer=broker)
    embedded.start()
    cfg = settings(
        mqtt_url=embedded.url,
        mqtt_protocol=embedded.protocol,
        mqtt_client_id="hazwatch-demo",
        # a tag of no batch is alerted at once, not after the 5 minutes' grace (as the demo
        # registry's [custody] table said before the tolerances became settings); the rest as
        # the compressed story needs them
        custody={"unknown_tag_grace_s": 0, **COMPRESSED_LIMITS},
    )
    clocks = _demo_clocks(clock)
    service = HazwatchService(cfg)
    try:
        registry_note = _load_demo_registry(service)
    except Exception as exc:  # the demo still runs without custody locations
        registry_note = f"not loaded ({exc})"
    service.start()
    screen = _screen_url(cfg.api_host, service.api_port)
    # the first line, whatever the output is (a terminal, a log file, systemd, CI)
    print(f"hazwatch demo: the screen is at {screen} (wall display: {screen}wall)", flush=True)
    fleets = _Fleets(embedded.url, rate, clocks)
    fleets.start()
    feeds = _ScreenFeeds(embedded.url, screen.removesuffix("/screen/"), cfg.api_token)
    feeds.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    where = Table.grid(padding=(0, 2))
    where.add_row("broker", embedded.describe())
    store = cfg.influx_url or f"embedded point store {cfg.points_path} (SQLite)"
    where.add_row("points", store)
    where.add_row("state", service.db.describe())
    where.add_row("registry", registry_note)
    api = f"http://{cfg.api_host}:{service.api_port}"
    where.add_row("screen", f"{screen}  (wall: {screen}wall)")
    where.add_row("API", f"{api}/api/health  (docs: {api}/docs)")
    where.add_row("metrics", f"{api}/metrics")
    where.add_row("camera agent", _camera_agent_note())
    where.add_row("device clocks", ", ".join(clocks) or "all exact")
    if not cfg.influx_url:
        where.add_row("InfluxDB", "set HAZWATCH_INFLUX_URL (and _API, _DB or _TOKEN/_ORG/_BUCKET)")
    if not embedded.production_ready:
        console.print(
            "[yellow]amqtt is a demo fallback, not for production: it speaks MQTT 3.1.1 only "
            "and drops a QoS 1 message unacked for 5 s. Install mosquitto.[/yellow]"
        )

    last = (time.monotonic(), 0, 0)
    rates = (0.0, 0.0)

    def render() -> Panel:
        nonlocal last, rates
        now = time.monotonic()
        pipeline = service.pipeline
        messages, points = pipeline.messages, pipeline.points_written + pipeline.points_spooled
        if now - last[0] >= 1.0:
            rates = ((messages - last[1]) / (now - last[0]), (points - last[2]) / (now - last[0]))
            last = (now, messages, points)
        stats = Table.grid(padding=(0, 2))
        stats.add_row("running", f"{now - started:,.0f} s")
        stats.add_row("messages/s", f"{rates[0]:,.1f}")
        stats.add_row("points/s", f"{rates[1]:,.1f}")
        stats.add_row("messages in", f"{messages:,}")
        stats.add_row("points stored", f"{pipeline.points_written:,}")
        if pipeline.points_spooled:
            stats.add_row("points spooled", f"{pipeline.points_spooled:,} ({len(service.spool)})")
        online = _online_by_family(service)
        stats.add_row(
            "devices online", ", ".join(f"{f} {n}" for f, n in sorted(online.items())) or "-"
        )
        letters = service.deadletters.count_by_reason()
        stats.add_row(
            "dead letters",
            ", ".join(f"{r} {n}" for r, n in sorted(letters.items())) or "none",
        )
        stats.add_row("custody", _custody_note(service))
        open_alerts = service.alerts.list(state="open", limit=1000)
        by_rule = Counter(a.rule for a in open_alerts)
        stats.add_row(
            "open alerts",
            f"{len(open_alerts)}"
            + (
                f" ({', '.join(f'{r} {n}' for r, n in sorted(by_rule.items()))})" if by_rule else ""
            ),
        )
        if fleets.errors:
            stats.add_row("simulator", fleets.errors[-1])
        if feeds.errors:
            stats.add_row("air, cameras", feeds.errors[-1])
        return Panel(Group(where, "", stats), title="hazwatch demo — Ctrl-C to stop")

    try:
        if console.is_terminal:
            with Live(render(), console=console, refresh_per_second=2) as live:
                while not stop.wait(0.5):
                    live.update(render())
                    if duration is not None and time.monotonic() - started >= duration:
                        break
        else:  # no live panel in a log: where things are, then a line every 15 s
            console.print(where)
            last_line = time.monotonic()
            while not stop.wait(0.5):
                if time.monotonic() - last_line >= 15:
                    last_line = time.monotonic()
                    print(_status_line(service, started), flush=True)
                if duration is not None and time.monotonic() - started >= duration:
                    break
    finally:
        console.print("stopping: simulators, then hazwatch (flushing), then the broker")
        feeds.stop()
        fleets.stop()
        service.close()
        embedded.close()
    console.print(
        f"done: {service.pipeline.messages:,} messages, "
        f"{service.pipeline.points_written:,} points stored in {store}"
    )
    console.print(f"custody: {_custody_note(service)}")


def _demo_clocks(given: list[str] | None) -> tuple[str, ...]:
    """The devices whose clocks are off: as given (`none`: none), else the demo's one."""
    if given:
        return () if [g.lower() for g in given] == ["none"] else tuple(given)
    return DEMO_CLOCKS


def _custody_note(service: object) -> str:
    """Batches by verdict and custody events, from the state store (what the trace shows)."""
    try:
        db = service.db  # type: ignore[attr-defined]
        verdicts = dict(db.query("SELECT verdict, COUNT(*) FROM custody_batch GROUP BY verdict"))
        events = db.query("SELECT COUNT(*) FROM custody_event")[0][0]
    except Exception:
        return "-"
    shown = ", ".join(f"{v} {verdicts[v]}" for v in ("complete", "open", "broken") if v in verdicts)
    return f"{sum(verdicts.values())} batches ({shown or 'none yet'}), {events:,} events"


def _camera_agent_note() -> str:
    """The OpenCV edge agent is an extra: say how to run it, or which extra it needs."""
    from rich.markup import escape

    from hazwatch import extras

    lacking = extras.missing("camera")
    if lacking:
        return (
            f"[yellow]needs the camera extra ({', '.join(lacking)} not installed):"
            f" {escape(extras.install_hint('camera'))}[/yellow]"
        )
    return f"hazwatch camera --source synthetic:person --camera cam-01 --site {DEMO_SITE}"


def _online_by_family(service: object) -> Counter[str]:
    """Latest status per device from the point store (what the screen would show)."""
    try:
        rows = service.reader.select(  # type: ignore[attr-defined]
            "device_status", newest_first=True, limit=2000
        )
    except Exception:
        return Counter()
    latest: dict[tuple[str, str], bool] = {}
    for row in rows:
        key = (str(row.get("family")), str(row.get("device")))
        if key not in latest:
            latest[key] = bool(row.get("online"))
    return Counter(family for (family, _), online in latest.items() if online)


def register(app: typer.Typer) -> None:
    app.command()(demo)
