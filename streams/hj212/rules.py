"""The HJ 212 link rules, declared once, and their checks: a peer that keeps sending packets the
gateway refuses (unknown MN, wrong PW, a CP that does not decrypt) is someone trying stations;
a station whose own hourly or daily mean is not hazwatch's has a data-quality problem.

Never read a clock or a store here: refusal times are arguments.
"""

from __future__ import annotations

from collections import deque

from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of
from hazwatch.streams.hj212.settings import LinkSettings

AUTH_REFUSED = "hj212_auth_refused"
MEAN_MISMATCH = "station_mean_mismatch"
NS_PER_S = 1_000_000_000
MAX_PEERS = 10_000  # peers whose recent refusals are remembered; the oldest forgotten first

RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        AUTH_REFUSED,
        "hj212",
        Severity.MAJOR,
        "peer",
        "HJ 212 访问被拒：同一地址在时间窗内多次发送 MN 未登记、访问密码错误或无法解密的报文"
        "（默认 10 分钟内 5 次），疑似冒用站点写入数据",
        "one peer address sent HJ 212 packets refused for an unregistered MN, a wrong PW or a CP "
        "that does not decrypt, again and again (by default 5 times within 10 minutes): "
        "someone may be trying to write a station's data",
        defaults_of(LinkSettings, "refused_alert_count", "refused_window_s"),
    ),
    RuleSpec(
        MEAN_MISMATCH,
        "hj212",
        Severity.WARNING,
        "station/pollutant",
        "站点均值不符：站点上报的小时值（CN 2061）或日均值（CN 2031）与 hazwatch "
        "按分钟数据算得的同一小时、同一天的均值相差超过容差"
        "（默认 hazwatch 值的 10 % 与分析仪分辨率取大者）：数采仪统计、单位或时钟可能有误",
        "a station's own hourly (CN 2061) or daily (CN 2031) mean differs from the one hazwatch "
        "computed from its minute data for the same hour or day by more than the tolerance (by "
        "default the larger of 10 % of hazwatch's value and the analyser's resolution): the data "
        "logger's statistics, units or clock may be wrong",
        defaults_of(LinkSettings, "mean_tolerance_pct"),
    ),
)
# The step a pollutant's value is rounded to when the registry names no analyser resolution:
# HJ 633's rounding (µg/m³ to integers, CO mg/m³ to one decimal), as the data audit uses.
DEFAULT_RESOLUTION = {"so2": 1.0, "no2": 1.0, "pm10": 1.0, "pm25": 1.0, "o3": 1.0, "co": 0.1}


def mean_tolerance(
    own: float, resolution: float | None, tolerance_pct: float, pollutant: str
) -> float:
    """How far a station's own mean may be from hazwatch's `own`: the larger of tolerance_pct
    of it and the analyser's resolution (else HJ 633's rounding step)."""
    step = resolution if resolution is not None else DEFAULT_RESOLUTION.get(pollutant, 0.0)
    return max(abs(own) * tolerance_pct / 100.0, step)


def mean_mismatch(
    site: str,
    station: str,
    pollutant: str,
    interval: str,
    period_ns: int,
    station_value: float,
    own: float,
    tolerance: float,
    at_ns: int,
    period_text: str,
) -> AlertSignal | None:
    """The alert for a station's own mean further than `tolerance` from hazwatch's, or None."""
    difference = station_value - own
    if abs(difference) <= tolerance:
        return None
    kind_zh = "小时值" if interval == "hour" else "日均值"
    unit = "mg/m³" if pollutant == "co" else "µg/m³"
    return AlertSignal(
        MEAN_MISMATCH,
        f"{station}/{pollutant}",
        Severity.WARNING,
        f"站点 {station} {period_text} 的 {pollutant} {kind_zh}：站点上报 {station_value:g}，"
        f"hazwatch 计算 {own:g} {unit}，相差 {difference:+.4g}（容差 {tolerance:.4g}）",
        site,
        at_ns,
        {
            "station": station,
            "pollutant": pollutant,
            "interval": interval,
            "period_ns": period_ns,
            "period": period_text,
            "station_value": station_value,
            "hazwatch_value": own,
            "difference": round(difference, 6),
            "tolerance": round(tolerance, 6),
            "unit": unit,
        },
    )


class RefusedPeers:
    """Each peer's recent refusals; `refused` answers the alert to raise, when one is due."""

    def __init__(self, settings: LinkSettings | None = None) -> None:
        self.settings = settings or LinkSettings()
        self._seen: dict[str, deque[int]] = {}

    def refused(self, peer: str, reason: str, mn: str, at_ns: int) -> AlertSignal | None:
        window_ns = int(self.settings.refused_window_s * NS_PER_S)
        times = self._seen.pop(peer, None) or deque()
        self._seen[peer] = times  # most recent last: the first key is the longest quiet
        times.append(at_ns)
        while times and at_ns - times[0] > window_ns:
            times.popleft()
        if len(self._seen) > MAX_PEERS:
            del self._seen[next(iter(self._seen))]
        if len(times) < self.settings.refused_alert_count:
            return None
        minutes = self.settings.refused_window_s / 60
        return AlertSignal(
            AUTH_REFUSED,
            peer,
            Severity.MAJOR,
            f"地址 {peer} 在 {minutes:g} 分钟内 {len(times)} 次发送被拒的 HJ 212 报文"
            f"（最近一次：MN {mn}，{reason}）",
            "",
            at_ns,
            {
                "peer": peer,
                "refusals": len(times),
                "last_reason": reason,
                "last_mn": mn,
                "window_min": minutes,
            },
        )
