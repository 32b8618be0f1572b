"""Whether the ingest line is healthy: a stalled batch, one retried again and again, a flood of
dead letters, a full dead-letter store. What /api/health and `hazwatch status` report.

Never call the line healthy because every service answers a ping: a line that stopped moving is
the failure that matters (issue #21), and it is judged here from what the line itself does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_unacked_age_s: float = 60.0
    max_batch_retries: int = 5
    max_deadletters_per_min: float = 600.0


class RateWindow:
    """Events counted over a sliding minute (one bucket a second: bounded memory)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.clock = window_s, clock
        self._buckets: deque[list[float]] = deque()  # [second, count]
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        if count <= 0:
            return
        second = float(int(self.clock()))
        with self._lock:
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1][1] += count
            else:
                self._buckets.append([second, float(count)])
            self._prune(second)

    def per_minute(self) -> float:
        now = self.clock()
        with self._lock:
            self._prune(now)
            total = sum(count for _, count in self._buckets)
        return total * 60.0 / self.window_s

    def _prune(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.window_s:
            self._buckets.popleft()


class CounterRate:
    """Per second, how fast a counter that only grows (messages in) grew over the last window,
    from samples taken now and then (bounded: one sample kept per `sample` call in the window).
    """

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.clock = window_s, clock
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def sample(self, count: int) -> None:
        now = self.clock()
        with self._lock:
            self._samples.append((now, count))
            # keep one sample at or before the window's start: the rate spans the whole window
            while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
                self._samples.popleft()

    def per_s(self) -> float:
        with self._lock:
            if len(self._samples) < 2:
                return 0.0
            (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return max(0, c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def judge(
    *,
    oldest_unacked_s: float,
    batch_retries: int,
    deadletters_per_min: float,
    deadletter_store: dict[str, Any] | None,
    thresholds: Thresholds,
    lang: str = "zh",
) -> list[str]:
    """The reasons the line is degraded, each a sentence an officer can act on; [] when well."""
    t = thresholds
    found: list[tuple[str, str]] = []  # (中文, English)
    if oldest_unacked_s > t.max_unacked_age_s:
        found.append(
            (
                f"最早未确认的消息已等待 {oldest_unacked_s:.0f} 秒"
                f"（阈值 {t.max_unacked_age_s:g} 秒）",
                f"the oldest unacknowledged message has waited {oldest_unacked_s:.0f} s "
                f"(threshold {t.max_unacked_age_s:g} s)",
            )
        )
    if batch_retries > t.max_batch_retries:
        found.append(
            (
                f"一个批次已重试 {batch_retries} 次（阈值 {t.max_batch_retries} 次）",
                f"a batch has been retried {batch_retries} times (threshold {t.max_batch_retries})",
            )
        )
    if deadletters_per_min > t.max_deadletters_per_min:
        found.append(
            (
                f"死信 {deadletters_per_min:.0f} 条/分钟（阈值 {t.max_deadletters_per_min:g}）",
                f"dead letters at {deadletters_per_min:.0f} a minute "
                f"(threshold {t.max_deadletters_per_min:g})",
            )
        )
    if deadletter_store and deadletter_store.get("full"):
        found.append(
            (
                "死信库已满：最早的死信正被清除",
                "the dead-letter store is full: the oldest are pruned",
            )
        )
    return [zh if lang == "zh" else en for zh, en in found]
