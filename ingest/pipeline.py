"""A batch of raw MQTT messages made durable: decoded, processed, written or spooled, dead-lettered.

Never return from handle() before everything the batch produced is durable: the caller acks then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence

from prometheus_client import Counter, Histogram

from devices.decode import Decoded, decode
from devices.errors import HazwatchError, PayloadError, StoreUnavailable
from devices.families import FAMILIES
from devices.family import DecodeContext
from devices.points import Point
from ingest.consumer import RawMessage
from ingest.deadletters import DeadLetter, DeadLetterStore
from ingest.interfaces import PointWriter, RejectedLine, StreamProcessor
from ingest.spool import Spool

log = logging.getLogger("hazwatch.pipeline")

MESSAGES = Counter("hazwatch_messages_total", "Messages received", ["family"])
POINTS = Counter("hazwatch_points_written_total", "Points written to the point store")
SPOOLED = Counter("hazwatch_points_spooled_total", "Points put in the spool (store down)")
WRITE_SECONDS = Histogram(
    "hazwatch_batch_write_seconds",
    "Time to write one batch to the point store",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

Publish = Callable[[str, bytes], None]


class OutOfTurn(HazwatchError):
    """A batch waited too long for the one before it to reach the processors."""


class IngestPipeline:
    def __init__(
        self,
        *,
        ctx: DecodeContext,
        writer: PointWriter,
        spool: Spool,
        deadletters: DeadLetterStore,
        processors: Sequence[StreamProcessor] = (),
        publish: Publish | None = None,
        max_future_s: float = 300.0,
        max_payload_bytes: int = 64 * 1024,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.ctx = ctx
        self.writer = writer
        self.spool = spool
        self.deadletters = deadletters
        self.processors = list(processors)
        self.publish = publish
        self.max_future_s = max_future_s
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock
        self._replay_lock = threading.Lock()  # one replay at a time, segments in order
        # process() (batch thread) and tick() (periodic thread) never run a processor at once:
        # processors keep state in memory and need not each guard it.
        self._processor_lock = threading.Lock()
        self._side_points: list[Point] = []
        self._order = threading.Condition()
        self._next_seq = 0  # the consumer's batch whose turn it is at the processors
        self.order_wait_s = 10.0
        self._side_lock = threading.Lock()
        self.points_written = 0
        self.points_spooled = 0
        self.messages = 0
        self.deadlettered = 0

    # the hot path
    def handle(self, batch: list[RawMessage]) -> None:
        now_ns = self.clock()
        decoded: list[Decoded] = []
        owners: list[int] = []  # for each decoded message, its index in the batch
        points: list[Point] = []
        letters: list[DeadLetter] = []
        families: Tally[str] = Tally()
        ctx, max_future, max_bytes = self.ctx, self.max_future_s, self.max_payload_bytes
        for index, message in enumerate(batch):
            try:
                result = decode(
                    message.topic,
                    message.payload,
                    ctx,
                    now_ns=now_ns,
                    max_future_s=max_future,
                    max_payload_bytes=max_bytes,
                )
            except PayloadError as exc:
                letters.append(
                    DeadLetter(
                        message.received_ns, message.topic, exc.reason, str(exc), message.payload
                    )
                )
                families[_family_of(message.topic)] += 1
                continue
            families[result.topic.family] += 1
            decoded.append(result)
            owners.append(index)
            points.extend(result.points)
        # where each point came from, asked only when the store refuses one (rare): the
        # message points first, in order, then the processors' and the side points
        counts = [len(d.points) for d in decoded]
        seq: int | None = getattr(batch, "seq", None)
        if seq is not None:
            self._wait_turn(seq)
        with self._processor_lock:
            for processor in self.processors:
                points.extend(processor.process(decoded, now_ns))
        if seq is not None:
            self._end_turn(seq)
        with self._side_lock:
            if self._side_points:
                points.extend(self._side_points)
                self._side_points = []
        if points:
            lines = [p.to_line() for p in points]
            rejections = self._write_or_spool(lines)
            sources = _sources(owners, counts, len(points)) if rejections else []
            for rejected in rejections:
                index = sources[rejected.index]
                raw = batch[index] if index >= 0 else None
                letters.append(
                    DeadLetter(
                        raw.received_ns if raw else now_ns,
                        raw.topic if raw else "hazwatch/derived",
                        "store_rejected",
                        f"the point store refused the point: {rejected.reason}",
                        raw.payload if raw else lines[rejected.index].encode(),
                    )
                )
        if letters:
            self.deadletters.add_many(letters)
            with self._side_lock:
                self.deadlettered += len(letters)
            if self.publish is not None:
                for letter in letters:
                    self.publish(letter.mqtt_topic(), letter.mqtt_payload())
        for family, count in families.items():
            MESSAGES.labels(family).inc(count)
        with self._side_lock:  # batches run on more than one thread
            self.messages += len(batch)

    # batch order for the processors
    def _wait_turn(self, seq: int) -> None:
        """Batches decode and write side by side, but the processors take them in the order
        they were received: a camera's frames, a station's readings and a batch's custody
        events reach the rules as one consumer received them. A batch whose predecessor does
        not come (it failed, or the service is stopping) gives up after `order_wait_s`: it
        fails, is retried, and is never acked out of turn."""
        deadline = time.monotonic() + self.order_wait_s
        with self._order:
            while seq > self._next_seq:  # (a retried batch whose turn is past goes at once)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OutOfTurn(
                        f"batch {seq} waited {self.order_wait_s:.0f} s for batch {self._next_seq}"
                    )
                self._order.wait(left)

    def _end_turn(self, seq: int) -> None:
        with self._order:
            if seq >= self._next_seq:
                self._next_seq = seq + 1
                self._order.notify_all()

    def _write_or_spool(self, lines: list[str]) -> list[RejectedLine]:
        """Write now, or (store down, or older batches still spooled) append to the spool.

        Batches write concurrently: InfluxDB takes them in parallel, and a point's identity
        makes their order irrelevant (a redelivered point overwrites itself with the same
        values). Once the store has failed, batches go straight to the spool until
        replay_spool has emptied it, so no batch waits out the retry budget of a dead store.
        """
        if len(self.spool) == 0:
            start = time.perf_counter()
            try:
                rejected = self.writer.write(lines)
            except StoreUnavailable as exc:
                log.warning("point store unavailable (%s): spooling %d lines", exc, len(lines))
            else:
                WRITE_SECONDS.observe(time.perf_counter() - start)
                written = len(lines) - len(rejected)
                POINTS.inc(written)
                with self._side_lock:
                    self.points_written += written
                return rejected
        self.spool.append(lines)  # raises SpoolFull: the batch is retried, not acked
        SPOOLED.inc(len(lines))
        with self._side_lock:
            self.points_spooled += len(lines)
        return []

    def add_points(self, points: Sequence[Point]) -> None:
        """Points made outside a batch (alerts): written with the next batch or tick."""
        with self._side_lock:
            self._side_points.extend(points)

    # periodic work
    def replay_spool(self, max_segments: int = 50) -> int:
        """Write spooled batches in order while the store takes them; returns lines replayed."""
        replayed = 0
        for _ in range(max_segments):
            with self._replay_lock:
                oldest = self.spool.oldest()
                if oldest is None:
                    break
                path, lines = oldest
                try:
                    rejected = self.writer.write(lines)
                except StoreUnavailable:
                    break
                self.spool.remove(path)
                POINTS.inc(len(lines) - len(rejected))
                with self._side_lock:
                    self.points_written += len(lines) - len(rejected)
            if rejected:
                self.deadletters.add_many(
                    _refused(lines, rejected, self.clock(), "hazwatch/spool", "a spooled point")
                )
            replayed += len(lines)
        if replayed:
            log.info("replayed %d spooled lines; %d segments left", replayed, len(self.spool))
        return replayed

    def tick(self) -> None:
        """Time-based work of the processors (overdue rules, closing hours) and side points."""
        now_ns = self.clock()
        points: list[Point] = []
        with self._processor_lock:
            for processor in self.processors:
                try:
                    points.extend(processor.tick(now_ns))
                except Exception:
                    log.exception("tick of %s failed", getattr(processor, "name", processor))
        with self._side_lock:
            points.extend(self._side_points)
            self._side_points = []
        if points:
            lines = [p.to_line() for p in points]
            rejected = self._write_or_spool(lines)
            if rejected:
                self.deadletters.add_many(
                    _refused(lines, rejected, now_ns, "hazwatch/derived", "a derived point")
                )


def _refused(
    lines: list[str], rejected: list[RejectedLine], now_ns: int, topic: str, what: str
) -> list[DeadLetter]:
    """Dead letters for lines the store refused that have no source message (the line is kept)."""
    return [
        DeadLetter(
            now_ns,
            topic,
            "store_rejected",
            f"the point store refused {what}: {r.reason}",
            lines[r.index].encode(),
        )
        for r in rejected
    ]


def _sources(owners: list[int], counts: list[int], total: int) -> list[int]:
    """For each point, the index of its message in the batch; -1 for points made here."""
    sources: list[int] = []
    for index, count in zip(owners, counts, strict=True):
        sources.extend([index] * count)
    sources.extend([-1] * (total - len(sources)))
    return sources


def _family_of(topic: str) -> str:
    """The family label of a message that did not decode (bounded: metric label cardinality)."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == "hw":
        return parts[2] if parts[2] in FAMILIES else "unknown"
    return "invalid"
