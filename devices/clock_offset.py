"""Device clocks: each device's offset (receive time − device time) estimated from its messages.

Never read a clock or do I/O here: receive and device times come in as arguments, and what is
kept is bounded per device (a few numbers and `buckets` minima), never per message.

The offset of a message is d = received − device time = θ + δ, where θ is the device clock's
offset (positive: the device is slow) and δ ≥ 0 the delay between the device stamping the
message and hazwatch receiving it (network, broker, a reader's buffered upload). Delays only
add, so the smallest d over a window is θ plus the smallest delay in it: the windowed minimum
(as NTP's clock filter keeps the sample of least delay, RFC 5905 §10). A clock that steps
(a reboot to 2000-01-01, NTP setting it) shows as samples far from the minimum that agree with
each other; they take over once they have held for `settle_ns` (see DeviceClocks.observe).
docs/design-notes.md ("Device clocks") says what each setting is for and how fast it acts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# How an offset was measured (ClockReading.basis; custody keeps it with each input).
NONE = "none"  # no offset known yet: the device's own time, good to ± the tolerance
WINDOW = "window"  # the minimum of received − device time over the window
STEP = "step"  # the clock stepped, not yet confirmed: this message's own receive time
BASES = (NONE, WINDOW, STEP)

Key = tuple[str, str, str]  # (site, family, device)


@dataclass(frozen=True, slots=True)
class ClockReading:
    """What hazwatch knows of a device's clock at one of its messages.

    `offset_ns` is added to the device's time to give hazwatch's (0 when none is known);
    the time so corrected is good to ± `error_ns`.
    """

    offset_ns: int
    error_ns: int
    basis: str

    def corrected(self, device_ns: int) -> int:
        return device_ns + self.offset_ns


# A message no estimator has seen (a pipeline without one): the device's time as it is.
UNCLOCKED = ClockReading(0, 0, NONE)


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """The estimator's parameters, in nanoseconds (hazwatch.streams.clocks.settings)."""

    tolerance_ns: int = 30 * 10**9  # what a time is good to while no offset is known
    window_ns: int = 900 * 10**9  # the minimum is taken over this much receive time
    settle_ns: int = 60 * 10**9  # a first offset, or a step, holds this long before it is taken
    step_ns: int = 2 * 10**9  # a sample this far below the minimum is not a delay: a step
    max_lead_ns: int = 86_400 * 10**9  # a clock measured further ahead is still refused
    max_devices: int = 10_000  # devices tracked at once (topics are the devices' own words)
    buckets: int = 10  # the window's minima, one per window_ns / buckets of receive time
    min_samples: int = 3  # a first offset or a step needs this many messages, too
    # a message this late is no delay (a clock back at 2000-01-01 is): while a step is not
    # confirmed, a message later than the offset says is read as this late at most
    max_delay_ns: int = 30 * 86_400 * 10**9


_ANY_LOW, _ANY_HIGH = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Retime:
    """A device's offset taken over (its first, or a new one after its clock stepped): what its
    messages were read with before it is to be read with `reading` instead.

    Which messages: those whose reading had a basis among `bases` and whose device time is
    within [from_dev_ns, to_dev_ns]. Custody reads
    its inputs of that device again by it (hazwatch.streams.custody.rules.Tracker.apply), so
    a verdict is what it would have been had the offset been known from the start.
    """

    key: Key
    reading: ClockReading
    bases: tuple[str, ...]
    from_dev_ns: int = _ANY_LOW
    to_dev_ns: int = _ANY_HIGH

    def applies(self, device_ns: int, basis: str) -> bool:
        """Whether a message of this device, at `device_ns` by its own clock and read with an
        offset of `basis`, was read with what this offset replaces."""
        return basis in self.bases and self.from_dev_ns <= device_ns <= self.to_dev_ns


# Retimes kept per device until custody takes them (more would be several steps in a row,
# of which the oldest are dropped: custody takes them with every ingest batch)
MAX_RETIMES = 4


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """One device's clock as the API and /metrics show it."""

    site: str
    family: str
    device: str
    offset_ns: int | None  # None: not known yet
    error_ns: int
    samples: int  # messages seen since the offset took over (or since first seen)
    since_ns: int  # receive time the current offset has held since
    last_ns: int  # receive time of the newest message
    steps: int  # clock steps taken over since first seen
    stepping: bool  # messages now disagree with the offset: a step awaits confirmation


