"""The clocks part's rule, declared once, and its check: a pure function of an offset.

Never do I/O or read a clock here: the offset and the settings come in as arguments.
"""

from __future__ import annotations

from hazwatch.alerts.model import Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of, severities
from hazwatch.streams.clocks.settings import NS_PER_S, ClockSettings

RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        "clock_skew",
        "clocks",
        Severity.WARNING,
        "site/family/device",
        "设备时钟偏差：设备时钟与接收时间之差（以滑动窗口内“接收时间−设备时间”的最小值估计）"
        "超出容差；托管链按校正后的时间判定，记录保留设备原始时间",
        "a device's clock is off by more than the tolerance (estimated as the minimum of "
        "receive time − device time over a sliding window); custody orders its events by the "
        "corrected time and keeps the raw device time",
        defaults_of(ClockSettings, "tolerance_s"),
    ),
)
RULES = tuple(spec.id for spec in RULE_SPECS)
SEVERITY = severities(RULE_SPECS)


def subject(site: str, family: str, device: str) -> str:
    """What a clock_skew alert is about: one device (a reader and a scale may share an id)."""
    return f"{site}/{family}/{device}"


def skewed(offset_ns: int, was_skewed: bool, settings: ClockSettings) -> bool:
    """Whether a device whose clock is measured `offset_ns` off is skewed now.

    Raised past the tolerance, cleared once back within the tolerance less `step_s` (no
    flapping of an offset that hovers at the tolerance: the estimate moves by up to step_s).
    """
    tolerance_ns = int(settings.tolerance_s * NS_PER_S)
    if was_skewed:
        return abs(offset_ns) > max(tolerance_ns - int(settings.step_s * NS_PER_S), 0)
    return abs(offset_ns) > tolerance_ns


def describe(offset_ns: int) -> str:
    """The offset in words: `900.0 s slow` (device time behind), `360.0 s fast`."""
    seconds = abs(offset_ns) / NS_PER_S
    return f"{seconds:.1f} s {'slow' if offset_ns > 0 else 'fast'}"
