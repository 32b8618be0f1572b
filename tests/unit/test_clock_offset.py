"""The device-clock estimator: received − device time, its minimum over a window, and steps.

Never feed it a clock of the test's own: every time here is made from a true time, a device
clock (offset, drift, reboot) and a delay, so the right answer is known independently.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hazwatch.devices.clock_offset import (
    NONE,
    STEP,
    WINDOW,
    ClockConfig,
    ClockReading,
    DeviceClocks,
)
from hazwatch.devices.timeparse import EARLIEST_NS

S = 1_000_000_000
T0 = 1_790_000_000 * S  # 2026-09-21, true time at the start of every story
KEY = ("jy-0012", "rfid", "gate-03")
CONFIG = ClockConfig()  # the defaults: 30 s tolerance, 900 s window, 60 s settle, 2 s step


def live(
    clocks: DeviceClocks,
    offset_s: float,
    start_s: float,
    seconds: int,
    *,
    every_s: float = 1.0,
    seed: int = 1,
    key: tuple[str, str, str] = KEY,
) -> list[ClockReading]:
    """A device whose clock is `offset_s` behind true time (negative: ahead) sends a message
    every `every_s`, each received 20-500 ms later."""
    rng = random.Random(seed)
    readings = []
    for i in range(int(seconds / every_s)):
        true = T0 + int((start_s + i * every_s) * S)
        delay = int(rng.uniform(0.02, 0.5) * S)
        readings.append(clocks.observe(key, true + delay, true - int(offset_s * S)))
    return readings


def test_a_slow_clock_is_unknown_until_it_settled_then_the_minimum() -> None:
    clocks = DeviceClocks(CONFIG)
    readings = live(clocks, 900, 0, 120)
    assert {r.basis for r in readings[:60]} == {NONE}  # the first 60 s: not known yet
    assert all(r.error_ns == CONFIG.tolerance_ns for r in readings[:60])
    later = readings[61:]
    assert {r.basis for r in later} == {WINDOW}
    # the least delay is 20 ms or more: the estimate is the offset plus the smallest delay
    assert all(900 * S < r.offset_ns < 900 * S + S // 10 for r in later)
    estimate = clocks.estimate(KEY)
    assert estimate is not None and estimate.offset_ns == later[-1].offset_ns
    assert clocks.lead_ns(KEY) == 0  # a slow clock sends nothing from the future


def test_a_fast_clock_leads_by_its_offset() -> None:
    clocks = DeviceClocks(CONFIG)
    readings = live(clocks, -360, 0, 90)
    assert readings[-1].basis == WINDOW
    assert -360 * S < readings[-1].offset_ns < -360 * S + S // 2
    assert 360 * S - S // 2 < clocks.lead_ns(KEY) <= 360 * S
    capped = DeviceClocks(ClockConfig(max_lead_ns=60 * S))
    live(capped, -360, 0, 90)
    assert capped.lead_ns(KEY) == 60 * S


def test_buffered_uploads_after_an_outage_keep_the_offset() -> None:
    """A reader offline two hours keeps its reads and uploads them at once: each is late by up
    to two hours, and read with the offset measured before (a delay, not a new offset)."""
    clocks = DeviceClocks(CONFIG)
    before = live(clocks, 900, 0, 120)[-1]
    back = T0 + 120 * S + 7200 * S
    readings = []
    for j in range(3600):  # two hours of reads, one every 2 s, uploaded in 7.2 s
        true_read = T0 + 120 * S + 2 * j * S
        readings.append(clocks.observe(KEY, back + 2 * j * S // 1000, true_read - 900 * S))
    assert {r.basis for r in readings} == {WINDOW}
    assert {r.offset_ns for r in readings} == {before.offset_ns}
    after = live(clocks, 900, 7330, 60)
    assert abs(after[-1].offset_ns - before.offset_ns) < S // 2


def test_a_backlog_uploaded_beside_live_messages_keeps_its_times() -> None:
    """A reader sends its live reads and, at the same time, an hour of reads it kept while it
    could not publish: those go back in device time, and are read as late, not as a step."""
    clocks = DeviceClocks(CONFIG)
    live(clocks, 900, 0, 120)
    offset = clocks.reading(KEY).offset_ns
    late = []
    for j in range(200):
        now = T0 + (120 + j) * S
        clocks.observe(KEY, now + S // 10, now - 900 * S)  # live
        kept = T0 + 120 * S - 3600 * S + j * 18 * S  # an hour ago, onwards
        late.append(clocks.observe(KEY, now + S // 5, kept - 900 * S))
    assert {r.offset_ns for r in late} == {offset}  # each at the time it was really read
    assert all(r.basis in (WINDOW, STEP) for r in late)
    assert clocks.reading(KEY).offset_ns == offset and clocks.estimate(KEY).steps == 0  # type: ignore[union-attr]


def test_a_story_replayed_from_the_past_keeps_its_own_times() -> None:
    """A year of messages sent as fast as they go (a simulator's history, a replay): the
    device's time runs thousands of times faster than the receiver's, so the least offset
    never holds still and no offset is taken: the messages keep their own time."""
    clocks = DeviceClocks(CONFIG)
    start = T0 - 400 * 86400 * S
    readings = [
        clocks.observe(KEY, T0 + i * S // 20, start + i * 4 * 3600 * S) for i in range(2400)
    ]  # two minutes of receive time for 400 days of device time
    assert {r.basis for r in readings} == {NONE}
    assert {r.offset_ns for r in readings} == {0}


def test_a_reboot_to_2000_takes_over_after_settling() -> None:
    clocks = DeviceClocks(CONFIG)
    live(clocks, 0, 0, 120)
    reboot = T0 + 130 * S
    readings = [
        clocks.observe(KEY, reboot + i * S + S // 10, EARLIEST_NS + i * S) for i in range(120)
    ]
    jump = reboot - EARLIEST_NS
    # until it has held for settle_s: each message at its own receive time, flagged a step
    assert {r.basis for r in readings[:60]} == {STEP}
    assert all(r.offset_ns == jump + S // 10 for r in readings[:60])
    assert all(r.error_ns > jump - S for r in readings[:60])
    assert {r.basis for r in readings[61:]} == {WINDOW}
    assert abs(readings[-1].offset_ns - jump) < S
    estimate = clocks.estimate(KEY)
    assert estimate is not None and estimate.steps == 1 and not estimate.stepping


def test_ntp_setting_a_fast_clock_back_takes_over() -> None:
    clocks = DeviceClocks(CONFIG)
    live(clocks, -360, 0, 120)
    readings = live(clocks, 0, 120, 120)  # NTP: the clock is right from here on
    assert readings[0].basis == STEP and readings[-1].basis == WINDOW
    assert 0 < readings[-1].offset_ns < S // 2


def test_a_clock_set_back_while_offline_takes_over_within_a_window() -> None:
    """Set back five minutes during an hour offline, its device time never goes back: its
    messages look late at first, and after a window of nothing else the new offset holds."""
    clocks = DeviceClocks(CONFIG)
    live(clocks, 0, 0, 120)
    readings = live(clocks, 300, 3720, 1000)
    window_s = CONFIG.window_ns // S
    assert {r.basis for r in readings} == {WINDOW}
    assert all(r.offset_ns < S for r in readings[: window_s - 1])
    assert all(300 * S < r.offset_ns < 301 * S for r in readings[window_s + 1 :])


def test_a_clock_jumping_ahead_takes_over_after_settling_and_a_single_bad_time_never() -> None:
    clocks = DeviceClocks(CONFIG)
    live(clocks, 0, 0, 120)
    one_off = clocks.observe(KEY, T0 + 121 * S, T0 + 121 * S + 3 * 3600 * S)  # a glitch
    assert one_off.basis == STEP and one_off.offset_ns == -3 * 3600 * S
    assert clocks.lead_ns(KEY) == 0  # a glitch does not let the future in
    after = live(clocks, 0, 122, 10)
    assert {r.basis for r in after} == {WINDOW} and after[-1].offset_ns > 0
    ahead = live(clocks, -600, 140, 120)  # the clock set ten minutes ahead, for good
    assert ahead[0].basis == STEP and ahead[-1].basis == WINDOW
    assert clocks.lead_ns(KEY) > 599 * S


def test_the_state_is_bounded_per_device_and_in_devices() -> None:
    clocks = DeviceClocks(ClockConfig(max_devices=3))
    live(clocks, 900, 0, 7200, every_s=0.5)  # 14,400 messages, two hours
    state = clocks.export(KEY)
    assert state is not None and len(state["buckets"]) <= CONFIG.buckets
    for n in range(5):
        live(clocks, 0, 0, 3, key=("s", "rfid", f"r{n}"))
    assert len(clocks) == 3  # the first two of five new devices, then no more
    assert clocks.reading(("s", "rfid", "r4")).basis == NONE


def test_export_and_restore_keep_the_offset_across_a_restart() -> None:
    clocks = DeviceClocks(CONFIG)
    before = live(clocks, 900, 0, 120)[-1]
    state = clocks.export(KEY)
    assert state is not None
    again = DeviceClocks(CONFIG)
    again.restore(KEY, state)
    assert again.reading(KEY) == before
    # the broker's queue after the restart: late messages, read with the kept offset
    late = again.observe(KEY, T0 + 600 * S, T0 + 200 * S - 900 * S)
    assert late == before


@settings(max_examples=200, deadline=None)
@given(
    offset_ms=st.integers(-86_400_000, 86_400_000),
    delays_ms=st.lists(st.integers(0, 7_200_000), min_size=80, max_size=200),
    fast_every=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_delays_only_add_and_the_estimate_converges_to_the_offset(
    offset_ms: int, delays_ms: list[int], fast_every: int, seed: int
) -> None:
    """Whatever the delays (buffered uploads of up to two hours, in any pattern), a measured
    offset is never below the true one (delays only add), and once a message in every
    `fast_every` arrives within 100 ms, the estimate is within 100 ms of the truth."""
    rng = random.Random(seed)
    clocks = DeviceClocks(CONFIG)
    offset = offset_ms * 1_000_000
    for i, delay_ms in enumerate(delays_ms):
        true = T0 + i * 2 * S
        delay = (delay_ms if i % fast_every else rng.randint(0, 100)) * 1_000_000
        reading = clocks.observe(KEY, true + delay, true - offset)
        if reading.basis == WINDOW:
            assert reading.offset_ns >= offset
    final = clocks.reading(KEY)
    assert final.basis == WINDOW
    assert offset <= final.offset_ns <= offset + 100_000_000


def test_each_offset_taken_over_says_which_messages_it_reads_again() -> None:
    """Retime: the first offset replaces every message read with none; a step replaces the
    messages of its run (read at their receive time), by their device times; nothing else."""
    clocks = DeviceClocks(CONFIG)
    first = live(clocks, 900, 0, 120)
    (retime,) = clocks.take_retimes()
    assert retime.key == KEY and retime.bases == (NONE,) and retime.reading.basis == WINDOW
    assert 900 * S < retime.reading.offset_ns < 900 * S + S // 10
    assert all(retime.applies(T0 + i * S - 900 * S, r.basis) for i, r in enumerate(first[:60]))
    assert not retime.applies(T0, WINDOW)
    assert clocks.take_retimes() == []  # taken once
    reboot = T0 + 130 * S
    run = [clocks.observe(KEY, reboot + i * S + S // 10, EARLIEST_NS + i * S) for i in range(90)]
    (step,) = clocks.take_retimes()
    assert step.bases == (STEP,) and abs(step.reading.offset_ns - (reboot - EARLIEST_NS)) < S
    stepped = [EARLIEST_NS + i * S for i, r in enumerate(run) if r.basis == STEP]
    assert stepped and all(step.applies(ts, STEP) for ts in stepped)
    assert not step.applies(T0 + 100 * S, STEP)  # a late message before the reboot: kept
    clocks.forget([KEY])
    assert clocks.take_retimes() == []