class _Clock:
    """The state of one device's clock: bounded whatever it sends."""

    __slots__ = (
        "above_dev",
        "above_min",
        "above_n",
        "above_since",
        "buckets",
        "est",
        "established",
        "last_ns",
        "max_dev",
        "min_at",
        "reading",
        "run",
        "run_count",
        "run_max_dev",
        "run_min",
        "run_min_at",
        "run_min_dev",
        "run_start",
        "samples",
        "since_ns",
        "steps",
    )

    def __init__(self, received_ns: int, device_ns: int, bucket: int) -> None:
        d = received_ns - device_ns
        self.est = d
        self.established = False
        self.since_ns = received_ns
        self.samples = 1
        self.steps = 0
        self.buckets: list[list[int]] = [[bucket, d]]  # [bucket index, minimum d], oldest first
        self.max_dev = device_ns
        self.min_at = received_ns  # receive time the minimum last fell by more than a step
        self.last_ns = received_ns
        self.above_since = received_ns  # receive time of the first sample above the band
        self.above_dev = device_ns  # and its device time
        self.above_min = 0  # the least d of the samples above the band since then
        self.above_n = 0  # how many (0: the newest sample was within the band)
        self.run = 0  # 0: none; +1: samples above the band (clock set back), -1: below
        self.run_start = self.run_count = self.run_min = self.run_min_at = self.run_max_dev = 0
        self.run_min_dev = 0
        self.reading: ClockReading | None = None


