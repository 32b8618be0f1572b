"""The pipeline's batch order: batches decode and write side by side, processors take them in
the order the consumer received them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import Decoded
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest.consumer import MessageBatch, RawMessage
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.pipeline import IngestPipeline, OutOfTurn
from hazwatch.ingest.pointstore import PointStore
from hazwatch.ingest.spool import Spool


class Recorder:
    """A StreamProcessor that notes the station of each batch it is given."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        self.seen.extend(sorted({d.topic.device for d in batch}))
        return []

    def tick(self, now_ns: int) -> list[Point]:
        return []


def batch(seq: int, station: str, pollutant: str = "pm25") -> MessageBatch:
    now_ms = int(time.time() * 1000)
    body = orjson.dumps({"ts": now_ms - 1000 + seq, pollutant: 30.0})
    out = MessageBatch([RawMessage(seq + 1, f"hw/s1/air/{station}/reading", body, 1, 0, 0)])
    out.seq = seq
    return out


@pytest.fixture()
def pipeline(tmp_path: Path) -> tuple[IngestPipeline, Recorder]:
    recorder = Recorder()
    pipe = IngestPipeline(
        ctx=NoRegistry(),
        writer=PointStore(tmp_path / "points.db"),
        spool=Spool(tmp_path / "spool", 1 << 20),
        deadletters=DeadLetterStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}")),
        processors=[recorder],
    )
    return pipe, recorder


def test_processors_take_batches_in_the_order_received(
    pipeline: tuple[IngestPipeline, Recorder],
) -> None:
    pipe, recorder = pipeline
    later = threading.Thread(target=pipe.handle, args=(batch(1, "second"),))
    later.start()  # batch 1 reaches the pipeline first ...
    time.sleep(0.3)
    assert recorder.seen == []  # ... and waits for batch 0
    pipe.handle(batch(0, "first"))
    later.join(5)
    assert recorder.seen == ["first", "second"]
    pipe.handle(batch(0, "first"))  # a redelivered or retried batch goes at once
    assert recorder.seen == ["first", "second", "first"]


def test_a_batch_whose_predecessor_never_comes_fails_instead_of_jumping_the_queue(
    pipeline: tuple[IngestPipeline, Recorder],
) -> None:
    pipe, recorder = pipeline
    pipe.order_wait_s = 0.2
    with pytest.raises(OutOfTurn, match="batch 2 waited"):
        pipe.handle(batch(2, "early"))
    assert recorder.seen == []
    pipe.handle(batch(0, "a"))
    pipe.handle(batch(1, "b"))
    pipe.handle(batch(2, "early"))  # its retry, in turn now
    assert recorder.seen == ["a", "b", "early"]


def test_plain_lists_are_not_ordered(pipeline: tuple[IngestPipeline, Recorder]) -> None:
    pipe, recorder = pipeline
    pipe.handle(list(batch(7, "any")))
    assert recorder.seen == ["any"]


def test_a_point_the_store_refuses_dead_letters_its_own_message(
    pipeline: tuple[IngestPipeline, Recorder],
) -> None:
    """The store refuses one point (its field had another type before): exactly that message
    becomes a dead letter with the store's words; the others and their points are written."""
    pipe, _ = pipeline
    typed = batch(0, "typed")
    ts_ns = orjson.loads(typed[0].payload)["ts"] * 1_000_000
    assert pipe.writer.write([f"air,interval=rtd,site=s1,station=typed pm25=30i {ts_ns}"]) == []
    # InfluxDB keeps one type per field of a measurement: readings without pm25 still go in
    mixed = MessageBatch([batch(0, "a", "pm10")[0], typed[0], batch(0, "b", "no2")[0]])
    mixed.seq = 0
    pipe.handle(mixed)
    (letter,) = pipe.deadletters.latest()
    assert letter.topic == "hw/s1/air/typed/reading" and letter.reason == "store_rejected"
    assert letter.raw == typed[0].payload and "field type conflict" in letter.message
    assert pipe.points_written == 2
