"""One message fails, never its batch: any failure of decoding, a processor or a write that is
the data's own becomes a dead letter of that message; the store's outages still retry."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from hazwatch.base.errors import StoreUnavailable
from hazwatch.base.points import Point
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import Decoded
from hazwatch.devices.family import NoRegistry
from hazwatch.ingest import pipeline as pipeline_module
from hazwatch.ingest.consumer import MessageBatch, RawMessage
from hazwatch.ingest.deadletters import DeadLetterStore
from hazwatch.ingest.interfaces import RejectedLine
from hazwatch.ingest.pipeline import IngestPipeline, OncePerMinute
from hazwatch.ingest.pointstore import PointStore
from hazwatch.ingest.spool import Spool


class Picky:
    """A processor that fails (with `error`) on every batch holding station `poison`."""

    name = "picky"

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.seen: list[str] = []
        self.calls = 0

    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        self.calls += 1
        stations = [d.topic.device for d in batch]
        if "poison" in stations:
            raise self.error
        self.seen.extend(stations)
        return []

    def tick(self, now_ns: int) -> list[Point]:
        return []


def reading(station: str, offset_ms: int = 0, **extra: object) -> RawMessage:
    now_ms = int(time.time() * 1000)
    body = orjson.dumps({"ts": now_ms - 1000 + offset_ms, "pm25": 30.0, **extra})
    return RawMessage(1, f"hw/s1/air/{station}/reading", body, 1, time.time_ns(), 0)


def stations(*names: str) -> MessageBatch:
    out = MessageBatch([reading(name, i) for i, name in enumerate(names)])
    out.seq = 0
    return out


def make(tmp_path: Path, *processors: object, writer: object = None) -> IngestPipeline:
    return IngestPipeline(
        ctx=NoRegistry(),
        writer=writer or PointStore(tmp_path / "points.db"),  # type: ignore[arg-type]
        spool=Spool(tmp_path / "spool", 1 << 20),
        deadletters=DeadLetterStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}")),
        processors=processors,  # type: ignore[arg-type]
    )


def stored(pipe: IngestPipeline) -> set[str]:
    rows = pipe.writer.select("air")  # type: ignore[attr-defined]
    return {row["station"] for row in rows}


NAMES = ["a", "b", "c", "poison", "d", "e", "f", "g"]


@pytest.mark.parametrize(
    "error",
    [
        TypeError("unsupported operand"),
        KeyError("x"),
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        RecursionError("maximum recursion depth exceeded"),
    ],
)
def test_a_processor_failing_on_one_message_dead_letters_that_message_only(
    tmp_path: Path, error: BaseException
) -> None:
    picky = Picky(error)
    pipe = make(tmp_path, picky)
    pipe.handle(stations(*NAMES))  # does not raise
    assert sorted(picky.seen) == sorted(n for n in NAMES if n != "poison")
    (letter,) = pipe.deadletters.latest()
    assert letter.topic == "hw/s1/air/poison/reading"
    assert letter.reason == "internal_error"
    assert type(error).__name__ in letter.message and "picky" in letter.message
    assert stored(pipe) == set(NAMES) - {"poison"}  # a dead-lettered message is not written
    assert picky.calls <= 2 * 3 + 1  # bisection: a few calls, not one per message


def test_a_state_store_refusing_a_row_dead_letters_it_with_the_stores_words(
    tmp_path: Path,
) -> None:
    pipe = make(tmp_path, Picky(sqlite3.IntegrityError("UNIQUE constraint failed: x.id")))
    pipe.handle(stations(*NAMES))
    (letter,) = pipe.deadletters.latest()
    assert letter.reason == "store_rejected" and "UNIQUE constraint failed" in letter.message


@pytest.mark.parametrize(
    "error",
    [
        StoreUnavailable("PostgreSQL down"),
        sqlite3.OperationalError("database is locked"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
    ],
)
def test_a_transient_failure_fails_the_batch_for_a_retry_and_dead_letters_nothing(
    tmp_path: Path, error: BaseException
) -> None:
    pipe = make(tmp_path, Picky(error))
    with pytest.raises(type(error)):
        pipe.handle(stations(*NAMES))
    assert pipe.deadletters.latest() == []
    assert stored(pipe) == set()  # nothing of the batch was written: the retry writes it


def test_any_exception_in_decoding_is_that_messages_dead_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline_module.decode

    def decode(topic: str, payload: bytes, *args: object, **kwargs: object) -> Decoded:
        if "poison" in topic:
            raise OverflowError("date value out of range")
        return real(topic, payload, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline_module, "decode", decode)
    picky = Picky(AssertionError("never called with poison"))
    pipe = make(tmp_path, picky)
    pipe.handle(stations(*NAMES))
    (letter,) = pipe.deadletters.latest()
    assert letter.reason == "internal_error" and "OverflowError" in letter.message
    assert "decoding" in letter.message
    assert stored(pipe) == set(NAMES) - {"poison"}
    assert picky.calls == 1


class Finicky:
    """A PointWriter over the embedded store that raises `error` for lines with `poison`."""

    name = "finicky"

    def __init__(self, inner: PointStore, error: BaseException) -> None:
        self.inner, self.error, self.calls = inner, error, 0

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        self.calls += 1
        if any("poison" in line for line in lines):
            raise self.error
        return self.inner.write(lines)

    def select(self, *args: object, **kwargs: object) -> list[dict[str, object]]:
        return self.inner.select(*args, **kwargs)  # type: ignore[arg-type]

    def ping(self) -> None: ...

    def close(self) -> None: ...


def test_a_writer_failing_on_one_line_rejects_that_line_and_writes_the_rest(
    tmp_path: Path,
) -> None:
    writer = Finicky(PointStore(tmp_path / "points.db"), ValueError("cannot convert"))
    pipe = make(tmp_path, writer=writer)
    pipe.handle(stations(*NAMES))
    (letter,) = pipe.deadletters.latest()
    assert letter.topic == "hw/s1/air/poison/reading" and letter.reason == "store_rejected"
    assert "ValueError: cannot convert" in letter.message
    assert stored(pipe) == set(NAMES) - {"poison"}
    assert len(pipe.spool) == 0


def test_a_writer_failing_transiently_spools_the_batch(tmp_path: Path) -> None:
    writer = Finicky(PointStore(tmp_path / "points.db"), ConnectionResetError("reset by peer"))
    pipe = make(tmp_path, writer=writer)
    pipe.handle(stations(*NAMES))
    assert pipe.deadletters.latest() == [] and len(pipe.spool) == 1
    writer.error = ValueError("the poison line, now for what it is")
    assert pipe.replay_spool() == len(NAMES)  # the replay isolates the poison line too
    assert len(pipe.spool) == 0
    assert stored(pipe) == set(NAMES) - {"poison"}
    (letter,) = pipe.deadletters.latest()
    assert letter.topic == "hazwatch/spool" and b"poison" in letter.raw


class Unwritable(Point):
    def to_line(self) -> str:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")


class MakesAnUnwritablePoint(Picky):
    def process(self, batch: Sequence[Decoded], now_ns: int) -> list[Point]:
        return [Unwritable("derived", {"site": "s1"}, {"v": 1.0}, now_ns)]


def test_a_point_that_cannot_become_line_protocol_is_a_dead_letter(tmp_path: Path) -> None:
    pipe = make(tmp_path, MakesAnUnwritablePoint(AssertionError()))
    pipe.handle(stations("a", "b"))
    (letter,) = pipe.deadletters.latest()
    assert letter.topic == "hazwatch/derived" and "UnicodeEncodeError" in letter.message
    assert stored(pipe) == {"a", "b"}


def test_failures_are_logged_once_a_minute_per_key(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    log_once = OncePerMinute(logging.getLogger("test.once"), clock=lambda: clock[0])
    with caplog.at_level(logging.ERROR, "test.once"):
        for _ in range(50):
            log_once("internal_error", "failed: %s", "x")
        log_once("store_rejected", "other: %s", "y")
        clock[0] = 61.0
        log_once("internal_error", "failed: %s", "z")
    assert [r.getMessage() for r in caplog.records] == [
        "failed: x",
        "other: y",
        "failed: z (49 more since the last report)",
    ]


def test_a_poison_batch_becomes_dead_letters_and_frees_the_batches_behind_it(
    tmp_path: Path,
) -> None:
    """The consumer's last resort (issue #10, item 5): every message dead-lettered with the
    failure and its traceback, never rate-limited (hazwatch's own failure), and the next
    batch does not wait for the poison one."""
    pipe = make(tmp_path)
    pipe.order_wait_s = 0.5
    poison = MessageBatch([reading("same-device", i) for i in range(40)])
    poison.seq = 0
    pipe.dead_letter_batch(poison, RuntimeError("a bug"), "Traceback (most recent call last):\n")
    letters = pipe.deadletters.latest(100)
    assert len(letters) == 40 and {x.reason for x in letters} == {"internal_error"}
    assert "RuntimeError: a bug" in letters[0].message and "Traceback" in letters[0].message
    after = stations("next")
    after.seq = 1
    pipe.handle(after)  # in turn at once: no OutOfTurn
    assert stored(pipe) == {"next"}


def test_waiting_is_never_mistaken_for_poison() -> None:
    from hazwatch.ingest.failures import is_transient
    from hazwatch.ingest.pipeline import OutOfTurn
    from hazwatch.ingest.spool import SpoolFull

    assert is_transient(OutOfTurn("batch 3 waited 10 s for batch 2"))
    assert is_transient(SpoolFull("spool full"))
