"""hazwatch.base.retry: the pauses, the budget and Retry-After, on a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hazwatch.base.retry import Backoff, RetryPolicy, parse_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pauses_double_up_to_the_cap_and_start_over_after_a_success() -> None:
    backoff = Backoff(RetryPolicy(max_s=None, first_delay_s=0.5, max_delay_s=3.0))
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert not backoff.exhausted  # no budget: forever
    backoff.succeeded()
    assert backoff.failed() == 0.5


def test_the_budget_runs_from_the_first_failure_until_a_success() -> None:
    clock = Clock()
    backoff = Backoff(RetryPolicy(max_s=1.0, first_delay_s=0.4, max_delay_s=2.0), clock=clock)
    assert backoff.failed() == 0.4 and not backoff.exhausted
    clock.now += 0.4
    assert backoff.failed() == 0.8 and backoff.exhausted  # 0.4 + 0.8 > 1.0: give up
    assert abs(backoff.failing_s - 0.4) < 1e-9
    backoff.restart_delay()  # pauses start short again, the budget does not
    assert backoff.failed() == 0.4 and not backoff.exhausted
    backoff.succeeded()
    assert backoff.failing_s == 0.0


def test_a_retry_after_lengthens_the_pause_never_shortens_it() -> None:
    backoff = Backoff(RetryPolicy(first_delay_s=0.5))
    assert backoff.failed(retry_after_s=3.0) == 3.0
    assert backoff.failed(retry_after_s=0.1) == 1.0


def test_jitter_adds_at_most_its_fraction() -> None:
    backoff = Backoff(RetryPolicy(first_delay_s=1.0, jitter=0.5), rand=lambda: 1.0)
    assert backoff.failed() == 1.5
    assert Backoff(RetryPolicy(first_delay_s=1.0, jitter=0.5), rand=lambda: 0.0).failed() == 1.0


def test_retry_after_values() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(b"1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (parse_retry_after(later) or 0) <= 30
