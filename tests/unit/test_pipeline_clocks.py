"""The ingest pipeline measures every device's clock from its messages and hands each decoded
message its reading; a fast clock's messages are refused only until its offset is known."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices import hj212
from hazwatch.devices.clock_offset import NONE, WINDOW, ClockConfig, DeviceClocks
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.family import NoRegistry
from hazwatch.devices.timeparse import FutureTimeError
from hazwatch.ingest.consumer import RawMessage
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.pipeline import IngestPipeline
from hazwatch.ingest.pointstore import PointStore
from hazwatch.ingest.spool import Spool

S = 1_000_000_000
T0 = 1_790_000_000 * S
READER = "hw/jy-0012/rfid/gate-04/read"


class Keep:
    """A StreamProcessor that keeps what it is given."""

    name = "keep"

    def __init__(self) -> None:
        self.seen: list[Decoded] = []

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        self.seen.extend(batch)
        return []

    def tick(self, now_ns: int) -> list[Point]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture()
def line(tmp_path: Path) -> tuple[IngestPipeline, Keep, Clock, DeadLetterStore]:
    keep, clock = Keep(), Clock()
    letters = DeadLetterStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))
    pipe = IngestPipeline(
        ctx=NoRegistry(),
        writer=PointStore(tmp_path / "points.db"),
        spool=Spool(tmp_path / "spool", 1 << 20),
        deadletters=letters,
        processors=[keep],
        clock=clock,
        clocks=DeviceClocks(ClockConfig(settle_ns=10 * S)),
    )
    return pipe, keep, clock, letters


def read(true_ns: int, ahead_s: float, n: int) -> RawMessage:
    body = orjson.dumps(
        {"ts": (true_ns + int(ahead_s * S)) // 1_000_000, "epc": f"E200001722110144189{n:05d}"}
    )
    return RawMessage(n, READER, body, 1, true_ns + S // 10, 0)


def test_a_reader_six_minutes_fast_is_refused_only_until_its_offset_is_known(
    line: tuple[IngestPipeline, Keep, Clock, DeadLetterStore],
) -> None:
    pipe, keep, clock, letters = line
    for n in range(30):  # a read a second
        clock.now = T0 + n * S + S // 10
        pipe.handle([read(T0 + n * S, 360, n)])
    refused = letters.count_by_reason()
    # 360 s ahead is past max_future_s (300 s): refused while its clock is not known yet
    assert 9 <= refused.get("future_ts", 0) <= 12
    assert keep.seen and all(d.clock is not None for d in keep.seen)
    first = keep.seen[0].clock
    assert first is not None and first.basis == WINDOW
    assert -360 * S < first.offset_ns < -360 * S + S // 2
    true_ns = keep.seen[0].record.ts - 360 * S  # when the tag was really read
    assert 0 <= first.corrected(keep.seen[0].record.ts) - true_ns < S // 2
    # a time further ahead than the clock is measured to run is still refused
    with pytest.raises(FutureTimeError, match="its clock measured 359 s fast"):
        decode(
            READER,
            read(T0 + 31 * S, 720, 99).payload,
            NoRegistry(),
            now_ns=clock.now,
            lead_of=lambda topic: (
                pipe.clocks.lead_ns(("jy-0012", "rfid", "gate-04")) if pipe.clocks else 0
            ),
        )


def test_a_message_without_a_device_time_is_not_measured(
    line: tuple[IngestPipeline, Keep, Clock, DeadLetterStore],
) -> None:
    pipe, keep, _, _ = line
    status = "hw/jy-0012/rfid/gate-04/status"
    no_ts = RawMessage(1, status, b'{"online": true}', 1, T0, 0)
    # a last will: written when the reader connected, an hour ago, published when it left
    will = orjson.dumps({"online": False, "ts": (T0 - 3600 * S) // 1_000_000})
    pipe.handle([no_ts, RawMessage(2, status, will, 1, T0, 0)])
    assert [d.clock for d in keep.seen] == [None, None]
    assert pipe.clocks is not None and len(pipe.clocks) == 0
    pipe.handle([read(T0, 0, 3)])
    assert keep.seen[-1].clock is not None and keep.seen[-1].clock.basis == NONE


def test_an_hj212_station_is_measured_by_its_qn_not_its_hourly_datatime() -> None:
    hour = (T0 // (3600 * S) - 1) * 3600 * S
    sent = hour + 3600 * S + 125 * S  # the hour's data, sent two minutes after it closed
    packet = hj212.data_packet("MN1", "2061", hour, {"pm25": 35.0}, qn_ts_ns=sent)
    decoded = decode("hw/s1/air/aq-1/hj212", hj212.build(packet), NoRegistry(), now_ns=T0)
    assert decoded.points[0].ts_ns == hour
    assert decoded.sent_ns == sent


def test_a_read_weighing_and_registration_are_measured_by_the_device_time_not_the_point() -> None:
    """A point whose identifier is a field is written a little later within its millisecond
    (`point_time`); the clock is measured by the time the device wrote, else a reader 900 s
    slow would be measured up to 1 ms less slow than it is."""
    device_ms = (T0 - 900 * S) // 1_000_000
    epc = "E2000017221101441890CC01"
    sent = {
        "hw/jy-0012/rfid/gate-03/read": {"epc": epc, "rssi": -60.0},
        "hw/jy-0012/scale/s1/weight": {"epc": epc, "net_kg": 150.0},
        "hw/jy-0012/terminal/t1/batch": {"batch": "C-0", "epc": epc, "waste_code": "900-249-08"},
    }
    for topic, body in sent.items():
        decoded = decode(topic, orjson.dumps({"ts": device_ms, **body}), NoRegistry(), now_ns=T0)
        assert decoded.points[0].ts_ns > device_ms * 1_000_000, topic  # moved within its ms
        assert decoded.sent_ns == device_ms * 1_000_000, topic