class DeviceClocks:
    """Every device's clock offset, fed one (receive time, device time) per message.

    `observe` is the hot path (the ingest pipeline calls it for every decoded message that
    carries a device time, in the order the consumer received them); `lead_ns` is asked by
    decoding; `estimates`, `export` and `restore` serve the API, metrics and persistence.
    """

    def __init__(self, config: ClockConfig | None = None) -> None:
        self.config = config or ClockConfig()
        c = self.config
        self._unknown = ClockReading(0, c.tolerance_ns, NONE)
        self._bucket_ns = max(1, c.window_ns // max(1, c.buckets))
        self._clocks: dict[Key, _Clock] = {}
        self._dirty: set[Key] = set()
        self._retimes: dict[Key, list[Retime]] = {}  # until taken (take_retimes)

    def __len__(self) -> int:
        return len(self._clocks)

    # the hot path ----------------------------------------------------------------------
    def observe(self, key: Key, received_ns: int, device_ns: int) -> ClockReading:
        """Take one message's times; the reading that applies to this message.

        A sample within `step_ns` of the minimum, or above it (a delay), is read with the
        minimum: WINDOW. A sample further below it (the clock jumped ahead), or above it
        where the device time went back (the clock was set back), opens a run: while a run
        lasts its messages are read at their own receive time, with the distance to the
        minimum as their error (STEP). A run whose least offset has held for half of
        `settle_ns`, lasting `settle_ns` and `min_samples` messages, is the new offset; a
        sample within the band ends a run (a buffered upload draining, a redelivery). Above
        the band with the device time still moving forward, the samples are delays; should
        only such samples come for a whole window (of receive and of device time: a clock set
        back while the device was offline), their least offset takes over.
        """
        clock = self._clocks.get(key)
        cfg = self.config
        bucket = received_ns // self._bucket_ns
        if clock is None:
            if len(self._clocks) >= cfg.max_devices:
                return self._unknown
            clock = self._clocks[key] = _Clock(received_ns, device_ns, bucket)
            self._dirty.add(key)
            return self._unknown
        d = received_ns - device_ns
        if received_ns > clock.last_ns:
            clock.last_ns = received_ns
        clock.samples += 1
        step = cfg.step_ns
        est = clock.est
        if d < est - step and clock.established:
            return self._in_run(key, clock, -1, received_ns, device_ns, d)
        if d > est + step:
            if clock.run == 1 or device_ns < clock.max_dev - step:
                return self._in_run(key, clock, 1, received_ns, device_ns, d)
            # a delay: read with the minimum; a whole window of nothing else is a new offset
            if clock.above_n == 0:
                clock.above_min, clock.above_since, clock.above_dev = d, received_ns, device_ns
            elif d < clock.above_min:
                clock.above_min = d
            clock.above_n += 1
            if device_ns > clock.max_dev:
                clock.max_dev = device_ns
            if (
                received_ns - clock.above_since >= cfg.window_ns
                and device_ns - clock.above_dev >= cfg.window_ns
                and clock.above_n >= cfg.min_samples
            ):
                # read with the old minimum as delays: now they are read with the new one
                self._take(
                    key, clock, clock.above_min, clock.above_since, clock.above_n, received_ns,
                    (WINDOW,), clock.above_dev, device_ns,
                )  # fmt: skip
                clock.max_dev = device_ns
                return self._reading(clock)
            return self._settling(key, clock, received_ns)
        # within the band, or below it before any offset is known: the window's minimum
        clock.run = 0
        clock.above_n = 0
        if device_ns > clock.max_dev:
            clock.max_dev = device_ns
        buckets = clock.buckets
        newest = buckets[-1]
        if newest[0] == bucket:
            if d < newest[1]:
                newest[1] = d
        elif bucket > newest[0]:
            buckets.append([bucket, d])
            oldest = bucket - cfg.buckets
            while buckets[0][0] <= oldest:
                del buckets[0]
        else:  # receive times out of order (another batch thread's clock): the oldest slot
            oldest_slot = buckets[0]
            if d < oldest_slot[1]:
                oldest_slot[1] = d
        minimum = min(b[1] for b in buckets) if len(buckets) > 1 else buckets[0][1]
        if minimum < est - cfg.step_ns:
            clock.min_at = received_ns  # still falling: a backlog draining, not an offset
        if minimum != est:
            clock.est = minimum
            clock.reading = None
            self._dirty.add(key)
        return self._settling(key, clock, received_ns)

    def _settling(self, key: Key, clock: _Clock, received_ns: int) -> ClockReading:
        cfg = self.config
        if not clock.established:
            if (
                clock.samples < cfg.min_samples
                or received_ns - clock.since_ns < cfg.settle_ns
                or received_ns - clock.min_at < cfg.settle_ns // 2
            ):
                return self._unknown
            clock.established = True
            clock.reading = None
            self._dirty.add(key)
            self._retime(Retime(key, self._reading(clock), (NONE,)))
        return self._reading(clock)

    def _reading(self, clock: _Clock) -> ClockReading:
        reading = clock.reading
        if reading is None:
            reading = clock.reading = ClockReading(clock.est, self.config.step_ns, WINDOW)
        return reading

    def _in_run(
        self, key: Key, clock: _Clock, direction: int, received_ns: int, device_ns: int, d: int
    ) -> ClockReading:
        cfg = self.config
        if clock.run != direction:
            clock.run = direction
            clock.run_start = clock.run_min_at = received_ns
            clock.run_count = 0
            clock.run_min = d
            clock.run_max_dev = clock.run_min_dev = device_ns
        clock.run_count += 1
        if device_ns > clock.run_max_dev:
            clock.run_max_dev = device_ns
        if device_ns < clock.run_min_dev:
            clock.run_min_dev = device_ns
        if d < clock.run_min - cfg.step_ns:
            clock.run_min_at = received_ns  # still falling: a backlog draining, not a step
        if d < clock.run_min:
            clock.run_min = d
        if (
            clock.run_count >= cfg.min_samples
            and received_ns - clock.run_start >= cfg.settle_ns
            and received_ns - clock.run_min_at >= cfg.settle_ns // 2
        ):
            self._take(
                key, clock, clock.run_min, clock.run_start, clock.run_count, received_ns,
                (STEP,), clock.run_min_dev, max(clock.run_max_dev, device_ns),
            )  # fmt: skip
            clock.max_dev = clock.run_max_dev
            return self._reading(clock)
        if not clock.established:
            return self._unknown  # before any offset is known, a run changes nothing yet
        late = d - clock.est
        if 0 < late <= cfg.max_delay_ns:
            # as late as that, or its clock was set back: read with the offset, good to ± late
            return ClockReading(clock.est, late, STEP)
        return ClockReading(d, abs(late), STEP)  # the other way, or too late: its receive time

    def _take(
        self,
        key: Key,
        clock: _Clock,
        offset: int,
        since_ns: int,
        samples: int,
        now_ns: int,
        bases: tuple[str, ...],
        from_dev_ns: int,
        to_dev_ns: int,
    ) -> None:
        """A new offset takes over: the window starts again from it. The messages read before
        by what it replaces (`bases`, device times from_dev_ns…to_dev_ns; before the first
        offset, every message: none had one) are to be read by it (`take_retimes`)."""
        if not clock.established:
            bases, from_dev_ns, to_dev_ns = (NONE,), _ANY_LOW, _ANY_HIGH
        clock.est = offset
        clock.min_at = clock.run_min_at if clock.run else now_ns
        clock.buckets = [[now_ns // self._bucket_ns, offset]]
        clock.since_ns = since_ns
        clock.samples = samples
        if clock.established:
            clock.steps += 1
        clock.established = True
        clock.run = 0
        clock.above_n = 0
        clock.reading = None
        self._dirty.add(key)
        self._retime(Retime(key, self._reading(clock), bases, from_dev_ns, to_dev_ns))

    def _retime(self, retime: Retime) -> None:
        kept = self._retimes.setdefault(retime.key, [])
        kept.append(retime)
        del kept[:-MAX_RETIMES]

    def take_retimes(self) -> list[Retime]:
        """The offsets taken over since the last call, oldest first per device: custody reads
        the messages they replace again by them (in the order given)."""
        taken, self._retimes = self._retimes, {}
        return [r for key in sorted(taken) for r in taken[key]]

    # what decoding asks ---------------------------------------------------------------
    def lead_ns(self, key: Key) -> int:
        """How far ahead of the receiver this device's clock is measured to run (0: not known
        to run ahead; never more than `max_lead_ns`): its times may be ahead by that much."""
        clock = self._clocks.get(key)
        if clock is None or not clock.established or clock.est >= 0:
            return 0
        return min(-clock.est, self.config.max_lead_ns)

    def reading(self, key: Key) -> ClockReading:
        """The reading a message of this device would get now (no sample taken)."""
        clock = self._clocks.get(key)
        if clock is None or not clock.established:
            return self._unknown
        return self._reading(clock)

    # the API, metrics and persistence ------------------------------------------------
    def estimate(self, key: Key) -> ClockEstimate | None:
        clock = self._clocks.get(key)
        if clock is None:
            return None
        return ClockEstimate(
            *key,
            clock.est if clock.established else None,
            self.config.step_ns if clock.established else self.config.tolerance_ns,
            clock.samples,
            clock.since_ns,
            clock.last_ns,
            clock.steps,
            clock.run != 0,
        )

    def estimates(self) -> list[ClockEstimate]:
        found = [self.estimate(key) for key in sorted(self._clocks)]
        return [e for e in found if e is not None]

    def keys(self) -> list[Key]:
        return list(self._clocks)

    def take_dirty(self) -> list[Key]:
        """Devices whose offset changed since the last call (to persist, to re-check)."""
        dirty, self._dirty = self._dirty, set()
        return sorted(k for k in dirty if k in self._clocks)

    def export(self, key: Key) -> dict[str, Any] | None:
        """A device's state as plain JSON values (a run in progress is not kept)."""
        clock = self._clocks.get(key)
        if clock is None:
            return None
        return {
            "est": clock.est,
            "established": clock.established,
            "since_ns": clock.since_ns,
            "samples": clock.samples,
            "steps": clock.steps,
            "buckets": [list(b) for b in clock.buckets],
            "max_dev": clock.max_dev,
            "last_ns": clock.last_ns,
        }

    def restore(self, key: Key, state: dict[str, Any]) -> None:
        """A device's state as `export` gave it (at start, from the state store)."""
        if key not in self._clocks and len(self._clocks) >= self.config.max_devices:
            return
        buckets = [[int(b), int(m)] for b, m in state["buckets"]][-self.config.buckets :]
        if not buckets:
            return
        clock = _Clock(int(state["last_ns"]), int(state["last_ns"]) - buckets[-1][1], 0)
        clock.buckets = buckets
        clock.est = int(state["est"])
        clock.established = bool(state["established"])
        clock.since_ns = int(state["since_ns"])
        clock.min_at = clock.since_ns
        clock.samples = int(state["samples"])
        clock.steps = int(state["steps"])
        clock.max_dev = int(state["max_dev"])
        self._clocks[key] = clock

    def forget(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self._clocks.pop(key, None)
            self._dirty.discard(key)
            self._retimes.pop(key, None)

    def unseen_since(self, before_ns: int) -> list[Key]:
        """Devices whose newest message was received before `before_ns`."""
        return [k for k, c in self._clocks.items() if c.last_ns < before_ns]
