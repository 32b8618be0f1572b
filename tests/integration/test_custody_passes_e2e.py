"""Issue #18's example through Mosquitto → `hazwatch serve` → state store and InfluxDB 1.x: a
150 kg drum carried in and out of a store, 200 reads at each door, parked by the door for an
hour, counted at a stocktake, its messages arriving shuffled and partly twice.

Never wait blindly: every effect is polled for with a deadline (tests.services.wait_for).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import decode
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import CustodyEvent, Tracker
from hazwatch.streams.custody.settings import CustodyLimits
from hazwatch.streams.custody.store import CustodyStore
from tests import custody_example as story
from tests.hazwatch_proc import HazwatchProcess
from tests.services import Influxd, Mosquitto, wait_for

pytestmark = pytest.mark.integration
CHINA = timezone(timedelta(hours=8))
H = 3600 * 1_000_000_000


@pytest.fixture()
def serve(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path, state_url: str
) -> Iterator[HazwatchProcess]:
    db = f"passes_{uuid.uuid4().hex[:8]}"
    influxd.create_db(db)
    registry = tmp_path / "registry.toml"
    registry.write_text(story.REGISTRY, encoding="utf-8")
    hazwatch = HazwatchProcess.on_influx_v1(
        tmp_path / "hazwatch", mosquitto.url, influxd.url, db, state_url=state_url
    )
    hazwatch.env["TEST_INFLUX_DB"] = db
    loaded = hazwatch.cli("registry", "load", str(registry))
    assert loaded.returncode == 0, loaded.stderr
    hazwatch.start()
    try:
        yield hazwatch
    finally:
        hazwatch.stop()


async def publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, as the readers publish: every PUBACK awaited."""
    name = f"readers-{uuid.uuid4().hex[:6]}"
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=name) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def reference(ex: story.Example, registry: Path, tmp_path: Path) -> CustodyProcessor:
    """One in-process processor fed the story in the order it happened, once."""
    db = StateDB(f"sqlite:///{tmp_path / 'reference.db'}")
    tracker = Tracker()
    ctx = RegistryContext(None, load_file(registry), batches=tracker.epc_batch)
    proc = CustodyProcessor(tracker, ctx, ListSink(), CustodyStore(db), limits=CustodyLimits())
    now = time.time_ns()
    decoded = [decode(t, p, ctx, now_ns=now) for t, p in ex.messages]
    for start in range(0, len(decoded), 500):
        proc.process(decoded[start : start + 500], now)
    return proc


def pass_of(e: CustodyEvent) -> tuple[Any, ...]:
    return (e.event_id, e.stage, e.ts_ns, e.site, e.device, e.last_ns, e.reads, e.peak_rssi,
            e.antenna, e.net_kg)  # fmt: skip


