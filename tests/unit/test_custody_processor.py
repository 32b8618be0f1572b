"""The custody processor: messages → events with ids from the source message, points, alerts."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from hazwatch.alerts.model import ListSink
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.registry import RegistryContext, load_file
from hazwatch.streams.custody.processor import CustodyProcessor
from hazwatch.streams.custody.rules import Tracker
from hazwatch.streams.custody.store import CustodyStore
from tests.samples import custody_limits

REGISTRY = load_file(Path(__file__).parents[1] / "data" / "registry.toml")
LIMITS = custody_limits()  # the sample settings' tolerances
NOW = time.time_ns()
TS = NOW // 1_000_000 - 3_600_000
EPC = "E28000000000000000000042"


def message(topic: str, **body: object) -> tuple[str, bytes]:
    return topic, orjson.dumps({"ts": body.pop("ts", TS), **body})


def carried(reader: str, ts_ms: int, reads: int = 5) -> list[tuple[str, bytes]]:
    """A tag carried past a reader: a read every 250 ms for a second, RSSI rising, falling."""
    return [
        message(f"hw/jy-0012/rfid/{reader}/read", epc=EPC, ts=ts_ms + 250 * k,
                rssi=-62.0 + 4 * min(k, reads - 1 - k), antenna=1 + k % 2)
        for k in range(reads)
    ]  # fmt: skip


STORY = [
    message("hw/jy-0012/scale/s1/weight", epc=EPC, net_kg=50.0, ts=TS - 1000),
    message("hw/jy-0012/terminal/t1/batch", epc=EPC, batch="B42", waste_code="900-249-08"),
    *carried("gate-03", TS + 60_000),
    message("hw/jy-0012/rfid/mystery/read", epc=EPC, ts=TS + 70_000),  # reader not in registry
]


def make(tmp_path: Path) -> tuple[CustodyProcessor, ListSink, StateDB]:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    tracker = Tracker()
    ctx = RegistryContext(None, REGISTRY, batches=tracker.epc_batch)
    sink = ListSink()
    return CustodyProcessor(tracker, ctx, sink, CustodyStore(db), limits=LIMITS), sink, db


def decoded(proc: CustodyProcessor, items: list[tuple[str, bytes]]) -> list[Decoded]:
    return [decode(topic, payload, proc.registry, now_ns=NOW) for topic, payload in items]


def test_messages_become_events_and_points(tmp_path: Path) -> None:
    proc, sink, db = make(tmp_path)
    points = proc.process(decoded(proc, STORY), NOW)
    assert sorted(p.tags["stage"] for p in points) == ["GENERATED", "STORED"]
    generated = next(p for p in points if p.tags["stage"] == "GENERATED")
    assert generated.measurement == "custody"
    assert generated.tags == {"site": "jy-0012", "stage": "GENERATED", "waste_code": "900-249-08"}
    assert generated.fields["batch"] == "B42"
    assert generated.fields["net_kg"] == 50.0 and generated.fields["device"] == "t1"
    assert sink.raised == []
    # the unknown reader's read is kept by decode (flagged) but is no custody event
    read = decode(*STORY[-1], proc.registry, now_ns=NOW)
    assert read.points[0].fields["unknown_reader"] is True
    assert read.points[0].fields["batch"] == "B42"  # batch_of answers from the tracker
    assert db.query("SELECT COUNT(*) FROM custody_event")[0][0] == 2


def test_redelivered_messages_make_no_second_event(tmp_path: Path) -> None:
    proc, _, db = make(tmp_path)
    proc.process(decoded(proc, STORY), NOW)
    again = proc.process(decoded(proc, STORY + STORY), NOW)
    assert again == []
    assert db.query("SELECT COUNT(*) FROM custody_event")[0][0] == 2
    # the door seeing it again, where it already is, is no second event: a diagnostic
    assert proc.process(decoded(proc, carried("gate-03", TS + 90_000)), NOW) == []
    assert db.query("SELECT COUNT(*) FROM custody_event")[0][0] == 2
    assert db.query("SELECT why FROM custody_diagnostic") == [("repeat",)]
    # carried out through the other door: the next stage
    later = proc.process(decoded(proc, carried("gate-04", TS + 120_000)), NOW)
    assert [p.tags["stage"] for p in later] == ["DISPATCHED"]


def test_unknown_tag_alert(tmp_path: Path) -> None:
    proc, sink, _ = make(tmp_path)
    proc.process(
        decoded(proc, [message("hw/jy-0012/rfid/gate-03/read", epc="ABCDEF0123456789")]), NOW
    )
    assert [(s.rule, s.subject, s.site) for s in sink.raised] == [
        ("unknown_tag", "ABCDEF0123456789", "jy-0012")
    ]


def test_failed_save_forgets_what_it_applied(tmp_path: Path) -> None:
    proc, _, db = make(tmp_path)
    assert proc.store is not None
    real_save = proc.store.write

    def broken_save(*args: object) -> None:
        raise RuntimeError("disk full")

    proc.store.write = broken_save  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        proc.process(decoded(proc, STORY), NOW)
    assert proc.tracker.judged == {} and proc.tracker.epc_batch == {}
    proc.store.write = real_save  # type: ignore[method-assign]
    points = proc.process(decoded(proc, STORY), NOW)  # the redelivery now lands
    assert len(points) == 2
    assert db.query("SELECT COUNT(*) FROM custody_event")[0][0] == 2
