"""clock_skew's detail in Chinese and English, from the alert's fields (the offset, the
family, the messages counted and the tolerance): for messages, the alert API and the CLI. An
alert stored before `samples` and `tolerance_s` were fields has them read from its message.

Never judge a clock here: the rule did (streams/clocks/rules.py).
"""

from __future__ import annotations

import re

from hazwatch.alerts.model import Alert
from hazwatch.alerts.text import Detail, Formatter, family_word, number

# the processor's sentence (streams/clocks/processor.py): read for alerts stored without the
# fields only
_COUNTS = re.compile(
    r"the least of (?P<samples>\d+) messages; tolerance (?P<tolerance>[0-9.e+-]+) s"
)


def skew_detail(alert: Alert) -> Detail | None:
    """How far off the device's clock is, which way, and what custody does about it."""
    offset_s = float(str(alert.details["offset_s"]))
    family = str(alert.details["family"])
    device = alert.subject.split("/")[-1]
    counts: dict[str, object] | None = None
    if "samples" in alert.details and "tolerance_s" in alert.details:
        counts = {"samples": alert.details["samples"], "tolerance": alert.details["tolerance_s"]}
    elif (found := _COUNTS.search(alert.message)) is not None:
        counts = dict(found.groupdict())
    seconds = f"{abs(offset_s):.1f}"
    zh_way, en_way = ("慢", "slow") if offset_s > 0 else ("快", "fast")
    zh = f"{family_word(family, 'zh')} {device} 的时钟{zh_way} {seconds} 秒（接收时间 − 设备时间"
    en = f"the clock of {family_word(family, 'en')} {alert.site}/{device} is {seconds} s {en_way} "
    en += "(receive − device time"
    if counts is not None:
        samples, tolerance = int(str(counts["samples"])), number(counts["tolerance"])
        zh += f"，取 {samples} 条消息中的最小值；容差 {tolerance} 秒"
        en += f", the least of {samples} messages; tolerance {tolerance} s"
    return Detail(
        zh + "）：托管链按校正后的时间判定",
        en + "): custody uses the corrected time",
    )


DETAILS: dict[str, Formatter] = {"clock_skew": skew_detail}