def months(start_ns: int, end_ns: int) -> list[str]:
    """The months from one instant's to another's, China time: what the ledger must cover."""
    first = datetime.fromtimestamp(start_ns // 10**9, CHINA)
    last = datetime.fromtimestamp(end_ns // 10**9, CHINA)
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = y + (m == 12), m % 12 + 1
    return out


def test_one_drum_carried_in_and_out_is_one_stored_and_one_dispatched(
    serve: HazwatchProcess, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    ex = story.example(time.time_ns() - 6 * H)
    rng = random.Random(18)
    arriving = list(ex.messages)
    arriving += rng.sample(ex.messages[4:], len(ex.messages) // 10)  # reads delivered twice
    rng.shuffle(arriving)
    asyncio.run(publish(mosquitto, arriving))

    state = StateDB(serve.env["HAZWATCH_STATE_URL"])
    try:
        store = CustodyStore(state)

        def settled() -> list[CustodyEvent] | None:
            events = store.events(story.BATCH)
            seen = sum(e.reads for e in events) + sum(
                d.reads for d in store.diagnostics(story.BATCH)
            )
            return events if seen == ex.reads else None  # every read is in some pass

        events = wait_for(settled, 60, f"all {ex.reads} reads in passes\n{serve.log_tail()}")
        # as one worker fed the story in order, once, says: what arrived shuffled and twice
        # changes nothing
        want = reference(ex, tmp_path / "registry.toml", tmp_path)
        judged = want.tracker.trace(story.BATCH)
        assert judged is not None
        assert [pass_of(e) for e in events] == [pass_of(e) for e in judged.events]
        assert [e.stage for e in events] == ["GENERATED", "STORED", "DISPATCHED"]
        stored, dispatched = events[1], events[2]
        door_in, door_out = ex.carried_in, ex.carried_out
        assert (stored.ts_ns, stored.last_ns, stored.reads, stored.peak_rssi) == (
            door_in.first_ns, door_in.last_ns, 200, door_in.peak_rssi,
        )  # fmt: skip
        assert (dispatched.device, dispatched.ts_ns, dispatched.reads) == (
            "gate-04", door_out.first_ns, 200,
        )  # fmt: skip
        row = store.batch(story.BATCH)
        assert row is not None and (row["verdict"], row["violations"]) == ("open", [])
        notes = store.diagnostics(story.BATCH)
        assert sorted((d.device, d.ts_ns, d.why) for d in notes) == sorted(
            (d.device, d.ts_ns, d.why) for d in judged.diagnostics
        )
        assert len(notes) == 121  # the parked hour's 120 bursts, the stocktake
    finally:
        state.close()

    # hazwatch trace: three events, each door's with its pass
    trace = serve.cli("trace", story.BATCH, "--json")
    assert trace.returncode == 0, trace.stderr
    doc = json.loads(trace.stdout)
    assert [e["stage"] for e in doc["events"]] == ["GENERATED", "STORED", "DISPATCHED"]
    assert [e["pass"]["reads"] for e in doc["events"][1:]] == [200, 200]
    assert doc["events"][1]["pass"]["peak_rssi"] == door_in.peak_rssi
    assert doc["events"][1]["pass"]["antenna"] == door_in.antenna
    assert {d["why"] for d in doc["diagnostics"]} <= {"repeat", "short"}
    text = serve.cli("trace", story.BATCH)  # Chinese by default
    assert text.returncode == 0, text.stderr
    assert "200 次读取" in text.stdout and "不构成托管事件的读取过程" in text.stdout
    text = serve.cli("trace", story.BATCH, "--lang", "en")
    assert text.returncode == 0, text.stderr
    assert "200 reads" in text.stdout and "passes that are no custody event" in text.stdout

    # hazwatch ledger: 1 入库 and 1 出库 of 150.0 kg; the summary 150.0 kg, the months asked
    first_day = datetime.fromtimestamp(ex.t0_ns // 10**9, CHINA).strftime("%Y-%m-%d")
    last_day = datetime.fromtimestamp(ex.end_ns // 10**9, CHINA).strftime("%Y-%m-%d")
    out = tmp_path / "ledger.json"
    ledger = serve.cli(
        "ledger", "--site", story.SITE, "--from", first_day, "--to", last_day,
        "--format", "json", "--output", str(out),
    )  # fmt: skip
    assert ledger.returncode == 0, ledger.stderr
    built = json.loads(out.read_text(encoding="utf-8"))
    records = [(r["record_type"], r["quantity"]) for r in built["records"]]
    assert sorted(records) == sorted([("产生", 150.0), ("入库", 150.0), ("出库", 150.0)])
    start = int(datetime.strptime(first_day, "%Y-%m-%d").replace(tzinfo=CHINA).timestamp())
    end = int(datetime.strptime(last_day, "%Y-%m-%d").replace(tzinfo=CHINA).timestamp())
    assert [m["month"] for m in built["monthly"]] == months(start * 10**9, end * 10**9)
    assert sum(m["generated_kg"] for m in built["monthly"]) == 150.0
    assert sum(m["transferred_kg"] for m in built["monthly"]) == 150.0

    # InfluxDB: every raw read kept (once: a redelivery has the same identity), custody
    # points of the three events only
    db = serve.env["TEST_INFLUX_DB"]
    wait_for(
        lambda: influxd.count(db, "waste_read", f"epc = '{story.EPC}'") == ex.reads,
        30,
        f"{ex.reads} waste_read points",
    )
    series = influxd.query(db, f"SELECT event_id, stage FROM custody WHERE batch = '{story.BATCH}'")
    ids = {tuple(v[1:]) for s in series for v in s["values"]}
    assert ids == {(e.event_id, e.stage) for e in events}
