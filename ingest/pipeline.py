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

from hazwatch.base.errors import PayloadError, StoreUnavailable
from hazwatch.base.points import Point
from hazwatch.devices.clock_offset import DeviceClocks
from hazwatch.devices.decode import Decoded, decode
from hazwatch.devices.families import FAMILIES
from hazwatch.devices.family import DecodeContext
from hazwatch.devices.timeparse import FutureTimeError
from hazwatch.devices.topics import Topic, parse_topic
from hazwatch.ingest.consumer import RawMessage
from hazwatch.ingest.deadletters import DeadLetter, DeadLetterStore
from hazwatch.ingest.failures import RetryLater, describe, isolate, reason_of
from hazwatch.ingest.health import RateWindow
from hazwatch.ingest.interfaces import PointWriter, RejectedLine, StreamProcessor
from hazwatch.ingest.spool import Spool

log = logging.getLogger("hazwatch.pipeline")

MESSAGES = Counter("hazwatch_messages_total", "Messages received", ["family"])
POINTS = Counter("hazwatch_points_written_total", "Points written to the point store")
SPOOLED = Counter("hazwatch_points_spooled_total", "Points put in the spool (store down)")
WRITE_SECONDS = Histogram(
    "hazwatch_batch_write_seconds",
    "Time to write one batch to the point store",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

Publisher = Callable[[str, bytes], None]


class OutOfTurn(RetryLater):
    """A batch waited too long for the one before it to reach the processors."""


class OncePerMinute:
    """Logs a failure once per key and minute, with how many were not logged since."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self._last: dict[str, float] = {}
        self._quiet: Tally[str] = Tally()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str, *args: object) -> None:
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                self._quiet[key] += 1
                return
            if len(self._last) > 1000:  # keys are reasons: bounded, but never grow without end
                self._last.clear()
            self._last[key] = now
            quiet = self._quiet.pop(key, 0)
        suffix = f" ({quiet} more since the last report)" if quiet else ""
        self.logger.error(message + suffix, *args)


_LOG_FAILURE = OncePerMinute(log)


class IngestPipeline:
    def __init__(
        self,
        *,
        ctx: DecodeContext,
        writer: PointWriter,
        spool: Spool,
        deadletters: DeadLetterStore,
        processors: Sequence[StreamProcessor] = (),
        publish: Publisher | None = None,
        max_future_s: float = 300.0,
        max_payload_bytes: int = 64 * 1024,
        clock: Callable[[], int] = time.time_ns,
        clocks: DeviceClocks | None = None,
    ) -> None:
        """`clocks`: the devices' clock offsets, measured here from every message with a device
        time (received − device time) and handed to the processors on each Decoded; a device
        measured to run fast may send times that far ahead (devices/clock_offset.py)."""
        self.ctx = ctx
        self.clocks = clocks
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
        self.deadletter_rate = RateWindow()  # for /api/health: a flood of refusals degrades

    # the hot path
    def handle(self, batch: list[RawMessage]) -> None:
        now_ns = self.clock()
        decoded: list[Decoded] = []
        owners: list[int] = []  # for each decoded message, its index in the batch
        points: list[Point] = []
        letters: list[DeadLetter] = []
        families: Tally[str] = Tally()
        ctx, max_future, max_bytes = self.ctx, self.max_future_s, self.max_payload_bytes
        clocks = self.clocks
        lead_of = _lead_of(clocks) if clocks is not None else None
        ahead: list[tuple[int, Topic, int]] = []  # refused as future_ts: (index, topic, ts)
        for index, message in enumerate(batch):
            if message.oversize is not None:
                letters.append(self._too_large(message))
                families[_family_of(message.topic)] += 1
                continue
            try:
                result = decode(
                    message.topic,
                    message.payload,
                    ctx,
                    now_ns=now_ns,
                    max_future_s=max_future,
                    max_payload_bytes=max_bytes,
                    lead_of=lead_of,
                )
            except PayloadError as exc:
                if clocks is not None and isinstance(exc, FutureTimeError):
                    # refused, but its time still measures the clock: a fast clock's offset
                    # becomes known, and its later messages are taken (devices/clock_offset.py)
                    ahead.append((index, parse_topic(message.topic), exc.ts_ns))
                letters.append(
                    DeadLetter(
                        message.received_ns, message.topic, exc.reason, str(exc), message.payload
                    )
                )
                families[_family_of(message.topic)] += 1
                continue
            except Exception as exc:  # a bug met by this message: it alone fails (issue #21)
                letters.append(self._internal_error(message, "decoding", exc))
                families[_family_of(message.topic)] += 1
                continue
            families[result.topic.family] += 1
            decoded.append(result)
            owners.append(index)
        seq: int | None = getattr(batch, "seq", None)
        if seq is not None:
            self._wait_turn(seq)
        derived: list[Point] = []
        failed: dict[int, tuple[str, BaseException]] = {}  # position in decoded → failure
        with self._processor_lock:
            if clocks is not None:
                _measure(clocks, batch, decoded, owners, ahead, now_ns)
            for processor in self.processors:
                derived.extend(self._process_isolated(processor, decoded, now_ns, failed))
        if seq is not None:
            self._end_turn(seq)
        if failed:
            for pos, (name, error) in sorted(failed.items()):
                letters.append(self._internal_error(batch[owners[pos]], name, error))
            keep = [pos for pos in range(len(decoded)) if pos not in failed]
            decoded, owners = [decoded[p] for p in keep], [owners[p] for p in keep]
        for result in decoded:
            points.extend(result.points)
        # where each point came from, asked only when the store refuses one (rare): the
        # message points first, in order, then the processors' and the side points
        counts = [len(d.points) for d in decoded]
        points.extend(derived)
        with self._side_lock:
            if self._side_points:
                points.extend(self._side_points)
                self._side_points = []
        if points:
            lines, unwritable = _lines_of(points)
            rejections = self._write_or_spool(lines)
            if unwritable:  # (rare) indices of lines back to indices of points
                at = [i for i in range(len(points)) if i not in unwritable]
                rejections = [RejectedLine(at[r.index], r.reason) for r in rejections]
                rejections += [RejectedLine(i, why) for i, why in unwritable.items()]
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
                        raw.payload if raw else repr(points[rejected.index]).encode(),
                    )
                )
        if letters:
            self._dead_letter(letters)
        for family, count in families.items():
            MESSAGES.labels(family).inc(count)
        with self._side_lock:  # batches run on more than one thread
            self.messages += len(batch)

    def dead_letter_batch(self, batch: list[RawMessage], exc: BaseException, trace: str) -> None:
        """The last resort for a batch that failed again and again for a reason that is not
        a store outage (a bug outside the per-message isolation): every message of it becomes
        an internal_error dead letter with the failure and its traceback, to replay after the
        fix, so that the caller can ack it and the line goes on (issue #10, item 5)."""
        text = f"its batch of {len(batch)} failed repeatedly: {describe(exc)}\n{trace[-2000:]}"
        letters = [
            DeadLetter(m.received_ns, m.topic, "internal_error", text, m.payload) for m in batch
        ]
        _LOG_FAILURE("poison_batch", "a batch failed repeatedly; dead-lettered: %s", describe(exc))
        self._dead_letter(letters)
        seq: int | None = getattr(batch, "seq", None)
        if seq is not None:
            self._end_turn(seq)  # the batches after it need not wait for it any more
        with self._side_lock:
            self.messages += len(batch)

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        """Store the letters, count them, publish those the store kept (hw/deadletter/…)."""
        kept = self.deadletters.add_many(letters)
        with self._side_lock:
            self.deadlettered += len(letters)
        self.deadletter_rate.add(len(letters))
        if self.publish is not None:
            for letter in kept:
                self.publish(letter.mqtt_topic(), letter.mqtt_payload())

    # isolation: one message fails, never its batch
    def _process_isolated(
        self,
        processor: StreamProcessor,
        decoded: list[Decoded],
        now_ns: int,
        failed: dict[int, tuple[str, BaseException]],
    ) -> list[Point]:
        """Run `processor` over the batch; when it fails for a reason of the data, bisect.

        A transient failure (store down, locked) is raised: the batch is retried. Any other
        failure is some message's: the halves are run again, in order, until the messages
        that fail alone are found; those are dead-lettered, the rest processed. A processor
        keeps nothing of a call that raised (StreamProcessor's contract), and a redelivered
        message changes nothing twice, so running a half again is safe. Messages an earlier
        processor failed on are not given to the later ones.
        """
        name = getattr(processor, "name", type(processor).__name__)
        everyone = range(len(decoded))
        live = [pos for pos in everyone if pos not in failed] if failed else everyone
        out: list[Point] = []

        def attempt(positions: Sequence[int]) -> None:
            whole = len(positions) == len(decoded)  # the usual case: one call, no copy
            chunk = decoded if whole else [decoded[p] for p in positions]
            out.extend(processor.process(chunk, now_ns))

        for pos, exc in isolate(live, attempt).items():
            failed[pos] = (name, exc)
        return out

    def _internal_error(self, message: RawMessage, stage: str, exc: BaseException) -> DeadLetter:
        reason = reason_of(exc)
        _LOG_FAILURE(
            f"{reason}:{stage}",
            "%s failed on a message (dead-lettered, the rest go on): topic %s: %s",
            stage,
            message.topic[:200],
            describe(exc),
        )
        what = "refused by the state store" if reason == "store_rejected" else "hazwatch failed"
        return DeadLetter(
            message.received_ns,
            message.topic,
            reason,
            f"{what} while {'decoding it' if stage == 'decoding' else f'running {stage}'}: "
            f"{describe(exc)}",
            message.payload,
        )

    def _too_large(self, message: RawMessage) -> DeadLetter:
        assert message.oversize is not None
        size, sha256 = message.oversize
        return DeadLetter(
            message.received_ns,
            message.topic,
            "too_large",
            f"payload is {size} bytes, over the {self.max_payload_bytes}-byte limit "
            f"(the first {len(message.payload)} bytes are kept)",
            message.payload,
            raw_len=size,
            raw_sha256=sha256,
        )

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
                rejected = self._write_isolating(lines)
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

    def _write_isolating(self, lines: list[str]) -> list[RejectedLine]:
        """writer.write, with any failure of the lines' own (not the store's) found line by line.

        The writers return the lines the store refuses (InfluxDB 400, a type conflict) and
        raise StoreUnavailable for an outage. Anything else they raise is either transient
        (raised as StoreUnavailable: spool and retry) or caused by some line (a value the
        driver cannot convert): bisect, and reject the lines that fail alone.
        """
        rejected: list[RejectedLine] = []

        def attempt(part: Sequence[int]) -> None:
            assert isinstance(part, range)  # halves of a range are ranges: one slice each
            found = self.writer.write(lines[part.start : part.stop])
            rejected.extend(RejectedLine(part.start + r.index, r.reason) for r in found)

        try:
            failures = isolate(range(len(lines)), attempt)
        except StoreUnavailable:
            raise
        except Exception as exc:  # transient, in the writer's own words: an outage
            raise StoreUnavailable(f"{self.writer.name}: {describe(exc)}") from exc
        if failures:
            _LOG_FAILURE(
                "write_error",
                "the point store failed on lines of a batch (rejected, the rest written): %s",
                describe(next(iter(failures.values()))),
            )
            rejected += [RejectedLine(index, describe(exc)) for index, exc in failures.items()]
            rejected.sort(key=lambda r: r.index)
        return rejected

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
                    rejected = self._write_isolating(lines)
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


def _lead_of(clocks: DeviceClocks) -> Callable[[Topic], int]:
    lead_ns = clocks.lead_ns

    def lead_of(topic: Topic) -> int:
        return lead_ns((topic.site, topic.family, topic.device))

    return lead_of


def _measure(
    clocks: DeviceClocks,
    batch: list[RawMessage],
    decoded: list[Decoded],
    owners: list[int],
    ahead: list[tuple[int, Topic, int]],
    now_ns: int,
) -> None:
    """Each message's receive and device time into the clocks, in the order received (under
    the processors' lock, in the batch's turn); each decoded message gets its reading."""
    observe = clocks.observe
    later = iter(ahead)
    pending = next(later, None)
    for result, index in zip(decoded, owners, strict=True):
        while pending is not None and pending[0] < index:
            at, topic, ts_ns = pending
            observe(
                (topic.site, topic.family, topic.device), batch[at].received_ns or now_ns, ts_ns
            )
            pending = next(later, None)
        sent_ns = result.sent_ns
        if sent_ns is not None:
            topic = result.topic
            received_ns = batch[index].received_ns or now_ns
            result.clock = observe((topic.site, topic.family, topic.device), received_ns, sent_ns)
    while pending is not None:
        at, topic, ts_ns = pending
        observe((topic.site, topic.family, topic.device), batch[at].received_ns or now_ns, ts_ns)
        pending = next(later, None)


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


def _lines_of(points: list[Point]) -> tuple[list[str], dict[int, str]]:
    """Line protocol of the points, and (rare) why those that cannot be written cannot."""
    try:
        return [p.to_line() for p in points], {}
    except Exception:
        pass
    lines: list[str] = []
    unwritable: dict[int, str] = {}
    for index, point in enumerate(points):
        try:
            lines.append(point.to_line())
        except Exception as exc:
            unwritable[index] = f"cannot be written as line protocol: {describe(exc)}"
    return lines, unwritable


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
