"""Backoff for every retry loop: pauses doubling to a cap, optional jitter, a budget, Retry-After.

Never sleep or import hazwatch here: each caller waits its own way (time.sleep, an Event a stop
can wake, asyncio), so a backoff never delays a shutdown; the camera agent uses this too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How pauses grow: `first_delay_s`, doubled after each failure up to `max_delay_s`.

    `max_s` is the budget: give up when the next pause would end more than `max_s` after the
    first failure (None: retry forever). `jitter` adds up to that fraction of each pause at
    random, so that many clients failing together do not come back together.
    """

    max_s: float | None = 10.0
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0
    jitter: float = 0.0


class Backoff:
    """One retry loop under a policy: `failed()` gives the pause, `succeeded()` starts over."""

    __slots__ = (
        "_clock",
        "_delay_s",
        "_last_failure",
        "_pause_s",
        "_random",
        "failing_since",
        "policy",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self._clock, self._random = clock, rand
        self._delay_s = policy.first_delay_s
        self.failing_since: float | None = None  # clock() at the first failure since a success
        self._last_failure = self._pause_s = 0.0

    def failed(self, retry_after_s: float | None = None) -> float:
        """The pause before the next try: the backoff, or longer when the server asked so."""
        now = self._last_failure = self._clock()
        if self.failing_since is None:
            self.failing_since = now
        delay_s = self._delay_s
        if self.policy.jitter:
            delay_s += delay_s * self.policy.jitter * self._random()
        self._pause_s = max(delay_s, retry_after_s or 0.0)
        self._delay_s = min(self._delay_s * 2, self.policy.max_delay_s)
        return self._pause_s

    @property
    def exhausted(self) -> bool:
        """True when the pause `failed()` gave would end past the budget: give up instead."""
        if self.policy.max_s is None or self.failing_since is None:
            return False
        return self._last_failure + self._pause_s - self.failing_since > self.policy.max_s

    @property
    def failing_s(self) -> float:
        """Seconds from the first failure to the latest one (0 when none since a success)."""
        return 0.0 if self.failing_since is None else self._last_failure - self.failing_since

    def succeeded(self) -> None:
        """A try worked: the next failure starts from the first delay and a fresh budget."""
        self.failing_since = None
        self.restart_delay()

    def restart_delay(self) -> None:
        """Pauses start from the first delay again; the budget keeps running until a success."""
        self._delay_s = self.policy.first_delay_s


def parse_retry_after(value: object) -> float | None:
    """Seconds a `Retry-After` value asks for (delta-seconds or an HTTP date), None if unusable."""
    if value is None or value == "":
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
