"""The line's own health: stalled, retried, flooded, full; each reason in the officer's language."""

from __future__ import annotations

from hazwatch.ingest.health import RateWindow, Thresholds, judge

WELL = dict(oldest_unacked_s=0.5, batch_retries=0, deadletters_per_min=3.0, deadletter_store={})


def test_a_moving_line_is_well() -> None:
    assert judge(**WELL, thresholds=Thresholds()) == []  # type: ignore[arg-type]


def test_each_condition_is_a_reason_in_chinese_by_default_and_english_on_request() -> None:
    bad = dict(
        oldest_unacked_s=95.0,
        batch_retries=7,
        deadletters_per_min=1200.0,
        deadletter_store={"full": True},
    )
    zh = judge(**bad, thresholds=Thresholds())  # type: ignore[arg-type]
    assert len(zh) == 4
    assert "最早未确认的消息已等待 95 秒" in zh[0] and "重试 7 次" in zh[1]
    assert "死信 1200 条/分钟" in zh[2] and "死信库已满" in zh[3]
    en = judge(**bad, thresholds=Thresholds(), lang="en")  # type: ignore[arg-type]
    assert en[0].startswith("the oldest unacknowledged message has waited 95 s")


def test_thresholds_are_the_settings() -> None:
    tight = Thresholds(max_unacked_age_s=0.1, max_batch_retries=1, max_deadletters_per_min=1)
    assert len(judge(**WELL, thresholds=tight)) == 2  # type: ignore[arg-type]


def test_the_rate_is_over_the_last_minute_only() -> None:
    now = [1000.0]
    window = RateWindow(clock=lambda: now[0])
    for _ in range(30):
        window.add(10)
        now[0] += 1.0
    assert window.per_minute() == 300.0
    now[0] += 45.0  # now 1075: the adds of seconds 1016…1029 are within the minute
    assert window.per_minute() == 140.0
    now[0] += 60.0
    assert window.per_minute() == 0.0
    assert len(window._buckets) == 0  # bounded: one bucket a second at most, pruned
