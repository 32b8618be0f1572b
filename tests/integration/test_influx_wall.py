"""At the wall (#19 item 3): InfluxDB 1.x with low series limits takes 5,000 containers' whole
lifecycles, air stations and cameras through `hazwatch serve`, refuses nothing, and its series
count stays under a bound computed from the registry, not from the containers.

Never lift the limits here: they are the point (tests/services.py keeps InfluxDB's defaults).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hazwatch.base.statedb import StateDB
from hazwatch.devices.families import FAMILIES
from hazwatch.devices.registry import Registry, load_file
from hazwatch.simulators.custody import ONE_READ, WASTES, CustodyLifecycle, plan
from hazwatch.simulators.fleet import Fleet, FleetConfig
from hazwatch.streams.catalog import rule_specs
from hazwatch.streams.custody.rules import STAGES
from hazwatch.streams.custody.store import CustodyStore
from tests.hazwatch_proc import HazwatchProcess
from tests.services import IN_CI, Influxd, Mosquitto, ServiceMissing, wait_for

pytestmark = pytest.mark.integration

REGISTRY = Path(__file__).parents[1] / "data" / "registry.toml"
CONTAINERS = 5_000
# a tenth of InfluxDB's defaults and less (100,000 and 1,000,000): the old schema, with an EPC
# and a batch tag (14 series a container), met both walls before the 1,500th container
LIMITS = {"max-values-per-tag": 1000, "max-series-per-database": 20_000}
STATIONS = CAMERAS = 10
SITE = "jy-0012"
SEVERITIES = 4  # info, warning, major, critical
AIR_INTERVALS = 4  # rtd, minute, hour, day


def wall_registry(tmp_path: Path) -> Path:
    """The sample registry with the fleet's air stations and cameras listed too."""
    text = REGISTRY.read_text(encoding="utf-8")
    secrets = REGISTRY.parent / "station-secrets.example.toml"
    text = text.replace('secrets = "station-secrets.example.toml"', f'secrets = "{secrets}"')
    listed = load_file(REGISTRY)
    for n in range(1, STATIONS + 1):
        if (SITE, f"aq-{n:02d}") not in listed.stations:  # aq-07 is the sample's already
            text += f'\n[[station]]\nid = "aq-{n:02d}"\nsite = "{SITE}"\n'
    for n in range(1, CAMERAS + 1):
        text += f'\n[[camera]]\nid = "cam-{n:02d}"\nsite = "{SITE}"\n'
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


def series_bound(reg: Registry, waste_codes: int) -> int:
    """The most series the schema of docs/payloads.md ("Series bounded by the registry") can
    make for this registry, whatever the traffic: each measurement's tags multiplied out."""
    devices = sum(
        len(table) for table in (reg.readers, reg.scales, reg.stations, reg.cameras, reg.terminals)
    )
    sites, rules = len(reg.sites), len(rule_specs())
    return (
        len(reg.readers)  # waste_read: one location kind a reader
        + len(reg.scales)  # waste_weight
        + len(reg.terminals) * (waste_codes + 1)  # waste_batch by code, waste_manifest
        + len(reg.stations) * (AIR_INTERVALS + 2)  # air by interval, air_hourly, air_daily
        + len(reg.cameras)  # video_frame
        + devices * len(FAMILIES)  # device_status (a device id under any family's topic)
        + sites * len(STAGES) * (waste_codes + 1)  # custody (code left out while unknown)
        + sites * rules * SEVERITIES  # alert
    )


def points(influxd: Influxd, db: str, measurement: str) -> int:
    """Points of a measurement, counted by the server: the count of a field all its points
    carry (pm25: every fleet air reading has it)."""
    field = {"custody": "event_id", "waste_read": "epc", "air": "pm25", "video_frame": "seq"}
    found = influxd.query(db, f'SELECT COUNT("{field[measurement]}") FROM "{measurement}"')
    return int(found[0]["values"][0][1]) if found else 0


@pytest.fixture()
def walled_influxd(tmp_path: Path) -> Iterator[Influxd]:
    # inmem, InfluxDB 1.x's default index: the one that enforces both limits (1.6's tsi1
    # enforced neither, so a wall test on it would pass whatever the schema)
    server = Influxd(tmp_path / "influxd", limits=LIMITS, index="inmem")
    try:
        server.start()
    except ServiceMissing as exc:
        if IN_CI:
            pytest.fail(f"influxd is required in CI: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


def test_5000_containers_air_and_cameras_under_low_limits_refuse_nothing(
    mosquitto: Mosquitto, walled_influxd: Influxd, tmp_path: Path, sqlite_url: str
) -> None:
    state_url = sqlite_url  # the wall is InfluxDB's: one state store is enough
    db = f"wall_{uuid.uuid4().hex[:8]}"
    walled_influxd.create_db(db)
    registry_path = wall_registry(tmp_path)
    hazwatch = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch",
        mosquitto.url,
        walled_influxd.url,
        db,
        state_url=state_url,
        custody__unknown_tag_grace_s="0",
        custody__door_min_dwell_s="0",
    )
    loaded = hazwatch.cli("registry", "load", str(registry_path))
    assert loaded.returncode == 0, loaded.stderr
    the_plan = plan(CONTAINERS, 0, seed=19, reads=ONE_READ, prefix="W")
    hazwatch.start()
    try:
        report = asyncio.run(CustodyLifecycle(the_plan, window=500).run(mosquitto.url))
        assert report.ok
        fleet = Fleet(
            FleetConfig(
                site=SITE,
                devices=STATIONS,
                families=("air", "camera"),
                rate=0,
                duration_s=None,
                count=4000,
                seed=19,
                keep_messages=False,
            )
        )
        assert asyncio.run(fleet.run(mosquitto.url)).ok

        state = StateDB(state_url)
        try:
            store = CustodyStore(state)

            def judged() -> int | None:
                rows = store.batches(limit=CONTAINERS + 10)
                done = sum(r["verdict"] != "open" for r in rows)
                return done if done == CONTAINERS else None

            wait_for(judged, 600, f"{CONTAINERS} batches judged")
            events = sum(len(t.stages) for t in the_plan.batches.values())
            wait_for(lambda: points(walled_influxd, db, "custody") == events, 120, "custody")
            wait_for(
                lambda: (
                    points(walled_influxd, db, "video_frame") >= 1
                    and points(walled_influxd, db, "air") >= 1
                ),
                60,
                "air and camera points",
            )
            reasons = dict(state.query("SELECT reason, COUNT(*) FROM deadletters GROUP BY reason"))
        finally:
            state.close()
    finally:
        hazwatch.stop()
    assert "store_rejected" not in reasons, reasons
    assert "partial write" not in hazwatch.log_path.read_text(encoding="utf-8", errors="replace")

    reads = sum(1 for m in the_plan.messages if m.topic.endswith("/read"))
    assert points(walled_influxd, db, "waste_read") == reads  # every read its own point
    # the series the database holds, each once (1.6's EXACT CARDINALITY counts a series again
    # in every shard it has points in: 941 for these 74, over the plan's 30 weekly shards)
    keys = {
        row[0] for series in walled_influxd.query(db, "SHOW SERIES") for row in series["values"]
    }
    cardinality = len(keys)
    ((estimate,),) = walled_influxd.query(db, "SHOW SERIES CARDINALITY")[0]["values"]
    bound = series_bound(load_file(registry_path), len(WASTES))
    print(f"series: {cardinality} (estimate {estimate}), {CONTAINERS} containers, bound {bound}")
    assert cardinality <= bound < LIMITS["max-series-per-database"]
    assert estimate <= bound * 1.05  # HyperLogLog's estimate
